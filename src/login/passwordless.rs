//! A login with a passkey alone (a realm's `methods.passkey_alone`): the
//! name, then one of the user's registered keys with user verification (the
//! key's PIN or fingerprint), and no password. Possession of the key and
//! the PIN or fingerprint are two factors: the session is level 2.
//!
//! Two requests, like the second step's passkey page:
//! 1. [`start`]: the name. Whatever the name is (unknown, disabled, locked,
//!    no key registered, or a real user with keys) the answer is the same
//!    page with a challenge; a name with no usable key gets a decoy (see
//!    [`crate::passkey`]). The reason is kept with the ceremony for the log.
//! 2. [`finish`]: the browser's answer, taken once from the shared state and
//!    checked against the user's keys as stored now, the directory asked
//!    again (a disabled account is refused), the regulator's locks applied
//!    as for a password, and a new session issued.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::password::MAX_USERNAME;
use super::Client;
use crate::audit::{Event, Outcome, Reason};
use crate::config::model::Realm;
use crate::directory::Presence;
use crate::gateway::{Gateway, Runtime};
use crate::passkey::PasskeyError;
use crate::regulation::{Block, Completed, Factor, UserKey};
use crate::session::{Method, NewSession, Session, SessionId};
use crate::signing::Purpose;
use crate::storage::{PasskeyUse, UserRef};

/// A ceremony started: what the page needs.
#[derive(Debug)]
pub struct Started {
    /// The options for `navigator.credentials.get` (JSON).
    pub options: String,
    /// The ceremony's id, carried by the page to [`finish`].
    pub ceremony: String,
}

/// What [`start`] decided.
#[derive(Debug)]
pub enum StartOutcome {
    /// A challenge (real or decoy: the caller cannot tell, by design).
    Started(Started),
    /// The realm has no directory (a configuration in the middle of a reload).
    NoDirectory,
    /// The directory could not be asked.
    DirectoryDown,
    /// The shared state or the store did not answer.
    StateDown,
}

/// What [`finish`] decided.
#[derive(Debug)]
pub enum FinishOutcome {
    /// A new level-2 session, stored.
    Session {
        /// Its id (for the cookie).
        id: SessionId,
        /// The session.
        session: Arc<Session>,
    },
    /// Refused. The reason is for the log only: every refusal looks alike.
    Refused {
        /// Why, as logged.
        reason: Reason,
    },
    /// The directory could not be asked.
    DirectoryDown,
    /// The shared state or the store did not answer.
    StateDown,
}

/// A ceremony as kept in the shared state between the two requests.
#[derive(Debug, Serialize, Deserialize)]
struct Kept {
    realm: String,
    /// The name as typed (the directory's spelling comes at [`finish`]).
    user: String,
    /// The library's state, or none for a decoy.
    state: Option<String>,
    /// Why a decoy was shown (the reason logged when it is answered).
    decoy: Option<String>,
}

/// Start a login with a passkey alone for `username` in `realm`.
pub async fn start(
    gw: &Gateway,
    rt: &Runtime,
    realm: &Realm,
    client: &Client<'_>,
    username: &str,
) -> StartOutcome {
    let now = gw.clock.now_ms();
    let (state, decoy) = if username.is_empty() || username.len() > MAX_USERNAME {
        (None, Some(Reason::EmptyOrInvalidInput))
    } else {
        let Some(directory) = rt.directories.get(&realm.id) else {
            return StartOutcome::NoDirectory;
        };
        let typed = UserKey::new(&realm.id, username);
        let block = rt.regulator.check(&typed, client.ip, now).await;
        if block == Some(Block::Unavailable) {
            return StartOutcome::StateDown;
        }
        // The directory and the store are asked whatever the name, so the
        // answer costs the same for an unknown name as for a real one.
        let presence = match directory.lookup(username).await {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(realm = %realm.id, error = %e, "directory failed");
                return StartOutcome::DirectoryDown;
            }
        };
        let user = match &presence {
            Presence::Active(u) => u.username.as_str(),
            _ => username,
        };
        let keys = match gw.store.passkeys(&UserRef::new(&realm.id, user)).await {
            Ok(k) => k,
            Err(e) => {
                tracing::error!(error = %e, "enrolment storage failed");
                return StartOutcome::StateDown;
            }
        };
        match (block, &presence) {
            (Some(b), _) => (None, Some(b.reason())),
            (None, Presence::Active(_)) => match rt.passkeys.start_login_alone(&keys) {
                Ok((options, state)) => (Some((options, state)), None),
                Err(_) => (None, Some(Reason::NoPasskey)),
            },
            (None, other) => (None, Some(other.reason())),
        }
    };
    let (options, state) = match state {
        Some((options, state)) => (options, Some(state)),
        None => {
            let seed = rt.signer.mac(
                Purpose::PasskeyDecoy,
                format!("{}\0{}", realm.id, username).as_bytes(),
            );
            (rt.passkeys.decoy_login(&seed), None)
        }
    };
    let kept = Kept {
        realm: realm.id.clone(),
        user: username.to_owned(),
        state,
        decoy: decoy.map(|r| r.as_str().to_owned()),
    };
    let ceremony = crate::state::hex(&rand::random::<[u8; 16]>());
    let value = serde_json::to_string(&kept).unwrap_or_default();
    if gw
        .passkey_logins
        .put_alone(&ceremony, &value)
        .await
        .is_err()
    {
        return StartOutcome::StateDown;
    }
    StartOutcome::Started(Started { options, ceremony })
}

/// Whether `ceremony` looks like an id [`start`] made (32 hex digits), so
/// nothing else reaches the shared state's key space.
pub fn valid_ceremony(ceremony: &str) -> bool {
    ceremony.len() == 32 && ceremony.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Check the browser's `response` to `ceremony` for `realm`; `previous` is
/// the session this browser had (a login ends it).
pub async fn finish(
    gw: &Gateway,
    rt: &Runtime,
    realm: &Realm,
    client: &Client<'_>,
    ceremony: &str,
    response: &str,
    previous: Option<&SessionId>,
) -> FinishOutcome {
    let internal = realm.is_internal(client.ip);
    let now = gw.clock.now_ms();
    let kept: Option<Kept> = if valid_ceremony(ceremony) {
        match gw.passkey_logins.take_alone(ceremony).await {
            Ok(raw) => raw.and_then(|r| serde_json::from_str(&r).ok()),
            Err(_) => return FinishOutcome::StateDown,
        }
    } else {
        None
    };
    let audit = |result: Outcome, reason: Reason, user: Option<&str>, by: Option<String>| {
        let mut ev = client.event(
            gw,
            Event::Login,
            result,
            reason,
            user,
            Some(&realm.id),
            internal,
        );
        ev.method = Some(Method::Passkey.as_str());
        ev.host = Some(client.host);
        ev.destination = by;
        gw.audit(rt, ev);
    };
    // Expired, answered already, or made up: nothing to count against a
    // name, but the address's failures count.
    let Some(kept) = kept.filter(|k| k.realm == realm.id) else {
        audit(Outcome::Failure, Reason::NoCodeSent, None, None);
        rt.regulator
            .failed(None, client.ip, Factor::Password, now)
            .await;
        return FinishOutcome::Refused {
            reason: Reason::NoCodeSent,
        };
    };
    let username = kept.user.as_str();
    let typed = UserKey::new(&realm.id, username);
    let _attempt = match rt.regulator.begin(&typed, client.ip, now).await {
        Ok(attempt) => attempt,
        Err(Block::Unavailable) => {
            audit(
                Outcome::Failure,
                Reason::StateUnavailable,
                Some(username),
                None,
            );
            return FinishOutcome::StateDown;
        }
        Err(block) => {
            audit(Outcome::Failure, block.reason(), Some(username), None);
            return FinishOutcome::Refused {
                reason: block.reason(),
            };
        }
    };
    let (user, used) = match verify(gw, rt, realm, &kept, response, now).await {
        Ok(pair) => pair,
        Err(Failed::Refused(reason, by)) => {
            audit(Outcome::Failure, reason, Some(username), by);
            super::count_failure(gw, rt, client, realm, &typed, username, internal, now).await;
            return FinishOutcome::Refused { reason };
        }
        Err(Failed::DirectoryDown) => {
            audit(
                Outcome::Failure,
                Reason::DirectoryUnavailable,
                Some(username),
                None,
            );
            return FinishOutcome::DirectoryDown;
        }
        Err(Failed::StateDown) => return FinishOutcome::StateDown,
    };
    // The lock is on the directory's spelling of the name too.
    let canonical = UserKey::new(&realm.id, &user.username);
    if let Some(block) = rt.regulator.check(&canonical, client.ip, now).await {
        audit(Outcome::Failure, block.reason(), Some(username), None);
        if block == Block::Unavailable {
            return FinishOutcome::StateDown;
        }
        return FinishOutcome::Refused {
            reason: block.reason(),
        };
    }
    if let Some(old) = previous {
        if gw.sessions.remove(&old.key()).await.is_err() {
            return FinishOutcome::StateDown;
        }
    }
    let id = SessionId::generate();
    let mut session = Session::new(
        NewSession {
            user: user.username.clone(),
            realm: realm.id.clone(),
            groups: user.groups.clone(),
            email: user.email.clone(),
            display_name: user.display_name.clone(),
            auth_level: 2,
            methods: vec![Method::Passkey],
            internal,
            ip: client.ip,
        },
        now,
    );
    // No password was typed: a self-service change asks for it first.
    session.password_at_ms = 0;
    let session = Arc::new(session);
    if gw.sessions.insert(id.key(), session.clone()).await.is_err() {
        return FinishOutcome::StateDown;
    }
    rt.regulator
        .succeeded(&canonical, Completed::TwoFactors, now)
        .await;
    rt.regulator
        .succeeded(&typed, Completed::TwoFactors, now)
        .await;
    let mut ev = client.event(
        gw,
        Event::Login,
        Outcome::Success,
        Reason::Ok,
        Some(&user.username),
        Some(&realm.id),
        internal,
    );
    ev.method = Some(Method::Passkey.as_str());
    ev.session = Some(id.key().short());
    ev.host = Some(client.host);
    ev.destination = Some(format!("passkey:{}", used.id));
    gw.audit(rt, ev);
    FinishOutcome::Session { id, session }
}

/// Why [`verify`] did not give a user.
enum Failed {
    /// A refusal, with its reason and the key it names (for the log).
    Refused(Reason, Option<String>),
    DirectoryDown,
    StateDown,
}

/// The directory's user and the verified key use for the answer `response`
/// to the ceremony `kept`. The directory is asked first whatever the
/// ceremony was (a decoy's answer costs what a real one's does).
async fn verify(
    gw: &Gateway,
    rt: &Runtime,
    realm: &Realm,
    kept: &Kept,
    response: &str,
    now: u64,
) -> Result<(crate::directory::User, crate::passkey::Used), Failed> {
    let directory = rt.directories.get(&realm.id).ok_or(Failed::DirectoryDown)?;
    let presence = directory.lookup(&kept.user).await.map_err(|e| {
        tracing::error!(realm = %realm.id, error = %e, "directory failed");
        Failed::DirectoryDown
    })?;
    let (Some(state), None) = (&kept.state, &kept.decoy) else {
        let reason = kept
            .decoy
            .as_deref()
            .and_then(|r| r.parse().ok())
            .unwrap_or(Reason::NoPasskey);
        return Err(Failed::Refused(reason, None));
    };
    // Disabled (or gone) since the challenge: the key is not enough.
    let user = match presence {
        Presence::Active(user) => user,
        other => return Err(Failed::Refused(other.reason(), None)),
    };
    let who = UserRef::new(&realm.id, &user.username);
    let storage_down = |e: crate::storage::StorageError| {
        tracing::error!(error = %e, "enrolment storage failed");
        Failed::StateDown
    };
    let keys = gw.store.passkeys(&who).await.map_err(storage_down)?;
    let named = |id: i64| Some(format!("passkey:{id}"));
    let used = match rt.passkeys.finish_login_alone(response, state, &keys) {
        Ok(used) => used,
        Err(PasskeyError::CounterRegression { id }) => {
            return Err(Failed::Refused(
                Reason::CounterRegression,
                id.and_then(named),
            ))
        }
        Err(PasskeyError::NotVerified) => {
            return Err(Failed::Refused(Reason::UserNotVerified, None))
        }
        Err(PasskeyError::State(_)) => return Err(Failed::StateDown),
        Err(e) => {
            tracing::info!(error = %e, "passkey login refused");
            return Err(Failed::Refused(Reason::PasskeyRefused, None));
        }
    };
    match gw
        .store
        .use_passkey(&who, used.id, used.counter, &used.key, now)
        .await
        .map_err(storage_down)?
    {
        PasskeyUse::Recorded => Ok((user, used)),
        PasskeyUse::Regressed { .. } => {
            Err(Failed::Refused(Reason::CounterRegression, named(used.id)))
        }
        PasskeyUse::Gone => Err(Failed::Refused(Reason::PasskeyRefused, named(used.id))),
    }
}
