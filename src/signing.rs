//! The gateway's secret key and what it signs: return addresses, CSRF tokens
//! and the keyed hashes of cached Basic credentials.

use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// URL-safe base64 without padding.
pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Errors reading the key file.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file could not be read.
    #[error("cannot read secret key file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is too short to be a key.
    #[error("secret key file {path} holds {len} bytes; at least 32 random bytes are needed (e.g. `head -c 32 /dev/urandom > {path}`)")]
    TooShort {
        /// The file.
        path: String,
        /// Its length.
        len: usize,
    },
}

/// The secret key. Sub-keys per purpose keep a token of one kind from being
/// accepted as another.
#[derive(Clone)]
pub struct Signer {
    key: Vec<u8>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(..)")
    }
}

/// What a MAC is for (domain separation).
#[derive(Debug, Clone, Copy)]
pub enum Purpose {
    /// A return address.
    Return,
    /// The login form's CSRF token, bound to the flow cookie.
    LoginCsrf,
    /// A logged-in form's CSRF token, bound to the session.
    SessionCsrf,
    /// Cached Basic credentials.
    BasicCache,
    /// The admin listener's sessions API token.
    AdminApi,
    /// The pepper of one-time code hashes (the same on every gateway with
    /// this key, so a code sent by one is checked by another).
    CodePepper,
    /// The key that seals values in the shared state (handoff codes,
    /// pending enrolments).
    StateSeal,
    /// The key that seals the assertion signing keys at rest (file or
    /// shared state): the same on every gateway with this secret key.
    AssertionKeys,
    /// The decoy credential ids shown for a name with no passkey (the same
    /// on every gateway with this key, so a balancer does not give it away).
    PasskeyDecoy,
}

impl Purpose {
    fn label(self) -> &'static [u8] {
        match self {
            Purpose::Return => b"portvakt/return/v1",
            Purpose::LoginCsrf => b"portvakt/login-csrf/v1",
            Purpose::SessionCsrf => b"portvakt/session-csrf/v1",
            Purpose::BasicCache => b"portvakt/basic-cache/v1",
            Purpose::AdminApi => b"portvakt/admin-api/v1",
            Purpose::CodePepper => b"portvakt/code-pepper/v1",
            Purpose::StateSeal => b"portvakt/state-seal/v1",
            Purpose::AssertionKeys => b"portvakt/assertion-keys/v1",
            Purpose::PasskeyDecoy => b"portvakt/passkey-decoy/v1",
        }
    }
}

impl Signer {
    /// Read the key from `path` (binary or text, at least 32 bytes).
    pub fn from_file(path: &Path) -> Result<Signer, KeyError> {
        let key = std::fs::read(path).map_err(|source| KeyError::Read {
            path: path.display().to_string(),
            source,
        })?;
        if key.len() < 32 {
            return Err(KeyError::TooShort {
                path: path.display().to_string(),
                len: key.len(),
            });
        }
        Ok(Signer { key })
    }

    /// A signer from raw bytes (tests, demo).
    pub fn from_bytes(key: &[u8]) -> Signer {
        Signer { key: key.to_vec() }
    }

    /// HMAC-SHA-256 of `data` for `purpose`.
    pub fn mac(&self, purpose: Purpose, data: &[u8]) -> [u8; 32] {
        // Keys are any length; new_from_slice cannot fail for HMAC.
        let mut m = HmacSha256::new_from_slice(&self.key).expect("HMAC accepts any key length");
        m.update(purpose.label());
        m.update(&[0]);
        m.update(data);
        m.finalize().into_bytes().into()
    }

    /// A token `payload.mac`, both base64url.
    pub fn sign(&self, purpose: Purpose, payload: &str) -> String {
        let mac = self.mac(purpose, payload.as_bytes());
        format!("{}.{}", b64(payload.as_bytes()), b64(&mac[..20]))
    }

    /// The payload of a token made by [`Signer::sign`], if the MAC holds.
    pub fn verify(&self, purpose: Purpose, token: &str) -> Option<String> {
        let (p, m) = token.split_once('.')?;
        let payload = URL_SAFE_NO_PAD.decode(p).ok()?;
        let mac = URL_SAFE_NO_PAD.decode(m).ok()?;
        let want = self.mac(purpose, &payload);
        if mac.len() != 20 || !bool::from(want[..20].ct_eq(&mac)) {
            return None;
        }
        String::from_utf8(payload).ok()
    }

    /// A CSRF token bound to `binding` (flow id or session key).
    pub fn csrf(&self, purpose: Purpose, binding: &[u8]) -> String {
        b64(&self.mac(purpose, binding)[..24])
    }

    /// Check a CSRF token in constant time.
    pub fn csrf_ok(&self, purpose: Purpose, binding: &[u8], token: &str) -> bool {
        let want = self.csrf(purpose, binding);
        want.len() == token.len() && bool::from(want.as_bytes().ct_eq(token.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_and_resist_tampering() {
        let s = Signer::from_bytes(&[7; 32]);
        let t = s.sign(Purpose::Return, "https://app.test/x");
        assert_eq!(
            s.verify(Purpose::Return, &t).as_deref(),
            Some("https://app.test/x")
        );
        let mut bad = t.clone();
        bad.replace_range(0..1, if t.starts_with('a') { "b" } else { "a" });
        assert_eq!(s.verify(Purpose::Return, &bad), None);
        // A token for one purpose is no good for another.
        assert_eq!(s.verify(Purpose::LoginCsrf, &t), None);
        // Another key rejects it.
        assert_eq!(
            Signer::from_bytes(&[8; 32]).verify(Purpose::Return, &t),
            None
        );
        assert!(s.csrf_ok(
            Purpose::LoginCsrf,
            b"flow",
            &s.csrf(Purpose::LoginCsrf, b"flow")
        ));
        assert!(!s.csrf_ok(
            Purpose::LoginCsrf,
            b"flow2",
            &s.csrf(Purpose::LoginCsrf, b"flow")
        ));
    }
}
