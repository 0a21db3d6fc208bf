//! The seed's journeys in a real browser (headless Chromium, see
//! `support/browser.rs`): at work, Alice adds her SMS number and connects
//! her phone's authenticator app by scanning the QR code on the page; at
//! home, she logs in with the code from the app (or an SMS to the number she
//! chooses) and reaches a service.
//!
//! "At work" is the gateway's own port (the browser connects from 127.0.0.1,
//! the internal network). "At home" is a forwarder's port: the same browser,
//! the same cookies, but the gateway sees 127.0.0.2 (`support/forwarder.rs`).
//! SMS and e-mail go to the gateway's outbox directory, where the tests read
//! them as Alice would read her phone.
//!
//! Screenshots of every page are kept in `target/browser-screenshots/<test>/`.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::support::browser::{decode_qr_png, Browser, BrowserOptions, Choice};
use crate::support::forwarder::Forwarder;
use crate::support::users::User;
use crate::support::wait::until;
use crate::support::*;

/// A gateway whose portal is `portal.test` and whose service `app.test`
/// needs two factors from outside (one inside), with SMS and e-mail going to
/// `outbox/` beside its config.
async fn gateway(upstream: &Upstream) -> Gateway {
    GatewayConfig::new()
        .service(
            Service::new("app.test", upstream.url())
                .name("Appen")
                .policy("two_factor_offsite"),
        )
        .extra_yaml(
            "notify:\n  sms: { console: false }\n  email: { console: false }\n  outbox: outbox\n",
        )
        .start()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_story_enrol_at_work_then_log_in_from_home_with_the_authenticator() {
    let started = Instant::now();
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream).await;
    let phone = Outbox::of(&gw);
    let home = Forwarder::offsite(gw.https_addr()).await;
    let b = Browser::launch(
        "the_seed_story_enrol_at_work_then_log_in_from_home_with_the_authenticator",
        gw.pki(),
        BrowserOptions::phone(),
    )
    .await;
    let work = format!("https://portal.test:{}", gw.https_port());

    // At work: "Enkel inloggning" with username and password.
    log_in_at_work(&b, &work, &ALICE).await;
    assert!(
        b.page_text()
            .await
            .contains("Du är ansluten till det interna nätverket."),
        "the portal should say she is on the internal network:\n{}",
        b.page_text().await
    );

    // "Mina SMS-nummer": she types her number, gets a code on it, confirms.
    b.follow_link("Mina SMS-nummer").await;
    assert_eq!(b.heading().await, "Mina SMS-nummer");
    let text = b.page_text().await;
    assert!(text.contains("alice"), "her username is shown:\n{text}");
    assert!(
        text.contains("alice@example.org"),
        "the address e-mail codes go to is shown:\n{text}"
    );
    assert!(
        text.contains("Endast siffror är tillåtna. T.ex: 0701234567"),
        "the seed's hint is shown:\n{text}"
    );
    b.snap("mina-sms-nummer").await;
    add_sms_number(&b, &phone, 0, "0701234567").await;
    let text = b.page_text().await;
    assert!(
        text.contains("Numret är sparat."),
        "no confirmation that the number was saved:\n{text}"
    );
    assert!(
        text.contains("0701234567"),
        "the page should list 0701234567:\n{text}"
    );
    b.snap("mina-sms-nummer-sparat").await;

    // "Mina inställningar" → "Konfigurera din mobila klient: Authenticator".
    b.follow_link("Tillbaka till portalen").await;
    b.follow_link("Mina inställningar").await;
    assert_eq!(b.heading().await, "Mina inställningar");
    assert!(b
        .page_text()
        .await
        .contains("Du har ingen mobil kopplad än."));
    let app = enrol_authenticator(&b, "Jobbtelefonen").await;
    let text = b.page_text().await;
    assert!(
        text.contains("Mobilen är kopplad."),
        "no confirmation that the phone was connected:\n{text}"
    );
    let device = b.text_of(".devices__item").await;
    assert!(
        device.contains("Jobbtelefonen"),
        "the device list should show Jobbtelefonen: {device:?}"
    );
    assert!(
        device.contains(&today()),
        "the device list should show when it was added ({}): {device:?}",
        today()
    );
    b.snap("mina-installningar-jobbtelefonen").await;

    // She logs out.
    b.follow_link("Tillbaka till portalen").await;
    log_out(&b).await;

    // At home: the service sends her to the login page, which now offers
    // the seed's ways to get a one-time code.
    let service = format!("https://app.test:{}/", home.port());
    b.open(&service).await;
    let url = b.url().await;
    assert_eq!(
        url.host_str(),
        Some("portal.test"),
        "not at the portal: {url}"
    );
    assert_eq!(
        url.port(),
        Some(home.port()),
        "the login left the forwarder: {url}"
    );
    assert_eq!(url.path(), "/.portvakt/login");
    let offered = b.choices("method").await;
    assert_eq!(
        values(&offered),
        ["sms", "email", "totp", "token"],
        "{offered:#?}"
    );
    for (choice, label) in
        offered
            .iter()
            .zip(["SMS-kod", "E-post-kod", "Authenticator", "Webbdosa"])
    {
        assert!(
            choice.label.starts_with(label),
            "{:?} should read {label:?}",
            choice.label
        );
    }
    b.snap("login-hemifran").await;
    b.type_into("#username", ALICE.name).await;
    b.type_into("#password", ALICE.password).await;
    b.choose("method", "totp").await;
    b.press("Logga in").await;

    // The code from the app. The one she typed to connect the phone was
    // used up then: it does not open the door a second time.
    assert_eq!(b.heading().await, "Ange koden från Authenticator");
    b.snap("kod-fran-authenticator").await;
    b.type_into("#code", &app.enrolment_code).await;
    b.press("Logga in").await;
    assert_eq!(b.heading().await, "Ange koden från Authenticator");
    let error = b.text_of("#code-error").await;
    assert!(
        error.contains("Koden stämmer inte"),
        "the enrolment code was not refused: {error:?}"
    );
    b.snap("kod-redan-anvand").await;
    b.type_into("#code", &app.code_for_login()).await;
    b.press("Logga in").await;

    // She is at the service, logged in with two factors.
    let url = b.url().await;
    assert_eq!(
        url.host_str(),
        Some("app.test"),
        "not at the service: {url}"
    );
    let who = whoami_on_page(&b).await;
    assert_eq!(who.one("remote-user"), Some("alice"));
    assert_eq!(who.one("remote-auth-level"), Some("2"));
    let methods = who.one("remote-auth-methods").unwrap_or_default();
    assert!(
        methods.split(',').any(|m| m.trim() == "totp"),
        "methods should include totp: {methods:?}"
    );
    b.snap("appen").await;

    // The gateway saw her at home: the authenticator login came from 127.0.0.2.
    gw.wait_auth_log("alice's authenticator login from home", |lines| {
        lines.iter().any(|l| {
            l["event"] == "login"
                && l["result"] == "success"
                && l["method"] == "totp"
                && l["user"] == "alice"
                && l["client_ip"] == "127.0.0.2"
        })
    })
    .await;
    assert!(home.connections() > 0);
    eprintln!("seed story in the browser: {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sms_with_two_numbers_lets_the_user_choose() {
    let started = Instant::now();
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream).await;
    let phone = Outbox::of(&gw);
    let home = Forwarder::offsite(gw.https_addr()).await;
    let b = Browser::launch(
        "sms_with_two_numbers_lets_the_user_choose",
        gw.pki(),
        BrowserOptions::phone(),
    )
    .await;
    let work = format!("https://portal.test:{}", gw.https_port());

    // At work she gives two numbers ("du kan som mest ange två mobilnummer").
    log_in_at_work(&b, &work, &ALICE).await;
    b.follow_link("Mina SMS-nummer").await;
    add_sms_number(&b, &phone, 0, "0701234567").await;
    add_sms_number(&b, &phone, 1, "0739876543").await;
    let text = b.page_text().await;
    assert!(
        text.contains("0701234567") && text.contains("0739876543"),
        "both numbers should be listed:\n{text}"
    );
    b.snap("tva-nummer").await;
    b.follow_link("Tillbaka till portalen").await;
    log_out(&b).await;

    // At home she asks for an SMS code: the gateway asks which number.
    b.open(&format!("https://app.test:{}/", home.port())).await;
    b.type_into("#username", ALICE.name).await;
    b.type_into("#password", ALICE.password).await;
    b.choose("method", "sms").await;
    b.press("Logga in").await;
    assert_eq!(b.url().await.path(), "/.portvakt/second");
    assert_eq!(b.heading().await, "Steg 2: engångskod");
    let offered = b.choices("method").await;
    let numbers: Vec<&Choice> = offered
        .iter()
        .filter(|c| c.value.starts_with("sms:"))
        .collect();
    assert_eq!(
        numbers.len(),
        2,
        "both numbers should be offered: {offered:#?}"
    );
    assert_eq!(numbers[0].value, "sms:0");
    assert!(
        numbers[0].label.contains("070*****67"),
        "the first number, masked: {:?}",
        numbers[0].label
    );
    assert_eq!(numbers[1].value, "sms:1");
    assert!(
        numbers[1].label.contains("073*****43"),
        "the second number, masked: {:?}",
        numbers[1].label
    );
    assert!(
        !offered
            .iter()
            .any(|c| c.label.contains("0701234567") || c.label.contains("0739876543")),
        "whole numbers must not be shown off-network: {offered:#?}"
    );
    assert!(numbers.iter().all(|c| c.enabled));
    b.snap("valj-nummer").await;

    let sent_before = phone.count("sms");
    b.choose("method", "sms:1").await;
    b.press("Fortsätt").await;
    assert_eq!(b.heading().await, "Ange SMS-engångslösenord");
    let text = b.page_text().await;
    assert!(
        text.contains("073*****43"),
        "the page should say where the code went:\n{text}"
    );
    b.snap("sms-kod").await;

    // The newest SMS went to the second number; she types it in lower case.
    let sms = phone.wait_for_new("sms", sent_before).await;
    assert_eq!(
        sms.to, "+46739876543",
        "the code went to the wrong number: {sms:?}"
    );
    let code = sms.code();
    b.type_into("#code", &code.to_lowercase()).await;
    b.press("Logga in").await;

    let who = whoami_on_page(&b).await;
    assert_eq!(who.one("remote-user"), Some("alice"));
    assert_eq!(who.one("remote-auth-level"), Some("2"));
    assert_eq!(who.one("remote-auth-methods"), Some("password,sms"));
    eprintln!("two numbers in the browser: {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_service_is_refused_from_home() {
    let started = Instant::now();
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream).await;
    let mail = Outbox::of(&gw);
    let home = Forwarder::offsite(gw.https_addr()).await;
    let b = Browser::launch(
        "self_service_is_refused_from_home",
        gw.pki(),
        BrowserOptions::desktop(),
    )
    .await;
    let at_home = format!("https://portal.test:{}", home.port());

    // A full two-factor login from home, with a code by e-mail.
    b.open(&format!("{at_home}/")).await;
    assert_eq!(b.url().await.path(), "/.portvakt/login");
    b.snap("login-hemifran-dator").await;
    b.type_into("#username", ALICE.name).await;
    b.type_into("#password", ALICE.password).await;
    b.choose("method", "email").await;
    let sent_before = mail.count("email");
    b.press("Logga in").await;
    assert_eq!(b.heading().await, "Ange engångskoden från e-posten");
    let message = mail.wait_for_new("email", sent_before).await;
    assert_eq!(message.to, "alice@example.org");
    b.type_into("#code", &message.code()).await;
    b.press("Logga in").await;

    // The portal: level two, from outside, and no self-service links.
    assert_eq!(b.heading().await, "Dina tjänster");
    let text = b.page_text().await;
    assert!(
        text.contains("Du är ansluten på distans."),
        "the portal should say she is remote:\n{text}"
    );
    assert!(
        text.contains("Mina SMS-nummer och Mina inställningar når du när du är ansluten till det interna nätverket."),
        "the portal should explain where self-service is:\n{text}"
    );
    assert!(!b.has("a[href='/.portvakt/sms']").await);
    assert!(!b.has("a[href='/.portvakt/settings']").await);
    b.snap("portalen-hemifran").await;
    let csrf = b
        .attribute("form.account__logout input[name=csrf]", "value")
        .await
        .expect("the logout form carries a CSRF token");

    // Typing the addresses by hand: a clear refusal, every page.
    for path in [
        "/.portvakt/sms",
        "/.portvakt/settings",
        "/.portvakt/settings/authenticator",
    ] {
        b.open(&format!("{at_home}{path}")).await;
        assert_eq!(
            b.heading().await,
            "Bara från kommunens nätverk",
            "{path} from home"
        );
        let text = b.page_text().await;
        assert!(
            text.contains("bara ändra dina SMS-nummer och koppla en mobil när du är ansluten till det interna nätverket"),
            "{path}: the page should say why:\n{text}"
        );
    }
    b.snap("bara-fran-kommunens-natverk").await;

    // A form posted from another page, with her valid session and CSRF
    // token, is refused too, and no code is sent.
    let sms_sent = mail.count("sms");
    b.script(&format!(
        "const f = document.createElement('form');
         f.method = 'post'; f.action = '/.portvakt/sms';
         for (const [k, v] of [['csrf', '{csrf}'], ['action', 'set'], ['position', '0'], ['number', '0701234567']]) {{
           const i = document.createElement('input'); i.type = 'hidden'; i.name = k; i.value = v; f.appendChild(i);
         }}
         const s = document.createElement('button'); s.type = 'submit'; s.textContent = 'Skicka testformuläret';
         f.appendChild(s); document.body.appendChild(f); return null;"
    ))
    .await;
    b.press("Skicka testformuläret").await;
    assert_eq!(b.heading().await, "Bara från kommunens nätverk");
    gw.wait_access_log("the refused POST from home", |lines| {
        lines.iter().any(|l| {
            l["method"] == "POST"
                && l["path"] == "/.portvakt/sms"
                && l["status"] == 403
                && l["client_ip"] == "127.0.0.2"
        })
    })
    .await;
    // An absence, so nothing to poll for. The access-log line is written
    // after the response, when a code this request sent would already be
    // in the outbox; the pause is for the auth log's own writer thread.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(mail.count("sms"), sms_sent, "a code was sent from home");
    assert!(
        !gw.auth_log_lines()
            .iter()
            .any(|l| l["event"] == "enrolment" && l["result"] == "success"),
        "an enrolment changed from home"
    );

    // The same session at work gets the page: the network decides.
    b.open(&format!(
        "https://portal.test:{}/.portvakt/sms",
        gw.https_port()
    ))
    .await;
    assert_eq!(b.heading().await, "Mina SMS-nummer");
    eprintln!(
        "self-service from home in the browser: {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_english_the_pages_speak_english() {
    let started = Instant::now();
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream).await;
    let home = Forwarder::offsite(gw.https_addr()).await;
    let b = Browser::launch(
        "in_english_the_pages_speak_english",
        gw.pki(),
        BrowserOptions::phone().english(),
    )
    .await;
    let work = format!("https://portal.test:{}", gw.https_port());

    b.open(&format!("{work}/")).await;
    assert_eq!(b.heading().await, "Log in");
    let offered = b.choices("method").await;
    assert_eq!(values(&offered), ["password", "token"], "{offered:#?}");
    assert!(offered[0].label.starts_with("Simple login"), "{offered:#?}");
    b.snap("login").await;
    b.type_into("#username", ALICE.name).await;
    b.type_into("#password", ALICE.password).await;
    b.press("Log in").await;
    assert_eq!(b.heading().await, "Your services");
    b.snap("portal").await;
    b.follow_link("My SMS numbers").await;
    assert_eq!(b.heading().await, "My SMS numbers");
    b.snap("my-sms-numbers").await;
    b.follow_link("Back to the portal").await;
    b.follow_link("My settings").await;
    b.follow_link("Set up your mobile client: Authenticator")
        .await;
    b.type_into("#description", "Work phone").await;
    b.press("Continue").await;
    assert!(b.has("img#qr").await);
    b.snap("authenticator-step-2").await;

    // From home the login page offers the second factors, in English.
    b.open(&format!(
        "https://portal.test:{}/.portvakt/logout",
        home.port()
    ))
    .await;
    b.press("Log out").await;
    b.open(&format!("https://app.test:{}/", home.port())).await;
    let offered = b.choices("method").await;
    let labels: Vec<String> = offered
        .iter()
        .map(|c| c.label.lines().next().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        labels,
        ["SMS code", "E-mail code", "Authenticator", "Hardware token"],
        "{offered:#?}"
    );
    b.snap("login-from-home").await;
    eprintln!("English in the browser: {:?}", started.elapsed());
}

// ------------------------------------------------------------ the user's steps

/// Open the portal at work and log in with username and password; she
/// lands on the portal's front page.
pub(crate) async fn log_in_at_work(b: &Browser, work: &str, user: &User) {
    b.open(&format!("{work}/")).await;
    let url = b.url().await;
    assert_eq!(url.path(), "/.portvakt/login", "not sent to login: {url}");
    assert_eq!(b.heading().await, "Logga in");
    let offered = b.choices("method").await;
    assert_eq!(
        values(&offered),
        ["password", "token"],
        "inside: Enkel inloggning and Webbdosa: {offered:#?}"
    );
    assert!(offered[0].label.starts_with("Enkel inloggning"));
    assert_eq!(b.chosen("method").await.as_deref(), Some("password"));
    b.snap("login-pa-jobbet").await;
    b.type_into("#username", user.name).await;
    b.type_into("#password", user.password).await;
    b.press("Logga in").await;
    assert_eq!(b.heading().await, "Dina tjänster", "not at the portal");
    assert_eq!(b.url().await.path(), "/");
    b.snap("portalen").await;
}

/// On "Mina SMS-nummer": type `digits` for `position`, press Uppdatera, read
/// the code the gateway texted to the number, type it and save.
async fn add_sms_number(b: &Browser, phone: &Outbox, position: u8, digits: &str) {
    let field = format!("#number-{position}");
    let before = phone.count("sms");
    b.type_into(&field, digits).await;
    b.press_for(&field).await;
    assert_eq!(b.heading().await, "Bekräfta numret");
    let text = b.page_text().await;
    assert!(
        text.contains(digits),
        "the confirm page should name {digits}:\n{text}"
    );
    if position == 0 {
        b.snap("bekrafta-numret").await;
    }
    let sms = phone.wait_for_new("sms", before).await;
    assert_eq!(
        sms.to,
        format!("+46{}", &digits[1..]),
        "the code went elsewhere"
    );
    b.type_into("#code", &sms.code()).await;
    b.press("Spara numret").await;
    assert_eq!(b.heading().await, "Mina SMS-nummer");
}

/// An authenticator app with one account, as scanned from the QR code.
struct AuthenticatorApp {
    secret: Vec<u8>,
    /// The time step whose code was typed to finish the enrolment.
    enrolled_step: u64,
    /// That code.
    enrolment_code: String,
}

impl AuthenticatorApp {
    /// The code the app shows for a login: the current one, or the next if
    /// the current one was already used for the enrolment (the gateway
    /// refuses a code twice and accepts one step either side of now).
    fn code_for_login(&self) -> String {
        let step = (unix_secs() / 30).max(self.enrolled_step + 1);
        portvakt::factors::totp::code_at(&self.secret, step)
    }
}

/// From "Mina inställningar": the seed's three steps, scanning the QR code
/// on the page the way the phone would.
async fn enrol_authenticator(b: &Browser, description: &str) -> AuthenticatorApp {
    b.follow_link("Konfigurera din mobila klient: Authenticator")
        .await;
    assert_eq!(b.heading().await, "Koppla mobil för Authenticator");
    assert!(b.page_text().await.contains("Steg 1"));
    b.snap("authenticator-steg-1").await;
    b.type_into("#description", description).await;
    b.press("Fortsätt").await;

    // Step 2: the QR code, rendered by the server as a PNG.
    let text = b.page_text().await;
    assert!(text.contains("Steg 2"), "not at step 2:\n{text}");
    assert!(
        text.contains(description),
        "the description is shown:\n{text}"
    );
    b.snap("authenticator-steg-2").await;
    let src = b
        .attribute("img#qr", "src")
        .await
        .expect("the QR image has a src");
    let png = src
        .strip_prefix("data:image/png;base64,")
        .unwrap_or_else(|| panic!("the QR code is not an inline PNG: {src:.60}"));
    let png = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, png)
        .expect("the QR image is valid base64");
    let uri = decode_qr_png(&png);
    // A camera pointed at the screen reads the same thing.
    let on_screen = decode_qr_png(&b.page_png().await);
    assert_eq!(on_screen, uri, "the QR code on screen differs from its PNG");

    // An otpauth URI an authenticator app accepts, for this portal and user.
    let parsed = url::Url::parse(&uri).unwrap_or_else(|e| panic!("not a URI ({e}): {uri}"));
    assert_eq!(parsed.scheme(), "otpauth", "{uri}");
    assert_eq!(parsed.host_str(), Some("totp"), "{uri}");
    assert_eq!(
        parsed.path(),
        "/portal.test:alice",
        "issuer:account in {uri}"
    );
    let param = |name: &str| {
        parsed
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    assert_eq!(param("issuer").as_deref(), Some("portal.test"), "{uri}");
    assert_eq!(param("digits").as_deref(), Some("6"), "{uri}");
    assert_eq!(param("period").as_deref(), Some("30"), "{uri}");
    let secret_b32 = param("secret").unwrap_or_else(|| panic!("no secret in {uri}"));
    let app = totp_rs::TOTP::from_url(&uri)
        .unwrap_or_else(|e| panic!("an authenticator app would refuse {uri}: {e:?}"));
    assert_eq!(app.account_name, "alice");
    assert_eq!(app.secret.len(), 20, "a 160-bit secret");
    // The same key is shown as text for typing it in by hand.
    let shown: String = b.text_of("code#secret").await.split_whitespace().collect();
    assert_eq!(
        shown, secret_b32,
        "the key shown as text differs from the QR code"
    );
    assert!(
        b.page_text().await.contains("portal.test / alice"),
        "issuer and account are shown"
    );

    // Step 3: the code the app shows now, and OK.
    let enrolled_step = unix_secs() / 30;
    let code = portvakt::factors::totp::code_at(&app.secret, enrolled_step);
    b.type_into("#code", &code).await;
    b.press("OK").await;
    assert_eq!(
        b.heading().await,
        "Mina inställningar",
        "the code was refused"
    );
    AuthenticatorApp {
        secret: app.secret,
        enrolled_step,
        enrolment_code: code,
    }
}

/// Press "Logga ut" on the portal's front page.
pub(crate) async fn log_out(b: &Browser) {
    assert_eq!(b.heading().await, "Dina tjänster");
    b.press("Logga ut").await;
    assert_eq!(b.heading().await, "Du är utloggad");
}

/// The whoami answer the browser shows (Chromium shows JSON as text).
pub(crate) async fn whoami_on_page(b: &Browser) -> Whoami {
    let text = b
        .script(
            "const pre = document.querySelector('pre');
             return pre ? pre.textContent : document.body.innerText;",
        )
        .await;
    let text = text.as_str().unwrap_or_default().to_string();
    let url = b.url().await;
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("not a whoami answer ({e}) at {url}:\n{text}"))
}

pub(crate) fn values(choices: &[Choice]) -> Vec<&str> {
    choices.iter().map(|c| c.value.as_str()).collect()
}

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// Today's date as the settings page writes it (UTC, `YYYY-MM-DD`).
pub(crate) fn today() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%d").to_string()
}

// ------------------------------------------------------------------ her phone

/// The gateway's outbox directory: every SMS and e-mail it sent, one file
/// each (`<time>-<channel>-<to>.txt`, starting with `To: …`).
pub(crate) struct Outbox {
    dir: PathBuf,
}

/// One message in the outbox.
#[derive(Debug)]
pub(crate) struct Message {
    pub(crate) to: String,
    pub(crate) text: String,
}

impl Message {
    /// The one-time code in the message: after `#` in an SMS (`@host #CODE`),
    /// alone on its line in an e-mail.
    pub(crate) fn code(&self) -> String {
        const ALPHABET: &str = "ABCDEFGHJKMNPQRSTUVWXYZ23456789";
        let is_code = |s: &str| s.len() == 6 && s.chars().all(|c| ALPHABET.contains(c));
        let after_hash = self
            .text
            .split('#')
            .skip(1)
            .map(|rest| {
                rest.chars()
                    .take_while(char::is_ascii_alphanumeric)
                    .collect::<String>()
            })
            .find(|c| is_code(c));
        after_hash
            .or_else(|| {
                self.text
                    .lines()
                    .map(str::trim)
                    .find(|l| is_code(l))
                    .map(str::to_string)
            })
            .unwrap_or_else(|| panic!("no one-time code in {self:?}"))
    }
}

impl Outbox {
    pub(crate) fn of(gw: &Gateway) -> Outbox {
        Outbox {
            dir: gw.dir().join("outbox"),
        }
    }

    /// Messages on `channel` (`sms`, `email`), oldest first.
    fn messages(&self, channel: &str) -> Vec<Message> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let marker = format!("-{channel}-");
        let mut names: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.contains(&marker) && n.ends_with(".txt"))
            })
            .collect();
        names.sort();
        names
            .iter()
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .map(|text| Message {
                to: text
                    .lines()
                    .next()
                    .and_then(|l| l.strip_prefix("To: "))
                    .unwrap_or_default()
                    .trim()
                    .to_string(),
                text,
            })
            .collect()
    }

    pub(crate) fn count(&self, channel: &str) -> usize {
        self.messages(channel).len()
    }

    /// The newest message on `channel` once there are more than `before`
    /// (waits at most 10 s).
    pub(crate) async fn wait_for_new(&self, channel: &str, before: usize) -> Message {
        until(
            &format!("a new {channel} in {}", self.dir.display()),
            Duration::from_secs(10),
            Duration::from_millis(50),
            || async {
                let mut all = self.messages(channel);
                (all.len() > before).then(|| all.pop()).flatten()
            },
        )
        .await
    }
}
