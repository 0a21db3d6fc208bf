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

use subtle::ConstantTimeEq;
use totp_rs::{Algorithm, Secret, TOTP};

use super::totp::{check_steps, StepCheck};

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
/// Largest start counter accepted on import (kept far from i64::MAX so the
/// counter always fits an SQL integer after any number of logins).
const MAX_START_COUNTER: u64 = 1 << 48;
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

/// One thing wrong on one line of an import file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvProblem {
    /// 1-based line number.
    pub line: u64,
    /// What is wrong.
    pub message: String,
}

/// Why an import file was refused: every problem found, so one run shows
/// them all. Nothing is imported when there is any.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", render(.problems))]
pub struct CsvError {
    /// Problems in line order; line 0 is the file as a whole.
    pub problems: Vec<CsvProblem>,
}

fn render(problems: &[CsvProblem]) -> String {
    let lines: Vec<String> = problems
        .iter()
        .map(|p| match p.line {
            0 => p.message.clone(),
            n => format!("line {n}: {}", p.message),
        })
        .collect();
    lines.join("\n")
}

/// Parse a token import file. Any problem on any line refuses the whole file.
/// A byte-order mark (Excel writes one) is skipped; `;` is accepted as the
/// separator when the first line uses it (Swedish Excel does).
pub fn parse_csv(text: &str) -> Result<Vec<TokenRecord>, CsvError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let first_line = text
        .lines()
        .find(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .unwrap_or("");
    let delimiter = if first_line.contains(';') && !first_line.contains(',') {
        b';'
    } else {
        b','
    };
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .comment(Some(b'#'))
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let mut records = Vec::new();
    let mut problems = Vec::new();
    let mut seen = std::collections::HashMap::new();
    let mut first = true;
    for row in reader.records() {
        let row = match row {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                problems.push(CsvProblem {
                    line,
                    message: format!("not valid CSV: {e}"),
                });
                continue;
            }
        };
        let line = row.position().map_or(0, |p| p.line());
        if row.iter().all(str::is_empty) {
            continue;
        }
        let is_header = first && row.get(0).is_some_and(|f| f.eq_ignore_ascii_case("serial"));
        first = false;
        if is_header {
            continue;
        }
        match parse_row(&row) {
            Ok(rec) => {
                if let Some(prev) = seen.insert(rec.serial.clone(), line) {
                    problems.push(CsvProblem {
                        line,
                        message: format!("serial {} already appears on line {prev}", rec.serial),
                    });
                }
                records.push(rec);
            }
            Err(message) => problems.push(CsvProblem { line, message }),
        }
    }
    if problems.is_empty() && records.is_empty() {
        problems.push(CsvProblem {
            line: 0,
            message: "the file holds no tokens".into(),
        });
    }
    if problems.is_empty() {
        Ok(records)
    } else {
        Err(CsvError { problems })
    }
}

/// One data row, or what is wrong with it (all faults of the row, joined).
fn parse_row(row: &csv::StringRecord) -> Result<TokenRecord, String> {
    if !(3..=5).contains(&row.len()) {
        return Err(format!(
            "expected 3 to 5 columns (serial,type,secret,digits,period_or_counter), found {}",
            row.len()
        ));
    }
    let field = |i: usize| row.get(i).unwrap_or("");
    let mut faults = Vec::new();
    let serial = field(0);
    if serial.is_empty() || serial.len() > 64 {
        faults.push("serial must be 1 to 64 characters".to_string());
    } else if !serial
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
    {
        faults.push(format!(
            "serial {serial:?} may only hold letters, digits and - _ . :"
        ));
    }
    let kind = match field(1).to_ascii_lowercase().as_str() {
        "hotp" => Some(TokenKind::Hotp),
        "totp" => Some(TokenKind::Totp),
        other => {
            faults.push(format!("type must be hotp or totp, got {other:?}"));
            None
        }
    };
    let secret = decode_secret(field(2)).map_err(|e| faults.push(e)).ok();
    let digits = match field(3) {
        "" | "6" => Some(6),
        "8" => Some(8),
        other => {
            faults.push(format!("digits must be 6 or 8, got {other:?}"));
            None
        }
    };
    let last = field(4);
    let mode = match kind {
        Some(TokenKind::Hotp) => match last {
            "" => Some(TokenMode::Hotp { counter: 0 }),
            s => match s.parse::<u64>() {
                Ok(counter) if counter < MAX_START_COUNTER => Some(TokenMode::Hotp { counter }),
                _ => {
                    faults.push(format!(
                        "HOTP start counter must be a whole number below 2^48, got {s:?}"
                    ));
                    None
                }
            },
        },
        Some(TokenKind::Totp) => match last {
            "" => Some(TokenMode::Totp { period: 30 }),
            s => match s.parse::<u32>() {
                Ok(period) if (10..=300).contains(&period) => Some(TokenMode::Totp { period }),
                _ => {
                    faults.push(format!("TOTP period must be 10 to 300 seconds, got {s:?}"));
                    None
                }
            },
        },
        None => None,
    };
    match (secret, digits, mode) {
        (Some(secret), Some(digits), Some(mode)) if faults.is_empty() => Ok(TokenRecord {
            serial: serial.to_string(),
            secret,
            digits,
            mode,
        }),
        _ => Err(faults.join("; ")),
    }
}

/// Decode a secret column: `hex:`/`base32:` prefix, else hex when it is an
/// even number of hex digits, else base32. At least 128 bits.
pub fn decode_secret(text: &str) -> Result<Vec<u8>, String> {
    let lower = text.to_ascii_lowercase();
    let bytes = if let Some(h) = lower.strip_prefix("hex:") {
        decode_hex(h.trim()).ok_or("secret is not valid hex")?
    } else if lower.starts_with("base32:") {
        decode_base32(&text[7..]).ok_or("secret is not valid base32")?
    } else if text.is_empty() {
        return Err("secret is empty".into());
    } else if text.len() % 2 == 0 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        decode_hex(text).ok_or("secret is not valid hex")?
    } else {
        decode_base32(text)
            .ok_or("secret is neither hex (even number of 0-9a-f) nor valid base32")?
    };
    if bytes.len() < MIN_SECRET_BYTES {
        return Err(format!(
            "secret is {} bits; at least {} bits are required",
            bytes.len() * 8,
            MIN_SECRET_BYTES * 8
        ));
    }
    Ok(bytes)
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

/// Base32 (RFC 4648) in any case, with or without `=` padding and spaces.
pub fn decode_base32(text: &str) -> Option<Vec<u8>> {
    let clean: String = text
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '=')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    // These lengths cannot come from encoding whole bytes.
    if clean.is_empty() || matches!(clean.len() % 8, 1 | 3 | 6) {
        return None;
    }
    Secret::Encoded(clean).to_bytes().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC: &[u8] = b"12345678901234567890";
    const RFC4226: [&str; 10] = [
        "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871",
        "520489",
    ];

    #[test]
    fn rfc4226_vectors() {
        let h = Hotp::new(RFC, 6);
        for (c, want) in RFC4226.iter().enumerate() {
            assert_eq!(h.code(c as u64), *want, "counter {c}");
        }
        assert!(h.matches(1, "287082") && !h.matches(1, "287083"));
    }

    #[test]
    fn codes_are_cleaned() {
        assert_eq!(clean_code(" 287 082 ", 6).as_deref(), Some("287082"));
        assert_eq!(clean_code("28708", 6), None);
        assert_eq!(clean_code("28708a", 6), None);
        assert_eq!(clean_code("２８７０８２", 6), None, "only ASCII digits");
    }

    #[test]
    fn window_then_replay() {
        let h = Hotp::new(RFC, 6);
        assert_eq!(
            check_hotp(&h, RFC4226[0], 0, None),
            HotpCheck::Accepted {
                counter: 0,
                resynced: false
            }
        );
        assert_eq!(
            check_hotp(&h, RFC4226[9], 0, None),
            HotpCheck::Accepted {
                counter: 9,
                resynced: false
            }
        );
        assert_eq!(
            check_hotp(&h, RFC4226[3], 5, None),
            HotpCheck::Replay { counter: 3 }
        );
        assert_eq!(check_hotp(&h, "000000", 0, None), HotpCheck::NoMatch);
    }

    #[test]
    fn far_code_needs_the_next_one() {
        let h = Hotp::new(RFC, 6);
        let far = h.code(500);
        assert_eq!(
            check_hotp(&h, &far, 0, None),
            HotpCheck::NeedsNextCode { candidate: 500 }
        );
        let next = h.code(501);
        assert_eq!(
            check_hotp(&h, &next, 0, Some(500)),
            HotpCheck::Accepted {
                counter: 501,
                resynced: true
            }
        );
        // Not consecutive: 502 after candidate 500 only starts another round.
        let skip = h.code(502);
        assert_eq!(
            check_hotp(&h, &skip, 0, Some(500)),
            HotpCheck::NeedsNextCode { candidate: 502 }
        );
        // Beyond the look-ahead: nothing.
        assert_eq!(check_hotp(&h, &h.code(5000), 0, None), HotpCheck::NoMatch);
    }

    #[test]
    fn token_state_moves_and_candidates_expire() {
        let h = Hotp::new(RFC, 6);
        let start = TokenState {
            counter: 0,
            last_step: None,
            pending: None,
        };
        let (c, s) = check_token(&h, None, start, &h.code(3), 1000);
        assert_eq!(
            (c, s.counter),
            (TokenCheck::Accepted { resynced: false }, 4)
        );
        let (c, s) = check_token(&h, None, s, &h.code(300), 1000);
        assert_eq!(
            (c, s.pending),
            (TokenCheck::NeedsNextCode, Some((300, 1000)))
        );
        // Too late for the candidate: 301 starts a new round instead.
        let (c, late) = check_token(
            &h,
            None,
            s,
            &h.code(301),
            1000 + HOTP_RESYNC_PENDING_SECS + 1,
        );
        assert_eq!(c, TokenCheck::NeedsNextCode);
        assert_eq!(late.counter, 4);
        let (c, s) = check_token(&h, None, s, &h.code(301), 1010);
        assert_eq!(
            (c, s.counter, s.pending),
            (TokenCheck::Accepted { resynced: true }, 302, None)
        );
        // A wrong code drops a candidate.
        let (_, s) = check_token(&h, None, s, &h.code(600), 1020);
        let (c, s) = check_token(&h, None, s, "000000", 1021);
        assert_eq!((c, s.pending), (TokenCheck::NoMatch, None));
        // TOTP tokens keep the last step.
        let (c, s) = check_token(&h, Some(60), start, &h.code(1000 / 60), 1000);
        assert_eq!(
            (c, s.last_step),
            (TokenCheck::Accepted { resynced: false }, Some(16))
        );
        assert_eq!(
            check_token(&h, Some(60), s, &h.code(16), 1000).0,
            TokenCheck::Replay
        );
    }

    #[test]
    fn admin_resync_finds_two_consecutive_codes() {
        let h = Hotp::new(RFC, 8);
        let (a, b) = (h.code(4321), h.code(4322));
        assert_eq!(
            find_consecutive(&h, &a, &b, 0, ADMIN_RESYNC_LOOKAHEAD),
            Some(4321)
        );
        assert_eq!(
            find_consecutive(&h, &b, &a, 0, ADMIN_RESYNC_LOOKAHEAD),
            None
        );
        assert_eq!(
            find_consecutive(&h, &a, &b, 5000, ADMIN_RESYNC_LOOKAHEAD),
            None
        );
    }

    #[test]
    fn csv_parses_all_forms() {
        let text = "Serial,Type,Secret,Digits,Period_or_counter\n\
                    # a comment\n\
                    \n\
                    A1,hotp,3132333435363738393031323334353637383930,6,7\n\
                    B2, TOTP ,base32:gezdgnbvgy3tqojqgezdgnbvgy3tqojq,8,60\n\
                    C3,totp,GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\n\
                    D4,hotp,hex:31323334353637383930313233343536\n";
        let recs = parse_csv(text).expect("valid");
        assert_eq!(recs.len(), 4);
        assert_eq!(recs[0].secret, RFC);
        assert_eq!(recs[0].mode, TokenMode::Hotp { counter: 7 });
        assert_eq!(recs[1].secret, RFC);
        assert_eq!(
            (recs[1].digits, recs[1].mode),
            (8, TokenMode::Totp { period: 60 })
        );
        assert_eq!(
            (recs[2].digits, recs[2].mode),
            (6, TokenMode::Totp { period: 30 })
        );
        assert_eq!(recs[3].mode, TokenMode::Hotp { counter: 0 });
        assert!(
            !format!("{:?}", recs[0]).contains("3132"),
            "Debug hides the seed"
        );
    }

    #[test]
    fn csv_errors_name_every_bad_line() {
        let text = "A1,hotp,3132333435363738393031323334353637383930,6,0\n\
                    B2,motp,3132333435363738393031323334353637383930,7,0\n\
                    C3,totp,31323334,6,30\n\
                    A1,hotp,3132333435363738393031323334353637383930\n\
                    D4,hotp\n\
                    E 5,totp,!!!!,6,9999\n";
        let err = parse_csv(text).expect_err("invalid");
        let lines: Vec<u64> = err.problems.iter().map(|p| p.line).collect();
        assert_eq!(lines, vec![2, 3, 4, 5, 6]);
        let msg = err.to_string();
        assert!(
            msg.contains("line 2: type must be hotp or totp, got \"motp\""),
            "{msg}"
        );
        assert!(
            msg.contains("line 3: secret is 32 bits; at least 128 bits are required"),
            "{msg}"
        );
        assert!(
            msg.contains("line 4: serial A1 already appears on line 1"),
            "{msg}"
        );
        assert!(msg.contains("line 5: expected 3 to 5 columns"), "{msg}");
        assert!(msg.contains("serial \"E 5\" may only"), "{msg}");
        assert!(msg.contains("neither hex"), "{msg}");
        assert!(msg.contains("TOTP period must be 10 to 300"), "{msg}");
    }

    #[test]
    fn csv_from_swedish_excel() {
        let text = "\u{feff}Serienummer;Typ;Hemlighet\r\nA1;HOTP;3132333435363738393031323334353637383930\r\n";
        let err = parse_csv(text).expect_err("header not recognised: it is not English");
        assert_eq!(err.problems[0].line, 1);
        let text =
            "\u{feff}serial;type;secret\r\nA1;HOTP;3132333435363738393031323334353637383930\r\n";
        let recs = parse_csv(text).expect("semicolons and BOM");
        assert_eq!(
            (recs[0].serial.as_str(), recs[0].secret.as_slice()),
            ("A1", RFC)
        );
    }

    #[test]
    fn csv_without_tokens_is_refused() {
        let err = parse_csv("# only a comment\n\n").expect_err("empty");
        assert_eq!(err.to_string(), "the file holds no tokens");
    }

    #[test]
    fn secret_rules() {
        // Only hex digits but odd length: base32 is tried instead (and fails here).
        assert!(decode_secret("313233343536373839303132333435363").is_err());
        assert_eq!(
            decode_base32("GEZDGNBVGY3TQOJQ GEZDGNBVGY3TQOJQ====").as_deref(),
            Some(RFC)
        );
        assert_eq!(decode_base32("A"), None);
    }
}
