//! Session lookup for the proxy: which session the cookie names, whether it
//! has ended (idle or lifetime), and writing back the idle clock.

use http::header;
use pingora::proxy::Session;

use super::Proxy;
use crate::gateway::Runtime;
use crate::pages::SessionState;
use crate::session::cookie;
use crate::session::SessionId;

/// How often the idle clock of a session is written back (coalescing).
const TOUCH_GRANULARITY_MS: u64 = 5_000;

impl Proxy {
    /// The session named by the cookie, checking expiry and refreshing the idle clock.
    pub(super) async fn session_state(&self, session: &Session, rt: &Runtime) -> SessionState {
        let Some(id) = session
            .req_header()
            .headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|c| cookie::find(c, cookie::SESSION))
            .and_then(SessionId::from_cookie)
        else {
            return SessionState::None;
        };
        let key = id.key();
        let s = match self.gw.sessions.get(&key).await {
            Ok(Some(s)) => s,
            Ok(None) => return SessionState::Ended,
            Err(e) => {
                tracing::warn!(error = %e, "session lookup failed");
                return SessionState::Unavailable;
            }
        };
        let now = self.gw.clock.now_ms();
        let cfg = &rt.config;
        if let Some(why) = s.expired(
            now,
            cfg.idle_timeout.as_millis() as u64,
            cfg.max_lifetime.as_millis() as u64,
        ) {
            // Audited by whoever removes it: of two gateways seeing one
            // expired session at once, only one gets it back.
            if let Ok(Some(s)) = self.gw.sessions.remove(&key).await {
                self.gw.audit_expired(rt, &s, why, Some(key));
            }
            return SessionState::Ended;
        }
        let idle_ms = cfg.idle_timeout.as_millis() as u64;
        let granularity = if self.gw.shared_sessions() {
            crate::state::sessions::touch_granularity(idle_ms)
        } else {
            TOUCH_GRANULARITY_MS.min(idle_ms / 4)
        };
        if s.touch(now, granularity) {
            if let Err(e) = self.gw.sessions.touched(&key, &s).await {
                // The request goes on: the session was read, and a missed
                // touch only makes it end up to one granularity early.
                tracing::warn!(error = %e, "session touch failed");
            }
        }
        SessionState::Valid(id, s)
    }
}
