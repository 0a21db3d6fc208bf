//! "Mina SMS-nummer": see, add, change and remove the (at most two) numbers
//! SMS codes go to. A new number is saved only after the code sent to it is
//! typed back, so a typo cannot lock the user out of off-network login.

use minijinja::context;
use sha2::{Digest, Sha256};

use super::account::{changed, guard, storage_failed, Allowed};
use super::{session_csrf, Reply, Req};
use crate::audit::{Event, Outcome, Reason};
use crate::enrolment::{Kind, Pending};
use crate::factors::code::{Channel, CodeVerdict};
use crate::factors::phone::{self, PhoneError};
use crate::gateway::{Gateway, Runtime};
use crate::notify::mask_phone;
use crate::session::Method;
use crate::storage::UserRef;

/// Where the page lives.
pub const PATH: &str = "/.portvakt/sms";

/// Notices a redirect back to the page may show (no free text from the URL).
const DONE: [&str; 2] = ["sms_saved", "sms_removed"];

/// GET /.portvakt/sms
pub async fn show(gw: &Gateway, rt: &Runtime, req: &Req<'_>) -> Reply {
    let a = match guard(gw, rt, req) {
        Ok(a) => a,
        Err(reply) => return reply,
    };
    let notice = req
        .query_param("done")
        .filter(|d| DONE.contains(&d.as_str()));
    page(gw, rt, req, &a, 200, Say::notice(notice.as_deref())).await
}

/// POST /.portvakt/sms: `action` = `set` (with `position`, `number`),
/// `confirm` (with `code`) or `remove` (with `position`).
pub async fn submit(gw: &Gateway, rt: &Runtime, req: &Req<'_>) -> Reply {
    let a = match guard(gw, rt, req) {
        Ok(a) => a,
        Err(reply) => return reply,
    };
    let position = req
        .field("position")
        .and_then(|p| p.parse::<u8>().ok())
        .filter(|p| *p < 2);
    match (req.field("action"), position) {
        (Some("set"), Some(pos)) => set(gw, rt, req, &a, pos).await,
        (Some("confirm"), _) => confirm(gw, rt, req, &a).await,
        (Some("remove"), Some(pos)) => {
            match gw
                .store
                .remove_sms_number(&UserRef::of(a.session), pos)
                .await
            {
                Ok(true) => {
                    changed(gw, rt, req, &a, Reason::SmsRemoved, "what_sms_removed").await;
                    Reply::redirect(303, &format!("{PATH}?done=sms_removed"))
                }
                Ok(false) => Reply::redirect(303, PATH),
                Err(e) => storage_failed(rt, req, e),
            }
        }
        _ => page(gw, rt, req, &a, 400, Say::error("error_no_method")).await,
    }
}

/// A new number for `pos`: check it, send it a code, ask for the code.
async fn set(gw: &Gateway, rt: &Runtime, req: &Req<'_>, a: &Allowed<'_>, pos: u8) -> Reply {
    let typed = req.field("number").unwrap_or("");
    let e164 = match phone::normalise(typed, &rt.config.codes.default_country) {
        Ok(n) => n,
        Err(e) => {
            let key = match e {
                PhoneError::NotDigits => "error_phone_digits",
                PhoneError::NoPrefix => "error_phone_prefix",
                PhoneError::Length => "error_phone_length",
            };
            let say = Say {
                invalid: Some(Invalid {
                    position: pos,
                    typed,
                }),
                ..Say::error(key)
            };
            return page(gw, rt, req, a, 400, say).await;
        }
    };
    let now = gw.clock.now_ms();
    let session_key = a.id.key();
    let code = match gw
        .challenges
        .issue(
            challenge_key(a),
            &UserRef::of(a.session),
            req.client_ip,
            Channel::Sms,
            now,
            &rt.code_rules,
        )
        .await
    {
        Ok(code) => code,
        Err(crate::factors::code::Refusal::Unavailable) => {
            return crate::pages::login_down(rt, req)
        }
        Err(refusal) => {
            let mut ev = gw.event(
                Event::CodeSent,
                Outcome::Failure,
                refusal.reason(),
                Some(&a.session.user),
                Some(&a.session.realm),
                req.client_ip,
                true,
                req.request_id,
            );
            ev.method = Some("sms");
            ev.destination = Some(mask_phone(&e164, &rt.config.codes.default_country));
            gw.audit(rt, ev);
            return page(gw, rt, req, a, 429, Say::error("error_budget")).await;
        }
    };
    let minutes = (rt.config.codes.validity.as_secs() / 60).max(1);
    let result = rt
        .notify_code(
            Method::Sms,
            &e164,
            &code,
            minutes,
            &a.session.display_name,
            req.lang,
        )
        .await;
    let mut ev = gw.event(
        Event::CodeSent,
        Outcome::of(result.is_ok()),
        if result.is_ok() {
            Reason::Enrolment
        } else {
            Reason::DeliveryFailed
        },
        Some(&a.session.user),
        Some(&a.session.realm),
        req.client_ip,
        true,
        req.request_id,
    );
    ev.method = Some("sms");
    ev.destination = Some(mask_phone(&e164, &rt.config.codes.default_country));
    ev.provider = Some(match &result {
        Ok(p) | Err(p) => p.clone(),
    });
    gw.audit(rt, ev);
    if result.is_err() {
        gw.challenges.forget(&challenge_key(a)).await;
        return page(gw, rt, req, a, 502, Say::error("error_send")).await;
    }
    let pending = Pending::Sms {
        position: pos,
        e164: e164.clone(),
    };
    if let Err(e) = gw.enrolling.put(session_key, pending).await {
        return crate::pages::state_failed(rt, req, &e);
    }
    confirm_page(rt, req, a, &e164, 200, None)
}

/// The code sent to the new number: save the number if it is right.
async fn confirm(gw: &Gateway, rt: &Runtime, req: &Req<'_>, a: &Allowed<'_>) -> Reply {
    let now = gw.clock.now_ms();
    let (pos, e164) = match gw.enrolling.sms(a.id.key()).await {
        Ok(Some(p)) => p,
        Ok(None) => return page(gw, rt, req, a, 400, Say::error("error_code_dead")).await,
        Err(e) => return crate::pages::state_failed(rt, req, &e),
    };
    match gw
        .challenges
        .verify(challenge_key(a), req.field("code").unwrap_or(""), now)
        .await
    {
        CodeVerdict::Accepted { .. } => {}
        CodeVerdict::Unavailable => return crate::pages::login_down(rt, req),
        CodeVerdict::Wrong { .. } => {
            return confirm_page(rt, req, a, &e164, 401, Some("error_code"))
        }
        _ => {
            let _ = gw.enrolling.clear(a.id.key(), Kind::Sms).await;
            return page(gw, rt, req, a, 401, Say::error("error_code_dead")).await;
        }
    }
    if let Err(e) = gw.enrolling.clear(a.id.key(), Kind::Sms).await {
        return crate::pages::state_failed(rt, req, &e);
    }
    if let Err(e) = gw
        .store
        .set_sms_number(&UserRef::of(a.session), pos, &e164, now)
        .await
    {
        return storage_failed(rt, req, e);
    }
    changed(gw, rt, req, a, Reason::SmsAdded, "what_sms_added").await;
    Reply::redirect(303, &format!("{PATH}?done=sms_saved"))
}

/// Codes for confirming a number live apart from login codes.
fn challenge_key(a: &Allowed<'_>) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"portvakt/sms-enrolment\0");
    h.update(a.id.key().0);
    h.finalize().into()
}

/// The field a refused number was typed into, shown again marked invalid
/// and focused, with what was typed, so the user corrects it there.
#[derive(Clone, Copy)]
struct Invalid<'a> {
    position: u8,
    typed: &'a str,
}

/// What the page says above its forms.
#[derive(Clone, Copy, Default)]
struct Say<'a> {
    /// A language-file key, shown as an error.
    error: Option<&'a str>,
    /// A language-file key, shown as a calm notice.
    notice: Option<&'a str>,
    /// The field the error is about, if it is one field's.
    invalid: Option<Invalid<'a>>,
}

impl<'a> Say<'a> {
    fn error(key: &'a str) -> Say<'a> {
        Say {
            error: Some(key),
            ..Say::default()
        }
    }

    fn notice(key: Option<&'a str>) -> Say<'a> {
        Say {
            notice: key,
            ..Say::default()
        }
    }
}

/// At most this much of a refused number is shown again (the field takes
/// 16; a longer post is not echoed whole).
const MAX_ECHO: usize = 32;

async fn page(
    gw: &Gateway,
    rt: &Runtime,
    req: &Req<'_>,
    a: &Allowed<'_>,
    status: u16,
    say: Say<'_>,
) -> Reply {
    let Say {
        error,
        notice,
        invalid,
    } = say;
    let cc = &rt.config.codes.default_country;
    let numbers = match gw.store.sms_numbers(&UserRef::of(a.session)).await {
        Ok(n) => n,
        Err(e) => return storage_failed(rt, req, e),
    };
    let rows: Vec<_> = (0..2u8)
        .map(|pos| {
            let current = numbers.iter().find(|n| n.position == pos);
            context! {
                position => pos,
                label => rt.pages.t(req.lang, if pos == 0 { "sms_first" } else { "sms_second" }),
                number => current.map(|n| phone::display(&n.e164, cc)).unwrap_or_default(),
            }
        })
        .collect();
    let ctx = context! {
        action => PATH,
        csrf => session_csrf(rt, a.id),
        username => a.session.user.as_str(),
        email => a.session.email.as_str(),
        rows => rows,
        error => error.map(|k| rt.pages.t(req.lang, k)),
        notice => notice.map(|k| rt.pages.t(req.lang, k)),
        invalid => invalid.map(|i| i.position),
        typed => invalid.map(|i| i.typed.chars().take(MAX_ECHO).collect::<String>()),
    };
    Reply::html(
        status,
        rt.pages.render("sms.html", req.lang, req.request_id, ctx),
    )
}

fn confirm_page(
    rt: &Runtime,
    req: &Req<'_>,
    a: &Allowed<'_>,
    e164: &str,
    status: u16,
    error: Option<&str>,
) -> Reply {
    let minutes = (rt.config.codes.validity.as_secs() / 60).max(1);
    let number = phone::display(e164, &rt.config.codes.default_country);
    let intro = rt
        .pages
        .t(req.lang, "sms_confirm_text")
        .replace("{number}", &number)
        .replace("{minutes}", &minutes.to_string());
    let ctx = context! {
        action => PATH,
        csrf => session_csrf(rt, a.id),
        intro => intro,
        error => error.map(|k| rt.pages.t(req.lang, k)),
    };
    Reply::html(
        status,
        rt.pages
            .render("sms_confirm.html", req.lang, req.request_id, ctx),
    )
}
