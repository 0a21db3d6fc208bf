//! The session store seam. The gateway logic only sees this trait: the
//! memory store ([`super::memory`]) by default, the shared state
//! ([`crate::state::sessions`]) when several gateways share Redis. Every
//! call may fail with [`StateError`] when the shared state is down; callers
//! fail closed (the "not working right now" page), never open.

use std::sync::Arc;

use async_trait::async_trait;

use super::{Session, SessionKey};
use crate::state::StateError;

/// Where sessions live.
#[async_trait]
pub trait SessionStore: Send + Sync + std::fmt::Debug {
    /// The session under `key`, if any (expiry is the caller's check).
    async fn get(&self, key: &SessionKey) -> Result<Option<Arc<Session>>, StateError>;
    /// Store a session.
    async fn insert(&self, key: SessionKey, session: Arc<Session>) -> Result<(), StateError>;
    /// Replace the session under `key` by `change(current)` in one step, only
    /// if it is still there; returns the new session. A session removed in
    /// the meantime (logout, revoke, expiry sweep) stays removed, which a
    /// `get` … `insert` pair around a slow password check would undo.
    async fn update(
        &self,
        key: &SessionKey,
        change: &(dyn for<'s> Fn(&'s Session) -> Session + Send + Sync),
    ) -> Result<Option<Arc<Session>>, StateError>;
    /// Delete a session; returns it if it existed.
    async fn remove(&self, key: &SessionKey) -> Result<Option<Arc<Session>>, StateError>;
    /// The idle clock of `key` moved (coalesced: called only when it moved
    /// by more than a granularity). A memory store has nothing to do.
    async fn touched(&self, key: &SessionKey, session: &Session) -> Result<(), StateError>;
    /// Remove sessions expired at `now_ms`; returns the removed ones.
    async fn sweep(
        &self,
        now_ms: u64,
        idle_ms: u64,
        lifetime_ms: u64,
    ) -> Result<Vec<Arc<Session>>, StateError>;
    /// Every session with its key (for `portvakt sessions list` and revoke).
    async fn list(&self) -> Result<Vec<(SessionKey, Arc<Session>)>, StateError>;
    /// Number of live sessions.
    async fn len(&self) -> Result<usize, StateError>;
    /// Whether there are no sessions.
    async fn is_empty(&self) -> Result<bool, StateError> {
        Ok(self.len().await? == 0)
    }
}
