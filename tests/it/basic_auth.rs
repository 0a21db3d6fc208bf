//! HTTP Basic for tools on the internal network, on services that allow it.

use base64::Engine;

use crate::support::expect::*;
use crate::support::*;

fn basic(user: &str, password: &str) -> String {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {token}")
}

async fn gateway(upstream: &Upstream) -> Gateway {
    GatewayConfig::new()
        .service(
            Service::new("basic.test", upstream.url())
                .policy("one_factor")
                .with("basic_auth: true"),
        )
        .service(Service::new("app.test", upstream.url()).policy("one_factor"))
        .start()
        .await
}

fn assert_basic_challenge(page: &Page, why: &str) {
    assert_eq!(page.status, 401, "{why}: {}", page.describe());
    let challenge = page
        .header("www-authenticate")
        .unwrap_or_else(|| panic!("{why}: 401 without WWW-Authenticate: {}", page.describe()));
    assert!(
        challenge.starts_with("Basic realm="),
        "{why}: challenge {challenge:?}"
    );
    assert!(!page.is_whoami(), "{why}: reached the upstream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_internal_tool_gets_in_with_basic_credentials() {
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream).await;
    let tool = gw.client();
    let auth = basic("alice", ALICE.password);

    for i in 0..3 {
        let page = tool
            .get_with(
                &format!("https://basic.test/api/{i}"),
                &[("authorization", &auth), ("accept", "*/*")],
            )
            .await;
        let who = page.whoami();
        assert_eq!(who.one("remote-user"), Some("alice"), "request {i}");
        assert_eq!(
            who.one("remote-auth-methods"),
            Some("password"),
            "request {i}"
        );
        assert!(
            who.all("authorization").is_empty(),
            "the password went upstream: {:?}",
            who.all("authorization")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_basic_credentials_get_a_basic_challenge() {
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream).await;
    let tool = gw.client();

    for (user, password) in [
        ("alice", "not her password"),
        ("nosuchuser", "x"),
        ("carol", CAROL.password),
    ] {
        let page = tool
            .get_with(
                "https://basic.test/api",
                &[("authorization", &basic(user, password)), ("accept", "*/*")],
            )
            .await;
        assert_basic_challenge(&page, &format!("Basic {user}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_without_credentials_is_challenged_and_a_browser_is_sent_to_login() {
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream).await;
    let client = gw.client();

    let tool = client
        .get_with("https://basic.test/api", &[("accept", "application/json")])
        .await;
    assert_basic_challenge(&tool, "no credentials, Accept: application/json");

    let browser = client
        .get_with("https://basic.test/page", &[("accept", "text/html")])
        .await;
    assert_sent_to_login(&browser);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_credentials_from_off_network_are_not_accepted() {
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream).await;
    let outsider = gw.offsite_client();

    let page = outsider
        .get_with(
            "https://basic.test/api",
            &[
                ("authorization", &basic("alice", ALICE.password)),
                ("accept", "*/*"),
            ],
        )
        .await;
    assert!(
        !page.is_whoami(),
        "Basic credentials from 127.0.0.2 reached the upstream"
    );
    match page.status {
        401 => {}
        302 => assert_sent_to_login(&page),
        _ => panic!("expected 401 or a login redirect: {}", page.describe()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_without_basic_auth_ignores_credentials_and_leaves_them_to_the_app() {
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream).await;
    let auth = basic("alice", ALICE.password);

    let stranger = gw.client();
    let page = stranger
        .get_with("https://app.test/", &[("authorization", &auth)])
        .await;
    assert_sent_to_login(&page);

    let browser = gw.client();
    browser.must_login("https://app.test/", &ALICE).await;
    let who = browser
        .get_with("https://app.test/x", &[("authorization", &auth)])
        .await
        .whoami();
    // The gateway did not use the header, so it is the application's own
    // business (its own Basic or bearer scheme) and passes untouched.
    assert_eq!(
        who.all("authorization"),
        vec![auth.as_str()],
        "an Authorization header the gateway did not consume must reach the app unchanged"
    );
}
