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
        let Some(s) = self.gw.sessions.get(&key).await else {
            return SessionState::Ended;
        };
        let now = self.gw.clock.now_ms();
        let cfg = &rt.config;
        if let Some(why) = s.expired(
            now,
            cfg.idle_timeout.as_millis() as u64,
            cfg.max_lifetime.as_millis() as u64,
        ) {
            self.gw.sessions.remove(&key).await;
            self.gw.audit_expired(rt, &s, why, Some(key));
            return SessionState::Ended;
        }
        if s.touch(
            now,
            TOUCH_GRANULARITY_MS.min(cfg.idle_timeout.as_millis() as u64 / 4),
        ) {
            self.gw.sessions.touched(&key, &s).await;
        }
        SessionState::Valid(id, s)
    }
}
