//! axe-core and the page rules of `support/a11y.rs` on every page and
//! state the gateway serves, once in Swedish and once in English: the
//! landing page and the realm choice, login and its errors and lockout,
//! the branded error pages (404, 400, 403 CSRF, 403 from home), a closed
//! service, the portal, Mina SMS-nummer and its confirmation, Mina
//! inställningar with the three authenticator steps and the passkey pages,
//! logging out, and from home the second step, every code page, the
//! passkey at login, a passkey alone, and the password asked again.
//!
//! Each state is checked where a user meets it; the journey asserts only
//! where it is (paths, fields), so a page that changes its text does not
//! break it, and the findings are judged all at once at the end
//! ([`Audit::finish`]), so one run lists every page's problems.

use crate::a11y::{click, gateway, path, submit, submit_by_script};
use crate::browser::Outbox;
use crate::support::a11y::{self_test, Audit};
use crate::support::browser::{Browser, BrowserOptions};
use crate::support::enrol::totp_code;
use crate::support::forwarder::Forwarder;
use crate::support::webauthn::SecurityKey;
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_in_swedish_meets_wcag_2_1_aa() {
    every_page("every_page_in_swedish_meets_wcag_2_1_aa", "sv").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_in_english_meets_wcag_2_1_aa() {
    every_page("every_page_in_english_meets_wcag_2_1_aa", "en").await;
}

async fn every_page(test: &str, lang: &'static str) {
    let started = std::time::Instant::now();
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream).await;
    let phone = Outbox::of(&gw);
    let home = Forwarder::offsite(gw.https_addr()).await;
    let options = match lang {
        "en" => BrowserOptions::desktop().english(),
        _ => BrowserOptions::desktop(),
    };
    let b = Browser::launch(test, gw.pki(), options).await;
    let key = SecurityKey::plug_into(&b).await;
    let work = format!("https://portal.test:{}", gw.https_port());
    let at_home = format!("https://portal.test:{}", home.port());
    let app_at_home = format!("https://app.test:{}/", home.port());
    let mut audit = Audit::new(test, lang);

    at_work_logged_out(&b, &mut audit, &work, &gw).await;
    at_work_logged_in(&b, &mut audit, &work, &phone).await;
    from_home(&b, &mut audit, &at_home, &app_at_home, &phone).await;
    passkey_alone_then_reauth(&b, &mut audit, &work, &app_at_home).await;
    assert!(
        !key.credentials().await.is_empty(),
        "the virtual key holds the passkey"
    );
    eprintln!(
        "a11y {lang}: {} pages in {:?}",
        audit.pages().len(),
        started.elapsed()
    );
    audit.finish();
}

/// Realm choice, login and its errors, lockout, the error pages, a closed
/// service: everything before a session.
async fn at_work_logged_out(b: &Browser, audit: &mut Audit, work: &str, gw: &Gateway) {
    b.open(&format!("{work}/")).await;
    assert!(b.has("a[href='/.portvakt/login?realm=staff']").await);
    self_test(b).await;
    audit.check(b, "landing-realm-choice").await;

    b.open(&format!("{work}/.portvakt/login")).await;
    assert!(b.has("input[type=radio][name=realm]").await);
    audit.check(b, "login-realm-radios").await;

    b.open(&format!("{work}/")).await;
    click(b, "a[href='/.portvakt/login?realm=staff']").await;
    assert!(b.has("input[type=radio][name=method]").await);
    audit.check(b, "login").await;

    b.type_into("#username", ALICE.name).await;
    b.type_into("#password", "not her password").await;
    submit(b, "#password").await;
    assert!(b.has("#login-error").await, "no error for a wrong password");
    audit.check(b, "login-wrong-password").await;

    // Bob's five failures lock him: then his right password gets the
    // same answer.
    for _ in 0..5 {
        b.type_into("#username", BOB.name).await;
        b.type_into("#password", "wrong again").await;
        submit(b, "#password").await;
    }
    b.type_into("#username", BOB.name).await;
    b.type_into("#password", BOB.password).await;
    submit(b, "#password").await;
    assert!(b.has("#login-error").await, "bob is not locked");
    gw.wait_auth_log("bob's lock", |lines| {
        lines
            .iter()
            .any(|l| l["user"] == "bob" && l["reason"].as_str().is_some_and(|r| r.contains("lock")))
    })
    .await;
    audit.check(b, "login-locked").await;

    b.open(&format!(
        "{work}/.portvakt/login?realm=staff&notice=logged_out"
    ))
    .await;
    assert!(b.has("#login-notice").await);
    audit.check(b, "login-notice").await;

    // 403: the login form posted with a token that is not this browser's.
    b.script("document.querySelector('input[name=csrf]').value = 'not-the-token'; return null;")
        .await;
    b.type_into("#username", ALICE.name).await;
    b.type_into("#password", ALICE.password).await;
    submit(b, "#password").await;
    assert_eq!(path(b).await, "/.portvakt/login");
    assert!(
        !b.has("#password").await,
        "the forged form was answered with the form"
    );
    audit.check(b, "error-403-csrf").await;

    // 400: a passkey-alone answer for a realm that does not exist, posted
    // with this browser's own CSRF token.
    b.open(&format!("{work}/.portvakt/login?realm=staff")).await;
    submit_by_script(
        b,
        "const csrf = document.querySelector('input[name=csrf]').value;
         const f = document.createElement('form');
         f.method = 'post'; f.action = '/.portvakt/passkey/alone';
         for (const [k, v] of [['csrf', csrf], ['realm', 'nope'], ['ceremony', 'x'], ['response', '{}']]) {
           const i = document.createElement('input'); i.type = 'hidden'; i.name = k; i.value = v; f.appendChild(i);
         }
         document.body.appendChild(f); f.submit(); return null;",
    )
    .await;
    assert!(!b.has("form[data-passkey]").await);
    audit.check(b, "error-400-bad-request").await;

    b.open(&format!("{work}/%zz")).await;
    audit.check(b, "error-400-bad-path").await;

    b.open(&format!("{work}/.portvakt/no-such-page")).await;
    audit.check(b, "error-404").await;

    b.open(&format!("https://stangd.test:{}/", gw.https_port()))
        .await;
    assert_eq!(b.url().await.host_str(), Some("stangd.test"));
    audit.check(b, "closed-service").await;
}

/// The portal, Mina SMS-nummer, Mina inställningar, the authenticator and
/// passkey enrolments, logging out.
async fn at_work_logged_in(b: &Browser, audit: &mut Audit, work: &str, phone: &Outbox) {
    b.open(&format!("{work}/.portvakt/login?realm=staff")).await;
    b.type_into("#username", ALICE.name).await;
    b.type_into("#password", ALICE.password).await;
    submit(b, "#password").await;
    assert_eq!(path(b).await, "/");
    assert!(
        b.has(".service--closed").await,
        "the closed service is listed"
    );
    audit.check(b, "portal").await;

    // Mina SMS-nummer: a number the server refuses, then one it takes.
    click(b, "a[href='/.portvakt/sms']").await;
    audit.check(b, "sms-numbers").await;
    b.type_into("#number-0", "12345").await;
    submit(b, "#number-0").await;
    assert!(b.has("#sms-error").await, "12345 was not refused");
    // The field it was typed into is marked, focused and keeps it.
    assert_eq!(
        b.attribute("#number-0", "aria-invalid").await.as_deref(),
        Some("true")
    );
    assert_eq!(b.attribute("#number-1", "aria-invalid").await, None);
    assert_eq!(
        b.script("return document.activeElement.id;").await,
        serde_json::json!("number-0")
    );
    assert_eq!(
        b.attribute("#number-0", "value").await.as_deref(),
        Some("12345")
    );
    audit.check(b, "sms-numbers-invalid").await;
    let before = phone.count("sms");
    b.type_into("#number-0", "0701234567").await;
    submit(b, "#number-0").await;
    assert!(b.has("#code").await, "no confirmation step");
    audit.check(b, "sms-confirm").await;
    let code = phone.wait_for_new("sms", before).await.code();
    b.type_into("#code", &wrong(&code)).await;
    submit(b, "#code").await;
    assert!(b.has("#confirm-error").await, "a wrong code was taken");
    audit.check(b, "sms-confirm-wrong-code").await;
    b.type_into("#code", &code).await;
    submit(b, "#code").await;
    assert_eq!(path(b).await, "/.portvakt/sms");
    audit.check(b, "sms-numbers-saved").await;

    // Mina inställningar and the three steps of the authenticator.
    b.open(&format!("{work}/.portvakt/settings")).await;
    audit.check(b, "settings").await;
    click(b, "a[href='/.portvakt/settings/authenticator']").await;
    audit.check(b, "enrol-step-1").await;
    b.type_into("#description", "   ").await;
    submit(b, "#description").await;
    assert!(b.has("#enrol-error").await, "a blank description was taken");
    audit.check(b, "enrol-step-1-error").await;
    b.type_into("#description", "Jobbtelefonen").await;
    submit(b, "#description").await;
    let secret: String = b.text_of("code#secret").await.split_whitespace().collect();
    audit.check(b, "enrol-steps-2-and-3").await;
    if let Some(problem) = qr_text_alternative_problem(b, audit.lang()).await {
        audit.fail_last(problem);
    }
    let now = crate::support::enrol::now_secs();
    let right = totp_code(&secret, now);
    b.type_into("#code", &wrong(&right)).await;
    submit(b, "#code").await;
    assert!(b.has("#enrol-error").await, "a wrong code was taken");
    audit.check(b, "enrol-step-3-wrong-code").await;
    b.type_into(
        "#code",
        &totp_code(&secret, crate::support::enrol::now_secs()),
    )
    .await;
    submit(b, "#code").await;
    assert_eq!(path(b).await, "/.portvakt/settings", "the code was refused");
    assert!(b.has(".devices__item").await);
    audit.check(b, "settings-phone-connected").await;

    // The passkey pages: its description, then the browser makes the key.
    click(b, "a[href='/.portvakt/settings/passkey']").await;
    audit.check(b, "passkey-enrol-describe").await;
    b.type_into("#description", "YubiKey").await;
    submit(b, "#description").await;
    assert!(b.has("#passkey-start").await);
    audit.check(b, "passkey-enrol-create").await;
    click(b, "#passkey-start").await;
    assert_eq!(
        path(b).await,
        "/.portvakt/settings",
        "the key was not registered"
    );
    assert!(b.has("#passkeys").await);
    audit.check(b, "settings-key-registered").await;

    // Logging out: the question, then the answer.
    b.open(&format!("{work}/.portvakt/logout")).await;
    audit.check(b, "logout-confirm").await;
    click(b, "form.actions__form button[type=submit]").await;
    assert!(!b.has("form.actions__form").await);
    audit.check(b, "logged-out").await;
}

/// From home: the login page, the code pages and their errors, the
/// second step, the passkey at login, the refusal from home, the portal.
async fn from_home(b: &Browser, audit: &mut Audit, at_home: &str, app: &str, phone: &Outbox) {
    b.open(app).await;
    assert_eq!(path(b).await, "/.portvakt/login");
    assert!(b.has("button[name=via][value=passkey]").await);
    audit.check(b, "login-from-home").await;

    b.type_into("#username", ALICE.name).await;
    b.type_into("#password", ALICE.password).await;
    b.choose("method", "email").await;
    let before = phone.count("email");
    submit(b, "#password").await;
    assert!(b.has("#code").await, "no code page after the password");
    audit.check(b, "code-email").await;
    let code = phone.wait_for_new("email", before).await.code();
    b.type_into("#code", &wrong(&code)).await;
    submit(b, "#code").await;
    assert!(b.has("#code-error").await, "a wrong code was taken");
    audit.check(b, "code-email-wrong-code").await;

    // Each other way in turn, through the second step's choice.
    for (method, name) in [
        ("sms", "code-sms"),
        ("totp", "code-app"),
        ("token", "code-token"),
        ("passkey", "passkey-login"),
    ] {
        click(b, "a[href*='/.portvakt/second']").await;
        if method == "sms" {
            audit.check(b, "second-step-choice").await;
            // Sent without a choice (a browser that skips `required`).
            submit_by_script(
                b,
                "for (const r of document.querySelectorAll('input[name=method]')) { r.checked = false; }
                 document.querySelector('input[name=method]').form.submit(); return null;",
            )
            .await;
            assert!(b.has("#second-error").await, "no error without a choice");
            audit.check(b, "second-step-no-choice").await;
        }
        let value = b
            .choices("method")
            .await
            .into_iter()
            .find(|c| c.value.split(':').next() == Some(method) && c.enabled)
            .unwrap_or_else(|| panic!("{method} is not offered"))
            .value;
        b.choose("method", &value).await;
        submit(b, "input[name=method]").await;
        audit.check(b, name).await;
        if method != "passkey" {
            assert!(b.has("#code").await, "{method}: no code field");
        }
    }

    // An answer the server refuses (not a credential at all), then the key.
    submit_by_script(
        b,
        "const f = document.querySelector('form[data-passkey]');
         f.querySelector('input[name=response]').value = '{}';
         f.submit(); return null;",
    )
    .await;
    assert!(
        b.has("#passkey-error").await,
        "the forged answer was not refused"
    );
    audit.check(b, "passkey-login-refused").await;
    click(b, "#passkey-start").await;
    assert_eq!(
        b.url().await.host_str(),
        Some("app.test"),
        "not at the service"
    );

    b.open(&format!("{at_home}/.portvakt/sms")).await;
    audit.check(b, "error-403-from-home").await;
    b.open(&format!("{at_home}/")).await;
    assert!(b.has("form.account__logout").await);
    audit.check(b, "portal-from-home").await;
    click(b, "form.account__logout button[type=submit]").await;
}

/// A passkey alone from home (and its error without a name), then at work
/// the password is asked again before a change.
async fn passkey_alone_then_reauth(b: &Browser, audit: &mut Audit, work: &str, app: &str) {
    b.open(app).await;
    click(b, "button[name=via][value=passkey]").await;
    assert!(b.has("#login-error").await, "no error without a username");
    audit.check(b, "login-passkey-alone-no-username").await;
    b.type_into("#username", ALICE.name).await;
    click(b, "button[name=via][value=passkey]").await;
    assert!(b.has("#passkey-start").await);
    audit.check(b, "passkey-alone").await;
    click(b, "#passkey-start").await;
    assert_eq!(
        b.url().await.host_str(),
        Some("app.test"),
        "not at the service"
    );

    // No password was typed: a change at work asks for it.
    b.open(&format!("{work}/.portvakt/sms")).await;
    assert_eq!(path(b).await, "/.portvakt/reauth");
    audit.check(b, "reauth").await;
    b.type_into("#password", "not her password").await;
    submit(b, "#password").await;
    assert!(b.has("#reauth-error").await);
    audit.check(b, "reauth-wrong-password").await;
    b.type_into("#password", ALICE.password).await;
    submit(b, "#password").await;
    assert_eq!(path(b).await, "/.portvakt/sms");
}

/// Whether the QR code's alternative says that the key shown as text below
/// is the same (WCAG 1.1.1): someone who cannot scan it knows what to type.
async fn qr_text_alternative_problem(b: &Browser, lang: &str) -> Option<String> {
    let alt = b.attribute("img#qr", "alt").await.unwrap_or_default();
    let says = match lang {
        "en" => "same key",
        _ => "samma nyckel",
    };
    let shown = b.text_of("code#secret").await;
    if shown.trim().is_empty() {
        return Some("the key is not shown as text beside the QR code".into());
    }
    (!alt.to_lowercase().contains(says)).then(|| {
        format!(
            "the QR code's alt text {alt:?} does not say that the key below is the same ({says:?})"
        )
    })
}

/// `code` with its first character changed: certainly not the code.
fn wrong(code: &str) -> String {
    let mut chars: Vec<char> = code.chars().collect();
    chars[0] = match chars[0] {
        '2' => '3',
        c if c.is_ascii_digit() => '2',
        'A' => 'B',
        _ => 'A',
    };
    chars.into_iter().collect()
}
