//! Carrying a login from the portal to a service host: a one-time code,
//! bound to the browser that started the login (the nonce cookie it got on
//! that host), redeemed there for a host-only cookie — never in another
//! browser, and never over another user's live session on that host.

use super::Client;
use crate::audit::{Event, Outcome, Reason};
use crate::gateway::{Gateway, Runtime};
use crate::session::handoff::Handoff;
use crate::session::{Session, SessionId};

/// How long a handoff code may wait to be redeemed.
pub const HANDOFF_TTL_MS: u64 = 60_000;

/// A code that carries session `id` to `host`, for the browser whose nonce
/// has `binding`.
pub async fn issue(
    gw: &Gateway,
    id: &SessionId,
    host: &str,
    binding: String,
) -> Result<String, crate::state::StateError> {
    let now = gw.clock.now_ms();
    gw.handoffs
        .issue(
            Handoff {
                session: id.clone(),
                host: host.to_owned(),
                binding,
            },
            now,
            now + HANDOFF_TTL_MS,
        )
        .await
}

/// What redeeming a code decided.
#[derive(Debug)]
pub enum HandoffOutcome {
    /// Valid here and in this browser: set this session's cookie.
    Enter {
        /// The session the code carried.
        session: SessionId,
    },
    /// Used, expired, forged, for another host, or not this browser's:
    /// start over at the portal.
    StartOver {
        /// The session the code carried has ended.
        expired: bool,
    },
    /// Another user is logged in here; they stay who they are.
    OtherUser {
        /// The live session's user.
        live_user: String,
    },
    /// The shared state did not answer (the code may or may not have been
    /// burnt): "not working right now", never a login.
    Unavailable,
}

/// Redeem `code` on `client.host`, in a browser holding `nonce` (the
/// handoff nonce cookie) and the live session `live` on this host.
pub async fn redeem(
    gw: &Gateway,
    rt: &Runtime,
    client: &Client<'_>,
    code: &str,
    nonce: Option<&str>,
    live: Option<(&SessionId, &Session)>,
) -> HandoffOutcome {
    let now = gw.clock.now_ms();
    let handoff = match gw.handoffs.redeem(code, client.host, now).await {
        Ok(Some(h)) => h,
        Ok(None) => return HandoffOutcome::StartOver { expired: false },
        Err(_) => return HandoffOutcome::Unavailable,
    };
    let session = match gw.sessions.get(&handoff.session.key()).await {
        Ok(Some(s)) => s,
        Ok(None) => return HandoffOutcome::StartOver { expired: true },
        Err(_) => return HandoffOutcome::Unavailable,
    };
    let internal = rt.config.is_internal_to(&session.realm, client.ip);
    if let Some((live_id, live)) = live {
        if live.user != session.user || live.realm != session.realm {
            // Someone else's link (login CSRF), or a second account: the
            // person at this browser stays who they are, and is told.
            let live_internal = rt.config.is_internal_to(&live.realm, client.ip);
            let mut ev = client.session_event(
                gw,
                Event::Handoff,
                Outcome::Failure,
                Reason::OtherUserLoggedIn,
                live,
                live_internal,
            );
            ev.session = Some(live_id.key().short());
            ev.host = Some(client.host);
            ev.provider = Some(format!(
                "refused a handoff for {} ({})",
                session.user, session.realm
            ));
            gw.audit(rt, ev);
            return HandoffOutcome::OtherUser {
                live_user: live.user.clone(),
            };
        }
    }
    if !handoff.held_by(nonce) {
        let mut ev = client.session_event(
            gw,
            Event::Handoff,
            Outcome::Failure,
            Reason::NotThisBrowser,
            &session,
            internal,
        );
        ev.host = Some(client.host);
        gw.audit(rt, ev);
        return HandoffOutcome::StartOver { expired: false };
    }
    HandoffOutcome::Enter {
        session: handoff.session,
    }
}
