//! A failed login tells nobody why: wrong password, unknown user and disabled
//! user get the same page, the same message and cost the same time.

use std::time::{Duration, Instant};

use crate::support::client::ClientOptions;
use crate::support::expect::*;
use crate::support::*;

const LOGIN: &str = "https://portal.test/.portvakt/login";
const MESSAGE_SV: &str = "Fel användarnamn eller lösenord.";
const MESSAGE_EN: &str = "Incorrect username or password.";

async fn gateway(upstream: &Upstream) -> Gateway {
    GatewayConfig::new()
        .service(Service::new("app.test", upstream.url()).policy("one_factor"))
        .throttle(50, 100)
        .start()
        .await
}

/// Try once from a fresh form; returns the answer and the csrf value sent.
async fn attempt(client: &Client, username: &str, password: &str) -> (Page, String) {
    let form = client.open_login_form(LOGIN).await;
    let page = client.submit_login(&form, username, password).await;
    (page, form.csrf)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_unknown_user_and_disabled_user_get_the_same_answer() {
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream).await;
    let browser = gw.client();

    let cases = [
        ("alice", "not her password"),
        ("nosuchuser", "whatever it is"),
        ("carol", CAROL.password), // right password, disabled account
    ];
    let mut pages = Vec::new();
    for (username, password) in cases {
        let (page, _) = attempt(&browser, username, password).await;
        assert_eq!(page.status, 401, "{username}: {}", page.describe());
        assert!(page.is_html(), "{username}: {}", page.describe());
        assert!(
            page.text().contains(MESSAGE_SV),
            "{username}: message missing: {}",
            page.describe()
        );
        assert!(
            page.set_cookie(SESSION_COOKIE).is_none(),
            "{username}: a failed login set a session cookie"
        );
        pages.push((username, comparable_login_page(&page, username)));
    }
    let (first_user, first) = &pages[0];
    for (user, body) in &pages[1..] {
        assert!(
            body == first,
            "the answer for {user} differs from the one for {first_user}:\n--- {first_user} ---\n{first}\n--- {user} ---\n{body}"
        );
    }
    assert_sent_to_login(&browser.get("https://app.test/").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_failure_message_is_english_when_the_browser_asks_for_english() {
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream).await;
    let browser = gw.client_with(ClientOptions::default().header("accept-language", "en"));

    let (page, _) = attempt(&browser, "alice", "not her password").await;
    assert_eq!(page.status, 401, "{}", page.describe());
    assert!(
        page.text().contains(MESSAGE_EN),
        "English message missing: {}",
        page.describe()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_user_costs_as_much_time_as_a_wrong_password() {
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream).await;
    let browser = gw.client();

    // Warm up both paths (connections, caches, lazy statics).
    attempt(&browser, "alice", "warm-up wrong password").await;
    attempt(&browser, "nosuchuser", "warm-up").await;

    let mut wrong = Vec::new();
    let mut unknown = Vec::new();
    for round in 0..5 {
        // Interleaved, so background load hits both alike.
        for (username, times) in [("alice", &mut wrong), ("nosuchuser", &mut unknown)] {
            let form = browser.open_login_form(LOGIN).await;
            let started = Instant::now();
            let page = browser
                .submit_login(&form, username, &format!("wrong password {round}"))
                .await;
            times.push(started.elapsed());
            assert_eq!(page.status, 401, "{username}: {}", page.describe());
        }
    }
    let wrong = median(wrong);
    let unknown = median(unknown);
    assert!(
        unknown * 2 >= wrong && unknown <= wrong * 2,
        "unknown user median {unknown:?} vs wrong password median {wrong:?}: \
         an unknown user must cost a password hash too"
    );
    assert!(
        wrong >= Duration::from_millis(1),
        "a wrong password took no time at all: {wrong:?}"
    );
}
