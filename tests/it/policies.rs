//! Policies: deny, bypass, one and two factors, two factors off-network,
//! group conditions.

use crate::support::enrol::*;
use crate::support::expect::*;
use crate::support::*;

/// In-process on a manual clock (the TOTP step is then the test's to choose).
async fn gateway(upstream: &Upstream) -> Gateway {
    let up = upstream.url();
    GatewayConfig::new()
        .clock(&portvakt::clock::ManualClock::starting_now())
        .service(Service::new("app.test", &up).policy("one_factor"))
        .service(Service::new("deny.test", &up).policy("deny"))
        .service(Service::new("two.test", &up).policy("two_factor"))
        .service(Service::new("offsite.test", &up).policy("two_factor_offsite"))
        .service(
            Service::new("lon.test", &up)
                .policy("one_factor")
                .with("groups: [lon-users]"),
        )
        .service(Service::new("bypass.test", &up).policy("bypass"))
        .start()
        .await
}

/// The end of `journey` is our refusal (403), not the upstream.
fn assert_refused(journey: &Journey, why: &str) {
    assert_eq!(journey.end.status, 403, "{why}:\n{}", journey.describe());
    assert!(journey.end.is_html(), "{why}:\n{}", journey.describe());
    assert!(
        !journey.end.is_whoami(),
        "{why}: the upstream answered:\n{}",
        journey.describe()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_service_shows_a_branded_refusal() {
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream).await;
    let browser = gw.client();

    assert_branded(&browser.get("https://deny.test/").await, 403);
    browser.must_login("https://app.test/", &ALICE).await;
    let journey = browser.follow("https://deny.test/anything").await;
    assert_branded(&journey.end, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_factor_service_sends_a_one_factor_session_to_the_second_step() {
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream).await;
    let browser = gw.client();

    browser.must_login("https://app.test/", &ALICE).await;
    let journey = browser.follow("https://two.test/").await;
    assert!(
        journey.hops.iter().any(is_sent_to_second),
        "two_factor with a password-only session should lead to the second step:\n{}",
        journey.describe()
    );
    assert_branded(&journey.end, 200);
    // At the office the token is the second factor; alice has none, and is told so.
    let choice = ChoicePage::parse(journey.end);
    let token = choice.option("token");
    assert!(token.disabled && token.reason.is_some(), "{token:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_internal_client_reaches_an_offsite_service_with_a_password() {
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream).await;
    let browser = gw.client();

    let who = browser.must_login("https://offsite.test/", &ALICE).await;
    assert_eq!(who.one("remote-auth-level"), Some("1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_off_network_client_must_step_up_for_an_offsite_service() {
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream).await;
    let secret = totp_add(&gw, &ALICE, "Jobbmobil");
    let traveller = gw.offsite_client();

    // The password alone leads to the second step, not to the service.
    let posted = password_step(&traveller, "https://offsite.test/", &ALICE, None).await;
    assert_sent_to_second(&posted, 303);
    let choice = open_choice(&traveller, &posted).await;
    let form = CodePage::parse(choose(&traveller, &choice, "totp").await);
    let now = fresh_step_time(&gw).await;
    let code = totp_code(&secret, now);
    let who = arrive(
        &traveller,
        enter_code(&traveller, &form, &code).await,
        &ALICE,
    )
    .await;
    assert_eq!(who.one("remote-auth-methods"), Some("password,totp"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_second_factor_from_here_the_step_up_page_explains() {
    let upstream = Upstream::start().await;
    // The realm offers nothing but the password, inside and out.
    let gw = GatewayConfig::new()
        .service(Service::new("offsite.test", upstream.url()).policy("two_factor_offsite"))
        .realm_methods(&["password"], &["password"])
        .start()
        .await;

    // A session made at the office, used outside: nothing to step up with.
    let at_office = gw.client();
    at_office.must_login("https://offsite.test/", &ALICE).await;
    let outside = gw.offsite_client_sharing(&at_office);
    let journey = outside.follow("https://offsite.test/").await;
    assert_refused(&journey, "no second factor offered off the network");
    assert_branded(&journey.end, 403);
    assert!(
        journey.end.text().contains("inloggning i två steg"),
        "the page says why: {}",
        journey.describe()
    );

    // Logging in from outside ends the same way.
    let traveller = gw.offsite_client();
    let journey = traveller.login("https://offsite.test/", &ALICE).await;
    assert_refused(&journey, "no second factor offered off the network");
    assert_branded(&journey.end, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_outside_the_required_group_is_refused() {
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream).await;

    let bob = gw.client();
    let journey = bob.login("https://lon.test/", &BOB).await;
    assert_refused(&journey, "bob is not in lon-users");

    let alice = gw.client();
    alice.must_login("https://lon.test/", &ALICE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bypass_service_needs_no_login() {
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream).await;
    let anyone = gw.client();

    let who = anyone.get("https://bypass.test/open?x=1").await.whoami();
    assert_eq!(who.path, "/open?x=1");
    assert!(who.all("remote-user").is_empty());
}
