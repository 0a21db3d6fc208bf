//! Password hashing and checking with argon2id, off the async threads and
//! with bounded concurrency (each hash takes ~19 MiB and tens of ms).

use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

/// OWASP's argon2id minimum: m=19 MiB, t=2, p=1.
pub fn argon2() -> Argon2<'static> {
    // These constants are valid parameters; construction cannot fail.
    let params = Params::new(19 * 1024, 2, 1, None).expect("valid argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hash `password` for a users file.
pub fn hash(password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Ok(argon2()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

/// Whether `hash` is a PHC string we can verify against.
pub fn is_valid_hash(hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| h.algorithm.as_str().starts_with("argon2"))
        .unwrap_or(false)
}

/// Checks passwords on the blocking pool, at most N at once.
#[derive(Debug, Clone)]
pub struct PasswordChecker {
    permits: Arc<Semaphore>,
    /// Hash of a random password, verified when the user is unknown so an
    /// unknown name costs the same as a wrong password.
    dummy: Arc<String>,
}

impl PasswordChecker {
    /// A checker allowing `concurrency` hashes at once.
    pub fn new(concurrency: usize) -> PasswordChecker {
        let random = crate::signing::b64(&rand::random::<[u8; 16]>());
        PasswordChecker {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            dummy: Arc::new(hash(&random).unwrap_or_default()),
        }
    }

    /// Verify `password` against `hash` (or against the dummy when `hash` is
    /// `None`, which always fails).
    pub async fn verify(&self, password: &str, hash: Option<&str>) -> bool {
        let real = hash.is_some();
        let hash = hash
            .map(str::to_owned)
            .unwrap_or_else(|| (*self.dummy).clone());
        let password = password.to_owned();
        let Ok(_permit) = self.permits.acquire().await else {
            return false;
        };
        let ok = tokio::task::spawn_blocking(move || {
            PasswordHash::new(&hash)
                .map(|h| argon2().verify_password(password.as_bytes(), &h).is_ok())
                .unwrap_or(false)
        })
        .await
        .unwrap_or(false);
        ok && real
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn verifies_and_rejects() {
        let h = hash("rätt lösen").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(is_valid_hash(&h));
        assert!(!is_valid_hash("plaintext"));
        let c = PasswordChecker::new(2);
        assert!(c.verify("rätt lösen", Some(&h)).await);
        assert!(!c.verify("fel", Some(&h)).await);
        assert!(!c.verify("anything", None).await);
    }
}
