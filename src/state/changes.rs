//! What other gateways changed, for a gateway that keeps a local copy of
//! hot shared records (sessions): a backend with a notification channel
//! (Redis pub/sub) reports each changed key here, and a cache listening
//! drops its copy.
//!
//! The cache is only trusted while the channel is up ([`ChangeFeed::live`]):
//! a message missed during a disconnect could leave a logged-out session
//! usable, so while the subscriber is down (or reconnecting) every read goes
//! to the backend, and when it comes back everything cached is dropped.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::RwLock;

/// Called with a changed key, or `None` for "anything may have changed";
/// returns false once its cache is gone, to be forgotten.
type Listener = Box<dyn Fn(Option<&str>) -> bool + Send + Sync>;

/// A backend's stream of changes by any gateway, this one included.
pub struct ChangeFeed {
    /// Subscribed and connected: every change since is being reported.
    live: AtomicBool,
    /// A second opinion on `live`, asked at every read: the subscriber's
    /// own connection state, which flips the moment its socket closes.
    connected: Box<dyn Fn() -> bool + Send + Sync>,
    listeners: RwLock<Vec<Listener>>,
}

impl std::fmt::Debug for ChangeFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeFeed")
            .field("live", &self.live())
            .finish_non_exhaustive()
    }
}

impl ChangeFeed {
    /// A feed, not yet live, whose subscriber reports its connection by `connected`.
    pub fn new(connected: impl Fn() -> bool + Send + Sync + 'static) -> ChangeFeed {
        ChangeFeed {
            live: AtomicBool::new(false),
            connected: Box::new(connected),
            listeners: RwLock::new(Vec::new()),
        }
    }

    /// Whether every change is being reported now (a cache may answer).
    pub fn live(&self) -> bool {
        self.live.load(Ordering::SeqCst) && (self.connected)()
    }

    /// Call `listener` on every change from now on, until it returns false.
    pub fn listen(&self, listener: impl Fn(Option<&str>) -> bool + Send + Sync + 'static) {
        self.listeners
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(Box::new(listener));
    }

    /// `key` changed (or, with `None`, anything may have).
    pub fn changed(&self, key: Option<&str>) {
        self.listeners
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|l| l(key));
    }

    /// The subscriber is (or is no longer) subscribed and connected. Either
    /// way what was cached may have missed a change: it is all dropped.
    pub fn set_live(&self, live: bool) {
        let was = self.live.swap(live, Ordering::SeqCst);
        if was != live {
            self.changed(None);
        }
    }
}
