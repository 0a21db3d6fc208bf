//! Command line: subcommands and what each does.

use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::audit::Reason;

/// portvakt — an authentication gateway: TLS reverse proxy with a login wall.
#[derive(Debug, Parser)]
#[command(name = "portvakt", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
// Parsed once per process: the size of the audit query's flags is no cost.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway with a configuration file (SIGHUP reloads it,
    /// SIGTERM drains and exits, SIGUSR2 upgrades to the installed binary).
    Serve {
        /// The YAML configuration file.
        #[arg(long, short)]
        config: PathBuf,
        /// Take the listening sockets over from the running gateway (it
        /// sends them over `server.upgrade_socket` after SIGQUIT).
        #[arg(long, short)]
        upgrade: bool,
    },
    /// Upgrade the running gateway to the installed binary without refusing
    /// a connection: the new process takes over the listening sockets.
    Upgrade {
        /// The YAML configuration file of the running gateway.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Check a configuration file and exit (0 = valid).
    CheckConfig {
        /// The YAML configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Print the configuration reference (Markdown: every key with its
    /// type, default, limits and description), made from the code.
    ConfigReference {
        /// Write it into this file instead (docs/configuration.md): below
        /// the line `<!-- generated reference below: do not edit by hand -->`,
        /// keeping what is above it.
        #[arg(long, value_name = "FILE")]
        write: Option<PathBuf>,
    },
    /// Run a complete local demo: dev certificate, demo users, built-in upstream.
    Demo {
        /// HTTPS address.
        #[arg(long, default_value = "127.0.0.1:8443")]
        listen: SocketAddr,
        /// Admin listener (metrics, health, sessions API). Default: the HTTPS
        /// port + 1000 on 127.0.0.1 (9443 for 8443).
        #[arg(long)]
        admin: Option<SocketAddr>,
        /// Where the demo keeps its generated files.
        #[arg(long)]
        state: Option<PathBuf>,
    },
    /// Read a password from standard input and print its argon2id hash for users.yaml.
    HashPassword,
    /// Hardware OATH tokens ("Webbdosa"): import, assign, resynchronise.
    Token {
        /// The gateway's configuration (for storage and key).
        #[arg(long, short, global = true)]
        config: Option<PathBuf>,
        /// The realm of the user the command names (a user is a realm and a
        /// name). Needed only when the configuration has several realms.
        #[arg(long, global = true, value_name = "ID")]
        realm: Option<String>,
        /// What to do.
        #[command(subcommand)]
        action: TokenAction,
    },
    /// Authenticator-app devices (until users enrol their own).
    Totp {
        /// The gateway's configuration.
        #[arg(long, short, global = true)]
        config: Option<PathBuf>,
        /// The realm of the user the command names (a user is a realm and a
        /// name). Needed only when the configuration has several realms.
        #[arg(long, global = true, value_name = "ID")]
        realm: Option<String>,
        /// What to do.
        #[command(subcommand)]
        action: TotpAction,
    },
    /// A user's enrolments: list, remove an SMS number, set one, reset all.
    Enrolments {
        /// The gateway's configuration.
        #[arg(long, short, global = true)]
        config: Option<PathBuf>,
        /// The realm of the user the command names (a user is a realm and a
        /// name). Needed only when the configuration has several realms.
        #[arg(long, global = true, value_name = "ID")]
        realm: Option<String>,
        /// What to do.
        #[command(subcommand)]
        action: EnrolmentAction,
    },
    /// Sessions of the running gateway (through its admin listener): list, revoke.
    Sessions {
        /// The gateway's configuration (admin address and secret key).
        #[arg(long, short, global = true)]
        config: Option<PathBuf>,
        /// The realm: `list` shows only its sessions; `revoke USER` needs it
        /// when the configuration has several realms.
        #[arg(long, global = true, value_name = "ID")]
        realm: Option<String>,
        /// What to do.
        #[command(subcommand)]
        action: SessionAction,
    },
    /// Lockouts of the running gateway (through its admin listener): list
    /// who is locked, held or blocked; clear a user or an address.
    Lockouts {
        /// The gateway's configuration (admin address and secret key).
        #[arg(long, short, global = true)]
        config: Option<PathBuf>,
        /// The realm: `list` shows only its users; `clear USER` needs it
        /// when the configuration has several realms.
        #[arg(long, global = true, value_name = "ID")]
        realm: Option<String>,
        /// What to do.
        #[command(subcommand)]
        action: LockoutAction,
    },
    /// The enrolment store: enrolments kept from before they were stored per realm.
    Storage {
        /// The gateway's configuration (storage and key).
        #[arg(long, short, global = true)]
        config: Option<PathBuf>,
        /// What to do.
        #[command(subcommand)]
        action: StorageAction,
    },
    /// Audit logs: verify the auth log's hash chain, search and summarise both logs.
    Audit {
        /// What to do.
        #[command(subcommand)]
        action: AuditAction,
    },
    /// Run the built-in "whoami" upstream that echoes the request it receives as JSON.
    Whoami {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8081")]
        listen: SocketAddr,
    },
}

/// `portvakt sessions …`
#[derive(Debug, Subcommand)]
pub enum SessionAction {
    /// Live sessions: user, realm, IP, methods, idle time.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// End sessions at once: every session of USER (of the realm --realm names,
    /// needed when there are several), or the one with this id (the short id
    /// `sessions list` shows). The user meets the login page.
    Revoke {
        /// A user name, or a session id.
        who: String,
        /// Treat WHO as a session id even if it could be a user name.
        #[arg(long)]
        id: bool,
    },
}

/// `portvakt lockouts …`
#[derive(Debug, Subcommand)]
pub enum LockoutAction {
    /// Locked and held users (realm, until when or "until cleared",
    /// consecutive failures) and blocked address buckets.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Lift USER's lock or hold and forget their failures (the name is
    /// folded as at login: `ALICE` is `alice`), or with --ip the block of
    /// that address's bucket (an IPv6 address clears its /64). Audited.
    Clear {
        /// The user name.
        #[arg(required_unless_present = "ip", conflicts_with = "ip")]
        user: Option<String>,
        /// Clear an address bucket instead of a user.
        #[arg(long, value_name = "ADDR")]
        ip: Option<std::net::IpAddr>,
    },
}

/// `portvakt storage …`
#[derive(Debug, Subcommand)]
pub enum StorageAction {
    /// List users whose enrolments were stored before enrolments were kept
    /// per realm (an upgraded store); they belong to no realm until adopted.
    Legacy,
    /// Give those enrolments to a realm, re-sealing their seeds: all that are
    /// left, or only the users named. With one realm configured the gateway
    /// does this by itself on start; with several, run it (once per realm)
    /// before starting.
    Adopt {
        /// The realm whose directory those users are in.
        #[arg(long, value_name = "ID")]
        realm: String,
        /// Only these users (default: everyone left).
        users: Vec<String>,
    },
    /// Copy every enrolment into another, empty store (a SQLite file to
    /// PostgreSQL when a second gateway arrives, or back), with the
    /// configuration's key; checked by reading the target back. Stop the
    /// gateways first: what changes in the source afterwards is not copied.
    Copy {
        /// The store to read: a SQLite file or `postgres://…`.
        #[arg(long, value_name = "STORE")]
        from: String,
        /// The empty store to fill: a SQLite file (created) or `postgres://…`.
        #[arg(long, value_name = "STORE")]
        to: String,
    },
}

/// `portvakt audit …`
#[derive(Debug, Subcommand)]
pub enum AuditAction {
    /// Verify the auth logs' hash chains, one per gateway: report the first
    /// edited, missing, reordered or truncated record with its line and exit 1.
    Verify(crate::audit::verify::VerifyArgs),
    /// Filter access and auth logs by user, realm, service, IP/CIDR, decision and time.
    Query(crate::audit::query::QueryArgs),
    /// Summarise a period: logins by method and location, failures, lockouts, refusals, services.
    Report(crate::audit::report::ReportArgs),
}

/// `portvakt token …`
#[derive(Debug, Subcommand)]
pub enum TokenAction {
    /// Import tokens from a CSV file: serial,type,secret,digits,period_or_counter.
    /// A bad line is reported with its number and nothing is imported.
    Import {
        /// The CSV file.
        file: PathBuf,
    },
    /// Assign a token to a user.
    Assign {
        /// Token serial.
        serial: String,
        /// User name.
        user: String,
    },
    /// Take a token away from its user.
    Unassign {
        /// Token serial.
        serial: String,
    },
    /// Resynchronise an HOTP token with two consecutive codes.
    Resync {
        /// Token serial.
        serial: String,
        /// A code from the token.
        code1: String,
        /// The next code.
        code2: String,
    },
}

/// `portvakt totp …`
#[derive(Debug, Subcommand)]
pub enum TotpAction {
    /// Add an authenticator device for a user; prints its secret and otpauth URI once.
    Add {
        /// User name.
        user: String,
        /// Description, e.g. "Jobbtelefonen".
        #[arg(long, default_value = "Authenticator")]
        description: String,
    },
    /// Remove one of a user's devices (by id, see `enrolments list`).
    Remove {
        /// User name.
        user: String,
        /// Device id.
        id: i64,
    },
}

/// `portvakt enrolments …`
#[derive(Debug, Subcommand)]
pub enum EnrolmentAction {
    /// What a user has enrolled.
    List {
        /// User name.
        user: String,
    },
    /// Remove one of a user's SMS numbers (position 1 or 2).
    RemoveSms {
        /// User name.
        user: String,
        /// 1 or 2.
        position: u8,
    },
    /// Remove everything a user enrolled (e.g. a lost phone).
    Reset {
        /// User name.
        user: String,
    },
}

impl TokenAction {
    fn audit(&self) -> (Reason, Option<&str>) {
        match self {
            TokenAction::Import { .. } => (Reason::TokenImport, None),
            TokenAction::Assign { user, .. } => (Reason::TokenAssign, Some(user)),
            TokenAction::Unassign { .. } => (Reason::TokenUnassign, None),
            TokenAction::Resync { .. } => (Reason::TokenResync, None),
        }
    }
}

impl TotpAction {
    fn audit(&self) -> (Reason, Option<&str>) {
        match self {
            TotpAction::Add { user, .. } => (Reason::TotpAdd, Some(user)),
            TotpAction::Remove { user, .. } => (Reason::TotpRemove, Some(user)),
        }
    }
}

impl EnrolmentAction {
    fn audit(&self) -> (Reason, Option<&str>) {
        match self {
            EnrolmentAction::List { user } => (Reason::EnrolmentsList, Some(user)),
            EnrolmentAction::RemoveSms { user, .. } => (Reason::SmsRemove, Some(user)),
            EnrolmentAction::Reset { user } => (Reason::ResetUser, Some(user)),
        }
    }
}

/// Run an admin action against the storage of the config at `config`.
/// `realm` is `--realm`; the user the action names (`what.1`) is taken in
/// that realm, or in the only one.
fn admin(
    config: Option<PathBuf>,
    realm: Option<String>,
    what: (Reason, Option<&str>),
    act: impl FnOnce(
        &crate::config::Config,
        Option<&crate::storage::UserRef>,
    ) -> Result<String, crate::admin::AdminError>,
) -> ExitCode {
    let Some(path) = config else {
        eprintln!("portvakt: --config FILE is needed to find the storage and the key");
        return ExitCode::FAILURE;
    };
    let cfg = match crate::config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            eprint!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let (action, user) = what;
    // A named user needs a realm; a --realm given anyway must be configured.
    let realm = match (user, &realm) {
        (None, None) => None,
        _ => match crate::admin::realm_for(&cfg, realm.as_deref()) {
            Ok(r) => Some(r),
            Err(e) => {
                eprintln!("portvakt: {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    let who = user
        .zip(realm.as_deref())
        .map(|(u, r)| crate::storage::UserRef::new(r, u));
    let result = act(&cfg, who.as_ref());
    // Every admin action is an auth-log event, like the users' own changes.
    let event = crate::audit::AuthEvent {
        time: crate::audit::timestamp(crate::clock::Clock::now_ms(&crate::clock::SystemClock)),
        event: crate::audit::Event::Admin,
        result: crate::audit::Outcome::of(result.is_ok()),
        reason: action,
        user,
        realm: realm.as_deref(),
        client_ip: std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        network: "internal",
        method: Some("cli"),
        request_id: "",
        session: None,
        host: None,
        destination: None,
        provider: std::env::var("SUDO_USER")
            .or_else(|_| std::env::var("USER"))
            .ok()
            .map(|u| format!("operator {u}")),
    };
    if let Err(e) = crate::audit::append_now(&cfg.auth_log, &cfg.chain_head, &cfg.gateway, &event) {
        eprintln!("portvakt: cannot write the auth log: {e}");
    }
    match result {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("portvakt: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The user an action names; `admin` always passes one for such actions.
fn named(
    who: Option<&crate::storage::UserRef>,
) -> Result<&crate::storage::UserRef, crate::admin::AdminError> {
    who.ok_or_else(|| crate::admin::AdminError::NotFound("no user named".into()))
}

/// Run the parsed command line.
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Serve { config, upgrade } => serve_with(&config, upgrade),
        Command::Upgrade { config } => crate::lifecycle::upgrade_command(&config),
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
                for w in &c.warnings {
                    eprintln!("warning: {w}");
                }
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
        Command::ConfigReference { write: None } => {
            print!("{}", crate::config::reference::markdown());
            ExitCode::SUCCESS
        }
        Command::ConfigReference { write: Some(file) } => {
            match crate::config::reference::write(&file) {
                Ok(()) => {
                    println!("{}: reference written", file.display());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Demo {
            listen,
            admin,
            state,
        } => crate::demo::run(listen, admin, state),
        Command::HashPassword => hash_password(),
        Command::Token {
            config,
            realm,
            action,
        } => admin(config, realm, action.audit(), |cfg, who| {
            let a = crate::admin::Admin::from_config(cfg)?;
            match &action {
                TokenAction::Import { file } => a.token_import(file),
                TokenAction::Assign { serial, .. } => a.token_assign(serial, named(who)?),
                TokenAction::Unassign { serial } => a.token_unassign(serial),
                TokenAction::Resync {
                    serial,
                    code1,
                    code2,
                } => a.token_resync(serial, code1, code2),
            }
        }),
        Command::Totp {
            config,
            realm,
            action,
        } => admin(config, realm, action.audit(), |cfg, who| {
            let a = crate::admin::Admin::from_config(cfg)?;
            match &action {
                TotpAction::Add { description, .. } => {
                    a.totp_add(named(who)?, description, &cfg.codes.issuer)
                }
                TotpAction::Remove { id, .. } => a.remove_totp(named(who)?, *id),
            }
        }),
        Command::Enrolments {
            config,
            realm,
            action,
        } => admin(config, realm, action.audit(), |cfg, who| {
            let a = crate::admin::Admin::from_config(cfg)?;
            match &action {
                EnrolmentAction::List { .. } => a.enrolments_list(named(who)?),
                EnrolmentAction::RemoveSms { position, .. } => match position {
                    1 | 2 => a.remove_sms(named(who)?, position - 1),
                    _ => Err(crate::admin::AdminError::NotFound(format!(
                        "position {position}: use 1 or 2"
                    ))),
                },
                EnrolmentAction::Reset { .. } => a.reset_user(named(who)?),
            }
        }),
        Command::Sessions {
            config,
            realm,
            action,
        } => crate::admin_listener::client::run(config, realm, action),
        Command::Lockouts {
            config,
            realm,
            action,
        } => crate::admin_listener::client::lockouts(config, realm, action),
        Command::Storage { config, action } => storage(config, action),
        Command::Audit { action } => match action {
            AuditAction::Verify(args) => crate::audit::verify::run(args),
            AuditAction::Query(args) => crate::audit::query::run(args),
            AuditAction::Report(args) => crate::audit::report::run(args),
        },
        Command::Whoami { listen } => match crate::whoami::run_blocking(listen) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("portvakt whoami: cannot listen on {listen}: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

/// `portvakt storage legacy|adopt|copy`. Adoption and copies are audited like the other
/// admin changes; listing changes nothing.
fn storage(config: Option<PathBuf>, action: StorageAction) -> ExitCode {
    match action {
        StorageAction::Legacy => admin(config, None, (Reason::StorageLegacy, None), |cfg, _| {
            crate::admin::storage_legacy(cfg)
        }),
        StorageAction::Adopt { realm, users } => {
            // The realm must be configured; the users need not be (yet).
            let given = Some(realm);
            admin(
                config,
                given.clone(),
                (Reason::StorageAdopt, None),
                |cfg, _| {
                    let realm = crate::admin::realm_for(cfg, given.as_deref())?;
                    crate::admin::storage_adopt(cfg, &realm, &users)
                },
            )
        }
        StorageAction::Copy { from, to } => {
            admin(config, None, (Reason::StorageCopy, None), |cfg, _| {
                crate::admin::storage_copy(cfg, &from, &to)
            })
        }
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
    serve_with(config, false)
}

/// [`serve`], taking the sockets over from the running gateway with `upgrade`.
pub fn serve_with(config: &std::path::Path, upgrade: bool) -> ExitCode {
    let cfg = match crate::config::load(config) {
        Ok(c) => c,
        Err(e) => {
            eprint!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let https = cfg.https_addr;
    let launch = if upgrade {
        crate::launch::Launch::upgrade()
    } else {
        crate::launch::Launch::serve()
    };
    match crate::server::prepare_with(cfg, launch) {
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
