//! Enrolments in progress: a new SMS number waiting for the code sent to it,
//! or a new authenticator secret waiting for the first code from the app.
//! Nothing is saved until the user proves the number or device works, so a
//! typo cannot lock anyone out of off-network login.

use std::collections::HashMap;

use parking_lot::Mutex;

use crate::session::SessionKey;

/// How long an unfinished enrolment is kept.
pub const PENDING_MS: u64 = 10 * 60 * 1000;

/// What is being enrolled.
#[derive(Clone, PartialEq, Eq)]
pub enum Pending {
    /// A number for an SMS position, confirmed by a code sent to it.
    Sms {
        /// 0 or 1.
        position: u8,
        /// The number, E.164.
        e164: String,
    },
    /// An authenticator app, confirmed by its first code.
    Totp {
        /// The user's description ("Jobbtelefonen").
        description: String,
        /// The new secret (never logged).
        secret: Vec<u8>,
    },
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pending::Sms { position, .. } => write!(f, "Pending::Sms({position})"),
            Pending::Totp { description, .. } => write!(f, "Pending::Totp({description:?})"),
        }
    }
}

/// Unfinished enrolments by session, one SMS and one app at a time. Keyed by
/// the session, never the user name: a session belongs to one (realm, user),
/// so two realms' `anna` cannot finish each other's enrolment (the saved
/// result goes to the store under the session's realm and user).
#[derive(Debug, Default)]
pub struct Enrolling {
    entries: Mutex<HashMap<(SessionKey, bool), (Pending, u64)>>,
}

impl Enrolling {
    fn slot(p: &Pending) -> bool {
        matches!(p, Pending::Totp { .. })
    }

    /// Start (or restart) an enrolment for `session`.
    pub fn put(&self, session: SessionKey, pending: Pending, now_ms: u64) {
        let slot = Self::slot(&pending);
        self.entries
            .lock()
            .insert((session, slot), (pending, now_ms + PENDING_MS));
    }

    /// The pending SMS number of `session`, if still alive.
    pub fn sms(&self, session: SessionKey, now_ms: u64) -> Option<(u8, String)> {
        match self.get(session, false, now_ms)? {
            Pending::Sms { position, e164 } => Some((position, e164)),
            Pending::Totp { .. } => None,
        }
    }

    /// The pending authenticator of `session`, if still alive.
    pub fn totp(&self, session: SessionKey, now_ms: u64) -> Option<(String, Vec<u8>)> {
        match self.get(session, true, now_ms)? {
            Pending::Totp {
                description,
                secret,
            } => Some((description, secret)),
            Pending::Sms { .. } => None,
        }
    }

    fn get(&self, session: SessionKey, slot: bool, now_ms: u64) -> Option<Pending> {
        let entries = self.entries.lock();
        let (p, deadline) = entries.get(&(session, slot))?;
        (now_ms < *deadline).then(|| p.clone())
    }

    /// Finish or abandon an enrolment.
    pub fn clear(&self, session: SessionKey, totp: bool) {
        self.entries.lock().remove(&(session, totp));
    }

    /// Forget expired enrolments.
    pub fn sweep(&self, now_ms: u64) {
        self.entries.lock().retain(|_, (_, d)| *d > now_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_enrolments_expire_and_do_not_mix() {
        let e = Enrolling::default();
        let k = SessionKey([1; 32]);
        e.put(
            k,
            Pending::Sms {
                position: 1,
                e164: "+46701234567".into(),
            },
            0,
        );
        e.put(
            k,
            Pending::Totp {
                description: "Jobbtelefonen".into(),
                secret: vec![1; 20],
            },
            0,
        );
        assert_eq!(e.sms(k, 1).unwrap().0, 1);
        assert_eq!(e.totp(k, 1).unwrap().0, "Jobbtelefonen");
        assert!(e.sms(SessionKey([2; 32]), 1).is_none());
        assert!(e.sms(k, PENDING_MS).is_none());
        e.clear(k, true);
        assert!(e.totp(k, 1).is_none());
        assert!(!format!(
            "{:?}",
            Pending::Totp {
                description: "x".into(),
                secret: vec![42; 20]
            }
        )
        .contains("42"));
    }
}
