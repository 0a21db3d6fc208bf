//! One-time codes sent by SMS or e-mail, and the challenges that wait for
//! them (SECURITY.md "One-time codes").
//!
//! A code is drawn from the OS CSPRNG over an alphabet without look-alikes
//! (no 0/O, 1/I/L), is typed in either letter case with spaces or dashes
//! ignored (the seed users write "med små bokstäver"), and lives 5 minutes.
//!
//! # The rules, exactly
//! - **Storage.** Only a peppered SHA-256 of the normalised code is kept;
//!   comparison is constant-time.
//! - **Single use.** An accepted code is removed at once.
//! - **Validity.** A code is accepted until `validity` after it was issued.
//! - **Tries.** Every non-empty wrong entry costs one try. When the tries are
//!   used up the challenge is dead: it answers [`CodeVerdict::TooManyTries`]
//!   until a new code is issued. An empty entry (nothing but spaces/dashes)
//!   costs nothing.
//! - **Resend.** Issuing again for the same key waits `resend_after` since
//!   the last code and replaces the code. While the previous code is still
//!   alive (not expired, tries left), the new code *inherits* its remaining
//!   tries, so resending never resets the failure counter. Only after the old
//!   code expired or died does a new code start with `max_tries` again.
//! - **Budgets.** Every issued code (first or resend) counts against the user
//!   and the client IP for one hour, across all keys; refusals count nothing.
//!   So one user can at most see `per_user_per_hour × max_tries` guesses an
//!   hour whatever they do.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::Duration;

use parking_lot::Mutex;
use rand::rngs::OsRng;
use rand::{Rng, RngCore};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::regulation::IpBucket;
use crate::storage::UserRef;

/// Characters a code is made of: upper-case letters and digits without the
/// look-alikes 0/O and 1/I/L. 31 symbols, about 4.95 bits each.
pub const ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";

/// The budget window: codes are counted per user and per IP over one hour.
const BUDGET_WINDOW_MS: u64 = 3_600_000;

/// Where a code was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    /// A text message to an enrolled mobile number.
    Sms,
    /// An e-mail to the address from the directory.
    Email,
}

impl Channel {
    /// Name used in audit events and outbox file names.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Sms => "sms",
            Channel::Email => "email",
        }
    }

    /// The channel named `name` (`sms`, `email`), as [`Channel::as_str`] writes it.
    pub fn parse(name: &str) -> Option<Channel> {
        [Channel::Sms, Channel::Email]
            .into_iter()
            .find(|c| c.as_str() == name)
    }
}

/// Limits for one-time codes. Defaults are SECURITY.md's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeRules {
    /// Characters per code. Default 6 (≈ 29.7 bits).
    pub length: usize,
    /// How long a code may be used. Default 5 minutes.
    pub validity: Duration,
    /// Wrong entries before the code is dead. Default 3.
    pub max_tries: u32,
    /// Minimum time between two codes for the same login. Default 30 s.
    pub resend_after: Duration,
    /// Codes per user per hour (SMS costs money; guesses are bounded). Default 5.
    pub per_user_per_hour: u32,
    /// Codes per client IP per hour, whoever the user. Default 20.
    pub per_ip_per_hour: u32,
}

impl Default for CodeRules {
    fn default() -> Self {
        CodeRules {
            length: 6,
            validity: Duration::from_secs(5 * 60),
            max_tries: 3,
            resend_after: Duration::from_secs(30),
            per_user_per_hour: 5,
            per_ip_per_hour: 20,
        }
    }
}

/// Why no code was issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The last code for this login is younger than `resend_after`.
    Cooldown {
        /// Seconds until a new code may be asked for (rounded up, ≥ 1).
        wait_secs: u64,
    },
    /// The user had `per_user_per_hour` codes within the last hour.
    UserBudget,
    /// The client IP had `per_ip_per_hour` codes within the last hour.
    IpBudget,
}

impl Refusal {
    /// Reason for the audit log.
    pub fn reason(self) -> crate::audit::Reason {
        use crate::audit::Reason;
        match self {
            Refusal::Cooldown { .. } => Reason::ResendCooldown,
            Refusal::UserBudget => Reason::UserCodeBudget,
            Refusal::IpBudget => Reason::IpCodeBudget,
        }
    }
}

/// The answer to an entered code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeVerdict {
    /// Right code; the challenge is gone.
    Accepted {
        /// Where the accepted code had been sent.
        channel: Channel,
    },
    /// Wrong code; this many tries remain (≥ 1).
    Wrong {
        /// Tries left before the code is dead.
        tries_left: u32,
    },
    /// The code is older than `validity`; the challenge is gone.
    Expired,
    /// The tries are used up (by this entry or before); ask for a new code.
    TooManyTries,
    /// Nothing was issued for this key (or it was already used).
    NoChallenge,
}

impl CodeVerdict {
    /// Reason for the audit log.
    pub fn reason(self) -> &'static str {
        match self {
            CodeVerdict::Accepted { .. } => "accepted",
            CodeVerdict::Wrong { .. } => "wrong_code",
            CodeVerdict::Expired => "expired",
            CodeVerdict::TooManyTries => "too_many_tries",
            CodeVerdict::NoChallenge => "no_challenge",
        }
    }
}

/// A fresh code of `length` characters from [`ALPHABET`], drawn from the OS
/// CSPRNG (uniformly: `gen_range` rejects biased samples).
pub fn generate(length: usize) -> String {
    (0..length)
        .map(|_| char::from(ALPHABET[OsRng.gen_range(0..ALPHABET.len())]))
        .collect()
}

/// Entropy of a code of `length` characters, in bits.
pub fn entropy_bits(length: usize) -> f64 {
    length as f64 * (ALPHABET.len() as f64).log2()
}

/// A typed code as it is compared: spaces and dashes dropped, upper case.
pub fn normalise(input: &str) -> String {
    input
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// A pending code for one login.
///
/// It carries the limits it was issued under, so a config reload changes
/// only codes issued after it.
#[derive(Debug, Clone)]
struct Pending {
    /// Peppered hash of the normalised code; the code itself is never kept.
    hash: [u8; 32],
    channel: Channel,
    /// When a new code may be issued for this key (cooldown).
    resend_at_ms: u64,
    /// When the current code stops being accepted.
    expires_ms: u64,
    /// Wrong entries still allowed; 0 means dead.
    tries_left: u32,
}

impl Pending {
    fn alive(&self, now_ms: u64) -> bool {
        now_ms < self.expires_ms && self.tries_left > 0
    }
}

#[derive(Debug, Default)]
struct State {
    pending: HashMap<[u8; 32], Pending>,
    /// Issue times per (realm, user) within the budget window, oldest first:
    /// two realms' `anna` are two people with two budgets.
    by_user: HashMap<UserRef, VecDeque<u64>>,
    /// Issue times per client address within the budget window, oldest
    /// first; IPv6 per /64 as the lockouts count, so a host cannot rotate
    /// through its /64 for fresh budgets.
    by_ip: HashMap<IpBucket, VecDeque<u64>>,
}

/// Times within the window, after dropping older ones.
fn recent(times: &mut VecDeque<u64>, now_ms: u64) -> usize {
    while times
        .front()
        .is_some_and(|t| now_ms.saturating_sub(*t) >= BUDGET_WINDOW_MS)
    {
        times.pop_front();
    }
    times.len()
}

/// Pending codes and send budgets, in memory. Lives across config reloads
/// (the rules in force are passed to [`Challenges::issue`]).
///
/// One lock for everything: issuing must check the cooldown and both budgets
/// and record all three atomically, and codes are rare (a few per login), so
/// contention does not matter. The state moves to the shared store with Redis.
#[derive(Debug)]
pub struct Challenges {
    /// Random per process, mixed into every code hash so a memory dump of the
    /// hashes alone does not give the codes away by a table lookup.
    pepper: [u8; 32],
    state: Mutex<State>,
}

impl Default for Challenges {
    fn default() -> Self {
        Challenges::new()
    }
}

impl Challenges {
    /// No challenges yet.
    pub fn new() -> Challenges {
        let mut pepper = [0u8; 32];
        OsRng.fill_bytes(&mut pepper);
        Challenges {
            pepper,
            state: Mutex::default(),
        }
    }

    fn hash(&self, key: &[u8; 32], normalised: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.pepper);
        h.update(key);
        h.update(normalised.as_bytes());
        h.finalize().into()
    }

    /// Issue a code under `rules` for the login identified by `key` (the
    /// hash of the login session id), for `user` asking from `ip`, to be sent
    /// over `channel`. Returns the code to send; only its hash is kept.
    /// `who` is the budget key: realm and user, never the bare name.
    pub fn issue(
        &self,
        key: [u8; 32],
        who: &UserRef,
        ip: IpAddr,
        channel: Channel,
        now_ms: u64,
        rules: &CodeRules,
    ) -> Result<String, Refusal> {
        let mut state = self.state.lock();
        let previous = state.pending.get(&key).cloned();

        if let Some(p) = &previous {
            if now_ms < p.resend_at_ms {
                return Err(Refusal::Cooldown {
                    wait_secs: (p.resend_at_ms - now_ms).div_ceil(1000),
                });
            }
        }
        if state
            .by_user
            .get_mut(who)
            .is_some_and(|t| recent(t, now_ms) >= rules.per_user_per_hour as usize)
        {
            return Err(Refusal::UserBudget);
        }
        if state
            .by_ip
            .get_mut(&IpBucket::from(ip))
            .is_some_and(|t| recent(t, now_ms) >= rules.per_ip_per_hour as usize)
        {
            return Err(Refusal::IpBudget);
        }

        let code = generate(rules.length);
        let tries_left = match &previous {
            // A resend keeps the failures of the code it replaces.
            Some(p) if p.alive(now_ms) => p.tries_left,
            _ => rules.max_tries,
        };
        let pending = Pending {
            hash: self.hash(&key, &code),
            channel,
            resend_at_ms: now_ms.saturating_add(rules.resend_after.as_millis() as u64),
            expires_ms: now_ms.saturating_add(rules.validity.as_millis() as u64),
            tries_left,
        };
        state.pending.insert(key, pending);
        state
            .by_user
            .entry(who.clone())
            .or_default()
            .push_back(now_ms);
        state
            .by_ip
            .entry(IpBucket::from(ip))
            .or_default()
            .push_back(now_ms);
        Ok(code)
    }

    /// Check `input` as typed by the user against the code for `key`.
    pub fn verify(&self, key: [u8; 32], input: &str, now_ms: u64) -> CodeVerdict {
        let typed = normalise(input);
        let mut state = self.state.lock();
        let Some(p) = state.pending.get_mut(&key) else {
            return CodeVerdict::NoChallenge;
        };
        if now_ms >= p.expires_ms {
            state.pending.remove(&key);
            return CodeVerdict::Expired;
        }
        if p.tries_left == 0 {
            return CodeVerdict::TooManyTries;
        }
        if typed.is_empty() {
            return CodeVerdict::Wrong {
                tries_left: p.tries_left,
            };
        }
        let matches: bool = self.hash(&key, &typed).ct_eq(&p.hash).into();
        if matches {
            let channel = p.channel;
            state.pending.remove(&key);
            return CodeVerdict::Accepted { channel };
        }
        p.tries_left -= 1;
        match p.tries_left {
            0 => CodeVerdict::TooManyTries,
            tries_left => CodeVerdict::Wrong { tries_left },
        }
    }

    /// Forget the challenge for `key` (login finished, abandoned, or the code
    /// could not be delivered). Its cooldown goes with it; budgets stay.
    pub fn forget(&self, key: &[u8; 32]) {
        self.state.lock().pending.remove(key);
    }

    /// Seconds until `key` may ask for a new code (0: now). For the page.
    pub fn resend_wait_secs(&self, key: &[u8; 32], now_ms: u64) -> u64 {
        self.state
            .lock()
            .pending
            .get(key)
            .map_or(0, |p| p.resend_at_ms.saturating_sub(now_ms).div_ceil(1000))
    }

    /// Drop expired challenges (once their cooldown is over too) and budget
    /// entries older than the window.
    pub fn sweep(&self, now_ms: u64) {
        let mut state = self.state.lock();
        state
            .pending
            .retain(|_, p| now_ms < p.expires_ms || now_ms < p.resend_at_ms);
        state.by_user.retain(|_, t| recent(t, now_ms) > 0);
        state.by_ip.retain(|_, t| recent(t, now_ms) > 0);
    }

    /// Pending challenges (tests and metrics).
    pub fn pending_count(&self) -> usize {
        self.state.lock().pending.len()
    }
}

#[cfg(test)]
#[path = "code_tests.rs"]
mod tests;
