//! The LDAP / Active Directory directory against a real slapd
//! (`support::slapd`): `LdapDirectory` is called directly, as the gateway
//! would call it for a login.
//!
//! Nested groups: Active Directory's matching rule in chain
//! (1.2.840.113556.1.4.1941) is unknown to OpenLDAP, which evaluates such a
//! filter as matching nothing. So here we check only that `nested_groups`
//! leaves the direct groups intact; the filter itself is unit-tested in
//! `src/directory/ldap/syntax.rs`.

use std::time::{Duration, Instant};

use portvakt::directory::ldap::{LdapConfig, LdapDirectory};
use portvakt::directory::{Directory, DirectoryError, Verdict};

use crate::support::slapd::{
    BlackHole, Slapd, SlowProxy, ODD_PASSWORD, ODD_USER, TWIN, TWIN_PASSWORD,
};
use crate::support::{median, Pki, ALICE, BOB, ORJAN};

/// What a directory that is down may take beyond its 1 s limit.
const MARGIN: Duration = Duration::from_millis(1500);

fn directory(slapd: &Slapd, config: &LdapConfig) -> LdapDirectory {
    LdapDirectory::new(config, slapd.dir()).unwrap_or_else(|p| panic!("config refused: {p:?}"))
}

async fn check(d: &LdapDirectory, user: &str, password: &str) -> Verdict {
    d.check(user, password)
        .await
        .unwrap_or_else(|e| panic!("check({user:?}) failed: {e}"))
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// A check that must fail as unavailable, within `limit`.
async fn unavailable_within(d: &LdapDirectory, limit: Duration) -> String {
    let start = Instant::now();
    let result = d.check(ALICE.name, ALICE.password).await;
    let took = start.elapsed();
    assert!(took < limit, "took {took:?}, limit {limit:?}: {result:?}");
    match result {
        Err(DirectoryError::Unavailable(why)) => why,
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn right_password_gives_the_user_with_groups_mail_and_display_name() {
    let slapd = Slapd::start().await;
    let d = directory(&slapd, &slapd.config());

    let Verdict::Valid(alice) = check(&d, ALICE.name, ALICE.password).await else {
        panic!("alice refused");
    };
    assert_eq!(alice.username, "alice");
    assert_eq!(alice.display_name, ALICE.display_name);
    assert_eq!(alice.email, ALICE.email);
    assert_eq!(sorted(alice.groups), ["lon-users", "staff"]);

    let Verdict::Valid(bob) = check(&d, BOB.name, BOB.password).await else {
        panic!("bob refused");
    };
    assert_eq!(bob.groups, ["staff"]);

    // Non-ASCII display name and password; the non-ASCII login name is
    // escaped byte by byte into the filter and still found.
    for name in [ORJAN.name, "örjan"] {
        let Verdict::Valid(orjan) = check(&d, name, ORJAN.password).await else {
            panic!("{name} refused");
        };
        assert_eq!(orjan.display_name, "Örjan Åberg");
        assert_eq!(orjan.groups, ["staff"]);
    }

    // Filter metacharacters in a real login name: escaped, found, only them.
    let Verdict::Valid(odd) = check(&d, ODD_USER, ODD_PASSWORD).await else {
        panic!("{ODD_USER} refused");
    };
    assert_eq!(odd.username, ODD_USER);
    assert_eq!(odd.display_name, ODD_USER, "no displayName: the login name");
    assert_eq!(odd.email, "odd@example.org");
}

#[tokio::test]
async fn wrong_password_unknown_and_ambiguous_users_are_told_apart_for_the_audit_log() {
    let slapd = Slapd::start().await;
    let d = directory(&slapd, &slapd.config());
    assert_eq!(check(&d, ALICE.name, "wrong").await, Verdict::WrongPassword);
    assert_eq!(
        check(&d, ALICE.name, BOB.password).await,
        Verdict::WrongPassword
    );
    assert_eq!(check(&d, "nobody", "whatever").await, Verdict::UnknownUser);
    // Two entries answer to "twin": neither is chosen, even with the right password.
    assert_eq!(check(&d, TWIN, TWIN_PASSWORD).await, Verdict::UnknownUser);
    // The pool keeps working across many checks, concurrent ones too.
    let checks = (0..12).map(|i| {
        let d = &d;
        async move {
            let (u, p) = if i % 2 == 0 {
                (ALICE.name, ALICE.password)
            } else {
                (BOB.name, "no")
            };
            d.check(u, p).await
        }
    });
    for (i, v) in futures_util::future::join_all(checks)
        .await
        .into_iter()
        .enumerate()
    {
        match (i % 2, v) {
            (0, Ok(Verdict::Valid(_))) | (1, Ok(Verdict::WrongPassword)) => {}
            (_, other) => panic!("check {i}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn filter_injection_finds_nobody() {
    let slapd = Slapd::start().await;
    let d = directory(&slapd, &slapd.config());
    for name in [
        "*",
        "alice)(uid=*",
        "*)(|(uid=*",
        "al*",
        "alice)",
        "(uid=alice)",
        "alice\0",
    ] {
        assert_eq!(
            check(&d, name, ALICE.password).await,
            Verdict::UnknownUser,
            "{name:?}"
        );
    }
}

#[tokio::test]
async fn an_empty_password_is_refused_without_contacting_the_server() {
    let slapd = Slapd::start().await;
    let d = directory(&slapd, &slapd.config());
    assert_eq!(check(&d, ALICE.name, "").await, Verdict::WrongPassword);

    // Against a server that would hang: no connection is even opened.
    let hole = BlackHole::start().await;
    let mut c = slapd.config();
    c.url = format!("ldap://{}", hole.addr());
    let d = directory(&slapd, &c);
    assert_eq!(check(&d, ALICE.name, "").await, Verdict::WrongPassword);
    // An absence, so nothing to poll for: give a connection opened in the
    // background a moment to reach the hole before counting.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(hole.accepted(), 0);
}

#[tokio::test]
async fn ldaps_verifies_the_server_certificate() {
    let slapd = Slapd::start().await;
    let mut c = slapd.config();
    c.url = slapd.ldaps_url();
    c.ca_file = Some(slapd.ca_file());
    let d = directory(&slapd, &c);
    assert!(matches!(
        check(&d, ALICE.name, ALICE.password).await,
        Verdict::Valid(_)
    ));

    // Another CA did not issue slapd's certificate.
    let other = Pki::generate();
    std::fs::write(slapd.dir().join("other-ca.pem"), other.ca_pem()).unwrap();
    c.ca_file = Some("other-ca.pem".into());
    let why = unavailable_within(&directory(&slapd, &c), Duration::from_secs(1) + MARGIN).await;
    assert!(why.to_lowercase().contains("certificate"), "{why}");

    // Only when verification is turned off in writing does it pass.
    c.verify = false;
    let d = directory(&slapd, &c);
    assert!(matches!(
        check(&d, ALICE.name, ALICE.password).await,
        Verdict::Valid(_)
    ));
}

#[tokio::test]
async fn starttls_upgrades_and_verifies() {
    let slapd = Slapd::start().await;
    let mut c = slapd.config();
    c.starttls = true;
    c.ca_file = Some(slapd.ca_file());
    let d = directory(&slapd, &c);
    assert!(matches!(
        check(&d, ALICE.name, ALICE.password).await,
        Verdict::Valid(_)
    ));
    assert_eq!(check(&d, ALICE.name, "wrong").await, Verdict::WrongPassword);

    // Proof that TLS is really negotiated: a foreign CA makes it fail.
    let other = Pki::generate();
    std::fs::write(slapd.dir().join("other-ca.pem"), other.ca_pem()).unwrap();
    c.ca_file = Some("other-ca.pem".into());
    let why = unavailable_within(&directory(&slapd, &c), Duration::from_secs(1) + MARGIN).await;
    assert!(why.to_lowercase().contains("certificate"), "{why}");
}

#[tokio::test]
async fn a_directory_that_is_down_or_hangs_is_unavailable_within_the_timeout() {
    let mut slapd = Slapd::start().await;
    let d = directory(&slapd, &slapd.config());
    // Connections are pooled now; then the server goes away.
    assert!(matches!(
        check(&d, ALICE.name, ALICE.password).await,
        Verdict::Valid(_)
    ));
    slapd.stop();
    let why = unavailable_within(&d, Duration::from_secs(1) + MARGIN).await;
    assert!(why.contains(&slapd.ldap_url()), "{why}");

    // It comes back: the dead pooled connections are replaced, also when
    // no failed check came in between.
    slapd.restart().await;
    assert!(matches!(
        check(&d, ALICE.name, ALICE.password).await,
        Verdict::Valid(_)
    ));
    slapd.restart().await;
    assert!(matches!(
        check(&d, ALICE.name, ALICE.password).await,
        Verdict::Valid(_)
    ));

    // Nothing listens on the port at all.
    slapd.stop();
    let d = directory(&slapd, &slapd.config());
    unavailable_within(&d, Duration::from_secs(1) + MARGIN).await;

    // A server that accepts and never answers: plain (the service bind
    // hangs) and ldaps (the TLS handshake hangs).
    let hole = BlackHole::start().await;
    for url in [
        format!("ldap://{}", hole.addr()),
        format!("ldaps://{}", hole.addr()),
    ] {
        let mut c = slapd.config();
        c.url = url.clone();
        c.ca_file = url.starts_with("ldaps").then(|| slapd.ca_file());
        let why = unavailable_within(&directory(&slapd, &c), Duration::from_secs(1) + MARGIN).await;
        assert!(why.contains("within 1s"), "{url}: {why}");
    }
    assert!(hole.accepted() >= 2);
}

#[tokio::test]
async fn a_wrong_service_password_is_unavailable_not_a_user_failure() {
    let slapd = Slapd::start().await;
    std::fs::write(slapd.dir().join("wrong-password"), "not it\n").unwrap();
    let mut c = slapd.config();
    c.bind_password_file = "wrong-password".into();
    let why = unavailable_within(&directory(&slapd, &c), Duration::from_secs(2)).await;
    assert!(why.contains("service account"), "{why}");
}

#[tokio::test]
async fn nested_groups_keep_the_direct_groups_on_slapd() {
    // slapd does not know AD's matching rule in chain: the extra search finds
    // nothing, so "everyone" (which holds "staff") is not added, and nothing
    // breaks. Against AD the same search returns every enclosing group.
    let slapd = Slapd::start().await;
    let mut c = slapd.config();
    c.nested_groups = true;
    let d = directory(&slapd, &c);
    let Verdict::Valid(alice) = check(&d, ALICE.name, ALICE.password).await else {
        panic!("alice refused");
    };
    assert_eq!(sorted(alice.groups), ["lon-users", "staff"]);
}

#[tokio::test]
async fn an_unknown_user_costs_the_same_round_trips_as_a_wrong_password() {
    // Every request to the server is delayed 40 ms, so the number of round
    // trips dominates the time a check takes. A wrong password is a search
    // and a bind; an unknown user must be too (the dummy bind), not just a
    // search.
    let slapd = Slapd::start().await;
    let delay = Duration::from_millis(40);
    let proxy = SlowProxy::start(slapd.ldap_addr(), delay).await;
    let mut c = slapd.config();
    c.url = proxy.url();
    let d = directory(&slapd, &c);
    // Open and pool the connections first.
    assert_eq!(check(&d, ALICE.name, "wrong").await, Verdict::WrongPassword);
    assert_eq!(check(&d, "nobody", "wrong").await, Verdict::UnknownUser);

    let time = |user: &'static str| {
        let d = &d;
        async move {
            let mut times = Vec::new();
            for _ in 0..5 {
                let start = Instant::now();
                d.check(user, "wrong").await.expect("check");
                times.push(start.elapsed());
            }
            median(times)
        }
    };
    let wrong = time(ALICE.name).await;
    let unknown = time("nobody").await;
    assert!(wrong >= delay * 2, "a wrong password took only {wrong:?}");
    let diff = wrong.abs_diff(unknown);
    assert!(
        diff < delay / 2,
        "wrong password {wrong:?} vs unknown user {unknown:?}"
    );
}

/// A login without a password (a passkey alone) asks the directory only
/// whether the account exists and may log in: `enabled_filter` tells a
/// disabled account (here Bob, marked in `data.ldif`), and without one
/// nobody is let in.
#[tokio::test]
async fn without_a_password_the_enabled_filter_tells_a_disabled_account() {
    use portvakt::directory::Presence;
    let slapd = Slapd::start().await;
    let mut config = slapd.config();
    config.enabled_filter = Some("(!(employeeType=disabled))".into());
    let d = directory(&slapd, &config);
    let lookup = |name: &'static str| {
        let d = &d;
        async move {
            d.lookup(name)
                .await
                .unwrap_or_else(|e| panic!("lookup({name:?}) failed: {e}"))
        }
    };
    let Presence::Active(alice) = lookup(ALICE.name).await else {
        panic!("alice is not active");
    };
    assert_eq!(alice.username, "alice");
    assert_eq!(alice.email, "alice@example.org");
    assert!(alice.groups.contains(&"staff".to_string()), "{alice:?}");
    assert_eq!(lookup(BOB.name).await, Presence::Disabled);
    assert_eq!(lookup("nobody").await, Presence::UnknownUser);
    // Two entries for one name are nobody, as for a password check.
    assert_eq!(lookup(TWIN).await, Presence::UnknownUser);
    // Bob's password still binds: the filter is for logins without one.
    assert!(matches!(
        check(&d, BOB.name, BOB.password).await,
        Verdict::Valid(_)
    ));

    // No filter: nobody logs in without a password.
    let d = directory(&slapd, &slapd.config());
    assert_eq!(d.lookup(ALICE.name).await.unwrap(), Presence::Disabled);

    // A filter that is not one is a config error naming the key.
    config.enabled_filter = Some("(employeeType=disabled".into());
    let problems = LdapDirectory::new(&config, slapd.dir()).unwrap_err();
    assert!(
        problems.iter().any(|(k, _)| k == "enabled_filter"),
        "{problems:?}"
    );
}

/// Without a password there is no bind to even out, so a lookup must make
/// the same round trips whatever the answer: an active, a disabled and an
/// unknown name each cost the user search and the enabled-filter search.
#[tokio::test]
async fn a_lookup_costs_the_same_round_trips_for_active_disabled_and_unknown() {
    use portvakt::directory::Presence;
    let slapd = Slapd::start().await;
    let delay = Duration::from_millis(40);
    let proxy = SlowProxy::start(slapd.ldap_addr(), delay).await;
    let mut c = slapd.config();
    c.url = proxy.url();
    c.enabled_filter = Some("(!(employeeType=disabled))".into());
    let d = directory(&slapd, &c);
    let time = |user: &'static str, expected: fn(&Presence) -> bool| {
        let d = &d;
        async move {
            let mut times = Vec::new();
            for _ in 0..5 {
                let start = Instant::now();
                let presence = d.lookup(user).await.expect("lookup");
                times.push(start.elapsed());
                assert!(expected(&presence), "{user}: {presence:?}");
            }
            median(times)
        }
    };
    // Open and pool the connections first.
    time(ALICE.name, |p| matches!(p, Presence::Active(_))).await;
    let active = time(ALICE.name, |p| matches!(p, Presence::Active(_))).await;
    let disabled = time(BOB.name, |p| *p == Presence::Disabled).await;
    let unknown = time("nobody", |p| *p == Presence::UnknownUser).await;
    assert!(active >= delay * 2, "an active lookup took only {active:?}");
    for (what, t) in [("disabled", disabled), ("unknown", unknown)] {
        assert!(
            active.abs_diff(t) < delay / 2,
            "active {active:?} vs {what} {t:?}: the answer shows in the time"
        );
    }
}
