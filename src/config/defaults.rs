//! What the checker puts in place of an optional key that is left out: the
//! one place each of these defaults is written. [`super::validate`] and
//! [`super::services`] apply them, and the file structs hand the same
//! constants to the reference (`#[schemars(extend("x-default" = …))]`,
//! which changes the schema only, never what serde reads: these keys stay
//! `Option`s because the checker must know whether they were written).
//!
//! Keys with a plain serde default (a `Default` impl or `default = …`)
//! have theirs next to their struct in [`super::file`], or in the runtime
//! type they configure (`CodeRules::DEFAULT`, `Limits::DEFAULT`,
//! `notify::config::DEFAULT_TIMEOUT`); the reference reads those by
//! serialising them.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use super::types::{Duration, Localized};

/// `listen.admin`: loopback only, since the admin listener speaks plain HTTP.
pub const ADMIN: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9100));
/// `pages.time_zone` and `services[].hours.zone`.
pub const TIME_ZONE: &str = "Europe/Stockholm";
/// `storage`: a SQLite file, relative to the config file's directory.
pub const STORAGE: &str = "portvakt.db";
/// `state`: this process's memory.
pub const STATE: &str = "memory";
/// `state_timeout`.
pub const STATE_TIMEOUT: Duration = Duration::from_secs(2);
/// `server.upgrade_socket`, relative to `state_dir`.
pub const UPGRADE_SOCKET: &str = "upgrade/portvakt.sock";
/// `server.pid_file`, relative to `state_dir`.
pub const PID_FILE: &str = "portvakt.pid";
/// `audit.chain_head`, relative to `state_dir`.
pub const CHAIN_HEAD: &str = "auth-chain.head";
/// `branding.colors.primary`.
pub const PRIMARY: &str = "#1f4e79";
/// `branding.colors.background`.
pub const BACKGROUND: &str = "#f3f5f8";
/// `branding.colors.on_primary`.
pub const ON_PRIMARY: &str = "#ffffff";
/// `services[].path`: the whole host.
pub const PATH: &str = "/";
/// `services[].groups_match`: one of the groups is enough.
pub const GROUPS_MATCH: &str = "any";
/// `services[].preserve_host`.
pub const PRESERVE_HOST: bool = true;
/// `services[].upstream_tls.verify`.
pub const VERIFY: bool = true;
/// `services[].timeouts.connect`.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// `services[].timeouts.read`.
pub const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// `audit.access_log` and `audit.auth_log`.
pub const LOG: &str = "stdout";

/// `branding.title`.
pub fn title() -> Localized {
    Localized::PerLang {
        sv: Some("Inloggning".into()),
        en: Some("Sign in".into()),
    }
}
