//! Showing what asking for a code by SMS or e-mail gave
//! ([`crate::login::second::send_code`]): the code entry page, or the
//! choice page again when there is nowhere to send or sending failed.

use std::sync::Arc;

use super::render::{choice_page, code_page};
use super::Choice;
use crate::config::model::Realm;
use crate::factors::code::Refusal;
use crate::gateway::{Gateway, Runtime};
use crate::login::second::{self, SendOutcome};
use crate::pages::{Reply, Req};
use crate::session::{Session, SessionId};

/// Send a code by SMS or e-mail for `choice`, then show the code entry page
/// (or the choice page again).
#[allow(clippy::too_many_arguments)]
pub(super) async fn send_code(
    gw: &Gateway,
    rt: &Runtime,
    req: &Req<'_>,
    realm: &Realm,
    id: &SessionId,
    session: &Arc<Session>,
    rd: &str,
    choice: Choice,
) -> Reply {
    let client = req.client();
    let outcome = second::send_code(
        gw,
        rt,
        realm,
        &client,
        id,
        session,
        choice.method,
        choice.number,
        req.lang,
    )
    .await;
    match outcome {
        SendOutcome::Sent { masked, minutes } => {
            let notice = rt
                .pages
                .t(req.lang, "code_sent")
                .replace("{to}", &masked)
                .replace("{minutes}", &minutes.to_string());
            code_page(rt, req, id, rd, choice, None, Some(notice), 200)
        }
        SendOutcome::NoDestination => {
            choice_page(
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
            .await
        }
        SendOutcome::Refused(Refusal::Unavailable) => crate::pages::login_down(rt, req),
        SendOutcome::Refused(refusal) => {
            let error = match refusal {
                Refusal::Unavailable => String::new(),
                Refusal::Cooldown { wait_secs } => rt
                    .pages
                    .t(req.lang, "error_cooldown")
                    .replace("{seconds}", &wait_secs.to_string()),
                Refusal::UserBudget | Refusal::IpBudget => {
                    rt.pages.t(req.lang, "error_budget").to_owned()
                }
            };
            code_page(rt, req, id, rd, choice, Some(error), None, 429)
        }
        SendOutcome::DeliveryFailed => {
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
