//! `storage: postgres://user:password@host:port/db?sslmode=…`: the URL parsed
//! and checked once, at the config border.
//!
//! The URL is libpq's form. portvakt reads four parameters itself and hands
//! the rest to tokio-postgres (which refuses what it does not know):
//! - `sslmode`: `verify-full` (the default: TLS, certificate chain *and* host
//!   name checked) or `disable` (plain TCP, only to a loopback address or a
//!   Unix socket). libpq's `require`, `prefer`, `allow` and `verify-ca` are
//!   refused: each lets a machine in the middle read or change the seeds'
//!   ciphertext and the replay marks.
//! - `sslrootcert`: a PEM file of the CA(s) to trust instead of the system's
//!   roots (a private CA); relative to the config file's directory.
//! - `timeout`: seconds (or `3s`, `500ms`), default 3: the bound on connecting,
//!   on waiting for a pooled connection and on each store call as a whole.
//! - `pool_size`: connections per gateway, default 16.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Default bound on one store call (connect, pool wait, queries).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);
/// Default connections per gateway.
pub const DEFAULT_POOL_SIZE: usize = 16;

/// How the connection is protected.
#[derive(Clone, PartialEq, Eq)]
pub enum PgTls {
    /// Plain TCP or a Unix socket (`sslmode=disable`; loopback only).
    Disable,
    /// TLS with the chain and the host name verified (`sslmode=verify-full`).
    VerifyFull {
        /// Trust only the CAs in this PEM file; None: the system's roots.
        root_cert: Option<PathBuf>,
    },
}

/// A checked PostgreSQL storage URL. Debug and Display never show the password.
#[derive(Clone, PartialEq, Eq)]
pub struct PgSettings {
    /// The URL as written, password included: compared, never printed.
    url: String,
    /// The URL without portvakt's own parameters, for tokio-postgres.
    client_url: String,
    /// TLS or not.
    pub tls: PgTls,
    /// Bound on connecting and on each store call.
    pub timeout: Duration,
    /// Connections per gateway.
    pub pool_size: usize,
}

/// Why a storage URL was refused (the message never contains the password).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PgUrlError(pub String);

/// True for `postgres://` and `postgresql://` values of `storage:`.
pub fn is_postgres_url(s: &str) -> bool {
    let lower = s.trim_start().to_ascii_lowercase();
    lower.starts_with("postgres://") || lower.starts_with("postgresql://")
}

impl PgSettings {
    /// Parse and check `url`; relative `sslrootcert` paths are taken from `base`.
    pub fn parse(url: &str, base: &Path) -> Result<PgSettings, PgUrlError> {
        let err = |m: String| PgUrlError(m);
        let mut parsed =
            url::Url::parse(url.trim()).map_err(|e| err(format!("not a postgres:// URL: {e}")))?;
        if !matches!(parsed.scheme(), "postgres" | "postgresql") {
            return Err(err(
                "the URL must start with postgres:// or postgresql://".into()
            ));
        }
        let mut sslmode = None;
        let mut root_cert = None;
        let mut timeout = DEFAULT_TIMEOUT;
        let mut pool_size = DEFAULT_POOL_SIZE;
        let mut rest: Vec<(String, String)> = Vec::new();
        let mut hosts: Vec<String> = parsed.host_str().map(String::from).into_iter().collect();
        for (k, v) in parsed.query_pairs() {
            match k.as_ref() {
                "sslmode" => sslmode = Some(v.into_owned()),
                "sslrootcert" => root_cert = Some(resolve(base, &v)),
                "timeout" => timeout = parse_timeout(&v).ok_or_else(|| {
                    err(format!("timeout={v} is not a duration like 3, 3s or 500ms (0 < t ≤ 60 s)"))
                })?,
                "pool_size" => {
                    pool_size = v.parse().ok().filter(|n| (1..=1000).contains(n)).ok_or_else(
                        || err(format!("pool_size={v} is not a number from 1 to 1000")),
                    )?
                }
                "password" => {
                    return Err(err(
                        "put the password in the URL's user part (postgres://user:password@…), not in ?password=".into(),
                    ))
                }
                "sslcert" | "sslkey" | "sslpassword" | "sslcrl" => {
                    return Err(err(format!("{k} (client certificates) is not supported")))
                }
                other => {
                    if matches!(other, "host" | "hostaddr") {
                        // tokio-postgres adds these to the URL's host: every one must be local.
                        hosts.extend(v.split(',').map(String::from));
                    }
                    rest.push((k.into_owned(), v.into_owned()));
                }
            }
        }
        let host = hosts.join(",");
        let tls = match sslmode.as_deref().unwrap_or("verify-full") {
            "verify-full" => PgTls::VerifyFull { root_cert },
            "disable" => {
                if hosts.is_empty() || !hosts.iter().all(|h| is_local(h)) {
                    return Err(err(format!(
                        "sslmode=disable sends the enrolments and replay marks in clear text; it is \
                         allowed only to a loopback address or a Unix socket, not to {host:?}. Use \
                         sslmode=verify-full (with sslrootcert=FILE for a private CA)"
                    )));
                }
                if root_cert.is_some() {
                    return Err(err("sslrootcert needs sslmode=verify-full".into()));
                }
                PgTls::Disable
            }
            m @ ("require" | "prefer" | "allow" | "verify-ca") => {
                return Err(err(format!(
                    "sslmode={m} does not check that the server is the one named in the URL, so a \
                     machine in the middle could answer in its place; use sslmode=verify-full \
                     (with sslrootcert=FILE for a private CA), or sslmode=disable on loopback"
                )))
            }
            m => {
                return Err(err(format!(
                    "sslmode={m} is not one of verify-full, disable"
                )))
            }
        };
        if parsed.username().is_empty() {
            return Err(err("the URL names no user (postgres://USER@host/db)".into()));
        }
        if parsed.path().trim_start_matches('/').is_empty() {
            return Err(err(
                "the URL names no database (postgres://user@host/DB)".into()
            ));
        }
        if rest.is_empty() {
            parsed.set_query(None);
        } else {
            parsed.query_pairs_mut().clear().extend_pairs(&rest);
        }
        let client_url = parsed.to_string();
        // tokio-postgres has the last word on everything else (hosts, ports,
        // options, application_name …); its messages do not echo the password.
        client_url
            .parse::<tokio_postgres::Config>()
            .map_err(|e| err(format!("not a valid PostgreSQL URL: {e}")))?;
        Ok(PgSettings {
            url: url.trim().to_string(),
            client_url,
            tls,
            timeout,
            pool_size,
        })
    }

    /// The tokio-postgres configuration, with TLS as `tls` says and the
    /// connect timeout set.
    pub(crate) fn client_config(&self) -> tokio_postgres::Config {
        // Parsed successfully in `parse`; parsing is deterministic.
        let mut c: tokio_postgres::Config = self
            .client_url
            .parse()
            .unwrap_or_else(|_| tokio_postgres::Config::new());
        c.connect_timeout(self.timeout);
        c.ssl_mode(match self.tls {
            PgTls::Disable => tokio_postgres::config::SslMode::Disable,
            PgTls::VerifyFull { .. } => tokio_postgres::config::SslMode::Require,
        });
        if c.get_application_name().is_none() {
            c.application_name("portvakt");
        }
        c
    }

    /// The URL with the password replaced by `***`, for logs and messages.
    pub fn redacted(&self) -> String {
        redact(&self.url)
    }
}

impl std::fmt::Debug for PgSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PgSettings({})", self.redacted())
    }
}

impl std::fmt::Display for PgSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl std::fmt::Debug for PgTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PgTls::Disable => f.write_str("disable"),
            PgTls::VerifyFull { root_cert: None } => f.write_str("verify-full (system roots)"),
            PgTls::VerifyFull { root_cert: Some(p) } => {
                write!(f, "verify-full ({})", p.display())
            }
        }
    }
}

/// `url` with any password replaced by `***` (also for URLs that did not parse).
pub fn redact(url: &str) -> String {
    if let Ok(mut u) = url::Url::parse(url) {
        if u.password().is_some() {
            let _ = u.set_password(Some("***"));
        }
        return u.to_string();
    }
    // Unparseable: cut out whatever sits between "user:" and "@".
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            match userinfo.find(':') {
                Some(c) => format!("{}:***{}", &url[..s + 3 + c], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

fn resolve(base: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

fn parse_timeout(v: &str) -> Option<Duration> {
    let d = match v.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => humantime::parse_duration(v).ok()?,
    };
    (d > Duration::ZERO && d <= Duration::from_secs(60)).then_some(d)
}

/// Loopback addresses, `localhost` and Unix socket directories: where plain
/// text never crosses a network.
fn is_local(host: &str) -> bool {
    if host.starts_with('/') || host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(u: &str) -> Result<PgSettings, String> {
        PgSettings::parse(u, Path::new("/etc/portvakt")).map_err(|e| e.0)
    }

    #[test]
    fn the_password_never_shows() {
        let s = parse("postgres://gw:s3cr%40t@db.example:5433/portvakt?sslrootcert=ca.pem")
            .expect("valid");
        for shown in [format!("{s:?}"), s.to_string(), s.redacted()] {
            assert!(!shown.contains("s3cr"), "{shown}");
            assert!(shown.contains("gw:***@db.example:5433/portvakt"), "{shown}");
        }
        assert_eq!(
            s.tls,
            PgTls::VerifyFull {
                root_cert: Some(PathBuf::from("/etc/portvakt/ca.pem"))
            }
        );
        let c = s.client_config();
        assert_eq!(c.get_password(), Some(&b"s3cr@t"[..]));
        assert!(!format!("{c:?}").contains("s3cr"));
        assert_eq!(
            redact("postgres://u:pw@h/d?x=%"),
            "postgres://u:***@h/d?x=%"
        );
    }

    #[test]
    fn verification_is_the_default_and_weaker_modes_are_refused() {
        let s = parse("postgresql://gw@db.example/portvakt").expect("valid");
        assert_eq!(s.tls, PgTls::VerifyFull { root_cert: None });
        assert_eq!(
            (s.timeout, s.pool_size),
            (DEFAULT_TIMEOUT, DEFAULT_POOL_SIZE)
        );
        for m in ["require", "prefer", "allow", "verify-ca"] {
            let e = parse(&format!("postgres://gw@db.example/p?sslmode={m}")).unwrap_err();
            assert!(e.contains("verify-full"), "{m}: {e}");
        }
        for remote in [
            "postgres://gw@db.example/p?sslmode=disable",
            "postgres://gw@db.example/p?host=%2Ftmp&sslmode=disable",
            "postgres://gw@localhost/p?host=db.example&sslmode=disable",
        ] {
            let e = parse(remote).unwrap_err();
            assert!(e.contains("loopback"), "{remote}: {e}");
        }
        for local in ["127.0.0.1", "localhost", "[::1]"] {
            let s = parse(&format!("postgres://gw@{local}:5432/p?sslmode=disable")).expect(local);
            assert_eq!(s.tls, PgTls::Disable);
        }
        let s = parse("postgres://gw@localhost/p?host=%2Frun%2Fpostgresql&sslmode=disable")
            .expect("socket");
        assert_eq!(s.tls, PgTls::Disable);
    }

    #[test]
    fn own_parameters_are_checked_and_the_rest_goes_to_the_client() {
        let s = parse("postgres://gw@h/p?timeout=500ms&pool_size=4&application_name=gw1")
            .expect("valid");
        assert_eq!((s.timeout, s.pool_size), (Duration::from_millis(500), 4));
        let c = s.client_config();
        assert_eq!(c.get_application_name(), Some("gw1"));
        assert_eq!(c.get_connect_timeout(), Some(&Duration::from_millis(500)));
        for bad in [
            "postgres://gw@h/p?timeout=0",
            "postgres://gw@h/p?timeout=2h",
            "postgres://gw@h/p?pool_size=0",
            "postgres://gw@h/p?sslcert=c.pem",
            "postgres://gw@h/p?password=x",
            "postgres://gw@h/p?no_such_option=1",
            "postgres://h/p",
            "postgres://gw@h/",
            "mysql://gw@h/p",
        ] {
            assert!(parse(bad).is_err(), "{bad} accepted");
        }
        assert!(is_postgres_url("PostgreSQL://x") && !is_postgres_url("portvakt.db"));
    }
}
