//! Login CSRF through the handoff (issue 12 item 5). After a login on the
//! portal, the browser is sent to `https://app.test/.portvakt/handoff?code=…`.
//! Mallory logs in as herself, stops at that redirect and gets someone else
//! to open the link: that browser must not end up working under her name
//! (what they type or upload would be hers to read), and a colleague who is
//! logged in must stay who they are. Two browsers here are two cookie jars.
//! Also: return addresses keep their port, and one we do not serve is
//! refused (the code would be handed to whatever listens there).

use reqwest::Url;

use crate::support::client::ClientOptions;
use crate::support::expect::*;
use crate::support::users::User;
use crate::support::*;

/// The handoff nonce cookie on a service host.
const NONCE_COOKIE: &str = "__Host-portvakt-handoff";

async fn gateway(upstream: &Upstream) -> Gateway {
    GatewayConfig::new()
        .service(Service::new("app.test", upstream.url()).policy("one_factor"))
        .start()
        .await
}

/// `who` logs in for `url` and stops at the redirect to the handoff: the
/// link an attacker would pass on.
async fn handoff_link(browser: &Client, url: &str, who: &User) -> Url {
    let form = browser.open_login_form(url).await;
    let posted = browser.submit_login(&form, who.name, who.password).await;
    assert_eq!(posted.status, 303, "login POST: {}", posted.describe());
    let link = posted.location().expect("Location after login");
    assert_eq!(link.path(), "/.portvakt/handoff", "not a handoff: {link}");
    link
}

fn query_param(url: &Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// No session cookie was handed out anywhere on the way.
fn assert_no_session_given(journey: &Journey, what: &str) {
    for hop in journey.hops.iter().chain([&journey.end]) {
        if let Some(c) = hop.set_cookie(SESSION_COOKIE) {
            assert!(
                is_cookie_removal(c),
                "{what}: a session cookie was handed out: {c}\n{}",
                journey.describe()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handoff_link_opened_in_another_browser_logs_no_one_in() {
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream).await;
    let mallory = gw.client();
    let link = handoff_link(&mallory, "https://app.test/upload", &ALICE).await;

    // Bob, with no session anywhere, clicks mallory's link.
    let bob = gw.client();
    let journey = bob.follow(link.as_str()).await;
    assert_no_session_given(&journey, "a foreign handoff link");
    assert!(
        !journey.end.is_whoami(),
        "another browser reached the app with the link:\n{}",
        journey.describe()
    );
    assert!(
        journey.end.input_value("csrf").is_some() && journey.end.body.contains("name=\"password\""),
        "bob should be asked to log in himself:\n{}",
        journey.describe()
    );
    assert_sent_to_login(&bob.get("https://app.test/upload").await);
    gw.wait_auth_log("the refused handoff", |lines| {
        lines.iter().any(|l| {
            l["event"] == "handoff" && l["result"] == "failure" && l["reason"] == "not_this_browser"
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handoff_link_never_replaces_a_live_session_of_someone_else() {
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream).await;
    let bob = gw.client();
    bob.must_login("https://app.test/", &BOB).await;

    let mallory = gw.client();
    let link = handoff_link(&mallory, "https://app.test/upload", &ALICE).await;

    let page = bob.get(link.as_str()).await;
    assert_branded(&page, 409);
    assert!(
        page.text().contains("bob"),
        "the page should say who is logged in here: {}",
        page.describe()
    );
    assert!(
        page.set_cookie(SESSION_COOKIE).is_none(),
        "{}",
        page.describe()
    );
    let who = bob.get("https://app.test/upload").await;
    assert_eq!(
        who.whoami().one("remote-user"),
        Some("bob"),
        "bob's session was replaced"
    );
    let lines = gw
        .wait_auth_log("the refused handoff", |lines| {
            lines.iter().any(|l| l["reason"] == "other_user_logged_in")
        })
        .await;
    let line = lines
        .iter()
        .find(|l| l["reason"] == "other_user_logged_in")
        .unwrap();
    assert_eq!(line["event"], "handoff");
    assert_eq!(line["user"], "bob", "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_browser_that_started_the_login_gets_in_with_a_strict_nonce_cookie() {
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream).await;
    let alice = gw.client();

    let wall = alice.get("https://app.test/report?id=7").await;
    assert_sent_to_login(&wall);
    let set = wall
        .set_cookie(NONCE_COOKIE)
        .unwrap_or_else(|| panic!("no nonce cookie on the way to login: {}", wall.describe()));
    let attrs = cookie_attributes(set);
    let has = |name: &str| attrs.iter().any(|(n, _)| n == name);
    assert!(has("secure") && has("httponly"), "{set}");
    assert!(
        attrs
            .iter()
            .any(|(n, v)| n == "samesite" && v.eq_ignore_ascii_case("lax")),
        "{set}"
    );
    assert!(attrs.iter().any(|(n, v)| n == "path" && v == "/"), "{set}");
    assert!(!has("domain"), "the nonce must be host-only: {set}");
    assert!(
        attrs
            .iter()
            .any(|(n, v)| n == "max-age" && v.parse::<i64>().is_ok_and(|s| s > 0 && s <= 3600)),
        "the nonce must be short-lived: {set}"
    );
    // The nonce itself never travels in a URL.
    let nonce = cookie_value(set).to_owned();
    assert!(!wall.raw_location().unwrap().contains(&nonce));

    let link = handoff_link(&alice, "https://app.test/report?id=7", &ALICE).await;
    assert!(!link.as_str().contains(&nonce));
    let landed = alice.get(link.as_str()).await;
    assert_redirects_to(&landed, 302, "https://app.test/report?id=7");
    assert!(
        landed.set_cookie(SESSION_COOKIE).is_some(),
        "{}",
        landed.describe()
    );
    let cleared = landed
        .set_cookie(NONCE_COOKIE)
        .expect("the nonce is cleared");
    assert!(is_cookie_removal(cleared), "{cleared}");
    let who = alice.get("https://app.test/report?id=7").await.whoami();
    assert_eq!(who.one("remote-user"), Some("alice"));
    assert!(
        !who.cookie_names()
            .iter()
            .any(|n| n.starts_with("__Host-portvakt")),
        "our cookies reached the upstream: {:?}",
        who.cookie_names()
    );
}

/// A return address that carries no binding (here: the one inside a handoff
/// link) gets no code: the browser is sent to the service host, which binds
/// a new login to it. Bob, logged in on the portal, follows mallory's
/// doctored login link and arrives as himself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unbound_return_address_gets_no_code_but_a_round_trip() {
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream).await;
    let mallory = gw.client();
    let link = handoff_link(&mallory, "https://app.test/upload", &ALICE).await;
    let unbound = query_param(&link, "rd").expect("the handoff carries rd");

    let bob = gw.client();
    let journey = bob.login("https://portal.test/", &BOB).await;
    assert_eq!(journey.end.status, 200, "{}", journey.describe());
    let login_link =
        Url::parse_with_params("https://portal.test/.portvakt/login", &[("rd", &unbound)]).unwrap();
    let first = bob.get(login_link.as_str()).await;
    let to = first
        .location()
        .unwrap_or_else(|| panic!("{}", first.describe()));
    assert_ne!(
        to.path(),
        "/.portvakt/handoff",
        "an unbound target got a code: {to}"
    );
    assert!(same_place(&to, "https://app.test/upload"), "{to}");
    let journey = bob.follow_from(first).await;
    assert!(journey.end.is_whoami(), "{}", journey.describe());
    assert_eq!(journey.end.whoami().one("remote-user"), Some("bob"));
}

/// A request with `Host: app.test:4444` makes the gateway sign a return
/// address on port 4444, which it does not serve. After login the browser
/// must not be sent there (with a handoff code in the URL).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_return_address_on_a_port_we_do_not_serve_is_refused() {
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream).await;
    let port = gw.https_port();

    for foreign in ["4444", "443x", "8443"] {
        let browser = gw.client();
        let wall = browser
            .get_with(
                "https://app.test/secret",
                &[("host", &format!("app.test:{foreign}"))],
            )
            .await;
        let Some(loc) = wall.location() else {
            // Refusing the Host outright is fine too.
            assert!(wall.status >= 400, "{}", wall.describe());
            continue;
        };
        let Some(rd) = query_param(&loc, "rd") else {
            continue;
        };
        let link =
            Url::parse_with_params("https://portal.test/.portvakt/login", &[("rd", &rd)]).unwrap();
        let form = browser.open_login_form(link.as_str()).await;
        let posted = browser.submit_login(&form, "alice", ALICE.password).await;
        let journey = browser.follow_from(posted).await;
        for hop in journey.hops.iter().chain([&journey.end]) {
            if let Some(l) = hop.location() {
                assert!(
                    l.port().is_none() || l.port() == Some(port),
                    "port {foreign}: sent to a port we do not serve: {l}\n{}",
                    journey.describe()
                );
            }
        }
        assert!(
            same_place(&journey.end.url, "https://portal.test/"),
            "port {foreign}: expected the portal page:\n{}",
            journey.describe()
        );
    }

    // Our own listener's port is ours: a login there comes back there.
    let url = format!("https://app.test:{port}/x");
    let journey = gw.client().login(&url, &ALICE).await;
    assert!(journey.end.is_whoami(), "{}", journey.describe());
    assert_eq!(journey.end.url.port(), Some(port));
}

/// HTTP/2 browsers send each cookie as a header field of its own (Chromium
/// does). A gateway reading only the first would miss the nonce, refuse the
/// code, set a new nonce and send the browser round forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_that_splits_its_cookies_over_http2_gets_in() {
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream).await;
    let alice = gw.client();
    let link = handoff_link(&alice, "https://app.test/h2", &ALICE).await;
    let nonce = alice
        .cookie("https://app.test/", NONCE_COOKIE)
        .expect("the nonce cookie in alice's jar");

    let h2 = gw.client_with(ClientOptions::default().http2());
    let pair = format!("{NONCE_COOKIE}={nonce}");
    let landed = h2
        .get_with(
            link.as_str(),
            &[("cookie", "theme=dark"), ("cookie", pair.as_str())],
        )
        .await;
    assert_eq!(landed.version, reqwest::Version::HTTP_2, "not HTTP/2");
    assert_redirects_to(&landed, 302, "https://app.test/h2");
    assert!(
        landed.set_cookie(SESSION_COOKIE).is_some(),
        "{}",
        landed.describe()
    );
}
