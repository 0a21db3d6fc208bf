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

use std::net::IpAddr;
use std::time::Duration;

use rand::rngs::OsRng;
use rand::Rng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::regulation::IpBucket;
use crate::state::{decode, encode, hex, update, Change, SharedState, StateError};
use crate::storage::UserRef;

/// Characters a code is made of: upper-case letters and digits without the
/// look-alikes 0/O and 1/I/L. 31 symbols, about 4.95 bits each.
pub const ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";

/// How long an expired code is still recognised as such.
const LATE_ENTRY_MS: u64 = 60_000;

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

/// Limits for one-time codes (`codes:` in the config file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeRules {
    /// Characters per code.
    pub length: usize,
    /// How long a code may be used.
    pub validity: Duration,
    /// Wrong entries before the code is dead.
    pub max_tries: u32,
    /// Minimum time between two codes for the same login.
    pub resend_after: Duration,
    /// Codes per user per hour (SMS costs money; guesses are bounded).
    pub per_user_per_hour: u32,
    /// Codes per client IP per hour, whoever the user.
    pub per_ip_per_hour: u32,
}

impl CodeRules {
    /// SECURITY.md's rules: the one place these defaults are written (the
    /// config file's `codes:` falls back to them, the reference shows them).
    /// 6 characters of the 31-letter alphabet are ≈ 29.7 bits; with 3 tries
    /// and 5 codes an hour a guesser has 15 tries in 887 million an hour.
    pub const DEFAULT: CodeRules = CodeRules {
        length: 6,
        validity: Duration::from_secs(5 * 60),
        max_tries: 3,
        resend_after: Duration::from_secs(30),
        per_user_per_hour: 5,
        per_ip_per_hour: 20,
    };
}

impl Default for CodeRules {
    fn default() -> Self {
        CodeRules::DEFAULT
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
    /// The shared state did not answer: no code was sent.
    Unavailable,
}

impl Refusal {
    /// Reason for the audit log.
    pub fn reason(self) -> crate::audit::Reason {
        use crate::audit::Reason;
        match self {
            Refusal::Cooldown { .. } => Reason::ResendCooldown,
            Refusal::UserBudget => Reason::UserCodeBudget,
            Refusal::IpBudget => Reason::IpCodeBudget,
            Refusal::Unavailable => Reason::StateUnavailable,
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
    /// The shared state did not answer: the entry was not checked (and
    /// costs no try).
    Unavailable,
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
            CodeVerdict::Unavailable => "state_unavailable",
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

/// A pending code for one login, as kept in the shared state.
///
/// It carries the limits it was issued under, so a config reload changes
/// only codes issued after it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Pending {
    /// Peppered hash of the normalised code (hex); the code itself is never kept.
    hash: String,
    /// `sms` or `email`.
    channel: String,
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

    /// How long the state keeps it: until both the code and its cooldown
    /// are over, and a minute more, so a late entry is told "expired"
    /// (and audited as such) rather than "no code was sent".
    fn ttl(&self, now_ms: u64) -> Duration {
        Duration::from_millis(
            self.expires_ms
                .max(self.resend_at_ms)
                .saturating_sub(now_ms)
                .saturating_add(LATE_ENTRY_MS),
        )
    }
}

/// Pending codes and send budgets, in the shared state (memory, or Redis
/// for several gateways). Lives across config reloads (the rules in force
/// are passed to [`Challenges::issue`]).
///
/// Each step is atomic in the state: a new code replaces the old one only if
/// the old one is still what the cooldown was checked against
/// (compare-and-swap), budgets are admitted and recorded in one step, and
/// an accepted code is removed by the same swap that accepts it, so of two
/// gateways given one code at once exactly one accepts it.
#[derive(Debug)]
pub struct Challenges {
    /// Mixed into every code hash so a dump of the state does not give the
    /// codes away by a table lookup. Derived from the gateway's secret key,
    /// so every gateway sharing the state checks the same hashes.
    pepper: [u8; 32],
    state: SharedState,
}

const PENDING: &str = "portvakt:c:";
const BY_USER: &str = "portvakt:cu:";
const BY_IP: &str = "portvakt:ci:";

impl Challenges {
    /// Challenges kept in `state`, hashed with `pepper`.
    pub fn new(state: SharedState, pepper: [u8; 32]) -> Challenges {
        Challenges { pepper, state }
    }

    fn hash(&self, key: &[u8; 32], normalised: &str) -> String {
        let mut h = Sha256::new();
        h.update(self.pepper);
        h.update(key);
        h.update(normalised.as_bytes());
        hex(&h.finalize())
    }

    fn pending_key(key: &[u8; 32]) -> String {
        format!("{PENDING}{}", hex(key))
    }

    /// Issue a code under `rules` for the login identified by `key` (the
    /// hash of the login session id), for `user` asking from `ip`, to be sent
    /// over `channel`. Returns the code to send; only its hash is kept.
    /// `who` is the budget key: realm and user, never the bare name.
    pub async fn issue(
        &self,
        key: [u8; 32],
        who: &UserRef,
        ip: IpAddr,
        channel: Channel,
        now_ms: u64,
        rules: &CodeRules,
    ) -> Result<String, Refusal> {
        self.try_issue(key, who, ip, channel, now_ms, rules)
            .await
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "cannot issue a one-time code");
                Err(Refusal::Unavailable)
            })
    }

    async fn try_issue(
        &self,
        key: [u8; 32],
        who: &UserRef,
        ip: IpAddr,
        channel: Channel,
        now_ms: u64,
        rules: &CodeRules,
    ) -> Result<Result<String, Refusal>, StateError> {
        let pkey = Self::pending_key(&key);
        let raw = self.state.get(&pkey).await?;
        let previous: Option<Pending> = raw.as_deref().map(|r| decode(&pkey, r)).transpose()?;
        if let Some(p) = &previous {
            if now_ms < p.resend_at_ms {
                return Ok(Err(Refusal::Cooldown {
                    wait_secs: (p.resend_at_ms - now_ms).div_ceil(1000),
                }));
            }
        }
        // Budgets before the code: a refusal must not leave a fresh code.
        // The address first, so a user's budget is not spent by a refusal
        // for the address (the reverse spends an address slot, which only
        // the same address can have caused).
        let window = Duration::from_millis(BUDGET_WINDOW_MS);
        let ip_key = format!("{BY_IP}{}", IpBucket::from(ip));
        if !self
            .state
            .admit(&ip_key, now_ms, window, rules.per_ip_per_hour)
            .await?
        {
            return Ok(Err(Refusal::IpBudget));
        }
        let user_key = format!(
            "{BY_USER}{}",
            hex(&Sha256::digest(format!("{}\0{}", who.realm, who.user)))
        );
        if !self
            .state
            .admit(&user_key, now_ms, window, rules.per_user_per_hour)
            .await?
        {
            return Ok(Err(Refusal::UserBudget));
        }

        let code = generate(rules.length);
        let tries_left = match &previous {
            // A resend keeps the failures of the code it replaces.
            Some(p) if p.alive(now_ms) => p.tries_left,
            _ => rules.max_tries,
        };
        let pending = Pending {
            hash: self.hash(&key, &code),
            channel: channel.as_str().to_owned(),
            resend_at_ms: now_ms.saturating_add(rules.resend_after.as_millis() as u64),
            expires_ms: now_ms.saturating_add(rules.validity.as_millis() as u64),
            tries_left,
        };
        let value = encode(&pending);
        let stored = match &raw {
            None => {
                self.state
                    .put_new(&pkey, &value, pending.ttl(now_ms))
                    .await?
            }
            Some(old) => {
                self.state
                    .swap(&pkey, old, Some(&value), pending.ttl(now_ms))
                    .await?
            }
        };
        if !stored {
            // Another gateway issued for this login in between: its code
            // stands and the cooldown applies to this request.
            return Ok(Err(Refusal::Cooldown {
                wait_secs: rules.resend_after.as_secs().max(1),
            }));
        }
        Ok(Ok(code))
    }

    /// Check `input` as typed by the user against the code for `key`.
    pub async fn verify(&self, key: [u8; 32], input: &str, now_ms: u64) -> CodeVerdict {
        let typed = normalise(input);
        let pkey = Self::pending_key(&key);
        let result = update::<Pending, CodeVerdict>(
            &*self.state,
            &pkey,
            |p| p.ttl(now_ms),
            |mut p| {
                if now_ms >= p.expires_ms {
                    return (Change::Remove, CodeVerdict::Expired);
                }
                if p.tries_left == 0 {
                    return (Change::Keep, CodeVerdict::TooManyTries);
                }
                if typed.is_empty() {
                    return (
                        Change::Keep,
                        CodeVerdict::Wrong {
                            tries_left: p.tries_left,
                        },
                    );
                }
                let matches: bool = self
                    .hash(&key, &typed)
                    .as_bytes()
                    .ct_eq(p.hash.as_bytes())
                    .into();
                if matches {
                    let channel = Channel::parse(&p.channel).unwrap_or(Channel::Sms);
                    return (Change::Remove, CodeVerdict::Accepted { channel });
                }
                p.tries_left -= 1;
                let verdict = match p.tries_left {
                    0 => CodeVerdict::TooManyTries,
                    tries_left => CodeVerdict::Wrong { tries_left },
                };
                (Change::Set(p), verdict)
            },
        )
        .await;
        match result {
            Ok(Some(v)) => v,
            Ok(None) => CodeVerdict::NoChallenge,
            Err(e) => {
                tracing::error!(error = %e, "cannot check a one-time code");
                CodeVerdict::Unavailable
            }
        }
    }

    /// Forget the challenge for `key` (login finished, abandoned, or the code
    /// could not be delivered). Its cooldown goes with it; budgets stay.
    pub async fn forget(&self, key: &[u8; 32]) {
        if let Err(e) = self.state.delete(&Self::pending_key(key)).await {
            // It expires by itself within the code's validity.
            tracing::warn!(error = %e, "cannot forget a one-time code");
        }
    }

    /// Seconds until `key` may ask for a new code (0: now). For the page.
    pub async fn resend_wait_secs(&self, key: &[u8; 32], now_ms: u64) -> u64 {
        let pkey = Self::pending_key(key);
        match self.state.get(&pkey).await {
            Ok(Some(raw)) => decode::<Pending>(&pkey, &raw)
                .map_or(0, |p| p.resend_at_ms.saturating_sub(now_ms).div_ceil(1000)),
            _ => 0,
        }
    }

    /// Pending challenges (tests and metrics; scans the state).
    pub async fn pending_count(&self) -> usize {
        self.state
            .keys(PENDING, 1_000_000)
            .await
            .map_or(0, |k| k.len())
    }
}

#[cfg(test)]
#[path = "code_tests.rs"]
mod tests;
