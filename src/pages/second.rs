//! The second step of login (seed: "Distansinloggning"): after the password,
//! the user picks how to get a one-time code (SMS to one of their numbers,
//! e-mail, authenticator app, hardware token), types it, and gets a new
//! two-factor session. The same pages serve step-up: a one-factor session
//! that needs two factors is only asked for the second one.

//!
//! - `send`: issuing a code and sending it by SMS or e-mail.
//! - `verify`: checking a typed code against the method's verifier.
//! - `render`: the method choice page and the code entry page.

mod render;
mod send;
mod verify;

use std::sync::Arc;

use super::{message, session_event, verify_target, Reply, Req, SessionState, Target};
use crate::audit::{Event, Outcome, Reason};
use crate::config::model::Realm;
use crate::gateway::{Gateway, Runtime};
use crate::policy::Policy;
use crate::regulation::{Completed, Factor, UserKey};
use crate::session::cookie;
use crate::session::{Method, Session, SessionId};
use crate::signing::Purpose;
use render::{choice_page, code_page};
use send::send_code;
use verify::{verify, Outcome as Check};

/// A way to receive or make a code: a method and, for SMS, which number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Choice {
    /// The method.
    pub method: Method,
    /// SMS number position (0 or 1).
    pub number: Option<u8>,
}

impl Choice {
    /// Parse a form value such as `sms:1`, `email`, `totp`, `token`.
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
    let internal = realm.is_internal(req.client_ip);
    if !realm.second_factors(internal).any(|m| m == choice.method) {
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
        Method::Sms | Method::Email => {
            send_code(gw, rt, req, id, session, rd, choice, internal).await
        }
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
    let Some(choice) = req.field("method").and_then(Choice::parse) else {
        return Reply::redirect(303, &second_url(req, rt, &rd));
    };
    if req.field("resend").is_some() && matches!(choice.method, Method::Sms | Method::Email) {
        return start(gw, rt, req, id, session, &rd, choice).await;
    }
    let Some(realm) = rt.config.realm(&session.realm) else {
        return message(rt, req, 403, "step_up_heading", "step_up_text");
    };
    let internal = realm.is_internal(req.client_ip);
    if !realm.second_factors(internal).any(|m| m == choice.method) {
        return Reply::redirect(303, &second_url(req, rt, &rd));
    }
    let input = req.field("code").unwrap_or("").trim();
    let now = gw.clock.now_ms();
    let key = UserKey::new(&session.realm, &session.user);
    // Admitted (or not) before the code is looked at, so that a burst of
    // concurrent guesses cannot all pass before the first is counted.
    let attempt = rt.regulator.begin(&key, req.client_ip, now);
    let audit = |result: Outcome, reason: Reason| {
        let mut ev = session_event(
            gw,
            Event::SecondFactor,
            result,
            reason,
            session,
            req,
            internal,
        );
        ev.method = Some(choice.method.as_str());
        ev.session = Some(id.key().short());
        gw.audit(rt, ev);
    };
    let fail = |reason: Reason, error_key: &str, notice: Option<String>| {
        let escalation = rt
            .regulator
            .failed(Some(&key), req.client_ip, Factor::Second, now);
        audit(Outcome::Failure, reason);
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
        let error = (!error_key.is_empty()).then(|| rt.pages.t(req.lang, error_key).to_owned());
        code_page(rt, req, id, &rd, choice, error, notice, 401)
    };
    // Locked: the code is not even looked at (a right one would be used up
    // for nothing), and the answer is a wrong code's.
    if let Err(block) = attempt {
        audit(Outcome::Failure, block.reason());
        let error = Some(rt.pages.t(req.lang, "error_code").to_owned());
        return code_page(rt, req, id, &rd, choice, error, None, 401);
    }
    let outcome = verify(gw, id, session, choice, input, now).await;
    match outcome {
        Check::Accepted => {}
        Check::Wrong => return fail(Reason::WrongCode, "error_code", None),
        Check::Dead(reason) => return fail(reason, "error_code_dead", None),
        Check::Replay => return fail(Reason::Replay, "error_code", None),
        Check::NeedsNext => {
            audit(Outcome::Info, Reason::TokenResyncStarted);
            let notice = rt.pages.t(req.lang, "notice_token_next").to_owned();
            return code_page(rt, req, id, &rd, choice, None, Some(notice), 401);
        }
        Check::Unavailable => {
            return message(rt, req, 503, "unavailable_heading", "unavailable_text")
        }
    }
    // The login is complete at the highest level: now failures clear.
    rt.regulator.succeeded(&key, Completed::TwoFactors);

    // Privilege change: a new session id, the old one ends (every host's
    // cookie for it too; they hand off again from the portal).
    let upgraded = Arc::new(session.with_second_factor(choice.method, now));
    let new_id = SessionId::generate();
    gw.sessions.remove(&id.key()).await;
    gw.sessions.insert(new_id.key(), upgraded).await;
    gw.challenges.forget(&id.key().0);
    let mut ev = session_event(
        gw,
        Event::Login,
        Outcome::Success,
        if session.auth_level >= 1 {
            Reason::SecondFactor
        } else {
            Reason::Ok
        },
        session,
        req,
        internal,
    );
    ev.method = Some(choice.method.as_str());
    ev.session = Some(new_id.key().short());
    ev.host = Some(req.host);
    gw.audit(rt, ev);
    super::login::continue_to(
        gw,
        rt,
        req,
        &new_id,
        verify_target(rt, req.port_suffix, &rd),
    )
    .status(303)
    .cookie(cookie::set(cookie::SESSION, new_id.as_str(), None))
}

fn csrf_ok(rt: &Runtime, req: &Req<'_>, id: &SessionId) -> bool {
    rt.signer.csrf_ok(
        Purpose::SessionCsrf,
        &id.key().0,
        req.field("csrf").unwrap_or(""),
    )
}

fn not_logged_in(rt: &Runtime, req: &Req<'_>) -> Reply {
    let here = format!("{}/", req.portal_origin(rt));
    Reply::redirect(302, &super::login_url(rt, req.port_suffix, &here, None))
}
