//! Requests nobody should send are refused with our pages, and never crash
//! the gateway (every `Gateway` checks on drop that its process still runs).

use crate::support::expect::*;
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_login_post_is_refused_with_413() {
    let upstream = Upstream::start().await;
    let mut gw = GatewayConfig::new()
        .service(Service::new("app.test", upstream.url()).policy("one_factor"))
        .start()
        .await;
    let browser = gw.client();

    let form = browser.open_login_form("https://app.test/").await;
    let padding = "x".repeat(70 * 1024);
    let page = browser
        .post_form(
            form.action.as_str(),
            &[
                ("username", "alice"),
                ("password", ALICE.password),
                ("csrf", &form.csrf),
                ("rd", form.rd.as_deref().unwrap_or("")),
                ("padding", &padding),
            ],
        )
        .await;
    assert_branded(&page, 413);
    assert!(
        page.set_cookie(SESSION_COOKIE).is_none(),
        "an oversized login logged in"
    );

    // Still serving.
    browser.must_login("https://app.test/", &ALICE).await;
    gw.assert_alive();
}
