//! Seeds at rest: TOTP and token secrets are sealed with XChaCha20-Poly1305
//! under a key derived from the gateway's secret key, so a copy of the
//! database alone reveals no seed.
//!
//! The associated data names what a seed belongs to ("totp:<id>:<user>",
//! "token:<serial>"): a sealed seed copied into another row, or another
//! user's row, fails to open instead of silently working there.

use std::path::Path;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::Sha256;

use crate::signing::KeyError;

/// Label for deriving the seed key from the secret key (domain separation
/// from the signing sub-keys in [`crate::signing`]).
const KEY_LABEL: &[u8] = b"portvakt/seed-encryption/v1";

/// XChaCha20 nonce length: 24 random bytes, so random nonces never repeat
/// in practice however many seeds are sealed under one key.
const NONCE_LEN: usize = 24;

/// Poly1305 tag length.
const TAG_LEN: usize = 16;

/// A sealed seed did not open.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// Too short to hold a nonce and a tag: not something [`Sealer::seal`] made.
    #[error("sealed value is truncated ({len} bytes)")]
    Truncated {
        /// Its length.
        len: usize,
    },
    /// Authentication failed: another secret key, another row, or tampering.
    #[error(
        "sealed value does not open: the secret key changed, or the value was moved or altered"
    )]
    Forged,
    /// Encryption failed (only if the plaintext is absurdly large).
    #[error("cannot seal value")]
    Seal,
}

/// Encrypts and decrypts seeds. Cheap to clone.
#[derive(Clone)]
pub struct Sealer {
    /// The derived AEAD key; never the gateway's secret key itself.
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

impl Sealer {
    /// A sealer whose key is HMAC-SHA-256(secret, "portvakt/seed-encryption/v1").
    /// `secret` is the content of `secret_key_file` (already length-checked by
    /// whoever read it).
    pub fn from_secret(secret: &[u8]) -> Sealer {
        // HMAC takes keys of any length, so this cannot fail.
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC accepts any key length");
        mac.update(KEY_LABEL);
        let key = mac.finalize().into_bytes();
        Sealer {
            cipher: XChaCha20Poly1305::new(&key),
        }
    }

    /// A sealer from the gateway's key file (the same file and the same
    /// at-least-32-bytes rule as [`crate::signing::Signer::from_file`]).
    pub fn from_key_file(path: &Path) -> Result<Sealer, KeyError> {
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
        Ok(Sealer::from_secret(&key))
    }

    /// Encrypt `plaintext` bound to `aad`: returns nonce ‖ ciphertext ‖ tag.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);
        let ct = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .map_err(|_| SealError::Seal)?;
        let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// Decrypt a value made by [`Sealer::seal`] with the same key and `aad`.
    pub fn open(&self, blob: &[u8], aad: &[u8]) -> Result<Vec<u8>, SealError> {
        if blob.len() < NONCE_LEN + TAG_LEN {
            return Err(SealError::Truncated { len: blob.len() });
        }
        let (nonce, ct) = blob.split_at(NONCE_LEN);
        self.cipher
            .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad })
            .map_err(|_| SealError::Forged)
    }
}

/// What a device's seed is bound to: its row id, realm and user. A sealed seed
/// moved to another row, user or realm no longer opens. The realm id cannot
/// contain `:` (its rule), so the fields cannot run together; the `totp2`
/// prefix keeps these apart from the realm-less `totp:` form. Every backend
/// uses this one form, so `portvakt storage copy` moves sealed seeds as they are.
pub(crate) fn totp_aad(id: i64, who: &super::UserRef) -> Vec<u8> {
    format!("totp2:{id}:{}:{}", who.realm, who.user).into_bytes()
}

/// What a token's seed is bound to: its serial.
pub(crate) fn token_aad(serial: &str) -> Vec<u8> {
    format!("token:{serial}").into_bytes()
}

/// Open a stored seed, naming the credential if it does not open.
pub(crate) fn open_seed(
    sealer: &Sealer,
    seed: &[u8],
    aad: &[u8],
) -> Result<Vec<u8>, super::StorageError> {
    sealer
        .open(seed, aad)
        .map_err(|source| super::StorageError::Seal {
            what: String::from_utf8_lossy(aad).into_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_fresh_nonces() {
        let s = Sealer::from_secret(&[7; 32]);
        let a = s.seal(b"12345678901234567890", b"token:A1").expect("seal");
        let b = s.seal(b"12345678901234567890", b"token:A1").expect("seal");
        assert_ne!(a, b, "each seal uses a new nonce");
        assert_eq!(a.len(), NONCE_LEN + 20 + TAG_LEN);
        assert_eq!(
            s.open(&a, b"token:A1").expect("open"),
            b"12345678901234567890"
        );
        assert!(!a.windows(20).any(|w| w == b"12345678901234567890"));
    }

    #[test]
    fn wrong_aad_or_key_or_tampering_fails() {
        let s = Sealer::from_secret(&[7; 32]);
        let blob = s.seal(b"seed", b"token:A1").expect("seal");
        assert!(matches!(s.open(&blob, b"token:A2"), Err(SealError::Forged)));
        let other = Sealer::from_secret(&[8; 32]);
        assert!(matches!(
            other.open(&blob, b"token:A1"),
            Err(SealError::Forged)
        ));
        let mut bad = blob.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(matches!(s.open(&bad, b"token:A1"), Err(SealError::Forged)));
        assert!(matches!(
            s.open(&blob[..10], b"token:A1"),
            Err(SealError::Truncated { len: 10 })
        ));
    }

    #[test]
    fn key_file_must_hold_32_bytes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let short = dir.path().join("short.key");
        std::fs::write(&short, [1u8; 31]).expect("write");
        assert!(matches!(
            Sealer::from_key_file(&short),
            Err(KeyError::TooShort { len: 31, .. })
        ));
        let good = dir.path().join("good.key");
        std::fs::write(&good, [7u8; 32]).expect("write");
        let blob = Sealer::from_secret(&[7; 32])
            .seal(b"x", b"a")
            .expect("seal");
        let s = Sealer::from_key_file(&good).expect("key");
        assert_eq!(s.open(&blob, b"a").expect("same key"), b"x");
    }

    #[test]
    fn debug_shows_no_key() {
        assert_eq!(format!("{:?}", Sealer::from_secret(&[1; 32])), "Sealer(..)");
    }
}
