//! The second step of login (seed: "Distansinloggning"): after the password,
//! the user picks how to get a one-time code (SMS to one of their numbers,
//! e-mail, authenticator app, hardware token), types it, and gets a new
//! two-factor session. The same pages serve step-up: a one-factor session
//! that needs two factors is only asked for the second one.

//!
//! The decisions (which methods are offered, sending a code, checking it,
//! upgrading the session) are [`crate::login::second`]'s; these pages show
//! them.
//!
//! - `send`: showing what asking for a code by SMS or e-mail gave.
//! - `render`: the method choice page and the code entry page.

mod render;
mod send;

use std::sync::Arc;

use super::{message, verify_target, Reply, Req, SessionState, Target};
use crate::config::model::Realm;
use crate::gateway::{Gateway, Runtime};
use crate::login::second::{check_code, offered, CodeOutcome};
use crate::policy::Policy;
use crate::session::cookie;
use crate::session::{Method, Session, SessionId};
use crate::signing::Purpose;
use render::{choice_page, code_page};
use send::send_code;

/// A way to receive or make a code: a method and, for SMS, which number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Choice {
    /// The method.
    pub method: Method,
    /// SMS number position (0 or 1).
    pub number: Option<u8>,
}

impl Choice {
    /// Parse a form value such as `sms:1`, `email`, `totp`, `token`, `passkey`.
    pub fn parse(value: &str) -> Option<Choice> {
        let (name, number) = match value.split_once(':') {
            Some((n, pos)) => (n, Some(pos.parse::<u8>().ok().filter(|p| *p < 2)?)),
            None => (value, None),
        };
        let method = Method::parse(name).filter(|m| *m != Method::Password)?;
        if number.is_some() && method != Method::Sms {
            return None;
        }
        Some(Choice { method, number })
    }

    /// The form value.
    pub fn value(self) -> String {
        match self.number {
            Some(n) => format!("{}:{n}", self.method.as_str()),
            None => self.method.as_str().to_owned(),
        }
    }
}

/// The level a login must reach for `target` from a client that is (or is
/// not) internal: the target service's policy, or for the portal itself two
/// factors off-network when the realm offers any (seed: off-network login
/// always asks for a code).
pub fn required_level(rt: &Runtime, realm: &Realm, target: Option<&Target>, internal: bool) -> u8 {
    let service = target.and_then(|t| {
        let path = url::Url::parse(&t.url).ok()?.path().to_owned();
        match rt.router.route(&t.host, &path) {
            crate::routing::Route::Service(s) => Some(s),
            _ => None,
        }
    });
    match service {
        Some(s) if s.policy == Policy::Bypass || s.policy == Policy::Deny => 1,
        Some(s) => s.policy.required_level(internal),
        None if !internal && realm.second_factors(false).next().is_some() => 2,
        None => 1,
    }
}

/// URL of the second-step page returning to `rd` (a signed token or empty).
pub fn second_url(req: &Req<'_>, rt: &Runtime, rd: &str) -> String {
    format!("{}/.portvakt/second?rd={rd}", req.portal_origin(rt))
}

/// GET /.portvakt/second
pub async fn choose(gw: &Gateway, rt: &Runtime, req: &Req<'_>) -> Reply {
    let SessionState::Valid(id, session) = &req.session else {
        return not_logged_in(rt, req);
    };
    let rd = super::carried_rd(rt, req);
    let selected = req.query_param("method").and_then(|m| Choice::parse(&m));
    choice_page(gw, rt, req, id, session, &rd, selected, None, 200).await
}

/// POST /.portvakt/second: start the chosen method.
pub async fn chosen(gw: &Gateway, rt: &Runtime, req: &Req<'_>) -> Reply {
    let SessionState::Valid(id, session) = &req.session else {
        return not_logged_in(rt, req);
    };
    if !csrf_ok(rt, req, id) {
        return message(rt, req, 403, "csrf_heading", "csrf_text").decision("csrf");
    }
    let rd = super::carried_rd(rt, req);
    let Some(choice) = req.field("method").and_then(Choice::parse) else {
        return choice_page(
            gw,
            rt,
            req,
            id,
            session,
            &rd,
            None,
            Some("error_no_method"),
            400,
        )
        .await;
    };
    start(gw, rt, req, id, session, &rd, choice).await
}

/// Begin `choice`: send a code (SMS, e-mail) or ask for one (app, token).
pub async fn start(
    gw: &Gateway,
    rt: &Runtime,
    req: &Req<'_>,
    id: &SessionId,
    session: &Arc<Session>,
    rd: &str,
    choice: Choice,
) -> Reply {
    let Some(realm) = rt.config.realm(&session.realm) else {
        return message(rt, req, 403, "step_up_heading", "step_up_text");
    };
    if !offered(realm, req.client_ip, choice.method) {
        return choice_page(
            gw,
            rt,
            req,
            id,
            session,
            rd,
            None,
            Some("error_no_method"),
            400,
        )
        .await;
    }
    match choice.method {
        Method::Sms | Method::Email => send_code(gw, rt, req, realm, id, session, rd, choice).await,
        Method::Passkey => Reply::redirect(303, &super::passkey::login_url(req, rt, rd)),
        _ => code_page(rt, req, id, rd, choice, None, None, 200),
    }
}

/// GET /.portvakt/code
pub fn code_form(rt: &Runtime, req: &Req<'_>) -> Reply {
    let SessionState::Valid(id, _) = &req.session else {
        return not_logged_in(rt, req);
    };
    let rd = super::carried_rd(rt, req);
    match req.query_param("method").and_then(|m| Choice::parse(&m)) {
        Some(choice) if choice.method == Method::Passkey => {
            Reply::redirect(302, &super::passkey::login_url(req, rt, &rd))
        }
        Some(choice) => code_page(rt, req, id, &rd, choice, None, None, 200),
        None => Reply::redirect(302, &second_url(req, rt, &rd)),
    }
}

/// POST /.portvakt/code: check the code (or resend it).
pub async fn code_submit(gw: &Gateway, rt: &Runtime, req: &Req<'_>) -> Reply {
    let SessionState::Valid(id, session) = &req.session else {
        return not_logged_in(rt, req);
    };
    if !csrf_ok(rt, req, id) {
        return message(rt, req, 403, "csrf_heading", "csrf_text").decision("csrf");
    }
    let rd = super::carried_rd(rt, req);
    // A passkey answers on its own page, never as a typed code.
    let Some(choice) = req
        .field("method")
        .and_then(Choice::parse)
        .filter(|c| c.method != Method::Passkey)
    else {
        return Reply::redirect(303, &second_url(req, rt, &rd));
    };
    if req.field("resend").is_some() && matches!(choice.method, Method::Sms | Method::Email) {
        return start(gw, rt, req, id, session, &rd, choice).await;
    }
    let Some(realm) = rt.config.realm(&session.realm) else {
        return message(rt, req, 403, "step_up_heading", "step_up_text");
    };
    let input = req.field("code").unwrap_or("").trim();
    let client = req.client();
    let outcome = check_code(gw, rt, realm, &client, id, session, choice.method, input).await;
    let error = |key: &str| Some(rt.pages.t(req.lang, key).to_owned());
    match outcome {
        CodeOutcome::Upgraded { id: new_id } => upgraded(gw, rt, req, &new_id, &rd).await,
        CodeOutcome::Refused { .. } => {
            code_page(rt, req, id, &rd, choice, error("error_code"), None, 401)
        }
        CodeOutcome::Dead { .. } => code_page(
            rt,
            req,
            id,
            &rd,
            choice,
            error("error_code_dead"),
            None,
            401,
        ),
        CodeOutcome::NeedsNext => {
            let notice = rt.pages.t(req.lang, "notice_token_next").to_owned();
            code_page(rt, req, id, &rd, choice, None, Some(notice), 401)
        }
        CodeOutcome::NotOffered => Reply::redirect(303, &second_url(req, rt, &rd)),
        CodeOutcome::Unavailable => {
            message(rt, req, 503, "unavailable_heading", "unavailable_text")
        }
    }
}

/// After a second factor: on to the target under the new session id (a
/// typed code and a passkey end the same way).
pub(super) async fn upgraded(
    gw: &Gateway,
    rt: &Runtime,
    req: &Req<'_>,
    new_id: &SessionId,
    rd: &str,
) -> Reply {
    super::login::continue_to(gw, rt, req, new_id, verify_target(rt, req.port_suffix, rd))
        .await
        .status(303)
        .cookie(cookie::set(cookie::SESSION, new_id.as_str(), None))
}

/// The session's CSRF token in the form.
pub(super) fn csrf_ok(rt: &Runtime, req: &Req<'_>, id: &SessionId) -> bool {
    rt.signer.csrf_ok(
        Purpose::SessionCsrf,
        &id.key().0,
        req.field("csrf").unwrap_or(""),
    )
}

/// No session: to the login page, returning to the portal.
pub(super) fn not_logged_in(rt: &Runtime, req: &Req<'_>) -> Reply {
    let here = format!("{}/", req.portal_origin(rt));
    Reply::redirect(302, &super::login_url(rt, req.port_suffix, &here, None))
}
