//! Identity to upstreams comes only from the gateway: spoofed identity
//! headers and forwarded-for headers from clients change nothing.

use serde_json::Value;

use crate::support::client::ClientOptions;
use crate::support::expect::*;
use crate::support::*;

/// Headers mallory sends hoping the app believes them.
const SPOOFED: &[(&str, &str)] = &[
    ("Remote-User", "mallory"),
    ("remote-user", "eve"),
    ("remote-groups", "admin"),
    ("Remote-Email", "mallory@evil.example"),
    ("Remote-Name", "Mallory"),
    ("Remote-Realm", "admins"),
    ("Remote-Auth-Level", "2"),
    ("Remote-Auth-Methods", "totp"),
];

fn access_line<'a>(lines: &'a [Value], path: &str) -> Option<&'a Value> {
    lines.iter().find(|l| l["path"] == path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoofed_identity_headers_never_reach_the_app() {
    let upstream = Upstream::start().await;
    let gw = GatewayConfig::new()
        .service(Service::new("app.test", upstream.url()).policy("one_factor"))
        .start()
        .await;
    let browser = gw.client();
    browser.must_login("https://app.test/", &ALICE).await;

    let who = browser
        .get_with("https://app.test/spoof", SPOOFED)
        .await
        .whoami();
    let expected = [
        ("remote-user", "alice"),
        ("remote-groups", "staff,lon-users"),
        ("remote-email", "alice@example.org"),
        ("remote-name", "Alice Andersson"),
        ("remote-realm", "staff"),
        ("remote-auth-level", "1"),
        ("remote-auth-methods", "password"),
    ];
    for (name, value) in expected {
        assert_eq!(
            who.all(name),
            vec![value],
            "upstream saw {name}: {:?}",
            who.all(name)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bypass_service_gets_no_identity_headers_even_spoofed_ones() {
    let upstream = Upstream::start().await;
    let gw = GatewayConfig::new()
        .service(Service::new("bypass.test", upstream.url()).policy("bypass"))
        .start()
        .await;
    let mallory = gw.client();

    let who = mallory
        .get_with("https://bypass.test/spoof", SPOOFED)
        .await
        .whoami();
    for name in IDENTITY_HEADERS {
        assert!(
            who.all(name).is_empty(),
            "{name} reached a bypass upstream: {:?}",
            who.all(name)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spoofed_forwarded_for_from_an_untrusted_client_is_ignored() {
    let upstream = Upstream::start().await;
    let gw = GatewayConfig::new()
        .service(Service::new("bypass.test", upstream.url()).policy("bypass"))
        .start()
        .await;
    let mallory = gw.client();

    let who = mallory
        .get_with("https://bypass.test/xff", &[("X-Forwarded-For", "6.6.6.6")])
        .await
        .whoami();
    assert_eq!(
        who.all("x-forwarded-for"),
        vec!["127.0.0.1"],
        "upstream's X-Forwarded-For"
    );

    let lines = gw
        .wait_access_log("the /xff request", |l| access_line(l, "/xff").is_some())
        .await;
    let line = access_line(&lines, "/xff").unwrap();
    assert_eq!(line["client_ip"], "127.0.0.1", "access log: {line}");
    assert_eq!(line["peer_ip"], "127.0.0.1", "access log: {line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_proxy_is_believed_about_the_client_address() {
    let upstream = Upstream::start().await;
    let gw = GatewayConfig::new()
        .trusted_proxies(&["127.0.0.1/32"])
        .service(Service::new("bypass.test", upstream.url()).policy("bypass"))
        .service(Service::new("offsite.test", upstream.url()).policy("two_factor_offsite"))
        .start()
        .await;
    // Every request comes through "the proxy" on 127.0.0.1 for a client out there.
    let remote = gw.client_with(ClientOptions::default().header("X-Forwarded-For", "203.0.113.9"));

    remote.get("https://bypass.test/via-proxy").await.whoami();
    let lines = gw
        .wait_access_log("the /via-proxy request", |l| {
            access_line(l, "/via-proxy").is_some()
        })
        .await;
    let line = access_line(&lines, "/via-proxy").unwrap();
    assert_eq!(line["client_ip"], "203.0.113.9", "access log: {line}");
    assert_eq!(line["peer_ip"], "127.0.0.1", "access log: {line}");
    assert_eq!(line["network"], "external", "access log: {line}");

    // So for a two_factor_offsite service she is off-network: a password is
    // not enough, and she is sent on to the second step.
    let posted =
        crate::support::enrol::password_step(&remote, "https://offsite.test/", &ALICE, None).await;
    crate::support::enrol::assert_sent_to_second(&posted, 303);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renamed_identity_header_carries_the_user_and_cannot_be_spoofed() {
    let upstream = Upstream::start().await;
    let gw = GatewayConfig::new()
        .service(
            Service::new("app.test", upstream.url())
                .policy("one_factor")
                .with("identity_headers: { user: X-Forwarded-User }"),
        )
        .start()
        .await;
    let browser = gw.client();
    browser
        .must_login_as_header("https://app.test/", &ALICE, "x-forwarded-user")
        .await;

    let who = browser
        .get_with(
            "https://app.test/renamed",
            &[("X-Forwarded-User", "mallory"), ("Remote-User", "mallory")],
        )
        .await
        .whoami();
    assert_eq!(who.all("x-forwarded-user"), vec!["alice"]);
    assert!(
        who.all("remote-user").is_empty(),
        "remote-user: {:?}",
        who.all("remote-user")
    );
    assert_eq!(
        who.one("remote-groups"),
        Some("staff,lon-users"),
        "other names keep their defaults"
    );
}
