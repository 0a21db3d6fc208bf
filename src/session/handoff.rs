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

use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::SessionId;
use crate::state::{decode, encode, SharedState, StateError};
use crate::storage::Sealer;

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

/// Pending codes, each valid once for a short time, in the shared state so
/// a code issued by one gateway is redeemed on another.
///
/// The stored value carries the session id itself (the new cookie's
/// value), so it is sealed: a dump of Redis gives no usable cookie.
#[derive(Debug)]
pub struct HandoffCodes {
    state: SharedState,
    sealer: Sealer,
}

/// What a code's state entry holds (sealed).
#[derive(serde::Serialize, serde::Deserialize)]
struct Stored {
    session: String,
    host: String,
    binding: String,
    deadline_ms: u64,
}

const PREFIX: &str = "portvakt:h:";
const AAD: &[u8] = b"portvakt/state/handoff/v1";

impl HandoffCodes {
    /// Codes kept in `state`, sealed by `sealer`.
    pub fn new(state: SharedState, sealer: Sealer) -> HandoffCodes {
        HandoffCodes { state, sealer }
    }

    /// A new code for `handoff`, valid until `deadline_ms` (from `now_ms`).
    pub async fn issue(
        &self,
        handoff: Handoff,
        now_ms: u64,
        deadline_ms: u64,
    ) -> Result<String, StateError> {
        let mut bytes = [0u8; 24];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let code = crate::signing::b64(&bytes);
        let stored = Stored {
            session: handoff.session.as_str().to_owned(),
            host: handoff.host,
            binding: handoff.binding,
            deadline_ms,
        };
        let sealed = self
            .sealer
            .seal(&encode(&stored), AAD)
            .map_err(|e| StateError::Unavailable(format!("cannot seal a handoff code: {e}")))?;
        let ttl = std::time::Duration::from_millis(deadline_ms.saturating_sub(now_ms).max(1));
        self.state.put(&Self::key(&code), &sealed, ttl).await?;
        Ok(code)
    }

    fn key(code: &str) -> String {
        format!("{PREFIX}{}", crate::state::hex(&SessionId::hashed(code).0))
    }

    /// Redeem `code` on `host` at `now_ms`. A code works once, only before its
    /// deadline and only on the host it was issued for; any try burns it
    /// (taken atomically: of two gateways given one code, one gets it).
    /// The caller still checks the browser's nonce ([`Handoff::held_by`]).
    pub async fn redeem(
        &self,
        code: &str,
        host: &str,
        now_ms: u64,
    ) -> Result<Option<Handoff>, StateError> {
        let key = Self::key(code);
        let Some(sealed) = self.state.take(&key).await? else {
            return Ok(None);
        };
        let Ok(plain) = self.sealer.open(&sealed, AAD) else {
            // Not sealed by our key: nobody's code.
            return Ok(None);
        };
        let stored: Stored = decode(&key, &plain)?;
        let Some(session) = SessionId::from_cookie(&stored.session) else {
            return Ok(None);
        };
        Ok(
            (now_ms < stored.deadline_ms && stored.host == host).then_some(Handoff {
                session,
                host: stored.host,
                binding: stored.binding,
            }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::StateBackend;

    fn h(sid: &SessionId, host: &str, nonce: &str) -> Handoff {
        Handoff {
            session: sid.clone(),
            host: host.into(),
            binding: binding(nonce),
        }
    }

    fn codes() -> HandoffCodes {
        let clock = crate::clock::ManualClock::starting_at(0);
        HandoffCodes::new(
            std::sync::Arc::new(crate::state::memory::MemoryBackend::new(clock)),
            Sealer::from_secret(&[9; 32]),
        )
    }

    #[tokio::test]
    async fn code_is_single_use_host_bound_and_short_lived() {
        let codes = codes();
        let sid = SessionId::generate();
        let n = new_nonce();
        let issue = |h| codes.issue(h, 0, 1_000);
        let redeem = |c: &str, host: &'static str, now| {
            let c = c.to_owned();
            let codes = &codes;
            async move { codes.redeem(&c, host, now).await.unwrap() }
        };
        let c = issue(h(&sid, "app.test", &n)).await.unwrap();
        assert_eq!(
            redeem(&c, "app.test", 500).await.map(|h| h.session),
            Some(sid.clone())
        );
        assert!(redeem(&c, "app.test", 500).await.is_none());
        let c = issue(h(&sid, "app.test", &n)).await.unwrap();
        assert!(redeem(&c, "evil.test", 500).await.is_none());
        assert!(
            redeem(&c, "app.test", 500).await.is_none(),
            "burnt by the wrong host"
        );
        let c = issue(h(&sid, "app.test", &n)).await.unwrap();
        assert!(redeem(&c, "app.test", 1_000).await.is_none());
    }

    #[tokio::test]
    async fn the_stored_code_holds_no_usable_cookie() {
        let clock = crate::clock::ManualClock::starting_at(0);
        let state = std::sync::Arc::new(crate::state::memory::MemoryBackend::new(clock));
        let codes = HandoffCodes::new(state.clone(), Sealer::from_secret(&[9; 32]));
        let sid = SessionId::generate();
        let c = codes
            .issue(h(&sid, "app.test", &new_nonce()), 0, 1_000)
            .await
            .unwrap();
        let keys = state.keys("portvakt:h:", 10).await.unwrap();
        assert_eq!(keys.len(), 1);
        assert!(!keys[0].contains(&c), "the key is a hash of the code");
        let raw = state.get(&keys[0]).await.unwrap().unwrap();
        let raw = String::from_utf8_lossy(&raw);
        assert!(!raw.contains(sid.as_str()), "the session id is sealed");
        // Another key cannot open it: a code is nobody's there.
        let other = HandoffCodes::new(state, Sealer::from_secret(&[8; 32]));
        assert!(other.redeem(&c, "app.test", 1).await.unwrap().is_none());
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
