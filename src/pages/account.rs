//! Self-service from the internal network (seed: "Mina SMS-nummer", "Mina
//! inställningar"): the rules every such page shares, asking for the
//! password again, and the notice e-mail sent after each change.
//!
//! SECURITY.md: changes only from an internal network, only with a session
//! whose password was entered in the last five minutes, CSRF on every POST,
//! every change audited and notified to the user.

use std::sync::Arc;

use minijinja::context;

use super::{message, session_csrf, session_event, verify_target, Reply, Req, SessionState};
use crate::audit::{Event, Outcome, Reason};
use crate::config::model::Realm;
use crate::directory::Verdict;
use crate::gateway::{Gateway, Runtime};
use crate::regulation::{Completed, Factor, UserKey};
use crate::session::{Session, SessionId};
use crate::signing::Purpose;

/// How recently the password must have been entered to change enrolments (fixed).
pub const RECENT_PASSWORD_MS: u64 = 5 * 60 * 1000;

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

/// POST /.portvakt/reauth: check the password, note the time, go back.
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
    let internal = realm.is_internal(req.client_ip);
    let Some(directory) = rt.directories.get(&realm.id) else {
        return message(rt, req, 503, "unavailable_heading", "unavailable_text");
    };
    let now = gw.clock.now_ms();
    // As at login: a locked user never reaches the directory, and waits
    // as long as a check would take.
    let key = UserKey::new(&realm.id, &session.user);
    let attempt = rt.regulator.begin(&key, req.client_ip, now);
    let blocked = attempt.as_ref().err().copied();
    let verdict = match blocked {
        Some(_) => {
            rt.regulator.wait_like_check(&realm.id).await;
            None
        }
        None => {
            let started = std::time::Instant::now();
            let v = directory
                .check(&session.user, req.field("password").unwrap_or(""))
                .await;
            if v.is_ok() {
                rt.regulator.note_check(&realm.id, started.elapsed());
            }
            Some(v)
        }
    };
    let reason = match (blocked, &verdict) {
        (Some(b), _) => Some(b.reason()),
        (None, Some(Ok(Verdict::Valid(_)))) => None,
        (None, Some(Ok(v))) => Some(v.reason()),
        (None, _) => Some(Reason::DirectoryUnavailable),
    };
    let mut ev = session_event(
        gw,
        Event::Reauth,
        Outcome::of(reason.is_none()),
        reason.unwrap_or(Reason::Ok),
        session,
        req,
        internal,
    );
    ev.method = Some("password");
    ev.session = Some(id.key().short());
    gw.audit(rt, ev);
    if reason == Some(Reason::DirectoryUnavailable) {
        return message(
            rt,
            req,
            503,
            "directory_down_heading",
            "directory_down_text",
        );
    }
    if reason.is_some() {
        if blocked.is_none() {
            let escalation = rt
                .regulator
                .failed(Some(&key), req.client_ip, Factor::Password, now);
            if let Some(why) = escalation.lockout_reason() {
                let ev = session_event(
                    gw,
                    Event::Lockout,
                    Outcome::Info,
                    why,
                    session,
                    req,
                    internal,
                );
                gw.audit(rt, ev);
            }
        }
        return reauth_page(rt, req, 401, Some("error_invalid"));
    }
    // A password clears password failures only: code failures stay until
    // a completed two-factor login.
    rt.regulator.succeeded(&key, Completed::Password);
    // Update what is stored now, not the copy read at the start: a revoke
    // or logout during the password check must stay in force.
    if gw
        .sessions
        .update(&id.key(), &|s| s.with_password_at(now))
        .await
        .is_none()
    {
        let here = format!("{}/", req.portal_origin(rt));
        let to = super::login_url(rt, req.port_suffix, &here, Some("expired"));
        return Reply::redirect(303, &to).cookie(crate::session::cookie::clear(
            crate::session::cookie::SESSION,
        ));
    }
    let to = req
        .field("rd")
        .and_then(|rd| verify_target(rt, req.port_suffix, rd))
        .filter(|t| t.host == rt.config.portal_host)
        .map(|t| t.url)
        .unwrap_or_else(|| format!("{}/", req.portal_origin(rt)));
    Reply::redirect(303, &to)
}

/// The answer when the enrolment storage fails: logged, and a calm page.
pub fn storage_failed(rt: &Runtime, req: &Req<'_>, e: crate::storage::StorageError) -> Reply {
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
        .notify_change(&a.session.email, &a.session.display_name, what, req.lang)
        .await;
    ev.destination = Some(crate::notify::mask_email(&a.session.email));
    ev.provider = Some(match result {
        Ok(p) => format!("notice sent: {p}"),
        Err(e) => format!("notice failed: {e}"),
    });
    gw.audit(rt, ev);
}
