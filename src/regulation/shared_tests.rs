//! Two gateways, one set of lockouts: regulators sharing one state backend
//! (the memory backend, and a real redis-server started for the test) count
//! into the same records, see each other's locks, blocks and clears, and
//! lose no count when they fail at once.

use std::sync::Arc;

use async_trait::async_trait;

use super::*;
use crate::clock::ManualClock;
use crate::state::contract::TestRedis;
use crate::state::memory::MemoryBackend;
use crate::state::redis::RedisBackend;
use crate::state::StateBackend;

fn limits(user_failures: u32) -> LoginLimits {
    LoginLimits {
        user_failures,
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

/// A gateway's regulator on `state`.
fn gateway(state: &SharedState, user_failures: u32) -> Regulator {
    let mut r = Regulator::new(limits(user_failures));
    r.use_state(state.clone());
    r
}

/// One shared state of each kind this machine can run: the memory backend
/// always, Redis when redis-server is installed (else a message says so).
/// The `TestRedis` must outlive the test.
fn backends() -> Vec<(&'static str, SharedState, Option<TestRedis>)> {
    let memory: SharedState = Arc::new(MemoryBackend::new(ManualClock::starting_at(0)));
    let mut out = vec![("memory", memory, None)];
    match TestRedis::start() {
        Some(redis) => {
            let state: SharedState =
                Arc::new(RedisBackend::connect(&redis.url, Duration::from_secs(2), None).unwrap());
            out.push(("redis", state, Some(redis)));
        }
        None => eprintln!("redis-server is not installed: shared lockouts tested on memory only"),
    }
    out
}

#[tokio::test]
async fn five_wrong_passwords_spread_over_two_gateways_lock_the_account_on_both() {
    for (kind, state, _redis) in backends() {
        let (a, b) = (gateway(&state, 5), gateway(&state, 5));
        let from = ip("192.0.2.1");
        // Three on A, two on B, in any spelling of her name.
        for (i, (gw, name)) in [(&a, "alice"), (&b, "ALICE"), (&a, "alice"), (&b, "Alice")]
            .into_iter()
            .enumerate()
        {
            let e = gw
                .failed(Some(&key(name)), from, Factor::Password, i as u64)
                .await;
            assert!(!e.user_locked, "{kind}: failure {i} locked early");
            assert!(gw.begin(&key("alice"), from, 10).await.is_ok(), "{kind}");
        }
        let fifth = a
            .failed(Some(&key("alice")), from, Factor::Password, 5)
            .await;
        assert!(fifth.user_locked, "{kind}: the fifth failure locks");
        for gw in [&a, &b] {
            assert_eq!(
                gw.check(&key("alice"), from, 6).await,
                Some(Block::User),
                "{kind}"
            );
            assert_eq!(
                gw.begin(&key("alice"), ip("198.51.100.7"), 6).await.err(),
                Some(Block::User),
                "{kind}: from any address"
            );
            assert_eq!(gw.check(&key("bob"), from, 6).await, None, "{kind}");
        }
        // B lists what A locked, with the name as folded, never the key.
        let listed = b.lockouts(6).await.unwrap();
        assert_eq!(listed.users.len(), 1, "{kind}");
        assert_eq!(listed.users[0].key, key("alice"), "{kind}");
        assert_eq!(listed.users[0].until_ms, Some(5 + 15 * MIN), "{kind}");
        // The lock ends by itself on both.
        assert_eq!(b.check(&key("alice"), from, 5 + 15 * MIN).await, None);
        assert_eq!(a.check(&key("alice"), from, 5 + 15 * MIN).await, None);
    }
}

#[tokio::test]
async fn an_address_blocked_through_one_gateway_is_blocked_on_the_other_until_cleared() {
    for (kind, state, _redis) in backends() {
        let (a, b) = (gateway(&state, 5), gateway(&state, 5));
        let from = ip("2001:db8:7:7::1");
        let mut blocked = false;
        for i in 0..20u64 {
            let gw = if i % 2 == 0 { &a } else { &b };
            blocked |= gw
                .failed(Some(&key(&format!("user{i}"))), from, Factor::Password, i)
                .await
                .ip_blocked;
        }
        assert!(blocked, "{kind}: the twentieth failure blocks the /64");
        let neighbour = ip("2001:db8:7:7::2");
        for gw in [&a, &b] {
            assert_eq!(
                gw.check(&key("someone"), neighbour, 30).await,
                Some(Block::Ip),
                "{kind}"
            );
            assert_eq!(
                gw.begin(&key("someone"), neighbour, 30).await.err(),
                Some(Block::Ip),
                "{kind}"
            );
        }
        let listed = a.lockouts(30).await.unwrap();
        assert_eq!(listed.addresses.len(), 1, "{kind}");
        assert_eq!(listed.addresses[0].key.to_string(), "2001:db8:7:7::/64");
        // Cleared on B: free on A.
        assert!(b.clear_ip(neighbour, 31).await.unwrap(), "{kind}");
        assert_eq!(a.check(&key("someone"), from, 32).await, None, "{kind}");
        assert!(!a.clear_ip(from, 32).await.unwrap(), "{kind}: nothing left");
        assert!(a.lockouts(32).await.unwrap().addresses.is_empty());
    }
}

#[tokio::test]
async fn a_lock_cleared_through_one_gateway_is_cleared_on_the_other() {
    for (kind, state, _redis) in backends() {
        let (a, b) = (gateway(&state, 5), gateway(&state, 5));
        let from = ip("192.0.2.2");
        for i in 0..5 {
            a.failed(Some(&key("alice")), from, Factor::Second, i).await;
        }
        assert_eq!(b.check(&key("alice"), from, 10).await, Some(Block::User));
        assert!(b.clear_user(&key("ALICE"), 10).await.unwrap(), "{kind}");
        assert_eq!(a.check(&key("alice"), from, 11).await, None, "{kind}");
        assert!(a.lockouts(11).await.unwrap().users.is_empty(), "{kind}");
        // Cleared with its history: four more failures do not lock.
        for i in 0..4 {
            assert!(
                !a.failed(Some(&key("alice")), from, Factor::Password, 12 + i)
                    .await
                    .user_locked,
                "{kind}"
            );
        }
        // A completed login on B ends A's run and failures.
        b.succeeded(&key("alice"), Completed::TwoFactors, 20).await;
        assert!(
            !a.failed(Some(&key("alice")), from, Factor::Password, 21)
                .await
                .user_locked,
            "{kind}: the success on B cleared the four"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_tasks_on_two_gateways_failing_at_once_lose_no_count() {
    for (kind, state, _redis) in backends() {
        // Forty failures lock: exactly the fortieth, wherever it lands.
        let gateways = [Arc::new(gateway(&state, 40)), Arc::new(gateway(&state, 40))];
        let tasks: Vec<_> = (0..20)
            .map(|t| {
                let gw = gateways[t % 2].clone();
                tokio::spawn(async move {
                    let mut locked = 0;
                    for n in 0..2u64 {
                        // Each from its own address: only the user's record
                        // is contended (the address limit is 20).
                        let from = IpAddr::from([10, 0, t as u8, n as u8]);
                        if gw
                            .failed(Some(&key("alice")), from, Factor::Password, 100)
                            .await
                            .user_locked
                        {
                            locked += 1;
                        }
                    }
                    locked
                })
            })
            .collect();
        let mut locks = 0;
        for t in tasks {
            locks += t.await.unwrap();
        }
        assert_eq!(locks, 1, "{kind}: the fortieth failure, and only it, locks");
        let listed = gateways[0].lockouts(101).await.unwrap();
        assert_eq!(listed.users.len(), 1, "{kind}");
        assert_eq!(listed.users[0].consecutive, 40, "{kind}: no count lost");
    }
}

#[tokio::test]
async fn a_hold_survives_a_restart_and_only_an_administrator_lifts_it_on_every_gateway() {
    for (kind, state, _redis) in backends() {
        let a = gateway(&state, 5);
        let from = ip("192.0.2.3");
        let mut now = 0;
        assert_eq!(
            super::tests::run_to_hold(&a, &key("alice"), from, &mut now).await,
            MAX_CONSECUTIVE,
            "{kind}"
        );
        // A gateway started later (or A after a restart) sees the hold, a
        // year on: it does not expire by itself.
        let b = gateway(&state, 5);
        let later = now + 365 * 24 * 60 * MIN;
        assert_eq!(b.check(&key("alice"), from, later).await, Some(Block::User));
        let listed = b.lockouts(later).await.unwrap();
        assert_eq!(listed.users[0].until_ms, None, "{kind}: held until cleared");
        assert!(b.clear_user(&key("alice"), later).await.unwrap(), "{kind}");
        assert_eq!(a.check(&key("alice"), from, later).await, None, "{kind}");
    }
}

#[tokio::test]
async fn user_records_are_keyed_by_a_hash_and_name_nobody_in_the_key() {
    for (kind, state, _redis) in backends() {
        let a = gateway(&state, 5);
        let evil = "*\r\nFLUSHALL\r\n ALICE\u{200B} ";
        for i in 0..5 {
            a.failed(Some(&key(evil)), ip("192.0.2.4"), Factor::Password, i)
                .await;
        }
        let keys = state.keys(shared::USERS, 10).await.unwrap();
        assert_eq!(keys.len(), 1, "{kind}");
        let hash = keys[0].strip_prefix(shared::USERS).unwrap();
        assert!(
            hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
            "{kind}: {}",
            keys[0]
        );
        let listed = a.lockouts(10).await.unwrap();
        assert_eq!(listed.users[0].key.name(), "* flushall alice", "{kind}");
        assert_eq!(
            state.keys(shared::ADDRESSES, 10).await.unwrap(),
            ["portvakt:li:4:192.0.2.4"]
        );
    }
}

/// A state backend that never answers.
#[derive(Debug)]
struct Down;

#[async_trait]
impl StateBackend for Down {
    fn kind(&self) -> &'static str {
        "redis"
    }
    async fn get(&self, _: &str) -> Result<Option<Vec<u8>>, StateError> {
        Err(StateError::Unavailable("down".into()))
    }
    async fn put(&self, _: &str, _: &[u8], _: Duration) -> Result<(), StateError> {
        Err(StateError::Unavailable("down".into()))
    }
    async fn put_new(&self, _: &str, _: &[u8], _: Duration) -> Result<bool, StateError> {
        Err(StateError::Unavailable("down".into()))
    }
    async fn take(&self, _: &str) -> Result<Option<Vec<u8>>, StateError> {
        Err(StateError::Unavailable("down".into()))
    }
    async fn delete(&self, _: &str) -> Result<bool, StateError> {
        Err(StateError::Unavailable("down".into()))
    }
    async fn swap(
        &self,
        _: &str,
        _: &[u8],
        _: Option<&[u8]>,
        _: Duration,
    ) -> Result<bool, StateError> {
        Err(StateError::Unavailable("down".into()))
    }
    async fn admit(&self, _: &str, _: u64, _: Duration, _: u32) -> Result<bool, StateError> {
        Err(StateError::Unavailable("down".into()))
    }
    async fn keys(&self, _: &str, _: usize) -> Result<Vec<String>, StateError> {
        Err(StateError::Unavailable("down".into()))
    }
    async fn ping(&self) -> Result<(), StateError> {
        Err(StateError::Unavailable("down".into()))
    }
}

#[tokio::test]
async fn a_state_that_does_not_answer_refuses_the_login_instead_of_assuming_no_lock() {
    let down: SharedState = Arc::new(Down);
    let r = gateway(&down, 5);
    let from = ip("192.0.2.5");
    assert_eq!(
        r.check(&key("alice"), from, 0).await,
        Some(Block::Unavailable)
    );
    assert_eq!(
        r.begin(&key("alice"), from, 0).await.err(),
        Some(Block::Unavailable)
    );
    assert_eq!(Block::Unavailable.reason().as_str(), "state_unavailable");
    // Nothing to count into, nothing to list or clear: errors, not "none".
    assert!(
        !r.failed(Some(&key("alice")), from, Factor::Password, 0)
            .await
            .user_locked
    );
    assert!(r.lockouts(0).await.is_err());
    assert!(r.clear_user(&key("alice"), 0).await.is_err());
    // And a real Redis that goes away: refused within the timeout.
    let Some(redis) = TestRedis::start() else {
        eprintln!("redis-server is not installed: outage tested with a stub only");
        return;
    };
    let state: SharedState =
        Arc::new(RedisBackend::connect(&redis.url, Duration::from_millis(300), None).unwrap());
    let r = gateway(&state, 5);
    assert_eq!(r.check(&key("alice"), from, 0).await, None);
    drop(redis);
    let started = std::time::Instant::now();
    assert_eq!(
        r.check(&key("alice"), from, 0).await,
        Some(Block::Unavailable)
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(
        r.begin(&key("alice"), from, 0).await.err(),
        Some(Block::Unavailable)
    );
}

/// A state that answers reads but takes no writes (Redis at `maxmemory`
/// with `noeviction`).
#[derive(Debug)]
struct Full(MemoryBackend);

#[async_trait]
impl StateBackend for Full {
    fn kind(&self) -> &'static str {
        "redis"
    }
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StateError> {
        self.0.get(key).await
    }
    async fn put(&self, _: &str, _: &[u8], _: Duration) -> Result<(), StateError> {
        Err(StateError::Full(0))
    }
    async fn put_new(&self, _: &str, _: &[u8], _: Duration) -> Result<bool, StateError> {
        Err(StateError::Full(0))
    }
    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StateError> {
        self.0.take(key).await
    }
    async fn delete(&self, key: &str) -> Result<bool, StateError> {
        self.0.delete(key).await
    }
    async fn swap(
        &self,
        _: &str,
        _: &[u8],
        _: Option<&[u8]>,
        _: Duration,
    ) -> Result<bool, StateError> {
        Err(StateError::Full(0))
    }
    async fn admit(&self, _: &str, _: u64, _: Duration, _: u32) -> Result<bool, StateError> {
        Err(StateError::Full(0))
    }
    async fn keys(&self, prefix: &str, limit: usize) -> Result<Vec<String>, StateError> {
        self.0.keys(prefix, limit).await
    }
    async fn ping(&self) -> Result<(), StateError> {
        Ok(())
    }
}

#[tokio::test]
async fn a_state_too_full_to_count_does_not_buy_uncounted_guesses() {
    let full: SharedState = Arc::new(Full(MemoryBackend::new(ManualClock::starting_at(0))));
    let r = gateway(&full, 5);
    let from = ip("192.0.2.6");
    for i in 0..4 {
        assert!(r.begin(&key("alice"), from, i).await.is_ok());
        r.failed(Some(&key("alice")), from, Factor::Password, i)
            .await;
    }
    // Counted on this gateway instead: the fifth locks here.
    assert!(
        r.failed(Some(&key("alice")), from, Factor::Password, 4)
            .await
            .user_locked
    );
    assert_eq!(r.check(&key("alice"), from, 5).await, Some(Block::User));
    assert_eq!(
        r.begin(&key("alice"), from, 5).await.err(),
        Some(Block::User)
    );
    assert_eq!(r.lockouts(5).await.unwrap().users.len(), 1);
    assert!(r.clear_user(&key("alice"), 5).await.unwrap());
    assert_eq!(r.check(&key("alice"), from, 6).await, None);
}
