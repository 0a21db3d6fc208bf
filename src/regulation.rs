//! Regulation: lock a user after repeated failures and block an address
//! that fails too often (SECURITY.md "Throttling").
//!
//! Where the counters live: in this process's bounded tables when the
//! state backend is memory (one gateway), or in the shared state backend
//! when there is one ([`Regulator::use_state`], Redis): then five wrong
//! passwords spread over two gateways lock the account on both, and a
//! block or a clear made through one holds on all (`shared.rs`). What stays
//! per process either way: the attempts under way ([`Regulator::begin`]:
//! a guard that must end when the request does, even if the process dies)
//! and the pace of directory checks. A shared backend that does not answer
//! fails closed: [`Block::Unavailable`], the login is refused.
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
//!   [`MAX_CONSECUTIVE`]; the failure that reaches it holds the account
//!   until an administrator clears it ([`Regulator::clear_user`], behind
//!   `portvakt lockouts clear`). The hold has no expiry; in memory a
//!   restart also clears it (a reload keeps it); in the shared state it
//!   outlives restarts (kept for [`shared::HELD_TTL`] without news).
//! - Ordinary locks (`login.user_failures` in `login.window`) and address
//!   blocks expire after `login.lockout`.
//! - Both maps are bounded ([`CAPACITY`]); see `table.rs` for why eviction
//!   cannot unlock anyone, held or locked.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use parking_lot::Mutex;

use crate::audit::Reason;
use crate::config::model::LoginLimits;
use crate::state::{SharedState, StateError};

mod shared;
mod table;

pub use shared::HELD_TTL;

use table::{Place, Rules, Step, Table};

/// NIST SP 800-63B §5.2.2: at most 100 consecutive failed attempts on one
/// account. Fixed: it is a ceiling, not a tuning knob.
pub const MAX_CONSECUTIVE: u32 = 100;

/// How long a run of consecutive failures is remembered without new
/// failures. (The hold that ends a run of [`MAX_CONSECUTIVE`] does not
/// expire: see [`Regulator::clear_user`].)
pub const HOLD: Duration = Duration::from_secs(24 * 3600);

/// Records per map (users, addresses). Fixed: each record is at most a few
/// hundred bytes (key ≤ 256 bytes of name plus `user_failures` times), so
/// the worst case is tens of MiB; and a full map of *locked* records needs
/// more failed directory checks within one lockout than the gateway can run
/// (argon2 with bounded concurrency), so legitimate use never gets near it.
pub const CAPACITY: usize = 65_536;

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
            name: fold(name).into(),
        }
    }

    /// The realm id.
    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// The folded name (what the counters are kept under).
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Longest folded name kept in a key (bytes): names longer than any real
/// account share a key by their first [`MAX_KEY_NAME`] bytes, which can only
/// lock more, never less, and keeps every record small.
const MAX_KEY_NAME: usize = 256;

/// A name as a case-blind directory compares it, or coarser: invisible
/// characters dropped, NFKC (width and compatibility forms: `ａｌｉｃｅ`),
/// lower case, runs of white space as one space and none at the ends — the
/// steps of LDAP's string preparation (RFC 4518) that matter here; AD
/// ignores case and width too. Coarser is safe: two names that fold alike
/// share a lock; a spelling that the directory takes for `alice` but that
/// folded differently would be a fresh set of guesses on her account.
fn fold(name: &str) -> String {
    let visible: String = name.chars().filter(|c| !ignorable(*c)).collect();
    let nfkc = icu_normalizer::ComposingNormalizerBorrowed::new_nfkc().normalize(&visible);
    let lower = nfkc.to_lowercase();
    let mut out = String::with_capacity(lower.len().min(MAX_KEY_NAME));
    for word in lower.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    if out.len() > MAX_KEY_NAME {
        let mut end = MAX_KEY_NAME;
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        out.truncate(end);
    }
    out
}

/// Characters that string preparation maps to nothing (RFC 4518 §2.2, and
/// Unicode's default-ignorable code points): soft hyphen, zero-width
/// characters, joiners, direction marks, variation selectors, tags, and
/// controls that are not white space.
fn ignorable(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}'
        | '\u{17B5}' | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}'
        | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{206F}' | '\u{3164}'
        | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}' | '\u{FFA0}' | '\u{FFF0}'..='\u{FFFB}'
        | '\u{1BCA0}'..='\u{1BCA3}' | '\u{1D173}'..='\u{1D17A}' | '\u{E0000}'..='\u{E0FFF}')
        || (c.is_control() && !c.is_whitespace())
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

impl std::fmt::Display for IpBucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IpBucket::V4(v4) => write!(f, "{v4}"),
            IpBucket::V6(prefix) => {
                let net = std::net::Ipv6Addr::from(u128::from(*prefix) << 64);
                write!(f, "{net}/64")
            }
        }
    }
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
    /// The shared state did not answer, so whether a lock stands is not
    /// known: refused (fail closed), never "no lock known, go ahead".
    Unavailable,
}

impl Block {
    /// Reason for the audit log.
    pub fn reason(self) -> Reason {
        match self {
            Block::User => Reason::Locked,
            Block::Ip => Reason::IpBlocked,
            Block::Busy => Reason::TooManyAtOnce,
            Block::Unavailable => Reason::StateUnavailable,
        }
    }
}

/// What a recorded failure led to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Escalation {
    /// This failure locked the user.
    pub user_locked: bool,
    /// This failure ended a run of [`MAX_CONSECUTIVE`]: the user is held
    /// until an administrator clears it.
    pub user_held: bool,
    /// This failure blocked the IP.
    pub ip_blocked: bool,
}

impl Escalation {
    /// Reason for the `lockout` audit event, when the user was locked.
    pub fn lockout_reason(&self) -> Option<Reason> {
        if self.user_held {
            Some(Reason::TooManyConsecutiveFailures)
        } else if self.user_locked {
            Some(Reason::TooManyFailures)
        } else {
            None
        }
    }
}

/// One locked or held record, as [`Regulator::lockouts`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Locked<K> {
    /// Whose: a [`UserKey`] or an [`IpBucket`].
    pub key: K,
    /// Locked until (ms since the epoch); `None`: held until cleared.
    pub until_ms: Option<u64>,
    /// Consecutive failures in the current run.
    pub consecutive: u32,
}

/// Everything locked, held or blocked right now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lockouts {
    /// Locked or held users, by realm and name.
    pub users: Vec<Locked<UserKey>>,
    /// Blocked address buckets.
    pub addresses: Vec<Locked<IpBucket>>,
    /// Shared overflow slots that are locked (only when a map was full; a
    /// clear of a name also clears its slot).
    pub overflow_slots: usize,
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
    /// Where the records live when they are shared with other gateways;
    /// `None`: in `users` and `ips` (which then count only the attempts
    /// under way when this is set).
    state: Option<SharedState>,
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
            state: None,
        }
    }

    /// Keep the failure records in `state`, shared with every gateway that
    /// uses it, instead of this process's tables. Set once, before the
    /// regulator is used (a reload's [`Regulator::inherit`] keeps it).
    pub fn use_state(&mut self, state: SharedState) {
        self.state = Some(state);
    }

    /// Whether the records are in a shared state backend.
    pub fn is_shared(&self) -> bool {
        self.state.is_some()
    }

    /// Take over the counters of `old` (config reload keeps lockouts).
    /// Attempts under way stay counted in `old`, where they end.
    pub fn inherit(mut self, old: &Regulator) -> Regulator {
        *self.users.lock() = old.users.lock().without_in_flight();
        *self.ips.lock() = old.ips.lock().without_in_flight();
        *self.pace.lock() = old.pace.lock().clone();
        if self.state.is_none() {
            self.state = old.state.clone();
        }
        self
    }

    fn user_rules(&self) -> Rules {
        self.rules(self.limits.user_failures, Some(MAX_CONSECUTIVE))
    }

    fn ip_rules(&self) -> Rules {
        self.rules(self.limits.ip_failures, None)
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
    /// the directory is asked, or a code checked). With a shared state that
    /// does not answer: [`Block::Unavailable`].
    pub async fn check(&self, user: &UserKey, ip: IpAddr, now_ms: u64) -> Option<Block> {
        let bucket = IpBucket::from(ip);
        // With a shared state the local tables hold only what could not be
        // counted there (see `failed`): consulted either way.
        if self.ips.lock().locked(&bucket, now_ms) {
            return Some(Block::Ip);
        }
        if self.users.lock().locked(user, now_ms) {
            return Some(Block::User);
        }
        let Some(state) = &self.state else {
            return None;
        };
        match shared::read(&**state, &shared::ip_key(&bucket)).await {
            Ok(Some(s)) if s.record.locked(now_ms) => return Some(Block::Ip),
            Ok(_) => {}
            Err(e) => return Some(unavailable(&e)),
        }
        match shared::read(&**state, &shared::user_key(user)).await {
            Ok(Some(s)) if s.record.locked(now_ms) => Some(Block::User),
            Ok(_) => None,
            Err(e) => Some(unavailable(&e)),
        }
    }

    /// Start an attempt for `user` from `ip` that will ask the directory or
    /// check a code: refused when locked or blocked, or when the attempts
    /// already under way would use up what the limit has left. Count its
    /// failure with [`Regulator::failed`] before the [`Attempt`] is dropped.
    ///
    /// With a shared state, the failures are the shared ones and the
    /// attempts under way are this gateway's own (each gateway bounds its
    /// own burst; every attempt's failure is counted in the shared record).
    pub async fn begin(
        &self,
        user: &UserKey,
        ip: IpAddr,
        now_ms: u64,
    ) -> Result<Attempt<'_>, Block> {
        let bucket = IpBucket::from(ip);
        let ip_rules = self.ip_rules();
        let user_rules = self.user_rules();
        let (ip_seen, user_seen) = match &self.state {
            None => (0, 0),
            Some(state) => {
                let seen = |s: Option<shared::Stored>, rules: &Rules, block: Block| match s {
                    Some(s) if s.record.locked(now_ms) => Err(block),
                    Some(s) => Ok(s.record.failures_within(now_ms, rules.window)),
                    None => Ok(0),
                };
                let ip_record = shared::read(&**state, &shared::ip_key(&bucket))
                    .await
                    .map_err(|e| unavailable(&e))?;
                let ip_seen = seen(ip_record, &ip_rules, Block::Ip)?;
                let user_record = shared::read(&**state, &shared::user_key(user))
                    .await
                    .map_err(|e| unavailable(&e))?;
                (ip_seen, seen(user_record, &user_rules, Block::User)?)
            }
        };
        let ip_place = {
            let mut ips = self.ips.lock();
            if ips.locked(&bucket, now_ms) {
                return Err(Block::Ip);
            }
            ips.admit(&bucket, now_ms, &ip_rules, ip_seen)
                .ok_or(Block::Busy)?
        };
        let user_place = {
            let mut users = self.users.lock();
            let locked = users.locked(user, now_ms);
            match users.admit(user, now_ms, &user_rules, user_seen) {
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
    /// nobody) from `ip`. A failure the shared state does not take (down,
    /// full, or contended past [`shared`]'s retries) is counted in this
    /// process's own tables instead, which every check here consults too:
    /// filling Redis up cannot buy unlimited uncounted guesses.
    pub async fn failed(
        &self,
        user: Option<&UserKey>,
        ip: IpAddr,
        factor: Factor,
        now_ms: u64,
    ) -> Escalation {
        let bucket = IpBucket::from(ip);
        let (ip_step, user_step) = match &self.state {
            None => {
                let ip_step = self
                    .ips
                    .lock()
                    .fail(&bucket, now_ms, factor, &self.ip_rules());
                let user_step = user.map(|u| {
                    self.users
                        .lock()
                        .fail(u, now_ms, factor, &self.user_rules())
                });
                (ip_step, user_step)
            }
            Some(state) => {
                let rules = self.ip_rules();
                let ip_step = shared::change(
                    &**state,
                    &shared::ip_key(&bucket),
                    shared::Stored::default,
                    now_ms,
                    &rules,
                    |r| r.fail(now_ms, factor, &rules),
                )
                .await
                .unwrap_or_else(|e| {
                    uncounted(&e);
                    self.ips.lock().fail(&bucket, now_ms, factor, &rules)
                });
                let user_step = match user {
                    None => None,
                    Some(u) => {
                        let rules = self.user_rules();
                        let fresh = || shared::Stored {
                            realm: Some(u.realm().to_owned()),
                            name: Some(u.name().to_owned()),
                            ..shared::Stored::default()
                        };
                        let step = shared::change(
                            &**state,
                            &shared::user_key(u),
                            fresh,
                            now_ms,
                            &rules,
                            |r| r.fail(now_ms, factor, &rules),
                        )
                        .await
                        .unwrap_or_else(|e| {
                            uncounted(&e);
                            self.users.lock().fail(u, now_ms, factor, &rules)
                        });
                        Some(step)
                    }
                };
                (ip_step, user_step)
            }
        };
        Escalation {
            user_locked: matches!(user_step, Some(Step::Locked | Step::Held)),
            user_held: user_step == Some(Step::Held),
            ip_blocked: matches!(ip_step, Step::Locked | Step::Held),
        }
    }

    /// A successful attempt for `user`: clears what `completed` may clear
    /// (never the address's failures, never a lock).
    pub async fn succeeded(&self, user: &UserKey, completed: Completed, now_ms: u64) {
        let Some(state) = &self.state else {
            self.users.lock().clear(user, completed);
            return;
        };
        let key = shared::user_key(user);
        // Nothing recorded: nothing to clear, and no record to create.
        match shared::read(&**state, &key).await {
            Ok(None) => return,
            Ok(Some(_)) => {}
            Err(e) => {
                tracing::warn!(error = %e, "shared state: a success could not clear failures");
                return;
            }
        }
        let rules = self.user_rules();
        let cleared = shared::change(
            &**state,
            &key,
            shared::Stored::default,
            now_ms,
            &rules,
            |r| r.clear(completed),
        )
        .await;
        if let Err(e) = cleared {
            tracing::warn!(error = %e, "shared state: a success could not clear failures");
        }
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

    /// Every user locked or held and every address blocked at `now_ms`,
    /// users sorted by realm and name (for `portvakt lockouts list`); with
    /// a shared state, those of every gateway.
    pub async fn lockouts(&self, now_ms: u64) -> Result<Lockouts, StateError> {
        let mut out = Lockouts::default();
        {
            let users = self.users.lock();
            out.users = listed(&users, now_ms);
            out.overflow_slots = users.locked_slots(now_ms);
        }
        {
            let ips = self.ips.lock();
            out.addresses = listed(&ips, now_ms);
            out.overflow_slots += ips.locked_slots(now_ms);
        }
        if let Some(state) = &self.state {
            for key in state.keys(shared::USERS, shared::LIST_LIMIT).await? {
                let Some(s) = shared::read(&**state, &key).await? else {
                    continue;
                };
                if let (Some(realm), Some(name), true) = (s.realm, s.name, s.record.locked(now_ms))
                {
                    out.users.push(Locked {
                        key: UserKey {
                            realm: realm.into(),
                            name: name.into(),
                        },
                        until_ms: (!s.record.held()).then(|| s.record.locked_until()),
                        consecutive: s.record.consecutive(),
                    });
                }
            }
            for key in state.keys(shared::ADDRESSES, shared::LIST_LIMIT).await? {
                let Some(bucket) = shared::bucket_of(&key) else {
                    continue;
                };
                let Some(s) = shared::read(&**state, &key).await? else {
                    continue;
                };
                if s.record.locked(now_ms) {
                    out.addresses.push(Locked {
                        key: bucket,
                        until_ms: (!s.record.held()).then(|| s.record.locked_until()),
                        consecutive: s.record.consecutive(),
                    });
                }
            }
        }
        out.users
            .sort_by(|a, b| (a.key.realm(), a.key.name()).cmp(&(b.key.realm(), b.key.name())));
        out.addresses.sort_by_key(|l| l.key.to_string());
        // Locked both here (a failure the state did not take) and there.
        out.users.dedup_by(|a, b| a.key == b.key);
        out.addresses.dedup_by(|a, b| a.key == b.key);
        Ok(out)
    }

    /// An administrator's clear: `user`'s lock or hold, failures and run
    /// are forgotten, so the next login is checked as if none had failed
    /// (on every gateway, with a shared state). Whether there was anything
    /// to clear.
    pub async fn clear_user(&self, user: &UserKey, now_ms: u64) -> Result<bool, StateError> {
        match &self.state {
            None => Ok(self.users.lock().admin_clear(user, now_ms)),
            Some(state) => {
                let local = self.users.lock().admin_clear(user, now_ms);
                let shared = shared::take(&**state, &shared::user_key(user))
                    .await?
                    .is_some_and(|s| s.record.anything(now_ms));
                Ok(local || shared)
            }
        }
    }

    /// An administrator's clear of the bucket `ip` falls in (an IPv6
    /// address clears its /64). Whether there was anything to clear.
    pub async fn clear_ip(&self, ip: IpAddr, now_ms: u64) -> Result<bool, StateError> {
        let bucket = IpBucket::from(ip);
        match &self.state {
            None => Ok(self.ips.lock().admin_clear(&bucket, now_ms)),
            Some(state) => {
                let local = self.ips.lock().admin_clear(&bucket, now_ms);
                let shared = shared::take(&**state, &shared::ip_key(&bucket))
                    .await?
                    .is_some_and(|s| s.record.anything(now_ms));
                Ok(local || shared)
            }
        }
    }

    /// Records held (users, addresses), for tests and metrics.
    pub fn counts(&self) -> (usize, usize) {
        (
            self.users.lock().records.len(),
            self.ips.lock().records.len(),
        )
    }
}

/// A shared state that did not answer a lock check: refused.
fn unavailable(e: &StateError) -> Block {
    tracing::warn!(error = %e, "shared state: lock check failed, attempt refused");
    Block::Unavailable
}

/// A failure that could not be counted in the shared state.
fn uncounted(e: &StateError) {
    tracing::warn!(error = %e, "shared state: a failure is counted on this gateway only");
}

/// The locked records of `table` for a listing.
fn listed<K: std::hash::Hash + Eq + Clone>(table: &Table<K>, now_ms: u64) -> Vec<Locked<K>> {
    table
        .records
        .iter()
        .filter(|(_, r)| r.locked(now_ms))
        .map(|(k, r)| Locked {
            key: k.clone(),
            until_ms: (!r.held()).then(|| r.locked_until()),
            consecutive: r.consecutive(),
        })
        .collect()
}

#[cfg(test)]
mod shared_tests;
#[cfg(test)]
mod tests;
