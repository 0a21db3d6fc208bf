//! Self-service from the internal network (seed: "Mina SMS-nummer", "Mina
//! inställningar"): the rules every such page shares, the page asking for
//! the password again (its check is [`crate::login::reauth`]), and the
//! notice e-mail sent after each change.
//!
//! SECURITY.md: changes only from an internal network, only with a session
//! whose password was entered in the last five minutes, CSRF on every POST,
//! every change audited and notified to the user.

use std::sync::Arc;

use minijinja::context;

use super::{message, session_csrf, verify_target, Reply, Req, SessionState};
use crate::audit::{Event, Outcome, Reason};
use crate::config::model::Realm;
use crate::gateway::{Gateway, Runtime};
use crate::login::reauth::{reauth, ReauthOutcome};
use crate::session::{Session, SessionId};
use crate::signing::Purpose;

/// How recently the password must have been entered to change enrolments (fixed).
pub const RECENT_PASSWORD_MS: u64 = 5 * 60 * 1000;

/// Longest description of a device or key ("Jobbtelefonen", "YubiKey").
pub const MAX_DESCRIPTION: usize = 60;

/// Whether `description` (trimmed) may name a device or key: 1 to
/// [`MAX_DESCRIPTION`] characters, no control characters (it is shown in
/// lists and written to the audit log).
pub fn description_ok(description: &str) -> bool {
    !description.is_empty()
        && description.chars().count() <= MAX_DESCRIPTION
        && !description.chars().any(char::is_control)
}

/// A request that passed the self-service rules.
pub struct Allowed<'a> {
    /// The session id (for CSRF and pending enrolments).
    pub id: &'a SessionId,
    /// The session.
    pub session: &'a Arc<Session>,
    /// The user's realm.
    pub realm: &'a Arc<Realm>,
}

/// Apply the rules: logged in, internal, password recent, CSRF on POST.
/// `Err` is the answer to send instead (login, refusal, password again).
pub fn guard<'a>(gw: &Gateway, rt: &'a Runtime, req: &'a Req<'_>) -> Result<Allowed<'a>, Reply> {
    let here = format!("{}{}", req.portal_origin(rt), req.path);
    let SessionState::Valid(id, session) = &req.session else {
        let notice = matches!(req.session, SessionState::Ended).then_some("expired");
        return Err(Reply::redirect(
            302,
            &super::login_url(rt, req.port_suffix, &here, notice),
        ));
    };
    let Some(realm) = rt.config.realm(&session.realm) else {
        return Err(message(rt, req, 403, "forbidden_heading", "forbidden_text"));
    };
    if !realm.is_internal(req.client_ip) {
        let portal = format!("{}/", req.portal_origin(rt));
        let page = super::message_with(
            rt,
            req.lang,
            req.request_id,
            403,
            "offsite_heading",
            "offsite_text",
            Some((&portal, "back_to_portal")),
        );
        return Err(page.decision("deny"));
    }
    if req.method == http::Method::POST
        && !rt.signer.csrf_ok(
            Purpose::SessionCsrf,
            &id.key().0,
            req.field("csrf").unwrap_or(""),
        )
    {
        return Err(message(rt, req, 403, "csrf_heading", "csrf_text").decision("csrf"));
    }
    if gw.clock.now_ms() > session.password_at_ms + RECENT_PASSWORD_MS {
        // GETs come back here after the password; a POST's form is lost, so
        // it comes back to the page it was posted from.
        let rd = super::return_token(rt, &here);
        return Err(Reply::redirect(
            303,
            &format!("{}/.portvakt/reauth?rd={rd}", req.portal_origin(rt)),
        ));
    }
    Ok(Allowed { id, session, realm })
}

/// GET /.portvakt/reauth: the password again, before a change.
pub fn reauth_form(rt: &Runtime, req: &Req<'_>) -> Reply {
    reauth_page(rt, req, 200, None)
}

fn reauth_page(rt: &Runtime, req: &Req<'_>, status: u16, error: Option<&str>) -> Reply {
    let SessionState::Valid(id, session) = &req.session else {
        let here = format!("{}/", req.portal_origin(rt));
        return Reply::redirect(302, &super::login_url(rt, req.port_suffix, &here, None));
    };
    let rd = super::carried_rd(rt, req);
    let ctx = context! {
        action => "/.portvakt/reauth",
        csrf => session_csrf(rt, id),
        rd => rd,
        username => session.user.as_str(),
        error => error.map(|k| rt.pages.t(req.lang, k)),
    };
    Reply::html(
        status,
        rt.pages
            .render("reauth.html", req.lang, req.request_id, ctx),
    )
}

/// POST /.portvakt/reauth: show what [`crate::login::reauth`] decided: the
/// form again, or back where the change was asked for.
pub async fn reauth_submit(gw: &Gateway, rt: &Runtime, req: &Req<'_>) -> Reply {
    let SessionState::Valid(id, session) = &req.session else {
        return reauth_page(rt, req, 401, None);
    };
    if !rt.signer.csrf_ok(
        Purpose::SessionCsrf,
        &id.key().0,
        req.field("csrf").unwrap_or(""),
    ) {
        return message(rt, req, 403, "csrf_heading", "csrf_text").decision("csrf");
    }
    let Some(realm) = rt.config.realm(&session.realm) else {
        return message(rt, req, 403, "forbidden_heading", "forbidden_text");
    };
    let password = req.field("password").unwrap_or("");
    match reauth(gw, rt, realm, &req.client(), id, session, password).await {
        ReauthOutcome::Confirmed => {}
        ReauthOutcome::Refused { .. } => return reauth_page(rt, req, 401, Some("error_invalid")),
        ReauthOutcome::NoDirectory => {
            return message(rt, req, 503, "unavailable_heading", "unavailable_text")
        }
        ReauthOutcome::DirectoryDown => {
            return message(
                rt,
                req,
                503,
                "directory_down_heading",
                "directory_down_text",
            )
        }
        ReauthOutcome::SessionEnded => {
            let here = format!("{}/", req.portal_origin(rt));
            let to = super::login_url(rt, req.port_suffix, &here, Some("expired"));
            return Reply::redirect(303, &to).cookie(crate::session::cookie::clear(
                crate::session::cookie::SESSION,
            ));
        }
    }
    let to = req
        .field("rd")
        .and_then(|rd| verify_target(rt, req.port_suffix, rd))
        .filter(|t| t.host == rt.config.portal_host)
        .map(|t| t.url)
        .unwrap_or_else(|| format!("{}/", req.portal_origin(rt)));
    Reply::redirect(303, &to)
}

/// The answer when the enrolment storage fails: logged, and a calm page —
/// "login is not working right now" when the store cannot be reached (the
/// outage itself is audited once, by the store's health watch).
pub fn storage_failed(rt: &Runtime, req: &Req<'_>, e: crate::storage::StorageError) -> Reply {
    if e.is_unavailable() {
        tracing::warn!(error = %e, request_id = req.request_id, "enrolment storage unavailable");
        return super::login_down(rt, req);
    }
    tracing::error!(error = %e, "enrolment storage failed");
    message(rt, req, 503, "unavailable_heading", "unavailable_text")
}

/// Audit a change and tell the user by e-mail ("a new authenticator was added …").
pub async fn changed(
    gw: &Gateway,
    rt: &Runtime,
    req: &Req<'_>,
    a: &Allowed<'_>,
    reason: Reason,
    what: &str,
) {
    let mut ev = gw.event(
        Event::Enrolment,
        Outcome::Success,
        reason,
        Some(&a.session.user),
        Some(&a.session.realm),
        req.client_ip,
        true,
        req.request_id,
    );
    ev.session = Some(a.id.key().short());
    if a.session.email.is_empty() {
        ev.provider = Some("no e-mail address for the notice".into());
        gw.audit(rt, ev);
        return;
    }
    let result = rt
        .notify_change(
            gw.clock.now_ms(),
            &a.session.email,
            &a.session.display_name,
            what,
            req.lang,
        )
        .await;
    ev.destination = Some(crate::notify::mask_email(&a.session.email));
    ev.provider = Some(match result {
        Ok(p) => format!("notice sent: {p}"),
        Err(e) => format!("notice failed: {e}"),
    });
    gw.audit(rt, ev);
}
