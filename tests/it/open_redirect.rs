//! No open redirect: whatever return address arrives, after login the browser
//! stays on configured hosts, and a bad one lands on the portal page.

use reqwest::Url;

use crate::support::expect::*;
use crate::support::*;

const CONFIGURED_HOSTS: &[&str] = &["portal.test", "app.test"];

const FOREIGN: &[&str] = &[
    "https://evil.example/",
    "//evil.example/",
    "https://app.test@evil.example/",
];

async fn gateway(upstream: &Upstream) -> Gateway {
    GatewayConfig::new()
        .service(Service::new("app.test", upstream.url()).policy("one_factor"))
        .start()
        .await
}

/// Submit `form` as alice and check where she ends up: every Location on the
/// way names a configured host, and the end is the portal page.
async fn assert_lands_on_portal(browser: &Client, form: &LoginForm, what: &str) {
    let posted = browser.submit_login(form, "alice", ALICE.password).await;
    let journey = browser.follow_from(posted).await;
    for hop in &journey.hops {
        let loc = hop.location().unwrap();
        assert!(
            loc.host_str()
                .is_some_and(|h| CONFIGURED_HOSTS.contains(&h)),
            "{what}: a Location names a foreign host: {loc}\n{}",
            journey.describe()
        );
    }
    assert!(
        same_place(&journey.end.url, "https://portal.test/") && journey.end.status == 200,
        "{what}: expected to land on the portal page:\n{}",
        journey.describe()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_return_address_lands_on_the_portal() {
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream).await;
    let browser = gw.client();

    let mut form = browser.open_login_form("https://app.test/secret").await;
    let rd = form.rd.take().expect("the login form carries rd");
    form.rd = Some(tamper(&rd));
    assert_lands_on_portal(&browser, &form, "tampered rd in the form").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_return_address_in_a_link_lands_on_the_portal() {
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream).await;
    let browser = gw.client();

    let wall = browser.get("https://app.test/secret").await;
    assert_sent_to_login(&wall);
    let mut link = wall.location().unwrap();
    let rd = link
        .query_pairs()
        .find(|(k, _)| k == "rd")
        .unwrap()
        .1
        .into_owned();
    link.query_pairs_mut()
        .clear()
        .append_pair("rd", &tamper(&rd));

    // The link goes to someone else, who logs in with it.
    let victim = gw.client();
    let form = victim.open_login_form(link.as_str()).await;
    assert_lands_on_portal(&victim, &form, "tampered rd in the link").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_return_address_in_a_link_lands_on_the_portal() {
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream).await;

    for rd in FOREIGN {
        let browser = gw.client();
        let link =
            Url::parse_with_params("https://portal.test/.portvakt/login", &[("rd", rd)]).unwrap();
        let form = browser.open_login_form(link.as_str()).await;
        assert_lands_on_portal(&browser, &form, &format!("rd={rd} in the link")).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_return_address_posted_with_the_form_lands_on_the_portal() {
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream).await;

    for rd in FOREIGN {
        let browser = gw.client();
        let mut form = browser.open_login_form("https://app.test/").await;
        form.rd = Some(rd.to_string());
        assert_lands_on_portal(&browser, &form, &format!("rd={rd} posted")).await;
    }
}
