//! Policies: deny, bypass, one and two factors, two factors off-network,
//! group conditions.

use crate::support::expect::*;
use crate::support::*;

async fn gateway(upstream: &Upstream) -> Gateway {
    let up = upstream.url();
    GatewayConfig::new()
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
async fn a_two_factor_service_refuses_a_one_factor_session() {
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream).await;
    let browser = gw.client();

    browser.must_login("https://app.test/", &ALICE).await;
    let journey = browser.follow("https://two.test/").await;
    assert_refused(&journey, "two_factor with a password-only session");
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
    let traveller = gw.offsite_client();

    let journey = traveller.login("https://offsite.test/", &ALICE).await;
    assert_refused(
        &journey,
        "two_factor_offsite from 127.0.0.2 after a password",
    );
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
