//! "Mina inställningar": the user's authenticator devices, and connecting a
//! new one in the seed's three steps — 1. a description ("Jobbtelefonen"),
//! 2. a QR code to scan (and the secret as text), 3. the six-digit code from
//! the app and OK. The device is saved only after step 3 succeeds.

use minijinja::context;

use super::account::{changed, guard, storage_failed, Allowed};
use super::{qr, session_csrf, Reply, Req};
use crate::audit::{Event, Outcome, Reason};
use crate::enrolment::{Kind, Pending};
use crate::factors::token::Hotp;
use crate::factors::totp::{self, StepCheck};
use crate::gateway::{Gateway, Runtime};
use crate::storage::UserRef;

/// The settings page.
pub const PATH: &str = "/.portvakt/settings";
/// The enrolment page.
pub const ENROL_PATH: &str = "/.portvakt/settings/authenticator";

const DONE: [&str; 4] = [
    "totp_added",
    "totp_removed",
    "passkey_added",
    "passkey_removed",
];

/// GET /.portvakt/settings
pub async fn settings(gw: &Gateway, rt: &Runtime, req: &Req<'_>) -> Reply {
    let a = match guard(gw, rt, req) {
        Ok(a) => a,
        Err(reply) => return reply,
    };
    let notice = req
        .query_param("done")
        .filter(|d| DONE.contains(&d.as_str()));
    settings_page(gw, rt, req, &a, 200, notice.as_deref()).await
}

/// POST /.portvakt/settings: `action=remove` (an authenticator device) or
/// `action=remove_passkey`, `id`.
pub async fn settings_submit(gw: &Gateway, rt: &Runtime, req: &Req<'_>) -> Reply {
    let a = match guard(gw, rt, req) {
        Ok(a) => a,
        Err(reply) => return reply,
    };
    let id = req.field("id").and_then(|i| i.parse::<i64>().ok());
    match (req.field("action"), id) {
        (Some("remove"), Some(id)) => {
            match gw
                .store
                .remove_totp_device(&UserRef::of(a.session), id)
                .await
            {
                Ok(true) => {
                    changed(gw, rt, req, &a, Reason::TotpRemoved, "what_totp_removed").await;
                    Reply::redirect(303, &format!("{PATH}?done=totp_removed"))
                }
                Ok(false) => Reply::redirect(303, PATH),
                Err(e) => storage_failed(rt, req, e),
            }
        }
        (Some("remove_passkey"), Some(id)) => {
            match gw.store.remove_passkey(&UserRef::of(a.session), id).await {
                Ok(true) => {
                    changed(
                        gw,
                        rt,
                        req,
                        &a,
                        Reason::PasskeyRemoved,
                        "what_passkey_removed",
                    )
                    .await;
                    Reply::redirect(303, &format!("{PATH}?done=passkey_removed"))
                }
                Ok(false) => Reply::redirect(303, PATH),
                Err(e) => storage_failed(rt, req, e),
            }
        }
        _ => settings_page(gw, rt, req, &a, 400, None).await,
    }
}

/// GET /.portvakt/settings/authenticator: step 1.
pub fn enrol(gw: &Gateway, rt: &Runtime, req: &Req<'_>) -> Reply {
    match guard(gw, rt, req) {
        Ok(a) => step_one(rt, req, &a, 200, None, ""),
        Err(reply) => reply,
    }
}

/// POST /.portvakt/settings/authenticator: `action=start` (description) or
/// `action=finish` (code).
pub async fn enrol_submit(gw: &Gateway, rt: &Runtime, req: &Req<'_>) -> Reply {
    let a = match guard(gw, rt, req) {
        Ok(a) => a,
        Err(reply) => return reply,
    };
    let now = gw.clock.now_ms();
    match req.field("action") {
        Some("start") => {
            let description = req.field("description").unwrap_or("").trim();
            if !super::account::description_ok(description) {
                return step_one(rt, req, &a, 400, Some("error_description"), description);
            }
            let secret = totp::new_secret();
            let pending = Pending::Totp {
                description: description.to_owned(),
                secret: secret.clone(),
            };
            if let Err(e) = gw.enrolling.put(a.id.key(), pending).await {
                return crate::pages::state_failed(rt, req, &e);
            }
            step_two(rt, req, &a, description, &secret, 200, None)
        }
        Some("finish") => {
            let (description, secret) = match gw.enrolling.totp(a.id.key()).await {
                Ok(Some(p)) => p,
                Ok(None) => return step_one(rt, req, &a, 400, Some("error_enrol_expired"), ""),
                Err(e) => return crate::pages::state_failed(rt, req, &e),
            };
            let code = req.field("code").unwrap_or("");
            let gen = Hotp::new(&secret, totp::DIGITS);
            if !matches!(
                totp::check_steps(&gen, code, now / 1000, totp::PERIOD, None),
                StepCheck::Accepted { .. }
            ) {
                let mut ev = gw.event(
                    Event::Enrolment,
                    Outcome::Failure,
                    Reason::TotpWrongCode,
                    Some(&a.session.user),
                    Some(&a.session.realm),
                    req.client_ip,
                    true,
                    req.request_id,
                );
                ev.method = Some("totp");
                gw.audit(rt, ev);
                return step_two(rt, req, &a, &description, &secret, 401, Some("error_code"));
            }
            // Cleared first: a code cannot finish the same enrolment twice.
            if let Err(e) = gw.enrolling.clear(a.id.key(), Kind::Totp).await {
                return crate::pages::state_failed(rt, req, &e);
            }
            if let Err(e) = gw
                .store
                .add_totp_device(&UserRef::of(a.session), &description, &secret, now)
                .await
            {
                return storage_failed(rt, req, e);
            }
            // Mark the code just typed as used, so it cannot also log in.
            let _ = gw
                .store
                .verify_totp(&UserRef::of(a.session), code, now / 1000)
                .await;
            changed(gw, rt, req, &a, Reason::TotpAdded, "what_totp_added").await;
            Reply::redirect(303, &format!("{PATH}?done=totp_added"))
        }
        _ => step_one(rt, req, &a, 400, None, ""),
    }
}

async fn settings_page(
    gw: &Gateway,
    rt: &Runtime,
    req: &Req<'_>,
    a: &Allowed<'_>,
    status: u16,
    notice: Option<&str>,
) -> Reply {
    let devices = match gw.store.totp_devices(&UserRef::of(a.session)).await {
        Ok(d) => d,
        Err(e) => return storage_failed(rt, req, e),
    };
    let devices: Vec<_> = devices
        .iter()
        .map(|d| context! { id => d.id, description => d.description.as_str(), added => date(d.added_ms) })
        .collect();
    let passkeys = match gw.store.passkeys(&UserRef::of(a.session)).await {
        Ok(k) => k,
        Err(e) => return storage_failed(rt, req, e),
    };
    let passkeys: Vec<_> = passkeys
        .iter()
        .map(|k| {
            context! {
                id => k.id,
                description => k.description.as_str(),
                added => date(k.added_ms),
                used => k.last_used_ms.map(date),
            }
        })
        .collect();
    let ctx = context! {
        action => PATH,
        enrol_href => ENROL_PATH,
        sms_href => super::sms_numbers::PATH,
        csrf => session_csrf(rt, a.id),
        username => a.session.user.as_str(),
        devices => devices,
        passkeys => passkeys,
        passkey_href => super::passkey::ENROL_PATH,
        notice => notice.map(|k| rt.pages.t(req.lang, k)),
    };
    Reply::html(
        status,
        rt.pages
            .render("settings.html", req.lang, req.request_id, ctx),
    )
}

fn step_one(
    rt: &Runtime,
    req: &Req<'_>,
    a: &Allowed<'_>,
    status: u16,
    error: Option<&str>,
    description: &str,
) -> Reply {
    let ctx = context! {
        action => ENROL_PATH,
        back_href => PATH,
        csrf => session_csrf(rt, a.id),
        step => 1,
        description => description,
        error => error.map(|k| rt.pages.t(req.lang, k)),
    };
    Reply::html(
        status,
        rt.pages
            .render("authenticator.html", req.lang, req.request_id, ctx),
    )
}

fn step_two(
    rt: &Runtime,
    req: &Req<'_>,
    a: &Allowed<'_>,
    description: &str,
    secret: &[u8],
    status: u16,
    error: Option<&str>,
) -> Reply {
    let uri = totp::otpauth_uri(&rt.config.codes.issuer, &a.session.user, secret);
    let qr = match qr::png_data_uri(&uri) {
        Ok(q) => q,
        Err(e) => {
            tracing::error!(error = %e, "cannot render QR code");
            String::new()
        }
    };
    // Groups of four are easier to type into an app by hand.
    let b32 = totp::base32(secret);
    let grouped: Vec<&str> = b32
        .as_bytes()
        .chunks(4)
        .filter_map(|c| std::str::from_utf8(c).ok())
        .collect();
    let ctx = context! {
        action => ENROL_PATH,
        back_href => PATH,
        csrf => session_csrf(rt, a.id),
        step => 2,
        description => description,
        qr => qr,
        secret => grouped.join(" "),
        account => a.session.user.as_str(),
        issuer => rt.config.codes.issuer.as_str(),
        error => error.map(|k| rt.pages.t(req.lang, k)),
    };
    Reply::html(
        status,
        rt.pages
            .render("authenticator.html", req.lang, req.request_id, ctx),
    )
}

/// `YYYY-MM-DD` in UTC for lists.
fn date(ms: u64) -> String {
    jiff::Timestamp::from_millisecond(ms as i64)
        .map(|t| t.strftime("%Y-%m-%d").to_string())
        .unwrap_or_default()
}
