//! The `portvakt` binary: parse the command line, set up logging, dispatch.

use std::process::ExitCode;

use clap::Parser;

/// mimalloc instead of the system allocator: allocation was a quarter of the
/// proxy's user-space instructions; this cut them by 13–16 % (bench/README.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PORTVAKT_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,pingora_core=warn,pingora_proxy=warn")
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    portvakt::cli::run(portvakt::cli::Cli::parse())
}
