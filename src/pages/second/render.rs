//! Rendering the second step's pages: the method choice page (which methods
//! the realm offers here and whether the user has them set up) and the code
//! entry page.

use minijinja::context;

use super::{second_url, Choice};
use crate::gateway::{Gateway, Runtime};
use crate::notify::{mask_email, mask_phone};
use crate::pages::account::storage_failed;
use crate::pages::{message, session_csrf, Reply, Req};
use crate::session::{Method, Session, SessionId};
use crate::storage::UserRef;

/// The method choice page.
#[allow(clippy::too_many_arguments)]
pub(super) async fn choice_page(
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
    // "SMS-kod" chosen on the login page with two numbers: offer just the numbers.
    let only_sms = selected.is_some_and(|c| c.method == Method::Sms && c.number.is_none());
    for method in realm
        .second_factors(internal)
        .filter(|m| !only_sms || *m == Method::Sms)
    {
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
                // A store that does not answer is "login is not working",
                // never "you have nothing set up".
                let numbers = match gw.store.sms_numbers(&UserRef::of(session)).await {
                    Ok(v) => v,
                    Err(e) => return storage_failed(rt, req, e),
                };
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
                // A store that does not answer is "login is not working",
                // never "you have nothing set up".
                let devices = match gw.store.totp_devices(&UserRef::of(session)).await {
                    Ok(v) => v,
                    Err(e) => return storage_failed(rt, req, e),
                };
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
                // A store that does not answer is "login is not working",
                // never "you have nothing set up".
                let tokens = match gw.store.tokens_of(&UserRef::of(session)).await {
                    Ok(v) => v,
                    Err(e) => return storage_failed(rt, req, e),
                };
                options.push(option("token".into(), hint.clone(), !tokens.is_empty()));
            }
            Method::Passkey => {
                // A store that does not answer is "login is not working",
                // never "you have nothing set up".
                let keys = match gw.store.passkeys(&UserRef::of(session)).await {
                    Ok(v) => v,
                    Err(e) => return storage_failed(rt, req, e),
                };
                options.push(option("passkey".into(), hint.clone(), !keys.is_empty()));
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
pub(super) fn code_page(
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
