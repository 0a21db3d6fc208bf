//! Handoff of a login to a service host, and logout on every host at once.

use minijinja::context;

use super::{message, session_csrf, session_event, verify_target, Reply, Req, SessionState};
use crate::audit::{Event, Outcome, Reason};
use crate::gateway::{Gateway, Runtime};
use crate::login::handoff::{self, HandoffOutcome};
use crate::session::cookie::{self, SESSION};
use crate::signing::Purpose;

/// GET /.portvakt/handoff?code=…&rd=… on a service host: show what
/// [`crate::login::handoff::redeem`] decided: a host-only cookie and on to
/// the return address, the portal again, or "someone else is logged in here".
pub async fn handoff(gw: &Gateway, rt: &Runtime, req: &Req<'_>) -> Reply {
    let code = req.query_param("code").unwrap_or_default();
    let target = req
        .query_param("rd")
        .and_then(|rd| verify_target(rt, req.port_suffix, &rd))
        .filter(|t| t.host == req.host);
    let here = target
        .as_ref()
        .map(|t| t.url.clone())
        .unwrap_or_else(|| format!("{}/", req.origin()));
    // Used, expired, forged or not this browser's: start over at the portal
    // (which hands off again at once if this browser's portal session is
    // alive), with this browser's own nonce.
    let start_over =
        |notice| super::login_redirect(rt, req.host, req.port_suffix, req.cookie, &here, notice);
    let nonce = req.cookie.and_then(|c| cookie::find(c, cookie::HANDOFF));
    let live = match &req.session {
        SessionState::Valid(id, s) => Some((id, s.as_ref())),
        _ => None,
    };
    match handoff::redeem(gw, rt, &req.client(), &code, nonce, live).await {
        HandoffOutcome::Enter { session } => Reply::redirect(302, &here)
            .cookie(cookie::set(SESSION, session.as_str(), None))
            .cookie(cookie::clear(cookie::HANDOFF)),
        HandoffOutcome::StartOver { expired } => start_over(expired.then_some("expired")),
        HandoffOutcome::Unavailable => super::login_down(rt, req),
        HandoffOutcome::OtherUser { live_user } => match live {
            Some((live_id, _)) => {
                other_user_page(rt, req, live_id, &live_user, &here).decision("deny")
            }
            None => start_over(None),
        },
    }
}

/// "You are already logged in here as {user}": continue as that user, or
/// log out first.
fn other_user_page(
    rt: &Runtime,
    req: &Req<'_>,
    live_id: &crate::session::SessionId,
    user: &str,
    here: &str,
) -> Reply {
    let p = &rt.pages;
    let lang = req.lang;
    let ctx = context! {
        status => 409,
        heading => p.t(lang, "handoff_other_user_heading"),
        text => p.t(lang, "handoff_other_user_text").replace("{user}", user),
        link => context! { href => here, label => p.t(lang, "handoff_continue").replace("{user}", user) },
        logout => context! { action => "/.portvakt/logout", csrf => session_csrf(rt, live_id) },
    };
    Reply::html(409, p.render("message.html", lang, req.request_id, ctx))
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
    if let Err(e) = gw.sessions.remove(&id.key()).await {
        // Not logged out: say so rather than pretend (the cookie would
        // still work once the state is back).
        return super::state_failed(rt, req, &e);
    }
    let internal = rt.config.is_internal_to(&session.realm, req.client_ip);
    let mut ev = session_event(
        gw,
        Event::Logout,
        Outcome::Success,
        Reason::User,
        session,
        req,
        internal,
    );
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
