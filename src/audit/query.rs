//! `portvakt audit query`: filter access and auth logs. (Being written.)

/// Filters and output format for `portvakt audit query`.
#[derive(Debug, clap::Args)]
pub struct QueryArgs {}

/// Run the query; the exit code for the CLI.
pub fn run(_args: QueryArgs) -> std::process::ExitCode {
    std::process::ExitCode::FAILURE
}
