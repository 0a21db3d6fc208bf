//! Upstreams: a dead one gets our 502 page, HTTPS ones are verified against
//! their CA file, connections to them are kept alive and reused.

use crate::support::expect::*;
use crate::support::wait::free_addr;
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_upstream_gets_a_branded_bad_gateway_page() {
    let upstream = Upstream::start().await;
    let nothing_there = free_addr();
    let mut gw = GatewayConfig::new()
        .service(
            Service::new("down.test", format!("http://{nothing_there}"))
                .policy("bypass")
                .with("timeouts: { connect: 2s, read: 10s }"),
        )
        .service(Service::new("bypass.test", upstream.url()).policy("bypass"))
        .start()
        .await;
    let browser = gw.client();

    let page = browser.get("https://down.test/x").await;
    assert_branded(&page, 502);
    let lines = gw
        .wait_access_log("the down.test request", |l| {
            l.iter().any(|l| l["host"] == "down.test")
        })
        .await;
    let line = lines.iter().find(|l| l["host"] == "down.test").unwrap();
    let request_id = line["request_id"]
        .as_str()
        .expect("request_id in the access log");
    assert!(!request_id.is_empty());
    assert!(
        page.body.contains(request_id),
        "the 502 page does not show the request id {request_id}: {}",
        page.describe()
    );
    assert_eq!(line["status"], 502, "{line}");

    // The gateway carries on.
    assert!(browser.get("https://bypass.test/").await.is_whoami());
    assert_branded(&browser.get("https://down.test/again").await, 502);
    gw.assert_alive();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_upstream_is_verified_against_its_ca_file() {
    let whoami = Upstream::start().await;
    // A second portvakt plays the HTTPS upstream, with a certificate for upstream.test.
    let inner = GatewayConfig::new()
        .certificates(&["upstream"])
        .service(Service::new("tls-up.test", whoami.url()).policy("bypass"))
        .service(Service::new("notls-up.test", whoami.url()).policy("bypass"))
        .start()
        .await;
    let https_upstream = format!("https://{}", inner.https_addr());
    let gw = GatewayConfig::new()
        .service(
            Service::new("tls-up.test", &https_upstream)
                .policy("bypass")
                .with("upstream_tls: { ca_file: ca.pem, sni: upstream.test, verify: true }"),
        )
        .service(
            Service::new("notls-up.test", &https_upstream)
                .policy("bypass")
                .with("upstream_tls: { sni: upstream.test }"),
        )
        .start()
        .await;
    let browser = gw.client();

    // Without the CA file the system roots do not know the test CA.
    assert_branded(&browser.get("https://notls-up.test/first").await, 502);

    let page = browser.get("https://tls-up.test/through/tls?x=1").await;
    let who = page.whoami();
    assert_eq!(who.path, "/through/tls?x=1");
    assert_eq!(who.host, "tls-up.test");

    // Nor may it borrow the verified connection the other service left in the pool.
    assert_branded(&browser.get("https://notls-up.test/after").await, 502);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_connections_are_reused() {
    let upstream = Upstream::start().await;
    let gw = GatewayConfig::new()
        .service(Service::new("bypass.test", upstream.url()).policy("bypass"))
        .start()
        .await;
    let browser = gw.client();

    let mut seen = Vec::new();
    for i in 0..5 {
        let who = browser
            .get(&format!("https://bypass.test/r/{i}"))
            .await
            .whoami();
        seen.push((who.connection, who.request));
    }
    let first = seen[0].0;
    assert!(
        seen.iter().all(|(c, _)| *c == first),
        "not one upstream connection: {seen:?}"
    );
    assert!(
        seen.windows(2).all(|w| w[1].1 > w[0].1),
        "request numbers do not grow: {seen:?}"
    );
}
