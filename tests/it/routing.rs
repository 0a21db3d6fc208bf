//! Routing: host, then the longest path prefix; unknown hosts and unknown
//! pages of our own get a branded 404.

use crate::support::expect::*;
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_host_gets_a_branded_not_found_page() {
    let upstream = Upstream::start().await;
    let gw = GatewayConfig::new()
        .service(Service::new("app.test", upstream.url()).policy("bypass"))
        .start()
        .await;
    let browser = gw.client();

    assert_branded(&browser.get("https://nowhere.test/").await, 404);
    assert_branded(
        &browser.get("https://nowhere.test/some/page?x=1").await,
        404,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_longest_path_prefix_decides_the_service() {
    let upstream = Upstream::start().await;
    let up = upstream.url();
    // Which service answered shows in the policy: bypass reaches whoami, deny is our 403.
    let gw = GatewayConfig::new()
        .service(
            Service::new("app.test", &up)
                .name("App root")
                .policy("bypass"),
        )
        .service(
            Service::new("app.test", &up)
                .name("App API")
                .path("/api")
                .policy("deny"),
        )
        .service(
            Service::new("app.test", &up)
                .name("App API public")
                .path("/api/public")
                .policy("bypass"),
        )
        .service(
            Service::new("other.test", &up)
                .name("Other root")
                .policy("deny"),
        )
        .service(
            Service::new("other.test", &up)
                .name("Other API")
                .path("/api")
                .policy("bypass"),
        )
        .start()
        .await;
    let browser = gw.client();

    let reaches = [
        "https://app.test/",
        "https://app.test/x",
        "https://app.test/api/public/x",
        "https://other.test/api/x",
        "https://other.test/api",
    ];
    for url in reaches {
        let page = browser.get(url).await;
        assert!(
            page.is_whoami(),
            "{url} should reach the upstream: {}",
            page.describe()
        );
    }
    let denied = [
        "https://app.test/api/x",
        "https://app.test/api",
        "https://other.test/",
        "https://other.test/x",
    ];
    for url in denied {
        assert_branded(&browser.get(url).await, 403);
    }
    // The path arrives upstream as it was asked for.
    assert_eq!(
        browser
            .get("https://other.test/api/x?y=1")
            .await
            .whoami()
            .path,
        "/api/x?y=1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_page_of_ours_is_not_found_on_every_host() {
    let upstream = Upstream::start().await;
    let gw = GatewayConfig::new()
        .service(Service::new("app.test", upstream.url()).policy("one_factor"))
        .service(Service::new("bypass.test", upstream.url()).policy("bypass"))
        .start()
        .await;
    let browser = gw.client();

    for host in ["portal.test", "app.test", "bypass.test", "nowhere.test"] {
        let page = browser
            .get(&format!("https://{host}/.portvakt/nonexistent"))
            .await;
        assert_branded(&page, 404);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_path_prefix_reaches_its_own_upstream() {
    let web = Upstream::start().await;
    let api = Upstream::start().await;
    // Five direct connections to the API upstream first: from then on its
    // connection counter is past 5, while the web upstream's starts at 1.
    for _ in 0..5 {
        let direct = reqwest::Client::builder().no_proxy().build().unwrap();
        let resp = direct
            .get(format!("{}/direct", api.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    let gw = GatewayConfig::new()
        .service(
            Service::new("app.test", web.url())
                .name("Web")
                .policy("bypass"),
        )
        .service(
            Service::new("app.test", api.url())
                .name("API")
                .path("/api")
                .policy("bypass"),
        )
        .start()
        .await;
    let browser = gw.client();

    for path in ["/", "/x", "/other/api"] {
        let who = browser
            .get(&format!("https://app.test{path}"))
            .await
            .whoami();
        assert!(
            who.connection <= 5,
            "{path} went to the API upstream: {who:?}"
        );
    }
    for path in ["/api", "/api/x", "/api/x/y?z=1"] {
        let who = browser
            .get(&format!("https://app.test{path}"))
            .await
            .whoami();
        assert!(
            who.connection > 5,
            "{path} went to the web upstream: {who:?}"
        );
    }
}
