//! Handoff codes: after login on the portal host, the browser is sent to
//! `https://service-host/.portvakt/handoff?code=…`, where the code is traded
//! once for a host-only cookie bound to the same server-side session.

use std::collections::HashMap;

use parking_lot::Mutex;
use rand::RngCore;

use super::{SessionId, SessionKey};

/// What a code is exchanged for.
#[derive(Debug, Clone)]
pub struct Handoff {
    /// The session the new cookie will carry.
    pub session: SessionId,
    /// Host the code may be redeemed on.
    pub host: String,
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
    /// deadline and only on the host it was issued for.
    pub fn redeem(&self, code: &str, host: &str, now_ms: u64) -> Option<SessionId> {
        let key = SessionId::hashed(code);
        let (handoff, deadline) = self.codes.lock().remove(&key)?;
        (now_ms < deadline && handoff.host == host).then_some(handoff.session)
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

    #[test]
    fn code_is_single_use_host_bound_and_short_lived() {
        let codes = HandoffCodes::default();
        let sid = SessionId::generate();
        let h = |host: &str| Handoff {
            session: sid.clone(),
            host: host.into(),
        };
        let c = codes.issue(h("app.test"), 1_000);
        assert_eq!(codes.redeem(&c, "app.test", 500), Some(sid.clone()));
        assert_eq!(codes.redeem(&c, "app.test", 500), None);
        let c = codes.issue(h("app.test"), 1_000);
        assert_eq!(codes.redeem(&c, "evil.test", 500), None);
        assert_eq!(
            codes.redeem(&c, "app.test", 500),
            None,
            "burnt by the wrong host"
        );
        let c = codes.issue(h("app.test"), 1_000);
        assert_eq!(codes.redeem(&c, "app.test", 1_000), None);
    }
}
