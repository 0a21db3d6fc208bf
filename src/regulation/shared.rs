//! The records of the [`Regulator`](super::Regulator) in the shared state
//! backend, so that every gateway sharing it counts into one record per
//! user and per address.
//!
//! Each record is one JSON value (the [`Record`] of `table.rs`, plus the
//! readable name for listings) under a key that never contains the name
//! itself: `portvakt:lu:` + SHA-256 hex of `realm \0 folded-name` for users,
//! `portvakt:li:4:<ipv4>` / `portvakt:li:6:<upper 64 bits, hex>` for
//! address buckets. A change is a compare-and-swap of the whole value
//! (created with `put_new`), retried with a short random pause when another
//! gateway changed it first: two gateways counting a failure at the same
//! moment both get counted, neither overwrites the other.
//!
//! Expiry is the record's own: the end of its lock, of its newest failure's
//! window, or of the run's memory ([`HOLD`](super::HOLD)), whichever is
//! last. A held record is kept for [`HELD_TTL`], which is "until an
//! administrator clears it" in practice while keeping Redis bounded.

use std::net::Ipv4Addr;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::table::{Record, Rules};
use super::{IpBucket, UserKey};
use crate::state::{decode, encode, hex, StateBackend, StateError};

/// Prefix of user records.
pub(super) const USERS: &str = "portvakt:lu:";
/// Prefix of address records.
pub(super) const ADDRESSES: &str = "portvakt:li:";

/// How long a held record is kept without news: the hold is lifted by an
/// administrator, not by time, but a record that nobody has cleared in
/// over a year belongs to an account long gone (and Redis stays bounded).
pub const HELD_TTL: Duration = Duration::from_secs(400 * 24 * 3600);

/// How many compare-and-swap rounds one change may take. Each round some
/// writer wins, so this is "more gateways failing on one name in the same
/// millisecond than there are": past it the change reports
/// [`StateError::Contended`] rather than looping.
const TRIES: u32 = 64;

/// Records listed at most by [`crate::regulation::Regulator::lockouts`].
pub(super) const LIST_LIMIT: usize = 100_000;

/// A record as stored: who it is for (shown in listings), and the record.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(super) struct Stored {
    /// The realm id (users only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) realm: Option<String>,
    /// The folded user name (users only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) name: Option<String>,
    #[serde(flatten)]
    pub(super) record: Record,
}

/// The key of `user`'s record: a hash, never the name (a name may hold any
/// character, `*` and spaces included, and is nobody's business in a key
/// listing).
pub(super) fn user_key(user: &UserKey) -> String {
    let mut h = Sha256::new();
    h.update(user.realm().as_bytes());
    h.update([0u8]);
    h.update(user.name().as_bytes());
    format!("{USERS}{}", hex(&h.finalize()))
}

/// The key of an address bucket's record.
pub(super) fn ip_key(bucket: &IpBucket) -> String {
    match bucket {
        IpBucket::V4(v4) => format!("{ADDRESSES}4:{v4}"),
        IpBucket::V6(prefix) => format!("{ADDRESSES}6:{prefix:016x}"),
    }
}

/// The bucket an address key names (for listings).
pub(super) fn bucket_of(key: &str) -> Option<IpBucket> {
    let rest = key.strip_prefix(ADDRESSES)?;
    if let Some(v4) = rest.strip_prefix("4:") {
        return v4.parse::<Ipv4Addr>().ok().map(IpBucket::V4);
    }
    let v6 = rest.strip_prefix("6:")?;
    u64::from_str_radix(v6, 16).ok().map(IpBucket::V6)
}

/// The record under `key`, if any.
pub(super) async fn read(
    state: &dyn StateBackend,
    key: &str,
) -> Result<Option<Stored>, StateError> {
    match state.get(key).await? {
        Some(raw) => decode(key, &raw).map(Some),
        None => Ok(None),
    }
}

/// Change the record under `key` (a fresh one, `fresh`, when there is
/// none) by `change`, atomically with respect to every other gateway.
/// `change` may run more than once (it sees the current record each time).
pub(super) async fn change<R>(
    state: &dyn StateBackend,
    key: &str,
    fresh: impl Fn() -> Stored,
    now: u64,
    rules: &Rules,
    change: impl Fn(&mut Record) -> R,
) -> Result<R, StateError> {
    for round in 0..TRIES {
        let raw = state.get(key).await?;
        let mut stored = match &raw {
            Some(raw) => decode(key, raw)?,
            None => fresh(),
        };
        let out = change(&mut stored.record);
        let ttl = match stored.record.matters_until(rules) {
            None => HELD_TTL,
            Some(until) => Duration::from_millis(until.saturating_sub(now)),
        };
        let new = (!ttl.is_zero()).then(|| encode(&stored));
        let done = match (&raw, &new) {
            (None, None) => true,
            (None, Some(v)) => state.put_new(key, v, ttl).await?,
            (Some(old), new) if new.as_ref() == Some(old) => true,
            (Some(old), new) => state.swap(key, old, new.as_deref(), ttl).await?,
        };
        if done {
            return Ok(out);
        }
        // Someone else changed it between our read and our write: let them
        // finish, then read again. Random, so two losers do not collide
        // again in lock-step.
        let pause = rand::random::<u64>() % (100 * u64::from(round + 1));
        tokio::time::sleep(Duration::from_micros(pause)).await;
    }
    Err(StateError::Contended("lockout record"))
}

/// Remove the record under `key`; it, if there was one.
pub(super) async fn take(
    state: &dyn StateBackend,
    key: &str,
) -> Result<Option<Stored>, StateError> {
    match state.take(key).await? {
        Some(raw) => decode(key, &raw).map(Some),
        None => Ok(None),
    }
}
