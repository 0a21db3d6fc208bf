//! HTTP Basic credentials for non-browser clients on internal networks:
//! verified once, then remembered under a keyed hash for a short time so the
//! proxy does not run argon2 on every request.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use parking_lot::Mutex;

use crate::session::Session;
use crate::signing::{Purpose, Signer};

/// Decoded `Authorization: Basic` credentials.
pub struct Credentials {
    /// User name.
    pub user: String,
    /// Password (never logged).
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, ..)", self.user)
    }
}

/// Parse an `Authorization` header value, if it is Basic.
pub fn parse(header: &[u8]) -> Option<Credentials> {
    let text = std::str::from_utf8(header).ok()?;
    let (scheme, rest) = text.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(rest.trim()).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some(Credentials {
        user: user.to_owned(),
        password: password.to_owned(),
    })
}

/// An identity and the time (ms) it stops being trusted.
type Cached = (Arc<Session>, u64);

/// Verified credentials → the identity they proved, until a deadline.
#[derive(Debug)]
pub struct BasicCache {
    ttl: Duration,
    entries: Mutex<HashMap<[u8; 32], Cached>>,
}

impl BasicCache {
    /// A cache keeping entries for `ttl`.
    pub fn new(ttl: Duration) -> BasicCache {
        BasicCache {
            ttl,
            entries: Mutex::default(),
        }
    }

    /// Keyed hash of realm + credentials: the cache never holds a password.
    pub fn key(signer: &Signer, realm: &str, c: &Credentials) -> [u8; 32] {
        let material = format!("{realm}\0{}\0{}", c.user, c.password);
        signer.mac(Purpose::BasicCache, material.as_bytes())
    }

    /// The identity for `key`, if verified recently.
    pub fn get(&self, key: &[u8; 32], now_ms: u64) -> Option<Arc<Session>> {
        let mut entries = self.entries.lock();
        match entries.get(key) {
            Some((s, deadline)) if *deadline > now_ms => Some(s.clone()),
            Some(_) => {
                entries.remove(key);
                None
            }
            None => None,
        }
    }

    /// Remember a verified identity.
    pub fn put(&self, key: [u8; 32], session: Arc<Session>, now_ms: u64) {
        let deadline = now_ms + self.ttl.as_millis() as u64;
        let mut entries = self.entries.lock();
        // Bound the memory an attacker with many valid accounts could use.
        if entries.len() > 10_000 {
            entries.retain(|_, (_, d)| *d > now_ms);
        }
        entries.insert(key, (session, deadline));
    }

    /// Forget expired entries.
    pub fn sweep(&self, now_ms: u64) {
        self.entries.lock().retain(|_, (_, d)| *d > now_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_basic_only() {
        let c = parse(b"Basic YWxpY2U6cMOkc3M=").unwrap();
        assert_eq!((c.user.as_str(), c.password.as_str()), ("alice", "päss"));
        assert!(parse(b"Bearer abc").is_none());
        assert!(parse(b"Basic !!!").is_none());
        assert!(!format!("{c:?}").contains("päss"));
    }

    #[test]
    fn cache_expires_and_is_keyed_by_secret() {
        let signer = Signer::from_bytes(&[1; 32]);
        let c = parse(b"Basic YWxpY2U6cMOkc3M=").unwrap();
        let k = BasicCache::key(&signer, "staff", &c);
        assert_ne!(
            k,
            BasicCache::key(&Signer::from_bytes(&[2; 32]), "staff", &c)
        );
        let cache = BasicCache::new(Duration::from_secs(1));
        cache.put(k, Arc::new(crate::testutil::new_session(0)), 0);
        assert!(cache.get(&k, 999).is_some());
        assert!(cache.get(&k, 1000).is_none());
    }
}
