//! The admin listener (loopback by default): `/healthz`, `/readyz` (503
//! from SIGTERM on, while draining),
//! `/metrics` for monitoring, the sessions API that
//! `portvakt sessions list|revoke` calls, and the lockouts API behind
//! `portvakt lockouts list|clear`.
//!
//! Health and metrics answer anyone who can reach the port (Prometheus
//! scrapers carry no secrets); `/readyz` tells them only which checks
//! failed, the reasons (backend error text, which can name hosts, paths and
//! accounts) go to the log and to callers with the admin token. The sessions API needs the admin token,
//! derived from the gateway's secret key ([`admin_token`]): whoever can read
//! the key can already forge sessions, so the CLI needs no other secret.

pub mod client;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use http::{Method, Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::gateway::Gateway;
use crate::session::SessionKey;
use crate::signing::{Purpose, Signer};
use crate::state::StateBackend;

/// How long `/readyz` waits for the store or a directory.
const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// The bearer token of the sessions API for the gateway keyed by `signer`.
pub fn admin_token(signer: &Signer) -> String {
    crate::signing::b64(&signer.mac(Purpose::AdminApi, b"sessions"))
}

/// One session as `GET /sessions` lists it (never the secret id).
#[derive(Debug, Serialize, Deserialize)]
pub struct SessionInfo {
    /// Short hash of the session id (what the logs show; what revoke takes).
    pub id: String,
    /// User name.
    pub user: String,
    /// Realm id.
    pub realm: String,
    /// Client address at login.
    pub ip: IpAddr,
    /// `internal` or `external` at login.
    pub network: String,
    /// How the user proved who they are.
    pub methods: Vec<String>,
    /// 1 or 2.
    pub auth_level: u8,
    /// Login time, RFC 3339.
    pub created: String,
    /// Last request, RFC 3339.
    pub last_seen: String,
    /// Seconds since the last request.
    pub idle_secs: u64,
}

/// What `POST /sessions/revoke` did.
#[derive(Debug, Serialize, Deserialize)]
pub struct Revoked {
    /// The sessions ended (short ids).
    pub revoked: Vec<String>,
}

/// A locked or held user as `GET /lockouts` lists it.
#[derive(Debug, Serialize, Deserialize)]
pub struct LockedUser {
    /// User name, folded as logins fold it (`ALICE` is listed as `alice`).
    pub user: String,
    /// Realm id.
    pub realm: String,
    /// Locked until (RFC 3339); `None`: held until an administrator clears it.
    pub until: Option<String>,
    /// Consecutive failures in the current run.
    pub failures: u32,
}

/// A blocked address bucket as `GET /lockouts` lists it.
#[derive(Debug, Serialize, Deserialize)]
pub struct BlockedAddress {
    /// An IPv4 address or an IPv6 /64.
    pub address: String,
    /// Blocked until (RFC 3339).
    pub until: Option<String>,
    /// Consecutive failures from it.
    pub failures: u32,
}

/// What `GET /lockouts` answers.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct LockoutList {
    /// Locked and held users.
    pub users: Vec<LockedUser>,
    /// Blocked address buckets.
    pub addresses: Vec<BlockedAddress>,
    /// Shared overflow slots locked (only when a map was full of locked
    /// records; clearing a name clears its slot too).
    pub overflow_slots: usize,
}

/// What `POST /lockouts/clear` did.
#[derive(Debug, Serialize, Deserialize)]
pub struct Cleared {
    /// The user (realm and folded name) or address bucket cleared.
    pub cleared: String,
}

/// The pingora app behind the admin listener.
pub struct AdminApp {
    gw: Arc<Gateway>,
}

impl AdminApp {
    /// Serve `gw`'s health, metrics and sessions.
    pub fn new(gw: Arc<Gateway>) -> AdminApp {
        AdminApp { gw }
    }
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let req = session.req_header();
        let method = req.method.clone();
        let path = req.uri.path().to_owned();
        let query = req.uri.query().unwrap_or("").to_owned();
        let peer = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip())
            .unwrap_or(IpAddr::from([127, 0, 0, 1]));
        let authorised = self.authorised(
            req.headers
                .get(http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok()),
        );
        match (method, path.as_str()) {
            (Method::GET | Method::HEAD, "/healthz") => text(StatusCode::OK, "ok\n"),
            (Method::GET | Method::HEAD, "/readyz") => self.ready(authorised).await,
            (Method::GET | Method::HEAD, "/metrics") => {
                // -1: unknown (the shared state did not answer).
                let n = self.gw.sessions.len().await.map_or(-1, |n| n as i64);
                reply(
                    StatusCode::OK,
                    "text/plain; version=0.0.4; charset=utf-8",
                    self.gw.metrics.render(n).into_bytes(),
                )
            }
            (_, "/sessions") | (_, "/sessions/revoke") if !authorised => text(
                StatusCode::UNAUTHORIZED,
                "the sessions API needs `Authorization: Bearer <admin token>` (portvakt sessions … does this)\n",
            ),
            (_, "/lockouts") | (_, "/lockouts/clear") if !authorised => text(
                StatusCode::UNAUTHORIZED,
                "the lockouts API needs `Authorization: Bearer <admin token>` (portvakt lockouts … does this)\n",
            ),
            (Method::GET, "/lockouts") => json(StatusCode::OK, &self.lockouts()),
            (Method::POST, "/lockouts/clear") => self.clear_lockout(&query, peer),
            (_, "/lockouts" | "/lockouts/clear") => {
                text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n")
            }
            (Method::GET, "/sessions") => match self.list().await {
                Ok(list) => json(StatusCode::OK, &list),
                Err(e) => state_down(&e),
            },
            (Method::POST, "/sessions/revoke") => self.revoke(&query, peer).await,
            (_, "/healthz" | "/readyz" | "/metrics" | "/sessions" | "/sessions/revoke") => {
                text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n")
            }
            _ => text(
                StatusCode::NOT_FOUND,
                "not found: /healthz, /readyz, /metrics, /sessions, /sessions/revoke, /lockouts, /lockouts/clear\n",
            ),
        }
    }
}

impl AdminApp {
    fn authorised(&self, header: Option<&str>) -> bool {
        let Some(token) = header.and_then(|h| h.strip_prefix("Bearer ")) else {
            return false;
        };
        let want = admin_token(&self.gw.runtime().signer);
        want.len() == token.len() && bool::from(want.as_bytes().ct_eq(token.as_bytes()))
    }

    /// Ready when the configuration is loaded and the store and every
    /// realm's directory answer. `detail`: show why a check failed (the
    /// admin token was sent); otherwise each check is only `ok` or `failed`.
    async fn ready(&self, detail: bool) -> Response<Vec<u8>> {
        // From SIGTERM on: a balancer must move traffic away before the
        // process is gone (the HTTPS listener is already closed).
        if self.gw.metrics.phase() == crate::metrics::Phase::Draining {
            return json(
                StatusCode::SERVICE_UNAVAILABLE,
                &serde_json::json!({
                    "ready": false,
                    "draining": true,
                    "in_flight": self.gw.metrics.in_flight(),
                }),
            );
        }
        let rt = self.gw.runtime();
        let mut checks = BTreeMap::new();
        checks.insert("config".to_owned(), "ok".to_owned());
        let storage = tokio::time::timeout(CHECK_TIMEOUT, self.gw.store.ping()).await;
        checks.insert(
            "storage".to_owned(),
            match storage {
                Ok(Ok(())) => "ok".to_owned(),
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("no answer within {CHECK_TIMEOUT:?}"),
            },
        );
        // The state backend bounds its own commands by `state_timeout`.
        let state = self.gw.state.ping().await;
        self.gw
            .state
            .health
            .observe(crate::state::health::Backend::State, &state);
        checks.insert(
            format!("state:{}", self.gw.state.kind()),
            match state {
                Ok(()) => "ok".to_owned(),
                Err(e) => e.to_string(),
            },
        );
        for (realm, dir) in &rt.directories {
            let r = tokio::time::timeout(CHECK_TIMEOUT, dir.health()).await;
            checks.insert(
                format!("directory:{realm}"),
                match r {
                    Ok(Ok(())) => "ok".to_owned(),
                    Ok(Err(e)) => e.to_string(),
                    Err(_) => format!("no answer within {CHECK_TIMEOUT:?}"),
                },
            );
        }
        let ready = checks.values().all(|v| v == "ok");
        if !ready {
            tracing::warn!(?checks, "not ready");
        }
        let status = if ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        let checks = if detail { checks } else { redacted(checks) };
        json(
            status,
            &serde_json::json!({ "ready": ready, "checks": checks }),
        )
    }

    async fn list(&self) -> Result<Vec<SessionInfo>, crate::state::StateError> {
        let rt = self.gw.runtime();
        let now = self.gw.clock.now_ms();
        let (idle_ms, lifetime_ms) = (
            rt.config.idle_timeout.as_millis() as u64,
            rt.config.max_lifetime.as_millis() as u64,
        );
        let all = self.gw.sessions.list().await?;
        let mut list: Vec<SessionInfo> = all
            .into_iter()
            // Sessions already past their idle time or lifetime wait for the
            // sweeper; an operator should not see them as live.
            .filter(|(_, s)| s.expired(now, idle_ms, lifetime_ms).is_none())
            .map(|(key, s)| {
                let last = s.last_seen_ms();
                SessionInfo {
                    id: key.short(),
                    user: s.user.clone(),
                    realm: s.realm.clone(),
                    ip: s.ip_at_login,
                    network: crate::audit::auth::network(s.internal_at_login).to_owned(),
                    methods: s.methods.iter().map(|m| m.as_str().to_owned()).collect(),
                    auth_level: s.auth_level,
                    created: crate::audit::timestamp(s.created_ms),
                    last_seen: crate::audit::timestamp(last),
                    idle_secs: now.saturating_sub(last) / 1000,
                }
            })
            .collect();
        list.sort_by(|a, b| (&a.user, &a.created).cmp(&(&b.user, &b.created)));
        Ok(list)
    }

    /// `POST /sessions/revoke?user=NAME[&realm=ID]` or `?id=SHORTID[&realm=ID]`.
    /// A user is (realm, name): `realm` may be left out only when the
    /// configuration has one realm, so revoking one realm's `anna` never ends
    /// the other's sessions.
    async fn revoke(&self, query: &str, peer: IpAddr) -> Response<Vec<u8>> {
        let mut user = None;
        let mut id = None;
        let mut realm = None;
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            match k.as_ref() {
                "user" if !v.is_empty() => user = Some(v.into_owned()),
                "id" if !v.is_empty() => id = Some(v.into_owned()),
                "realm" if !v.is_empty() => realm = Some(v.into_owned()),
                _ => {}
            }
        }
        if user.is_some() == id.is_some() {
            return text(
                StatusCode::BAD_REQUEST,
                "give exactly one of ?user=NAME or ?id=SESSION (the short id `sessions list` shows)\n",
            );
        }
        let realm = {
            let rt = self.gw.runtime();
            let ids: Vec<&str> = rt.config.realms.iter().map(|r| r.id.as_str()).collect();
            match (&realm, ids.as_slice()) {
                (Some(r), _) if !ids.contains(&r.as_str()) => {
                    return text(
                        StatusCode::BAD_REQUEST,
                        &format!("no realm {r:?}; the realms are {}\n", ids.join(", ")),
                    );
                }
                (Some(r), _) => Some(r.clone()),
                (None, [only]) if user.is_some() => Some((*only).to_owned()),
                (None, _) if user.is_some() => {
                    return text(
                        StatusCode::BAD_REQUEST,
                        &format!(
                            "several realms ({}): give &realm=ID with ?user=NAME\n",
                            ids.join(", ")
                        ),
                    );
                }
                (None, _) => None,
            }
        };
        let all = match self.gw.sessions.list().await {
            Ok(all) => all,
            Err(e) => return state_down(&e),
        };
        let matching: Vec<(SessionKey, Arc<crate::session::Session>)> = all
            .into_iter()
            .filter(|(k, s)| {
                let in_realm = realm.as_ref().is_none_or(|r| &s.realm == r);
                in_realm
                    && match (&user, &id) {
                        (Some(u), _) => &s.user == u,
                        (_, Some(i)) => k.short() == *i,
                        _ => false,
                    }
            })
            .collect();
        let rt = self.gw.runtime();
        let mut revoked = Vec::new();
        for (key, _) in matching {
            if let Ok(Some(s)) = self.gw.sessions.remove(&key).await {
                let mut ev = self.gw.event(
                    crate::audit::Event::SessionRevoked,
                    crate::audit::Outcome::Success,
                    crate::audit::Reason::Admin,
                    Some(&s.user),
                    Some(&s.realm),
                    peer,
                    true,
                    "",
                );
                ev.method = Some("admin_api");
                ev.session = Some(key.short());
                self.gw.audit(&rt, ev);
                revoked.push(key.short());
            }
        }
        if revoked.is_empty() {
            return text(StatusCode::NOT_FOUND, "no such live session\n");
        }
        json(StatusCode::OK, &Revoked { revoked })
    }
}

impl AdminApp {
    fn lockouts(&self) -> LockoutList {
        let rt = self.gw.runtime();
        let l = rt.regulator.lockouts(self.gw.clock.now_ms());
        let until = |ms: Option<u64>| ms.map(crate::audit::timestamp);
        LockoutList {
            users: l
                .users
                .into_iter()
                .map(|u| LockedUser {
                    user: u.key.name().to_owned(),
                    realm: u.key.realm().to_owned(),
                    until: until(u.until_ms),
                    failures: u.consecutive,
                })
                .collect(),
            addresses: l
                .addresses
                .into_iter()
                .map(|a| BlockedAddress {
                    address: a.key.to_string(),
                    until: until(a.until_ms),
                    failures: a.consecutive,
                })
                .collect(),
            overflow_slots: l.overflow_slots,
        }
    }

    /// `POST /lockouts/clear?user=NAME[&realm=ID]` or `?ip=ADDR`. The name
    /// is folded as a login folds it; `realm` may be left out only with one
    /// realm configured (one realm's `anna` is not the other's). Audited as
    /// `admin`/`lockout_cleared`; nothing to clear is a 404, not a success.
    fn clear_lockout(&self, query: &str, peer: IpAddr) -> Response<Vec<u8>> {
        let (mut user, mut realm, mut ip) = (None, None, None);
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            match k.as_ref() {
                "user" if !v.is_empty() => user = Some(v.into_owned()),
                "realm" if !v.is_empty() => realm = Some(v.into_owned()),
                "ip" if !v.is_empty() => ip = Some(v.into_owned()),
                _ => {}
            }
        }
        let rt = self.gw.runtime();
        let now = self.gw.clock.now_ms();
        let (cleared, user_name, realm_id, client_ip, internal) = match (user, ip) {
            (Some(name), None) => {
                let realm = match crate::admin::realm_for(&rt.config, realm.as_deref()) {
                    Ok(r) => r,
                    Err(e) => return text(StatusCode::BAD_REQUEST, &format!("{e}\n")),
                };
                let key = crate::regulation::UserKey::new(&realm, &name);
                if !rt.regulator.clear_user(&key, now) {
                    return text(
                        StatusCode::NOT_FOUND,
                        &format!("no lockout or failures recorded for {name:?} in realm {realm}\n"),
                    );
                }
                let shown = format!("{} ({realm})", key.name());
                (shown, Some(key.name().to_owned()), Some(realm), peer, true)
            }
            (None, Some(addr)) if realm.is_none() => {
                let Ok(addr) = addr.parse::<IpAddr>() else {
                    return text(
                        StatusCode::BAD_REQUEST,
                        &format!("{addr:?} is not an IP address\n"),
                    );
                };
                let bucket = crate::regulation::IpBucket::from(addr);
                if !rt.regulator.clear_ip(addr, now) {
                    return text(
                        StatusCode::NOT_FOUND,
                        &format!("no block or failures recorded for {bucket}\n"),
                    );
                }
                // The event names the address it cleared, as the ip_block
                // event did, so `portvakt audit --ip` finds both.
                let internal = rt.config.realms.iter().any(|r| r.is_internal(addr));
                (bucket.to_string(), None, None, addr, internal)
            }
            _ => {
                return text(
                    StatusCode::BAD_REQUEST,
                    "give ?user=NAME (and &realm=ID with several realms) or ?ip=ADDR\n",
                )
            }
        };
        let mut ev = self.gw.event(
            crate::audit::Event::Admin,
            crate::audit::Outcome::Success,
            crate::audit::Reason::LockoutCleared,
            user_name.as_deref(),
            realm_id.as_deref(),
            client_ip,
            internal,
            "",
        );
        ev.method = Some("admin_api");
        self.gw.audit(&rt, ev);
        json(StatusCode::OK, &Cleared { cleared })
    }
}

/// The checks as anyone may see them: name and `ok` or `failed`.
fn redacted(checks: BTreeMap<String, String>) -> BTreeMap<String, String> {
    checks
        .into_iter()
        .map(|(name, v)| {
            let v = if v == "ok" { v } else { "failed".to_owned() };
            (name, v)
        })
        .collect()
}

fn reply(status: StatusCode, content_type: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, content_type)
        .header(http::header::CONTENT_LENGTH, body.len())
        .header(http::header::CACHE_CONTROL, "no-store")
        .body(body)
        .unwrap_or_default()
}

fn text(status: StatusCode, body: &str) -> Response<Vec<u8>> {
    reply(
        status,
        "text/plain; charset=utf-8",
        body.as_bytes().to_vec(),
    )
}

/// 503 when the shared state did not answer (sessions live there).
fn state_down(e: &crate::state::StateError) -> Response<Vec<u8>> {
    text(
        StatusCode::SERVICE_UNAVAILABLE,
        &format!("the shared state did not answer: {e}\n"),
    )
}

fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<Vec<u8>> {
    match serde_json::to_vec_pretty(value) {
        Ok(mut body) => {
            body.push(b'\n');
            reply(status, "application/json", body)
        }
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, &format!("{e}\n")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_without_the_token_names_checks_but_not_errors() {
        let mut checks = BTreeMap::new();
        checks.insert("config".to_owned(), "ok".to_owned());
        checks.insert(
            "directory:staff".to_owned(),
            "bind as cn=svc,dc=kommun,dc=se failed at ldaps://10.1.2.3".to_owned(),
        );
        let shown = redacted(checks);
        assert_eq!(shown["config"], "ok");
        assert_eq!(shown["directory:staff"], "failed");
    }
}
