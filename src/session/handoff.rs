//! Handoff codes: after login on the portal host, the browser is sent to
//! `https://service-host/.portvakt/handoff?code=…`, where the code is traded
//! once for a host-only cookie bound to the same server-side session.
//!
//! A code alone must not log a browser in: whoever stops at that redirect
//! could hand the link to someone else and have them work under the
//! attacker's name (login CSRF). So a service host that sends a browser to
//! the portal first gives it a nonce cookie ([`super::cookie::HANDOFF`]),
//! the signed return address carries the nonce's [`binding`], the code is
//! issued for that binding, and only a browser holding the nonce can redeem
//! it — OAuth's `state`, for the same reason.

use std::collections::HashMap;

use parking_lot::Mutex;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{SessionId, SessionKey};

/// Length of a nonce as base64url text (24 random bytes).
const NONCE_LEN: usize = 32;

/// What a code is exchanged for.
#[derive(Debug, Clone)]
pub struct Handoff {
    /// The session the new cookie will carry.
    pub session: SessionId,
    /// Host the code may be redeemed on.
    pub host: String,
    /// [`binding`] of the nonce the redeeming browser must hold.
    pub binding: String,
}

impl Handoff {
    /// Whether `nonce` (the browser's nonce cookie, if any) is the one this
    /// code was issued for; compared in constant time.
    pub fn held_by(&self, nonce: Option<&str>) -> bool {
        let Some(nonce) = nonce.filter(|n| valid_nonce(n)) else {
            return false;
        };
        let have = binding(nonce);
        have.len() == self.binding.len()
            && bool::from(have.as_bytes().ct_eq(self.binding.as_bytes()))
    }
}

/// A fresh random nonce for the handoff cookie.
pub fn new_nonce() -> String {
    let mut bytes = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    crate::signing::b64(&bytes)
}

/// Whether a cookie value has the shape of a nonce we made.
pub fn valid_nonce(nonce: &str) -> bool {
    nonce.len() == NONCE_LEN
        && nonce
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// What the return address carries for `nonce`: its SHA-256, so the URL
/// (which passes through the portal's logs and the browser history) never
/// holds the cookie's value itself.
pub fn binding(nonce: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"portvakt/handoff-nonce/v1\0");
    h.update(nonce.as_bytes());
    crate::signing::b64(&h.finalize()[..24])
}

/// Pending codes, each valid once for a short time.
#[derive(Debug, Default)]
pub struct HandoffCodes {
    /// Keyed by code hash; values carry their deadline.
    codes: Mutex<HashMap<SessionKey, (Handoff, u64)>>,
}

impl HandoffCodes {
    /// A new code for `handoff`, valid until `deadline_ms`.
    pub fn issue(&self, handoff: Handoff, deadline_ms: u64) -> String {
        let mut bytes = [0u8; 24];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let code = crate::signing::b64(&bytes);
        let key = SessionId::hashed(&code);
        self.codes.lock().insert(key, (handoff, deadline_ms));
        code
    }

    /// Redeem `code` on `host` at `now_ms`. A code works once, only before its
    /// deadline and only on the host it was issued for; any try burns it.
    /// The caller still checks the browser's nonce ([`Handoff::held_by`]).
    pub fn redeem(&self, code: &str, host: &str, now_ms: u64) -> Option<Handoff> {
        let key = SessionId::hashed(code);
        let (handoff, deadline) = self.codes.lock().remove(&key)?;
        (now_ms < deadline && handoff.host == host).then_some(handoff)
    }

    /// Forget expired codes.
    pub fn sweep(&self, now_ms: u64) {
        self.codes
            .lock()
            .retain(|_, (_, deadline)| *deadline > now_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(sid: &SessionId, host: &str, nonce: &str) -> Handoff {
        Handoff {
            session: sid.clone(),
            host: host.into(),
            binding: binding(nonce),
        }
    }

    #[test]
    fn code_is_single_use_host_bound_and_short_lived() {
        let codes = HandoffCodes::default();
        let sid = SessionId::generate();
        let n = new_nonce();
        let c = codes.issue(h(&sid, "app.test", &n), 1_000);
        assert_eq!(
            codes.redeem(&c, "app.test", 500).map(|h| h.session),
            Some(sid.clone())
        );
        assert!(codes.redeem(&c, "app.test", 500).is_none());
        let c = codes.issue(h(&sid, "app.test", &n), 1_000);
        assert!(codes.redeem(&c, "evil.test", 500).is_none());
        assert!(
            codes.redeem(&c, "app.test", 500).is_none(),
            "burnt by the wrong host"
        );
        let c = codes.issue(h(&sid, "app.test", &n), 1_000);
        assert!(codes.redeem(&c, "app.test", 1_000).is_none());
    }

    #[test]
    fn only_the_browser_with_the_nonce_holds_the_code() {
        let sid = SessionId::generate();
        let mine = new_nonce();
        let theirs = new_nonce();
        assert!(valid_nonce(&mine));
        let handoff = h(&sid, "app.test", &mine);
        assert!(handoff.held_by(Some(&mine)));
        assert!(!handoff.held_by(Some(&theirs)));
        assert!(!handoff.held_by(None));
        assert!(!handoff.held_by(Some("")));
        // The binding itself is not the nonce (the URL never carries it).
        assert!(!handoff.held_by(Some(&handoff.binding.clone())));
        assert_ne!(binding(&mine), mine);
    }
}
