//! Sessions end: after idle time, at their maximum lifetime, and on logout —
//! on every host at once, because they live on the server.

use std::time::{Duration, Instant};

use crate::support::expect::*;
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_session_ends_and_the_login_page_says_why() {
    let upstream = Upstream::start().await;
    let gw = GatewayConfig::new()
        .idle_timeout("2s")
        .service(Service::new("app.test", upstream.url()).policy("one_factor"))
        .start()
        .await;
    let browser = gw.client();
    browser.must_login("https://app.test/", &ALICE).await;

    // Using it keeps it alive, well past the idle timeout in total.
    for i in 0..6 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let page = browser.get(&format!("https://app.test/busy/{i}")).await;
        assert!(
            page.is_whoami(),
            "request {i} while active: {}",
            page.describe()
        );
    }

    // Then she leaves it alone for longer than 2 s.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let wall = browser.get("https://app.test/after-lunch").await;
    assert_sent_to_login(&wall);
    let login = browser.get(wall.location().unwrap().as_str()).await;
    assert_eq!(login.status, 200, "{}", login.describe());
    assert!(
        login.text().to_lowercase().contains("inaktiv"),
        "the login page should say the session ended for inactivity: {}",
        login.describe()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_ends_at_its_maximum_lifetime_even_when_used() {
    let upstream = Upstream::start().await;
    let gw = GatewayConfig::new()
        // max_lifetime may not be shorter than idle_timeout; requests every
        // second keep the idle clock from running out first.
        .idle_timeout("3s")
        .max_lifetime("3s")
        .service(Service::new("app.test", upstream.url()).policy("one_factor"))
        .start()
        .await;
    let browser = gw.client();
    browser.must_login("https://app.test/", &ALICE).await;
    let logged_in = Instant::now();

    let mut ended_after = None;
    for i in 1..=8u64 {
        let due = logged_in + Duration::from_secs(i);
        tokio::time::sleep(due.saturating_duration_since(Instant::now())).await;
        let page = browser.get(&format!("https://app.test/tick/{i}")).await;
        if i <= 2 {
            assert!(
                page.is_whoami(),
                "after {i} s the session should still work: {}",
                page.describe()
            );
        }
        if is_sent_to_login(&page) {
            ended_after = Some(logged_in.elapsed());
            break;
        }
        assert!(page.is_whoami(), "after {i} s: {}", page.describe());
    }
    let ended_after = ended_after.expect("the session outlived max_lifetime 3s by 5 s");
    assert!(
        ended_after <= Duration::from_secs(6),
        "ended only after {ended_after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logging_out_on_one_host_ends_the_session_on_every_host() {
    let upstream = Upstream::start().await;
    let gw = GatewayConfig::new()
        .service(Service::new("app.test", upstream.url()).policy("one_factor"))
        .service(Service::new("other.test", upstream.url()).policy("one_factor"))
        .start()
        .await;
    let browser = gw.client();

    browser.must_login("https://app.test/", &ALICE).await;
    // The second host needs no password, only a trip through the portal.
    let journey = browser.follow("https://other.test/").await;
    assert_eq!(
        journey.end.whoami().one("remote-user"),
        Some("alice"),
        "{}",
        journey.describe()
    );
    assert!(browser
        .cookie("https://app.test/", SESSION_COOKIE)
        .is_some());
    assert!(browser
        .cookie("https://other.test/", SESSION_COOKIE)
        .is_some());

    // The confirmation page has a form with a CSRF token.
    let confirm = browser.get("https://other.test/.portvakt/logout").await;
    assert_eq!(confirm.status, 200, "{}", confirm.describe());
    assert!(confirm.is_html());
    let csrf = confirm.input_value("csrf").expect("logout form with csrf");

    let done = browser
        .post_form("https://other.test/.portvakt/logout", &[("csrf", &csrf)])
        .await;
    assert_branded(&done, 200);
    let cleared = done
        .set_cookie(SESSION_COOKIE)
        .expect("logout clears the session cookie");
    assert!(is_cookie_removal(cleared), "not a removal: {cleared}");

    // app.test still holds its cookie, but the session behind it is gone.
    assert!(browser
        .cookie("https://app.test/", SESSION_COOKIE)
        .is_some());
    assert_sent_to_login(&browser.get("https://app.test/").await);
    assert_sent_to_login(&browser.get("https://other.test/").await);
}
