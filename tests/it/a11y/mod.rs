//! Accessibility, WCAG 2.1 AA (issue 15), in a real headless Chromium:
//! axe-core on every page and state the gateway serves, in Swedish and in
//! English, with reflow at 320 CSS px and 200 % zoom, `lang`, and errors
//! tied to their fields (`pages.rs`); and a keyboard-only journey through
//! login and the authenticator enrolment, with a visible focus indicator on
//! everything that gets the focus (`keyboard.rs`). The checks themselves
//! are in `support/a11y.rs`.
//!
//! The journeys press buttons and follow links by what they are (the form
//! that holds `#password`, the link to `/.portvakt/sms`), not by their
//! text, so one journey serves both languages.

mod keyboard;
mod pages;

use crate::support::browser::Browser;
use crate::support::enrol::{admin, token_import};
use crate::support::users::users_yaml;
use crate::support::*;

/// RFC 4226's test secret (HOTP), as hex: alice's hardware token.
const TOKEN_SECRET_HEX: &str = "3132333435363738393031323334353637383930";

/// Every kind of page: two realms (so the landing page and the realm
/// choice exist), `staff` with every second factor from home and a passkey
/// alone, `app.test` needing two factors from home, `stangd.test` closed
/// all day today (a holiday), a user locked after five failures, codes to
/// the outbox, and a hardware token for alice.
pub(crate) async fn gateway(upstream: &Upstream) -> Gateway {
    let today = jiff::Zoned::now()
        .with_time_zone(jiff::tz::TimeZone::get("Europe/Stockholm").expect("zone"))
        .date();
    let gw = GatewayConfig::new()
        .throttle(5, 100)
        .realm_methods(
            &["password", "token"],
            &["sms", "email", "totp", "token", "passkey"],
        )
        .passkey_alone()
        .realm("school", "users-school.yaml", &users_yaml())
        .service(
            Service::new("app.test", upstream.url())
                .name("Appen")
                .policy("two_factor_offsite")
                .with("realms: [staff]"),
        )
        .service(
            Service::new("stangd.test", upstream.url())
                .name("Stängd tjänst")
                .policy("one_factor")
                .with(&format!(
                    "realms: [staff]\nhours: {{ days: daily, from: \"00:00\", to: \"24:00\", holidays: [\"{today}\"] }}"
                )),
        )
        .extra_yaml(
            "notify:\n  sms: { console: false }\n  email: { console: false }\n  outbox: outbox\n",
        )
        .start()
        .await;
    let out = token_import(
        &gw,
        "tokens.csv",
        &format!(
            "serial,type,secret,digits,period_or_counter\nA1000001,hotp,{TOKEN_SECRET_HEX},6,0\n"
        ),
    );
    assert!(out.status.success(), "token import: {out:?}");
    let out = admin(
        &gw,
        &[
            "token", "assign", "--realm", "staff", "A1000001", ALICE.name,
        ],
    );
    assert!(out.status.success(), "token assign: {out:?}");
    gw
}

/// Click the element matching `css` and wait for the next page.
pub(crate) async fn click(b: &Browser, css: &str) {
    let e = b.find(css).await;
    b.click_and_wait(&e, css).await;
}

/// Submit the form that holds `css` with its first submit button.
pub(crate) async fn submit(b: &Browser, css: &str) {
    b.press_for(css).await;
}

/// Run `js` (which submits a form) and wait for the page it leads to.
pub(crate) async fn submit_by_script(b: &Browser, js: &str) {
    b.mark_page().await;
    b.script(js).await;
    b.wait_new_page(js).await;
}

/// The path of the page the browser shows.
pub(crate) async fn path(b: &Browser) -> String {
    b.url().await.path().to_string()
}

/// A refused SMS number is shown again in its field (so it can be
/// corrected there): escaped, and cut to 32 characters, whatever was posted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_number_shown_again_is_escaped_and_cut() {
    use crate::support::enrol::inputs;
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream).await;
    let alice = gw.client();
    let portal = alice
        .login_as(
            "https://portal.test/.portvakt/login?realm=staff",
            ALICE.name,
            ALICE.password,
        )
        .await
        .end;
    assert_eq!(portal.status, 200, "{}", portal.describe());
    let page = alice.get("https://portal.test/.portvakt/sms").await;
    let csrf = page.input_value("csrf").expect("the form's CSRF token");
    let hostile = format!("\"><img src=x onerror=alert(1)>{}", "9".repeat(5000));
    let refused = alice
        .post_form(
            "https://portal.test/.portvakt/sms",
            &[
                ("csrf", &csrf),
                ("action", "set"),
                ("position", "1"),
                ("number", &hostile),
            ],
        )
        .await;
    assert_eq!(refused.status, 400, "{}", refused.describe());
    // The raw body (`text()` would undo the escapes).
    let html = refused.body.clone();
    assert!(!html.contains("<img src=x"), "the number was not escaped");
    let field = inputs(&html)
        .into_iter()
        .find(|attrs| attrs.iter().any(|(k, v)| k == "id" && v == "number-1"))
        .expect("the second number's field");
    let attr = |name: &str| {
        field
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let expected: String = hostile.chars().take(32).collect();
    assert_eq!(attr("value"), Some(expected.as_str()));
    assert_eq!(attr("aria-invalid"), Some("true"));
    assert!(
        !html.contains(&"9".repeat(33)),
        "more than 32 characters echoed"
    );
}
