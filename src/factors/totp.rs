//! Authenticator apps (RFC 6238): new secrets, `otpauth://` URIs that Google
//! Authenticator and its peers accept, and the time-step rule with replay
//! protection that the store applies (also to TOTP hardware tokens).
//!
//! Parameters are the ones every app honours: HMAC-SHA-1, 6 digits, 30 s.

use std::ops::RangeInclusive;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use rand::rngs::OsRng;
use rand::RngCore;
use totp_rs::Secret;

use super::token::{clean_code, Hotp};

/// Code length for authenticator apps.
pub const DIGITS: u8 = 6;
/// Seconds per time step.
pub const PERIOD: u64 = 30;
/// Steps accepted either side of now (clock drift, typing time).
pub const SKEW: u64 = 1;
/// Secret length: 160 bits, as RFC 4226 recommends and SECURITY.md requires.
pub const SECRET_BYTES: usize = 20;

/// Characters left as they are in URI components (RFC 3986 unreserved).
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A fresh 160-bit secret from the operating system's CSPRNG.
pub fn new_secret() -> Vec<u8> {
    let mut secret = vec![0u8; SECRET_BYTES];
    OsRng.fill_bytes(&mut secret);
    secret
}

/// Base32 (RFC 4648, upper case, no padding), as apps expect it typed.
pub fn base32(secret: &[u8]) -> String {
    match Secret::Raw(secret.to_vec()).to_encoded() {
        Secret::Encoded(s) => s,
        // to_encoded always gives the Encoded form.
        Secret::Raw(_) => String::new(),
    }
}

/// The `otpauth://totp/Issuer:account?…` URI for a QR code or a link.
/// Issuer and account are percent-encoded, so spaces, colons and non-ASCII
/// names survive.
pub fn otpauth_uri(issuer: &str, account: &str, secret: &[u8]) -> String {
    let issuer = utf8_percent_encode(issuer, COMPONENT).to_string();
    let account = utf8_percent_encode(account, COMPONENT);
    format!(
        "otpauth://totp/{issuer}:{account}?secret={}&issuer={issuer}&algorithm=SHA1&digits={DIGITS}&period={PERIOD}",
        base32(secret)
    )
}

/// The app code for time step `step` (6 digits).
pub fn code_at(secret: &[u8], step: u64) -> String {
    Hotp::new(secret, DIGITS).code(step)
}

/// The steps accepted at `now_secs` with `period`-second steps: one either side.
pub fn steps_around(now_secs: u64, period: u64) -> RangeInclusive<u64> {
    let now = now_secs / period.max(1);
    now.saturating_sub(SKEW)..=now.saturating_add(SKEW)
}

/// What a time-based code means given the last step accepted for the credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepCheck {
    /// Valid and new: store `step` as the last accepted one.
    Accepted {
        /// The step that matched.
        step: u64,
    },
    /// Valid for a step already accepted (or older): never again.
    Replay {
        /// The step that matched.
        step: u64,
    },
    /// Not a code of any step near now.
    NoMatch,
}

/// Check `code` at `now_secs` against the steps around now. A step at or
/// below `last_step` is a replay; a newer one is accepted (all three steps
/// are always computed, so timing does not tell which one matched).
pub fn check_steps(
    gen: &Hotp,
    code: &str,
    now_secs: u64,
    period: u64,
    last_step: Option<u64>,
) -> StepCheck {
    let Some(code) = clean_code(code, gen.digits()) else {
        return StepCheck::NoMatch;
    };
    let mut result = StepCheck::NoMatch;
    for step in steps_around(now_secs, period) {
        if !gen.matches(step, &code) {
            continue;
        }
        let fresh = last_step.is_none_or(|last| step > last);
        result = match (result, fresh) {
            (StepCheck::Accepted { .. }, _) => result,
            (_, true) => StepCheck::Accepted { step },
            (_, false) => StepCheck::Replay { step },
        };
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC: &[u8] = b"12345678901234567890";

    #[test]
    fn rfc6238_sha1_vectors() {
        // RFC 6238 appendix B, SHA-1, truncated to 6 digits (and 8 for T=59).
        assert_eq!(Hotp::new(RFC, 8).code(59 / 30), "94287082");
        for (t, want) in [
            (59u64, "287082"),
            (1111111109, "081804"),
            (1111111111, "050471"),
            (1234567890, "005924"),
            (2000000000, "279037"),
            (20000000000, "353130"),
        ] {
            assert_eq!(code_at(RFC, t / PERIOD), want, "T={t}");
        }
    }

    #[test]
    fn steps_accept_one_either_side_and_reject_replays() {
        let gen = Hotp::new(RFC, DIGITS);
        let now = 1_700_000_000;
        let step = now / PERIOD;
        let at = |s: u64| code_at(RFC, s);
        assert_eq!(
            check_steps(&gen, &at(step), now, PERIOD, None),
            StepCheck::Accepted { step }
        );
        assert_eq!(
            check_steps(&gen, &at(step - 1), now, PERIOD, None),
            StepCheck::Accepted { step: step - 1 }
        );
        assert_eq!(
            check_steps(&gen, &at(step + 1), now, PERIOD, None),
            StepCheck::Accepted { step: step + 1 }
        );
        assert_eq!(
            check_steps(&gen, &at(step - 2), now, PERIOD, None),
            StepCheck::NoMatch
        );
        assert_eq!(
            check_steps(&gen, &at(step + 2), now, PERIOD, None),
            StepCheck::NoMatch
        );
        assert_eq!(
            check_steps(&gen, &at(step), now, PERIOD, Some(step)),
            StepCheck::Replay { step }
        );
        assert_eq!(
            check_steps(&gen, &at(step - 1), now, PERIOD, Some(step)),
            StepCheck::Replay { step: step - 1 }
        );
        assert_eq!(
            check_steps(&gen, &at(step + 1), now, PERIOD, Some(step)),
            StepCheck::Accepted { step: step + 1 }
        );
        assert_eq!(
            check_steps(&gen, "12345", now, PERIOD, None),
            StepCheck::NoMatch
        );
    }

    #[test]
    fn secrets_and_uris() {
        let a = new_secret();
        assert_eq!(a.len(), 20);
        assert_ne!(a, new_secret());
        assert_eq!(base32(RFC), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        let uri = otpauth_uri("Kommun Portal", "anna.ö@x.se", RFC);
        assert_eq!(
            uri,
            "otpauth://totp/Kommun%20Portal:anna.%C3%B6%40x.se?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
             &issuer=Kommun%20Portal&algorithm=SHA1&digits=6&period=30"
        );
        // totp-rs parses it back to the same secret and parameters.
        let parsed = totp_rs::TOTP::from_url(&uri).expect("valid otpauth URI");
        assert_eq!(parsed.secret, RFC);
        assert_eq!((parsed.digits, parsed.step), (6, 30));
        assert_eq!(parsed.issuer.as_deref(), Some("Kommun Portal"));
        assert_eq!(parsed.account_name, "anna.ö@x.se");
    }

    #[test]
    fn oathtool_agrees_when_installed() {
        let Ok(out) = std::process::Command::new("oathtool")
            .args([
                "--totp",
                "--now",
                "2023-11-14 22:13:20 UTC",
                "3132333435363738393031323334353637383930",
            ])
            .output()
        else {
            eprintln!("note: oathtool not installed; independent TOTP check skipped");
            return;
        };
        assert!(
            out.status.success(),
            "oathtool failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let code = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert_eq!(code, code_at(RFC, 1_700_000_000 / PERIOD));
    }
}
