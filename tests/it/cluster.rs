//! Two gateways behind one balancer behave as one: they share a real Redis
//! (`state: redis://…`), a real PostgreSQL (`storage: postgres://…`) and one
//! secret key, and a browser may land on either for any request. Each story sends the same browser (one cookie jar) to
//! gateway A for one step and to gateway B for the next.

use crate::support::enrol::*;
use crate::support::expect::*;
use crate::support::postgres::TestPostgres;
use crate::support::redis::Redis;
use crate::support::sms::SmsProvider;
use crate::support::smtp::notify_yaml;
use crate::support::*;

/// What two gateways share: short-lived state and the durable store.
struct Backends {
    redis: Redis,
    pg: TestPostgres,
}

impl Backends {
    async fn start() -> Backends {
        let pg = crate::support::postgres::start();
        pg.create_db("portvakt");
        Backends {
            redis: Redis::start().await,
            pg,
        }
    }
}

/// Two gateways on `shared` with one key, serving app.test (one factor) and
/// offsite.test (two factors off the network), codes sent to `sms`.
async fn pair(
    shared: &Backends,
    upstream: &Upstream,
    sms: Option<&SmsProvider>,
) -> (Gateway, Gateway) {
    let key: [u8; 32] = rand::random();
    let config = || {
        let mut c = GatewayConfig::new()
            .secret_key(key)
            .state(&shared.redis.url())
            .throttle(5, 100)
            .service(Service::new("app.test", upstream.url()).policy("one_factor"))
            .service(Service::new("offsite.test", upstream.url()).policy("two_factor_offsite"))
            .extra_yaml(&format!(
                "storage: \"{}\"\n",
                shared.pg.url("portvakt", "2")
            ));
        if let Some(sms) = sms {
            c = c.extra_yaml(&notify_yaml(&[
                sms.sms_yaml("/send", r#"form: { to: "{phone}", message: "{text}" }"#)
            ]));
        }
        c
    };
    (config().start().await, config().start().await)
}

/// `on`'s client for the browser whose cookies are in `browser`.
fn same_browser(on: &Gateway, browser: &Client) -> Client {
    on.client_with(client::ClientOptions::default().cookie_jar(browser.jar()))
}

fn same_browser_offsite(on: &Gateway, browser: &Client) -> Client {
    on.offsite_client_sharing(browser)
}

/// The branded "login is not working right now" page, and `/readyz` 503.
async fn assert_login_down(gw: &Gateway, page: &Page) {
    assert_branded(page, 503);
    assert!(
        page.body.contains("Inloggningen fungerar inte just nu")
            || page.body.contains("Login is not working"),
        "{}",
        page.describe()
    );
    let (status, body) = gw.admin_get("/readyz").await;
    assert_eq!(status, 503, "{body}");
}

/// One `backend` auth event `reason` and one outage of `backend` counted.
async fn assert_outage_recorded(gw: &Gateway, backend: &str, reason: &str) {
    gw.wait_auth_log("the outage", |l| {
        events(l, "backend").iter().any(|e| e["reason"] == reason)
    })
    .await;
    let (_, metrics) = gw.admin_get("/metrics").await;
    let counted = format!("portvakt_backend_outages_total{{backend=\"{backend}\"}} 1");
    assert!(metrics.contains(&counted), "{metrics}");
}

/// The `backend` auth event `reason` (the backend answers again).
async fn assert_recovery_recorded(gw: &Gateway, reason: &str) {
    gw.wait_auth_log("the recovery", |l| {
        events(l, "backend").iter().any(|e| e["reason"] == reason)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_on_a_is_a_session_on_b_and_a_logout_on_b_ends_it_on_a() {
    let shared = Backends::start().await;
    let upstream = Upstream::start().await;
    let (a, b) = pair(&shared, &upstream, None).await;
    let on_a = a.client();
    on_a.must_login("https://app.test/", &ALICE).await;

    let on_b = same_browser(&b, &on_a);
    let page = on_b.get("https://app.test/report").await;
    assert!(
        page.is_whoami(),
        "B does not know A's session: {}",
        page.describe()
    );
    assert_eq!(page.whoami().one("remote-user"), Some("alice"));

    let cookie = on_a
        .cookie("https://app.test/", SESSION_COOKIE)
        .expect("the browser holds the session cookie");
    // Log out on B …
    let confirm = on_b.get("https://app.test/.portvakt/logout").await;
    let csrf = confirm.input_value("csrf").expect("logout form");
    let done = on_b
        .post_form("https://app.test/.portvakt/logout", &[("csrf", &csrf)])
        .await;
    assert_branded(&done, 200);
    // … and A, given the same cookie again, refuses it.
    let again = a.client();
    let refused = again
        .get_with(
            "https://app.test/",
            &[("cookie", &format!("{SESSION_COOKIE}={cookie}"))],
        )
        .await;
    assert_sent_to_login(&refused);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handoff_code_issued_by_a_is_redeemed_on_b() {
    let shared = Backends::start().await;
    let upstream = Upstream::start().await;
    let (a, b) = pair(&shared, &upstream, None).await;
    let on_a = a.client();
    let form = on_a.open_login_form("https://app.test/x").await;
    let posted = on_a.submit_login(&form, ALICE.name, ALICE.password).await;
    let to = posted.location().expect("the login answer is a redirect");
    assert!(
        to.path() == "/.portvakt/handoff" && to.host_str() == Some("app.test"),
        "expected a handoff to app.test, got {to}"
    );
    // The balancer sends the redirect to B.
    let journey = same_browser(&b, &on_a).follow(to.as_str()).await;
    assert!(journey.end.is_whoami(), "{}", journey.describe());
    assert_eq!(journey.end.whoami().one("remote-user"), Some("alice"));
    // And the code is used up for A as well.
    let replay = same_browser(&a, &on_a).get(to.as_str()).await;
    assert_ne!(replay.status, 200, "a handoff code worked twice");
    assert!(!replay.is_whoami());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sms_code_sent_by_a_is_accepted_on_b_and_only_once() {
    let shared = Backends::start().await;
    let upstream = Upstream::start().await;
    let sms = SmsProvider::start().await;
    let (a, b) = pair(&shared, &upstream, Some(&sms)).await;
    set_sms_number(&a, &ALICE, 0, "+46701234567").await;
    let on_a = a.offsite_client();
    let form = code_page_for(&on_a, "https://offsite.test/post", &ALICE, "sms:0").await;
    let code = code_in(&sms.request(1).await.form_field("message")).expect("a code");

    let on_b = same_browser_offsite(&b, &on_a);
    let who = arrive(&on_b, enter_code(&on_b, &form, &code).await, &ALICE).await;
    assert_eq!(who.path, "/post");
    // The same code on A again: used.
    let again = enter_code(&same_browser_offsite(&a, &on_a), &form, &code).await;
    assert_ne!(
        again.status,
        303,
        "a code was accepted twice: {}",
        again.describe()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authenticator_code_accepted_on_a_is_refused_on_b_also_when_both_race() {
    let shared = Backends::start().await;
    let upstream = Upstream::start().await;
    let (a, b) = pair(&shared, &upstream, None).await;
    let secret = totp_add(&a, &ALICE, "Jobbmobil");

    // One code, two browsers at the code page, one on each gateway, at once.
    let first = a.offsite_client();
    let second = b.offsite_client();
    let (fa, fb) = tokio::join!(
        code_page_for(&first, "https://offsite.test/", &ALICE, "totp"),
        code_page_for(&second, "https://offsite.test/", &ALICE, "totp"),
    );
    let code = totp_code(&secret, fresh_step_time(&a).await);
    let (ra, rb) = tokio::join!(
        enter_code(&first, &fa, &code),
        enter_code(&second, &fb, &code)
    );
    let accepted = [&ra, &rb].iter().filter(|p| p.status == 303).count();
    assert_eq!(
        accepted,
        1,
        "one code must log in once across the cluster: A {} / B {}",
        ra.describe(),
        rb.describe()
    );
    let lines = b
        .wait_auth_log("the refused replay", |l| !l.is_empty())
        .await;
    let all = [a.auth_log_lines(), lines].concat();
    assert!(
        events(&all, "second_factor")
            .iter()
            .any(|e| e["reason"] == "replay"),
        "the loser is audited as a replay"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_wrong_passwords_spread_over_a_and_b_lock_the_account_on_both() {
    let shared = Backends::start().await;
    let upstream = Upstream::start().await;
    let (a, b) = pair(&shared, &upstream, None).await;
    for i in 0..5 {
        let gw = if i % 2 == 0 { &a } else { &b };
        let c = gw.client();
        let form = c.open_login_form("https://app.test/").await;
        let page = c.submit_login(&form, ALICE.name, "not her password").await;
        assert_eq!(page.status, 401, "{}", page.describe());
    }
    for gw in [&a, &b] {
        let c = gw.client();
        let form = c.open_login_form("https://app.test/").await;
        let page = c.submit_login(&form, ALICE.name, ALICE.password).await;
        assert_eq!(
            page.status, 401,
            "her right password must not open a locked account"
        );
    }
    let lines = [a.auth_log_lines(), b.auth_log_lines()].concat();
    assert!(
        events(&lines, "lockout").len() == 1,
        "one lockout, written by the gateway that saw the fifth"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_down_both_gateways_say_login_is_not_working_and_recover_by_themselves() {
    let mut shared = Backends::start().await;
    let upstream = Upstream::start().await;
    let (a, b) = pair(&shared, &upstream, None).await;
    let logged_in = a.client();
    logged_in.must_login("https://app.test/", &ALICE).await;

    shared.redis.kill();
    for gw in [&a, &b] {
        // A logged-in user gets the page, not a login loop. A gateway that
        // holds her session in its cache serves it until its subscriber
        // notices the lost connection (fred's first reconnect attempt,
        // 50-150 ms); after that nothing is served from the cache.
        let mut page = same_browser(gw, &logged_in).get("https://app.test/").await;
        for _ in 0..40 {
            if page.status == 503 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            page = same_browser(gw, &logged_in).get("https://app.test/").await;
        }
        assert_login_down(gw, &page).await;
        // A new login, too.
        let fresh = gw.client();
        let page = fresh.get("https://app.test/.portvakt/login").await;
        let form_or_down = page.status;
        if form_or_down == 200 {
            // The login form itself needs no state; submitting does.
            let form = fresh.open_login_form("https://app.test/").await;
            let posted = fresh.submit_login(&form, ALICE.name, ALICE.password).await;
            assert_branded(&posted, 503);
        }
    }
    for gw in [&a, &b] {
        assert_outage_recorded(gw, "state", "state_unavailable").await;
    }

    shared.redis.start_again().await;
    // Back: logins work without restarting either gateway (sessions were
    // in the Redis that died, so she logs in again).
    for gw in [&a, &b] {
        let c = gw.client();
        let mut ok = false;
        for _ in 0..50 {
            let journey = c.login("https://app.test/", &ALICE).await;
            if journey.end.is_whoami() {
                ok = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        assert!(ok, "no login within 10 s of Redis coming back");
        assert_recovery_recorded(gw, "state_restored").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_in_redis_holds_a_usable_cookie_or_code() {
    let shared = Backends::start().await;
    let upstream = Upstream::start().await;
    let (a, _b) = pair(&shared, &upstream, None).await;
    let c = a.client();
    c.must_login("https://app.test/", &ALICE).await;
    let cookie = c
        .cookie("https://app.test/", SESSION_COOKIE)
        .expect("cookie");
    let keys = shared.redis.cli(&["--scan", "--pattern", "portvakt:*"]);
    assert!(
        keys.contains("portvakt:s:"),
        "the session is in Redis: {keys}"
    );
    assert!(!keys.contains(&cookie), "a key is the cookie itself");
    for key in keys.lines().filter(|k| !k.is_empty()) {
        let value = shared.redis.cli(&["--no-raw", "GET", key]);
        assert!(!value.contains(&cookie), "{key} holds the cookie");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_postgres_down_both_gateways_say_login_is_not_working_and_recover_by_themselves() {
    let mut shared = Backends::start().await;
    let upstream = Upstream::start().await;
    let (a, b) = pair(&shared, &upstream, None).await;
    let secret = totp_add(&a, &ALICE, "Jobbmobil");

    shared.pg.kill();
    for gw in [&a, &b] {
        // Off the network the password leads to her second factors, which
        // are in the store that is down: the branded page, within the
        // configured timeout, never a login loop or a hang.
        let c = gw.offsite_client();
        let posted = password_step(&c, "https://offsite.test/", &ALICE, None).await;
        let end = c.follow_from(posted).await.end;
        assert_login_down(gw, &end).await;
    }
    for gw in [&a, &b] {
        assert_outage_recorded(gw, "storage", "storage_unavailable").await;
    }

    shared.pg.start_again();
    // Back: her authenticator works on both without restarting either
    // (on B with the next step's code: A's step is used up cluster-wide).
    for (i, gw) in [&a, &b].into_iter().enumerate() {
        let mut up = false;
        for _ in 0..50 {
            let probe = gw.offsite_client();
            let posted = password_step(&probe, "https://offsite.test/", &ALICE, None).await;
            if probe.follow_from(posted).await.end.status == 200 {
                up = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        assert!(up, "no choice page within 10 s of PostgreSQL coming back");
        let c = gw.offsite_client();
        let form = code_page_for(&c, "https://offsite.test/", &ALICE, "totp").await;
        let code = totp_code(&secret, fresh_step_time(gw).await + 30 * i as u64);
        arrive(&c, enter_code(&c, &form, &code).await, &ALICE).await;
        assert_recovery_recorded(gw, "storage_restored").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_gateway_moves_its_enrolments_to_postgres_and_nobody_enrols_again() {
    let pg = crate::support::postgres::start();
    pg.create_db("portvakt");
    let upstream = Upstream::start().await;
    let key: [u8; 32] = rand::random();
    let service = || Service::new("offsite.test", upstream.url()).policy("two_factor_offsite");
    // Months on one gateway with the default SQLite file.
    let mut old = GatewayConfig::new()
        .secret_key(key)
        .service(service())
        .start()
        .await;
    let secret = totp_add(&old, &ALICE, "Jobbmobil");
    let before = enrolments_list(&old, &ALICE);
    old.signal("TERM");
    assert!(old.wait_exit(std::time::Duration::from_secs(30)).is_some());

    let file = old.dir().join("portvakt.db");
    // The test server trusts loopback, so any password does: this one must
    // never be printed back.
    let url = pg
        .url("portvakt", "5")
        .replacen("postgres@", "postgres:s3cret-pw@", 1);
    let from = file.to_string_lossy();
    let copy = ["storage", "copy", "--from", &from, "--to", &url];
    let out = admin_ok(&old, &copy);
    assert!(out.contains("1 authenticator device"), "{out}");
    assert!(!out.contains("s3cret-pw"), "no password echoed: {out}");
    let again = admin(&old, &copy);
    assert!(
        !again.status.success(),
        "a second copy into a full store is refused"
    );
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already holds"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let copies: Vec<_> = old
        .auth_log_lines()
        .into_iter()
        .filter(|e| e["event"] == "admin" && e["reason"] == "storage_copy")
        .collect();
    assert_eq!(copies.len(), 2, "both copies are audited");
    assert_eq!(copies[0]["result"], "success");
    assert_eq!(copies[1]["result"], "failure");

    // The gateways now share PostgreSQL: her app works as before.
    let new = GatewayConfig::new()
        .secret_key(key)
        .service(service())
        .extra_yaml(&format!("storage: \"{url}\"\n"))
        .start()
        .await;
    assert_eq!(enrolments_list(&new, &ALICE), before);
    let c = new.offsite_client();
    let form = code_page_for(&c, "https://offsite.test/", &ALICE, "totp").await;
    let code = totp_code(&secret, fresh_step_time(&new).await);
    arrive(&c, enter_code(&c, &form, &code).await, &ALICE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_started_during_a_postgres_outage_comes_up_and_heals_by_itself() {
    let mut pg = crate::support::postgres::start();
    pg.create_db("portvakt");
    pg.kill();
    let upstream = Upstream::start().await;
    let gw = GatewayConfig::new()
        .service(Service::new("app.test", upstream.url()).policy("one_factor"))
        .service(Service::new("offsite.test", upstream.url()).policy("two_factor_offsite"))
        .extra_yaml(&format!("storage: \"{}\"\n", pg.url("portvakt", "1")))
        .start()
        .await;
    // On the internal network the password is enough: no enrolment needed.
    gw.client().must_login("https://app.test/", &ALICE).await;
    // Off the network the second factor is: the branded 503, not a crash.
    let c = gw.offsite_client();
    let posted = password_step(&c, "https://offsite.test/", &ALICE, None).await;
    assert_login_down(&gw, &c.follow_from(posted).await.end).await;

    pg.start_again();
    let mut up = false;
    for _ in 0..50 {
        if gw.admin_get("/readyz").await.0 == 200 {
            up = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(up, "not ready within 10 s of PostgreSQL answering");
    let secret = totp_add(&gw, &ALICE, "Jobbmobil");
    let c = gw.offsite_client();
    let form = code_page_for(&c, "https://offsite.test/", &ALICE, "totp").await;
    let code = totp_code(&secret, fresh_step_time(&gw).await);
    arrive(&c, enter_code(&c, &form, &code).await, &ALICE).await;
}
