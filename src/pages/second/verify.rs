//! Checking a typed code for the second step: against the issued challenge
//! (SMS, e-mail) or the user's authenticator app or hardware token.

use crate::audit::Reason;
use crate::factors::code::CodeVerdict;
use crate::gateway::Gateway;
use crate::session::{Method, Session, SessionId};
use crate::storage::{UserRef, Verify};

use super::Choice;

/// What checking a typed code gave.
pub(super) enum Outcome {
    /// The code is right: the session may be upgraded.
    Accepted,
    /// The code is wrong.
    Wrong,
    /// The challenge is gone or used up (the reason says why).
    Dead(Reason),
    /// An app or token code that was already used.
    Replay,
    /// A hardware token needs its next code to resynchronise.
    NeedsNext,
    /// The enrolment store could not be read.
    Unavailable,
}

/// Check `input` for `choice` at `now_ms`.
pub(super) async fn verify(
    gw: &Gateway,
    id: &SessionId,
    session: &Session,
    choice: Choice,
    input: &str,
    now_ms: u64,
) -> Outcome {
    match choice.method {
        Method::Sms | Method::Email => match gw.challenges.verify(id.key().0, input, now_ms) {
            // A code proves only the channel it was sent through: an SMS
            // code posted as "email" must not make an e-mail login.
            CodeVerdict::Accepted { channel } if channel.as_str() == choice.method.as_str() => {
                Outcome::Accepted
            }
            CodeVerdict::Accepted { .. } => Outcome::Dead(Reason::WrongChannel),
            CodeVerdict::Wrong { .. } => Outcome::Wrong,
            CodeVerdict::Expired => Outcome::Dead(Reason::Expired),
            CodeVerdict::TooManyTries => Outcome::Dead(Reason::TooManyTries),
            CodeVerdict::NoChallenge => Outcome::Dead(Reason::NoCodeSent),
        },
        Method::Totp | Method::Token => {
            let secs = now_ms / 1000;
            let result = if choice.method == Method::Totp {
                gw.store
                    .verify_totp(&UserRef::of(session), input, secs)
                    .await
            } else {
                gw.store
                    .verify_token(&UserRef::of(session), input, secs)
                    .await
            };
            match result {
                Ok(v) => match v {
                    Verify::Accepted { .. } => Outcome::Accepted,
                    Verify::Replay { .. } => Outcome::Replay,
                    Verify::NeedsNextCode { .. } => Outcome::NeedsNext,
                    Verify::Rejected => Outcome::Wrong,
                },
                Err(e) => {
                    tracing::error!(error = %e, "enrolment storage failed");
                    Outcome::Unavailable
                }
            }
        }
        Method::Password => Outcome::Wrong,
    }
}
