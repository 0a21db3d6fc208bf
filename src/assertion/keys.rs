//! The signing keys of identity assertions: an ES256 (ECDSA P-256) key ring,
//! rotated on a schedule, persisted sealed, published as a JWKS.
//!
//! # Life of a key
//! The newest key signs. When it is `rotate_every` old, the next request (or
//! JWKS fetch) makes a new one, which signs from then on; the previous key
//! stays in the JWKS for `overlap`, so tokens it signed just before the
//! rotation (and requests in flight with the old ring) still verify. After
//! that it is retired: gone from the ring and from the JWKS. Rotation reads
//! the [`Clock`](crate::clock::Clock) passed in as `now_ms`, so tests move
//! time instead of sleeping.
//!
//! # Where the ring lives
//! - One gateway (`state: memory`): a file in the state directory, mode
//!   0600, sealed with a key derived from `secret_key_file`. A file anyone
//!   else may read is refused, not used.
//! - Several gateways (`state: redis…`): one value in the shared state,
//!   sealed the same way, created with "set if absent" and rotated with
//!   compare-and-swap, so gateways starting or rotating at the same moment
//!   agree on one key, and every gateway's JWKS lists the key any of them
//!   signs with.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::signing::b64;
use crate::state::{SharedState, StateError};
use crate::storage::crypto::{SealError, Sealer};

/// The shared-state key of the ring (several gateways).
pub const STATE_KEY: &str = "portvakt:assertion:keys";

/// The file name of the ring in the state directory (one gateway).
pub const FILE_NAME: &str = "assertion-keys.sealed";

/// What the sealed ring is bound to: a sealed blob of anything else (a
/// handoff code, a seed) does not open as a key ring, nor the reverse.
const AAD: &[u8] = b"portvakt/assertion-keys/v1";

/// How long the shared copy lives without a rotation rewriting it. Only a
/// fleet that is down longer than this loses its keys (and makes new ones).
const SHARED_TTL: Duration = Duration::from_secs(400 * 24 * 3600);

/// How many times a lost compare-and-swap is retried.
const TRIES: usize = 8;

/// Why the key ring could not be read, made or stored.
#[derive(Debug, thiserror::Error)]
pub enum KeyRingError {
    /// The ring file could not be read or written.
    #[error("assertion key ring {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The ring file may be read by others than the gateway's user.
    #[error("assertion key ring {path} has mode {mode:o}: it holds private keys; run `chmod 600 {path}`")]
    Permissions {
        /// The file.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
    /// The sealed ring did not open.
    #[error(
        "assertion key ring in {place} does not open (was secret_key_file changed?): {source}"
    )]
    Sealed {
        /// File or shared state.
        place: String,
        /// Why.
        source: SealError,
    },
    /// The ring opened but does not decode, or holds a bad key.
    #[error("assertion key ring in {place} is corrupt: {what}")]
    Corrupt {
        /// File or shared state.
        place: String,
        /// What failed.
        what: String,
    },
    /// The shared state did not answer.
    #[error("assertion key ring: {0}")]
    State(#[from] StateError),
    /// The ring kept changing under us (other gateways rotating).
    #[error("assertion key ring: lost {TRIES} races to update the shared ring")]
    Contended,
    /// The crypto library refused (no randomness, a bad key).
    #[error("assertion key: {0}")]
    Crypto(&'static str),
}

/// When keys change: from `assertion:` in the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// Age at which the signing key is replaced.
    pub rotate_every: Duration,
    /// How long a replaced key stays published.
    pub overlap: Duration,
}

/// One ES256 key.
pub struct SigningKey {
    /// RFC 7638 JWK thumbprint (SHA-256, base64url): the `kid`. Derived
    /// from the public key, so two gateways can never give one kid to
    /// different keys.
    pub kid: String,
    /// When it was made (ms since the epoch, by the gateway's clock).
    pub created_ms: u64,
    /// The key pair (ring keeps the private half out of `Debug`).
    pair: EcdsaKeyPair,
    /// PKCS#8 document, for persisting.
    pkcs8: Vec<u8>,
    /// Public point coordinates, base64url (JWK `x`, `y`).
    x: String,
    y: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the private key.
        write!(f, "SigningKey({}, {})", self.kid, self.created_ms)
    }
}

impl SigningKey {
    /// A fresh key from the OS CSPRNG.
    pub fn generate(created_ms: u64) -> Result<SigningKey, KeyRingError> {
        let rng = SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| KeyRingError::Crypto("cannot generate a P-256 key"))?;
        SigningKey::from_pkcs8(doc.as_ref().to_vec(), created_ms)
    }

    /// A key from its PKCS#8 document.
    pub fn from_pkcs8(pkcs8: Vec<u8>, created_ms: u64) -> Result<SigningKey, KeyRingError> {
        let rng = SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8, &rng)
            .map_err(|_| KeyRingError::Crypto("not a P-256 PKCS#8 key"))?;
        // Uncompressed SEC1 point: 0x04 ‖ x (32) ‖ y (32).
        let point = pair.public_key().as_ref();
        if point.len() != 65 || point[0] != 4 {
            return Err(KeyRingError::Crypto("unexpected public key encoding"));
        }
        let x = b64(&point[1..33]);
        let y = b64(&point[33..65]);
        // RFC 7638 §3.2: the required members in lexicographic order, no spaces.
        let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let kid = b64(&Sha256::digest(canonical.as_bytes()));
        Ok(SigningKey {
            kid,
            created_ms,
            pair,
            pkcs8,
            x,
            y,
        })
    }

    /// The ES256 signature (r ‖ s, 64 bytes, as JWS wants it) of `message`.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyRingError> {
        self.pair
            .sign(&SystemRandom::new(), message)
            .map(|s| s.as_ref().to_vec())
            .map_err(|_| KeyRingError::Crypto("signing failed"))
    }

    /// The public key as a JWK.
    pub fn jwk(&self) -> serde_json::Value {
        serde_json::json!({
            "kty": "EC",
            "crv": "P-256",
            "x": self.x,
            "y": self.y,
            "kid": self.kid,
            "alg": "ES256",
            "use": "sig",
        })
    }

    /// The uncompressed public point (tests verify with it).
    pub fn public_point(&self) -> &[u8] {
        self.pair.public_key().as_ref()
    }
}

/// The keys at one moment, oldest first; the last one signs.
#[derive(Debug, Default)]
pub struct Ring {
    keys: Vec<Arc<SigningKey>>,
}

/// The ring as stored (inside the seal).
#[derive(Serialize, Deserialize)]
struct StoredRing {
    keys: Vec<StoredKey>,
}

#[derive(Serialize, Deserialize)]
struct StoredKey {
    created_ms: u64,
    /// PKCS#8, base64url.
    pkcs8: String,
}

impl Ring {
    /// The key that signs now, if there is one.
    pub fn current(&self) -> Option<&Arc<SigningKey>> {
        self.keys.last()
    }

    /// Whether the signing key must be replaced at `now_ms` (or there is none).
    pub fn due(&self, now_ms: u64, r: Rotation) -> bool {
        match self.current() {
            None => true,
            Some(k) => now_ms >= k.created_ms.saturating_add(millis(r.rotate_every)),
        }
    }

    /// Keys still published at `now_ms`: the signing key, and each older
    /// key until `overlap` after its successor was made.
    pub fn published(&self, now_ms: u64, r: Rotation) -> impl Iterator<Item = &Arc<SigningKey>> {
        let overlap = millis(r.overlap);
        self.keys
            .iter()
            .enumerate()
            .filter(move |(i, _)| {
                self.keys
                    .get(i + 1)
                    .is_none_or(|next| now_ms < next.created_ms.saturating_add(overlap))
            })
            .map(|(_, k)| k)
    }

    /// This ring with a new signing key made at `now_ms` and retired keys dropped.
    pub fn rotated(&self, now_ms: u64, r: Rotation) -> Result<Ring, KeyRingError> {
        let mut keys: Vec<Arc<SigningKey>> = self.keys.clone();
        keys.push(Arc::new(SigningKey::generate(now_ms)?));
        let ring = Ring { keys };
        let keys = ring.published(now_ms, r).cloned().collect();
        Ok(Ring { keys })
    }

    /// The JWKS document (RFC 7517) of the keys published at `now_ms`.
    pub fn jwks(&self, now_ms: u64, r: Rotation) -> serde_json::Value {
        let keys: Vec<serde_json::Value> = self.published(now_ms, r).map(|k| k.jwk()).collect();
        serde_json::json!({ "keys": keys })
    }

    fn encode(&self) -> Vec<u8> {
        let stored = StoredRing {
            keys: self
                .keys
                .iter()
                .map(|k| StoredKey {
                    created_ms: k.created_ms,
                    pkcs8: b64(&k.pkcs8),
                })
                .collect(),
        };
        crate::state::encode(&stored)
    }

    fn decode(place: &str, plain: &[u8]) -> Result<Ring, KeyRingError> {
        let corrupt = |what: String| KeyRingError::Corrupt {
            place: place.to_owned(),
            what,
        };
        let stored: StoredRing =
            serde_json::from_slice(plain).map_err(|e| corrupt(e.to_string()))?;
        let mut keys = Vec::with_capacity(stored.keys.len());
        for k in stored.keys {
            let der = URL_SAFE_NO_PAD
                .decode(&k.pkcs8)
                .map_err(|e| corrupt(e.to_string()))?;
            keys.push(Arc::new(SigningKey::from_pkcs8(der, k.created_ms)?));
        }
        Ok(Ring { keys })
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Where the ring is kept.
#[derive(Debug)]
pub enum Place {
    /// A file of this gateway's own (one gateway).
    File(PathBuf),
    /// The shared state (several gateways).
    Shared(SharedState),
}

impl Place {
    fn name(&self) -> String {
        match self {
            Place::File(p) => p.display().to_string(),
            Place::Shared(s) => format!("the shared state ({}) under {STATE_KEY}", s.kind()),
        }
    }
}

/// The gateway's key ring: an in-memory copy read without locks on every
/// request, and the stored copy it is loaded from and rotated in.
#[derive(Debug)]
pub struct KeyRing {
    /// What requests sign with: swapped whole, so a request that loaded the
    /// ring keeps a consistent one while another rotates it.
    ring: ArcSwap<Ring>,
    /// One load or rotation at a time in this process (others wait, then
    /// find it done).
    busy: tokio::sync::Mutex<()>,
    /// Where it is stored.
    place: Place,
    /// Seals the stored copy.
    sealer: Sealer,
}

impl KeyRing {
    /// An empty ring kept at `place`; loaded (or made) on first use.
    pub fn new(place: Place, sealer: Sealer) -> KeyRing {
        KeyRing {
            ring: ArcSwap::from_pointee(Ring::default()),
            busy: tokio::sync::Mutex::new(()),
            place,
            sealer,
        }
    }

    /// The ring as of `now_ms`: loaded, created or rotated first if needed.
    /// The fast path is one atomic load and a comparison.
    pub async fn at(&self, now_ms: u64, r: Rotation) -> Result<Arc<Ring>, KeyRingError> {
        let ring = self.ring.load_full();
        if !ring.due(now_ms, r) {
            return Ok(ring);
        }
        let _one = self.busy.lock().await;
        let ring = self.ring.load_full();
        if !ring.due(now_ms, r) {
            return Ok(ring);
        }
        self.settle(now_ms, r).await
    }

    /// Re-read the stored ring (another gateway may have rotated it) and
    /// rotate if due. For the JWKS with shared state: every gateway must
    /// publish the key any of them signs with.
    pub async fn refreshed(&self, now_ms: u64, r: Rotation) -> Result<Arc<Ring>, KeyRingError> {
        if matches!(self.place, Place::File(_)) {
            return self.at(now_ms, r).await;
        }
        let _one = self.busy.lock().await;
        self.settle(now_ms, r).await
    }

    /// Load, create or rotate the stored ring and adopt the result.
    async fn settle(&self, now_ms: u64, r: Rotation) -> Result<Arc<Ring>, KeyRingError> {
        for _ in 0..TRIES {
            let stored = self.load().await?;
            let (expected, ring) = match stored {
                Some((_, ring)) if !ring.due(now_ms, r) => {
                    return Ok(self.adopt(ring));
                }
                Some((raw, ring)) => (Some(raw), ring),
                None => (None, Ring::default()),
            };
            let next = ring.rotated(now_ms, r)?;
            if self.store(expected.as_deref(), &next).await? {
                if let Some(k) = next.current() {
                    tracing::info!(kid = %k.kid, place = %self.place.name(), "assertion signing key created");
                }
                return Ok(self.adopt(next));
            }
        }
        Err(KeyRingError::Contended)
    }

    fn adopt(&self, ring: Ring) -> Arc<Ring> {
        let ring = Arc::new(ring);
        self.ring.store(ring.clone());
        ring
    }

    /// The stored ring and its raw (sealed) bytes, for compare-and-swap.
    async fn load(&self) -> Result<Option<(Vec<u8>, Ring)>, KeyRingError> {
        let raw = match &self.place {
            Place::File(path) => read_private(path)?,
            Place::Shared(state) => state.get(STATE_KEY).await?,
        };
        let Some(raw) = raw else { return Ok(None) };
        let place = self.place.name();
        let plain = self
            .sealer
            .open(&raw, AAD)
            .map_err(|source| KeyRingError::Sealed {
                place: place.clone(),
                source,
            })?;
        Ok(Some((raw, Ring::decode(&place, &plain)?)))
    }

    /// Store `ring` if the stored copy is still `expected` (`None`: absent);
    /// whether it was stored.
    async fn store(&self, expected: Option<&[u8]>, ring: &Ring) -> Result<bool, KeyRingError> {
        let sealed =
            self.sealer
                .seal(&ring.encode(), AAD)
                .map_err(|source| KeyRingError::Sealed {
                    place: self.place.name(),
                    source,
                })?;
        match &self.place {
            // One gateway owns the file and `busy` orders its writers.
            Place::File(path) => write_private(path, &sealed).map(|()| true),
            Place::Shared(state) => Ok(match expected {
                None => state.put_new(STATE_KEY, &sealed, SHARED_TTL).await?,
                Some(old) => {
                    state
                        .swap(STATE_KEY, old, Some(&sealed), SHARED_TTL)
                        .await?
                }
            }),
        }
    }
}

/// The file's bytes, if it exists and only its owner may read it.
fn read_private(path: &Path) -> Result<Option<Vec<u8>>, KeyRingError> {
    use std::os::unix::fs::PermissionsExt;
    let io = |source| KeyRingError::Io {
        path: path.display().to_string(),
        source,
    };
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyRingError::Permissions {
            path: path.display().to_string(),
            mode,
        });
    }
    std::fs::read(path).map(Some).map_err(io)
}

/// Write `bytes` to `path` atomically (temporary file, then rename), mode
/// 0600 from the moment the file exists.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), KeyRingError> {
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| KeyRingError::Io {
        path: path.display().to_string(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io)
}

#[cfg(test)]
#[path = "keys_tests.rs"]
mod tests;
