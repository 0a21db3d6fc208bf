//! The login wall and the way back: app → portal login → handoff on the app's
//! host → the page she asked for, with her identity in headers upstream.

use crate::support::expect::*;
use crate::support::*;

fn query_param(url: &reqwest::Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

async fn app_gateway(upstream: &Upstream) -> Gateway {
    GatewayConfig::new()
        .service(
            Service::new("app.test", upstream.url())
                .name("App")
                .policy("one_factor"),
        )
        .start()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alice_logs_in_and_lands_where_she_was_going() {
    let upstream = Upstream::start().await;
    let gw = app_gateway(&upstream).await;
    let browser = gw.client();

    // The app does not know her: off to the portal, with a signed return address.
    let wall = browser.get("https://app.test/some/path?q=1").await;
    assert_sent_to_login(&wall);
    let login_url = wall.location().unwrap();
    let rd_token = query_param(&login_url, "rd").expect("the login redirect carries rd");
    assert!(!rd_token.is_empty());

    // The login page: a form with username, password, hidden csrf and rd, and a flow cookie.
    let form = browser.get(login_url.as_str()).await;
    assert_eq!(form.status, 200, "login page: {}", form.describe());
    assert!(form.is_html());
    assert!(
        form.body.contains("name=\"username\""),
        "no username input: {}",
        form.describe()
    );
    assert!(
        form.body.contains("name=\"password\""),
        "no password input: {}",
        form.describe()
    );
    let csrf = form.input_value("csrf").expect("hidden csrf input");
    let rd = form.input_value("rd").expect("hidden rd input");
    assert!(!csrf.is_empty() && !rd.is_empty());
    let flow = form
        .set_cookie(FLOW_COOKIE)
        .expect("the login page sets the flow cookie");
    let flow_attrs = cookie_attributes(flow);
    assert!(
        flow_attrs.iter().any(|(n, _)| n == "secure"),
        "flow cookie not Secure: {flow}"
    );
    assert!(
        !flow_attrs.iter().any(|(n, _)| n == "domain"),
        "flow cookie has a Domain: {flow}"
    );

    // Right password: 303 to the handoff on the app's own host.
    let posted = browser
        .post_form(
            "https://portal.test/.portvakt/login",
            &[
                ("username", "alice"),
                ("password", ALICE.password),
                ("csrf", &csrf),
                ("rd", &rd),
            ],
        )
        .await;
    assert_eq!(posted.status, 303, "login POST: {}", posted.describe());
    let handoff = posted.location().expect("Location after login");
    assert_eq!(handoff.scheme(), "https");
    assert_eq!(
        handoff.host_str(),
        Some("app.test"),
        "handoff not on the app's host: {handoff}"
    );
    assert_eq!(handoff.path(), "/.portvakt/handoff");
    assert!(
        query_param(&handoff, "code").is_some_and(|c| !c.is_empty()),
        "no code: {handoff}"
    );
    assert!(
        query_param(&handoff, "rd").is_some_and(|c| !c.is_empty()),
        "no rd: {handoff}"
    );

    // The handoff trades the code for a host-only session cookie and sends her on.
    let landed = browser.get(handoff.as_str()).await;
    assert_redirects_to(&landed, 302, "https://app.test/some/path?q=1");
    let session = landed
        .set_cookie(SESSION_COOKIE)
        .expect("handoff sets the session cookie");
    let attrs = cookie_attributes(session);
    let has = |name: &str, value: Option<&str>| {
        attrs
            .iter()
            .any(|(n, v)| n == name && value.is_none_or(|want| v.eq_ignore_ascii_case(want)))
    };
    assert!(has("secure", None), "session cookie not Secure: {session}");
    assert!(
        has("httponly", None),
        "session cookie not HttpOnly: {session}"
    );
    assert!(
        has("samesite", Some("lax")),
        "session cookie not SameSite=Lax: {session}"
    );
    assert!(
        has("path", Some("/")),
        "session cookie not Path=/: {session}"
    );
    assert!(
        !has("domain", None),
        "session cookie has a Domain: {session}"
    );

    // And the app answers.
    let page = browser.get(landed.location().unwrap().as_str()).await;
    let who = page.whoami();
    assert_eq!(who.method, "GET");
    assert_eq!(who.path, "/some/path?q=1");
    assert_eq!(who.host, "app.test");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_learns_who_alice_is_and_never_sees_our_cookies() {
    let upstream = Upstream::start().await;
    let gw = app_gateway(&upstream).await;
    let browser = gw.client();

    browser.must_login("https://app.test/", &ALICE).await;
    let who = browser.get("https://app.test/report").await.whoami();

    assert_eq!(who.one("remote-user"), Some("alice"));
    assert_eq!(who.one("remote-groups"), Some("staff,lon-users"));
    assert_eq!(who.one("remote-email"), Some("alice@example.org"));
    assert_eq!(who.one("remote-name"), Some("Alice Andersson"));
    assert_eq!(who.one("remote-realm"), Some("staff"));
    assert_eq!(who.one("remote-auth-level"), Some("1"));
    assert_eq!(who.one("remote-auth-methods"), Some("password"));
    assert_eq!(who.one("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(who.one("x-forwarded-proto"), Some("https"));
    assert_eq!(who.one("x-forwarded-host"), Some("app.test"));
    let cookies = who.cookie_names();
    assert!(
        !cookies.iter().any(|c| c == SESSION_COOKIE),
        "session cookie went upstream: {cookies:?}"
    );
    assert!(
        !cookies.iter().any(|c| c == FLOW_COOKIE),
        "flow cookie went upstream: {cookies:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_with_swedish_letters_reaches_the_app_percent_encoded() {
    let upstream = Upstream::start().await;
    let gw = app_gateway(&upstream).await;
    let browser = gw.client();

    let who = browser.must_login("https://app.test/", &ORJAN).await;
    let name = who.one("remote-name").expect("remote-name header");
    assert!(
        name.is_ascii(),
        "remote-name must be ASCII (percent-encoded UTF-8): {name:?}"
    );
    assert_eq!(percent_decode(name), "Örjan Åberg");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handoff_code_works_only_once() {
    let upstream = Upstream::start().await;
    let gw = app_gateway(&upstream).await;
    let alice = gw.client();

    let form = alice.open_login_form("https://app.test/private").await;
    let posted = alice.submit_login(&form, "alice", ALICE.password).await;
    assert_eq!(posted.status, 303, "login POST: {}", posted.describe());
    let handoff = posted.location().expect("handoff Location");
    let journey = alice.follow(handoff.as_str()).await;
    assert_eq!(journey.end.whoami().one("remote-user"), Some("alice"));

    // Someone who got hold of the used link gets nothing.
    let mallory = gw.client();
    let replay = mallory.follow(handoff.as_str()).await;
    for hop in replay.hops.iter().chain([&replay.end]) {
        if let Some(c) = hop.set_cookie(SESSION_COOKIE) {
            assert!(
                is_cookie_removal(c),
                "a spent handoff code gave out a session cookie: {c}"
            );
        }
    }
    assert!(
        replay.hops.iter().any(is_sent_to_login),
        "a spent handoff code should lead to the login page:\n{}",
        replay.describe()
    );
    assert!(
        !replay.end.is_whoami(),
        "a spent handoff code reached the app:\n{}",
        replay.describe()
    );
    assert_sent_to_login(&mallory.get("https://app.test/private").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logging_in_on_the_portal_without_a_return_address_shows_the_portal_page() {
    let upstream = Upstream::start().await;
    let gw = app_gateway(&upstream).await;
    let browser = gw.client();

    let form = browser
        .open_login_form("https://portal.test/.portvakt/login")
        .await;
    let posted = browser.submit_login(&form, "alice", ALICE.password).await;
    assert_redirects_to(&posted, 303, "https://portal.test/");
    let portal = browser.follow_from(posted).await.end;
    assert_eq!(portal.status, 200, "portal page: {}", portal.describe());
    assert!(
        portal.text().contains("Alice Andersson"),
        "portal page does not greet her: {}",
        portal.describe()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_return_address_to_the_portal_itself_lands_on_the_portal_page() {
    let upstream = Upstream::start().await;
    let gw = app_gateway(&upstream).await;
    let browser = gw.client();

    let form = browser.open_login_form("https://portal.test/").await;
    let posted = browser.submit_login(&form, "alice", ALICE.password).await;
    assert_redirects_to(&posted, 303, "https://portal.test/");
    let portal = browser.follow_from(posted).await.end;
    assert_eq!(portal.status, 200, "portal page: {}", portal.describe());
    assert!(
        portal.text().contains("Alice Andersson"),
        "portal page does not greet her: {}",
        portal.describe()
    );
}
