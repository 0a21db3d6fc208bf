//! Handoff of a login to a service host, and logout on every host at once.

use minijinja::context;

use super::{message, session_csrf, session_event, verify_target, Reply, Req, SessionState};
use crate::gateway::{Gateway, Runtime};
use crate::session::cookie::{self, SESSION};
use crate::signing::Purpose;

/// GET /.portvakt/handoff?code=…&rd=… on a service host: trade the code for a
/// host-only cookie and continue to the return address.
pub async fn handoff(gw: &Gateway, rt: &Runtime, req: &Req<'_>) -> Reply {
    let code = req.query_param("code").unwrap_or_default();
    let target = req
        .query_param("rd")
        .and_then(|rd| verify_target(rt, &rd))
        .filter(|t| t.host == req.host);
    let here = target
        .as_ref()
        .map(|t| t.url.clone())
        .unwrap_or_else(|| format!("{}/", req.origin()));
    let now = gw.clock.now_ms();
    let Some(id) = gw.handoffs.redeem(&code, req.host, now) else {
        // Used, expired or forged: start over at the portal (which hands off
        // again at once if the portal session is alive).
        return Reply::redirect(302, &super::login_url(rt, req.port_suffix, &here, None));
    };
    if gw.sessions.get(&id.key()).await.is_none() {
        return Reply::redirect(
            302,
            &super::login_url(rt, req.port_suffix, &here, Some("expired")),
        );
    }
    Reply::redirect(302, &here).cookie(cookie::set(SESSION, id.as_str(), None))
}

/// GET /.portvakt/logout: a confirmation form (a GET never changes state).
pub fn confirm(rt: &Runtime, req: &Req<'_>) -> Reply {
    match &req.session {
        SessionState::Valid(id, _) => {
            let ctx = context! { action => "/.portvakt/logout", csrf => session_csrf(rt, id) };
            Reply::html(
                200,
                rt.pages
                    .render("logout.html", req.lang, req.request_id, ctx),
            )
        }
        _ => logged_out(rt, req),
    }
}

/// POST /.portvakt/logout: end the session server-side, so every host's
/// cookie stops working at once.
pub async fn submit(gw: &Gateway, rt: &Runtime, req: &Req<'_>) -> Reply {
    let SessionState::Valid(id, session) = &req.session else {
        return logged_out(rt, req).cookie(cookie::clear(SESSION));
    };
    let csrf = req.field("csrf").unwrap_or("");
    if !rt.signer.csrf_ok(Purpose::SessionCsrf, &id.key().0, csrf) {
        return message(rt, req, 403, "csrf_heading", "csrf_text").decision("csrf");
    }
    gw.sessions.remove(&id.key()).await;
    let internal = rt.config.is_internal_to(&session.realm, req.client_ip);
    let mut ev = session_event(gw, "logout", "success", "user", session, req, internal);
    ev.session = Some(id.key().short());
    ev.host = Some(req.host);
    gw.audit(rt, ev);
    logged_out(rt, req)
        .cookie(cookie::clear(SESSION))
        .decision("logout")
}

fn logged_out(rt: &Runtime, req: &Req<'_>) -> Reply {
    let login = format!("{}/.portvakt/login", req.portal_origin(rt));
    super::message_with(
        rt,
        req.lang,
        req.request_id,
        200,
        "logged_out_heading",
        "logged_out_text",
        Some((&login, "login_again")),
    )
}
