//! Command line: subcommands and what each does.

use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// portvakt — an authentication gateway: TLS reverse proxy with a login wall.
#[derive(Debug, Parser)]
#[command(name = "portvakt", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway with a configuration file (SIGHUP reloads it).
    Serve {
        /// The YAML configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Check a configuration file and exit (0 = valid).
    CheckConfig {
        /// The YAML configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Run a complete local demo: dev certificate, demo users, built-in upstream.
    Demo {
        /// HTTPS address.
        #[arg(long, default_value = "127.0.0.1:8443")]
        listen: SocketAddr,
        /// Where the demo keeps its generated files.
        #[arg(long)]
        state: Option<PathBuf>,
    },
    /// Read a password from standard input and print its argon2id hash for users.yaml.
    HashPassword,
    /// Run the built-in "whoami" upstream that echoes the request it receives as JSON.
    Whoami {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8081")]
        listen: SocketAddr,
    },
}

/// Run the parsed command line.
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Serve { config } => serve(&config),
        Command::CheckConfig { config } => match crate::config::load(&config) {
            Ok(c) => {
                println!(
                    "{}: valid ({} realm{}, {} service{})",
                    config.display(),
                    c.realms.len(),
                    plural(c.realms.len()),
                    c.services.len(),
                    plural(c.services.len())
                );
                // Also build the runtime: users files and templates are checked too.
                match crate::gateway::Runtime::build(c, None) {
                    Ok(_) => ExitCode::SUCCESS,
                    Err(e) => {
                        eprint!("{e}");
                        ExitCode::FAILURE
                    }
                }
            }
            Err(e) => {
                eprint!("{e}");
                ExitCode::FAILURE
            }
        },
        Command::Demo { listen, state } => crate::demo::run(listen, state),
        Command::HashPassword => hash_password(),
        Command::Whoami { listen } => match crate::whoami::run_blocking(listen) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("portvakt whoami: cannot listen on {listen}: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// Load, prepare and run a configuration until SIGTERM.
pub fn serve(config: &std::path::Path) -> ExitCode {
    let cfg = match crate::config::load(config) {
        Ok(c) => c,
        Err(e) => {
            eprint!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let https = cfg.https_addr;
    match crate::server::prepare(cfg) {
        Ok(prepared) => {
            tracing::info!(%https, config = %config.display(), "portvakt is serving");
            prepared.run_forever()
        }
        Err(e) => {
            eprintln!("portvakt: {e}");
            ExitCode::FAILURE
        }
    }
}

fn hash_password() -> ExitCode {
    let mut input = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut input) {
        eprintln!("portvakt hash-password: cannot read standard input: {e}");
        return ExitCode::FAILURE;
    }
    // One line: the password, without its line ending.
    let password = input
        .strip_suffix('\n')
        .map(|p| p.strip_suffix('\r').unwrap_or(p))
        .unwrap_or(&input);
    if password.is_empty() {
        eprintln!("portvakt hash-password: empty password (type it on standard input)");
        return ExitCode::FAILURE;
    }
    match crate::password::hash(password) {
        Ok(h) => {
            println!("{h}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("portvakt hash-password: {e}");
            ExitCode::FAILURE
        }
    }
}
