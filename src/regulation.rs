//! Regulation: lock a user after repeated failures and block an address
//! that fails too often (SECURITY.md "Throttling"). Counters live in memory
//! now; they move to the shared state store with Redis.
//!
//! - Users are counted per [`UserKey`]: realm and case-folded name, so
//!   `ALICE` and `alice` share one lock on a case-blind directory (LDAP/AD).
//! - Addresses are counted per [`IpBucket`]: an IPv4 address, or an IPv6 /64
//!   (one host is usually given a whole /64, so one address per bucket would
//!   let it rotate through 2^64 of them).
//! - Failures of every factor count towards one lock. A correct password
//!   never clears second-factor failures: only a login completed with two
//!   factors clears everything ([`Completed`]).
//! - NIST SP 800-63B: a run of consecutive failures never passes
//!   [`MAX_CONSECUTIVE`]; the failure that reaches it holds the account for
//!   [`HOLD`].
//! - Both maps are bounded ([`CAPACITY`]); see [`Table`] for why eviction
//!   cannot unlock anyone.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hash};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use parking_lot::Mutex;

use crate::config::model::LoginLimits;

/// NIST SP 800-63B §5.2.2: at most 100 consecutive failed attempts on one
/// account. Fixed: it is a ceiling, not a tuning knob.
pub const MAX_CONSECUTIVE: u32 = 100;

/// How long the account is held when a run reaches [`MAX_CONSECUTIVE`], and
/// how long a run is remembered without new failures. A day: at most 100
/// guesses per day and a bit, against 480 a day that 5-per-15-minutes allows.
pub const HOLD: Duration = Duration::from_secs(24 * 3600);

/// Records per map (users, addresses). Fixed: each record is at most a few
/// hundred bytes (key ≤ 256 bytes of name plus `user_failures` times), so
/// the worst case is tens of MiB; and a full map of *locked* records needs
/// more failed directory checks within one lockout than the gateway can run
/// (argon2 with bounded concurrency), so legitimate use never gets near it.
pub const CAPACITY: usize = 65_536;

/// Shared overflow records per map, used only when a map is full of locked
/// records (see [`Table`]).
const OVERFLOW_SLOTS: usize = 1024;

/// Realms whose check time is remembered (realm ids come from the config;
/// the bound is only a guard).
const MAX_PACED_REALMS: usize = 256;

/// Wait for a refused attempt before any check has been timed in its realm.
const DEFAULT_PACE: Duration = Duration::from_millis(50);

/// Longest wait for a refused attempt (a directory that hangs must not make
/// refusals hang too).
const MAX_PACE: Duration = Duration::from_secs(5);

/// Who is counted: a realm and a user name, case-folded. Two realms that
/// both hold `anna` are two people; `ANNA` and `anna` in one realm are one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserKey {
    realm: Box<str>,
    name: Box<str>,
}

impl UserKey {
    /// The key for `name` (as typed, or as the directory returned it) in `realm`.
    pub fn new(realm: &str, name: &str) -> UserKey {
        UserKey {
            realm: realm.into(),
            name: name.trim().to_lowercase().into(),
        }
    }
}

/// Which addresses share a counter: one IPv4 address, or one IPv6 /64
/// (IPv4-mapped IPv6 addresses count as the IPv4 address).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpBucket {
    /// One IPv4 address.
    V4(Ipv4Addr),
    /// The upper 64 bits of an IPv6 address.
    V6(u64),
}

impl From<IpAddr> for IpBucket {
    fn from(ip: IpAddr) -> IpBucket {
        match ip {
            IpAddr::V4(v4) => IpBucket::V4(v4),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpBucket::V4(v4),
                None => IpBucket::V6((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

/// Which step failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Factor {
    /// The password (login form, re-auth page, Basic credentials).
    Password,
    /// A one-time code, authenticator or token.
    Second,
}

/// What a successful attempt completed, and so what it may clear.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completed {
    /// A correct password: a login that needed only it, the re-auth page,
    /// Basic credentials. Clears password failures only.
    Password,
    /// A login completed with two factors. Clears everything.
    TwoFactors,
}

#[derive(Debug, Clone, Default)]
struct Record {
    /// Failures (time in ms, factor) within the window; never more than the limit.
    failures: VecDeque<(u64, Factor)>,
    /// Locked until (ms); 0 when never locked.
    locked_until: u64,
    /// Consecutive password failures since the run began.
    run_password: u32,
    /// Consecutive second-factor failures since the run began.
    run_second: u32,
    /// Last failure (ms): eviction order and run memory.
    last_failure: u64,
    /// Attempts admitted and not finished yet (a directory check under way).
    in_flight: u32,
}

/// What one failure did to a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Counted,
    Locked,
    Held,
}

impl Record {
    fn locked(&self, now: u64) -> bool {
        now < self.locked_until
    }

    fn prune(&mut self, now: u64, window: u64) {
        while self
            .failures
            .front()
            .is_some_and(|(t, _)| now.saturating_sub(*t) >= window)
        {
            self.failures.pop_front();
        }
    }

    fn run(&self) -> u32 {
        self.run_password.saturating_add(self.run_second)
    }

    fn fail(&mut self, now: u64, factor: Factor, rules: &Rules) -> Step {
        self.prune(now, rules.window);
        self.failures.push_back((now, factor));
        match factor {
            Factor::Password => self.run_password = self.run_password.saturating_add(1),
            Factor::Second => self.run_second = self.run_second.saturating_add(1),
        }
        self.last_failure = now;
        if rules.cap.is_some_and(|cap| self.run() >= cap) {
            // The hold ends the run: the next one starts from zero a day later.
            self.locked_until = now.saturating_add(rules.hold);
            self.failures.clear();
            self.run_password = 0;
            self.run_second = 0;
            return Step::Held;
        }
        if self.failures.len() >= rules.limit as usize {
            self.locked_until = now.saturating_add(rules.lockout);
            self.failures.clear();
            return Step::Locked;
        }
        Step::Counted
    }

    fn clear(&mut self, completed: Completed) {
        match completed {
            Completed::Password => {
                self.failures.retain(|(_, f)| *f != Factor::Password);
                self.run_password = 0;
            }
            Completed::TwoFactors => {
                self.failures.clear();
                self.run_password = 0;
                self.run_second = 0;
            }
        }
    }

    /// Whether one more attempt may start: the failures in the window plus
    /// the attempts already under way stay below the limit. Otherwise a
    /// burst of concurrent guesses would all pass the lock check before the
    /// first of them was counted.
    fn admits(&mut self, now: u64, rules: &Rules) -> bool {
        self.prune(now, rules.window);
        (self.failures.len() as u64 + u64::from(self.in_flight)) < u64::from(rules.limit)
    }

    /// Whether the record still matters: locked, failures in the window,
    /// or a run that has not been quiet for [`HOLD`].
    fn live(&mut self, now: u64, rules: &Rules) -> bool {
        self.prune(now, rules.window);
        self.locked(now)
            || self.in_flight > 0
            || !self.failures.is_empty()
            || (rules.cap.is_some()
                && self.run() > 0
                && now.saturating_sub(self.last_failure) < rules.hold)
    }
}

/// Limits for one map, in ms.
#[derive(Debug, Clone, Copy)]
struct Rules {
    limit: u32,
    /// The consecutive-failure cap: accounts only. An address has no
    /// "completed login" to end a run (an office behind one NAT address
    /// would be held for a day by a hundred typos spread over the day).
    cap: Option<u32>,
    window: u64,
    lockout: u64,
    hold: u64,
}

/// Where an admitted attempt was counted, so it is released there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Own,
    Slot(usize),
}

/// A bounded map of records.
///
/// When a new key arrives and the map is full, the map first drops records
/// that no longer matter, then the oldest *unlocked* records (by last
/// failure). A locked record is never evicted before it expires: filling the
/// map with new names cannot unlock anyone. If every record is locked, the
/// new key is counted in one of [`OVERFLOW_SLOTS`] shared records chosen by
/// a keyed hash (random per process), and [`Table::locked`] consults that
/// slot too: an attacker who saturates the map still meets a limit on every
/// name (fail closed), and a slot they lock affects about one name in 1024,
/// not everyone, and only names they cannot aim at (the hash key is secret).
#[derive(Debug, Clone)]
struct Table<K> {
    records: HashMap<K, Record>,
    overflow: Vec<Record>,
    hasher: RandomState,
    capacity: usize,
}

impl<K: Hash + Eq + Clone> Table<K> {
    fn new(capacity: usize) -> Table<K> {
        Table {
            records: HashMap::new(),
            overflow: vec![Record::default(); OVERFLOW_SLOTS],
            hasher: RandomState::new(),
            capacity: capacity.max(1),
        }
    }

    fn slot(&self, key: &K) -> usize {
        (self.hasher.hash_one(key) % OVERFLOW_SLOTS as u64) as usize
    }

    fn locked(&self, key: &K, now: u64) -> bool {
        self.records.get(key).is_some_and(|r| r.locked(now))
            || self.overflow[self.slot(key)].locked(now)
    }

    /// The record for `key`: its own (made if there is room, or room can be
    /// made), else its shared overflow slot.
    fn record(&mut self, key: &K, now: u64, rules: &Rules) -> (&mut Record, Place) {
        if !self.records.contains_key(key) && self.records.len() >= self.capacity {
            self.make_room(now, rules);
        }
        if self.records.contains_key(key) || self.records.len() < self.capacity {
            return (self.records.entry(key.clone()).or_default(), Place::Own);
        }
        let slot = self.slot(key);
        (&mut self.overflow[slot], Place::Slot(slot))
    }

    fn fail(&mut self, key: &K, now: u64, factor: Factor, rules: &Rules) -> Step {
        self.record(key, now, rules).0.fail(now, factor, rules)
    }

    /// Admit one attempt for `key` (see [`Record::admits`]); where it was counted.
    fn admit(&mut self, key: &K, now: u64, rules: &Rules) -> Option<Place> {
        if self.overflow[self.slot(key)].locked(now) {
            return None;
        }
        let (r, place) = self.record(key, now, rules);
        if r.locked(now) || !r.admits(now, rules) {
            return None;
        }
        r.in_flight += 1;
        Some(place)
    }

    /// An admitted attempt ended.
    fn release(&mut self, key: &K, place: Place) {
        let r = match place {
            Place::Own => self.records.get_mut(key),
            Place::Slot(i) => self.overflow.get_mut(i),
        };
        if let Some(r) = r {
            r.in_flight = r.in_flight.saturating_sub(1);
        }
    }

    /// Drop what no longer matters, then (if still full) the oldest unlocked
    /// records: a sixty-fourth of the map at once, so a stream of new names
    /// does not pay a full scan each.
    fn make_room(&mut self, now: u64, rules: &Rules) {
        self.sweep(now, rules);
        if self.records.len() < self.capacity {
            return;
        }
        let mut unlocked: Vec<(u64, K)> = self
            .records
            .iter()
            .filter(|(_, r)| !r.locked(now) && r.in_flight == 0)
            .map(|(k, r)| (r.last_failure, k.clone()))
            .collect();
        let batch = (self.capacity / 64).max(1);
        if unlocked.len() > batch {
            unlocked.select_nth_unstable_by_key(batch - 1, |(t, _)| *t);
            unlocked.truncate(batch);
        }
        for (_, k) in unlocked {
            self.records.remove(&k);
        }
    }

    fn clear(&mut self, key: &K, completed: Completed) {
        // Overflow slots are shared: one person's success clears no one else.
        if let Some(r) = self.records.get_mut(key) {
            r.clear(completed);
        }
    }

    fn without_in_flight(&self) -> Table<K> {
        let mut t = self.clone();
        for r in t.records.values_mut().chain(t.overflow.iter_mut()) {
            r.in_flight = 0;
        }
        t
    }

    fn sweep(&mut self, now: u64, rules: &Rules) {
        self.records.retain(|_, r| r.live(now, rules));
        for r in &mut self.overflow {
            if !r.live(now, rules) {
                *r = Record::default();
            }
        }
    }
}

/// Why a login is refused before the password is even checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Block {
    /// The user is locked.
    User,
    /// The client IP is blocked.
    Ip,
    /// As many attempts as the limit has left are already under way for
    /// this user or address.
    Busy,
}

impl Block {
    /// Reason for the audit log.
    pub fn reason(self) -> &'static str {
        match self {
            Block::User => "locked",
            Block::Ip => "ip_blocked",
            Block::Busy => "too_many_at_once",
        }
    }
}

/// What a recorded failure led to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Escalation {
    /// This failure locked the user.
    pub user_locked: bool,
    /// This failure ended a run of [`MAX_CONSECUTIVE`]: the user is held for [`HOLD`].
    pub user_held: bool,
    /// This failure blocked the IP.
    pub ip_blocked: bool,
}

impl Escalation {
    /// Reason for the `lockout` audit event, when the user was locked.
    pub fn lockout_reason(&self) -> Option<&'static str> {
        if self.user_held {
            Some("too_many_consecutive_failures")
        } else if self.user_locked {
            Some("too_many_failures")
        } else {
            None
        }
    }
}

/// An attempt under way (see [`Regulator::begin`]); ends when dropped, also
/// when the request is abandoned half-way.
#[derive(Debug)]
pub struct Attempt<'a> {
    regulator: &'a Regulator,
    user: UserKey,
    user_place: Place,
    ip: IpBucket,
    ip_place: Place,
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        self.regulator
            .users
            .lock()
            .release(&self.user, self.user_place);
        self.regulator.ips.lock().release(&self.ip, self.ip_place);
    }
}

/// Failure counters per user and per address, and how long a directory
/// check takes per realm (so refusals without a check take as long).
#[derive(Debug)]
pub struct Regulator {
    limits: LoginLimits,
    users: Mutex<Table<UserKey>>,
    ips: Mutex<Table<IpBucket>>,
    /// Moving average of directory check time (µs) per realm id.
    pace: Mutex<HashMap<String, u64>>,
}

impl Regulator {
    /// A regulator with `limits` and the fixed [`CAPACITY`].
    pub fn new(limits: LoginLimits) -> Regulator {
        Regulator::with_capacity(limits, CAPACITY)
    }

    /// A regulator whose maps hold at most `capacity` records each (tests).
    pub fn with_capacity(limits: LoginLimits, capacity: usize) -> Regulator {
        Regulator {
            limits,
            users: Mutex::new(Table::new(capacity)),
            ips: Mutex::new(Table::new(capacity)),
            pace: Mutex::default(),
        }
    }

    /// Take over the counters of `old` (config reload keeps lockouts).
    /// Attempts under way stay counted in `old`, where they end.
    pub fn inherit(self, old: &Regulator) -> Regulator {
        *self.users.lock() = old.users.lock().without_in_flight();
        *self.ips.lock() = old.ips.lock().without_in_flight();
        *self.pace.lock() = old.pace.lock().clone();
        self
    }

    fn rules(&self, limit: u32, cap: Option<u32>) -> Rules {
        Rules {
            limit,
            cap,
            window: self.limits.window.as_millis() as u64,
            lockout: self.limits.lockout.as_millis() as u64,
            hold: HOLD.as_millis() as u64,
        }
    }

    /// Whether an attempt for `user` from `ip` is refused outright (before
    /// the directory is asked, or a code checked).
    pub fn check(&self, user: &UserKey, ip: IpAddr, now_ms: u64) -> Option<Block> {
        if self.ips.lock().locked(&IpBucket::from(ip), now_ms) {
            return Some(Block::Ip);
        }
        if self.users.lock().locked(user, now_ms) {
            return Some(Block::User);
        }
        None
    }

    /// Start an attempt for `user` from `ip` that will ask the directory or
    /// check a code: refused when locked or blocked, or when the attempts
    /// already under way would use up what the limit has left. Count its
    /// failure with [`Regulator::failed`] before the [`Attempt`] is dropped.
    pub fn begin(&self, user: &UserKey, ip: IpAddr, now_ms: u64) -> Result<Attempt<'_>, Block> {
        let bucket = IpBucket::from(ip);
        let ip_rules = self.rules(self.limits.ip_failures, None);
        let user_rules = self.rules(self.limits.user_failures, Some(MAX_CONSECUTIVE));
        let ip_place = {
            let mut ips = self.ips.lock();
            if ips.locked(&bucket, now_ms) {
                return Err(Block::Ip);
            }
            ips.admit(&bucket, now_ms, &ip_rules).ok_or(Block::Busy)?
        };
        let user_place = {
            let mut users = self.users.lock();
            let locked = users.locked(user, now_ms);
            match users.admit(user, now_ms, &user_rules) {
                Some(place) => place,
                None => {
                    drop(users);
                    self.ips.lock().release(&bucket, ip_place);
                    return Err(if locked { Block::User } else { Block::Busy });
                }
            }
        };
        Ok(Attempt {
            regulator: self,
            user: user.clone(),
            user_place,
            ip: bucket,
            ip_place,
        })
    }

    /// Count a failure of `factor` for `user` (none when the input named
    /// nobody) from `ip`.
    pub fn failed(
        &self,
        user: Option<&UserKey>,
        ip: IpAddr,
        factor: Factor,
        now_ms: u64,
    ) -> Escalation {
        let ip_step = self.ips.lock().fail(
            &IpBucket::from(ip),
            now_ms,
            factor,
            &self.rules(self.limits.ip_failures, None),
        );
        let user_step = user.map(|u| {
            self.users.lock().fail(
                u,
                now_ms,
                factor,
                &self.rules(self.limits.user_failures, Some(MAX_CONSECUTIVE)),
            )
        });
        Escalation {
            user_locked: matches!(user_step, Some(Step::Locked | Step::Held)),
            user_held: user_step == Some(Step::Held),
            ip_blocked: matches!(ip_step, Step::Locked | Step::Held),
        }
    }

    /// A successful attempt for `user`: clears what `completed` may clear
    /// (never the address's failures, never a lock).
    pub fn succeeded(&self, user: &UserKey, completed: Completed) {
        self.users.lock().clear(user, completed);
    }

    /// Remember how long a directory check in `realm` took.
    pub fn note_check(&self, realm: &str, took: Duration) {
        let sample = took.min(MAX_PACE).as_micros() as u64;
        let mut pace = self.pace.lock();
        if let Some(avg) = pace.get_mut(realm) {
            // Exponential moving average, weight 1/8: follows a directory
            // that slows down within a few logins.
            *avg = (*avg * 7 + sample) / 8;
        } else if pace.len() < MAX_PACED_REALMS {
            pace.insert(realm.to_owned(), sample);
        }
    }

    /// How long a refused attempt in `realm` should take: what a directory
    /// check there takes lately.
    pub fn pace(&self, realm: &str) -> Duration {
        self.pace
            .lock()
            .get(realm)
            .map(|us| Duration::from_micros(*us))
            .unwrap_or(DEFAULT_PACE)
    }

    /// Take as long as a check in `realm` would, without asking the
    /// directory: a refused attempt is not told apart by its answer time,
    /// and costs the directory nothing (no account lockouts driven through
    /// the gateway). A sleep, not dummy hashing: the same time without
    /// spending CPU that a locked-out attacker could make us burn.
    pub async fn wait_like_check(&self, realm: &str) {
        tokio::time::sleep(self.pace(realm)).await;
    }

    /// Drop records with nothing left to remember.
    pub fn sweep(&self, now_ms: u64) {
        let users = self.rules(self.limits.user_failures, Some(MAX_CONSECUTIVE));
        let ips = self.rules(self.limits.ip_failures, None);
        self.users.lock().sweep(now_ms, &users);
        self.ips.lock().sweep(now_ms, &ips);
    }

    /// Records held (users, addresses), for tests and metrics.
    pub fn counts(&self) -> (usize, usize) {
        (
            self.users.lock().records.len(),
            self.ips.lock().records.len(),
        )
    }
}

#[cfg(test)]
mod tests {
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

    #[test]
    fn five_failures_lock_the_user_for_fifteen_minutes() {
        let r = Regulator::new(limits());
        let a = ip("192.0.2.1");
        for i in 0..4 {
            assert!(
                !r.failed(Some(&key("alice")), a, Factor::Password, i * 1000)
                    .user_locked
            );
        }
        let e = r.failed(Some(&key("alice")), a, Factor::Password, 5000);
        assert!(e.user_locked && !e.user_held);
        assert_eq!(e.lockout_reason(), Some("too_many_failures"));
        assert_eq!(r.check(&key("alice"), a, 6000), Some(Block::User));
        assert_eq!(r.check(&key("bob"), a, 6000), None);
        assert_eq!(r.check(&key("alice"), a, 5000 + 15 * MIN), None);
    }

    #[test]
    fn failures_outside_the_window_do_not_count() {
        let r = Regulator::new(limits());
        let a = ip("192.0.2.1");
        for i in 0..4 {
            r.failed(Some(&key("alice")), a, Factor::Password, i);
        }
        assert!(
            !r.failed(Some(&key("alice")), a, Factor::Password, 700_000)
                .user_locked
        );
        assert_eq!(r.check(&key("alice"), a, 700_001), None);
    }

    #[test]
    fn twenty_failures_block_the_ip_for_any_user() {
        let r = Regulator::new(limits());
        let a = ip("192.0.2.9");
        for i in 0..20u64 {
            r.failed(Some(&key(&format!("user{i}"))), a, Factor::Password, i);
        }
        assert_eq!(r.check(&key("someone"), a, 100), Some(Block::Ip));
        assert_eq!(r.check(&key("someone"), ip("192.0.2.10"), 100), None);
    }

    #[test]
    fn names_fold_case_and_realms_stay_apart() {
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

        let r = Regulator::new(limits());
        let a = ip("192.0.2.1");
        for (i, name) in ["ALICE", "Alice", "alice", "aLiCe", "ALIce"]
            .iter()
            .enumerate()
        {
            r.failed(Some(&key(name)), a, Factor::Password, i as u64);
        }
        assert_eq!(r.check(&key("alice"), a, 10), Some(Block::User));
        assert_eq!(r.check(&UserKey::new("school", "alice"), a, 10), None);
    }

    #[test]
    fn ipv6_addresses_of_one_slash_64_share_a_bucket() {
        let b = |s: &str| IpBucket::from(ip(s));
        assert_eq!(b("2001:db8:1:2::a"), b("2001:db8:1:2:ffff:ffff:ffff:ffff"));
        assert_ne!(b("2001:db8:1:2::a"), b("2001:db8:1:3::a"));
        assert_eq!(b("::ffff:192.0.2.7"), b("192.0.2.7"));
        assert_ne!(b("192.0.2.7"), b("192.0.2.8"));

        let r = Regulator::new(limits());
        for i in 0..20u64 {
            let addr = ip(&format!("2001:db8:1:2::{:x}", i + 1));
            r.failed(None, addr, Factor::Password, i);
        }
        assert_eq!(
            r.check(&key("x"), ip("2001:db8:1:2::beef"), 30),
            Some(Block::Ip)
        );
        assert_eq!(r.check(&key("x"), ip("2001:db8:1:3::1"), 30), None);
    }

    #[test]
    fn a_correct_password_never_clears_second_factor_failures() {
        let r = Regulator::new(limits());
        let a = ip("192.0.2.1");
        let alice = key("alice");
        // 4 wrong codes, the password again (a two-factor login's first
        // step clears nothing, a password-only login clears passwords only),
        // then the fifth wrong code locks.
        for i in 0..4 {
            r.failed(Some(&alice), a, Factor::Second, i);
        }
        r.succeeded(&alice, Completed::Password);
        assert!(r.failed(Some(&alice), a, Factor::Second, 10).user_locked);
    }

    #[test]
    fn a_password_success_clears_password_failures_and_two_factors_clear_all() {
        let r = Regulator::new(limits());
        let a = ip("192.0.2.1");
        let alice = key("alice");
        for i in 0..2 {
            r.failed(Some(&alice), a, Factor::Second, i);
            r.failed(Some(&alice), a, Factor::Password, i);
        }
        r.succeeded(&alice, Completed::Password);
        // Two code failures remain: three more lock.
        for i in 0..2 {
            assert!(
                !r.failed(Some(&alice), a, Factor::Password, 10 + i)
                    .user_locked
            );
        }
        r.succeeded(&alice, Completed::TwoFactors);
        for i in 0..4 {
            assert!(
                !r.failed(Some(&alice), a, Factor::Password, 20 + i)
                    .user_locked
            );
        }
        // A success never lifts a lock, nor clears the address.
        assert!(r.failed(Some(&alice), a, Factor::Password, 30).user_locked);
        r.succeeded(&alice, Completed::TwoFactors);
        assert_eq!(r.check(&alice, a, 31), Some(Block::User));
    }

    #[test]
    fn a_run_never_passes_one_hundred_consecutive_failures() {
        let r = Regulator::new(limits());
        let alice = key("alice");
        let mut now = 0;
        let mut failures = 0u32;
        let mut held_at = None;
        // An attacker who waits out every lock, from ever new addresses
        // (so only the user counter stops them); bounded at 1000 tries.
        for n in 0..1000u32 {
            let a = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n));
            if r.check(&alice, a, now).is_some() {
                now += MIN;
                continue;
            }
            failures += 1;
            let e = r.failed(Some(&alice), a, Factor::Password, now);
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
        // Held for a day, longer than a lockout; the sweep keeps it.
        r.sweep(held_at + 23 * 60 * MIN);
        assert_eq!(
            r.check(&alice, a, held_at + 23 * 60 * MIN),
            Some(Block::User)
        );
        assert_eq!(r.check(&alice, a, held_at + HOLD.as_millis() as u64), None);
    }

    #[test]
    fn an_address_is_never_held_for_a_day() {
        // An office behind one NAT address: 150 typos spread over a day,
        // never 20 within a window, never a block.
        let r = Regulator::new(limits());
        let office = ip("192.0.2.50");
        for i in 0..150u64 {
            let e = r.failed(None, office, Factor::Password, i * 9 * MIN);
            assert!(!e.ip_blocked, "blocked after {i} typos");
        }
        assert_eq!(r.check(&key("anyone"), office, 150 * 9 * MIN), None);
    }

    #[test]
    fn a_run_is_remembered_across_windows_until_a_completed_login() {
        let r = Regulator::new(limits());
        let alice = key("alice");
        let a = ip("192.0.2.1");
        // 4 failures per window, forever under the per-window limit.
        let mut now = 0;
        for _ in 0..24 {
            for _ in 0..4 {
                r.failed(Some(&alice), a, Factor::Password, now);
                now += 1;
            }
            now += 11 * MIN;
            r.sweep(now);
        }
        // 96 so far: the 100th holds.
        let held: Vec<bool> = (0..4)
            .map(|i| {
                r.failed(Some(&alice), a, Factor::Password, now + i)
                    .user_held
            })
            .collect();
        assert_eq!(held, [false, false, false, true]);

        // A completed login ends the run.
        let bob = key("bob");
        for _ in 0..99 {
            r.failed(Some(&bob), a, Factor::Second, now);
            r.succeeded(&bob, Completed::Password);
            now += 11 * MIN;
        }
        r.succeeded(&bob, Completed::TwoFactors);
        assert!(!r.failed(Some(&bob), a, Factor::Second, now).user_held);
    }

    #[test]
    fn many_names_do_not_grow_the_map_and_cannot_unlock_a_locked_account() {
        let capacity = 1000;
        let r = Regulator::with_capacity(limits(), capacity);
        let alice = key("alice");
        let a = ip("192.0.2.1");
        for i in 0..5 {
            r.failed(Some(&alice), a, Factor::Password, i);
        }
        assert_eq!(r.check(&alice, a, 10), Some(Block::User));
        // Ten times the bound of fresh names, from fresh addresses.
        for i in 0..10 * capacity as u32 {
            let from = IpAddr::V4(Ipv4Addr::from(0x0b00_0000 + i));
            r.failed(Some(&key(&format!("junk{i}"))), from, Factor::Password, 20);
        }
        let (users, ips) = r.counts();
        assert!(users <= capacity, "{users} user records");
        assert!(ips <= capacity, "{ips} address records");
        assert_eq!(
            r.check(&alice, a, 30),
            Some(Block::User),
            "eviction unlocked alice"
        );
    }

    #[test]
    fn a_map_full_of_locked_records_fails_closed_without_locking_out_everyone() {
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
                );
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
            );
        }
        assert_eq!(r.check(&victim, a, 20), Some(Block::User));
        assert_eq!(r.counts().0, capacity);
        // Everyone else is still free (some may share the victim's slot).
        let free = (0..200)
            .filter(|i| r.check(&key(&format!("other{i}")), a, 20).is_none())
            .count();
        assert!(free >= 190, "only {free} of 200 others may log in");
        // When the locks expire, room comes back.
        r.failed(Some(&key("later")), fresh(2000), Factor::Password, 16 * MIN);
        assert!(r.counts().0 <= capacity);
        assert_eq!(r.check(&key("locked0"), a, 16 * MIN), None);
    }

    #[test]
    fn a_burst_of_concurrent_attempts_is_admitted_only_up_to_the_limit() {
        let r = Regulator::new(limits());
        let alice = key("alice");
        let a = ip("192.0.2.1");
        // Five guesses at once, each still at the directory: the sixth waits
        // for none of them and is refused.
        let under_way: Vec<_> = (0..5).map(|_| r.begin(&alice, a, 0).unwrap()).collect();
        assert_eq!(r.begin(&alice, a, 0).err(), Some(Block::Busy));
        assert_eq!(Block::Busy.reason(), "too_many_at_once");
        // Bob on the same address is not held up by alice's burst.
        drop(r.begin(&key("bob"), a, 0).unwrap());
        // Four of them fail, one is abandoned (the client went away).
        for _ in 0..4 {
            r.failed(Some(&alice), a, Factor::Password, 1);
        }
        drop(under_way);
        // One more may try; while it does, nobody else.
        let last = r.begin(&alice, a, 2).unwrap();
        assert_eq!(r.begin(&alice, a, 2).err(), Some(Block::Busy));
        assert!(r.failed(Some(&alice), a, Factor::Password, 3).user_locked);
        drop(last);
        assert_eq!(r.begin(&alice, a, 4).err(), Some(Block::User));
        // A reload does not inherit attempts that end in the old regulator.
        let fresh = key("fresh");
        let pending: Vec<_> = (0..5)
            .map(|_| r.begin(&fresh, ip("192.0.2.3"), 5).unwrap())
            .collect();
        let next = Regulator::new(limits()).inherit(&r);
        drop(pending);
        assert!(next.begin(&fresh, ip("192.0.2.3"), 6).is_ok());
    }

    #[test]
    fn an_address_may_not_run_more_attempts_at_once_than_its_limit_has_left() {
        let r = Regulator::new(limits());
        let a = ip("2001:db8:5:6::1");
        let under_way: Vec<_> = (0..20)
            .map(|i| r.begin(&key(&format!("user{i}")), a, 0).unwrap())
            .collect();
        // Another address of the same /64 shares the budget.
        assert_eq!(
            r.begin(&key("other"), ip("2001:db8:5:6::2"), 0).err(),
            Some(Block::Busy)
        );
        drop(under_way);
        assert!(r.begin(&key("other"), ip("2001:db8:5:6::2"), 0).is_ok());
    }

    #[test]
    fn reload_keeps_locks_and_pace() {
        let r = Regulator::new(limits());
        let a = ip("2001:db8::1");
        for i in 0..5 {
            r.failed(Some(&key("alice")), a, Factor::Second, i);
        }
        r.note_check("staff", Duration::from_millis(80));
        let next = Regulator::new(limits()).inherit(&r);
        assert_eq!(next.check(&key("ALICE"), a, 10), Some(Block::User));
        assert_eq!(next.pace("staff"), Duration::from_millis(80));
        assert_eq!(next.pace("other"), DEFAULT_PACE);
    }

    #[test]
    fn pace_follows_the_directory_and_is_capped() {
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
}
