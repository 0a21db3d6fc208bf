//! The password step of login ("Enkel inloggning"): show the form, and
//! show what [`crate::login::password`] decided: the form again, or the
//! session's cookie and the way on to the second step or the target.

use std::sync::Arc;

use minijinja::context;
use rand::RngCore;

use super::{message, second, verify_target, Reply, Req, SessionState, Target};
use crate::config::model::Realm;
use crate::gateway::{Gateway, Runtime};
use crate::login::handoff;
use crate::login::password::{self, Next, PasswordLogin, PasswordOutcome};
use crate::session::cookie::{self, FLOW};
use crate::session::{Method, SessionId};
use crate::signing::Purpose;

/// GET /.portvakt/login
pub async fn show(gw: &Gateway, rt: &Runtime, req: &Req<'_>) -> Reply {
    let rd = req.query_param("rd").unwrap_or_default();
    let target = verify_target(rt, req.port_suffix, &rd);
    // Already logged in (e.g. arriving from a service host without a cookie
    // there): no form, straight on.
    if let SessionState::Valid(id, _) = &req.session {
        return continue_to(gw, rt, req, id, target).await;
    }
    let notice = match req.query_param("notice").as_deref() {
        Some("expired") => Some("notice_expired"),
        Some("logged_out") => Some("notice_logged_out"),
        _ => None,
    };
    let realm_hint = req.query_param("realm");
    form(
        rt,
        req,
        200,
        target.map(|_| rd).unwrap_or_default(),
        "",
        None,
        notice,
        realm_hint.as_deref(),
    )
}

/// The login form; sets a flow cookie if the browser has none.
#[allow(clippy::too_many_arguments)]
pub(super) fn form(
    rt: &Runtime,
    req: &Req<'_>,
    status: u16,
    rd: String,
    username: &str,
    error: Option<&str>,
    notice: Option<&str>,
    realm_hint: Option<&str>,
) -> Reply {
    let (flow, new_flow) = match req
        .cookie
        .and_then(|c| cookie::find(c, FLOW))
        .filter(|f| valid_flow(f))
    {
        Some(f) => (f.to_owned(), false),
        None => {
            let mut bytes = [0u8; 24];
            rand::rngs::OsRng.fill_bytes(&mut bytes);
            (crate::signing::b64(&bytes), true)
        }
    };
    let realm = choose_realm(rt, req.port_suffix, realm_hint, &rd);
    let p = &rt.pages;
    let lang = req.lang;
    // Offer a choice only when nothing decided the realm: no `realm=` from
    // the landing page, and no target service of exactly one realm.
    let candidates = realm_candidates(rt, req.port_suffix, &rd);
    let decided = realm_hint.and_then(|h| rt.config.realm(h)).is_some() || candidates.len() < 2;
    let realms: Vec<_> = if decided {
        Vec::new()
    } else {
        candidates
            .iter()
            .map(|r| context! { id => r.id.as_str(), title => r.title.get(lang) })
            .collect()
    };
    let internal = realm.is_internal(req.client_ip);
    // "Logga in med säkerhetsnyckel" when the realm (or, with a choice,
    // one of them) lets a passkey be the whole login.
    let passkey_alone = if decided {
        realm.passkey_alone
    } else {
        candidates.iter().any(|r| r.passkey_alone)
    };
    let methods: Vec<_> = login_methods(realm, internal)
        .into_iter()
        .map(|m| {
            let hint = if m == Method::Password { String::new() } else { p.t(lang, &format!("method_{}_hint", m.as_str())).to_owned() };
            context! { value => m.as_str(), label => p.t(lang, &format!("method_{}", m.as_str())), hint => hint }
        })
        .collect();
    let ctx = context! {
        methods => methods,
        method => req.field("method").unwrap_or(""),
        action => "/.portvakt/login",
        csrf => rt.signer.csrf(Purpose::LoginCsrf, flow.as_bytes()),
        rd => rd,
        username => username,
        error => error.map(|k| p.t(lang, k)),
        notice => notice.map(|k| p.t(lang, k)),
        realm_title => realm.title.get(lang),
        realms => realms,
        realm => realm.id.as_str(),
        passkey_alone => passkey_alone,
    };
    let mut reply = Reply::html(status, p.render("login.html", lang, req.request_id, ctx));
    if new_flow {
        // The flow cookie lives as long as a login form reasonably stays open.
        reply = reply.cookie(cookie::set(FLOW, &flow, Some(3600)));
    }
    reply
}

/// What the login page offers: inside, the realm's internal list (seed:
/// "Enkel inloggning", "Webbdosa"); outside, its external second factors —
/// the password is asked for first either way.
fn login_methods(realm: &Realm, internal: bool) -> Vec<Method> {
    if internal {
        realm.internal_methods.clone()
    } else {
        realm.second_factors(false).collect()
    }
}

/// Whether the form's `csrf` field is the token of this browser's flow
/// cookie (the forms before a session: login, a passkey alone).
pub(super) fn csrf_ok(rt: &Runtime, req: &Req<'_>) -> bool {
    let flow = req
        .cookie
        .and_then(|c| cookie::find(c, FLOW))
        .filter(|f| valid_flow(f));
    let csrf = req.field("csrf").unwrap_or("");
    flow.is_some_and(|f| rt.signer.csrf_ok(Purpose::LoginCsrf, f.as_bytes(), csrf))
}

fn valid_flow(f: &str) -> bool {
    f.len() == 32
        && f.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The realm for this login: the form's choice, else the target service's, else the first.
fn choose_realm<'a>(
    rt: &'a Runtime,
    port_suffix: &str,
    hint: Option<&str>,
    rd: &str,
) -> &'a Arc<Realm> {
    if let Some(r) = hint.and_then(|h| rt.config.realm(h)) {
        return r;
    }
    let from_target = verify_target(rt, port_suffix, rd).and_then(|t| {
        let path = url::Url::parse(&t.url).ok()?.path().to_owned();
        match rt.router.route(&t.host, &path) {
            crate::routing::Route::Service(s) => Some(rt.realm_for(&s.realms).clone()),
            _ => None,
        }
    });
    match from_target {
        Some(r) => rt.config.realm(&r.id).unwrap_or(&rt.config.realms[0]),
        None => &rt.config.realms[0],
    }
}

/// The realms a login for `rd` may be in: the target service's realms, or all.
fn realm_candidates<'a>(rt: &'a Runtime, port_suffix: &str, rd: &str) -> Vec<&'a Arc<Realm>> {
    let service = verify_target(rt, port_suffix, rd).and_then(|t| {
        let path = url::Url::parse(&t.url).ok()?.path().to_owned();
        match rt.router.route(&t.host, &path) {
            crate::routing::Route::Service(s) => Some(s),
            _ => None,
        }
    });
    match service {
        Some(s) if !s.realms.is_empty() => s
            .realms
            .iter()
            .filter_map(|id| rt.config.realm(id))
            .collect(),
        _ => rt.config.realms.iter().collect(),
    }
}

/// POST /.portvakt/login
pub async fn submit(gw: &Gateway, rt: &Runtime, req: &Req<'_>) -> Reply {
    if !csrf_ok(rt, req) {
        return message(rt, req, 403, "csrf_heading", "csrf_text").decision("csrf");
    }
    let username = req.field("username").unwrap_or("").trim();
    let rd = req.field("rd").unwrap_or("").to_owned();
    let realm = choose_realm(rt, req.port_suffix, req.field("realm"), &rd).clone();
    if req.field("via") == Some("passkey") && realm.passkey_alone {
        return super::passwordless::start(gw, rt, req, &realm, username, &rd).await;
    }
    let internal = realm.is_internal(req.client_ip);
    // Password first, then the second step when the target (or, for the
    // portal, being off-network) needs it, or when the user chose a second
    // method on the login page ("Webbdosa" inside).
    let target = verify_target(rt, req.port_suffix, &rd);
    let chosen = req.field("method").and_then(second::Choice::parse);
    let needed = second::required_level(rt, &realm, target.as_ref(), internal) >= 2;
    let input = PasswordLogin {
        username,
        password: req.field("password").unwrap_or(""),
        previous: match &req.session {
            SessionState::Valid(old, _) => Some(old),
            _ => None,
        },
        second_step: needed || chosen.is_some(),
    };
    let (id, session, next) = match password::login(gw, rt, &realm, &req.client(), input).await {
        PasswordOutcome::Session { id, session, next } => (id, session, next),
        // One answer for every refusal: the reason is the log's alone.
        PasswordOutcome::Refused { .. } => {
            let rd = if target.is_some() { rd } else { String::new() };
            return form(
                rt,
                req,
                401,
                rd,
                username,
                Some("error_invalid"),
                None,
                Some(&realm.id),
            );
        }
        PasswordOutcome::NoDirectory => {
            return message(rt, req, 503, "unavailable_heading", "unavailable_text")
        }
        PasswordOutcome::DirectoryDown => {
            return message(
                rt,
                req,
                503,
                "directory_down_heading",
                "directory_down_text",
            )
        }
        PasswordOutcome::StateDown => return super::login_down(rt, req),
    };
    let reply = match (next, chosen) {
        (Next::Continue, _) => continue_to(gw, rt, req, &id, target).await.status(303),
        // One obvious destination: start it now (sends the code).
        (Next::SecondStep, Some(choice)) if choice.method != Method::Sms => {
            second::start(gw, rt, req, &id, &session, &rd, choice).await
        }
        (Next::SecondStep, Some(choice)) => {
            let numbers = match gw
                .store
                .sms_numbers(&crate::storage::UserRef::of(&session))
                .await
            {
                Ok(n) => n,
                Err(e) => return super::account::storage_failed(rt, req, e),
            };
            if numbers.len() == 1 {
                let choice = second::Choice {
                    method: Method::Sms,
                    number: Some(numbers[0].position),
                };
                second::start(gw, rt, req, &id, &session, &rd, choice).await
            } else {
                Reply::redirect(
                    303,
                    &format!(
                        "{}&method={}",
                        second::second_url(req, rt, &rd),
                        choice.value()
                    ),
                )
            }
        }
        (Next::SecondStep, None) => Reply::redirect(303, &second::second_url(req, rt, &rd)),
    };
    reply
        .cookie(cookie::set(cookie::SESSION, id.as_str(), None))
        .cookie(cookie::clear(FLOW))
}

/// Send a logged-in browser on: straight to a portal-host target, through a
/// handoff code to a service host, or to the portal front page.
///
/// A code is only issued for a target that carries the binding of the nonce
/// the service host gave this browser: the code then works for this browser
/// alone. A target without one (an old link, a step started on the portal)
/// is sent to the service host itself, which sends the browser back here
/// with a nonce; the portal session is live by then, so that costs one more
/// round trip and no form.
pub(super) async fn continue_to(
    gw: &Gateway,
    rt: &Runtime,
    req: &Req<'_>,
    id: &SessionId,
    target: Option<Target>,
) -> Reply {
    let portal_front = format!("{}/", req.portal_origin(rt));
    let Some(target) = target else {
        return Reply::redirect(302, &portal_front);
    };
    if target.host == rt.config.portal_host {
        return Reply::redirect(302, &target.url);
    }
    let Some(binding) = target.binding else {
        return Reply::redirect(302, &target.url);
    };
    let code = match handoff::issue(gw, id, &target.host, binding).await {
        Ok(code) => code,
        Err(e) => return super::state_failed(rt, req, &e),
    };
    let origin = url::Url::parse(&target.url)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_else(|_| format!("https://{}", target.host));
    let rd = super::return_token(rt, &target.url);
    Reply::redirect(
        302,
        &format!("{origin}/.portvakt/handoff?code={code}&rd={rd}"),
    )
}

impl Reply {
    /// Change the status (e.g. 303 after a POST).
    pub fn status(mut self, status: u16) -> Reply {
        self.status = status;
        self
    }
}
