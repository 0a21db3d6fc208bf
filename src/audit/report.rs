//! `portvakt audit report`: summarise a period of the logs. (Being written.)

/// Period and output format for `portvakt audit report`.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {}

/// Print the report; the exit code for the CLI.
pub fn run(_args: ReportArgs) -> std::process::ExitCode {
    std::process::ExitCode::FAILURE
}
