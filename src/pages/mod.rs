//! portvakt's own pages under `/.portvakt/` (every host) and the portal
//! host's front page: login, handoff, logout, assets, and the branded pages
//! for errors and refusals.
//!
//! Handlers take a [`Req`] and return a [`Reply`]; they know nothing of
//! pingora, so the proxy decides how replies are written. The login flow's
//! decisions (password, regulation, the session, the second step, re-auth,
//! handoff) are made in [`crate::login`]; these pages only render its
//! outcomes (template, status, cookies, redirect).
//!
//! - [`login`]: the password form and what happens after it.
//! - [`logout`]: the handoff page on service hosts, logout everywhere.
//! - [`portal`]: the portal front page.
//! - [`second`]: the second step of login and step-up (one-time codes).
//! - [`account`]: self-service rules (internal only, recent password, notices).
//! - [`sms_numbers`]: "Mina SMS-nummer".
//! - [`authenticator`]: "Mina inställningar" and connecting an authenticator app.
//! - [`passkey`]: registering a passkey or security key, and using one at login.
//! - [`qr`]: QR codes as PNG data URIs.
//! - [`templates`]: minijinja templates and language files.

pub mod account;
pub mod authenticator;
pub mod closed;
pub mod login;
pub mod logout;
pub mod passkey;
pub mod passwordless;
pub mod portal;
pub mod qr;
pub mod reply;
pub mod second;
pub mod sms_numbers;
pub mod templates;

use std::net::IpAddr;
use std::sync::Arc;

use crate::audit::{Event, Outcome, Reason};
use crate::config::types::Lang;
use crate::gateway::{Gateway, Runtime};
use crate::session::{Session, SessionId};
use crate::signing::Purpose;

pub use closed::page as closed;
pub use reply::Reply;

/// Reserved path prefix on every host.
pub const PREFIX: &str = "/.portvakt/";
/// Where CSS and the logo are served.
pub const ASSET_BASE: &str = "/.portvakt/assets";
/// Our only script (embedded, never from a templates directory: what runs
/// in the login page's origin is what we ship).
const PASSKEY_JS: &str = include_str!("../../html/static/passkey.js");
/// Largest form body we read.
pub const MAX_FORM_BYTES: usize = 64 * 1024;
/// Most fields a form of ours may have; our largest has six.
pub const MAX_FORM_FIELDS: usize = 32;

/// Parse an `application/x-www-form-urlencoded` body (already capped at
/// [`MAX_FORM_BYTES`]). `None` when it has more than [`MAX_FORM_FIELDS`]
/// fields: each field is an allocation, and no page of ours needs more.
pub fn parse_form(body: &[u8]) -> Option<Vec<(String, String)>> {
    let mut fields = Vec::new();
    for (k, v) in form_urlencoded::parse(body) {
        if fields.len() == MAX_FORM_FIELDS {
            return None;
        }
        fields.push((k.into_owned(), v.into_owned()));
    }
    Some(fields)
}

/// The session cookie's state on this request.
#[derive(Debug, Clone)]
pub enum SessionState {
    /// No cookie.
    None,
    /// A cookie naming a live session.
    Valid(SessionId, Arc<Session>),
    /// A cookie naming a session that ended (idle, lifetime, logout elsewhere).
    Ended,
    /// A cookie, but the shared state did not answer: whether it names a
    /// session is unknown, so nothing is allowed and nothing is asked again
    /// (a login page now would loop: the next login cannot be stored either).
    Unavailable,
}

impl SessionState {
    /// The live session, if any.
    pub fn session(&self) -> Option<&Arc<Session>> {
        match self {
            SessionState::Valid(_, s) => Some(s),
            _ => None,
        }
    }
}

/// What our page handlers need to know about a request.
#[derive(Debug)]
pub struct Req<'a> {
    /// HTTP method.
    pub method: &'a http::Method,
    /// Host, lower case, no port.
    pub host: &'a str,
    /// `:port` when the client used a non-default port, else empty; kept in
    /// every URL we build so redirects work behind port mappings.
    pub port_suffix: &'a str,
    /// Path.
    pub path: &'a str,
    /// Query string.
    pub query: Option<&'a str>,
    /// `Cookie` header.
    pub cookie: Option<&'a str>,
    /// Chosen language.
    pub lang: Lang,
    /// Client address.
    pub client_ip: IpAddr,
    /// Request id.
    pub request_id: &'a str,
    /// Session from the cookie.
    pub session: SessionState,
    /// Form body (POST).
    pub form: Vec<(String, String)>,
}

impl<'a> Req<'a> {
    /// The client, as the login flow's core ([`crate::login`]) takes it.
    pub fn client(&self) -> crate::login::Client<'a> {
        crate::login::Client {
            ip: self.client_ip,
            request_id: self.request_id,
            host: self.host,
        }
    }
}

impl Req<'_> {
    /// First query parameter `name`.
    pub fn query_param(&self, name: &str) -> Option<String> {
        form_urlencoded::parse(self.query.unwrap_or("").as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    /// First form field `name`.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// `https://host[:port]` of this request.
    pub fn origin(&self) -> String {
        format!("https://{}{}", self.host, self.port_suffix)
    }

    /// `https://portal[:port]`.
    pub fn portal_origin(&self, rt: &Runtime) -> String {
        format!("https://{}{}", rt.config.portal_host, self.port_suffix)
    }
}

/// Serve a request for `/.portvakt/…` on any host, or a portal-host page.
pub async fn handle(gw: &Gateway, rt: &Runtime, req: &Req<'_>) -> Reply {
    if matches!(req.session, SessionState::Unavailable)
        && !req.path.starts_with("/.portvakt/assets/")
    {
        return login_down(rt, req);
    }
    let is_get = req.method == http::Method::GET || req.method == http::Method::HEAD;
    let is_post = req.method == http::Method::POST;
    let on_portal = req.host == rt.config.portal_host;
    match req.path {
        "/.portvakt/login" if on_portal && is_get => login::show(gw, rt, req).await,
        "/.portvakt/login" if on_portal && is_post => login::submit(gw, rt, req).await,
        "/.portvakt/login" if on_portal => method_not_allowed(rt, req),
        "/.portvakt/login" if is_get => {
            // A login link on a service host: send it to the portal.
            let mut to = format!("{}/.portvakt/login", req.portal_origin(rt));
            if let Some(q) = req.query {
                to.push('?');
                to.push_str(q);
            }
            Reply::redirect(302, &to)
        }
        "/.portvakt/second" if on_portal && is_get => second::choose(gw, rt, req).await,
        "/.portvakt/second" if on_portal && is_post => second::chosen(gw, rt, req).await,
        "/.portvakt/code" if on_portal && is_get => second::code_form(rt, req),
        "/.portvakt/code" if on_portal && is_post => second::code_submit(gw, rt, req).await,
        "/.portvakt/second" | "/.portvakt/code" if on_portal => method_not_allowed(rt, req),
        "/.portvakt/reauth" if on_portal && is_get => account::reauth_form(rt, req),
        "/.portvakt/reauth" if on_portal && is_post => account::reauth_submit(gw, rt, req).await,
        sms_numbers::PATH if on_portal && is_get => sms_numbers::show(gw, rt, req).await,
        sms_numbers::PATH if on_portal && is_post => sms_numbers::submit(gw, rt, req).await,
        authenticator::PATH if on_portal && is_get => authenticator::settings(gw, rt, req).await,
        authenticator::PATH if on_portal && is_post => {
            authenticator::settings_submit(gw, rt, req).await
        }
        authenticator::ENROL_PATH if on_portal && is_get => authenticator::enrol(gw, rt, req),
        authenticator::ENROL_PATH if on_portal && is_post => {
            authenticator::enrol_submit(gw, rt, req).await
        }
        passkey::ENROL_PATH if on_portal && is_get => passkey::enrol(gw, rt, req),
        passkey::ENROL_PATH if on_portal && is_post => passkey::enrol_submit(gw, rt, req).await,
        passkey::LOGIN_PATH if on_portal && is_get => passkey::login(gw, rt, req).await,
        passkey::LOGIN_PATH if on_portal && is_post => passkey::login_submit(gw, rt, req).await,
        passwordless::PATH if on_portal && is_post => passwordless::submit(gw, rt, req).await,
        "/.portvakt/reauth"
        | sms_numbers::PATH
        | authenticator::PATH
        | authenticator::ENROL_PATH
        | passkey::ENROL_PATH
        | passkey::LOGIN_PATH
        | passwordless::PATH
            if on_portal =>
        {
            method_not_allowed(rt, req)
        }
        "/.portvakt/handoff" if is_get => logout::handoff(gw, rt, req).await,
        "/.portvakt/logout" if is_get => logout::confirm(rt, req),
        "/.portvakt/logout" if is_post => logout::submit(gw, rt, req).await,
        "/.portvakt/logout" | "/.portvakt/handoff" => method_not_allowed(rt, req),
        "/.portvakt/assets/portvakt.css" if is_get => {
            Reply::asset(rt.pages.css.clone(), "text/css; charset=utf-8")
        }
        "/.portvakt/assets/theme.css" if is_get => {
            Reply::asset(rt.pages.theme_css.clone(), "text/css; charset=utf-8")
        }
        "/.portvakt/assets/passkey.js" if is_get => Reply::asset(
            std::sync::Arc::from(PASSKEY_JS.as_bytes()),
            "text/javascript; charset=utf-8",
        ),
        "/.portvakt/assets/logo" if is_get => {
            Reply::asset(rt.pages.logo.0.clone(), rt.pages.logo.1)
        }
        "/" if on_portal && is_get => portal::front(rt, req, gw.clock.now_timestamp()),
        p if is_get && p.starts_with("/.portvakt/assets/icons/") => {
            icon(rt, req, &p["/.portvakt/assets/icons/".len()..])
        }
        _ => message(rt, req, 404, "not_found_heading", "not_found_text"),
    }
}

/// A branded page with a heading and a text from the language file.
pub fn message(rt: &Runtime, req: &Req<'_>, status: u16, heading: &str, text: &str) -> Reply {
    message_with(rt, req.lang, req.request_id, status, heading, text, None)
}

/// "Login is not working right now" (503): the shared state or the store
/// did not answer in time. Logged-in requests get it too, rather than a
/// login page that could not store the next login either.
pub fn login_down(rt: &Runtime, req: &Req<'_>) -> Reply {
    message(rt, req, 503, "login_down_heading", "login_down_text").decision("unavailable")
}

/// The answer when the shared state fails: logged (the outage itself is
/// audited once, by the health watch), and [`login_down`].
pub fn state_failed(rt: &Runtime, req: &Req<'_>, e: &crate::state::StateError) -> Reply {
    tracing::warn!(error = %e, request_id = req.request_id, "shared state failed");
    login_down(rt, req)
}

/// [`message`] without a [`Req`], with an optional link (href, label key).
pub fn message_with(
    rt: &Runtime,
    lang: Lang,
    request_id: &str,
    status: u16,
    heading: &str,
    text: &str,
    link: Option<(&str, &str)>,
) -> Reply {
    let p = &rt.pages;
    let ctx = minijinja::context! {
        status => status,
        heading => p.t(lang, heading),
        text => p.t(lang, text),
        link => link.map(|(href, label)| minijinja::context! { href => href, label => p.t(lang, label) }),
    };
    Reply::html(status, p.render("message.html", lang, request_id, ctx))
}

/// A service's icon, by service index.
fn icon(rt: &Runtime, req: &Req<'_>, index: &str) -> Reply {
    let icon = index
        .parse::<usize>()
        .ok()
        .and_then(|i| rt.config.services.get(i))
        .and_then(|s| s.icon.as_ref());
    match icon.and_then(|path| std::fs::read(path).ok().map(|b| (path, b))) {
        Some((path, bytes)) => {
            let kind = if path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("png"))
            {
                "image/png"
            } else {
                "image/svg+xml"
            };
            Reply::asset(std::sync::Arc::from(bytes), kind)
        }
        None => message(rt, req, 404, "not_found_heading", "not_found_text"),
    }
}

fn method_not_allowed(rt: &Runtime, req: &Req<'_>) -> Reply {
    message(
        rt,
        req,
        405,
        "method_not_allowed_heading",
        "method_not_allowed_text",
    )
    .header(http::header::ALLOW, "GET, POST")
}

/// The auth event every page acting for a logged-in user starts from: that
/// user and realm, this request's client, network and id.
pub fn session_event<'a>(
    gw: &Gateway,
    event: Event,
    result: Outcome,
    reason: Reason,
    session: &'a Session,
    req: &Req<'a>,
    internal: bool,
) -> crate::audit::AuthEvent<'a> {
    gw.event(
        event,
        result,
        reason,
        Some(&session.user),
        Some(&session.realm),
        req.client_ip,
        internal,
        req.request_id,
    )
}

/// The CSRF token for forms shown to a logged-in session.
pub fn session_csrf(rt: &Runtime, id: &SessionId) -> String {
    rt.signer.csrf(Purpose::SessionCsrf, &id.key().0)
}

/// The signed return token for `url` (an absolute https URL we built),
/// bound to no browser: a login for it that ends on a service host goes
/// through that host once more to bind itself (see [`login::continue_to`]).
pub fn return_token(rt: &Runtime, url: &str) -> String {
    rt.signer.sign(Purpose::Return, url)
}

/// Prefix of a bound return token's payload (`bound:<binding> <url>`); an
/// unbound payload is the URL itself, which starts with `https://`.
const BOUND: &str = "bound:";

/// The signed return token for `url`, carrying the [`binding`] of the
/// handoff nonce the browser got on `url`'s host.
///
/// [`binding`]: crate::session::handoff::binding
pub fn bound_return_token(rt: &Runtime, url: &str, binding: &str) -> String {
    rt.signer
        .sign(Purpose::Return, &format!("{BOUND}{binding} {url}"))
}

/// A verified return address: signed by us, https, and naming a host and
/// port we serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The full URL.
    pub url: String,
    /// Its host, lower case.
    pub host: String,
    /// The handoff binding it carries, if it was made on a service host
    /// that gave the browser a nonce.
    pub binding: Option<String>,
}

/// Check a return token on a request that came in with `port_suffix` (see
/// [`Req::port_suffix`]). Anything unsigned, tampered, or naming a host or
/// port we do not serve is refused (no open redirect; a code for
/// `app.test:4444` would go to whatever listens there).
pub fn verify_target(rt: &Runtime, port_suffix: &str, token: &str) -> Option<Target> {
    verify_return(
        &rt.signer,
        |host| rt.router.is_known_host(host),
        rt.config.https_addr.port(),
        port_suffix,
        token,
    )
}

/// [`verify_target`] without the runtime (for tests and the fuzz target):
/// `known_host` says which hosts we serve, `listener` is our HTTPS port.
pub fn verify_return(
    signer: &crate::signing::Signer,
    known_host: impl Fn(&str) -> bool,
    listener: u16,
    port_suffix: &str,
    token: &str,
) -> Option<Target> {
    let payload = signer.verify(Purpose::Return, token)?;
    let (binding, url) = split_payload(&payload)?;
    let (binding, url) = (binding.map(str::to_owned), url.to_owned());
    let parsed = url::Url::parse(&url).ok()?;
    if parsed.scheme() != "https" || !parsed.username().is_empty() || parsed.password().is_some() {
        return None;
    }
    if !port_allowed(listener, port_suffix, parsed.port()) {
        return None;
    }
    let host = parsed.host_str()?.to_ascii_lowercase();
    known_host(&host).then_some(Target { url, host, binding })
}

/// Whether an https URL's port (`None`: the default, 443) is ours: 443, the
/// port of our HTTPS listener (a browser reaching us directly on a high
/// port), or the port this very request came in on (`port_suffix`, from its
/// Host header: behind a port mapping the browser's port is not our
/// listener's, but the browser just reached us through it). A token made
/// from a forged Host port therefore only ever works for whoever forged it,
/// on a request that names that port itself.
pub fn serves_port(rt: &Runtime, port_suffix: &str, port: Option<u16>) -> bool {
    port_allowed(rt.config.https_addr.port(), port_suffix, port)
}

/// [`serves_port`] without the runtime.
fn port_allowed(listener: u16, port_suffix: &str, port: Option<u16>) -> bool {
    match port {
        None | Some(443) => true,
        Some(p) => {
            p == listener
                || port_suffix
                    .strip_prefix(':')
                    .and_then(|s| s.parse::<u16>().ok())
                    == Some(p)
        }
    }
}

/// A return token's payload: the binding, if bound, and the URL.
fn split_payload(payload: &str) -> Option<(Option<&str>, &str)> {
    match payload.strip_prefix(BOUND) {
        Some(rest) => rest.split_once(' ').map(|(b, u)| (Some(b), u)),
        None => Some((None, payload)),
    }
}

/// The return token (`rd`) this request carries — form field, else query —
/// kept only if it verifies; empty otherwise. Pages pass it on unchanged.
pub fn carried_rd(rt: &Runtime, req: &Req<'_>) -> String {
    req.field("rd")
        .map(str::to_owned)
        .or_else(|| req.query_param("rd"))
        .filter(|rd| verify_target(rt, req.port_suffix, rd).is_some())
        .unwrap_or_default()
}

/// Send a browser without a session on this host to the login page,
/// returning to `here`. On a service host the browser gets a handoff nonce
/// cookie (its existing one if it has one, so two tabs logging in at once
/// do not undo each other) and the return address carries its binding.
pub fn login_redirect(
    rt: &Runtime,
    host: &str,
    port_suffix: &str,
    cookies: Option<&str>,
    here: &str,
    notice: Option<&str>,
) -> Reply {
    if host == rt.config.portal_host {
        return Reply::redirect(302, &login_url(rt, port_suffix, here, notice));
    }
    let (nonce_cookie, binding) = handoff_nonce(cookies);
    let mut url = format!(
        "https://{}{}/.portvakt/login?rd={}",
        rt.config.portal_host,
        port_suffix,
        bound_return_token(rt, here, &binding)
    );
    if let Some(n) = notice {
        url.push_str("&notice=");
        url.push_str(n);
    }
    Reply::redirect(302, &url).cookie(nonce_cookie)
}

/// The handoff nonce for this browser on a service host: the `Set-Cookie`
/// value (set or refreshed) and the binding to sign into a return address.
pub fn handoff_nonce(cookies: Option<&str>) -> (String, String) {
    use crate::session::{cookie, handoff};
    let nonce = cookies
        .and_then(|c| cookie::find(c, cookie::HANDOFF))
        .filter(|n| handoff::valid_nonce(n))
        .map(str::to_owned)
        .unwrap_or_else(handoff::new_nonce);
    let set = cookie::set(cookie::HANDOFF, &nonce, Some(cookie::HANDOFF_MAX_AGE_SECS));
    (set, handoff::binding(&nonce))
}

/// The login URL for a request that needs one, returning to `here`.
pub fn login_url(rt: &Runtime, req_port_suffix: &str, here: &str, notice: Option<&str>) -> String {
    let mut url = format!(
        "https://{}{}/.portvakt/login?rd={}",
        rt.config.portal_host,
        req_port_suffix,
        return_token(rt, here)
    );
    if let Some(n) = notice {
        url.push_str("&notice=");
        url.push_str(n);
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_ports_are_ours_or_the_requests_own() {
        assert!(port_allowed(8443, "", None));
        assert!(port_allowed(8443, "", Some(443)));
        assert!(port_allowed(8443, "", Some(8443)));
        assert!(!port_allowed(8443, "", Some(4444)));
        // Behind a port mapping: the port the browser came in on.
        assert!(port_allowed(443, ":18443", Some(18443)));
        assert!(!port_allowed(443, ":18443", Some(4444)));
        assert!(!port_allowed(443, ":x", Some(4444)));
    }

    #[test]
    fn bound_and_unbound_payloads_split() {
        assert_eq!(
            split_payload("https://app.test/x"),
            Some((None, "https://app.test/x"))
        );
        assert_eq!(
            split_payload("bound:abc https://app.test/x y"),
            Some((Some("abc"), "https://app.test/x y"))
        );
        assert_eq!(split_payload("bound:abc"), None);
    }
}
