//! Step-up: a one-factor session asked only for the second factor when it
//! needs two — used from outside, or on a two_factor service — then a new
//! session id, and on to where it was going.

use crate::support::enrol::*;
use crate::support::expect::*;
use crate::support::sms::SmsProvider;
use crate::support::smtp::notify_yaml;
use crate::support::*;

/// The old session cookie, sent by a browser that has nothing else, is
/// no longer a session anywhere.
async fn assert_session_ended(gw: &Gateway, cookie: &str, url: &str) {
    let stranger = gw.client();
    let page = stranger
        .get_with(url, &[("cookie", &format!("{SESSION_COOKIE}={cookie}"))])
        .await;
    assert!(
        is_sent_to_login(&page),
        "the session from before the step-up still works at {url}: {}",
        page.describe()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_made_at_the_office_steps_up_when_used_outside() {
    let upstream = Upstream::start().await;
    let sms = SmsProvider::start().await;
    let gw = GatewayConfig::new()
        .service(Service::new("offsite.test", upstream.url()).policy("two_factor_offsite"))
        .extra_yaml(&notify_yaml(&[sms.sms_yaml(
            "/send",
            "form: { to: \"{phone}\", message: \"{text}\" }\ntimeout: 2s",
        )]))
        .start()
        .await;
    set_sms_number(&gw, &ALICE, 0, "+46701234567").await;

    // At the office: the password is enough.
    let at_office = gw.client();
    let who = at_office.must_login("https://offsite.test/", &ALICE).await;
    assert_eq!(who.one("remote-auth-level"), Some("1"));
    let old_app = at_office
        .cookie("https://offsite.test/", SESSION_COOKIE)
        .expect("a session cookie on the app");
    let old_portal = at_office
        .cookie("https://portal.test/", SESSION_COOKIE)
        .expect("a session cookie on the portal");

    // The same browser, later, on the train.
    let on_train = gw.offsite_client_sharing(&at_office);
    let wall = on_train.get("https://offsite.test/rapport?v=2").await;
    assert_sent_to_second(&wall, 302);
    let choice = open_choice(&on_train, &wall).await;
    assert!(
        !choice.page.body.contains("name=\"password\""),
        "only the second factor is asked for, not the password again"
    );
    let page = choose(&on_train, &choice, "sms:0").await;
    assert_eq!(page.status, 200, "{}", page.describe());
    let form = CodePage::parse(page);
    let code = code_in(&sms.request(1).await.form_field("message")).expect("a code");
    let accepted = enter_code(&on_train, &form, &code).await;
    let new_portal = accepted
        .set_cookie(SESSION_COOKIE)
        .map(|c| cookie_value(c).to_string())
        .expect("the accepted code sets a new session cookie");
    let who = arrive(&on_train, accepted, &ALICE).await;
    assert_eq!(
        who.path, "/rapport?v=2",
        "she continues where she was going"
    );
    assert_eq!(who.one("remote-auth-methods"), Some("password,sms"));

    // A new session id; the old one is over, on the portal and on the app.
    assert_ne!(new_portal, old_portal);
    let new_app = on_train
        .cookie("https://offsite.test/", SESSION_COOKIE)
        .expect("a session cookie on the app");
    assert_ne!(new_app, old_app);
    assert_session_ended(&gw, &old_app, "https://offsite.test/").await;
    assert_session_ended(&gw, &old_portal, "https://portal.test/").await;
    // Back at the office the stepped-up session goes on working.
    assert_eq!(
        at_office
            .get("https://offsite.test/")
            .await
            .whoami()
            .one("remote-auth-level"),
        Some("2")
    );

    let lines = gw
        .wait_auth_log("the step-up login", |l| {
            events(l, "login")
                .iter()
                .any(|e| e["reason"] == "second_factor")
        })
        .await;
    let step_up = events(&lines, "login")
        .into_iter()
        .find(|e| e["reason"] == "second_factor")
        .unwrap();
    assert_eq!(step_up["method"], "sms");
    assert_eq!(step_up["network"], "external");
    assert_eq!(step_up["client_ip"], "127.0.0.2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_factor_session_opening_a_two_factor_service_is_asked_for_the_token() {
    let upstream = Upstream::start().await;
    let gw = GatewayConfig::new()
        .service(Service::new("app.test", upstream.url()).policy("one_factor"))
        .service(Service::new("two.test", upstream.url()).policy("two_factor"))
        .start()
        .await;
    let out = token_import(
        &gw,
        "tokens.csv",
        "A1000009,hotp,3132333435363738393031323334353637383930,6,0\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(token_assign(&gw, "A1000009", &ALICE).status.success());
    let b = gw.client();
    b.must_login("https://app.test/", &ALICE).await;
    let old = b.cookie("https://app.test/", SESSION_COOKIE).unwrap();

    let journey = b.follow("https://two.test/lon?m=11").await;
    assert!(
        journey.hops.iter().any(is_sent_to_second),
        "{}",
        journey.describe()
    );
    let choice = ChoicePage::parse(journey.end);
    assert!(choice.page.text().contains("kräver inloggning i två steg"));
    let form = CodePage::parse(choose(&b, &choice, "token").await);
    let code = hotp_code(b"12345678901234567890", 0);
    let who = arrive(&b, enter_code(&b, &form, &code).await, &ALICE).await;
    assert_eq!(who.host, "two.test");
    assert_eq!(who.path, "/lon?m=11");
    assert_eq!(who.one("remote-auth-methods"), Some("password,token"));

    // The app she was using before takes the new session too, after a handoff.
    let back = b.follow("https://app.test/").await;
    assert_eq!(back.end.whoami().one("remote-auth-level"), Some("2"));
    assert_session_ended(&gw, &old, "https://app.test/").await;
}
