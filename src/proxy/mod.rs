//! The proxy: pingora's `ProxyHttp` phases and which module acts in each.
//!
//! ```text
//!  request ──▶ request_filter ─────────────────────────────────────────────┐
//!              │ net::client_address    who is the client (trusted proxies) │
//!              │ routing::Router        host + longest prefix → service     │
//!              │ pages → pages::handle  /.portvakt/… and the portal host ───┼─▶ our reply, stop
//!              │   login steps:         decided in login::* (typed outcome) │
//!              │ session                cookie → store (idle/lifetime)      │
//!              │ basic                  Basic credentials (internal only)   │
//!              │ policy::decide         allow │ login │ step-up │ deny      │
//!              │ answer                 act on the decision ────────────────┼─▶ redirect/page, stop
//!              ▼                                                           │
//!          upstream_peer               the service's prebuilt HttpPeer     │
//!          upstream_request_filter     identity::prepare (strip, add, XFF) │
//!                                      assertion: signed token (cached)   │
//!          response_filter             HSTS; upstream may not set our cookies
//!          fail_to_proxy               branded 502/504 page (respond)
//!          logging                     one access-log line (audit::access)
//! ```
//!
//! Modules of the proxy (all but `identity` private, each adding to `impl Proxy`
//! where it acts on a request):
//!
//! - `answer`: what to send for each policy decision.
//! - `assertion`: the signed identity token upstream, and the JWKS on the portal host.
//! - `basic`: `Authorization: Basic` for internal clients, and its challenge.
//! - `ctx`: the per-request context [`Ctx`].
//! - [`identity`]: the identity headers sent upstream.
//! - `pages`: serving our own pages (`/.portvakt/…`, the portal host).
//! - `respond`: writing our replies with the security headers.
//! - `session`: the session cookie → the session store (expiry, idle clock).

mod answer;
mod assertion;
mod basic;
mod ctx;
pub mod identity;
mod pages;
pub mod respond;
mod session;

use std::borrow::Cow;
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
use crate::gateway::{Gateway, Runtime};
use crate::pages::{Reply, SessionState};
use crate::policy::{decide_at, Conditions, Policy};
use crate::request::{self, path::PathError};
use crate::routing::{normalise_host, Route};
use basic::BasicOutcome;

/// The pingora service implementation.
#[derive(Debug, Clone)]
pub struct Proxy {
    /// Shared gateway state.
    pub gw: Arc<Gateway>,
}

#[async_trait]
impl ProxyHttp for Proxy {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        let mut ctx = Ctx::new();
        ctx.in_flight = Some(self.gw.metrics.request_started());
        ctx
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> pingora::Result<bool> {
        crate::lifecycle::last_on_connection_if_closing(session, &self.gw.metrics);
        let rt = self.gw.runtime();
        ctx.rt = Some(rt.clone());
        ctx.request_id = self.gw.ids.next();
        self.identify_client(session, ctx, &rt);

        if let Err(over) =
            request::headers::check(&session.req_header().headers, &rt.config.request_limits)
        {
            let reply = self.message(
                session,
                ctx,
                &rt,
                431,
                "headers_too_large_heading",
                "headers_too_large_text",
            );
            ctx.reason = over.reason();
            return self
                .reply(session, ctx, &rt, reply.decision("bad_request"))
                .await;
        }
        if request::headers::conflicting_host(session.req_header()) {
            let reply = self.message(
                session,
                ctx,
                &rt,
                400,
                "bad_request_heading",
                "bad_request_text",
            );
            ctx.reason = "conflicting_host";
            return self
                .reply(session, ctx, &rt, reply.decision("bad_request"))
                .await;
        }
        // From here on the request has one path: routed, checked, logged
        // and forwarded alike.
        let encoded_slash = match self.normalise_path(session, ctx) {
            Ok(encoded_slash) => encoded_slash,
            Err(e) => return self.refuse_path(session, ctx, &rt, e).await,
        };
        let path = session.req_header().uri.path();
        if path.starts_with(crate::pages::PREFIX) {
            if encoded_slash {
                return self
                    .refuse_path(session, ctx, &rt, PathError::EncodedSlash)
                    .await;
            }
            return self.serve_page(session, ctx, &rt).await;
        }
        if path == crate::assertion::JWKS_PATH
            && ctx.host == rt.config.portal_host
            && rt.config.services.iter().any(|s| s.assertion)
        {
            return self.serve_jwks(session, ctx, &rt).await;
        }
        let route = rt.router.route(&ctx.host, path);
        let service = match route {
            Route::Service(s) if encoded_slash && !s.keep_encoded_slashes => {
                ctx.service = Some(s);
                return self
                    .refuse_path(session, ctx, &rt, PathError::EncodedSlash)
                    .await;
            }
            Route::Service(s) => s,
            Route::Portal if encoded_slash => {
                return self
                    .refuse_path(session, ctx, &rt, PathError::EncodedSlash)
                    .await;
            }
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
        if matches!(state, SessionState::Unavailable) {
            // Fail closed, and not into the login page: it could not store
            // the login either, and the user would go round in a loop.
            let reply = self.message(
                session,
                ctx,
                &rt,
                503,
                "login_down_heading",
                "login_down_text",
            );
            ctx.reason = "state_unavailable";
            return self
                .reply(session, ctx, &rt, reply.decision("unavailable"))
                .await;
        }
        let mut identity = state.session().cloned();
        if let Some(s) = &identity {
            // The session's own realm decides what "internal" means for it.
            if s.realm != realm.id {
                ctx.internal = rt.config.is_internal_to(&s.realm, ctx.client_ip);
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
            now: service
                .hours
                .as_ref()
                .map(|_| self.gw.clock.now_timestamp()),
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
        identity::prepare(upstream_request, ctx, &service)?;
        if service.assertion {
            self.add_assertion(upstream_request, ctx, &service).await?;
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> pingora::Result<()> {
        crate::lifecycle::last_on_connection_if_closing(session, &self.gw.metrics);
        ctx.upstream_status = Some(resp.status.as_u16());
        if let Some(rt) = &ctx.rt {
            // A `&'static str` name: pingora copies a `HeaderName` it has no
            // title case for on every insert (and sends it lower case).
            resp.insert_header("Strict-Transport-Security", rt.hsts.clone())?;
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
        let digest = session.digest();
        let tls_version = digest
            .and_then(|d| d.ssl_digest.as_ref())
            .map(|d| d.version.as_ref());
        let session_ref = ctx.session.as_deref();
        let elapsed = ctx.start.elapsed().as_secs_f64();
        let record = AccessRecord {
            time: crate::audit::timestamp(self.gw.clock.now_ms()),
            gateway: &rt.config.gateway,
            request_id: &ctx.request_id,
            client_ip: ctx.client_ip,
            peer_ip: ctx.peer_ip,
            network: crate::audit::auth::network(ctx.internal),
            host: &ctx.host,
            method: req.method.as_str(),
            path: req.uri.path(),
            raw_path: ctx.raw_path.as_deref(),
            status,
            bytes: session.body_bytes_sent(),
            duration_ms: (elapsed * 1000.0 * 1000.0).round() / 1000.0,
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
            tls_version,
            http_version: http_version(req.version),
            user_agent: req
                .headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok()),
            error: e.map(|e| e.to_string()),
        };
        let metrics = &self.gw.metrics;
        metrics.request(record.service, status, record.decision, elapsed);
        if let (Some(service), Some(err)) = (record.service, e) {
            if err.esource() == &ErrorSource::Upstream {
                metrics.upstream_error(service);
            }
        }
        // One pre-sized buffer: a line is ~400–600 bytes.
        let mut line = Vec::with_capacity(640);
        match serde_json::to_writer(&mut line, &record).map(|()| String::from_utf8(line)) {
            Ok(Ok(line)) => rt.access_log.write(line),
            Ok(Err(err)) => tracing::error!(error = %err, "access record is not UTF-8"),
            Err(err) => tracing::error!(error = %err, "cannot serialise access record"),
        }
    }
}

impl Proxy {
    /// Replace the request's path by its normal form (the query stays as
    /// sent), so that every later phase and the upstream see the same one.
    /// Returns whether it holds `%2F`, which only some services accept.
    fn normalise_path(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool, PathError> {
        let req = session.req_header();
        if !req.raw_path_is_utf8() {
            return Err(PathError::NotUtf8);
        }
        let normal = request::path::normalise(req.uri.path())?;
        let encoded_slash = normal.encoded_slash;
        // An absolute-form target (`GET https://host/x`) would be forwarded
        // as sent: rewrite it to origin form like a changed path.
        let origin_form = req.raw_path()
            == req
                .uri
                .path_and_query()
                .map_or("", |pq| pq.as_str())
                .as_bytes();
        if matches!(normal.path, Cow::Borrowed(_)) && origin_form {
            return Ok(encoded_slash);
        }
        let mut target = normal.path.into_owned();
        if let Some(query) = req.uri.query() {
            target.push('?');
            target.push_str(query);
        }
        let uri = http::Uri::try_from(target.as_str()).map_err(|_| PathError::BadEscape)?;
        // Without the query, which the access log never shows (it may carry secrets).
        let raw = req
            .raw_path()
            .split(|&b| b == b'?')
            .next()
            .unwrap_or_default();
        ctx.raw_path = Some(String::from_utf8_lossy(raw).into_owned());
        session.req_header_mut().set_uri(uri);
        Ok(encoded_slash)
    }

    /// 400 with our page for a path that cannot be read one way only.
    async fn refuse_path(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        rt: &Runtime,
        e: PathError,
    ) -> pingora::Result<bool> {
        let reply = self.message(session, ctx, rt, 400, "bad_path_heading", "bad_path_text");
        ctx.reason = e.reason();
        self.reply(session, ctx, rt, reply.decision("bad_request"))
            .await
    }

    /// Client address, host and port, from the connection and headers.
    fn identify_client(&self, session: &Session, ctx: &mut Ctx, rt: &Runtime) {
        let peer = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| crate::net::canonical(a.ip()))
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
        ctx.peer_ip = peer;
        let trusted = &rt.config.trusted_proxies;
        ctx.peer_trusted = crate::net::in_networks(trusted, peer);
        // Every line of the one configured header; the other is ignored.
        let header = rt.config.client_header;
        let lines = session.req_header().headers.get_all(header.name());
        let lines = lines.iter().map(|v| v.as_bytes());
        ctx.client_ip = crate::net::client_address(peer, trusted, header, lines);
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
        crate::pages::message_with(rt, lang, &ctx.request_id, status, heading, text, None)
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
