//! The password step of login: the regulator's admission, the directory's
//! verdict, the lock on the name the directory returned, and a new session.

use std::sync::Arc;

use super::Client;
use crate::audit::{Event, Outcome, Reason};
use crate::config::model::Realm;
use crate::directory::Verdict;
use crate::gateway::{Gateway, Runtime};
use crate::regulation::{Block, Completed, UserKey};
use crate::session::{Method, NewSession, Session, SessionId};

/// Longest accepted user name.
pub const MAX_USERNAME: usize = 256;

/// What was typed on the login form, and what the login is for.
#[derive(Debug, Clone, Copy)]
pub struct PasswordLogin<'a> {
    /// The user name as typed (trimmed).
    pub username: &'a str,
    /// The password.
    pub password: &'a str,
    /// The session this browser had: a login ends it (a new id at every
    /// login).
    pub previous: Option<&'a SessionId>,
    /// This login goes on to a second factor (the target or the user's
    /// choice asks for one): then the password clears no failures, since
    /// only a login completed at the level asked for does.
    pub second_step: bool,
}

/// Where a login goes after the password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// The login is complete: on to the target.
    Continue,
    /// On to the second step.
    SecondStep,
}

/// What the password step decided.
#[derive(Debug)]
pub enum PasswordOutcome {
    /// A new one-factor session, stored.
    Session {
        /// Its id (for the cookie).
        id: SessionId,
        /// The session.
        session: Arc<Session>,
        /// What comes next.
        next: Next,
    },
    /// Refused. The reason is for the log only: the answer must be the
    /// same for a wrong password, an unknown user, a lock and bad input.
    Refused {
        /// Why, as logged.
        reason: Reason,
    },
    /// The realm has no directory (a configuration in the middle of a reload).
    NoDirectory,
    /// The directory could not be asked.
    DirectoryDown,
    /// The password was right, but the session could not be stored (the
    /// shared state did not answer).
    StateDown,
}

/// Check `input` for `realm` from `client`.
pub async fn login(
    gw: &Gateway,
    rt: &Runtime,
    realm: &Realm,
    client: &Client<'_>,
    input: PasswordLogin<'_>,
) -> PasswordOutcome {
    let username = input.username;
    let internal = realm.is_internal(client.ip);
    let now = gw.clock.now_ms();
    let refuse = |reason: Reason| {
        let mut ev = client.event(
            gw,
            Event::Login,
            Outcome::Failure,
            reason,
            Some(username),
            Some(&realm.id),
            internal,
        );
        ev.method = Some(Method::Password.as_str());
        ev.host = Some(client.host);
        gw.audit(rt, ev);
        PasswordOutcome::Refused { reason }
    };
    if username.is_empty() || username.len() > MAX_USERNAME || input.password.is_empty() {
        return refuse(Reason::EmptyOrInvalidInput);
    }
    let Some(directory) = rt.directories.get(&realm.id) else {
        return PasswordOutcome::NoDirectory;
    };
    // A locked user or blocked address never reaches the directory (an
    // attacker must not lock AD accounts through us), and is answered in the
    // time a check takes.
    let typed = UserKey::new(&realm.id, username);
    let _attempt = match rt.regulator.begin(&typed, client.ip, now).await {
        Ok(attempt) => attempt,
        // Whether a lock stands is not known: refused, with the page that
        // says login is not working (not "wrong password").
        Err(Block::Unavailable) => {
            refuse(Reason::StateUnavailable);
            return PasswordOutcome::StateDown;
        }
        Err(block) => {
            rt.regulator.wait_like_check(&realm.id).await;
            return refuse(block.reason());
        }
    };
    let started = std::time::Instant::now();
    let verdict = match directory.check(username, input.password).await {
        Ok(v) => v,
        Err(e) => {
            tracing::error!(realm = %realm.id, error = %e, "directory failed");
            let ev = client.event(
                gw,
                Event::Login,
                Outcome::Failure,
                Reason::DirectoryUnavailable,
                Some(username),
                Some(&realm.id),
                internal,
            );
            gw.audit(rt, ev);
            return PasswordOutcome::DirectoryDown;
        }
    };
    rt.regulator.note_check(&realm.id, started.elapsed());
    let user = match verdict {
        Verdict::Valid(user) => user,
        other => {
            let refused = refuse(other.reason());
            super::count_failure(gw, rt, client, realm, &typed, username, internal, now).await;
            return refused;
        }
    };
    // The lock is on the name the directory returned too (LDAP/AD match
    // case-blind and may accept other spellings of one account).
    let canonical = UserKey::new(&realm.id, &user.username);
    if let Some(block) = rt.regulator.check(&canonical, client.ip, now).await {
        let refused = refuse(block.reason());
        if block == Block::Unavailable {
            return PasswordOutcome::StateDown;
        }
        return refused;
    }

    // A new id at every login; the old session (if any) ends.
    if let Some(old) = input.previous {
        if gw.sessions.remove(&old.key()).await.is_err() {
            return PasswordOutcome::StateDown;
        }
    }
    let id = SessionId::generate();
    let session = Arc::new(Session::new(
        NewSession {
            user: user.username.clone(),
            realm: realm.id.clone(),
            groups: user.groups.clone(),
            email: user.email.clone(),
            display_name: user.display_name.clone(),
            auth_level: 1,
            methods: vec![Method::Password],
            internal,
            ip: client.ip,
        },
        now,
    ));
    if gw.sessions.insert(id.key(), session.clone()).await.is_err() {
        return PasswordOutcome::StateDown;
    }
    let mut ev = client.event(
        gw,
        Event::Login,
        Outcome::Success,
        Reason::Ok,
        Some(&user.username),
        Some(&realm.id),
        internal,
    );
    ev.method = Some(Method::Password.as_str());
    ev.session = Some(id.key().short());
    ev.host = Some(client.host);
    gw.audit(rt, ev);

    let next = if input.second_step {
        Next::SecondStep
    } else {
        // Only a login completed at the level asked for clears failures,
        // and a password clears password failures only.
        rt.regulator
            .succeeded(&canonical, Completed::Password, now)
            .await;
        rt.regulator
            .succeeded(&typed, Completed::Password, now)
            .await;
        Next::Continue
    };
    PasswordOutcome::Session { id, session, next }
}
