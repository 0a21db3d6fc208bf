//! Sessions end: after idle time, at their maximum lifetime, and on logout —
//! on every host at once, because they live on the server. The time-bound
//! ones run the gateway in-process on a manual clock: the minutes pass for
//! the gateway only.

use std::time::Duration;

use portvakt::clock::ManualClock;

use crate::support::expect::*;
use crate::support::*;

const MINUTE: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_session_ends_and_the_login_page_says_why() {
    let upstream = Upstream::start().await;
    let clock = ManualClock::starting_now();
    let gw = GatewayConfig::new()
        .idle_timeout("15m")
        .clock(&clock)
        .service(Service::new("app.test", upstream.url()).policy("one_factor"))
        .start()
        .await;
    let browser = gw.client();
    browser.must_login("https://app.test/", &ALICE).await;

    // Using it keeps it alive: a request every 14 minutes, more than an
    // hour in total, each one just inside the idle timeout.
    for i in 0..5 {
        gw.advance(14 * MINUTE);
        let page = browser.get(&format!("https://app.test/busy/{i}")).await;
        assert!(
            page.is_whoami(),
            "request {i} while active: {}",
            page.describe()
        );
    }

    // Then she leaves it alone for the whole 15 minutes.
    gw.advance(15 * MINUTE);
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
    let clock = ManualClock::starting_now();
    let gw = GatewayConfig::new()
        .idle_timeout("15m")
        .max_lifetime("1h")
        .clock(&clock)
        .service(Service::new("app.test", upstream.url()).policy("one_factor"))
        .start()
        .await;
    let browser = gw.client();
    browser.must_login("https://app.test/", &ALICE).await;

    // Used every ten minutes, so never idle: it works for all of its hour…
    for i in 1..=5 {
        gw.advance(10 * MINUTE);
        let page = browser.get(&format!("https://app.test/tick/{i}")).await;
        assert!(
            page.is_whoami(),
            "{} minutes after login the session should still work: {}",
            i * 10,
            page.describe()
        );
    }
    gw.advance(10 * MINUTE - Duration::from_secs(1));
    let last = browser.get("https://app.test/last-second").await;
    assert!(
        last.is_whoami(),
        "a second before its hour: {}",
        last.describe()
    );

    // …and not a second longer, used or not.
    gw.advance(Duration::from_secs(1));
    let ended = browser.get("https://app.test/one-hour").await;
    assert_sent_to_login(&ended);
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
