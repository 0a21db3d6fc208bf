//! The session store seam. The gateway logic only sees this trait; the memory
//! store is the default and Redis can follow as one more module.

use std::sync::Arc;

use async_trait::async_trait;

use super::{Session, SessionKey};

/// Where sessions live.
#[async_trait]
pub trait SessionStore: Send + Sync + std::fmt::Debug {
    /// The session under `key`, if any (expiry is the caller's check).
    async fn get(&self, key: &SessionKey) -> Option<Arc<Session>>;
    /// Store a session.
    async fn insert(&self, key: SessionKey, session: Arc<Session>);
    /// Replace the session under `key` by `change(current)` in one step, only
    /// if it is still there; returns the new session. A session removed in
    /// the meantime (logout, revoke, expiry sweep) stays removed, which a
    /// `get` … `insert` pair around a slow password check would undo.
    async fn update(
        &self,
        key: &SessionKey,
        change: &(dyn for<'s> Fn(&'s Session) -> Session + Send + Sync),
    ) -> Option<Arc<Session>>;
    /// Delete a session; returns it if it existed.
    async fn remove(&self, key: &SessionKey) -> Option<Arc<Session>>;
    /// The idle clock of `key` moved (coalesced: called only when it moved
    /// by more than a granularity). A memory store has nothing to do.
    async fn touched(&self, key: &SessionKey, session: &Session);
    /// Remove sessions expired at `now_ms`; returns the removed ones.
    async fn sweep(&self, now_ms: u64, idle_ms: u64, lifetime_ms: u64) -> Vec<Arc<Session>>;
    /// Every session with its key (for `portvakt sessions list` and revoke).
    async fn list(&self) -> Vec<(SessionKey, Arc<Session>)>;
    /// Number of live sessions.
    async fn len(&self) -> usize;
    /// Whether there are no sessions.
    async fn is_empty(&self) -> bool {
        self.len().await == 0
    }
}
