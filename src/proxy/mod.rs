//! The proxy: pingora's `ProxyHttp` phases and which module acts in each.
//!
//! ```text
//!  request ──▶ request_filter ─────────────────────────────────────────────┐
//!              │ net::client_ip         who is the client (trusted proxies) │
//!              │ routing::Router        host + longest prefix → service     │
//!              │ pages::handle          /.portvakt/… and the portal host ───┼─▶ our reply, stop
//!              │ session lookup         cookie → store (idle/lifetime)      │
//!              │ basic                  Basic credentials (internal only)   │
//!              │ policy::decide         allow │ login │ step-up │ deny ─────┼─▶ redirect/page, stop
//!              ▼                                                           │
//!          upstream_peer               the service's prebuilt HttpPeer     │
//!          upstream_request_filter     identity::prepare (strip, add, XFF) │
//!          response_filter             HSTS; upstream may not set our cookies
//!          fail_to_proxy               branded 502/504 page
//!          logging                     one access-log line (audit::access)
//! ```

mod answer;
mod ctx;
pub mod identity;
mod respond;

use std::net::IpAddr;
use std::sync::Arc;

use async_trait::async_trait;
use http::header;
use pingora::http::ResponseHeader;
use pingora::prelude::HttpPeer;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::{Error, ErrorSource, ErrorType};

pub use ctx::Ctx;

use crate::audit::AccessRecord;
use crate::basic::{self, BasicCache};
use crate::config::model::Service;
use crate::directory::Verdict;
use crate::gateway::{Gateway, Runtime};
use crate::pages::{self, Reply, Req, SessionState, MAX_FORM_BYTES};
use crate::policy::{decide_at, Conditions, Policy};
use crate::routing::{normalise_host, Route};
use crate::session::cookie;
use crate::session::{Method, NewSession, Session as UserSession, SessionId};

/// The pingora service implementation.
#[derive(Debug, Clone)]
pub struct Proxy {
    /// Shared gateway state.
    pub gw: Arc<Gateway>,
}

/// How often the idle clock of a session is written back (coalescing).
const TOUCH_GRANULARITY_MS: u64 = 5_000;

#[async_trait]
impl ProxyHttp for Proxy {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx::new()
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> pingora::Result<bool> {
        let rt = self.gw.runtime();
        ctx.rt = Some(rt.clone());
        ctx.request_id = self.gw.ids.next();
        self.identify_client(session, ctx, &rt);

        let path = session.req_header().uri.path();
        if path.starts_with(pages::PREFIX) {
            return self.serve_page(session, ctx, &rt).await;
        }
        let route = rt.router.route(&ctx.host, path);
        let service = match route {
            Route::Service(s) => s,
            Route::Portal => return self.serve_page(session, ctx, &rt).await,
            Route::Unknown => {
                let reply = self.message(
                    session,
                    ctx,
                    &rt,
                    404,
                    "not_found_heading",
                    "not_found_text",
                );
                ctx.reason = "unknown_host";
                return self
                    .reply(session, ctx, &rt, reply.decision("not_found"))
                    .await;
            }
        };
        ctx.service = Some(service.clone());
        let realm = rt.realm_for(&service.realms).clone();
        ctx.internal = realm.is_internal(ctx.client_ip);

        let state = if service.policy == Policy::Bypass {
            SessionState::None
        } else {
            self.session_state(session, &rt).await
        };
        let mut identity = state.session().cloned();
        if let Some(s) = &identity {
            // The session's own realm decides what "internal" means for it.
            if s.realm != realm.id {
                ctx.internal = rt
                    .config
                    .realm(&s.realm)
                    .is_some_and(|r| r.is_internal(ctx.client_ip));
            }
        }
        if identity.is_none() && service.basic_auth && ctx.internal {
            match self.basic_identity(session, ctx, &rt, &service).await {
                BasicOutcome::Identity(s) => {
                    ctx.used_basic = true;
                    identity = Some(s);
                }
                BasicOutcome::Refused => {
                    let reply = self.basic_challenge(session, ctx, &rt);
                    ctx.reason = "basic_refused";
                    return self.reply(session, ctx, &rt, reply).await;
                }
                BasicOutcome::Absent => {}
            }
        }

        let conditions = Conditions {
            internal: ctx.internal,
            client_ip: Some(ctx.client_ip),
            // Only services with opening hours pay for reading the clock.
            now: service.hours.as_ref().map(|_| jiff::Timestamp::now()),
        };
        let decision = decide_at(&service, &conditions, identity.as_deref());
        ctx.decision = decision.as_str();
        ctx.reason = decision.reason();
        self.answer(session, ctx, &rt, &service, &state, identity, decision)
            .await
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut Ctx,
    ) -> pingora::Result<Box<HttpPeer>> {
        let (Some(rt), Some(service)) = (&ctx.rt, &ctx.service) else {
            return Err(Error::explain(
                ErrorType::InternalError,
                "no service routed",
            ));
        };
        rt.peers
            .get(service.index)
            .cloned()
            .ok_or_else(|| Error::explain(ErrorType::InternalError, "no peer for service"))
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream_request: &mut pingora::http::RequestHeader,
        ctx: &mut Ctx,
    ) -> pingora::Result<()> {
        let Some(service) = ctx.service.clone() else {
            return Err(Error::explain(
                ErrorType::InternalError,
                "no service routed",
            ));
        };
        identity::prepare(upstream_request, ctx, &service)
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> pingora::Result<()> {
        ctx.upstream_status = Some(resp.status.as_u16());
        if let Some(rt) = &ctx.rt {
            resp.insert_header(header::STRICT_TRANSPORT_SECURITY, rt.hsts.clone())?;
        }
        // An upstream must not be able to plant or overwrite our cookies.
        if resp
            .headers
            .get_all(header::SET_COOKIE)
            .iter()
            .any(|v| v.as_bytes().starts_with(b"__Host-portvakt"))
        {
            let kept: Vec<_> = resp
                .headers
                .get_all(header::SET_COOKIE)
                .iter()
                .filter(|v| !v.as_bytes().starts_with(b"__Host-portvakt"))
                .cloned()
                .collect();
            resp.remove_header(&header::SET_COOKIE);
            for v in kept {
                resp.append_header(header::SET_COOKIE, v)?;
            }
        }
        Ok(())
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
        let code = match e.etype() {
            ErrorType::HTTPStatus(code) => *code,
            ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout
                if e.esource() == &ErrorSource::Upstream =>
            {
                504
            }
            _ => match e.esource() {
                ErrorSource::Upstream => 502,
                ErrorSource::Downstream => match e.etype() {
                    ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed => 0,
                    _ => 400,
                },
                ErrorSource::Internal | ErrorSource::Unset => 500,
            },
        };
        ctx.decision = "error";
        if code > 0 && session.response_written().is_none() {
            let (h, t) = match code {
                502 | 504 => ("bad_gateway_heading", "bad_gateway_text"),
                400 => ("bad_request_heading", "bad_request_text"),
                _ => ("unavailable_heading", "unavailable_text"),
            };
            let written = match ctx.rt.clone() {
                Some(rt) => {
                    let reply = self.message(session, ctx, &rt, code, h, t);
                    respond::write(session, &rt, reply).await
                }
                None => {
                    session
                        .respond_error_with_body(code, respond::plain(code))
                        .await
                }
            };
            if let Err(err) = written {
                tracing::debug!(error = %err, "could not send error page");
            }
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Ctx) {
        let Some(rt) = ctx.rt.clone() else { return };
        let req = session.req_header();
        let status = session
            .response_written()
            .map(|r| r.status.as_u16())
            .unwrap_or(0);
        if ctx.decision == "error" && e.is_none() && ctx.upstream_status.is_some() {
            ctx.decision = "allow";
        }
        let tls_version = session
            .digest()
            .and_then(|d| d.ssl_digest.as_ref())
            .map(|d| d.version.to_string());
        let session_ref = ctx.session.as_deref();
        let record = AccessRecord {
            time: crate::audit::timestamp(self.gw.clock.now_ms()),
            request_id: &ctx.request_id,
            client_ip: ctx.client_ip.to_string(),
            peer_ip: ctx.peer_ip.to_string(),
            network: crate::audit::auth::network(ctx.internal),
            host: &ctx.host,
            method: req.method.as_str(),
            path: req.uri.path(),
            status,
            bytes: session.body_bytes_sent(),
            duration_ms: (ctx.start.elapsed().as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0,
            service: ctx.service.as_ref().map(|s| s.name.as_str()),
            upstream: ctx
                .upstream_status
                .and(ctx.service.as_ref().map(|s| s.upstream.address.as_str())),
            upstream_status: ctx.upstream_status,
            user: session_ref.map(|s| s.user.as_str()),
            realm: session_ref.map(|s| s.realm.as_str()),
            auth_level: session_ref.map(|s| s.auth_level),
            decision: ctx.decision,
            reason: ctx.reason,
            tls_version: tls_version.as_deref(),
            http_version: http_version(req.version),
            user_agent: req
                .headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok()),
            error: e.map(|e| e.to_string()),
        };
        match serde_json::to_string(&record) {
            Ok(line) => rt.access_log.write(line),
            Err(err) => tracing::error!(error = %err, "cannot serialise access record"),
        }
    }
}

enum BasicOutcome {
    Identity(Arc<UserSession>),
    Refused,
    Absent,
}

impl Proxy {
    /// Client address, host and port, from the connection and headers.
    fn identify_client(&self, session: &Session, ctx: &mut Ctx, rt: &Runtime) {
        let peer = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| crate::net::canonical(a.ip()))
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
        ctx.peer_ip = peer;
        ctx.peer_trusted = crate::net::in_networks(&rt.config.trusted_proxies, peer);
        let xff = session
            .req_header()
            .headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok());
        ctx.client_ip = crate::net::client_ip(peer, xff, &rt.config.trusted_proxies);
        let req = session.req_header();
        let raw_host = req
            .uri
            .authority()
            .map(|a| a.as_str())
            .or_else(|| req.headers.get(header::HOST).and_then(|v| v.to_str().ok()))
            .unwrap_or("");
        ctx.host = normalise_host(raw_host);
        ctx.port_suffix = match raw_host.rsplit_once(':') {
            Some((_, port))
                if port != "443"
                    && port.bytes().all(|b| b.is_ascii_digit())
                    && !port.is_empty() =>
            {
                format!(":{port}")
            }
            _ => String::new(),
        };
    }

    /// The session named by the cookie, checking expiry and refreshing the idle clock.
    async fn session_state(&self, session: &Session, rt: &Runtime) -> SessionState {
        let Some(id) = session
            .req_header()
            .headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|c| cookie::find(c, cookie::SESSION))
            .and_then(SessionId::from_cookie)
        else {
            return SessionState::None;
        };
        let key = id.key();
        let Some(s) = self.gw.sessions.get(&key).await else {
            return SessionState::Ended;
        };
        let now = self.gw.clock.now_ms();
        let cfg = &rt.config;
        if let Some(why) = s.expired(
            now,
            cfg.idle_timeout.as_millis() as u64,
            cfg.max_lifetime.as_millis() as u64,
        ) {
            self.gw.sessions.remove(&key).await;
            let internal = cfg
                .realm(&s.realm)
                .is_some_and(|r| r.is_internal(s.ip_at_login));
            let reason = match why {
                crate::session::Expiry::Idle => "idle",
                crate::session::Expiry::Lifetime => "lifetime",
            };
            let mut ev = self.gw.event(
                "expired",
                "info",
                reason,
                Some(&s.user),
                Some(&s.realm),
                s.ip_at_login,
                internal,
                "",
            );
            ev.session = Some(key.short());
            self.gw.audit(rt, ev);
            return SessionState::Ended;
        }
        if s.touch(
            now,
            TOUCH_GRANULARITY_MS.min(cfg.idle_timeout.as_millis() as u64 / 4),
        ) {
            self.gw.sessions.touched(&key, &s).await;
        }
        SessionState::Valid(id, s)
    }

    /// Identity from `Authorization: Basic` (internal clients, services that allow it).
    async fn basic_identity(
        &self,
        session: &Session,
        ctx: &Ctx,
        rt: &Runtime,
        service: &Service,
    ) -> BasicOutcome {
        let Some(creds) = session
            .req_header()
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| basic::parse(v.as_bytes()))
        else {
            return BasicOutcome::Absent;
        };
        let realm = rt.realm_for(&service.realms).clone();
        let now = self.gw.clock.now_ms();
        let key = BasicCache::key(&rt.signer, &realm.id, &creds);
        if let Some(s) = rt.basic_cache.get(&key, now) {
            return BasicOutcome::Identity(s);
        }
        let Some(directory) = rt.directories.get(&realm.id) else {
            return BasicOutcome::Refused;
        };
        let blocked = rt.regulator.check(&creds.user, ctx.client_ip, now);
        let verdict = directory.check(&creds.user, &creds.password).await;
        let audit = |result: &str, reason: &str| {
            let mut ev = self.gw.event(
                "login",
                result,
                reason,
                Some(&creds.user),
                Some(&realm.id),
                ctx.client_ip,
                ctx.internal,
                &ctx.request_id,
            );
            ev.method = Some("basic");
            ev.host = Some(&ctx.host);
            self.gw.audit(rt, ev);
        };
        match (blocked, verdict) {
            (Some(block), _) => {
                audit("failure", block.reason());
                BasicOutcome::Refused
            }
            (None, Ok(Verdict::Valid(user))) => {
                rt.regulator.succeeded(&user.username);
                audit("success", "ok");
                let s = Arc::new(UserSession::new(
                    NewSession {
                        user: user.username,
                        realm: realm.id.clone(),
                        groups: user.groups,
                        email: user.email,
                        display_name: user.display_name,
                        auth_level: 1,
                        methods: vec![Method::Password],
                        internal: true,
                        ip: ctx.client_ip,
                    },
                    now,
                ));
                rt.basic_cache.put(key, s.clone(), now);
                BasicOutcome::Identity(s)
            }
            (None, Ok(other)) => {
                rt.regulator.failed(&creds.user, ctx.client_ip, now);
                audit("failure", other.reason());
                BasicOutcome::Refused
            }
            (None, Err(e)) => {
                tracing::error!(error = %e, "directory failed during Basic authentication");
                audit("failure", "directory_unavailable");
                BasicOutcome::Refused
            }
        }
    }

    /// The absolute URL of this request, to come back to after a login.
    fn here(&self, session: &Session, ctx: &Ctx) -> String {
        let pq = session
            .req_header()
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        format!("https://{}{}{}", ctx.host, ctx.port_suffix, pq)
    }

    fn basic_challenge(&self, session: &Session, ctx: &Ctx, rt: &Runtime) -> Reply {
        let lang = rt.pages.lang(accept_language(session));
        let realm = rt.pages.t(lang, "basic_realm").replace(['"', '\\'], "");
        pages::message_with(
            rt,
            lang,
            &ctx.request_id,
            401,
            "forbidden_heading",
            "forbidden_text",
            None,
        )
        .header(
            header::WWW_AUTHENTICATE,
            &format!("Basic realm=\"{realm}\", charset=\"UTF-8\""),
        )
        .decision("login")
    }

    /// Serve one of our pages (any host's `/.portvakt/…`, or the portal host).
    async fn serve_page(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        rt: &Arc<Runtime>,
    ) -> pingora::Result<bool> {
        ctx.decision = "page";
        let state = self.session_state(session, rt).await;
        if let Some(s) = state.session() {
            ctx.internal = rt
                .config
                .realm(&s.realm)
                .is_some_and(|r| r.is_internal(ctx.client_ip));
            ctx.session = Some(s.clone());
        } else {
            ctx.internal = rt.config.realms[0].is_internal(ctx.client_ip);
        }
        let form = if session.req_header().method == http::Method::POST {
            match read_form(session).await {
                Ok(form) => form,
                Err(status) => {
                    let (h, t) = if status == 413 {
                        ("too_large_heading", "too_large_text")
                    } else {
                        ("bad_request_heading", "bad_request_text")
                    };
                    let reply = self.message(session, ctx, rt, status, h, t);
                    ctx.reason = "bad_form";
                    return self.reply(session, ctx, rt, reply).await;
                }
            }
        } else {
            Vec::new()
        };
        let req_header = session.req_header();
        let cookie_header = req_header
            .headers
            .get(header::COOKIE)
            .and_then(|v| v.to_str().ok());
        let req = Req {
            method: &req_header.method,
            host: &ctx.host,
            port_suffix: &ctx.port_suffix,
            path: req_header.uri.path(),
            query: req_header.uri.query(),
            cookie: cookie_header,
            lang: rt.pages.lang(accept_language(session)),
            client_ip: ctx.client_ip,
            request_id: &ctx.request_id,
            session: state,
            form,
        };
        let reply = pages::handle(&self.gw, rt, &req).await;
        if reply.decision == "logout" {
            ctx.session = None;
        }
        ctx.reason = reply.decision;
        self.reply(session, ctx, rt, reply).await
    }

    /// The page language for this request.
    fn lang(&self, session: &Session, rt: &Runtime) -> crate::config::types::Lang {
        rt.pages.lang(accept_language(session))
    }

    fn message(
        &self,
        session: &Session,
        ctx: &Ctx,
        rt: &Runtime,
        status: u16,
        heading: &str,
        text: &str,
    ) -> Reply {
        let lang = rt.pages.lang(accept_language(session));
        pages::message_with(rt, lang, &ctx.request_id, status, heading, text, None)
    }

    async fn reply(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        rt: &Runtime,
        reply: Reply,
    ) -> pingora::Result<bool> {
        if ctx.decision == "error" || ctx.decision == "page" {
            ctx.decision = reply.decision;
        }
        respond::write(session, rt, reply).await?;
        Ok(true)
    }
}

fn accept_language(session: &Session) -> Option<&str> {
    session
        .req_header()
        .headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
}

/// Browsers ask for HTML; tools (curl, scripts) usually do not.
fn wants_html(session: &Session) -> bool {
    session
        .req_header()
        .headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"))
}

/// Read an `application/x-www-form-urlencoded` body of at most
/// [`MAX_FORM_BYTES`]; the error is the status to answer.
async fn read_form(session: &mut Session) -> Result<Vec<(String, String)>, u16> {
    let declared = session
        .req_header()
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_FORM_BYTES) {
        return Err(413);
    }
    let mut body = Vec::new();
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_FORM_BYTES {
                    return Err(413);
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(_) => return Err(400),
        }
    }
    Ok(form_urlencoded::parse(&body).into_owned().collect())
}

fn http_version(v: http::Version) -> &'static str {
    match v {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_11 => "HTTP/1.1",
        http::Version::HTTP_2 => "HTTP/2",
        http::Version::HTTP_3 => "HTTP/3",
        _ => "?",
    }
}
