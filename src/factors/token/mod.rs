//! Hardware OATH tokens ("Webbdosa"): the RFC 4226 HOTP primitive, the
//! look-ahead and resynchronisation rules, and the CSV import format.
//!
//! The rules here are pure (state in, decision out) so every storage backend
//! applies them the same way; [`crate::storage`] loads and saves the state.
//!
//! CSV format, one token per line (header line optional, `#` comments and
//! blank lines ignored):
//! ```text
//! serial,type,secret,digits,period_or_counter
//! A1000001,hotp,3132333435363738393031323334353637383930,6,0
//! B2000002,totp,base32:GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ,8,60
//! ```
//! `secret` is `hex:…`, `base32:…`, or without a prefix: hex if it is an even
//! number of hex digits, else base32. `digits` (6 or 8) defaults to 6; the last
//! column is the TOTP period in seconds (default 30) or the HOTP start counter
//! (default 0).

mod import;

use subtle::ConstantTimeEq;
use totp_rs::{Algorithm, TOTP};

use super::totp::{check_steps, StepCheck};

pub use self::import::{decode_base32, decode_secret, parse_csv, CsvError, CsvProblem};

/// Counters checked on a normal login: the expected one and the 9 after it
/// (button presses that never reached us).
pub const HOTP_WINDOW: u64 = 10;
/// How far beyond the window a login code may lie and still start a
/// resynchronisation (the next code must then follow it).
pub const HOTP_RESYNC_LOOKAHEAD: u64 = 1000;
/// How long a resynchronisation candidate waits for the next code.
pub const HOTP_RESYNC_PENDING_SECS: u64 = 300;
/// How far the admin `token resync` command searches (trusted operator).
pub const ADMIN_RESYNC_LOOKAHEAD: u64 = 10_000;
/// Used counters below the stored one that are reported as replays.
const HOTP_REPLAY_LOOKBACK: u64 = HOTP_WINDOW;
/// Shortest secret RFC 4226 allows: 128 bits.
pub const MIN_SECRET_BYTES: usize = 16;

/// RFC 4226 code generator for one secret (HMAC-SHA-1, dynamic truncation).
/// The arithmetic is totp-rs's: a TOTP with a 1-second step evaluated at
/// "time" `counter` is exactly HOTP(counter).
pub struct Hotp {
    /// Holds the secret; never printed.
    inner: TOTP,
}

impl std::fmt::Debug for Hotp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Hotp({} digits, ..)", self.inner.digits)
    }
}

impl Hotp {
    /// A generator for `secret` producing `digits`-digit codes.
    pub fn new(secret: &[u8], digits: u8) -> Hotp {
        Hotp {
            inner: TOTP::new_unchecked(
                Algorithm::SHA1,
                usize::from(digits),
                0,
                1,
                secret.to_vec(),
                None,
                String::new(),
            ),
        }
    }

    /// Code length.
    pub fn digits(&self) -> usize {
        self.inner.digits
    }

    /// The code for `counter`, zero-padded.
    pub fn code(&self, counter: u64) -> String {
        self.inner.generate(counter)
    }

    /// Whether `code` (already cleaned) is the code for `counter`, compared
    /// in constant time.
    pub fn matches(&self, counter: u64, code: &str) -> bool {
        bool::from(self.code(counter).as_bytes().ct_eq(code.as_bytes()))
    }
}

/// A typed code with spaces removed, if it is exactly `digits` ASCII digits
/// (users copy "287 082" as shown by some apps).
pub fn clean_code(input: &str, digits: usize) -> Option<String> {
    let code: String = input.chars().filter(|c| !c.is_whitespace()).collect();
    (code.len() == digits && code.bytes().all(|b| b.is_ascii_digit())).then_some(code)
}

/// What a HOTP code means for a token whose next expected counter is `next`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HotpCheck {
    /// Valid: the stored counter becomes `counter + 1`.
    Accepted {
        /// The counter that matched.
        counter: u64,
        /// True when this completed a two-code resynchronisation.
        resynced: bool,
    },
    /// Matches far ahead: remember `candidate`, ask for the next code.
    NeedsNextCode {
        /// The counter that matched.
        candidate: u64,
    },
    /// The code of a counter already passed.
    Replay {
        /// The counter that matched.
        counter: u64,
    },
    /// No counter near by gives this code.
    NoMatch,
}

/// Apply RFC 4226 look-ahead: the window from `next`, then the pending
/// resynchronisation candidate (the previous call's far-ahead match, still
/// fresh), then recent used counters, then the far look-ahead.
pub fn check_hotp(gen: &Hotp, code: &str, next: u64, pending: Option<u64>) -> HotpCheck {
    let Some(code) = clean_code(code, gen.digits()) else {
        return HotpCheck::NoMatch;
    };
    if let Some(c) = (next..next.saturating_add(HOTP_WINDOW)).find(|&c| gen.matches(c, &code)) {
        return HotpCheck::Accepted {
            counter: c,
            resynced: false,
        };
    }
    // Two consecutive codes: the candidate matched last time, this is the one after it.
    if let Some(p) = pending.filter(|&p| p >= next) {
        if gen.matches(p + 1, &code) {
            return HotpCheck::Accepted {
                counter: p + 1,
                resynced: true,
            };
        }
    }
    let back = next.saturating_sub(HOTP_REPLAY_LOOKBACK);
    if let Some(c) = (back..next).rev().find(|&c| gen.matches(c, &code)) {
        return HotpCheck::Replay { counter: c };
    }
    let far = next.saturating_add(HOTP_WINDOW)..next.saturating_add(HOTP_RESYNC_LOOKAHEAD);
    match far.into_iter().find(|&c| gen.matches(c, &code)) {
        Some(candidate) => HotpCheck::NeedsNextCode { candidate },
        None => HotpCheck::NoMatch,
    }
}

/// The counter of `code1` if `code2` is the code right after it, searching
/// `lookahead` counters from `next` (the admin resynchronisation).
pub fn find_consecutive(
    gen: &Hotp,
    code1: &str,
    code2: &str,
    next: u64,
    lookahead: u64,
) -> Option<u64> {
    let code1 = clean_code(code1, gen.digits())?;
    let code2 = clean_code(code2, gen.digits())?;
    (next..next.saturating_add(lookahead))
        .find(|&c| gen.matches(c, &code1) && gen.matches(c + 1, &code2))
}

/// The durable state of one token between logins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenState {
    /// HOTP: the counter the next code should use.
    pub counter: u64,
    /// TOTP: the last step accepted.
    pub last_step: Option<u64>,
    /// HOTP: a far-ahead match waiting for the next code (counter, unix secs).
    pub pending: Option<(u64, u64)>,
}

/// What a code means for one token (see [`check_token`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenCheck {
    /// Valid; `resynced` when it completed a two-code resynchronisation.
    Accepted {
        /// See above.
        resynced: bool,
    },
    /// Far ahead: ask for the next code.
    NeedsNextCode,
    /// An old code.
    Replay,
    /// Wrong.
    NoMatch,
}

/// Check `code` for a token (TOTP when it has a `period`) and give the state
/// to store. A resynchronisation candidate lives for one attempt and at most
/// [`HOTP_RESYNC_PENDING_SECS`].
pub fn check_token(
    gen: &Hotp,
    period: Option<u32>,
    state: TokenState,
    code: &str,
    now_secs: u64,
) -> (TokenCheck, TokenState) {
    if let Some(period) = period {
        return match check_steps(gen, code, now_secs, u64::from(period), state.last_step) {
            StepCheck::Accepted { step } => (
                TokenCheck::Accepted { resynced: false },
                TokenState {
                    last_step: Some(step),
                    ..state
                },
            ),
            StepCheck::Replay { .. } => (TokenCheck::Replay, state),
            StepCheck::NoMatch => (TokenCheck::NoMatch, state),
        };
    }
    let pending = state
        .pending
        .filter(|&(_, at)| at <= now_secs && now_secs - at <= HOTP_RESYNC_PENDING_SECS)
        .map(|(c, _)| c);
    let cleared = TokenState {
        pending: None,
        ..state
    };
    match check_hotp(gen, code, state.counter, pending) {
        HotpCheck::Accepted { counter, resynced } => (
            TokenCheck::Accepted { resynced },
            TokenState {
                counter: counter.saturating_add(1),
                ..cleared
            },
        ),
        HotpCheck::NeedsNextCode { candidate } => (
            TokenCheck::NeedsNextCode,
            TokenState {
                pending: Some((candidate, now_secs)),
                ..state
            },
        ),
        HotpCheck::Replay { .. } => (TokenCheck::Replay, cleared),
        HotpCheck::NoMatch => (TokenCheck::NoMatch, cleared),
    }
}

/// HOTP or TOTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// Event based (RFC 4226): a counter per button press.
    Hotp,
    /// Time based (RFC 6238).
    Totp,
}

impl TokenKind {
    /// `hotp` or `totp`, as in the CSV file and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Hotp => "hotp",
            TokenKind::Totp => "totp",
        }
    }
}

/// How a token's codes move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenMode {
    /// HOTP with the counter its next code uses.
    Hotp {
        /// Start counter.
        counter: u64,
    },
    /// TOTP with its period.
    Totp {
        /// Seconds per step.
        period: u32,
    },
}

impl TokenMode {
    /// HOTP or TOTP.
    pub fn kind(self) -> TokenKind {
        match self {
            TokenMode::Hotp { .. } => TokenKind::Hotp,
            TokenMode::Totp { .. } => TokenKind::Totp,
        }
    }
}

/// One token from an import file.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// Serial number printed on the token.
    pub serial: String,
    /// The seed (raw bytes, at least 128 bits).
    pub secret: Vec<u8>,
    /// 6 or 8.
    pub digits: u8,
    /// HOTP counter or TOTP period.
    pub mode: TokenMode,
}

impl std::fmt::Debug for TokenRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The seed stays out of logs and panic messages.
        f.debug_struct("TokenRecord")
            .field("serial", &self.serial)
            .field("digits", &self.digits)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
