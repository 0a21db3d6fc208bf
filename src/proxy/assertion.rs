//! The signed identity assertion on its way upstream, and the public keys
//! an upstream checks it with (`/.well-known/jwks.json` on the portal host).

use std::sync::Arc;

use http::HeaderValue;
use pingora::http::RequestHeader;
use pingora::proxy::Session;
use pingora::{Error, ErrorType};

use super::{Ctx, Proxy};
use crate::assertion::{self, CacheKey};
use crate::config::model::Service;
use crate::gateway::Runtime;
use crate::pages::Reply;

impl Proxy {
    /// Add the token to a request for a service with `assertion: true`.
    /// The client's own header of that name is already gone
    /// (`identity::prepare` scrubs it on every service); a request without
    /// a login (none needed, or none given) carries no token at all.
    pub(super) async fn add_assertion(
        &self,
        req: &mut RequestHeader,
        ctx: &Ctx,
        service: &Service,
    ) -> pingora::Result<()> {
        let (Some(rt), Some(session)) = (&ctx.rt, &ctx.session) else {
            return Ok(());
        };
        let settings = &rt.config.assertion;
        let key = CacheKey::new(ctx.session_key, session, service);
        let now = self.gw.clock.now_ms();
        match assertion::header_value(
            &self.gw.assertion_keys,
            settings,
            &rt.assertion_cache,
            key,
            session,
            service,
            now,
        )
        .await
        {
            Ok(value) => req.insert_header(settings.wire.clone(), value).map(|_| ()),
            // Fail closed: an upstream that expects a token refuses a
            // request without one, and it would not learn why.
            Err(e) => {
                tracing::error!(error = %e, service = %service.name, "cannot make the identity assertion");
                Err(Error::explain(
                    ErrorType::HTTPStatus(503),
                    "identity assertion unavailable",
                ))
            }
        }
    }

    /// Serve the JWKS: no login, short caching, the keys published now.
    /// With shared state it re-reads the shared ring, so it lists a key
    /// another gateway just rotated in.
    pub(super) async fn serve_jwks(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        rt: &Arc<Runtime>,
    ) -> pingora::Result<bool> {
        ctx.decision = "jwks";
        ctx.reason = "jwks";
        let method = &session.req_header().method;
        if method != http::Method::GET && method != http::Method::HEAD {
            let reply = self.message(session, ctx, rt, 405, "not_found_heading", "not_found_text");
            return self.reply(session, ctx, rt, reply.decision("jwks")).await;
        }
        let settings = &rt.config.assertion;
        let now = self.gw.clock.now_ms();
        let reply = match self
            .gw
            .assertion_keys
            .refreshed(now, settings.rotation)
            .await
        {
            Ok(ring) => {
                let body = ring.jwks(now, settings.rotation).to_string();
                let mut r = Reply::html(200, body);
                r.content_type = "application/jwk-set+json";
                r.cache_control = HeaderValue::from_str(&format!(
                    "public, max-age={}",
                    settings.jwks_max_age.as_secs()
                ))
                .ok()
                .map(Box::new);
                r
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot load the assertion keys for the JWKS");
                self.message(
                    session,
                    ctx,
                    rt,
                    503,
                    "login_down_heading",
                    "login_down_text",
                )
            }
        };
        self.reply(session, ctx, rt, reply.decision("jwks")).await
    }
}
