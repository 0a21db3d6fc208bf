//! Sending a one-time code for the second step: pick the destination (one
//! of the user's SMS numbers, or their e-mail), issue the code within the
//! cooldown and budgets, deliver it, audit, and show the code entry page.

use std::sync::Arc;

use super::render::{choice_page, code_page};
use super::Choice;
use crate::audit::{Event, Outcome, Reason};
use crate::factors::code::{Channel, Refusal};
use crate::gateway::{Gateway, Runtime};
use crate::notify::{mask_email, mask_phone};
use crate::pages::{session_event, Reply, Req};
use crate::session::{Method, Session, SessionId};
use crate::storage::UserRef;

/// Issue and deliver a code by SMS or e-mail for `choice`, then show the
/// code entry page (or the choice page again when there is nowhere to send).
#[allow(clippy::too_many_arguments)]
pub(super) async fn send_code(
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
                .sms_numbers(&UserRef::of(session))
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
    let code = match gw.challenges.issue(
        key,
        &UserRef::of(session),
        req.client_ip,
        code_channel,
        now,
        &rt.code_rules,
    ) {
        Ok(code) => code,
        Err(refusal) => {
            let (reason, error) = match refusal {
                Refusal::Cooldown { wait_secs } => (
                    Reason::Cooldown,
                    rt.pages
                        .t(req.lang, "error_cooldown")
                        .replace("{seconds}", &wait_secs.to_string()),
                ),
                Refusal::UserBudget => (
                    Reason::UserBudget,
                    rt.pages.t(req.lang, "error_budget").to_owned(),
                ),
                Refusal::IpBudget => (
                    Reason::IpBudget,
                    rt.pages.t(req.lang, "error_budget").to_owned(),
                ),
            };
            let mut ev = session_event(
                gw,
                Event::CodeSent,
                Outcome::Failure,
                reason,
                session,
                req,
                internal,
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
    let mut ev = session_event(
        gw,
        Event::CodeSent,
        Outcome::of(result.is_ok()),
        if result.is_ok() {
            Reason::Sent
        } else {
            Reason::DeliveryFailed
        },
        session,
        req,
        internal,
    );
    ev.method = Some(channel);
    ev.destination = Some(masked.clone());
    let provider = match &result {
        Ok(d) => d.clone(),
        Err(e) => e.clone(),
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
