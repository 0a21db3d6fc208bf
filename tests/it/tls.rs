//! TLS: ALPN picks HTTP/2, HSTS on every TLS response, SNI picks the
//! certificate, the plain-HTTP listener only redirects.

use reqwest::Version;

use crate::support::client::ClientOptions;
use crate::support::*;

async fn gateway(upstream: &Upstream) -> Gateway {
    GatewayConfig::new()
        .http_listener()
        .service(Service::new("app.test", upstream.url()).policy("one_factor"))
        .service(Service::new("bypass.test", upstream.url()).policy("bypass"))
        .start()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browsers_get_http2_by_alpn_and_http1_still_works() {
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream).await;

    let modern = gw.client_with(ClientOptions::default().http2());
    let proxied = modern.get("https://bypass.test/h2").await;
    assert_eq!(
        proxied.version,
        Version::HTTP_2,
        "proxied response over {:?}",
        proxied.version
    );
    assert!(proxied.is_whoami(), "{}", proxied.describe());
    let own = modern.get("https://portal.test/.portvakt/login").await;
    assert_eq!(
        own.version,
        Version::HTTP_2,
        "login page over {:?}",
        own.version
    );
    assert_eq!(own.status, 200);
    // A whole login over h2.
    modern.must_login("https://app.test/", &ALICE).await;

    let old = gw.client();
    let proxied = old.get("https://bypass.test/h1").await;
    assert_eq!(proxied.version, Version::HTTP_11);
    assert!(proxied.is_whoami(), "{}", proxied.describe());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tls_response_carries_hsts() {
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream).await;
    let browser = gw.client();

    let pages = [
        (
            "login page",
            browser.get("https://portal.test/.portvakt/login").await,
        ),
        ("login redirect", browser.get("https://app.test/").await),
        (
            "proxied response",
            browser.get("https://bypass.test/").await,
        ),
        (
            "proxied error",
            browser.get("https://bypass.test/status/500").await,
        ),
        ("unknown host", browser.get("https://nowhere.test/").await),
        (
            "unknown page",
            browser
                .get("https://portal.test/.portvakt/nonexistent")
                .await,
        ),
    ];
    for (what, page) in &pages {
        let hsts = page
            .header("strict-transport-security")
            .unwrap_or_else(|| panic!("{what} without HSTS: {}", page.describe()));
        assert!(
            hsts.contains("max-age=31536000"),
            "{what}: HSTS {hsts:?} is not 365d"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sni_picks_the_matching_certificate() {
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream).await;
    let browser = gw.client_with(ClientOptions::default().tls_info());

    let second = browser.get("https://second.test/").await;
    let cert = second
        .peer_cert
        .as_deref()
        .expect("TLS info for second.test");
    assert!(
        cert == gw.pki().leaf("second").der,
        "second.test was not served the second certificate"
    );

    let main = browser.get("https://app.test/").await;
    let cert = main.peer_cert.as_deref().expect("TLS info for app.test");
    assert!(
        cert == gw.pki().leaf("main").der,
        "app.test was not served the main certificate"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plain_http_listener_redirects_to_https() {
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream).await;
    let browser = gw.client();

    let url = format!("http://app.test:{}/x?y", gw.http_addr().port());
    let page = browser.get(&url).await;
    assert_eq!(page.status, 301, "{}", page.describe());
    assert_eq!(
        page.raw_location(),
        Some(format!("https://app.test:{}/x?y", gw.https_port()).as_str()),
        "{}",
        page.describe()
    );
    assert!(!page.is_whoami(), "plain HTTP reached the upstream");
}
