//! Header hygiene (issue 12, class 6; SECURITY.md "What is the request").
//! The attacker sends headers an upstream would believe — an identity in a
//! spelling CGI merges with ours, a URL-rewrite header — or simply too many.

use crate::support::expect::*;
use crate::support::*;

/// What the whoami upstream received under `name`.
fn received<'a>(who: &'a Whoami, name: &str) -> Vec<&'a str> {
    who.headers
        .iter()
        .filter(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

const SPOOFS: [(&str, &str); 7] = [
    ("Remote_User", "admin"),
    ("remote_user", "admin"),
    ("REMOTE-USER", "admin"),
    ("Remote_Groups", "admins"),
    ("X-Original-URL", "/admin"),
    ("X-Rewrite-URL", "/admin"),
    ("X_Forwarded_For", "10.20.0.5"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_look_alikes_and_url_rewrites_never_reach_an_upstream() {
    let upstream = Upstream::start().await;
    let gw = GatewayConfig::new()
        .service(Service::new("bypass.test", upstream.url()).policy("bypass"))
        .service(Service::new("app.test", upstream.url()).policy("one_factor"))
        .start()
        .await;

    // Anonymous, on a bypass service.
    let who = gw
        .client()
        .get_with("https://bypass.test/", &SPOOFS)
        .await
        .whoami();
    for name in [
        "remote_user",
        "remote-user",
        "remote_groups",
        "x-original-url",
        "x-rewrite-url",
        "x_forwarded_for",
    ] {
        assert!(
            received(&who, name).is_empty(),
            "{name} reached the bypass upstream: {:?}",
            who.headers
        );
    }

    // Logged in as alice: the upstream hears alice, once, under our name only.
    let browser = gw.client();
    browser.must_login("https://app.test/", &ALICE).await;
    let who = browser
        .get_with("https://app.test/", &SPOOFS)
        .await
        .whoami();
    assert_eq!(received(&who, "remote-user"), [ALICE.name]);
    for name in [
        "remote_user",
        "remote_groups",
        "x-original-url",
        "x-rewrite-url",
    ] {
        assert!(received(&who, name).is_empty(), "{name}: {:?}", who.headers);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_that_keeps_underscore_headers_still_loses_the_look_alikes() {
    let upstream = Upstream::start().await;
    let gw = GatewayConfig::new()
        .service(
            Service::new("bypass.test", upstream.url())
                .policy("bypass")
                .with("keep_underscore_headers: true"),
        )
        .start()
        .await;
    let who = gw
        .client()
        .get_with(
            "https://bypass.test/",
            &[
                ("X_Legacy_Token", "t"),
                ("Remote_User", "admin"),
                ("remote_email", "x@y"),
            ],
        )
        .await
        .whoami();
    assert_eq!(received(&who, "x_legacy_token"), ["t"]);
    assert!(
        received(&who, "remote_user").is_empty(),
        "{:?}",
        who.headers
    );
    assert!(
        received(&who, "remote_email").is_empty(),
        "{:?}",
        who.headers
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_header_block_gets_431_and_our_page() {
    let upstream = Upstream::start().await;
    let mut gw = GatewayConfig::new()
        .service(Service::new("bypass.test", upstream.url()).policy("bypass"))
        .start()
        .await;
    let browser = gw.client();

    // 200 KB in one header (the example) and 70 KB over several.
    let big = "x".repeat(200 * 1024);
    assert_branded(
        &browser
            .get_with("https://bypass.test/", &[("X-Big", &big)])
            .await,
        431,
    );
    let chunk = "y".repeat(7 * 1024);
    let several: Vec<(String, &str)> = (0..10)
        .map(|i| (format!("X-Part-{i}"), chunk.as_str()))
        .collect();
    let several: Vec<(&str, &str)> = several.iter().map(|(n, v)| (n.as_str(), *v)).collect();
    assert_branded(
        &browser.get_with("https://bypass.test/", &several).await,
        431,
    );

    // 101 fields is one too many; 90 (plus what the client adds) is fine.
    let names: Vec<String> = (0..101).map(|i| format!("X-Field-{i}")).collect();
    let many: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "1")).collect();
    assert_branded(&browser.get_with("https://bypass.test/", &many).await, 431);
    let who = browser
        .get_with("https://bypass.test/", &many[..90])
        .await
        .whoami();
    assert_eq!(received(&who, "x-field-89"), ["1"]);

    let lines = gw
        .wait_access_log("the 431 lines", |l| {
            l.iter().filter(|r| r["status"] == 431).count() == 3
        })
        .await;
    let reasons: Vec<&str> = lines
        .iter()
        .filter(|r| r["status"] == 431)
        .filter_map(|r| r["reason"].as_str())
        .collect();
    assert_eq!(
        reasons,
        ["headers_too_large", "headers_too_large", "too_many_headers"]
    );
    gw.assert_alive();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_names_two_hosts_is_refused() {
    let upstream = Upstream::start().await;
    let gw = GatewayConfig::new()
        .service(Service::new("bypass.test", upstream.url()).policy("bypass"))
        .service(Service::new("app.test", upstream.url()).policy("one_factor"))
        .start()
        .await;
    let send = |head: &str| {
        crate::support::wire::send(
            gw.https_addr(),
            gw.pki().ca_pem(),
            "bypass.test",
            head.as_bytes(),
        )
    };
    // Routed as the open host, read by an upstream as the protected one.
    let r = send("GET / HTTP/1.1\r\nHost: bypass.test\r\nHost: app.test");
    assert_eq!(r.status, 400, "{}", r.body);
    // An absolute-form target that names another host than `Host`.
    let r = send("GET https://app.test/ HTTP/1.1\r\nHost: bypass.test");
    assert!(
        r.status == 400 || (r.status == 200 && r.body.contains("\"host\":\"bypass.test\"")),
        "decided as one host, sent upstream as another: {} {}",
        r.status,
        r.body
    );
    let r = send("GET / HTTP/1.1\r\nHost: bypass.test");
    assert_eq!(r.status, 200, "{}", r.body);
}
