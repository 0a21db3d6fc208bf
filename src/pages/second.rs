//! The second step of login (seed: "Distansinloggning"): after the password,
//! the user picks how to get a one-time code (SMS to one of their numbers,
//! e-mail, authenticator app, hardware token), types it, and gets a new
//! two-factor session. The same pages serve step-up: a one-factor session
//! that needs two factors is only asked for the second one.

use std::sync::Arc;

use minijinja::context;

use super::{message, session_csrf, verify_target, Reply, Req, SessionState, Target};
use crate::config::model::Realm;
use crate::factors::code::{Channel, CodeVerdict, Refusal};
use crate::gateway::{Gateway, Runtime};
use crate::notify::{mask_email, mask_phone};
use crate::policy::Policy;
use crate::session::cookie;
use crate::session::{Method, Session, SessionId};
use crate::signing::Purpose;
use crate::storage::Verify;

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
    let rd = req
        .query_param("rd")
        .filter(|rd| verify_target(rt, rd).is_some())
        .unwrap_or_default();
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
    let rd = req
        .field("rd")
        .filter(|rd| verify_target(rt, rd).is_some())
        .unwrap_or("")
        .to_owned();
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

#[allow(clippy::too_many_arguments)]
async fn send_code(
    gw: &Gateway,
    rt: &Runtime,
    req: &Req<'_>,
    id: &SessionId,
    session: &Arc<Session>,
    rd: &str,
    choice: Choice,
    internal: bool,
) -> Reply {
    let destination = match choice.method {
        Method::Sms => {
            let numbers = gw
                .store
                .sms_numbers(&session.user)
                .await
                .unwrap_or_default();
            let wanted = choice.number.unwrap_or(0);
            numbers
                .into_iter()
                .find(|n| n.position == wanted)
                .map(|n| n.e164)
        }
        _ => Some(session.email.clone()).filter(|e| !e.is_empty()),
    };
    let Some(destination) = destination else {
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
    };
    let masked = match choice.method {
        Method::Sms => mask_phone(&destination, &rt.config.codes.default_country),
        _ => mask_email(&destination),
    };
    let channel = choice.method.as_str();
    let code_channel = if choice.method == Method::Sms {
        Channel::Sms
    } else {
        Channel::Email
    };
    let now = gw.clock.now_ms();
    let key = id.key().0;
    // Budgets count per realm and user: the same name may exist in two realms.
    let budget_user = format!("{}/{}", session.realm, session.user);
    let code = match gw.challenges.issue(
        key,
        &budget_user,
        req.client_ip,
        code_channel,
        now,
        &rt.code_rules,
    ) {
        Ok(code) => code,
        Err(refusal) => {
            let (reason, error) = match refusal {
                Refusal::Cooldown { wait_secs } => (
                    "cooldown",
                    rt.pages
                        .t(req.lang, "error_cooldown")
                        .replace("{seconds}", &wait_secs.to_string()),
                ),
                Refusal::UserBudget => (
                    "user_budget",
                    rt.pages.t(req.lang, "error_budget").to_owned(),
                ),
                Refusal::IpBudget => ("ip_budget", rt.pages.t(req.lang, "error_budget").to_owned()),
            };
            let mut ev = gw.event(
                "code_sent",
                "failure",
                reason,
                Some(&session.user),
                Some(&session.realm),
                req.client_ip,
                internal,
                req.request_id,
            );
            ev.method = Some(channel);
            ev.destination = Some(masked);
            gw.audit(rt, ev);
            return code_page(rt, req, id, rd, choice, Some(error), None, 429);
        }
    };
    let minutes = (rt.config.codes.validity.as_secs() / 60).max(1);
    let result = rt
        .notify_code(
            choice.method,
            &destination,
            &code,
            minutes,
            &session.display_name,
            req.lang,
        )
        .await;
    let mut ev = gw.event(
        "code_sent",
        if result.is_ok() { "success" } else { "failure" },
        "",
        Some(&session.user),
        Some(&session.realm),
        req.client_ip,
        internal,
        req.request_id,
    );
    ev.method = Some(channel);
    ev.destination = Some(masked.clone());
    let provider = match &result {
        Ok(d) => d.clone(),
        Err(e) => e.clone(),
    };
    ev.reason = if result.is_ok() {
        "sent"
    } else {
        "delivery_failed"
    };
    ev.provider = Some(provider);
    gw.audit(rt, ev);
    match result {
        Ok(_) => {
            let notice = rt
                .pages
                .t(req.lang, "code_sent")
                .replace("{to}", &masked)
                .replace("{minutes}", &minutes.to_string());
            code_page(rt, req, id, rd, choice, None, Some(notice), 200)
        }
        Err(_) => {
            gw.challenges.forget(&key);
            choice_page(
                gw,
                rt,
                req,
                id,
                session,
                rd,
                Some(choice),
                Some("error_send"),
                502,
            )
            .await
        }
    }
}

/// GET /.portvakt/code
pub fn code_form(rt: &Runtime, req: &Req<'_>) -> Reply {
    let SessionState::Valid(id, _) = &req.session else {
        return not_logged_in(rt, req);
    };
    let rd = req
        .query_param("rd")
        .filter(|rd| verify_target(rt, rd).is_some())
        .unwrap_or_default();
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
    let rd = req
        .field("rd")
        .filter(|rd| verify_target(rt, rd).is_some())
        .unwrap_or("")
        .to_owned();
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
    // Checked even when throttled: a locked account answers like a wrong code.
    let blocked = rt.regulator.check(&session.user, req.client_ip, now);
    let outcome = verify(gw, id, session, choice, input, now).await;
    let audit = |result: &str, reason: &str| {
        let mut ev = gw.event(
            "second_factor",
            result,
            reason,
            Some(&session.user),
            Some(&session.realm),
            req.client_ip,
            internal,
            req.request_id,
        );
        ev.method = Some(choice.method.as_str());
        ev.session = Some(id.key().short());
        gw.audit(rt, ev);
    };
    let fail = |reason: &str, error_key: &str, notice: Option<String>| {
        let escalation = rt.regulator.failed(&session.user, req.client_ip, now);
        audit("failure", reason);
        if escalation.user_locked {
            let ev = gw.event(
                "lockout",
                "info",
                "too_many_failures",
                Some(&session.user),
                Some(&session.realm),
                req.client_ip,
                internal,
                req.request_id,
            );
            gw.audit(rt, ev);
        }
        let error = (!error_key.is_empty()).then(|| rt.pages.t(req.lang, error_key).to_owned());
        code_page(rt, req, id, &rd, choice, error, notice, 401)
    };
    if let Some(block) = blocked {
        return fail(block.reason(), "error_code", None);
    }
    match outcome {
        Outcome::Accepted => {}
        Outcome::Wrong => return fail("wrong_code", "error_code", None),
        Outcome::Dead(reason) => return fail(reason, "error_code_dead", None),
        Outcome::Replay => return fail("replay", "error_code", None),
        Outcome::NeedsNext => {
            audit("info", "token_resync_started");
            let notice = rt.pages.t(req.lang, "notice_token_next").to_owned();
            return code_page(rt, req, id, &rd, choice, None, Some(notice), 401);
        }
        Outcome::Unavailable => {
            return message(rt, req, 503, "unavailable_heading", "unavailable_text")
        }
    }
    rt.regulator.succeeded(&session.user);

    // Privilege change: a new session id, the old one ends (every host's
    // cookie for it too; they hand off again from the portal).
    let upgraded = Arc::new(session.with_second_factor(choice.method, now));
    let new_id = SessionId::generate();
    gw.sessions.remove(&id.key()).await;
    gw.sessions.insert(new_id.key(), upgraded).await;
    gw.challenges.forget(&id.key().0);
    let mut ev = gw.event(
        "login",
        "success",
        if session.auth_level >= 1 {
            "second_factor"
        } else {
            "ok"
        },
        Some(&session.user),
        Some(&session.realm),
        req.client_ip,
        internal,
        req.request_id,
    );
    ev.method = Some(choice.method.as_str());
    ev.session = Some(new_id.key().short());
    ev.host = Some(req.host);
    gw.audit(rt, ev);
    super::login::continue_to(gw, rt, req, &new_id, verify_target(rt, &rd))
        .status(303)
        .cookie(cookie::set(cookie::SESSION, new_id.as_str(), None))
}

enum Outcome {
    Accepted,
    Wrong,
    Dead(&'static str),
    Replay,
    NeedsNext,
    Unavailable,
}

async fn verify(
    gw: &Gateway,
    id: &SessionId,
    session: &Session,
    choice: Choice,
    input: &str,
    now_ms: u64,
) -> Outcome {
    match choice.method {
        Method::Sms | Method::Email => match gw.challenges.verify(id.key().0, input, now_ms) {
            CodeVerdict::Accepted { .. } => Outcome::Accepted,
            CodeVerdict::Wrong { .. } => Outcome::Wrong,
            CodeVerdict::Expired => Outcome::Dead("expired"),
            CodeVerdict::TooManyTries => Outcome::Dead("too_many_tries"),
            CodeVerdict::NoChallenge => Outcome::Dead("no_code_sent"),
        },
        Method::Totp | Method::Token => {
            let secs = now_ms / 1000;
            let result = if choice.method == Method::Totp {
                gw.store.verify_totp(&session.user, input, secs).await
            } else {
                gw.store.verify_token(&session.user, input, secs).await
            };
            match result {
                Ok(v) => match v {
                    Verify::Accepted { .. } => Outcome::Accepted,
                    Verify::Replay { .. } => Outcome::Replay,
                    Verify::NeedsNextCode { .. } => Outcome::NeedsNext,
                    Verify::Rejected => Outcome::Wrong,
                },
                Err(e) => {
                    tracing::error!(error = %e, "enrolment storage failed");
                    Outcome::Unavailable
                }
            }
        }
        Method::Password => Outcome::Wrong,
    }
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

/// The method choice page.
#[allow(clippy::too_many_arguments)]
async fn choice_page(
    gw: &Gateway,
    rt: &Runtime,
    req: &Req<'_>,
    id: &SessionId,
    session: &Session,
    rd: &str,
    selected: Option<Choice>,
    error: Option<&str>,
    status: u16,
) -> Reply {
    let lang = req.lang;
    let p = &rt.pages;
    let Some(realm) = rt.config.realm(&session.realm) else {
        return message(rt, req, 403, "step_up_heading", "step_up_text");
    };
    let internal = realm.is_internal(req.client_ip);
    let mut options = Vec::new();
    for method in realm.second_factors(internal) {
        let label = p.t(lang, &format!("method_{}", method.as_str())).to_owned();
        let hint = p
            .t(lang, &format!("method_{}_hint", method.as_str()))
            .to_owned();
        let reason = p.t(lang, &format!("no_{}", method.as_str())).to_owned();
        let option = |value: String, detail: String, available: bool| {
            context! { value => value, label => label.clone(), detail => detail, available => available, reason => reason.clone() }
        };
        match method {
            Method::Sms => {
                let numbers = gw
                    .store
                    .sms_numbers(&session.user)
                    .await
                    .unwrap_or_default();
                if numbers.is_empty() {
                    options.push(option("sms".into(), hint.clone(), false));
                }
                for n in numbers {
                    let to = p.t(lang, "sms_to").replace(
                        "{number}",
                        &mask_phone(&n.e164, &rt.config.codes.default_country),
                    );
                    options.push(option(
                        Choice {
                            method,
                            number: Some(n.position),
                        }
                        .value(),
                        to,
                        true,
                    ));
                }
            }
            Method::Email => {
                let ok = !session.email.is_empty();
                let detail = if ok {
                    mask_email(&session.email)
                } else {
                    hint.clone()
                };
                options.push(option("email".into(), detail, ok));
            }
            Method::Totp => {
                let devices = gw
                    .store
                    .totp_devices(&session.user)
                    .await
                    .unwrap_or_default();
                let detail = if devices.is_empty() {
                    hint.clone()
                } else {
                    devices
                        .iter()
                        .map(|d| d.description.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                options.push(option("totp".into(), detail, !devices.is_empty()));
            }
            Method::Token => {
                let tokens = gw.store.tokens_of(&session.user).await.unwrap_or_default();
                options.push(option("token".into(), hint.clone(), !tokens.is_empty()));
            }
            Method::Password => {}
        }
    }
    if options.is_empty() {
        return message(rt, req, 403, "step_up_heading", "no_second_methods");
    }
    // Off the network the code is part of every login (seed); inside, the
    // user is here because a service asks for more than the password.
    let intro = if internal {
        "second_intro_stepup"
    } else {
        "second_intro"
    };
    let ctx = context! {
        action => "/.portvakt/second",
        csrf => session_csrf(rt, id),
        rd => rd,
        heading => p.t(lang, "second_heading"),
        intro => p.t(lang, intro),
        error => error.map(|k| p.t(lang, k)),
        options => options,
        selected => selected.map(Choice::value).unwrap_or_default(),
    };
    Reply::html(status, p.render("second.html", lang, req.request_id, ctx))
}

/// The code entry page.
#[allow(clippy::too_many_arguments)]
fn code_page(
    rt: &Runtime,
    req: &Req<'_>,
    id: &SessionId,
    rd: &str,
    choice: Choice,
    error: Option<String>,
    notice: Option<String>,
    status: u16,
) -> Reply {
    let p = &rt.pages;
    let lang = req.lang;
    let m = choice.method.as_str();
    let sent = matches!(choice.method, Method::Sms | Method::Email);
    let intro = match choice.method {
        Method::Totp => "code_intro_totp",
        Method::Token => "code_intro_token",
        _ => "code_intro_sent",
    };
    let ctx = context! {
        action => "/.portvakt/code",
        csrf => session_csrf(rt, id),
        rd => rd,
        method => choice.value(),
        heading => p.t(lang, &format!("code_heading_{m}")),
        label => p.t(lang, &format!("code_label_{m}")),
        intro => p.t(lang, intro),
        error => error,
        notice => notice,
        resend => sent,
        numeric => !sent,
        other_href => second_url(req, rt, rd),
    };
    Reply::html(status, p.render("code.html", lang, req.request_id, ctx))
}
