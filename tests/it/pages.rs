//! Our own pages: security headers, and Swedish or English by the browser's wish.

use crate::support::client::ClientOptions;
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_pages_send_the_security_headers() {
    let upstream = Upstream::start().await;
    let gw = GatewayConfig::new()
        .service(Service::new("app.test", upstream.url()).policy("one_factor"))
        .service(Service::new("deny.test", upstream.url()).policy("deny"))
        .start()
        .await;
    let browser = gw.client();

    let mut pages = vec![
        (
            "login page",
            browser.get("https://portal.test/.portvakt/login").await,
        ),
        ("not found", browser.get("https://nowhere.test/").await),
        ("denied", browser.get("https://deny.test/").await),
    ];
    let form = browser.open_login_form("https://app.test/").await;
    pages.push((
        "failed login",
        browser.submit_login(&form, "alice", "wrong").await,
    ));
    browser.must_login("https://app.test/", &ALICE).await;
    pages.push((
        "logout page",
        browser.get("https://app.test/.portvakt/logout").await,
    ));
    pages.push(("portal page", browser.get("https://portal.test/").await));

    for (what, page) in &pages {
        let header = |name: &str| {
            page.header(name)
                .unwrap_or_else(|| panic!("{what} lacks {name}: {}", page.describe()))
                .to_string()
        };
        let csp = header("content-security-policy");
        assert!(csp.contains("default-src 'none'"), "{what}: CSP {csp:?}");
        assert!(
            !csp.contains("unsafe-inline"),
            "{what}: CSP allows inline code: {csp:?}"
        );
        assert!(
            header("x-frame-options").eq_ignore_ascii_case("deny"),
            "{what}: X-Frame-Options"
        );
        assert_eq!(
            header("referrer-policy"),
            "no-referrer",
            "{what}: Referrer-Policy"
        );
        assert!(
            header("cache-control").contains("no-store"),
            "{what}: Cache-Control"
        );
        assert_eq!(
            header("x-content-type-options"),
            "nosniff",
            "{what}: X-Content-Type-Options"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_login_page_speaks_swedish_by_default_and_english_on_request() {
    let upstream = Upstream::start().await;
    let gw = GatewayConfig::new()
        .service(Service::new("app.test", upstream.url()).policy("one_factor"))
        .start()
        .await;

    let cases = [
        (None, "Lösenord"),
        (Some("sv-SE,sv;q=0.9"), "Lösenord"),
        (Some("en"), "Password"),
        (Some("en-GB,en;q=0.9,sv;q=0.5"), "Password"),
    ];
    for (accept_language, word) in cases {
        let mut options = ClientOptions::default();
        if let Some(al) = accept_language {
            options = options.header("accept-language", al);
        }
        let browser = gw.client_with(options);
        let form = browser.open_login_form("https://app.test/").await;
        let page = &form.journey.end;
        assert!(
            page.text().contains(word),
            "Accept-Language {accept_language:?}: expected {word:?} on the login page: {}",
            page.describe()
        );
    }
}
