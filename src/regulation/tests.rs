//! Unit tests of the regulator: keys, buckets, what clears what, the
//! consecutive cap, the bounds and admission.

use super::*;

fn limits() -> LoginLimits {
    LoginLimits {
        user_failures: 5,
        ip_failures: 20,
        window: Duration::from_secs(600),
        lockout: Duration::from_secs(900),
        basic_auth_cache: Duration::from_secs(300),
        max_concurrent_hashes: 1,
    }
}

fn key(name: &str) -> UserKey {
    UserKey::new("staff", name)
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

const MIN: u64 = 60_000;

#[tokio::test]
async fn five_failures_lock_the_user_for_fifteen_minutes() {
    let r = Regulator::new(limits());
    let a = ip("192.0.2.1");
    for i in 0..4 {
        assert!(
            !r.failed(Some(&key("alice")), a, Factor::Password, i * 1000)
                .await
                .user_locked
        );
    }
    let e = r
        .failed(Some(&key("alice")), a, Factor::Password, 5000)
        .await;
    assert!(e.user_locked && !e.user_held);
    assert_eq!(
        e.lockout_reason().map(|r| r.as_str()),
        Some("too_many_failures")
    );
    assert_eq!(r.check(&key("alice"), a, 6000).await, Some(Block::User));
    assert_eq!(r.check(&key("bob"), a, 6000).await, None);
    assert_eq!(r.check(&key("alice"), a, 5000 + 15 * MIN).await, None);
}

#[tokio::test]
async fn failures_outside_the_window_do_not_count() {
    let r = Regulator::new(limits());
    let a = ip("192.0.2.1");
    for i in 0..4 {
        r.failed(Some(&key("alice")), a, Factor::Password, i).await;
    }
    assert!(
        !r.failed(Some(&key("alice")), a, Factor::Password, 700_000)
            .await
            .user_locked
    );
    assert_eq!(r.check(&key("alice"), a, 700_001).await, None);
}

#[tokio::test]
async fn twenty_failures_block_the_ip_for_any_user() {
    let r = Regulator::new(limits());
    let a = ip("192.0.2.9");
    for i in 0..20u64 {
        r.failed(Some(&key(&format!("user{i}"))), a, Factor::Password, i)
            .await;
    }
    assert_eq!(r.check(&key("someone"), a, 100).await, Some(Block::Ip));
    assert_eq!(r.check(&key("someone"), ip("192.0.2.10"), 100).await, None);
}

#[tokio::test]
async fn names_fold_case_and_realms_stay_apart() {
    assert_eq!(
        UserKey::new("staff", "ALICE"),
        UserKey::new("staff", "alice")
    );
    assert_eq!(
        UserKey::new("staff", " Alice "),
        UserKey::new("staff", "alice")
    );
    assert_eq!(
        UserKey::new("staff", "ÖRJAN"),
        UserKey::new("staff", "örjan")
    );
    assert_ne!(
        UserKey::new("school", "anna"),
        UserKey::new("staff", "anna")
    );
    // Spellings a case- and width-blind directory takes for alice.
    for spelling in [
        "ＡＬＩＣＥ",
        "ａｌｉｃｅ",
        "ali\u{200B}ce",
        "al\u{00AD}ice",
        "\u{FEFF}alice",
        "alice\u{2060}",
        "\talice\u{3000}",
    ] {
        assert_eq!(key(spelling), key("alice"), "{spelling:?}");
    }
    assert_eq!(key("anna  maria"), key("Anna Maria"));
    assert_eq!(key("\u{212A}alle"), key("kalle"), "Kelvin sign");
    assert_ne!(key("alice"), key("alicé"));
    // Long names stay small keys.
    let long = "\u{FDFA}".repeat(85); // each expands to 18 characters under NFKC
    assert!(key(&long).name.len() <= MAX_KEY_NAME);

    let r = Regulator::new(limits());
    let a = ip("192.0.2.1");
    for (i, name) in ["ALICE", "Alice", "alice", "aLiCe", "ALIce"]
        .iter()
        .enumerate()
    {
        r.failed(Some(&key(name)), a, Factor::Password, i as u64)
            .await;
    }
    assert_eq!(r.check(&key("alice"), a, 10).await, Some(Block::User));
    assert_eq!(r.check(&UserKey::new("school", "alice"), a, 10).await, None);
}

#[tokio::test]
async fn ipv6_addresses_of_one_slash_64_share_a_bucket() {
    let b = |s: &str| IpBucket::from(ip(s));
    assert_eq!(b("2001:db8:1:2::a"), b("2001:db8:1:2:ffff:ffff:ffff:ffff"));
    assert_ne!(b("2001:db8:1:2::a"), b("2001:db8:1:3::a"));
    assert_eq!(b("::ffff:192.0.2.7"), b("192.0.2.7"));
    assert_ne!(b("192.0.2.7"), b("192.0.2.8"));

    let r = Regulator::new(limits());
    for i in 0..20u64 {
        let addr = ip(&format!("2001:db8:1:2::{:x}", i + 1));
        r.failed(None, addr, Factor::Password, i).await;
    }
    assert_eq!(
        r.check(&key("x"), ip("2001:db8:1:2::beef"), 30).await,
        Some(Block::Ip)
    );
    assert_eq!(r.check(&key("x"), ip("2001:db8:1:3::1"), 30).await, None);
}

#[tokio::test]
async fn a_correct_password_never_clears_second_factor_failures() {
    let r = Regulator::new(limits());
    let a = ip("192.0.2.1");
    let alice = key("alice");
    // 4 wrong codes, the password again (a two-factor login's first
    // step clears nothing, a password-only login clears passwords only),
    // then the fifth wrong code locks.
    for i in 0..4 {
        r.failed(Some(&alice), a, Factor::Second, i).await;
    }
    r.succeeded(&alice, Completed::Password, 0).await;
    assert!(
        r.failed(Some(&alice), a, Factor::Second, 10)
            .await
            .user_locked
    );
}

#[tokio::test]
async fn a_password_success_clears_password_failures_and_two_factors_clear_all() {
    let r = Regulator::new(limits());
    let a = ip("192.0.2.1");
    let alice = key("alice");
    for i in 0..2 {
        r.failed(Some(&alice), a, Factor::Second, i).await;
        r.failed(Some(&alice), a, Factor::Password, i).await;
    }
    r.succeeded(&alice, Completed::Password, 0).await;
    // Two code failures remain: three more lock.
    for i in 0..2 {
        assert!(
            !r.failed(Some(&alice), a, Factor::Password, 10 + i)
                .await
                .user_locked
        );
    }
    r.succeeded(&alice, Completed::TwoFactors, 0).await;
    for i in 0..4 {
        assert!(
            !r.failed(Some(&alice), a, Factor::Password, 20 + i)
                .await
                .user_locked
        );
    }
    // A success never lifts a lock, nor clears the address.
    assert!(
        r.failed(Some(&alice), a, Factor::Password, 30)
            .await
            .user_locked
    );
    r.succeeded(&alice, Completed::TwoFactors, 0).await;
    assert_eq!(r.check(&alice, a, 31).await, Some(Block::User));
}

#[tokio::test]
async fn a_run_never_passes_one_hundred_consecutive_failures() {
    let r = Regulator::new(limits());
    let alice = key("alice");
    let mut now = 0;
    let mut failures = 0u32;
    let mut held_at = None;
    // An attacker who waits out every lock, from ever new addresses
    // (so only the user counter stops them); bounded at 1000 tries.
    for n in 0..1000u32 {
        let a = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n));
        if r.check(&alice, a, now).await.is_some() {
            now += MIN;
            continue;
        }
        failures += 1;
        let e = r.failed(Some(&alice), a, Factor::Password, now).await;
        if e.user_held {
            held_at = Some(now);
            break;
        }
        now += 1000;
    }
    assert_eq!(
        failures, MAX_CONSECUTIVE,
        "held at the 100th failure, not later"
    );
    let held_at = held_at.expect("the run was held");
    let a = ip("192.0.2.1");
    // Held with no expiry: not after a lockout, not after a day, not after
    // a year; the sweep keeps it. So no second run of 100 can follow.
    for later in [16 * MIN, HOLD.as_millis() as u64 + 1, 365 * 24 * 60 * MIN] {
        r.sweep(held_at + later);
        assert_eq!(
            r.check(&alice, a, held_at + later).await,
            Some(Block::User),
            "the hold ended by itself {later} ms later"
        );
        assert!(r.begin(&alice, a, held_at + later).await.is_err());
    }
    // A completed login cannot lift it either (none can start, and a
    // success never lifts a lock).
    r.succeeded(&alice, Completed::TwoFactors, 0).await;
    assert_eq!(
        r.check(&alice, a, held_at + 2 * HOLD.as_millis() as u64)
            .await,
        Some(Block::User)
    );
}

#[tokio::test]
async fn only_an_administrator_clears_a_hold_and_a_fresh_run_starts_from_zero() {
    let r = Regulator::new(limits());
    let alice = key("alice");
    let a = ip("192.0.2.1");
    let mut now = 0;
    assert_eq!(run_to_hold(&r, &alice, a, &mut now).await, MAX_CONSECUTIVE);
    let listed = r.lockouts(now).await.unwrap();
    assert_eq!(listed.users.len(), 1);
    assert_eq!(listed.users[0].key, alice);
    assert_eq!(listed.users[0].until_ms, None, "held: until cleared");
    // The help desk types her name as she spells it: folded like a login.
    assert!(r.clear_user(&key("ALICE"), now).await.unwrap());
    assert_eq!(r.check(&alice, a, now).await, None);
    assert!(r.lockouts(now).await.unwrap().users.is_empty());
    // Nothing left to clear: the CLI says so instead of claiming success.
    assert!(!r.clear_user(&alice, now).await.unwrap());
    assert!(!r.clear_user(&key("nobody"), now).await.unwrap());
    // The run starts again from zero, and is capped again at 100.
    assert_eq!(run_to_hold(&r, &alice, a, &mut now).await, MAX_CONSECUTIVE);
}

/// Fail `user`'s password from `a` until the hold, waiting out each
/// ordinary lock; how many failures it took (0: never held).
pub(super) async fn run_to_hold(r: &Regulator, user: &UserKey, a: IpAddr, now: &mut u64) -> u32 {
    for n in 1..=200u32 {
        while r.check(user, a, *now).await == Some(Block::User) && *now < 1_000 * 60 * MIN {
            *now += MIN;
        }
        let e = r.failed(Some(user), a, Factor::Password, *now).await;
        *now += 1;
        if e.user_held {
            return n;
        }
    }
    0
}

#[tokio::test]
async fn an_ordinary_lock_expires_by_itself_or_is_cleared_with_its_history() {
    let r = Regulator::new(limits());
    let alice = key("alice");
    let a = ip("192.0.2.1");
    for i in 0..5 {
        r.failed(Some(&alice), a, Factor::Password, i).await;
    }
    let listed = r.lockouts(10).await.unwrap();
    assert_eq!(listed.users.len(), 1);
    assert_eq!(listed.users[0].until_ms, Some(4 + 15 * MIN));
    assert_eq!(listed.users[0].consecutive, 5);
    // Still expires after login.lockout as before.
    assert_eq!(r.check(&alice, a, 4 + 15 * MIN).await, None);
    // Cleared: lock and failure history go, so one more typo does not lock.
    for i in 0..4 {
        r.failed(Some(&alice), a, Factor::Password, 20 * MIN + i)
            .await;
    }
    assert!(r.clear_user(&alice, 20 * MIN + 5).await.unwrap());
    assert!(
        !r.failed(Some(&alice), a, Factor::Password, 20 * MIN + 6)
            .await
            .user_locked
    );
    // Another realm's alice is someone else: not cleared by this one.
    let other = UserKey::new("students", "alice");
    for i in 0..5 {
        r.failed(Some(&other), a, Factor::Password, 30 * MIN + i)
            .await;
    }
    assert!(!r
        .clear_user(&UserKey::new("students", "bob"), 30 * MIN + 6)
        .await
        .unwrap());
    r.clear_user(&alice, 30 * MIN + 6).await.unwrap();
    assert_eq!(
        r.check(&other, ip("192.0.2.9"), 30 * MIN + 6).await,
        Some(Block::User)
    );
}

#[tokio::test]
async fn an_address_block_is_listed_and_cleared_by_its_bucket() {
    let r = Regulator::new(limits());
    let v6 = ip("2001:db8:1:2::5");
    for i in 0..20 {
        r.failed(None, v6, Factor::Password, i).await;
    }
    let listed = r.lockouts(30).await.unwrap();
    assert_eq!(listed.addresses.len(), 1);
    assert_eq!(listed.addresses[0].key.to_string(), "2001:db8:1:2::/64");
    // Any address of the /64 names the bucket.
    assert!(r.clear_ip(ip("2001:db8:1:2::ffff"), 30).await.unwrap());
    assert_eq!(r.check(&key("anyone"), v6, 31).await, None);
    assert!(!r.clear_ip(ip("192.0.2.77"), 31).await.unwrap());
}

#[tokio::test]
async fn a_held_account_survives_a_flood_of_names_and_sweeps() {
    let capacity = 100;
    let r = Regulator::with_capacity(limits(), capacity);
    let alice = key("alice");
    let a = ip("192.0.2.1");
    let mut now = 0;
    while !r
        .failed(Some(&alice), a, Factor::Password, now)
        .await
        .user_held
    {
        now += 16 * MIN;
        assert!(now < 1_000 * 16 * MIN, "never held");
    }
    // Days of fresh names: every other record is evictable or swept.
    for i in 0..20 * capacity as u32 {
        let from = IpAddr::V4(Ipv4Addr::from(0x0d00_0000 + i));
        let t = now + u64::from(i) * 20 * MIN;
        r.failed(Some(&key(&format!("junk{i}"))), from, Factor::Password, t)
            .await;
        r.sweep(t);
    }
    assert!(r.counts().0 <= capacity);
    assert_eq!(
        r.check(&alice, a, now + 1_000 * 24 * 60 * MIN).await,
        Some(Block::User)
    );
}

#[tokio::test]
async fn an_address_is_never_held_for_a_day() {
    // An office behind one NAT address: 150 typos spread over a day,
    // never 20 within a window, never a block.
    let r = Regulator::new(limits());
    let office = ip("192.0.2.50");
    for i in 0..150u64 {
        let e = r.failed(None, office, Factor::Password, i * 9 * MIN).await;
        assert!(!e.ip_blocked, "blocked after {i} typos");
    }
    assert_eq!(r.check(&key("anyone"), office, 150 * 9 * MIN).await, None);
}

#[tokio::test]
async fn a_run_is_remembered_across_windows_until_a_completed_login() {
    let r = Regulator::new(limits());
    let alice = key("alice");
    let a = ip("192.0.2.1");
    // 4 failures per window, forever under the per-window limit.
    let mut now = 0;
    for _ in 0..24 {
        for _ in 0..4 {
            r.failed(Some(&alice), a, Factor::Password, now).await;
            now += 1;
        }
        now += 11 * MIN;
        r.sweep(now);
    }
    // 96 so far: the 100th holds.
    let mut held = Vec::new();
    for i in 0..4 {
        held.push(
            r.failed(Some(&alice), a, Factor::Password, now + i)
                .await
                .user_held,
        );
    }
    assert_eq!(held, [false, false, false, true]);

    // A completed login ends the run.
    let bob = key("bob");
    for _ in 0..99 {
        r.failed(Some(&bob), a, Factor::Second, now).await;
        r.succeeded(&bob, Completed::Password, 0).await;
        now += 11 * MIN;
    }
    r.succeeded(&bob, Completed::TwoFactors, 0).await;
    assert!(!r.failed(Some(&bob), a, Factor::Second, now).await.user_held);
}

#[tokio::test]
async fn many_names_do_not_grow_the_map_and_cannot_unlock_a_locked_account() {
    let capacity = 1000;
    let r = Regulator::with_capacity(limits(), capacity);
    let alice = key("alice");
    let a = ip("192.0.2.1");
    for i in 0..5 {
        r.failed(Some(&alice), a, Factor::Password, i).await;
    }
    assert_eq!(r.check(&alice, a, 10).await, Some(Block::User));
    // Ten times the bound of fresh names, from fresh addresses.
    for i in 0..10 * capacity as u32 {
        let from = IpAddr::V4(Ipv4Addr::from(0x0b00_0000 + i));
        r.failed(Some(&key(&format!("junk{i}"))), from, Factor::Password, 20)
            .await;
    }
    let (users, ips) = r.counts();
    assert!(users <= capacity, "{users} user records");
    assert!(ips <= capacity, "{ips} address records");
    assert_eq!(
        r.check(&alice, a, 30).await,
        Some(Block::User),
        "eviction unlocked alice"
    );
}

#[tokio::test]
async fn a_map_full_of_locked_records_fails_closed_without_locking_out_everyone() {
    let capacity = 50;
    let r = Regulator::with_capacity(limits(), capacity);
    let fresh = |n: u32| IpAddr::V4(Ipv4Addr::from(0x0c00_0000 + n));
    let a = ip("192.0.2.1");
    for n in 0..capacity as u32 {
        for i in 0..5 {
            let from = fresh(n * 5 + i);
            r.failed(
                Some(&key(&format!("locked{n}"))),
                from,
                Factor::Password,
                i.into(),
            )
            .await;
        }
    }
    assert_eq!(r.counts().0, capacity);
    // A name with no room still meets the limit: counted in its slot.
    let victim = key("victim");
    for i in 0..5 {
        r.failed(
            Some(&victim),
            fresh(1000 + i),
            Factor::Password,
            10 + u64::from(i),
        )
        .await;
    }
    assert_eq!(r.check(&victim, a, 20).await, Some(Block::User));
    assert_eq!(r.counts().0, capacity);
    // Everyone else is still free (some may share the victim's slot).
    let mut free = 0;
    for i in 0..200 {
        if r.check(&key(&format!("other{i}")), a, 20).await.is_none() {
            free += 1;
        }
    }
    assert!(free >= 190, "only {free} of 200 others may log in");
    // When the locks expire, room comes back.
    r.failed(Some(&key("later")), fresh(2000), Factor::Password, 16 * MIN)
        .await;
    assert!(r.counts().0 <= capacity);
    assert_eq!(r.check(&key("locked0"), a, 16 * MIN).await, None);
}

#[tokio::test]
async fn a_burst_of_concurrent_attempts_is_admitted_only_up_to_the_limit() {
    let r = Regulator::new(limits());
    let alice = key("alice");
    let a = ip("192.0.2.1");
    // Five guesses at once, each still at the directory: the sixth waits
    // for none of them and is refused.
    let mut under_way = Vec::new();
    for _ in 0..5 {
        under_way.push(r.begin(&alice, a, 0).await.unwrap());
    }
    assert_eq!(r.begin(&alice, a, 0).await.err(), Some(Block::Busy));
    assert_eq!(Block::Busy.reason().as_str(), "too_many_at_once");
    // Bob on the same address is not held up by alice's burst.
    drop(r.begin(&key("bob"), a, 0).await.unwrap());
    // Four of them fail, one is abandoned (the client went away).
    for _ in 0..4 {
        r.failed(Some(&alice), a, Factor::Password, 1).await;
    }
    drop(under_way);
    // One more may try; while it does, nobody else.
    let last = r.begin(&alice, a, 2).await.unwrap();
    assert_eq!(r.begin(&alice, a, 2).await.err(), Some(Block::Busy));
    assert!(
        r.failed(Some(&alice), a, Factor::Password, 3)
            .await
            .user_locked
    );
    drop(last);
    assert_eq!(r.begin(&alice, a, 4).await.err(), Some(Block::User));
    // A reload does not inherit attempts that end in the old regulator.
    let fresh = key("fresh");
    let mut pending = Vec::new();
    for _ in 0..5 {
        pending.push(r.begin(&fresh, ip("192.0.2.3"), 5).await.unwrap());
    }
    let next = Regulator::new(limits()).inherit(&r);
    drop(pending);
    assert!(next.begin(&fresh, ip("192.0.2.3"), 6).await.is_ok());
}

#[tokio::test]
async fn an_address_may_not_run_more_attempts_at_once_than_its_limit_has_left() {
    let r = Regulator::new(limits());
    let a = ip("2001:db8:5:6::1");
    let mut under_way = Vec::new();
    for i in 0..20 {
        under_way.push(r.begin(&key(&format!("user{i}")), a, 0).await.unwrap());
    }
    // Another address of the same /64 shares the budget.
    assert_eq!(
        r.begin(&key("other"), ip("2001:db8:5:6::2"), 0).await.err(),
        Some(Block::Busy)
    );
    drop(under_way);
    assert!(r
        .begin(&key("other"), ip("2001:db8:5:6::2"), 0)
        .await
        .is_ok());
}

#[tokio::test]
async fn reload_keeps_locks_and_pace() {
    let r = Regulator::new(limits());
    let a = ip("2001:db8::1");
    for i in 0..5 {
        r.failed(Some(&key("alice")), a, Factor::Second, i).await;
    }
    r.note_check("staff", Duration::from_millis(80));
    let next = Regulator::new(limits()).inherit(&r);
    assert_eq!(next.check(&key("ALICE"), a, 10).await, Some(Block::User));
    assert_eq!(next.pace("staff"), Duration::from_millis(80));
    assert_eq!(next.pace("other"), DEFAULT_PACE);
}

#[tokio::test]
async fn pace_follows_the_directory_and_is_capped() {
    let r = Regulator::new(limits());
    r.note_check("staff", Duration::from_millis(40));
    for _ in 0..50 {
        r.note_check("staff", Duration::from_millis(120));
    }
    let p = r.pace("staff").as_millis();
    assert!((110..=120).contains(&p), "{p} ms");
    r.note_check("slow", Duration::from_secs(60));
    assert_eq!(r.pace("slow"), MAX_PACE);
}
