//! Every state-changing POST needs the CSRF token of its login flow or session.

use crate::support::expect::*;
use crate::support::*;

async fn gateway(upstream: &Upstream) -> Gateway {
    GatewayConfig::new()
        .service(Service::new("app.test", upstream.url()).policy("one_factor"))
        .start()
        .await
}

/// POST the login with alice's right password but these csrf fields.
async fn post_login(client: &Client, form: &LoginForm, csrf: Option<&str>) -> Page {
    let mut fields = vec![("username", "alice"), ("password", ALICE.password)];
    if let Some(csrf) = csrf {
        fields.push(("csrf", csrf));
    }
    if let Some(rd) = &form.rd {
        fields.push(("rd", rd));
    }
    client.post_form(form.action.as_str(), &fields).await
}

/// The refusal is our 403 page and nobody got logged in.
async fn assert_refused_without_session(client: &Client, page: &Page) {
    assert_branded(page, 403);
    if let Some(c) = page.set_cookie(SESSION_COOKIE) {
        assert!(
            is_cookie_removal(c),
            "a refused login set a session cookie: {c}"
        );
    }
    let journey = client.follow("https://app.test/").await;
    assert!(
        !journey.end.is_whoami(),
        "a refused login still logged in:\n{}",
        journey.describe()
    );
    assert_sent_to_login(&journey.hops[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_post_without_a_csrf_token_is_refused() {
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream).await;
    let browser = gw.client();

    let form = browser.open_login_form("https://app.test/").await;
    let page = post_login(&browser, &form, None).await;
    assert_refused_without_session(&browser, &page).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_post_with_a_wrong_csrf_token_is_refused() {
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream).await;
    let browser = gw.client();

    let tampered = |csrf: &str| tamper(csrf);
    let made_up = |_: &str| "0123456789abcdef".to_string();
    let empty = |_: &str| String::new();
    let wrongs: [&dyn Fn(&str) -> String; 3] = [&tampered, &made_up, &empty];
    for wrong in wrongs {
        let form = browser.open_login_form("https://app.test/").await;
        let page = post_login(&browser, &form, Some(&wrong(&form.csrf))).await;
        assert_refused_without_session(&browser, &page).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_post_without_the_flow_cookie_is_refused() {
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream).await;
    let alice = gw.client();
    let forger = gw.client();

    // The forger copies a real form's fields but cannot have alice's flow cookie.
    let form = alice.open_login_form("https://app.test/").await;
    let page = post_login(&forger, &form, Some(&form.csrf)).await;
    assert_refused_without_session(&forger, &page).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_post_without_a_csrf_token_leaves_the_session_alone() {
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream).await;
    let browser = gw.client();

    browser.must_login("https://app.test/", &ALICE).await;
    let page = browser
        .post_form("https://app.test/.portvakt/logout", &[])
        .await;
    assert_branded(&page, 403);
    if let Some(c) = page.set_cookie(SESSION_COOKIE) {
        assert!(
            !is_cookie_removal(c),
            "a refused logout removed the cookie: {c}"
        );
    }
    let page = browser
        .post_form("https://app.test/.portvakt/logout", &[("csrf", "forged")])
        .await;
    assert_branded(&page, 403);

    let who = browser.get("https://app.test/still-here").await.whoami();
    assert_eq!(who.one("remote-user"), Some("alice"));
}
