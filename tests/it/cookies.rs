//! The app's cookies travel both ways untouched; ours never reach the app.

use crate::support::expect::*;
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_cookies_travel_both_ways_and_ours_stay_home() {
    let upstream = Upstream::start().await;
    let gw = GatewayConfig::new()
        .service(Service::new("app.test", upstream.url()).policy("one_factor"))
        .service(Service::new("bypass.test", upstream.url()).policy("bypass"))
        .start()
        .await;
    let browser = gw.client();
    browser.must_login("https://app.test/", &ALICE).await;

    for host in ["app.test", "bypass.test"] {
        let set = browser.get(&format!("https://{host}/set-cookie")).await;
        assert_eq!(set.status, 200, "{host}: {}", set.describe());
        let cookie = set.set_cookie("app_cookie").unwrap_or_else(|| {
            panic!(
                "{host}: the app's Set-Cookie did not arrive: {:?}",
                set.header_all("set-cookie")
            )
        });
        assert_eq!(cookie_value(cookie), "from-upstream");

        let who = browser.get(&format!("https://{host}/next")).await.whoami();
        assert_eq!(
            who.cookie("app_cookie").as_deref(),
            Some("from-upstream"),
            "{host}: {:?}",
            who.all("cookie")
        );
        let names = who.cookie_names();
        assert!(
            !names
                .iter()
                .any(|n| n == SESSION_COOKIE || n == FLOW_COOKIE),
            "{host}: our cookies went upstream: {names:?}"
        );
    }
}
