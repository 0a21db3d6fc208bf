//! The password again, before a self-service change: the same rules as the
//! password step of login, and the time noted on the stored session.

use super::Client;
use crate::audit::{Event, Outcome, Reason};
use crate::config::model::Realm;
use crate::directory::Verdict;
use crate::gateway::{Gateway, Runtime};
use crate::regulation::{Completed, Factor, UserKey};
use crate::session::{Method, Session, SessionId};

/// What the password again decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReauthOutcome {
    /// Right: the stored session notes the time.
    Confirmed,
    /// Refused (wrong password, locked, …: one answer). The reason is for the log.
    Refused {
        /// Why, as logged.
        reason: Reason,
    },
    /// The realm has no directory.
    NoDirectory,
    /// The directory could not be asked.
    DirectoryDown,
    /// The session ended during the check (a revoke or a logout elsewhere);
    /// it stays ended.
    SessionEnded,
}

/// Check `password` for the user of `session` (in `realm`, the session's).
pub async fn reauth(
    gw: &Gateway,
    rt: &Runtime,
    realm: &Realm,
    client: &Client<'_>,
    id: &SessionId,
    session: &Session,
    password: &str,
) -> ReauthOutcome {
    let internal = realm.is_internal(client.ip);
    let Some(directory) = rt.directories.get(&realm.id) else {
        return ReauthOutcome::NoDirectory;
    };
    let now = gw.clock.now_ms();
    // As at login: a locked user never reaches the directory, and waits
    // as long as a check would take.
    let key = UserKey::new(&realm.id, &session.user);
    let attempt = rt.regulator.begin(&key, client.ip, now);
    let blocked = attempt.as_ref().err().copied();
    let verdict = match blocked {
        Some(_) => {
            rt.regulator.wait_like_check(&realm.id).await;
            None
        }
        None => {
            let started = std::time::Instant::now();
            let v = directory.check(&session.user, password).await;
            if v.is_ok() {
                rt.regulator.note_check(&realm.id, started.elapsed());
            }
            Some(v)
        }
    };
    let reason = match (blocked, &verdict) {
        (Some(b), _) => Some(b.reason()),
        (None, Some(Ok(Verdict::Valid(_)))) => None,
        (None, Some(Ok(v))) => Some(v.reason()),
        (None, _) => Some(Reason::DirectoryUnavailable),
    };
    let mut ev = client.session_event(
        gw,
        Event::Reauth,
        Outcome::of(reason.is_none()),
        reason.unwrap_or(Reason::Ok),
        session,
        internal,
    );
    ev.method = Some(Method::Password.as_str());
    ev.session = Some(id.key().short());
    gw.audit(rt, ev);
    match reason {
        Some(Reason::DirectoryUnavailable) => return ReauthOutcome::DirectoryDown,
        Some(reason) => {
            if blocked.is_none() {
                let escalation = rt
                    .regulator
                    .failed(Some(&key), client.ip, Factor::Password, now);
                if let Some(why) = escalation.lockout_reason() {
                    let ev = client.session_event(
                        gw,
                        Event::Lockout,
                        Outcome::Info,
                        why,
                        session,
                        internal,
                    );
                    gw.audit(rt, ev);
                }
            }
            return ReauthOutcome::Refused { reason };
        }
        None => {}
    }
    // A password clears password failures only: code failures stay until
    // a completed two-factor login.
    rt.regulator.succeeded(&key, Completed::Password);
    // Update what is stored now, not the copy read at the start: a revoke
    // or logout during the password check must stay in force.
    match gw
        .sessions
        .update(&id.key(), &|s| s.with_password_at(now))
        .await
    {
        Ok(Some(_)) => ReauthOutcome::Confirmed,
        Ok(None) => ReauthOutcome::SessionEnded,
        // Not confirmed: the change it guards must not go ahead.
        Err(_) => ReauthOutcome::NoDirectory,
    }
}
