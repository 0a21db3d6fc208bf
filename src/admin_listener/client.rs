//! `portvakt sessions list|revoke`: the admin listener's sessions API from
//! the command line, with the token derived from the configured secret key.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use super::{admin_token, Revoked, SessionInfo};
use crate::cli::SessionAction;
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
    let mut addr = cfg
        .admin_addr
        .ok_or_else(|| ClientError::AdminOff(path.display().to_string()))?;
    // A listener on every address is reached on loopback.
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::IpAddr::from([127, 0, 0, 1]));
    }
    let signer =
        Signer::from_file(&cfg.secret_key_file).map_err(|e| ClientError::Config(e.to_string()))?;
    let target = Target {
        base: format!("http://{addr}"),
        addr,
        token: admin_token(&signer),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ClientError::Runtime)?;
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
