//! In-process session store: a sharded map from session key to session.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use parking_lot::RwLock;

use super::{Session, SessionKey, SessionStore};
use crate::state::StateError;

const SHARDS: usize = 16;

/// Sessions in memory. Lost on restart, which is acceptable for the
/// embedded default (users log in again); use Redis to keep them.
#[derive(Debug)]
pub struct MemoryStore {
    /// Sharded so the proxy threads rarely meet on one lock.
    shards: Vec<RwLock<HashMap<SessionKey, Arc<Session>>>>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore {
            shards: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(),
        }
    }
}

impl MemoryStore {
    fn shard(&self, key: &SessionKey) -> &RwLock<HashMap<SessionKey, Arc<Session>>> {
        &self.shards[key.0[0] as usize % SHARDS]
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn get(&self, key: &SessionKey) -> Result<Option<Arc<Session>>, StateError> {
        Ok(self.shard(key).read().get(key).cloned())
    }

    async fn insert(&self, key: SessionKey, session: Arc<Session>) -> Result<(), StateError> {
        self.shard(&key).write().insert(key, session);
        Ok(())
    }

    async fn update(
        &self,
        key: &SessionKey,
        change: &(dyn for<'s> Fn(&'s Session) -> Session + Send + Sync),
    ) -> Result<Option<Arc<Session>>, StateError> {
        // One write lock for read and replace: a remove cannot fall between.
        let mut shard = self.shard(key).write();
        let Some(slot) = shard.get_mut(key) else {
            return Ok(None);
        };
        let new = Arc::new(change(slot));
        *slot = new.clone();
        Ok(Some(new))
    }

    async fn remove(&self, key: &SessionKey) -> Result<Option<Arc<Session>>, StateError> {
        Ok(self.shard(key).write().remove(key))
    }

    async fn touched(&self, _key: &SessionKey, _session: &Session) -> Result<(), StateError> {
        Ok(())
    }

    async fn sweep(
        &self,
        now_ms: u64,
        idle_ms: u64,
        lifetime_ms: u64,
    ) -> Result<Vec<Arc<Session>>, StateError> {
        let mut removed = Vec::new();
        for shard in &self.shards {
            shard.write().retain(|_, s| {
                if s.expired(now_ms, idle_ms, lifetime_ms).is_some() {
                    removed.push(s.clone());
                    false
                } else {
                    true
                }
            });
        }
        Ok(removed)
    }

    async fn list(&self) -> Result<Vec<(SessionKey, Arc<Session>)>, StateError> {
        Ok(self
            .shards
            .iter()
            .flat_map(|s| {
                s.read()
                    .iter()
                    .map(|(k, v)| (*k, v.clone()))
                    .collect::<Vec<_>>()
            })
            .collect())
    }

    async fn len(&self) -> Result<usize, StateError> {
        Ok(self.shards.iter().map(|s| s.read().len()).sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::SessionId;
    use crate::testutil::new_session;

    #[tokio::test]
    async fn sweep_removes_idle_and_old_sessions_only() {
        let store = MemoryStore::default();
        let fresh = SessionId::generate();
        let idle = SessionId::generate();
        store
            .insert(fresh.key(), Arc::new(new_session(10_000)))
            .await
            .unwrap();
        store
            .insert(idle.key(), Arc::new(new_session(0)))
            .await
            .unwrap();
        let removed = store.sweep(10_500, 1_000, 100_000).await.unwrap();
        assert_eq!(removed.len(), 1);
        assert!(store.get(&fresh.key()).await.unwrap().is_some());
        assert!(store.get(&idle.key()).await.unwrap().is_none());
        // Absolute lifetime ends even a busy session.
        let s = store.get(&fresh.key()).await.unwrap().unwrap();
        s.touch(200_000, 0);
        assert_eq!(
            store
                .sweep(200_001, 1_000_000, 100_000)
                .await
                .unwrap()
                .len(),
            1
        );
        assert_eq!(store.len().await.unwrap(), 0);
    }

    /// The re-auth page's race: it read the session, then (during the slow
    /// password check) an administrator revoked it. Writing back must not
    /// bring it back.
    #[tokio::test]
    async fn an_update_after_a_revoke_leaves_the_session_revoked() {
        let store = MemoryStore::default();
        let id = SessionId::generate();
        store
            .insert(id.key(), Arc::new(new_session(0)))
            .await
            .unwrap();
        let copy_at_start = store.get(&id.key()).await.unwrap();
        store.remove(&id.key()).await.unwrap();
        let written = store
            .update(&id.key(), &|s| s.with_password_at(5_000))
            .await
            .unwrap();
        assert!(written.is_none());
        assert!(
            store.get(&id.key()).await.unwrap().is_none(),
            "revoke undone"
        );
        drop(copy_at_start);

        store
            .insert(id.key(), Arc::new(new_session(0)))
            .await
            .unwrap();
        let written = store
            .update(&id.key(), &|s| s.with_password_at(5_000))
            .await
            .unwrap()
            .expect("a live session is updated");
        assert_eq!(written.password_at_ms, 5_000);
        assert_eq!(
            store.get(&id.key()).await.unwrap().unwrap().password_at_ms,
            5_000
        );
    }
}
