//! Passkeys and security keys on our pages: registering one under "Mina
//! inställningar" (the same rules as connecting an authenticator app:
//! internal network, password in the last five minutes, CSRF, audit and
//! e-mail notice), and using one as the second step of login.
//!
//! Both are two requests: the page carries the relying party's options for
//! `passkey.js`, which posts the browser's answer back in the same form.
//! The only pages that run a script are these two ([`Reply::with_script`]).
//! The checks are [`crate::passkey`]'s (the ceremony) and
//! [`crate::login::second`]'s (regulation, audit, the upgraded session).

use minijinja::context;

use super::account::{changed, guard, storage_failed, Allowed};
use super::second::{csrf_ok, not_logged_in, second_url, upgraded};
use super::{message, session_csrf, Reply, Req, SessionState};
use crate::audit::{Event, Outcome, Reason};
use crate::enrolment::{Kind, Pending};
use crate::gateway::{Gateway, Runtime};
use crate::login::second::{check_code, offered, CodeOutcome};
use crate::session::{Method, Session, SessionId};
use crate::storage::{StorageError, UserRef};

/// Registering a passkey.
pub const ENROL_PATH: &str = "/.portvakt/settings/passkey";
/// Using a passkey at login.
pub const LOGIN_PATH: &str = "/.portvakt/passkey";

/// GET /.portvakt/settings/passkey: the description.
pub fn enrol(gw: &Gateway, rt: &Runtime, req: &Req<'_>) -> Reply {
    match guard(gw, rt, req) {
        Ok(a) => describe(rt, req, &a, 200, None, ""),
        Err(reply) => reply,
    }
}

/// POST /.portvakt/settings/passkey: `action=start` (description) gives the
/// page that asks the browser; `action=finish` (`response`) saves the key.
pub async fn enrol_submit(gw: &Gateway, rt: &Runtime, req: &Req<'_>) -> Reply {
    let a = match guard(gw, rt, req) {
        Ok(a) => a,
        Err(reply) => return reply,
    };
    let who = UserRef::of(a.session);
    match req.field("action") {
        Some("start") => {
            let description = req.field("description").unwrap_or("").trim();
            if !super::account::description_ok(description) {
                return describe(rt, req, &a, 400, Some("error_description"), description);
            }
            let existing = match gw.store.passkeys(&who).await {
                Ok(k) => k,
                Err(e) => return storage_failed(rt, req, e),
            };
            let (options, state) =
                match rt
                    .passkeys
                    .start_registration(&who, &a.session.display_name, &existing)
                {
                    Ok(pair) => pair,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot start a passkey registration");
                        return message(rt, req, 503, "unavailable_heading", "unavailable_text");
                    }
                };
            let pending = Pending::Passkey {
                description: description.to_owned(),
                state,
            };
            if let Err(e) = gw.enrolling.put(a.id.key(), pending).await {
                return crate::pages::state_failed(rt, req, &e);
            }
            create(rt, req, &a, description, &options)
        }
        Some("finish") => finish_enrol(gw, rt, req, &a, &who).await,
        _ => describe(rt, req, &a, 400, None, ""),
    }
}

async fn finish_enrol(
    gw: &Gateway,
    rt: &Runtime,
    req: &Req<'_>,
    a: &Allowed<'_>,
    who: &UserRef,
) -> Reply {
    let (description, state) = match gw.enrolling.passkey(a.id.key()).await {
        Ok(Some(p)) => p,
        Ok(None) => return describe(rt, req, a, 400, Some("error_enrol_expired"), ""),
        Err(e) => return crate::pages::state_failed(rt, req, &e),
    };
    // Cleared first: one challenge registers at most one key.
    if let Err(e) = gw.enrolling.clear(a.id.key(), Kind::Passkey).await {
        return crate::pages::state_failed(rt, req, &e);
    }
    let refused = |reason: Reason, detail: String, error: &str| {
        let mut ev = gw.event(
            Event::Enrolment,
            Outcome::Failure,
            reason,
            Some(&a.session.user),
            Some(&a.session.realm),
            req.client_ip,
            true,
            req.request_id,
        );
        ev.method = Some(Method::Passkey.as_str());
        ev.session = Some(a.id.key().short());
        ev.provider = Some(detail);
        gw.audit(rt, ev);
        describe(rt, req, a, 400, Some(error), &description)
    };
    let response = req.field("response").unwrap_or("");
    let registered = match rt.passkeys.finish_registration(response, &state) {
        Ok(r) => r,
        Err(e) => return refused(Reason::PasskeyInvalid, e.to_string(), "error_passkey_enrol"),
    };
    let now = gw.clock.now_ms();
    match gw
        .store
        .add_passkey(
            who,
            &description,
            &registered.credential_id,
            &registered.key,
            0,
            now,
        )
        .await
    {
        Ok(_) => {}
        Err(StorageError::DuplicateCredential) => {
            return refused(
                Reason::PasskeyDuplicate,
                "credential already registered".into(),
                "error_passkey_duplicate",
            )
        }
        Err(e) => return storage_failed(rt, req, e),
    }
    changed(gw, rt, req, a, Reason::PasskeyAdded, "what_passkey_added").await;
    Reply::redirect(
        303,
        &format!("{}?done=passkey_added", super::authenticator::PATH),
    )
}

fn describe(
    rt: &Runtime,
    req: &Req<'_>,
    a: &Allowed<'_>,
    status: u16,
    error: Option<&str>,
    description: &str,
) -> Reply {
    let p = &rt.pages;
    let ctx = context! {
        mode => "describe",
        action => ENROL_PATH,
        back_href => super::authenticator::PATH,
        csrf => session_csrf(rt, a.id),
        heading => p.t(req.lang, "passkey_enrol_heading"),
        intro => p.t(req.lang, "passkey_enrol_intro"),
        description => description,
        error => error.map(|k| p.t(req.lang, k)),
    };
    Reply::html(
        status,
        p.render("passkey.html", req.lang, req.request_id, ctx),
    )
}

fn create(rt: &Runtime, req: &Req<'_>, a: &Allowed<'_>, description: &str, options: &str) -> Reply {
    let p = &rt.pages;
    let ctx = context! {
        mode => "create",
        action => ENROL_PATH,
        back_href => super::authenticator::PATH,
        csrf => session_csrf(rt, a.id),
        heading => p.t(req.lang, "passkey_enrol_heading"),
        intro => p.t(req.lang, "passkey_create_intro"),
        description => description,
        options => options,
    };
    Reply::html(200, p.render("passkey.html", req.lang, req.request_id, ctx)).with_script()
}

/// GET /.portvakt/passkey: a new login ceremony and the page that asks the
/// browser for one of the user's keys.
pub async fn login(gw: &Gateway, rt: &Runtime, req: &Req<'_>) -> Reply {
    let SessionState::Valid(id, session) = &req.session else {
        return not_logged_in(rt, req);
    };
    let rd = super::carried_rd(rt, req);
    login_page(gw, rt, req, id, session, &rd, None, 200).await
}

/// POST /.portvakt/passkey: the browser's answer, checked like a code.
pub async fn login_submit(gw: &Gateway, rt: &Runtime, req: &Req<'_>) -> Reply {
    let SessionState::Valid(id, session) = &req.session else {
        return not_logged_in(rt, req);
    };
    if !csrf_ok(rt, req, id) {
        return message(rt, req, 403, "csrf_heading", "csrf_text").decision("csrf");
    }
    let rd = super::carried_rd(rt, req);
    let Some(realm) = rt.config.realm(&session.realm) else {
        return message(rt, req, 403, "step_up_heading", "step_up_text");
    };
    let response = req.field("response").unwrap_or("");
    let client = req.client();
    match check_code(
        gw,
        rt,
        realm,
        &client,
        id,
        session,
        Method::Passkey,
        response,
    )
    .await
    {
        CodeOutcome::Upgraded { id: new_id } => upgraded(gw, rt, req, &new_id, &rd).await,
        CodeOutcome::Refused { .. } | CodeOutcome::Dead { .. } | CodeOutcome::NeedsNext => {
            login_page(gw, rt, req, id, session, &rd, Some("error_passkey"), 401).await
        }
        CodeOutcome::NotOffered => Reply::redirect(303, &second_url(req, rt, &rd)),
        CodeOutcome::Unavailable => {
            message(rt, req, 503, "unavailable_heading", "unavailable_text")
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn login_page(
    gw: &Gateway,
    rt: &Runtime,
    req: &Req<'_>,
    id: &SessionId,
    session: &Session,
    rd: &str,
    error: Option<&str>,
    status: u16,
) -> Reply {
    let Some(realm) = rt.config.realm(&session.realm) else {
        return message(rt, req, 403, "step_up_heading", "step_up_text");
    };
    if !offered(realm, req.client_ip, Method::Passkey) {
        return Reply::redirect(303, &second_url(req, rt, rd));
    }
    let keys = match gw.store.passkeys(&UserRef::of(session)).await {
        Ok(k) => k,
        Err(e) => return storage_failed(rt, req, e),
    };
    // Nothing registered: the choice page explains where to register one.
    let Ok((options, state)) = rt.passkeys.start_login(&keys) else {
        return Reply::redirect(303, &second_url(req, rt, rd));
    };
    if let Err(e) = gw.passkey_logins.put(id.key(), &state).await {
        return crate::pages::state_failed(rt, req, &e);
    }
    let p = &rt.pages;
    let ctx = context! {
        mode => "get",
        action => LOGIN_PATH,
        csrf => session_csrf(rt, id),
        rd => rd,
        heading => p.t(req.lang, "passkey_login_heading"),
        intro => p.t(req.lang, "passkey_login_intro"),
        options => options,
        others_href => second_url(req, rt, rd),
        error => error.map(|k| p.t(req.lang, k)),
    };
    Reply::html(
        status,
        p.render("passkey.html", req.lang, req.request_id, ctx),
    )
    .with_script()
}

/// Where the second step's "Säkerhetsnyckel / passkey" goes: the login page
/// above, as a GET so that reloading it starts a fresh ceremony.
pub fn login_url(req: &Req<'_>, rt: &Runtime, rd: &str) -> String {
    format!("{}{LOGIN_PATH}?rd={rd}", req.portal_origin(rt))
}
