//! Passkeys and security keys (WebAuthn) as a second factor, in a real
//! Chromium with a virtual security key (`support/webauthn.rs`): Alice
//! registers a key at work under "Mina inställningar" and logs in from home
//! with it; a removed key, another user's key and a cloned key (its counter
//! behind) are refused; a browser without WebAuthn is shown the other
//! methods; behind a balancer, a challenge one gateway made is answered at
//! the other. Without a browser: only the two passkey pages may run a
//! script, and registering is refused from home.
//!
//! "At home" is a forwarder's port, as in `browser.rs`: the gateway sees
//! 127.0.0.2.

use std::time::Duration;

use serde_json::Value;

use crate::browser::{log_in_at_work, log_out, values, whoami_on_page, Outbox};
use crate::support::browser::{Browser, BrowserOptions};
use crate::support::forwarder::Forwarder;
use crate::support::users::User;
use crate::support::wait::until;
use crate::support::webauthn::{without_webauthn, SecurityKey};
use crate::support::*;

/// `portal.test`, and `app.test` needing two factors from home, where the
/// realm offers the security key first, then an e-mail code.
async fn gateway(upstream: &Upstream) -> Gateway {
    GatewayConfig::new()
        .service(
            Service::new("app.test", upstream.url())
                .name("Appen")
                .policy("two_factor_offsite")
                .with("assertion: true"),
        )
        .realm_methods(&["password", "token"], &["passkey", "email", "totp"])
        .extra_yaml(
            "notify:\n  sms: { console: false }\n  email: { console: false }\n  outbox: outbox\n",
        )
        .start()
        .await
}

struct Scene {
    _upstream: Upstream,
    gw: Gateway,
    home: Forwarder,
    b: Browser,
    work: String,
}

async fn scene(test: &str) -> Scene {
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream).await;
    let home = Forwarder::offsite(gw.https_addr()).await;
    let b = Browser::launch(test, gw.pki(), BrowserOptions::desktop()).await;
    let work = format!("https://portal.test:{}", gw.https_port());
    Scene {
        _upstream: upstream,
        gw,
        home,
        b,
        work,
    }
}

/// From the portal's front page at work: "Mina inställningar" → "Lägg till
/// säkerhetsnyckel / passkey", a description, and the key touched. Back on
/// "Mina inställningar".
pub(crate) async fn register_key(b: &Browser, description: &str) {
    b.follow_link("Mina inställningar").await;
    b.follow_link("Lägg till säkerhetsnyckel / passkey").await;
    assert_eq!(b.heading().await, "Lägg till säkerhetsnyckel eller passkey");
    assert_eq!(scripts(b).await, 0, "the description step runs no script");
    b.type_into("#description", description).await;
    b.press("Fortsätt").await;
    assert_eq!(scripts(b).await, 1, "the registering step runs passkey.js");
    b.snap("registrera-nyckel").await;
    b.press("Registrera säkerhetsnyckeln").await;
    assert_eq!(
        b.heading().await,
        "Mina inställningar",
        "the key was not registered:\n{}",
        b.page_text().await
    );
}

/// At home: the service, the login page with the key chosen, username and
/// password; the page that asks for the key (not yet touched).
async fn start_login_from_home(s: &Scene, user: &User) {
    let b = &s.b;
    b.open(&format!("https://app.test:{}/", s.home.port()))
        .await;
    assert_eq!(b.url().await.path(), "/.portvakt/login");
    let offered = b.choices("method").await;
    assert_eq!(
        values(&offered),
        ["passkey", "email", "totp"],
        "{offered:#?}"
    );
    assert!(
        offered[0].label.starts_with("Säkerhetsnyckel / passkey"),
        "{:?}",
        offered[0].label
    );
    b.type_into("#username", user.name).await;
    b.type_into("#password", user.password).await;
    b.choose("method", "passkey").await;
    b.press("Logga in").await;
    assert_eq!(b.heading().await, "Logga in med säkerhetsnyckel");
}

/// Limit the key page's request to the credential `id` (what an attacker
/// holding that key could do in their own browser).
async fn ask_only_for(b: &Browser, id: &str) {
    let js = format!(
        "const f = document.querySelector('form[data-passkey]');
         const o = JSON.parse(f.dataset.options);
         o.publicKey.allowCredentials = [{{ type: 'public-key', id: '{id}' }}];
         f.dataset.options = JSON.stringify(o);
         const old = document.getElementById('passkey-start');
         old.replaceWith(old.cloneNode(true));
         return null;"
    );
    b.script(&js).await;
    // passkey.js read the options at load (and its button was replaced,
    // dropping the old handler): run it again on the edited page.
    b.script(
        "const s = document.createElement('script');
         s.src = document.querySelector('script[src$=\"passkey.js\"]').src + '?again';
         document.body.appendChild(s); return null;",
    )
    .await;
}

pub(crate) async fn scripts(b: &Browser) -> u64 {
    b.script("return document.scripts.length;")
        .await
        .as_u64()
        .unwrap_or(99)
}

/// The key page's error after a refused answer.
async fn refused_on_key_page(b: &Browser) {
    assert_eq!(b.heading().await, "Logga in med säkerhetsnyckel");
    let error = b.text_of("#passkey-error").await;
    assert!(
        error.contains("Säkerhetsnyckeln godkändes inte"),
        "no refusal shown: {error:?}"
    );
}

async fn second_factor_failure(gw: &Gateway, what: &str, reason: &str) -> Value {
    gw.wait_auth_log(what, |lines| {
        lines.iter().any(|l| {
            l["event"] == "second_factor"
                && l["result"] == "failure"
                && l["method"] == "passkey"
                && l["reason"] == reason
        })
    })
    .await;
    gw.auth_log_lines()
        .into_iter()
        .rev()
        .find(|l| l["event"] == "second_factor" && l["reason"] == reason)
        .expect("the line just seen")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_a_key_at_work_then_log_in_from_home_with_it() {
    let s = scene("register_a_key_at_work_then_log_in_from_home_with_it").await;
    let (b, gw) = (&s.b, &s.gw);
    let mail = Outbox::of(gw);
    let key = SecurityKey::plug_into(b).await;

    log_in_at_work(b, &s.work, &ALICE).await;
    b.follow_link("Mina inställningar").await;
    assert!(b
        .page_text()
        .await
        .contains("Du har ingen säkerhetsnyckel registrerad än."));
    assert_eq!(scripts(b).await, 0, "the settings page runs no script");
    b.follow_link("Tillbaka till portalen").await;
    let notices = mail.count("email");
    register_key(b, "YubiKey").await;
    let text = b.page_text().await;
    assert!(text.contains("Säkerhetsnyckeln är registrerad."), "{text}");
    let listed = b.text_of("#passkeys").await;
    assert!(listed.contains("YubiKey"), "{listed:?}");
    b.snap("nyckeln-registrerad").await;
    let on_key = key.credentials().await;
    assert_eq!(on_key.len(), 1, "one credential on the key");
    assert_eq!(on_key[0].rp_id, "portal.test", "bound to the portal's name");
    // She is told by e-mail, and the change is audited.
    let notice = mail.wait_for_new("email", notices).await;
    assert!(notice.text.contains("säkerhetsnyckel"), "{}", notice.text);
    gw.wait_auth_log("the registration", |lines| {
        lines.iter().any(|l| {
            l["event"] == "enrolment" && l["result"] == "success" && l["reason"] == "passkey_added"
        })
    })
    .await;
    b.follow_link("Tillbaka till portalen").await;
    log_out(b).await;

    // At home: password, then the key; the service sees two factors.
    start_login_from_home(&s, &ALICE).await;
    assert_eq!(scripts(b).await, 1);
    b.snap("logga-in-med-nyckel").await;
    b.press("Använd säkerhetsnyckeln").await;
    assert_eq!(
        b.url().await.host_str(),
        Some("app.test"),
        "not at the service"
    );
    let who = whoami_on_page(b).await;
    assert_eq!(who.one("remote-user"), Some("alice"));
    assert_eq!(who.one("remote-auth-level"), Some("2"));
    let methods = who.one("remote-auth-methods").unwrap_or_default();
    assert!(methods.contains("passkey"), "{methods:?}");
    // The signed identity says how: password and a hardware-bound key.
    let token = who.one("portvakt-assertion").expect("a signed identity");
    let payload = token.split('.').nth(1).expect("a JWT");
    let claims: Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
            .expect("base64url"),
    )
    .expect("JSON claims");
    assert_eq!(
        claims["amr"],
        serde_json::json!(["pwd", "hwk", "mfa"]),
        "{claims}"
    );
    gw.wait_auth_log("the key login from home", |lines| {
        lines.iter().any(|l| {
            l["event"] == "login"
                && l["result"] == "success"
                && l["method"] == "passkey"
                && l["client_ip"] == "127.0.0.2"
                && l["destination"]
                    .as_str()
                    .is_some_and(|d| d.starts_with("passkey:"))
        })
    })
    .await;
    let (_, metrics) = gw.admin_get("/metrics").await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("portvakt_logins_total")
                && l.contains("method=\"passkey\"")
                && l.contains("result=\"success\"")
                && l.ends_with(" 1")),
        "logins by method in the metrics:\n{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_key_and_another_users_key_are_refused() {
    let s = scene("a_removed_key_and_another_users_key_are_refused").await;
    let (b, gw) = (&s.b, &s.gw);
    let key = SecurityKey::plug_into(b).await;

    // Bob registers his key; Alice two of hers (on the same virtual key,
    // three credentials).
    log_in_at_work(b, &s.work, &BOB).await;
    register_key(b, "Bobs nyckel").await;
    let bobs = key.credentials().await[0].id.clone();
    b.follow_link("Tillbaka till portalen").await;
    log_out(b).await;
    log_in_at_work(b, &s.work, &ALICE).await;
    register_key(b, "Gamla nyckeln").await;
    let old = key
        .credentials()
        .await
        .into_iter()
        .find(|c| c.id != bobs)
        .expect("alice's first credential");
    let bobs = key
        .credentials()
        .await
        .into_iter()
        .find(|c| c.id == bobs)
        .expect("bob's credential");

    // The same key a second time: the browser is told to refuse it.
    b.follow_link("Lägg till säkerhetsnyckel / passkey").await;
    b.type_into("#description", "Samma nyckel igen").await;
    b.press("Fortsätt").await;
    b.find("#passkey-start")
        .await
        .click()
        .await
        .expect("click the key button");
    until(
        "the duplicate key message",
        Duration::from_secs(10),
        Duration::from_millis(100),
        || async {
            let shown = b.text_of("#passkey-status").await;
            shown.contains("redan registrerad").then_some(())
        },
    )
    .await;
    b.snap("samma-nyckel-igen").await;
    b.follow_link("Tillbaka till Mina inställningar").await;

    // A new key (the virtual key wiped, then given back the old
    // credentials: one device holding all three).
    key.clear().await;
    b.follow_link("Tillbaka till portalen").await;
    register_key(b, "Nya nyckeln").await;
    key.add(&old).await;
    key.add(&bobs).await;
    let (old, bobs) = (old.id, bobs.id);
    // She removes the old one.
    let forms = b.find_all("#passkeys .devices__item").await;
    assert_eq!(forms.len(), 2);
    let remove = b
        .find_all("#passkeys button[type=submit]")
        .await
        .into_iter()
        .next()
        .expect("a remove button");
    b.click_and_wait(&remove, "Ta bort Gamla nyckeln").await;
    assert!(b
        .page_text()
        .await
        .contains("Säkerhetsnyckeln är borttagen."));
    let listed = b.text_of("#passkeys").await;
    assert!(
        !listed.contains("Gamla nyckeln") && listed.contains("Nya nyckeln"),
        "{listed:?}"
    );
    gw.wait_auth_log("the removal", |lines| {
        lines
            .iter()
            .any(|l| l["event"] == "enrolment" && l["reason"] == "passkey_removed")
    })
    .await;
    b.follow_link("Tillbaka till portalen").await;
    log_out(b).await;

    // At home, someone with her password answers with the removed key …
    start_login_from_home(&s, &ALICE).await;
    ask_only_for(b, &old).await;
    b.press("Använd säkerhetsnyckeln").await;
    refused_on_key_page(b).await;
    second_factor_failure(gw, "the removed key refused", "passkey_refused").await;

    // … or with Bob's key: not hers, refused.
    ask_only_for(b, &bobs).await;
    b.press("Använd säkerhetsnyckeln").await;
    refused_on_key_page(b).await;
    b.snap("annans-nyckel-nekad").await;
    until(
        "two refusals in the auth log",
        Duration::from_secs(5),
        Duration::from_millis(50),
        || async {
            let n = gw
                .auth_log_lines()
                .iter()
                .filter(|l| l["event"] == "second_factor" && l["reason"] == "passkey_refused")
                .count();
            (n == 2).then_some(())
        },
    )
    .await;

    // Her current key still works.
    b.press("Använd säkerhetsnyckeln").await;
    assert_eq!(b.url().await.host_str(), Some("app.test"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cloned_key_whose_counter_went_backwards_is_refused_and_audited() {
    let s = scene("a_cloned_key_whose_counter_went_backwards_is_refused_and_audited").await;
    let (b, gw) = (&s.b, &s.gw);
    let key = SecurityKey::plug_into(b).await;
    log_in_at_work(b, &s.work, &ALICE).await;
    register_key(b, "YubiKey").await;
    // A copy of the key, made now: its counter stays where it is.
    let copy = key.credentials().await.remove(0);
    b.follow_link("Tillbaka till portalen").await;
    log_out(b).await;

    // The real key is used twice from home: its counter moves on.
    for _ in 0..2 {
        start_login_from_home(&s, &ALICE).await;
        b.press("Använd säkerhetsnyckeln").await;
        assert_eq!(b.url().await.host_str(), Some("app.test"));
        b.open(&format!("https://portal.test:{}/", s.home.port()))
            .await;
        log_out(b).await;
    }
    let real = key.credentials().await.remove(0);
    assert!(
        real.sign_count > copy.sign_count + 1,
        "{real:?} vs {copy:?}"
    );

    // The copy answers with a counter the gateway has already seen.
    key.clear().await;
    key.add(&copy).await;
    start_login_from_home(&s, &ALICE).await;
    b.press("Använd säkerhetsnyckeln").await;
    refused_on_key_page(b).await;
    b.snap("klonad-nyckel-nekad").await;
    let line = second_factor_failure(gw, "the clone refused", "counter_regression").await;
    assert_eq!(line["user"], "alice");
    assert!(
        line["destination"]
            .as_str()
            .is_some_and(|d| d.starts_with("passkey:")),
        "the audit line names the key: {line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_without_webauthn_is_shown_the_other_methods() {
    let s = scene("a_browser_without_webauthn_is_shown_the_other_methods").await;
    let (b, gw) = (&s.b, &s.gw);
    let mail = Outbox::of(gw);
    let key = SecurityKey::plug_into(b).await;
    log_in_at_work(b, &s.work, &ALICE).await;
    register_key(b, "YubiKey").await;
    b.follow_link("Tillbaka till portalen").await;
    log_out(b).await;
    key.unplug().await;

    // The same user in a browser that cannot do WebAuthn.
    without_webauthn(b).await;
    start_login_from_home(&s, &ALICE).await;
    let says = b.text_of("#passkey-unsupported").await;
    assert!(
        says.contains("Din webbläsare kan inte använda säkerhetsnycklar"),
        "{says:?}"
    );
    let hidden = b
        .script("return document.getElementById('passkey-start').hidden;")
        .await;
    assert_eq!(hidden, Value::Bool(true), "no button that cannot work");
    b.snap("utan-webauthn").await;
    b.follow_link("Välj ett annat sätt").await;
    let offered = b.choices("method").await;
    assert!(
        offered.iter().any(|c| c.value == "email" && c.enabled),
        "{offered:#?}"
    );
    let before = mail.count("email");
    b.choose("method", "email").await;
    b.press("Fortsätt").await;
    let code = mail.wait_for_new("email", before).await.code();
    b.type_into("#code", &code).await;
    b.press("Logga in").await;
    assert_eq!(b.url().await.host_str(), Some("app.test"));
    assert_eq!(whoami_on_page(b).await.one("remote-auth-level"), Some("2"));
}

// ------------------------------------------------------------ without a browser

#[tokio::test]
async fn only_the_passkey_pages_may_run_a_script_and_only_ours() {
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream).await;
    let c = gw.client();
    let portal = format!("https://portal.test:{}", gw.https_port());
    let login = c.get(&format!("{portal}/.portvakt/login")).await;
    let csp = login.header("content-security-policy").unwrap_or_default();
    assert!(
        csp.contains("default-src 'none'") && !csp.contains("script-src"),
        "{csp}"
    );
    let js = c
        .get(&format!("{portal}/.portvakt/assets/passkey.js"))
        .await;
    assert_eq!(js.status, 200);
    assert!(js
        .header("content-type")
        .unwrap_or_default()
        .starts_with("text/javascript"));
    assert!(js.body.contains("navigator.credentials"));
    // The key page itself, once logged in with a password from home.
    let home = gw.offsite_client();
    home.login(&format!("{portal}/"), &ALICE).await;
    let page = home.get(&format!("{portal}/.portvakt/passkey")).await;
    // No key registered: back to the choice, which explains where to get one.
    assert_eq!(page.status, 303, "{}", page.body);
}

#[tokio::test]
async fn registering_a_key_is_refused_from_home() {
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream).await;
    let home = gw.offsite_client();
    let portal = format!("https://portal.test:{}", gw.https_port());
    home.login(&format!("{portal}/"), &ALICE).await;
    let page = home
        .get(&format!("{portal}/.portvakt/settings/passkey"))
        .await;
    assert_eq!(page.status, 403, "{}", page.body);
}

#[tokio::test]
async fn a_realm_with_the_key_as_its_only_way_in_from_outside_says_why() {
    let upstream = Upstream::start().await;
    let gw = GatewayConfig::new()
        .service(Service::new("app.test", upstream.url()).policy("two_factor_offsite"))
        .realm_methods(&["password"], &["passkey"])
        .start()
        .await;
    let home = gw.offsite_client();
    let app = format!("https://app.test:{}/", gw.https_port());
    let form = home.open_login_form(&app).await;
    let text = form.journey.end.text();
    assert!(
        text.contains("Säkerhetsnyckel / passkey")
            && text.contains("Nätfiskesäker")
            && text.contains("kostar inget SMS"),
        "the login page should say what the key is and why:\n{text}"
    );
    // Alice has no key yet: after her password she is told where to get one,
    // and is not let in.
    let journey = home.login(&app, &ALICE).await;
    let end = journey.end.text();
    assert!(
        end.contains("Du har ingen säkerhetsnyckel registrerad"),
        "{}",
        journey.describe()
    );
    assert_ne!(journey.end.url.host_str(), Some("app.test"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_balancer_the_challenge_of_one_gateway_is_answered_at_the_other() {
    // Two gateways sharing Redis (challenges, sessions) and PostgreSQL (keys).
    let redis = crate::support::redis::Redis::start().await;
    let pg = crate::support::postgres::start();
    pg.create_db("portvakt");
    let upstream = Upstream::start().await;
    let key: [u8; 32] = rand::random();
    let config = || {
        GatewayConfig::new()
            .secret_key(key)
            .state(&redis.url())
            .service(Service::new("app.test", upstream.url()).policy("two_factor_offsite"))
            .realm_methods(&["password", "token"], &["passkey", "email", "totp"])
            .extra_yaml(&format!("storage: \"{}\"\n", pg.url("portvakt", "2")))
    };
    let (a, b) = (config().start().await, config().start().await);
    let home_a = Forwarder::offsite(a.https_addr()).await;
    let home_b = Forwarder::offsite(b.https_addr()).await;
    let browser = Browser::launch(
        "behind_a_balancer_the_challenge_of_one_gateway_is_answered_at_the_other",
        a.pki(),
        BrowserOptions::desktop(),
    )
    .await;
    let _key = SecurityKey::plug_into(&browser).await;

    // Registered through gateway A.
    log_in_at_work(
        &browser,
        &format!("https://portal.test:{}", a.https_port()),
        &ALICE,
    )
    .await;
    register_key(&browser, "YubiKey").await;
    browser.follow_link("Tillbaka till portalen").await;
    log_out(&browser).await;

    // From home: the key page comes from B, the answer goes to A.
    browser
        .open(&format!("https://app.test:{}/", home_b.port()))
        .await;
    browser.type_into("#username", ALICE.name).await;
    browser.type_into("#password", ALICE.password).await;
    browser.choose("method", "passkey").await;
    browser.press("Logga in").await;
    assert_eq!(browser.heading().await, "Logga in med säkerhetsnyckel");
    browser
        .script(&format!(
            "document.querySelector('form[data-passkey]').action = \
             'https://portal.test:{}/.portvakt/passkey'; return null;",
            home_a.port()
        ))
        .await;
    browser.press("Använd säkerhetsnyckeln").await;
    // The return address named B's port, which A does not serve, so A sends
    // her to the portal (behind one balancer both share one port); she is
    // logged in with two factors there, and the service lets her in.
    assert_eq!(browser.heading().await, "Dina tjänster");
    browser
        .open(&format!("https://app.test:{}/", home_a.port()))
        .await;
    assert_eq!(
        whoami_on_page(&browser).await.one("remote-auth-level"),
        Some("2")
    );
    a.wait_auth_log("A accepted B's challenge", |lines| {
        lines
            .iter()
            .any(|l| l["event"] == "login" && l["method"] == "passkey" && l["result"] == "success")
    })
    .await;
    assert!(home_a.connections() > 0 && home_b.connections() > 0);
}
