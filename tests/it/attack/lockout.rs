//! Lockouts that hold (issue 12, class 3; SECURITY.md "Throttling").
//!
//! The attacker holds a password and tries codes, hoping that logging in
//! again (or re-entering the password on the re-auth page) wipes the slate;
//! types the name in other letter cases; keeps hammering a locked account to
//! lock it in Active Directory through us; rotates through the addresses of
//! one IPv6 /64. Every time: the fifth failure locks, a locked account gets
//! exactly the answer a wrong password gets, the directory hears nothing,
//! and the auth log says why.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::client::ClientOptions;
use crate::support::enrol::*;
use crate::support::expect::*;
use crate::support::slapd::{Slapd, BASE_DN, ODD_PASSWORD, ODD_USER, SERVICE_DN};
use crate::support::sms::SmsProvider;
use crate::support::smtp::{notify_yaml, SmtpSink};
use crate::support::wait::until;
use crate::support::*;

/// A two-factor app: from anywhere, password and a code.
const APP: &str = "https://two.test/";
/// A one-factor app, for the tests about passwords only.
const ONE: &str = "https://other.test/";

/// The lock under test: 5 failures (any factor) per user, as SECURITY.md
/// says; the address limit high enough not to interfere unless a test sets it.
async fn gateway(upstream: &Upstream, ip_failures: u32) -> Gateway {
    GatewayConfig::new()
        .throttle(5, ip_failures)
        .trusted_proxies(&["127.0.0.1/32"])
        .service(Service::new("two.test", upstream.url()).policy("two_factor"))
        .service(Service::new("other.test", upstream.url()).policy("one_factor"))
        .start()
        .await
}

/// A code the authenticator does not show now (nor one step either side).
fn wrong_code(secret: &str) -> String {
    let now = now_secs();
    let current: Vec<String> = [now - 30, now, now + 30]
        .iter()
        .map(|t| totp_code(secret, *t))
        .collect();
    (1..)
        .map(|h| totp_code(secret, now + h * 3600))
        .find(|c| !current.contains(c))
        .expect("some hour gives another code")
}

/// A code page with its per-request parts (csrf, rd) replaced, for
/// comparing two answers byte for byte.
fn comparable_code_page(form: &CodePage) -> String {
    let mut text = form.page.text();
    for v in [&form.csrf, &form.rd] {
        if !v.is_empty() {
            text = text.replace(v.as_str(), "{value}");
        }
    }
    text
}

/// One attempt at the login form of `url`.
async fn attempt(client: &Client, url: &str, username: &str, password: &str) -> Page {
    let form = client.open_login_form(url).await;
    client.submit_login(&form, username, password).await
}

/// Auth-log lines for `event` with `reason`.
fn count(lines: &[serde_json::Value], event: &str, reason: &str) -> usize {
    lines
        .iter()
        .filter(|l| l["event"] == event && l["reason"] == reason)
        .count()
}

/// Wait until `n` wrong codes are logged, then insist there is no lockout yet.
async fn assert_not_locked_after(gw: &Gateway, n: usize) {
    let lines = gw
        .wait_auth_log(&format!("{n} wrong codes"), |l| {
            count(l, "second_factor", "wrong_code") >= n
        })
        .await;
    assert_eq!(
        events(&lines, "lockout").len(),
        0,
        "locked after only {n} wrong codes"
    );
}

/// Four wrong authenticator codes on `form`, each refused as wrong, and no
/// lockout yet; the code page the last refusal showed.
async fn four_wrong_codes(
    gw: &Gateway,
    attacker: &Client,
    mut form: CodePage,
    secret: &str,
) -> CodePage {
    for _ in 0..4 {
        form = assert_refused(
            enter_code(attacker, &form, &wrong_code(secret)).await,
            401,
            "Koden stämmer inte",
        );
    }
    assert_not_locked_after(gw, 4).await;
    form
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_holder_who_logs_in_again_between_wrong_codes_is_locked_at_the_fifth() {
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream, 100).await;
    let secret = totp_add(&gw, &ALICE, "Jobbmobil");
    let attacker = gw.offsite_client();

    // Round one: the password (right) and four wrong codes.
    let form = code_page_for(&attacker, APP, &ALICE, "totp").await;
    let form = four_wrong_codes(&gw, &attacker, form, &secret).await;
    let wrong_answer = comparable_code_page(&form);

    // Log in again (a fresh browser): the right password must not wipe the four.
    let attacker = gw.offsite_client();
    let mut form = code_page_for(&attacker, APP, &ALICE, "totp").await;
    form = assert_refused(
        enter_code(&attacker, &form, &wrong_code(&secret)).await,
        401,
        "Koden stämmer inte",
    );
    gw.wait_auth_log("the lockout at the fifth failure", |l| {
        l.iter()
            .any(|e| e["event"] == "lockout" && e["user"] == "alice")
    })
    .await;

    // The right code now, on the session she has: the wrong-code answer.
    let now = fresh_step_time(&gw).await;
    let refused = assert_refused(
        enter_code(&attacker, &form, &totp_code(&secret, now)).await,
        401,
        "Koden stämmer inte",
    );
    assert!(refused.page.set_cookie(SESSION_COOKIE).is_none());
    assert_eq!(
        comparable_code_page(&refused),
        wrong_answer,
        "a locked account's right code is answered unlike a wrong code"
    );

    // The right password from a fresh browser: the wrong-password answer.
    let wrong = attempt(&gw.offsite_client(), APP, "alice", "not her password").await;
    let locked = attempt(&gw.offsite_client(), APP, "alice", ALICE.password).await;
    assert_eq!(locked.status, 401, "{}", locked.describe());
    assert!(locked.set_cookie(SESSION_COOKIE).is_none());
    assert_eq!(
        comparable_login_page(&locked, "alice"),
        comparable_login_page(&wrong, "alice"),
        "the locked answer differs from the wrong-password answer"
    );
    let lines = gw
        .wait_auth_log("locked refusals of the code and the password", |l| {
            count(l, "second_factor", "locked") >= 1 && count(l, "login", "locked") >= 1
        })
        .await;
    assert!(
        !lines.iter().any(|l| l["user"] == "alice"
            && l["result"] == "success"
            && l["event"] == "login"
            && l["reason"] == "second_factor"),
        "a two-factor login succeeded while locked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn re_entering_the_password_on_the_reauth_page_does_not_wipe_wrong_codes() {
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream, 100).await;
    let secret = totp_add(&gw, &ALICE, "Jobbmobil");
    let attacker = gw.offsite_client();

    let form = code_page_for(&attacker, APP, &ALICE, "totp").await;
    let mut form = four_wrong_codes(&gw, &attacker, form, &secret).await;

    // The re-auth page with her (right) password, on the session she has.
    let reauth = attacker.get("https://portal.test/.portvakt/reauth").await;
    assert_eq!(reauth.status, 200, "{}", reauth.describe());
    let csrf = reauth
        .input_value("csrf")
        .expect("csrf on the re-auth page");
    let accepted = attacker
        .post_form(
            "https://portal.test/.portvakt/reauth",
            &[
                ("csrf", csrf.as_str()),
                ("rd", ""),
                ("password", ALICE.password),
            ],
        )
        .await;
    assert_eq!(accepted.status, 303, "{}", accepted.describe());

    // The fifth failure locks.
    form = assert_refused(
        enter_code(&attacker, &form, &wrong_code(&secret)).await,
        401,
        "Koden stämmer inte",
    );
    gw.wait_auth_log("the lockout at the fifth failure", |l| {
        l.iter()
            .any(|e| e["event"] == "lockout" && e["user"] == "alice")
    })
    .await;
    let now = fresh_step_time(&gw).await;
    assert_refused(
        enter_code(&attacker, &form, &totp_code(&secret, now)).await,
        401,
        "Koden stämmer inte",
    );

    // And the re-auth page itself answers her right password as a wrong one.
    let right = attacker
        .post_form(
            "https://portal.test/.portvakt/reauth",
            &[
                ("csrf", csrf.as_str()),
                ("rd", ""),
                ("password", ALICE.password),
            ],
        )
        .await;
    let wrong = attacker
        .post_form(
            "https://portal.test/.portvakt/reauth",
            &[("csrf", csrf.as_str()), ("rd", ""), ("password", "a guess")],
        )
        .await;
    assert_eq!(right.status, 401, "{}", right.describe());
    assert_eq!(
        right.text(),
        wrong.text(),
        "re-auth while locked differs from a wrong password"
    );
    gw.wait_auth_log("a locked re-auth and a locked code", |l| {
        count(l, "reauth", "locked") >= 2 && count(l, "second_factor", "locked") >= 1
    })
    .await;
}

/// ALICE, Alice, ａｌｉｃｅ and alice are one account: five failures spread
/// over the spellings lock all of them, with the file directory (which knows
/// only `alice`) as with a case- and width-blind LDAP directory.
async fn spellings_share_one_lock(gw: &Gateway) {
    let client = gw.offsite_client();
    let wrong = attempt(&client, ONE, "alice", "wrong 0").await;
    assert_eq!(wrong.status, 401, "{}", wrong.describe());
    for (i, name) in ["ALICE", "Alice", "ａｌｉｃｅ", "ＡＬＩＣＥ"]
        .iter()
        .enumerate()
    {
        let page = attempt(&client, ONE, name, &format!("wrong {}", i + 1)).await;
        assert_eq!(page.status, 401, "{name}: {}", page.describe());
    }
    for name in ["alice", "ALICE", "ａｌｉｃｅ"] {
        let page = attempt(&client, ONE, name, ALICE.password).await;
        assert_eq!(
            page.status,
            401,
            "{name} got past the lock: {}",
            page.describe()
        );
        assert_eq!(
            comparable_login_page(&page, name),
            comparable_login_page(&wrong, "alice"),
            "{name}: the locked answer differs from a wrong password's"
        );
    }
    gw.wait_auth_log("three locked refusals", |l| {
        count(l, "login", "locked") >= 3
    })
    .await;
    // Bob is not affected.
    gw.offsite_client().must_login(ONE, &BOB).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_letter_cases_share_one_lock_with_the_file_directory() {
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream, 100).await;
    spellings_share_one_lock(&gw).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_letter_cases_share_one_lock_with_ldap() {
    let slapd = Slapd::start().await;
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream, 100).await;
    use_directory(&gw, &slapd.ldap_url()).await;
    // LDAP matches case-blind: ALICE with her password gets in, as alice.
    let journey = gw
        .offsite_client()
        .login_as(ONE, "ALICE", ALICE.password)
        .await;
    assert!(journey.end.is_whoami(), "{}", journey.describe());
    assert_eq!(journey.end.whoami().one("remote-user"), Some("alice"));
    // …and width-blind: slapd takes fullwidth ａｌｉｃｅ for alice too.
    let journey = gw
        .offsite_client()
        .login_as(ONE, "ａｌｉｃｅ", ALICE.password)
        .await;
    assert!(journey.end.is_whoami(), "{}", journey.describe());
    assert_eq!(journey.end.whoami().one("remote-user"), Some("alice"));
    spellings_share_one_lock(&gw).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_account_answers_in_about_the_time_of_a_wrong_password() {
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream, 100).await;
    let client = gw.offsite_client();
    let mut wrong_times = Vec::new();
    for i in 0..5 {
        let form = client.open_login_form(ONE).await;
        let started = Instant::now();
        let page = client
            .submit_login(&form, "alice", &format!("guess {i}"))
            .await;
        wrong_times.push(started.elapsed());
        assert_eq!(page.status, 401);
    }
    let mut locked_times = Vec::new();
    for _ in 0..3 {
        let form = client.open_login_form(ONE).await;
        let started = Instant::now();
        let page = client.submit_login(&form, "alice", ALICE.password).await;
        locked_times.push(started.elapsed());
        assert_eq!(page.status, 401);
    }
    // A locked answer waits as long as recent checks took: never much
    // quicker than the quickest wrong password (no shortcut to time).
    let quickest_wrong = wrong_times.iter().min().copied().unwrap_or_default();
    let quickest_locked = locked_times.iter().min().copied().unwrap_or_default();
    eprintln!("wrong passwords took {wrong_times:?}; locked answers {locked_times:?}");
    assert!(
        quickest_locked * 2 >= quickest_wrong,
        "locked answers take {locked_times:?}, wrong passwords {wrong_times:?}"
    );
}

// ------------------------------------------------------- the directory

/// A TCP relay that counts the bytes it carries in each direction as they
/// pass (the gateway keeps LDAP connections open, so connection counts
/// alone would miss binds on a pooled connection).
struct CountingRelay {
    addr: SocketAddr,
    bytes: Arc<AtomicUsize>,
    connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl CountingRelay {
    async fn start(to: SocketAddr) -> CountingRelay {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("relay bind");
        let addr = listener.local_addr().expect("relay addr");
        let bytes = Arc::new(AtomicUsize::new(0));
        let connections = Arc::new(AtomicUsize::new(0));
        let (b, c) = (bytes.clone(), connections.clone());
        let task = tokio::spawn(async move {
            let mut set = tokio::task::JoinSet::new();
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                c.fetch_add(1, Ordering::SeqCst);
                let b = b.clone();
                set.spawn(async move {
                    let Ok(outbound) = TcpStream::connect(to).await else {
                        return;
                    };
                    let (ri, wi) = inbound.into_split();
                    let (ro, wo) = outbound.into_split();
                    tokio::join!(pump(ri, wo, b.clone()), pump(ro, wi, b));
                });
                while set.try_join_next().is_some() {}
            }
        });
        CountingRelay {
            addr,
            bytes,
            connections,
            task,
        }
    }

    fn url(&self) -> String {
        format!("ldap://{}", self.addr)
    }

    /// (connections, bytes) so far.
    fn traffic(&self) -> (usize, usize) {
        (
            self.connections.load(Ordering::SeqCst),
            self.bytes.load(Ordering::SeqCst),
        )
    }
}

impl Drop for CountingRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    bytes: Arc<AtomicUsize>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                bytes.fetch_add(n, Ordering::SeqCst);
                if to.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown().await;
}

/// Switch the realm to LDAP at `url` (slapd, or a relay in front of it) and
/// wait until an LDAP-only user can log in.
async fn use_directory(gw: &Gateway, url: &str) {
    let pw = gw.dir().join("service-password");
    std::fs::write(
        &pw,
        format!("{}\n", crate::support::slapd::SERVICE_PASSWORD),
    )
    .expect("write service password");
    let ldap = format!(
        "    directory:\n      ldap:\n        url: \"{url}\"\n        bind_dn: \"{SERVICE_DN}\"\n        bind_password_file: \"{pw}\"\n        base_dn: \"{BASE_DN}\"\n        user_filter: \"(&(objectClass=inetOrgPerson)(uid={{username}}))\"\n        username_attribute: uid\n        connect_timeout: 1s\n        timeout: 1s\n",
        pw = pw.display(),
    );
    let text = gw.config_text();
    let changed = text.replacen("    directory:\n      file: users.yaml\n", &ldap, 1);
    assert_ne!(
        text, changed,
        "the test config's realm directory was not found"
    );
    gw.write_config_text(&changed);
    gw.reload();
    until(
        "a login of an LDAP-only user",
        Duration::from_secs(10),
        Duration::from_millis(300),
        || async {
            let page = gw.client().login_as(ONE, ODD_USER, ODD_PASSWORD).await.end;
            page.is_whoami().then_some(())
        },
    )
    .await;
}

/// Traffic to the directory stays at `before` for a moment.
async fn assert_no_directory_traffic(relay: &CountingRelay, before: (usize, usize), what: &str) {
    // Anything the gateway sent would have arrived by now; wait a little
    // more in case a write is still in flight.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        relay.traffic(),
        before,
        "{what} reached the directory (connections, bytes)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_user_and_a_blocked_address_never_reach_the_directory() {
    let slapd = Slapd::start().await;
    let relay = CountingRelay::start(slapd.ldap_addr()).await;
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream, 8).await;
    use_directory(&gw, &relay.url()).await;
    let attacker = gw.offsite_client();

    // Five wrong passwords: each one a real check in the directory.
    let mut wrong = None;
    for i in 0..5 {
        let before = relay.traffic();
        let page = attempt(&attacker, ONE, "alice", &format!("guess {i}")).await;
        assert_eq!(page.status, 401, "{}", page.describe());
        assert!(
            relay.traffic().1 > before.1,
            "guess {i} was not checked in LDAP"
        );
        wrong = Some(page);
    }
    let wrong = wrong.unwrap();
    gw.wait_auth_log("alice's lockout", |l| {
        l.iter()
            .any(|e| e["event"] == "lockout" && e["user"] == "alice")
    })
    .await;

    // Locked: her right password and more guesses (which would lock her in
    // AD too) cost the directory nothing; nor does another spelling.
    for names in [&["alice", "alice", "alice"][..], &["ALICE", "Alice"][..]] {
        let before = relay.traffic();
        for (i, name) in names.iter().enumerate() {
            let password = if i == 0 {
                ALICE.password
            } else {
                "another guess"
            };
            let page = attempt(&attacker, ONE, name, password).await;
            assert_eq!(page.status, 401, "{name}: {}", page.describe());
            assert_eq!(
                comparable_login_page(&page, name),
                comparable_login_page(&wrong, "alice"),
                "{name}: the locked answer differs from a wrong password's"
            );
        }
        assert_no_directory_traffic(&relay, before, &format!("a locked {names:?}")).await;
    }

    // The same address now fails three more times with bob (5 + 3 = 8):
    // blocked, and a blocked address reaches the directory no more either.
    for i in 0..3 {
        let page = attempt(&attacker, ONE, "bob", &format!("guess {i}")).await;
        assert_eq!(page.status, 401, "{}", page.describe());
    }
    gw.wait_auth_log("the address block", |l| {
        l.iter().any(|e| e["event"] == "ip_block")
    })
    .await;
    let before = relay.traffic();
    let page = attempt(&attacker, ONE, "bob", BOB.password).await;
    assert_eq!(page.status, 401, "{}", page.describe());
    assert_eq!(
        comparable_login_page(&page, "bob"),
        comparable_login_page(&wrong, "alice"),
        "the blocked answer differs from a wrong password's"
    );
    let page = attempt(&attacker, ONE, "orjan", "guess").await;
    assert_eq!(page.status, 401, "{}", page.describe());
    assert_no_directory_traffic(&relay, before, "a blocked address's login").await;
    gw.wait_auth_log("locked and ip_blocked refusals", |l| {
        count(l, "login", "locked") >= 5 && count(l, "login", "ip_blocked") >= 2
    })
    .await;

    // Bob from elsewhere still logs in (through the directory).
    let before = relay.traffic();
    let elsewhere =
        gw.client_with(ClientOptions::default().header("X-Forwarded-For", "198.51.100.7"));
    elsewhere.must_login(ONE, &BOB).await;
    assert!(
        relay.traffic().1 > before.1,
        "bob's login did not reach LDAP"
    );
}

// ------------------------------------------------------------- IPv6

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn addresses_of_one_ipv6_slash_64_share_one_block() {
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream, 4).await;
    // Addresses only written in a header from the trusted proxy 127.0.0.1;
    // nothing contacts them.
    let from =
        |addr: &str| gw.client_with(ClientOptions::default().header("X-Forwarded-For", addr));
    let a = from("2001:db8:1:2::a");
    let b = from("2001:db8:1:2::b");
    for (client, user) in [
        (&a, "bob"),
        (&b, "orjan"),
        (&a, "nosuchuser"),
        (&b, "carol"),
    ] {
        let page = attempt(client, ONE, user, "guess").await;
        assert_eq!(page.status, 401, "{}", page.describe());
    }
    gw.wait_auth_log("the /64 block", |l| {
        l.iter().any(|e| e["event"] == "ip_block")
    })
    .await;
    // A third address of the same /64, with a right password: blocked.
    let c = from("2001:db8:1:2:ffff::1");
    let page = attempt(&c, ONE, "alice", ALICE.password).await;
    assert_eq!(
        page.status,
        401,
        "a sibling in the /64 got in: {}",
        page.describe()
    );
    assert!(
        page.text().contains("Fel användarnamn eller lösenord."),
        "{}",
        page.describe()
    );
    gw.wait_auth_log("an ip_blocked refusal", |l| {
        count(l, "login", "ip_blocked") >= 1
    })
    .await;
    // Another /64 is someone else.
    from("2001:db8:1:3::a").must_login(ONE, &ALICE).await;
}

// ------------------------------------------------------ concurrency

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_concurrent_guesses_gets_no_more_than_five_checks() {
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream, 100).await;
    let attacker = gw.offsite_client();
    let form = attacker.open_login_form(ONE).await;
    // Thirty guesses sent at once, before any of them is answered: without
    // admission before the check, all thirty would pass the lock check.
    let guesses: Vec<String> = (0..30).map(|i| format!("guess {i}")).collect();
    let pages = futures_util::future::join_all(
        guesses
            .iter()
            .map(|g| attacker.submit_login(&form, "alice", g)),
    )
    .await;
    for page in &pages {
        assert_eq!(page.status, 401, "{}", page.describe());
        assert!(
            page.text().contains("Fel användarnamn eller lösenord."),
            "{}",
            page.describe()
        );
    }
    let lines = gw
        .wait_auth_log("thirty refusals", |l| {
            l.iter()
                .filter(|e| is_login_event(e) && e["user"] == "alice" && e["result"] == "failure")
                .count()
                >= 30
        })
        .await;
    let checked = count(&lines, "login", "wrong_password");
    assert!(
        checked <= 5,
        "{checked} of 30 concurrent guesses were checked against the directory"
    );
    assert!(count(&lines, "login", "too_many_at_once") + count(&lines, "login", "locked") >= 25);
    // And she is locked now: her own password is refused.
    let page = attempt(&gw.offsite_client(), ONE, "alice", ALICE.password).await;
    assert_eq!(page.status, 401, "{}", page.describe());
}

// ------------------------------------------------------ codes by SMS and e-mail

/// A code that is certainly not `code`: same length, same alphabet.
fn not(code: &str) -> String {
    let alphabet = portvakt::factors::code::ALPHABET;
    code.bytes()
        .map(|b| {
            let i = alphabet.iter().position(|a| *a == b).unwrap_or(0);
            char::from(alphabet[(i + 1) % alphabet.len()])
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_sms_and_email_codes_across_two_logins_add_up_to_one_lock() {
    let upstream = Upstream::start().await;
    let sms = SmsProvider::start().await;
    let smtp = SmtpSink::start().await;
    let gw = GatewayConfig::new()
        .throttle(5, 100)
        .service(Service::new("two.test", upstream.url()).policy("two_factor"))
        .extra_yaml(&notify_yaml(&[
            sms.sms_yaml(
                "/send",
                "form: { to: \"{phone}\", message: \"{text}\" }\ntimeout: 2s",
            ),
            smtp.email_yaml(),
        ]))
        .start()
        .await;
    set_sms_number(&gw, &ALICE, 0, "+46701234567").await;

    // Login one: an SMS code (from the real provider stand-in), three wrong tries.
    let attacker = gw.offsite_client();
    let mut form = code_page_for(&attacker, APP, &ALICE, "sms:0").await;
    let message = sms.request(1).await.form_field("message");
    let code = code_in(&message).unwrap_or_else(|| panic!("no code in {message:?}"));
    for _ in 0..3 {
        let page = enter_code(&attacker, &form, &not(&code)).await;
        assert_eq!(page.status, 401, "{}", page.describe());
        form = CodePage::parse(page);
    }

    // Login two, a fresh browser: an e-mail code; the fourth failure does
    // not lock, the fifth does — the password in between wiped nothing.
    let attacker = gw.offsite_client();
    let mut form = code_page_for(&attacker, APP, &ALICE, "email").await;
    let code = smtp.mail(1).await.code();
    form = assert_refused(enter_code(&attacker, &form, &not(&code)).await, 401, "");
    let lines = gw
        .wait_auth_log("four failed codes", |l| {
            l.iter()
                .filter(|e| e["event"] == "second_factor" && e["result"] == "failure")
                .count()
                >= 4
        })
        .await;
    assert!(events(&lines, "lockout").is_empty(), "locked at the fourth");
    form = assert_refused(enter_code(&attacker, &form, &not(&code)).await, 401, "");
    gw.wait_auth_log("the lockout at the fifth", |l| {
        !events(l, "lockout").is_empty()
    })
    .await;

    // Her right e-mail code, unused and within its tries: refused like a wrong one.
    let refused = assert_refused(
        enter_code(&attacker, &form, &code).await,
        401,
        "Koden stämmer inte",
    );
    assert!(refused.page.set_cookie(SESSION_COOKIE).is_none());
    gw.wait_auth_log("a locked code", |l| {
        count(l, "second_factor", "locked") >= 1
    })
    .await;
}

// ------------------------------------------------------------- Basic

fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {token}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_credentials_meet_the_same_lock_even_when_remembered() {
    let upstream = Upstream::start().await;
    let gw = GatewayConfig::new()
        .throttle(5, 100)
        .service(
            Service::new("basic.test", upstream.url())
                .policy("one_factor")
                .with("basic_auth: true"),
        )
        .start()
        .await;
    let tool = gw.client();
    let get = |auth: String| {
        let tool = &tool;
        async move {
            tool.get_with(
                "https://basic.test/api",
                &[("authorization", auth.as_str()), ("accept", "*/*")],
            )
            .await
        }
    };
    // Her tool works, and the gateway now remembers her credentials.
    assert!(get(basic("alice", ALICE.password)).await.is_whoami());

    // Someone guesses her password with Basic, in two spellings.
    for i in 0..5 {
        let name = if i % 2 == 0 { "alice" } else { "ALICE" };
        let page = get(basic(name, &format!("guess {i}"))).await;
        assert_eq!(page.status, 401, "{}", page.describe());
    }
    gw.wait_auth_log("the lockout", |l| !events(l, "lockout").is_empty())
        .await;
    // Locked: not even the remembered right credentials pass.
    let page = get(basic("alice", ALICE.password)).await;
    assert_eq!(
        page.status,
        401,
        "remembered credentials beat the lock: {}",
        page.describe()
    );
    assert!(!page.is_whoami());
    gw.wait_auth_log("a locked Basic attempt", |l| {
        l.iter()
            .any(|e| is_login_event(e) && e["method"] == "basic" && e["reason"] == "locked")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_blocked_by_basic_guesses_is_an_audited_block() {
    let upstream = Upstream::start().await;
    let gw = GatewayConfig::new()
        .throttle(50, 3)
        .service(
            Service::new("basic.test", upstream.url())
                .policy("one_factor")
                .with("basic_auth: true"),
        )
        .start()
        .await;
    let tool = gw.client();
    // A script sprays three names with Basic from one address.
    for name in ["alice", "bob", "carol"] {
        let page = tool
            .get_with(
                "https://basic.test/api",
                &[
                    ("authorization", basic(name, "Sommar2026").as_str()),
                    ("accept", "*/*"),
                ],
            )
            .await;
        assert_eq!(page.status, 401, "{}", page.describe());
    }
    // The block is an event of its own, as on the login form (metrics and
    // `audit report` count blocks from these events).
    gw.wait_auth_log("the ip_block event", |l| !events(l, "ip_block").is_empty())
        .await;
}

// ------------------------------------------------------------- realms

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_in_one_realm_is_not_a_lock_in_another_and_survives_a_reload() {
    let upstream = Upstream::start().await;
    let gw = GatewayConfig::new()
        .throttle(5, 100)
        .service(
            Service::new("other.test", upstream.url())
                .policy("one_factor")
                .with("realms: [staff]"),
        )
        .start()
        .await;
    let attacker = gw.offsite_client();
    for i in 0..5 {
        let page = attempt(&attacker, ONE, "alice", &format!("guess {i}")).await;
        assert_eq!(page.status, 401, "{}", page.describe());
    }
    gw.wait_auth_log("the lockout in staff", |l| !events(l, "lockout").is_empty())
        .await;

    // A second realm whose directory also holds an `alice`: another person.
    // It arrives by reload, which must keep the lock in the first.
    let school = "  - id: school\n    title: { sv: \"Pedagogisk personal\", en: \"Teaching staff\" }\n    internal_networks: [10.99.0.0/16]\n    directory:\n      file: users.yaml\n";
    let lon = format!(
        "  - name: Skolwebben\n    host: lon.test\n    upstream: {}\n    policy: one_factor\n    realms: [school]\n",
        upstream.url()
    );
    let text = gw.config_text();
    let changed = text.replacen("services:\n", &format!("{school}services:\n{lon}"), 1);
    assert_ne!(text, changed);
    gw.write_config_text(&changed);
    gw.reload();
    let who = until(
        "the school realm's alice to log in after the reload",
        Duration::from_secs(10),
        Duration::from_millis(300),
        || async {
            let b = gw.offsite_client();
            if b.get("https://lon.test/").await.status == 404 {
                return None; // not reloaded yet
            }
            let end = b.login("https://lon.test/", &ALICE).await.end;
            end.is_whoami().then(|| end.whoami())
        },
    )
    .await;
    assert_eq!(who.one("remote-realm"), Some("school"));

    // Staff's alice is still locked.
    let page = attempt(&gw.offsite_client(), ONE, "alice", ALICE.password).await;
    assert_eq!(
        page.status,
        401,
        "the reload lifted the lock: {}",
        page.describe()
    );
    let lines = gw
        .wait_auth_log("a locked refusal in staff", |l| {
            count(l, "login", "locked") >= 1
        })
        .await;
    let locked = lines
        .iter()
        .find(|l| l["event"] == "login" && l["reason"] == "locked")
        .unwrap();
    assert_eq!(locked["realm"], "staff", "{locked}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_help_desk_lists_and_clears_a_lockout_and_nobody_else_can() {
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream, 100).await;
    let attacker = gw.offsite_client();
    for i in 0..5 {
        let page = attempt(&attacker, ONE, "alice", &format!("guess {i}")).await;
        assert_eq!(page.status, 401, "{}", page.describe());
    }
    gw.wait_auth_log("alice's lockout", |l| !events(l, "lockout").is_empty())
        .await;

    // The help desk sees her, with the realm, an end time and the count.
    let out = gw.run_cli(&["lockouts", "list"]);
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{out:?}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("alice ") && l.contains("staff") && l.contains(" 5")),
        "alice is not listed as locked:\n{table}"
    );
    let out = gw.run_cli(&["lockouts", "list", "--json"]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON list");
    assert_eq!(list["users"][0]["user"], "alice", "{list}");
    assert!(
        list["users"][0]["until"].is_string(),
        "an ordinary lock ends: {list}"
    );

    // Without the admin token the API clears nothing and lists nothing.
    let no_token = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
        .post(format!(
            "http://{}/lockouts/clear?user=alice",
            gw.admin_addr()
        ))
        .send()
        .await
        .expect("POST /lockouts/clear");
    assert_eq!(no_token.status().as_u16(), 401);
    assert_eq!(gw.admin_get("/lockouts").await.0, 401);
    let page = attempt(&gw.offsite_client(), ONE, "alice", ALICE.password).await;
    assert_eq!(
        page.status,
        401,
        "a clear without the token worked: {}",
        page.describe()
    );

    // A name nobody failed with: a clear message and exit 1.
    let out = gw.run_cli(&["lockouts", "clear", "nobody-at-all"]);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nothing to clear"),
        "{out:?}"
    );

    // She calls; the help desk types her name in capitals: it is her lock.
    let out = gw.run_cli(&["lockouts", "clear", "ALICE"]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("cleared alice"),
        "{out:?}"
    );
    let end = gw.offsite_client().login(ONE, &ALICE).await.end;
    assert!(
        end.is_whoami(),
        "still locked after the clear: {}",
        end.describe()
    );
    let out = gw.run_cli(&["lockouts", "list", "--json"]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON list");
    assert_eq!(list["users"].as_array().map(Vec::len), Some(0), "{list}");

    let lines = gw
        .wait_auth_log("the admin event of the clear", |l| {
            count(l, "admin", "lockout_cleared") >= 1
        })
        .await;
    let cleared: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["event"] == "admin" && l["reason"] == "lockout_cleared")
        .collect();
    assert_eq!(cleared.len(), 1, "one clear, one event: {cleared:?}");
    assert_eq!(cleared[0]["user"], "alice");
    assert_eq!(cleared[0]["realm"], "staff");
    assert_eq!(cleared[0]["method"], "admin_api");
    assert_eq!(cleared[0]["result"], "success");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_help_desk_unblocks_an_address_and_only_that_address() {
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream, 3).await;
    let office = gw.offsite_client();
    for i in 0..3 {
        let page = attempt(&office, ONE, &format!("typo{i}"), "wrong").await;
        assert_eq!(page.status, 401, "{}", page.describe());
    }
    gw.wait_auth_log("the address block", |l| !events(l, "ip_block").is_empty())
        .await;
    let blocked = attempt(&gw.offsite_client(), ONE, "alice", ALICE.password).await;
    assert_eq!(blocked.status, 401, "not blocked: {}", blocked.describe());

    let out = gw.run_cli(&["lockouts", "list"]);
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        table.lines().any(|l| l.starts_with("127.0.0.2 ")),
        "the address is not listed:\n{table}"
    );
    // A --realm that is not configured is refused, not ignored.
    let out = gw.run_cli(&["lockouts", "clear", "alice", "--realm", "nosuch"]);
    assert!(!out.status.success(), "{out:?}");
    // Another address: nothing to clear, exit 1, the block stays.
    let out = gw.run_cli(&["lockouts", "clear", "--ip", "127.0.0.9"]);
    assert!(!out.status.success(), "{out:?}");
    let out = gw.run_cli(&["lockouts", "clear", "--ip", "127.0.0.2"]);
    assert!(out.status.success(), "{out:?}");
    let end = gw.offsite_client().login(ONE, &ALICE).await.end;
    assert!(
        end.is_whoami(),
        "still blocked after the clear: {}",
        end.describe()
    );
    let lines = gw
        .wait_auth_log("the admin event of the clear", |l| {
            count(l, "admin", "lockout_cleared") >= 1
        })
        .await;
    let cleared = lines
        .iter()
        .find(|l| l["event"] == "admin" && l["reason"] == "lockout_cleared")
        .unwrap();
    assert_eq!(cleared["client_ip"], "127.0.0.2", "{cleared}");
}
