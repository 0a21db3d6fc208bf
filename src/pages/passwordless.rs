//! A login with a passkey alone on our pages: "Logga in med säkerhetsnyckel"
//! on the login form posts the name (no password) to the login form's own
//! address; the page that asks the browser for a key posts its answer here.
//! The decisions are [`crate::login::passwordless`]'s; this module only
//! shows them. Every refusal shows the login form with one message, whatever
//! the reason in the log.

use std::sync::Arc;

use minijinja::context;

use super::login::{continue_to, csrf_ok, form};
use super::{message, verify_target, Reply, Req, SessionState};
use crate::config::model::Realm;
use crate::gateway::{Gateway, Runtime};
use crate::login::passwordless::{self, FinishOutcome, StartOutcome};
use crate::session::cookie::{self, FLOW};

/// Where the key page posts the browser's answer.
pub const PATH: &str = "/.portvakt/passkey/alone";

/// The login form's "Logga in med säkerhetsnyckel" (its CSRF token already
/// checked): the page that asks the browser for one of `username`'s keys.
pub(super) async fn start(
    gw: &Gateway,
    rt: &Runtime,
    req: &Req<'_>,
    realm: &Arc<Realm>,
    username: &str,
    rd: &str,
) -> Reply {
    let rd = if verify_target(rt, req.port_suffix, rd).is_some() {
        rd
    } else {
        ""
    };
    if username.is_empty() {
        return form(
            rt,
            req,
            400,
            rd.to_owned(),
            "",
            Some("error_passkey_username"),
            None,
            Some(&realm.id),
        );
    }
    let started = match passwordless::start(gw, rt, realm, &req.client(), username).await {
        StartOutcome::Started(s) => s,
        StartOutcome::NoDirectory => {
            return message(rt, req, 503, "unavailable_heading", "unavailable_text")
        }
        StartOutcome::DirectoryDown => {
            return message(
                rt,
                req,
                503,
                "directory_down_heading",
                "directory_down_text",
            )
        }
        StartOutcome::StateDown => return super::login_down(rt, req),
    };
    let p = &rt.pages;
    let others = format!(
        "{}/.portvakt/login?realm={}&rd={rd}",
        req.portal_origin(rt),
        realm.id
    );
    let ctx = context! {
        mode => "get",
        action => PATH,
        csrf => req.field("csrf").unwrap_or(""),
        rd => rd,
        realm => realm.id.as_str(),
        ceremony => started.ceremony,
        description => username,
        heading => p.t(req.lang, "passkey_login_heading"),
        intro => p.t(req.lang, "passkey_alone_intro"),
        options => started.options,
        others_href => others,
    };
    Reply::html(200, p.render("passkey.html", req.lang, req.request_id, ctx)).with_script()
}

/// POST /.portvakt/passkey/alone: the browser's answer.
pub async fn submit(gw: &Gateway, rt: &Runtime, req: &Req<'_>) -> Reply {
    if !csrf_ok(rt, req) {
        return message(rt, req, 403, "csrf_heading", "csrf_text").decision("csrf");
    }
    let Some(realm) = req
        .field("realm")
        .and_then(|r| rt.config.realm(r))
        .filter(|r| r.passkey_alone)
        .cloned()
    else {
        return message(rt, req, 400, "bad_request_heading", "bad_request_text");
    };
    let rd = req.field("rd").unwrap_or("").to_owned();
    let target = verify_target(rt, req.port_suffix, &rd);
    let previous = match &req.session {
        SessionState::Valid(old, _) => Some(old),
        _ => None,
    };
    let outcome = passwordless::finish(
        gw,
        rt,
        &realm,
        &req.client(),
        req.field("ceremony").unwrap_or(""),
        req.field("response").unwrap_or(""),
        previous,
    )
    .await;
    let id = match outcome {
        FinishOutcome::Session { id, .. } => id,
        FinishOutcome::Refused { .. } => {
            let rd = if target.is_some() { rd } else { String::new() };
            return form(
                rt,
                req,
                401,
                rd,
                "",
                Some("error_passkey_alone"),
                None,
                Some(&realm.id),
            );
        }
        FinishOutcome::DirectoryDown => {
            return message(
                rt,
                req,
                503,
                "directory_down_heading",
                "directory_down_text",
            )
        }
        FinishOutcome::StateDown => return super::login_down(rt, req),
    };
    continue_to(gw, rt, req, &id, target)
        .await
        .status(303)
        .cookie(cookie::set(cookie::SESSION, id.as_str(), None))
        .cookie(cookie::clear(FLOW))
}
