//! Regulation: too many failures lock the account or block the address, and
//! the locked user hears only "wrong username or password". How long locks
//! last is shown on a manual clock (the gateway in-process): the test config
//! says `window: 10m` and `lockout: 15m`.

use std::time::Duration;

use portvakt::clock::ManualClock;

use crate::support::expect::*;
use crate::support::*;

const MINUTE: Duration = Duration::from_secs(60);
const SECOND: Duration = Duration::from_secs(1);

const LOGIN: &str = "https://portal.test/.portvakt/login";

async fn attempt(client: &Client, username: &str, password: &str) -> Page {
    let form = client.open_login_form(LOGIN).await;
    client.submit_login(&form, username, password).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_account_gets_the_same_answer_even_with_the_right_password() {
    let upstream = Upstream::start().await;
    let gw = GatewayConfig::new()
        .throttle(3, 100)
        .service(Service::new("app.test", upstream.url()).policy("one_factor"))
        .start()
        .await;
    let browser = gw.client();

    let mut wrong_page = None;
    for i in 0..3 {
        let page = attempt(&browser, "alice", &format!("guess {i}")).await;
        assert_eq!(page.status, 401, "guess {i}: {}", page.describe());
        wrong_page = Some(page);
    }
    let wrong_page = wrong_page.unwrap();

    let locked = attempt(&browser, "alice", ALICE.password).await;
    assert_eq!(
        locked.status,
        401,
        "a locked account let her in: {}",
        locked.describe()
    );
    assert_eq!(
        comparable_login_page(&locked, "alice"),
        comparable_login_page(&wrong_page, "alice"),
        "the locked answer differs from the wrong-password answer"
    );
    assert!(locked.set_cookie(SESSION_COOKIE).is_none());

    let lines = gw
        .wait_auth_log("a login event for alice with reason locked", |lines| {
            lines
                .iter()
                .any(|l| is_login_event(l) && l["user"] == "alice" && l["reason"] == "locked")
        })
        .await;
    let event = lines
        .iter()
        .find(|l| is_login_event(l) && l["user"] == "alice" && l["reason"] == "locked")
        .unwrap();
    assert_eq!(event["result"], "failure", "{event}");

    // Someone else on the same address is not affected.
    let bob = gw.client();
    bob.must_login("https://app.test/", &BOB).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_noisy_address_is_blocked_while_others_can_log_in() {
    let upstream = Upstream::start().await;
    let gw = GatewayConfig::new()
        .throttle(100, 4)
        .service(Service::new("app.test", upstream.url()).policy("one_factor"))
        .start()
        .await;
    let noisy = gw.client();

    for (user, password) in [
        ("bob", "no"),
        ("carol", "no"),
        ("nosuchuser", "no"),
        ("orjan", "no"),
    ] {
        let page = attempt(&noisy, user, password).await;
        assert_eq!(page.status, 401, "{user}: {}", page.describe());
    }
    let blocked = attempt(&noisy, "alice", ALICE.password).await;
    assert_eq!(
        blocked.status,
        401,
        "a blocked address logged in: {}",
        blocked.describe()
    );
    assert!(
        blocked.text().contains("Fel användarnamn eller lösenord."),
        "{}",
        blocked.describe()
    );

    // Another address (off-network, so a one_factor service) is fine.
    let elsewhere = gw.offsite_client();
    elsewhere.must_login("https://app.test/", &ALICE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_ends_after_the_lockout_time_and_not_a_second_before() {
    let upstream = Upstream::start().await;
    let clock = ManualClock::starting_now();
    let gw = GatewayConfig::new()
        .throttle(3, 100)
        .clock(&clock)
        .service(Service::new("app.test", upstream.url()).policy("one_factor"))
        .start()
        .await;
    let browser = gw.client();
    for i in 0..3 {
        let page = attempt(&browser, "alice", &format!("guess {i}")).await;
        assert_eq!(page.status, 401, "guess {i}: {}", page.describe());
    }

    // Locked for 15 minutes from the third failure, right password or not.
    gw.advance(15 * MINUTE - SECOND);
    let still = attempt(&browser, "alice", ALICE.password).await;
    assert_eq!(
        still.status,
        401,
        "the lock ended early: {}",
        still.describe()
    );
    assert!(still.set_cookie(SESSION_COOKIE).is_none());

    gw.advance(SECOND);
    let after = gw.client();
    after.must_login("https://app.test/", &ALICE).await;
    gw.wait_auth_log("the locked attempt", |lines| {
        lines
            .iter()
            .any(|l| is_login_event(l) && l["user"] == "alice" && l["reason"] == "locked")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_further_apart_than_the_window_do_not_add_up_to_a_lock() {
    let upstream = Upstream::start().await;
    let clock = ManualClock::starting_now();
    let gw = GatewayConfig::new()
        .throttle(3, 100)
        .clock(&clock)
        .service(Service::new("app.test", upstream.url()).policy("one_factor"))
        .start()
        .await;
    let browser = gw.client();
    // Two mistakes before lunch, one after: never three within ten minutes.
    for i in 0..2 {
        let page = attempt(&browser, "alice", &format!("morning {i}")).await;
        assert_eq!(page.status, 401, "{}", page.describe());
    }
    gw.advance(10 * MINUTE);
    let page = attempt(&browser, "alice", "after lunch").await;
    assert_eq!(page.status, 401, "{}", page.describe());
    browser.must_login("https://app.test/", &ALICE).await;

    // Three within the window do lock, the check above is not toothless.
    let other = gw.client();
    for i in 0..3 {
        gw.advance(MINUTE);
        let page = attempt(&other, "bob", &format!("guess {i}")).await;
        assert_eq!(page.status, 401, "{}", page.describe());
    }
    let locked = attempt(&other, "bob", BOB.password).await;
    assert_eq!(locked.status, 401, "{}", locked.describe());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_address_is_let_in_again_after_the_lockout_time() {
    let upstream = Upstream::start().await;
    let clock = ManualClock::starting_now();
    let gw = GatewayConfig::new()
        .throttle(100, 4)
        .clock(&clock)
        .service(Service::new("app.test", upstream.url()).policy("one_factor"))
        .start()
        .await;
    let noisy = gw.client();
    for user in ["bob", "carol", "nosuchuser", "orjan"] {
        let page = attempt(&noisy, user, "no").await;
        assert_eq!(page.status, 401, "{user}: {}", page.describe());
    }
    gw.advance(15 * MINUTE - SECOND);
    let blocked = attempt(&noisy, "alice", ALICE.password).await;
    assert_eq!(
        blocked.status,
        401,
        "the block ended early: {}",
        blocked.describe()
    );

    gw.advance(SECOND);
    gw.client().must_login("https://app.test/", &ALICE).await;
}
