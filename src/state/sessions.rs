//! Sessions in the shared state, for gateways behind one balancer: a login
//! on A is a session on B, a logout on B ends it on A.
//!
//! A request reads its session (one `GET`); the idle clock is written back
//! only when it moved by [`touch_granularity`], so a busy user costs a
//! write every 90 s (idle timeout 15 min), not one per request. The record
//! expires in the backend a little after its own deadline ([`LINGER`]), so a
//! request that arrives just after the end still finds it and the expiry is
//! audited; sessions nobody comes back to are dropped by the backend's TTL.
//!
//! Where the backend reports changes ([`super::changes`], Redis pub/sub),
//! sessions read are kept in a local cache, so a request usually costs no
//! round trip at all: every gateway announces each session it changes or
//! removes, and each drops its copy when told. A logout or revocation on
//! one gateway thus takes effect on the others as fast as Redis delivers a
//! message (well under a millisecond on a LAN). While the announcements
//! cannot be trusted to arrive (subscriber down or reconnecting) the cache
//! is emptied and bypassed, so an outage still fails closed.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::changes::ChangeFeed;
use super::{decode, encode, Change, SharedState, StateError};
use crate::session::{Method, NewSession, Session, SessionKey, SessionStore};

/// How long an ended session stays readable (so its end is audited when
/// the browser comes back, rather than it silently becoming "no session").
pub const LINGER: Duration = Duration::from_secs(120);

/// Sessions listed or counted at most (admin tooling; not the request path).
pub const LIST_LIMIT: usize = 1_000_000;

const PREFIX: &str = "portvakt:s:";

/// Sessions cached at most; past this the cache starts over (a gateway
/// with more live sessions than this reads the rest from the backend).
pub const CACHE_LIMIT: usize = 100_000;

/// Sessions read from the backend, by backend key.
#[derive(Debug, Default)]
struct Cache {
    /// Bumped by every change heard: a read that began before a change
    /// must not cache what it read.
    epoch: u64,
    map: HashMap<String, Arc<Session>>,
}

impl Cache {
    fn forget(&mut self, key: Option<&str>) {
        self.epoch = self.epoch.wrapping_add(1);
        match key {
            Some(k) => {
                self.map.remove(k);
            }
            None => self.map.clear(),
        }
    }
}

/// How often the idle clock of a shared session is written back: a tenth
/// of the idle timeout. A session then ends between 90 % and 100 % of the
/// idle timeout after its last use, never later.
pub fn touch_granularity(idle_ms: u64) -> u64 {
    idle_ms / 10
}

/// A session as stored: its facts, not the precomputed header values
/// (rebuilt on read).
#[derive(Debug, Serialize, Deserialize)]
struct Stored {
    user: String,
    realm: String,
    groups: Vec<String>,
    email: String,
    display_name: String,
    auth_level: u8,
    methods: Vec<String>,
    internal: bool,
    ip: IpAddr,
    created_ms: u64,
    password_at_ms: u64,
    last_seen_ms: u64,
}

impl Stored {
    fn of(s: &Session) -> Stored {
        Stored {
            user: s.user.clone(),
            realm: s.realm.clone(),
            groups: s.groups.clone(),
            email: s.email.clone(),
            display_name: s.display_name.clone(),
            auth_level: s.auth_level,
            methods: s.methods.iter().map(|m| m.as_str().to_owned()).collect(),
            internal: s.internal_at_login,
            ip: s.ip_at_login,
            created_ms: s.created_ms,
            password_at_ms: s.password_at_ms,
            last_seen_ms: s.last_seen_ms(),
        }
    }

    fn session(self) -> Session {
        let mut s = Session::new(
            NewSession {
                user: self.user,
                realm: self.realm,
                groups: self.groups,
                email: self.email,
                display_name: self.display_name,
                auth_level: self.auth_level,
                // A method this version does not know is dropped, not
                // guessed: it only ever lowers what the session shows.
                methods: self
                    .methods
                    .iter()
                    .filter_map(|m| Method::parse(m))
                    .collect(),
                internal: self.internal,
                ip: self.ip,
            },
            self.created_ms,
        );
        s.password_at_ms = self.password_at_ms;
        s.touch(self.last_seen_ms, 0);
        s
    }
}

/// Sessions kept in a [`super::StateBackend`].
#[derive(Debug)]
pub struct SharedSessions {
    state: SharedState,
    idle_ms: u64,
    lifetime_ms: u64,
    /// The backend's change feed, if it has one (then `cache` is used).
    feed: Option<Arc<ChangeFeed>>,
    cache: Arc<Mutex<Cache>>,
}

impl SharedSessions {
    /// Sessions in `state` that end `idle` after their last use and
    /// `lifetime` after login (the backend's TTL follows both).
    pub fn new(state: SharedState, idle: Duration, lifetime: Duration) -> SharedSessions {
        let cache = Arc::new(Mutex::new(Cache::default()));
        let feed = state.changes();
        if let Some(feed) = &feed {
            let weak: Weak<Mutex<Cache>> = Arc::downgrade(&cache);
            feed.listen(move |key| match weak.upgrade() {
                Some(c) => {
                    lock(&c).forget(key);
                    true
                }
                None => false,
            });
        }
        SharedSessions {
            state,
            idle_ms: idle.as_millis() as u64,
            lifetime_ms: lifetime.as_millis() as u64,
            feed,
            cache,
        }
    }

    /// Whether the cache may answer (announcements are arriving).
    fn cache_live(&self) -> bool {
        self.feed.as_ref().is_some_and(|f| f.live())
    }

    /// This gateway changed `k`: forget it here at once, then tell the others.
    async fn changed(&self, k: &str) -> Result<(), StateError> {
        if self.feed.is_some() {
            lock(&self.cache).forget(Some(k));
        }
        self.state.announce(k).await
    }

    fn key(k: &SessionKey) -> String {
        format!("{PREFIX}{}", super::hex(&k.0))
    }

    /// How long the backend keeps `s` from `now_ms`.
    fn ttl(&self, s: &Session, now_ms: u64) -> Duration {
        let end = s
            .created_ms
            .saturating_add(self.lifetime_ms)
            .min(s.last_seen_ms().saturating_add(self.idle_ms));
        Duration::from_millis(end.saturating_sub(now_ms)) + LINGER
    }

    fn now(s: &Session) -> u64 {
        // The record's own latest time: TTLs are relative, and the
        // gateway's clock is not handed in here.
        s.last_seen_ms().max(s.password_at_ms)
    }
}

#[async_trait]
impl SessionStore for SharedSessions {
    async fn get(&self, key: &SessionKey) -> Result<Option<Arc<Session>>, StateError> {
        let k = Self::key(key);
        let began = if self.cache_live() {
            let c = lock(&self.cache);
            if let Some(s) = c.map.get(&k) {
                return Ok(Some(s.clone()));
            }
            Some(c.epoch)
        } else {
            None
        };
        let Some(raw) = self.state.get(&k).await? else {
            return Ok(None);
        };
        let session = Arc::new(decode::<Stored>(&k, &raw)?.session());
        if let Some(began) = began {
            let mut c = lock(&self.cache);
            // Nothing heard since the read began, and still hearing.
            if c.epoch == began && self.cache_live() {
                if c.map.len() >= CACHE_LIMIT {
                    c.map.clear();
                }
                c.map.insert(k, session.clone());
            }
        }
        Ok(Some(session))
    }

    async fn insert(&self, key: SessionKey, session: Arc<Session>) -> Result<(), StateError> {
        let ttl = self.ttl(&session, Self::now(&session));
        self.state
            .put(&Self::key(&key), &encode(&Stored::of(&session)), ttl)
            .await
    }

    async fn update(
        &self,
        key: &SessionKey,
        change: &(dyn for<'s> Fn(&'s Session) -> Session + Send + Sync),
    ) -> Result<Option<Arc<Session>>, StateError> {
        let k = Self::key(key);
        // The TTL is computed per attempt from the new record.
        for _ in 0..super::SWAP_TRIES {
            let Some(raw) = self.state.get(&k).await? else {
                return Ok(None);
            };
            let new = change(&decode::<Stored>(&k, &raw)?.session());
            let ttl = self.ttl(&new, Self::now(&new));
            if self
                .state
                .swap(&k, &raw, Some(&encode(&Stored::of(&new))), ttl)
                .await?
            {
                self.changed(&k).await?;
                return Ok(Some(Arc::new(new)));
            }
        }
        Err(StateError::Contended("session update"))
    }

    async fn remove(&self, key: &SessionKey) -> Result<Option<Arc<Session>>, StateError> {
        let k = Self::key(key);
        let taken = self.state.take(&k).await?;
        // Also when it was gone already: a retried logout still reaches
        // every gateway's cache.
        self.changed(&k).await?;
        match taken {
            None => Ok(None),
            Some(raw) => Ok(Some(Arc::new(decode::<Stored>(&k, &raw)?.session()))),
        }
    }

    async fn touched(&self, key: &SessionKey, session: &Session) -> Result<(), StateError> {
        let seen = session.last_seen_ms();
        let k = Self::key(key);
        // Only move the clock forward, and only on a session still there:
        // a touch must never bring back a logged-out session.
        let ttl = self.ttl(session, seen);
        super::update::<Stored, ()>(
            &*self.state,
            &k,
            |_| ttl,
            |mut s| {
                if s.last_seen_ms >= seen {
                    (Change::Keep, ())
                } else {
                    s.last_seen_ms = seen;
                    (Change::Set(s), ())
                }
            },
        )
        .await?;
        // Other gateways' copies have an older idle clock: they re-read.
        self.changed(&k).await
    }

    async fn sweep(
        &self,
        now_ms: u64,
        idle_ms: u64,
        lifetime_ms: u64,
    ) -> Result<Vec<Arc<Session>>, StateError> {
        // The backend's TTL removes ended sessions; scanning every session
        // every few seconds from every gateway would cost more than it saves.
        // Only this gateway's copies of ended sessions are dropped (nobody
        // announces an expiry), so the cache holds live sessions only.
        if self.feed.is_some() {
            lock(&self.cache).map.retain(|_, s| {
                s.last_seen_ms().saturating_add(idle_ms) > now_ms
                    && s.created_ms.saturating_add(lifetime_ms) > now_ms
            });
        }
        Ok(Vec::new())
    }

    async fn list(&self) -> Result<Vec<(SessionKey, Arc<Session>)>, StateError> {
        let mut out = Vec::new();
        for k in self.state.keys(PREFIX, LIST_LIMIT).await? {
            let Some(key) = parse_key(&k) else { continue };
            if let Some(raw) = self.state.get(&k).await? {
                out.push((key, Arc::new(decode::<Stored>(&k, &raw)?.session())));
            }
        }
        Ok(out)
    }

    async fn len(&self) -> Result<usize, StateError> {
        Ok(self.state.keys(PREFIX, LIST_LIMIT).await?.len())
    }
}

fn lock(c: &Mutex<Cache>) -> std::sync::MutexGuard<'_, Cache> {
    // A panic while holding it left at worst a stale map: start over.
    c.lock().unwrap_or_else(|p| {
        let mut g = p.into_inner();
        g.forget(None);
        g
    })
}

/// The session key a backend key names.
fn parse_key(k: &str) -> Option<SessionKey> {
    let hex = k.strip_prefix(PREFIX)?;
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(SessionKey(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::session::SessionId;
    use crate::state::memory::MemoryBackend;
    use crate::testutil::new_session;

    fn store(clock: Arc<ManualClock>) -> SharedSessions {
        SharedSessions::new(
            Arc::new(MemoryBackend::new(clock)),
            Duration::from_secs(900),
            Duration::from_secs(36_000),
        )
    }

    #[tokio::test]
    async fn a_stored_session_reads_back_the_same() {
        let clock = ManualClock::starting_at(1_000);
        let s = store(clock);
        let id = SessionId::generate();
        let mut n = new_session(1_000);
        n.password_at_ms = 1_500;
        s.insert(id.key(), Arc::new(n)).await.unwrap();
        let back = s.get(&id.key()).await.unwrap().unwrap();
        assert_eq!(back.user, "alice");
        assert_eq!(back.password_at_ms, 1_500);
        assert_eq!(back.created_ms, 1_000);
        assert_eq!(back.header_values.user, "alice");
        assert_eq!(s.list().await.unwrap().len(), 1);
        assert_eq!(s.list().await.unwrap()[0].0, id.key());
    }

    #[tokio::test]
    async fn a_touch_after_a_logout_does_not_bring_the_session_back() {
        let clock = ManualClock::starting_at(0);
        let s = store(clock);
        let id = SessionId::generate();
        s.insert(id.key(), Arc::new(new_session(0))).await.unwrap();
        let copy = s.get(&id.key()).await.unwrap().unwrap();
        assert!(s.remove(&id.key()).await.unwrap().is_some());
        copy.touch(200_000, 0);
        s.touched(&id.key(), &copy).await.unwrap();
        assert!(s.get(&id.key()).await.unwrap().is_none());
        assert!(s
            .update(&id.key(), &|x| x.with_password_at(9))
            .await
            .unwrap()
            .is_none());
    }

    #[tokio::test]
    async fn the_backend_forgets_a_session_after_its_idle_end_and_the_linger() {
        let clock = ManualClock::starting_at(0);
        let s = store(clock.clone());
        let id = SessionId::generate();
        s.insert(id.key(), Arc::new(new_session(0))).await.unwrap();
        clock.advance_ms(900_000 + LINGER.as_millis() as u64 - 1);
        assert!(
            s.get(&id.key()).await.unwrap().is_some(),
            "lingers to be audited"
        );
        clock.advance_ms(1);
        assert!(s.get(&id.key()).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_touch_extends_the_backend_lifetime() {
        let clock = ManualClock::starting_at(0);
        let s = store(clock.clone());
        let id = SessionId::generate();
        s.insert(id.key(), Arc::new(new_session(0))).await.unwrap();
        clock.advance_ms(800_000);
        let copy = s.get(&id.key()).await.unwrap().unwrap();
        assert!(copy.touch(800_000, touch_granularity(900_000)));
        s.touched(&id.key(), &copy).await.unwrap();
        clock.advance_ms(900_000);
        let back = s.get(&id.key()).await.unwrap().unwrap();
        assert_eq!(back.last_seen_ms(), 800_000);
    }
}
