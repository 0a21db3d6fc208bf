//! `portvakt sessions list|revoke` and `portvakt lockouts list|clear`: the
//! admin listener's APIs from the command line, with the token derived from
//! the configured secret key.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use super::{admin_token, Cleared, LockoutList, Revoked, SessionInfo};
use crate::cli::{LockoutAction, SessionAction};
use crate::signing::Signer;

/// Why a sessions command failed.
#[derive(Debug, thiserror::Error)]
enum ClientError {
    #[error("--config FILE is needed to find the admin listener and the secret key")]
    NoConfig,
    #[error("{0}")]
    Config(String),
    #[error("{0}: listen.admin is off, so the running gateway has no sessions API")]
    AdminOff(String),
    #[error(
        "cannot reach the gateway's admin listener at {addr}: {cause} (is the gateway running?)"
    )]
    Unreachable { addr: SocketAddr, cause: String },
    #[error("the admin listener answered {status}: {body}")]
    Refused { status: u16, body: String },
    #[error("no live session for {0}")]
    NotFound(String),
    #[error("nothing to clear for {0}: not locked, held or failing (`portvakt lockouts list` shows who is)")]
    NothingToClear(String),
    #[error("cannot start the client runtime: {0}")]
    Runtime(std::io::Error),
}

/// Run a sessions subcommand against the gateway configured in `config`;
/// `realm` is `--realm`.
pub fn run(config: Option<PathBuf>, realm: Option<String>, action: SessionAction) -> ExitCode {
    match run_inner(config, realm, action) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("portvakt sessions: {e}");
            ExitCode::FAILURE
        }
    }
}

struct Target {
    base: String,
    addr: SocketAddr,
    token: String,
}

fn run_inner(
    config: Option<PathBuf>,
    realm: Option<String>,
    action: SessionAction,
) -> Result<String, ClientError> {
    let path = config.ok_or(ClientError::NoConfig)?;
    let cfg = crate::config::load(&path).map_err(|e| ClientError::Config(e.to_string()))?;
    // Given: it must be configured. Not given: revoking by user name needs it
    // when there are several realms (the same name may be two people).
    let realm = match (&realm, &action) {
        (None, SessionAction::List { .. }) => None,
        (None, SessionAction::Revoke { id: true, .. }) => None,
        _ => match crate::admin::realm_for(&cfg, realm.as_deref()) {
            Ok(r) => Some(r),
            // A session id alone is unambiguous; only a user name needs the realm.
            Err(crate::admin::AdminError::RealmNeeded(_)) if matches!(&action, SessionAction::Revoke { who, .. } if looks_like_id(who)) => {
                None
            }
            Err(e) => return Err(ClientError::Config(e.to_string())),
        },
    };
    let target = target(&path, &cfg)?;
    let rt = client_runtime()?;
    rt.block_on(async {
        match action {
            SessionAction::List { json } => {
                let body = call(&target, reqwest::Method::GET, "/sessions").await?;
                let list: Vec<SessionInfo> =
                    serde_json::from_str(&body).map_err(|e| ClientError::Refused {
                        status: 200,
                        body: format!("unexpected answer: {e}"),
                    })?;
                let list: Vec<SessionInfo> = list
                    .into_iter()
                    .filter(|s| realm.as_ref().is_none_or(|r| &s.realm == r))
                    .collect();
                if json {
                    let mut body =
                        serde_json::to_string_pretty(&list).map_err(|e| ClientError::Refused {
                            status: 200,
                            body: format!("unexpected answer: {e}"),
                        })?;
                    body.push('\n');
                    return Ok(body);
                }
                Ok(table(&list))
            }
            SessionAction::Revoke { who, id } => {
                let looks_like_id = looks_like_id(&who);
                let enc =
                    |v: &str| form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
                let in_realm = realm
                    .as_deref()
                    .map_or_else(String::new, |r| format!("&realm={}", enc(r)));
                let by_id = format!(
                    "/sessions/revoke?id={}{in_realm}",
                    enc(&who.to_ascii_lowercase())
                );
                let by_user = format!("/sessions/revoke?user={}{in_realm}", enc(&who));
                let first = if id || looks_like_id {
                    &by_id
                } else {
                    &by_user
                };
                let body = match call(&target, reqwest::Method::POST, first).await {
                    Err(ClientError::NotFound(_)) if looks_like_id && !id && realm.is_some() => {
                        call(&target, reqwest::Method::POST, &by_user).await
                    }
                    other => other,
                }
                .map_err(|e| match e {
                    ClientError::NotFound(_) => ClientError::NotFound(who.clone()),
                    e => e,
                })?;
                let r: Revoked = serde_json::from_str(&body).map_err(|e| ClientError::Refused {
                    status: 200,
                    body: format!("unexpected answer: {e}"),
                })?;
                Ok(format!(
                    "revoked {} session{}: {}\n",
                    r.revoked.len(),
                    if r.revoked.len() == 1 { "" } else { "s" },
                    r.revoked.join(", ")
                ))
            }
        }
    })
}

/// Where the admin listener of the gateway configured in `cfg` (read
/// from `path`) is, and its token.
fn target(path: &std::path::Path, cfg: &crate::config::Config) -> Result<Target, ClientError> {
    let mut addr = cfg
        .admin_addr
        .ok_or_else(|| ClientError::AdminOff(path.display().to_string()))?;
    // A listener on every address is reached on loopback.
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::IpAddr::from([127, 0, 0, 1]));
    }
    let signer =
        Signer::from_file(&cfg.secret_key_file).map_err(|e| ClientError::Config(e.to_string()))?;
    Ok(Target {
        base: format!("http://{addr}"),
        addr,
        token: admin_token(&signer),
    })
}

fn client_runtime() -> Result<tokio::runtime::Runtime, ClientError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ClientError::Runtime)
}

/// Run a lockouts subcommand against the gateway configured in `config`;
/// `realm` is `--realm`.
pub fn lockouts(config: Option<PathBuf>, realm: Option<String>, action: LockoutAction) -> ExitCode {
    match lockouts_inner(config, realm, action) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("portvakt lockouts: {e}");
            ExitCode::FAILURE
        }
    }
}

fn lockouts_inner(
    config: Option<PathBuf>,
    realm: Option<String>,
    action: LockoutAction,
) -> Result<String, ClientError> {
    let path = config.ok_or(ClientError::NoConfig)?;
    let cfg = crate::config::load(&path).map_err(|e| ClientError::Config(e.to_string()))?;
    // A user is a realm and a name: clearing by name needs the realm when
    // there are several; a --realm given anyway must be configured.
    let realm = match (&realm, &action) {
        (None, LockoutAction::List { .. }) | (_, LockoutAction::Clear { user: None, .. }) => realm
            .as_deref()
            .map(|r| crate::admin::realm_for(&cfg, Some(r)))
            .transpose()
            .map_err(|e| ClientError::Config(e.to_string()))?,
        _ => Some(
            crate::admin::realm_for(&cfg, realm.as_deref())
                .map_err(|e| ClientError::Config(e.to_string()))?,
        ),
    };
    let target = target(&path, &cfg)?;
    let unexpected = |e: serde_json::Error| ClientError::Refused {
        status: 200,
        body: format!("unexpected answer: {e}"),
    };
    client_runtime()?.block_on(async {
        match action {
            LockoutAction::List { json } => {
                let body = call(&target, reqwest::Method::GET, "/lockouts").await?;
                let mut list: LockoutList = serde_json::from_str(&body).map_err(unexpected)?;
                if let Some(r) = &realm {
                    list.users.retain(|u| &u.realm == r);
                }
                if json {
                    let mut body = serde_json::to_string_pretty(&list).map_err(unexpected)?;
                    body.push('\n');
                    return Ok(body);
                }
                Ok(lockout_table(&list))
            }
            LockoutAction::Clear { user, ip } => {
                let enc =
                    |v: &str| form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
                let (query, who) = match (user, ip) {
                    (Some(u), _) => {
                        let r = realm.unwrap_or_default();
                        (
                            format!("/lockouts/clear?user={}&realm={}", enc(&u), enc(&r)),
                            format!("{u:?} in realm {r}"),
                        )
                    }
                    (None, Some(ip)) => (format!("/lockouts/clear?ip={ip}"), ip.to_string()),
                    (None, None) => {
                        return Err(ClientError::Config("give a USER or --ip ADDR".to_owned()))
                    }
                };
                let body =
                    call(&target, reqwest::Method::POST, &query)
                        .await
                        .map_err(|e| match e {
                            ClientError::NotFound(_) => ClientError::NothingToClear(who),
                            e => e,
                        })?;
                let c: Cleared = serde_json::from_str(&body).map_err(unexpected)?;
                Ok(format!("cleared {}\n", c.cleared))
            }
        }
    })
}

/// Lockouts as aligned tables.
fn lockout_table(list: &LockoutList) -> String {
    let until = |u: &Option<String>| u.clone().unwrap_or_else(|| "until cleared".to_owned());
    let users: Vec<Vec<String>> = list
        .users
        .iter()
        .map(|u| {
            vec![
                u.user.clone(),
                u.realm.clone(),
                until(&u.until),
                u.failures.to_string(),
            ]
        })
        .collect();
    let addresses: Vec<Vec<String>> = list
        .addresses
        .iter()
        .map(|a| vec![a.address.clone(), until(&a.until), a.failures.to_string()])
        .collect();
    let mut out = aligned(&["USER", "REALM", "LOCKED", "FAILURES"], &users);
    out.push_str(&format!(
        "{} user{} locked or held\n\n",
        users.len(),
        if users.len() == 1 { "" } else { "s" }
    ));
    out.push_str(&aligned(&["ADDRESS", "BLOCKED", "FAILURES"], &addresses));
    out.push_str(&format!(
        "{} address{} blocked\n",
        addresses.len(),
        if addresses.len() == 1 { "" } else { "es" }
    ));
    if list.overflow_slots > 0 {
        out.push_str(&format!(
            "{} shared overflow slot{} locked (the records were full; clearing a name clears its slot)\n",
            list.overflow_slots,
            if list.overflow_slots == 1 { "" } else { "s" }
        ));
    }
    out
}

/// `header` and `rows` in columns as wide as their widest cell.
fn aligned(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let parts: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(parts.join("  ").trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
    out
}

/// A short session id as `sessions list` shows it.
fn looks_like_id(who: &str) -> bool {
    who.len() == 12 && who.bytes().all(|b| b.is_ascii_hexdigit())
}

async fn call(t: &Target, method: reqwest::Method, path: &str) -> Result<String, ClientError> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .no_proxy()
        .build()
        .map_err(|e| ClientError::Unreachable {
            addr: t.addr,
            cause: e.to_string(),
        })?;
    let resp = client
        .request(method, format!("{}{path}", t.base))
        .bearer_auth(&t.token)
        .send()
        .await
        .map_err(|e| ClientError::Unreachable {
            addr: t.addr,
            cause: e.to_string(),
        })?;
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap_or_default();
    match status {
        200 => Ok(body),
        404 => Err(ClientError::NotFound(String::new())),
        _ => Err(ClientError::Refused {
            status,
            body: body.trim().to_owned(),
        }),
    }
}

/// Sessions as an aligned table.
fn table(list: &[SessionInfo]) -> String {
    let header = [
        "ID", "USER", "REALM", "IP", "NETWORK", "METHODS", "LEVEL", "IDLE", "SINCE",
    ];
    let rows: Vec<[String; 9]> = list
        .iter()
        .map(|s| {
            [
                s.id.clone(),
                s.user.clone(),
                s.realm.clone(),
                s.ip.to_string(),
                s.network.clone(),
                s.methods.join("+"),
                s.auth_level.to_string(),
                idle(s.idle_secs),
                s.created.clone(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let parts: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(parts.join("  ").trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for r in &rows {
        line(r.iter().map(String::as_str).collect());
    }
    out.push_str(&format!(
        "{} live session{}\n",
        list.len(),
        if list.len() == 1 { "" } else { "s" }
    ));
    out
}

/// `4m05s`-style idle time.
fn idle(secs: u64) -> String {
    if secs >= 3600 {
        format!("{}h{:02}m", secs / 3600, secs % 3600 / 60)
    } else {
        format!("{}m{:02}s", secs / 60, secs % 60)
    }
}
