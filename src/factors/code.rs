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
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Cooldown { .. } => "resend_cooldown",
            Refusal::UserBudget => "user_code_budget",
            Refusal::IpBudget => "ip_code_budget",
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
    /// Issue times per user within the budget window, oldest first.
    by_user: HashMap<String, VecDeque<u64>>,
    /// Issue times per client IP within the budget window, oldest first.
    by_ip: HashMap<IpAddr, VecDeque<u64>>,
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
    /// `user` is the budget key: qualify it with the realm if names repeat.
    pub fn issue(
        &self,
        key: [u8; 32],
        user: &str,
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
            .get_mut(user)
            .is_some_and(|t| recent(t, now_ms) >= rules.per_user_per_hour as usize)
        {
            return Err(Refusal::UserBudget);
        }
        if state
            .by_ip
            .get_mut(&ip)
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
            .entry(user.to_owned())
            .or_default()
            .push_back(now_ms);
        state.by_ip.entry(ip).or_default().push_back(now_ms);
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
mod tests {
    use super::*;

    const IP: &str = "192.0.2.1";
    const MIN: u64 = 60_000;

    fn ip() -> IpAddr {
        IP.parse().unwrap()
    }

    fn key(n: u8) -> [u8; 32] {
        [n; 32]
    }

    /// A wrong code of the right shape: differs from `code` in its first character.
    fn wrong(code: &str) -> String {
        let first = if code.starts_with('A') { 'B' } else { 'A' };
        format!("{first}{}", &code[1..])
    }

    fn challenges() -> Challenges {
        Challenges::new()
    }

    fn rules() -> CodeRules {
        CodeRules::default()
    }

    #[test]
    fn default_codes_have_at_least_twenty_bits() {
        assert!(entropy_bits(CodeRules::default().length) >= 20.0);
        assert!(entropy_bits(6) > 29.0);
    }

    #[test]
    fn codes_use_only_the_unambiguous_alphabet() {
        for b in b"0O1IL" {
            assert!(!ALPHABET.contains(b), "{} is ambiguous", char::from(*b));
        }
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let code = generate(6);
            assert_eq!(code.len(), 6);
            assert!(code.bytes().all(|b| ALPHABET.contains(&b)), "{code}");
            seen.insert(code);
        }
        // 200 draws from ~887 million: a repeat means the generator is broken.
        assert_eq!(seen.len(), 200);
    }

    #[test]
    fn channels_round_trip_by_name() {
        for c in [Channel::Sms, Channel::Email] {
            assert_eq!(Channel::parse(c.as_str()), Some(c));
        }
        assert_eq!(Channel::parse("totp"), None);
    }

    #[test]
    fn normalising_drops_spaces_and_dashes_and_upper_cases() {
        assert_eq!(normalise(" ab3-k7 p\t"), "AB3K7P");
        assert_eq!(normalise(" - "), "");
    }

    #[test]
    fn the_right_code_is_accepted_once_in_any_case() {
        let c = challenges();
        let code = c
            .issue(key(1), "alice", ip(), Channel::Sms, 0, &rules())
            .unwrap();
        let typed = format!("{}-{}", &code[..3], &code[3..]).to_lowercase();
        assert_eq!(
            c.verify(key(1), &typed, 1000),
            CodeVerdict::Accepted {
                channel: Channel::Sms
            }
        );
        assert_eq!(c.verify(key(1), &code, 2000), CodeVerdict::NoChallenge);
    }

    #[test]
    fn a_code_is_bound_to_its_key() {
        let c = challenges();
        let code = c
            .issue(key(1), "alice", ip(), Channel::Email, 0, &rules())
            .unwrap();
        assert_eq!(c.verify(key(2), &code, 1), CodeVerdict::NoChallenge);
        assert!(matches!(
            c.verify(key(1), &code, 2),
            CodeVerdict::Accepted { .. }
        ));
    }

    #[test]
    fn a_code_expires_after_five_minutes() {
        let c = challenges();
        let code = c
            .issue(key(1), "alice", ip(), Channel::Sms, 0, &rules())
            .unwrap();
        assert_eq!(c.verify(key(1), &code, 5 * MIN), CodeVerdict::Expired);
        assert_eq!(
            c.verify(key(1), &code, 5 * MIN + 1),
            CodeVerdict::NoChallenge
        );

        let code = c
            .issue(key(2), "bob", ip(), Channel::Sms, 0, &rules())
            .unwrap();
        assert!(matches!(
            c.verify(key(2), &code, 5 * MIN - 1),
            CodeVerdict::Accepted { .. }
        ));
    }

    #[test]
    fn three_wrong_tries_kill_the_code() {
        let c = challenges();
        let code = c
            .issue(key(1), "alice", ip(), Channel::Sms, 0, &rules())
            .unwrap();
        let bad = wrong(&code);
        assert_eq!(
            c.verify(key(1), &bad, 1),
            CodeVerdict::Wrong { tries_left: 2 }
        );
        assert_eq!(
            c.verify(key(1), &bad, 2),
            CodeVerdict::Wrong { tries_left: 1 }
        );
        assert_eq!(c.verify(key(1), &bad, 3), CodeVerdict::TooManyTries);
        // Even the right code is refused now.
        assert_eq!(c.verify(key(1), &code, 4), CodeVerdict::TooManyTries);
        // A new code (after the cooldown) has its own three tries.
        let code = c
            .issue(key(1), "alice", ip(), Channel::Sms, MIN, &rules())
            .unwrap();
        assert_eq!(
            c.verify(key(1), &wrong(&code), MIN + 1),
            CodeVerdict::Wrong { tries_left: 2 }
        );
        assert!(matches!(
            c.verify(key(1), &code, MIN + 2),
            CodeVerdict::Accepted { .. }
        ));
    }

    #[test]
    fn an_empty_entry_costs_no_try() {
        let c = challenges();
        c.issue(key(1), "alice", ip(), Channel::Sms, 0, &rules())
            .unwrap();
        assert_eq!(
            c.verify(key(1), " - ", 1),
            CodeVerdict::Wrong { tries_left: 3 }
        );
        assert_eq!(
            c.verify(key(1), "", 2),
            CodeVerdict::Wrong { tries_left: 3 }
        );
    }

    #[test]
    fn resending_waits_thirty_seconds() {
        let c = challenges();
        c.issue(key(1), "alice", ip(), Channel::Sms, 0, &rules())
            .unwrap();
        assert_eq!(
            c.issue(key(1), "alice", ip(), Channel::Sms, 10_500, &rules()),
            Err(Refusal::Cooldown { wait_secs: 20 })
        );
        assert_eq!(c.resend_wait_secs(&key(1), 29_999), 1);
        assert_eq!(c.resend_wait_secs(&key(1), 30_000), 0);
        assert!(c
            .issue(key(1), "alice", ip(), Channel::Sms, 30_000, &rules())
            .is_ok());
        // Another login of the same user is not held up by this one's cooldown.
        assert!(c
            .issue(key(2), "alice", ip(), Channel::Sms, 30_001, &rules())
            .is_ok());
    }

    #[test]
    fn a_resend_replaces_the_code_but_keeps_the_failures() {
        let c = challenges();
        let first = c
            .issue(key(1), "alice", ip(), Channel::Sms, 0, &rules())
            .unwrap();
        c.verify(key(1), &wrong(&first), 1);
        c.verify(key(1), &wrong(&first), 2);
        let second = c
            .issue(key(1), "alice", ip(), Channel::Email, 30_000, &rules())
            .unwrap();
        if first != second {
            assert_eq!(c.verify(key(1), &first, 30_001), CodeVerdict::TooManyTries);
        } else {
            // One in 887 million: the same code twice; it is simply right.
            assert!(matches!(
                c.verify(key(1), &first, 30_001),
                CodeVerdict::Accepted { .. }
            ));
        }
    }

    #[test]
    fn a_resend_gets_the_new_validity_and_channel() {
        let c = challenges();
        c.issue(key(1), "alice", ip(), Channel::Sms, 0, &rules())
            .unwrap();
        let code = c
            .issue(key(1), "alice", ip(), Channel::Email, 4 * MIN, &rules())
            .unwrap();
        assert_eq!(
            c.verify(key(1), &code, 8 * MIN),
            CodeVerdict::Accepted {
                channel: Channel::Email
            }
        );
    }

    #[test]
    fn five_codes_per_user_per_hour_across_logins() {
        let c = challenges();
        for i in 0..5u8 {
            let now = u64::from(i) * MIN;
            assert!(c
                .issue(key(i), "alice", ip(), Channel::Sms, now, &rules())
                .is_ok());
        }
        assert_eq!(
            c.issue(key(9), "alice", ip(), Channel::Sms, 10 * MIN, &rules()),
            Err(Refusal::UserBudget)
        );
        // Another user from the same IP is fine; the refusal used no budget.
        assert!(c
            .issue(key(10), "bob", ip(), Channel::Sms, 10 * MIN, &rules())
            .is_ok());
        // The first code leaves the window an hour after it was issued.
        assert!(c
            .issue(key(9), "alice", ip(), Channel::Sms, 60 * MIN, &rules())
            .is_ok());
        assert_eq!(
            c.issue(key(11), "alice", ip(), Channel::Sms, 60 * MIN + 1, &rules()),
            Err(Refusal::UserBudget)
        );
    }

    #[test]
    fn resends_count_against_the_user_budget() {
        let c = challenges();
        for i in 0..5u64 {
            assert!(c
                .issue(key(1), "alice", ip(), Channel::Sms, i * 30_000, &rules())
                .is_ok());
        }
        assert_eq!(
            c.issue(key(1), "alice", ip(), Channel::Sms, 150_000, &rules()),
            Err(Refusal::UserBudget)
        );
        // Sweeping does not forget the budget either.
        c.sweep(160_000);
        assert_eq!(
            c.issue(key(2), "alice", ip(), Channel::Sms, 170_000, &rules()),
            Err(Refusal::UserBudget)
        );
    }

    #[test]
    fn twenty_codes_per_ip_per_hour_whoever_asks() {
        let c = challenges();
        for i in 0..20u8 {
            let user = format!("user{i}");
            assert!(c
                .issue(key(i), &user, ip(), Channel::Sms, 0, &rules())
                .is_ok());
        }
        assert_eq!(
            c.issue(key(20), "someone", ip(), Channel::Sms, 1, &rules()),
            Err(Refusal::IpBudget)
        );
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(c
            .issue(key(21), "someone", other, Channel::Sms, 2, &rules())
            .is_ok());
    }

    #[test]
    fn sweeping_drops_old_challenges_only() {
        let c = challenges();
        c.issue(key(1), "alice", ip(), Channel::Sms, 0, &rules())
            .unwrap();
        c.issue(key(2), "bob", ip(), Channel::Sms, 4 * MIN, &rules())
            .unwrap();
        c.sweep(5 * MIN);
        assert_eq!(c.pending_count(), 1);
        c.sweep(9 * MIN);
        assert_eq!(c.pending_count(), 0);
    }

    #[test]
    fn a_code_keeps_the_rules_it_was_issued_under() {
        let c = challenges();
        let code = c
            .issue(key(1), "alice", ip(), Channel::Sms, 0, &rules())
            .unwrap();
        let strict = CodeRules {
            validity: Duration::from_secs(60),
            max_tries: 1,
            ..rules()
        };
        let newer = c
            .issue(key(2), "bob", ip(), Channel::Sms, 0, &strict)
            .unwrap();
        assert_eq!(c.verify(key(2), &newer, 60_000), CodeVerdict::Expired);
        assert_eq!(
            c.verify(key(1), &wrong(&code), 60_000),
            CodeVerdict::Wrong { tries_left: 2 }
        );
    }
}
