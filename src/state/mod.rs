//! Short-lived shared state: the one seam through which everything that
//! lives minutes, not years, is kept — sessions (when shared), handoff
//! codes, second-factor challenges and their send budgets, lockout
//! counters and pending enrolments.
//!
//! Two backends implement [`StateBackend`]:
//! - [`memory::MemoryBackend`], the default: nothing to install, gone on
//!   restart, one gateway only.
//! - [`redis::RedisBackend`] (`state: redis://…`, `rediss://…`,
//!   `redis-sentinel://…`): several gateways behind a balancer share it and
//!   behave as one.
//!
//! The primitives are chosen so that no caller needs a read-modify-write
//! across gateways: single-use values are taken atomically ([`take`]),
//! changes are compare-and-swap ([`swap`]), and rate windows are admitted
//! and recorded in one step ([`admit`]). On Redis each is one command or one
//! small Lua script, so they are atomic between gateways; expiry is Redis's
//! own TTL.
//!
//! [`take`]: StateBackend::take
//! [`swap`]: StateBackend::swap
//! [`admit`]: StateBackend::admit

#[cfg(test)]
mod cache_tests;
pub mod changes;
pub mod health;
pub mod memory;
pub mod redis;
#[cfg(test)]
mod sentinel_tests;
pub mod sessions;

#[cfg(test)]
pub(crate) mod contract;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

/// Why the state backend could not answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StateError {
    /// The backend is down, unreachable or did not answer in time.
    #[error("shared state unavailable: {0}")]
    Unavailable(String),
    /// The memory backend holds as many entries as it may.
    #[error("shared state full ({0} entries)")]
    Full(usize),
    /// A compare-and-swap kept losing to other writers.
    #[error("shared state contended: {0}")]
    Contended(&'static str),
    /// A stored value did not decode (written by another version?).
    #[error("shared state value under {key} is corrupt: {what}")]
    Corrupt {
        /// The key, without secrets (keys are hashes).
        key: String,
        /// What failed.
        what: String,
    },
}

/// A key-value store with expiry and the few atomic operations the
/// gateway's short-lived state needs. Keys are ASCII built by the callers
/// from hashes and fixed prefixes (never raw user input); values are
/// opaque bytes.
#[async_trait]
pub trait StateBackend: Send + Sync + std::fmt::Debug {
    /// `memory` or `redis`, for logs, metrics and `/readyz`.
    fn kind(&self) -> &'static str;
    /// The value under `key`, if present and not expired.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StateError>;
    /// Store `value` under `key` for `ttl`, replacing any value.
    async fn put(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), StateError>;
    /// Store `value` under `key` for `ttl` only if nothing is there; whether
    /// it was stored.
    async fn put_new(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, StateError>;
    /// Remove and return the value under `key` in one step: of several
    /// gateways taking one key at once, exactly one gets it.
    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StateError>;
    /// Remove `key`; whether it was there.
    async fn delete(&self, key: &str) -> Result<bool, StateError>;
    /// Replace the value under `key` by `new` (or remove it, `None`) only
    /// if it is still exactly `expected`; whether it was replaced. `ttl`
    /// applies to the new value.
    async fn swap(
        &self,
        key: &str,
        expected: &[u8],
        new: Option<&[u8]>,
        ttl: Duration,
    ) -> Result<bool, StateError>;
    /// A sliding-window rate check in one step: forget events under `key`
    /// older than `window` before `now_ms`; if fewer than `limit` remain,
    /// record one at `now_ms` and return `true`, else return `false`.
    async fn admit(
        &self,
        key: &str,
        now_ms: u64,
        window: Duration,
        limit: u32,
    ) -> Result<bool, StateError>;
    /// Keys starting with `prefix`, at most `limit` of them (admin
    /// listings and sweeps; not on the request path).
    async fn keys(&self, prefix: &str, limit: usize) -> Result<Vec<String>, StateError>;
    /// Whether the backend answers (for `/readyz`).
    async fn ping(&self) -> Result<(), StateError>;
    /// Drop what has expired, if the backend does not do it by itself
    /// (Redis does; the memory backend is swept by the gateway's sweeper).
    fn sweep(&self) {}
    /// Tell every gateway's [`changes`](Self::changes) that this gateway
    /// changed `key` (Redis: one PUBLISH). Default: there is nobody to tell.
    async fn announce(&self, _key: &str) -> Result<(), StateError> {
        Ok(())
    }
    /// Changes made by any gateway, for a local cache, if this backend
    /// reports them; `None`: no cache may be kept in front of it.
    fn changes(&self) -> Option<Arc<changes::ChangeFeed>> {
        None
    }
}

/// The shared handle used throughout the gateway.
pub type SharedState = Arc<dyn StateBackend>;

/// How many times a compare-and-swap is retried before giving up: two
/// gateways changing one login's record at the same moment is rare, a
/// hundred in a row is a bug or an attack, never a reason to loop.
pub const SWAP_TRIES: usize = 16;

/// Change the JSON value under `key` by `change` with compare-and-swap,
/// retried at most [`SWAP_TRIES`] times; `None` when there is no value.
/// `change` sees the current value and returns what to do; it may run more
/// than once, so it must not have side effects. A new value is kept for
/// `ttl_of(new)`.
pub async fn update<T, R>(
    state: &dyn StateBackend,
    key: &str,
    ttl_of: impl Fn(&T) -> Duration,
    change: impl Fn(T) -> (Change<T>, R),
) -> Result<Option<R>, StateError>
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    for _ in 0..SWAP_TRIES {
        let Some(raw) = state.get(key).await? else {
            return Ok(None);
        };
        let current: T = decode(key, &raw)?;
        let (change, result) = change(current);
        let done = match change {
            Change::Keep => return Ok(Some(result)),
            Change::Remove => state.swap(key, &raw, None, Duration::ZERO).await?,
            Change::Set(new) => {
                state
                    .swap(key, &raw, Some(&encode(&new)), ttl_of(&new))
                    .await?
            }
        };
        if done {
            return Ok(Some(result));
        }
    }
    Err(StateError::Contended("update"))
}

/// What [`update`] should do with a value.
#[derive(Debug)]
pub enum Change<T> {
    /// Leave it as it is.
    Keep,
    /// Replace it.
    Set(T),
    /// Remove it.
    Remove,
}

/// A value as stored (JSON: readable with `redis-cli` when debugging, and
/// tolerant of added fields across versions).
pub fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    // Serialising our own plain structs cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

/// Decode a stored value.
pub fn decode<T: serde::de::DeserializeOwned>(key: &str, raw: &[u8]) -> Result<T, StateError> {
    serde_json::from_slice(raw).map_err(|e| StateError::Corrupt {
        key: key.to_owned(),
        what: e.to_string(),
    })
}

/// Lower-case hex of a hash, for keys.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Open the backend named by `url` (`None`: memory), with `timeout` for
/// every command and, for `rediss://`, `ca_file` as the only trusted CA
/// (`None`: the system's).
pub fn open(
    url: Option<&str>,
    timeout: Duration,
    ca_file: Option<&std::path::Path>,
    clock: crate::clock::SharedClock,
) -> Result<SharedState, StateError> {
    match url {
        None => Ok(Arc::new(memory::MemoryBackend::new(clock))),
        Some(url) => Ok(Arc::new(redis::RedisBackend::connect(
            url, timeout, ca_file,
        )?)),
    }
}
