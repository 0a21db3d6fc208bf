//! Enrolments in progress: a new SMS number waiting for the code sent to it,
//! a new authenticator secret waiting for the first code from the app, or a
//! passkey registration waiting for the browser's answer.
//! Nothing is saved until the user proves the number or device works, so a
//! typo cannot lock anyone out of off-network login.

use std::time::Duration;

use crate::session::SessionKey;
use crate::state::{decode, encode, SharedState, StateError};
use crate::storage::Sealer;

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
    /// A passkey, confirmed by the credential the browser creates.
    Passkey {
        /// The user's description ("Jobbdatorn", "YubiKey").
        description: String,
        /// The relying party's registration state (challenge, excluded keys).
        state: String,
    },
}

/// Which kind of enrolment: one of each may be in progress per session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An SMS number.
    Sms,
    /// An authenticator app.
    Totp,
    /// A passkey or security key.
    Passkey,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Sms => "sms",
            Kind::Totp => "totp",
            Kind::Passkey => "passkey",
        }
    }
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pending::Sms { position, .. } => write!(f, "Pending::Sms({position})"),
            Pending::Totp { description, .. } => write!(f, "Pending::Totp({description:?})"),
            Pending::Passkey { description, .. } => {
                write!(f, "Pending::Passkey({description:?})")
            }
        }
    }
}

/// Unfinished enrolments by session, one SMS and one app at a time, in the
/// shared state (so the confirming step may land on another gateway). Keyed
/// by the session, never the user name: a session belongs to one (realm,
/// user), so two realms' `anna` cannot finish each other's enrolment (the
/// saved result goes to the store under the session's realm and user).
/// Values are sealed: a pending authenticator secret is a seed.
#[derive(Debug)]
pub struct Enrolling {
    state: SharedState,
    sealer: Sealer,
}

#[derive(serde::Serialize, serde::Deserialize)]
enum Stored {
    Sms {
        position: u8,
        e164: String,
    },
    Totp {
        description: String,
        secret: Vec<u8>,
    },
    Passkey {
        description: String,
        state: String,
    },
}

const PREFIX: &str = "portvakt:e:";

impl Enrolling {
    /// Enrolments kept in `state`, sealed by `sealer`.
    pub fn new(state: SharedState, sealer: Sealer) -> Enrolling {
        Enrolling { state, sealer }
    }

    fn key(session: SessionKey, kind: Kind) -> String {
        format!(
            "{PREFIX}{}:{}",
            crate::state::hex(&session.0),
            kind.as_str()
        )
    }

    /// Start (or restart) an enrolment for `session`.
    pub async fn put(&self, session: SessionKey, pending: Pending) -> Result<(), StateError> {
        let kind = match pending {
            Pending::Sms { .. } => Kind::Sms,
            Pending::Totp { .. } => Kind::Totp,
            Pending::Passkey { .. } => Kind::Passkey,
        };
        let key = Self::key(session, kind);
        let stored = match pending {
            Pending::Sms { position, e164 } => Stored::Sms { position, e164 },
            Pending::Totp {
                description,
                secret,
            } => Stored::Totp {
                description,
                secret,
            },
            Pending::Passkey { description, state } => Stored::Passkey { description, state },
        };
        let sealed = self
            .sealer
            .seal(&encode(&stored), key.as_bytes())
            .map_err(|e| StateError::Unavailable(format!("cannot seal an enrolment: {e}")))?;
        self.state
            .put(&key, &sealed, Duration::from_millis(PENDING_MS))
            .await
    }

    /// The pending SMS number of `session`, if still alive.
    pub async fn sms(&self, session: SessionKey) -> Result<Option<(u8, String)>, StateError> {
        Ok(match self.get(session, Kind::Sms).await? {
            Some(Stored::Sms { position, e164 }) => Some((position, e164)),
            _ => None,
        })
    }

    /// The pending authenticator of `session`, if still alive.
    pub async fn totp(&self, session: SessionKey) -> Result<Option<(String, Vec<u8>)>, StateError> {
        Ok(match self.get(session, Kind::Totp).await? {
            Some(Stored::Totp {
                description,
                secret,
            }) => Some((description, secret)),
            _ => None,
        })
    }

    /// The pending passkey registration of `session` (description and the
    /// relying party's state), if still alive.
    pub async fn passkey(
        &self,
        session: SessionKey,
    ) -> Result<Option<(String, String)>, StateError> {
        Ok(match self.get(session, Kind::Passkey).await? {
            Some(Stored::Passkey { description, state }) => Some((description, state)),
            _ => None,
        })
    }

    async fn get(&self, session: SessionKey, kind: Kind) -> Result<Option<Stored>, StateError> {
        let key = Self::key(session, kind);
        let Some(sealed) = self.state.get(&key).await? else {
            return Ok(None);
        };
        // Sealed with the key as associated data: a value copied under
        // another session's key does not open.
        let Ok(plain) = self.sealer.open(&sealed, key.as_bytes()) else {
            return Ok(None);
        };
        decode(&key, &plain).map(Some)
    }

    /// Finish or abandon an enrolment.
    pub async fn clear(&self, session: SessionKey, kind: Kind) -> Result<(), StateError> {
        self.state
            .delete(&Self::key(session, kind))
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::state::memory::MemoryBackend;
    use crate::state::StateBackend;

    #[tokio::test]
    async fn pending_enrolments_expire_and_do_not_mix() {
        let clock = ManualClock::starting_at(0);
        let state = std::sync::Arc::new(MemoryBackend::new(clock.clone()));
        let e = Enrolling::new(state.clone(), Sealer::from_secret(&[3; 32]));
        let k = SessionKey([1; 32]);
        let sms = Pending::Sms {
            position: 1,
            e164: "+46701234567".into(),
        };
        e.put(k, sms).await.unwrap();
        let app = Pending::Totp {
            description: "Jobbtelefonen".into(),
            secret: vec![42; 20],
        };
        e.put(k, app).await.unwrap();
        clock.advance_ms(1);
        assert_eq!(e.sms(k).await.unwrap().unwrap().0, 1);
        assert_eq!(e.totp(k).await.unwrap().unwrap().0, "Jobbtelefonen");
        assert!(e.sms(SessionKey([2; 32])).await.unwrap().is_none());
        // The secret is sealed in the state.
        for key in state.keys(PREFIX, 10).await.unwrap() {
            let raw = state.get(&key).await.unwrap().unwrap();
            assert!(!raw.windows(20).any(|w| w == [42; 20]), "secret in clear");
            assert!(
                !String::from_utf8_lossy(&raw).contains("+4670"),
                "number in clear"
            );
        }
        // Moved under another session, a value does not open.
        let mine = state
            .get(&Enrolling::key(k, Kind::Totp))
            .await
            .unwrap()
            .unwrap();
        let other = SessionKey([2; 32]);
        state
            .put(
                &Enrolling::key(other, Kind::Totp),
                &mine,
                Duration::from_secs(60),
            )
            .await
            .unwrap();
        assert!(e.totp(other).await.unwrap().is_none());
        e.clear(k, Kind::Totp).await.unwrap();
        assert!(e.totp(k).await.unwrap().is_none());
        clock.advance_ms(PENDING_MS);
        assert!(e.sms(k).await.unwrap().is_none(), "expired");
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
