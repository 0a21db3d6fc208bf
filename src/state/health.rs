//! Outage detection for the backends the gateway depends on (the shared
//! state, the durable store): every answer is observed, and the moments a
//! backend stops and starts answering are reported once each — an auth-log
//! event and a metric per edge, not a line per failed request.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{OnceLock, Weak};
use std::time::Duration;

use async_trait::async_trait;

use super::{StateBackend, StateError};

/// Which backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The short-lived shared state (memory or Redis).
    State,
    /// The durable enrolment store (SQLite or PostgreSQL).
    Storage,
}

impl Backend {
    /// Name in metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::State => "state",
            Backend::Storage => "storage",
        }
    }
}

/// Told when a backend goes down or comes back.
pub trait HealthListener: Send + Sync {
    /// `backend` stopped answering (`up == false`, with the error) or
    /// answers again.
    fn changed(&self, backend: Backend, up: bool, error: Option<&str>);
}

/// Whether one backend is answering, and who to tell when that changes.
#[derive(Default)]
pub struct Health {
    down: AtomicBool,
    listener: OnceLock<Weak<dyn HealthListener>>,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health")
            .field("down", &self.down.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Health {
    /// Tell `listener` about changes from now on (set once; weak, so the
    /// gateway that owns the backend can be its listener).
    pub fn listen(&self, listener: Weak<dyn HealthListener>) {
        let _ = self.listener.set(listener);
    }

    /// Whether the last answer was a failure.
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }

    /// Observe one answer of `backend`: reports an edge, nothing otherwise.
    pub fn observe<T, E: std::fmt::Display>(&self, backend: Backend, result: &Result<T, E>) {
        let failed = result.is_err();
        // Only the caller that flips the flag reports, so one edge is one report.
        if self.down.swap(failed, Ordering::Relaxed) != failed {
            let error = result.as_ref().err().map(|e| e.to_string());
            if failed {
                tracing::error!(
                    backend = backend.as_str(),
                    error = error.as_deref().unwrap_or(""),
                    "backend stopped answering"
                );
            } else {
                tracing::info!(backend = backend.as_str(), "backend answers again");
            }
            if let Some(l) = self.listener.get().and_then(Weak::upgrade) {
                l.changed(backend, !failed, error.as_deref());
            }
        }
    }
}

/// A state backend whose answers feed a [`Health`].
#[derive(Debug)]
pub struct Monitored {
    inner: super::SharedState,
    /// Up or down, and the listener.
    pub health: Health,
}

impl Monitored {
    /// Watch `inner`.
    pub fn new(inner: super::SharedState) -> Monitored {
        Monitored {
            inner,
            health: Health::default(),
        }
    }

    fn seen<T>(&self, r: Result<T, StateError>) -> Result<T, StateError> {
        // Contention and full tables are answers from a working backend.
        match &r {
            Err(StateError::Unavailable(_)) | Ok(_) => self.health.observe(Backend::State, &r),
            Err(_) => {}
        }
        r
    }
}

#[async_trait]
impl StateBackend for Monitored {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StateError> {
        self.seen(self.inner.get(key).await)
    }
    async fn put(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), StateError> {
        self.seen(self.inner.put(key, value, ttl).await)
    }
    async fn put_new(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, StateError> {
        self.seen(self.inner.put_new(key, value, ttl).await)
    }
    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StateError> {
        self.seen(self.inner.take(key).await)
    }
    async fn delete(&self, key: &str) -> Result<bool, StateError> {
        self.seen(self.inner.delete(key).await)
    }
    async fn swap(
        &self,
        key: &str,
        expected: &[u8],
        new: Option<&[u8]>,
        ttl: Duration,
    ) -> Result<bool, StateError> {
        self.seen(self.inner.swap(key, expected, new, ttl).await)
    }
    async fn admit(
        &self,
        key: &str,
        now_ms: u64,
        window: Duration,
        limit: u32,
    ) -> Result<bool, StateError> {
        self.seen(self.inner.admit(key, now_ms, window, limit).await)
    }
    async fn keys(&self, prefix: &str, limit: usize) -> Result<Vec<String>, StateError> {
        self.seen(self.inner.keys(prefix, limit).await)
    }
    async fn announce(&self, key: &str) -> Result<(), StateError> {
        self.seen(self.inner.announce(key).await)
    }
    fn changes(&self) -> Option<std::sync::Arc<super::changes::ChangeFeed>> {
        self.inner.changes()
    }
    async fn ping(&self) -> Result<(), StateError> {
        self.seen(self.inner.ping().await)
    }
    fn sweep(&self) {
        self.inner.sweep()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parking_lot::Mutex;
    use std::sync::Arc;

    #[derive(Default)]
    struct Edges(Mutex<Vec<(bool, Option<String>)>>);
    impl HealthListener for Edges {
        fn changed(&self, _: Backend, up: bool, error: Option<&str>) {
            self.0.lock().push((up, error.map(str::to_owned)));
        }
    }

    #[test]
    fn an_outage_is_reported_once_when_it_starts_and_once_when_it_ends() {
        let h = Health::default();
        let edges = Arc::new(Edges::default());
        let weak: Weak<dyn HealthListener> =
            Arc::downgrade(&(edges.clone() as Arc<dyn HealthListener>));
        h.listen(weak);
        let ok: Result<(), &str> = Ok(());
        let err: Result<(), &str> = Err("connection refused");
        h.observe(Backend::State, &ok);
        for _ in 0..5 {
            h.observe(Backend::State, &err);
        }
        assert!(h.is_down());
        h.observe(Backend::State, &ok);
        h.observe(Backend::State, &ok);
        assert_eq!(
            *edges.0.lock(),
            vec![(false, Some("connection refused".into())), (true, None)]
        );
    }
}
