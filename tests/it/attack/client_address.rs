//! Who is the client (issue 12, class 2). The test client on 127.0.0.1 plays
//! a trusted proxy (HAProxy with `option forwardfor`, which adds a new
//! `X-Forwarded-For` line after whatever the client sent); the office network
//! is 10.20.0.0/16 and the proxy's own address is internal too, so a gateway
//! that falls back to the peer, or believes the client's own line, shows it
//! at once. The attacker sits at 203.0.113.9 and claims 10.20.0.5.

use serde_json::Value;

use crate::support::client::ClientOptions;
use crate::support::enrol::assert_sent_to_second;
use crate::support::users::User;
use crate::support::*;

const OFFICE: &str = "10.20.0.5";
const ATTACKER: &str = "203.0.113.9";

/// Trusted proxy on 127.0.0.1; internal networks 10.20.0.0/16 and the proxy.
fn config(upstream: &Upstream) -> GatewayConfig {
    GatewayConfig::new()
        .trusted_proxies(&["127.0.0.1/32"])
        .internal_networks(&["10.20.0.0/16", "127.0.0.1/32"])
        .service(Service::new("bypass.test", upstream.url()).policy("bypass"))
        .service(Service::new("offsite.test", upstream.url()).policy("two_factor_offsite"))
}

/// GET `url` with these header lines, in this order, on the request itself
/// (reqwest's default headers keep one value per name).
async fn get_lines(b: &Client, url: &str, lines: &[(&str, &str)]) -> Page {
    b.get_with(url, lines).await
}

/// Open `url`, follow to the login form and post `user`'s password, every
/// request carrying these header lines; the answer is not followed.
async fn password_with_lines(b: &Client, url: &str, user: &User, lines: &[(&str, &str)]) -> Page {
    let journey = b.follow_with(url, lines).await;
    let page = &journey.end;
    let csrf = page
        .input_value("csrf")
        .unwrap_or_else(|| panic!("no login form after {url}:\n{}", journey.describe()));
    let mut fields = vec![
        ("username", user.name.to_string()),
        ("password", user.password.to_string()),
        ("csrf", csrf),
    ];
    if let Some(rd) = page.input_value("rd") {
        fields.push(("rd", rd));
    }
    let mut action = page.url.clone();
    action.set_path("/.portvakt/login");
    action.set_query(None);
    let mut request = b
        .request(reqwest::Method::POST, action.as_str())
        .form(&fields);
    for (name, value) in lines {
        request = request.header(*name, *value);
    }
    b.send(request).await
}

async fn access_line(gw: &Gateway, path: &str) -> Value {
    let lines = gw
        .wait_access_log(path, |l| l.iter().any(|l| l["path"] == path))
        .await;
    lines.into_iter().find(|l| l["path"] == path).unwrap()
}

/// `client_ip` and `network` the access log decided for `path`.
async fn decided(gw: &Gateway, path: &str) -> (String, String) {
    let line = access_line(gw, path).await;
    (
        line["client_ip"].as_str().unwrap_or("?").to_string(),
        line["network"].as_str().unwrap_or("?").to_string(),
    )
}

/// The self-service pages a session opens from the office network.
const SELF_SERVICE: [&str; 3] = [
    "https://portal.test/.portvakt/settings",
    "https://portal.test/.portvakt/sms",
    "https://portal.test/.portvakt/settings/authenticator",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spoofed_first_x_forwarded_for_line_is_not_believed() {
    let upstream = Upstream::start().await;
    let gw = config(&upstream).start().await;
    let spoof = [("X-Forwarded-For", OFFICE), ("X-Forwarded-For", ATTACKER)];
    for (n, options) in [ClientOptions::default(), ClientOptions::default().http2()]
        .into_iter()
        .enumerate()
    {
        let mallory = gw.client_with(options);
        let path = format!("/two-lines-{n}");
        let url = format!("https://bypass.test{path}");
        let who = get_lines(&mallory, &url, &spoof).await.whoami();
        assert_eq!(
            decided(&gw, &path).await,
            (ATTACKER.into(), "external".into())
        );
        // The upstream hears the decided client and the proxy, not the spoof.
        assert_eq!(
            who.all("x-forwarded-for"),
            [format!("{ATTACKER}, 127.0.0.1")]
        );
        assert_eq!(who.one("x-real-ip"), Some(ATTACKER));

        // A password alone is not enough where off-network needs two factors.
        let posted = password_with_lines(&mallory, "https://offsite.test/", &ALICE, &spoof).await;
        assert_sent_to_second(&posted, 303);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_self_service_pages_refuse_a_spoofed_office_address() {
    let upstream = Upstream::start().await;
    let gw = config(&upstream).start().await;
    // Alice in the office, through the proxy: password alone, pages open.
    let office = [("X-Forwarded-For", OFFICE)];
    let alice = gw.client_with(ClientOptions::default().header("X-Forwarded-For", OFFICE));
    alice.must_login("https://offsite.test/", &ALICE).await;
    for url in SELF_SERVICE {
        let page = get_lines(&alice, url, &office).await;
        assert_eq!(
            page.status,
            200,
            "from the office {url}: {}",
            page.describe()
        );
    }
    // The same session (cookie stolen, or the laptop taken home) from
    // outside, with the office address as its own first line.
    let outside = gw.client_with(ClientOptions::default().cookie_jar(alice.jar()));
    for lines in [
        &[("X-Forwarded-For", OFFICE), ("X-Forwarded-For", ATTACKER)][..],
        &[("X-Forwarded-For", OFFICE), ("X-Forwarded-For", "")][..],
        &[
            ("Forwarded", "for=10.20.0.5"),
            ("X-Forwarded-For", ATTACKER),
        ][..],
        &[][..],
    ] {
        for url in SELF_SERVICE {
            let page = get_lines(&outside, url, lines).await;
            assert_eq!(page.status, 403, "{lines:?} {url}: {}", page.describe());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarded_header_is_ignored_when_the_config_names_x_forwarded_for() {
    let upstream = Upstream::start().await;
    let gw = config(&upstream).start().await;
    // HAProxy sets only X-Forwarded-For and passes the client's Forwarded on.
    let spoof = [
        ("Forwarded", "for=10.20.0.5"),
        ("Forwarded", "for=\"10.20.0.5:443\";proto=https"),
        ("X-Forwarded-For", ATTACKER),
    ];
    let mallory = gw.client();
    let who = get_lines(&mallory, "https://bypass.test/fwd-spoof", &spoof)
        .await
        .whoami();
    assert_eq!(
        decided(&gw, "/fwd-spoof").await,
        (ATTACKER.into(), "external".into())
    );
    assert!(
        who.all("forwarded").is_empty(),
        "the client's Forwarded reached the upstream: {:?}",
        who.all("forwarded")
    );
    let posted = password_with_lines(&mallory, "https://offsite.test/", &ALICE, &spoof).await;
    assert_sent_to_second(&posted, 303);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_forwarded_configured_x_forwarded_for_is_ignored_and_all_lines_count() {
    let upstream = Upstream::start().await;
    let gw = config(&upstream)
        .extra_yaml("client_address:\n  header: forwarded\n")
        .start()
        .await;
    let b = gw.client();
    // The proxy's honest element for an office client: believed.
    let honest = [("Forwarded", "for=\"10.20.0.5:50123\";proto=https")];
    get_lines(&b, "https://bypass.test/fwd-honest", &honest)
        .await
        .whoami();
    assert_eq!(
        decided(&gw, "/fwd-honest").await,
        (OFFICE.into(), "internal".into())
    );

    for (n, lines) in [
        // An X-Forwarded-For passed through untouched.
        &[
            ("X-Forwarded-For", OFFICE),
            ("Forwarded", "for=203.0.113.9"),
        ][..],
        // The client's own Forwarded line first, the proxy's after it.
        &[
            ("Forwarded", "for=10.20.0.5"),
            ("Forwarded", "For=\"203.0.113.9\""),
        ][..],
        // A quoted comma is no element boundary.
        &[("Forwarded", "by=\"x, for=10.20.0.5\", for=203.0.113.9")][..],
    ]
    .into_iter()
    .enumerate()
    {
        let path = format!("/fwd-spoof-{n}");
        let url = format!("https://bypass.test{path}");
        get_lines(&b, &url, lines).await.whoami();
        assert_eq!(
            decided(&gw, &path).await,
            (ATTACKER.into(), "external".into()),
            "{lines:?}"
        );
    }
    let spoof = [
        ("X-Forwarded-For", OFFICE),
        ("Forwarded", "for=203.0.113.9"),
    ];
    let posted = password_with_lines(&b, "https://offsite.test/", &ALICE, &spoof).await;
    assert_sent_to_second(&posted, 303);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_proxy_that_names_no_usable_client_makes_it_off_network() {
    let upstream = Upstream::start().await;
    let gw = config(&upstream).start().await;
    for (n, lines) in [
        &[][..],
        &[("X-Forwarded-For", "")][..],
        &[("X-Forwarded-For", "garbage")][..],
        &[("X-Forwarded-For", "unknown")][..],
        &[("X-Forwarded-For", "_hidden")][..],
        &[("X-Forwarded-For", "999.0.0.1")][..],
        &[("X-Forwarded-For", "10.20.0.5, junk")][..],
        &[("X-Forwarded-For", OFFICE), ("X-Forwarded-For", "nonsense")][..],
    ]
    .into_iter()
    .enumerate()
    {
        let b = gw.client();
        let path = format!("/no-client-{n}");
        let url = format!("https://bypass.test{path}");
        let who = get_lines(&b, &url, lines).await.whoami();
        assert_eq!(
            decided(&gw, &path).await,
            ("0.0.0.0".into(), "external".into()),
            "{lines:?}"
        );
        assert_eq!(who.one("x-real-ip"), Some("0.0.0.0"), "{lines:?}");
        let posted = password_with_lines(&b, "https://offsite.test/", &ALICE, lines).await;
        assert_sent_to_second(&posted, 303);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_client_cannot_claim_an_office_address() {
    let upstream = Upstream::start().await;
    let gw = config(&upstream).start().await;
    let mallory = gw.offsite_client();
    let spoof = [
        ("X-Forwarded-For", OFFICE),
        ("X-Forwarded-For", "127.0.0.1"),
        ("Forwarded", "for=10.20.0.5"),
        ("X-Real-IP", OFFICE),
    ];
    let who = get_lines(&mallory, "https://bypass.test/untrusted", &spoof)
        .await
        .whoami();
    assert_eq!(
        decided(&gw, "/untrusted").await,
        ("127.0.0.2".into(), "external".into())
    );
    assert_eq!(who.all("x-forwarded-for"), ["127.0.0.2"]);
    assert_eq!(who.all("x-real-ip"), ["127.0.0.2"]);
    assert!(who.all("forwarded").is_empty());
    let posted = password_with_lines(&mallory, "https://offsite.test/", &ALICE, &spoof).await;
    assert_sent_to_second(&posted, 303);
}
