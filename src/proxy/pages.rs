//! Serving our own pages from the proxy: any host's `/.portvakt/…` and the
//! portal host. Reads the session and (for POST) the form, builds a
//! [`Req`] and hands it to [`crate::pages::handle`].

use std::sync::Arc;

use http::header;
use pingora::proxy::Session;

use super::{accept_language, Ctx, Proxy};
use crate::gateway::Runtime;
use crate::pages::{self, Req, MAX_FORM_BYTES};

impl Proxy {
    /// Serve one of our pages (any host's `/.portvakt/…`, or the portal host).
    pub(super) async fn serve_page(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        rt: &Arc<Runtime>,
    ) -> pingora::Result<bool> {
        ctx.decision = "page";
        let state = self.session_state(session, rt).await;
        if let Some(s) = state.session() {
            ctx.internal = rt.config.is_internal_to(&s.realm, ctx.client_ip);
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
        // Every `Cookie` header: HTTP/2 browsers send one per cookie, and a
        // missed handoff nonce would send the browser round in a loop.
        let cookies = super::answer::cookie_header(session);
        let cookie_header = cookies.as_deref();
        let req_header = session.req_header();
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
    pages::parse_form(&body).ok_or(400)
}
