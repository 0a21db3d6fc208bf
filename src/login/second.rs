//! The second step of login and step-up: which methods are offered here,
//! sending a code by SMS or e-mail within the cooldown and budgets, and
//! checking a typed code under the regulator's rules before the session is
//! upgraded to two factors under a new id.

use std::sync::Arc;

use super::Client;
use crate::audit::{Event, Outcome, Reason};
use crate::config::model::Realm;
use crate::config::types::Lang;
use crate::factors::code::{Channel, CodeVerdict, Refusal};
use crate::gateway::{Gateway, Runtime};
use crate::notify::{mask_email, mask_phone};
use crate::regulation::{Block, Completed, Factor, UserKey};
use crate::session::{Method, Session, SessionId};
use crate::storage::{UserRef, Verify};

/// Whether `realm` offers `method` as a second factor to a client at `ip`
/// (some methods only inside, some only outside).
pub fn offered(realm: &Realm, ip: std::net::IpAddr, method: Method) -> bool {
    realm
        .second_factors(realm.is_internal(ip))
        .any(|m| m == method)
}

/// What asking for a code by SMS or e-mail gave.
#[derive(Debug)]
pub enum SendOutcome {
    /// Sent.
    Sent {
        /// Where to, masked (`070*****67`).
        masked: String,
        /// How long the code is valid, in minutes (≥ 1).
        minutes: u64,
    },
    /// The user has no such number or no e-mail address.
    NoDestination,
    /// Not issued: too soon after the last one, or a budget is used up.
    Refused(Refusal),
    /// The provider did not take it; the code was forgotten.
    DeliveryFailed,
}

/// Issue a code for `session` and send it by `method` (SMS to the number at
/// `number`, or e-mail), in `lang`.
#[allow(clippy::too_many_arguments)]
pub async fn send_code(
    gw: &Gateway,
    rt: &Runtime,
    realm: &Realm,
    client: &Client<'_>,
    id: &SessionId,
    session: &Arc<Session>,
    method: Method,
    number: Option<u8>,
    lang: Lang,
) -> SendOutcome {
    let internal = realm.is_internal(client.ip);
    let destination = match method {
        Method::Sms => {
            let numbers = match gw.store.sms_numbers(&UserRef::of(session)).await {
                Ok(n) => n,
                // Not "no such number": the store did not answer (the outage
                // itself is audited by the store's health watch).
                Err(e) => {
                    tracing::warn!(error = %e, "enrolment storage failed while sending a code");
                    return SendOutcome::Refused(Refusal::Unavailable);
                }
            };
            let wanted = number.unwrap_or(0);
            numbers
                .into_iter()
                .find(|n| n.position == wanted)
                .map(|n| n.e164)
        }
        _ => Some(session.email.clone()).filter(|e| !e.is_empty()),
    };
    let Some(destination) = destination else {
        return SendOutcome::NoDestination;
    };
    let masked = match method {
        Method::Sms => mask_phone(&destination, &rt.config.codes.default_country),
        _ => mask_email(&destination),
    };
    let code_channel = if method == Method::Sms {
        Channel::Sms
    } else {
        Channel::Email
    };
    let now = gw.clock.now_ms();
    let key = id.key().0;
    // Budgets count per realm and user: the same name may exist in two realms.
    let code = match gw
        .challenges
        .issue(
            key,
            &UserRef::of(session),
            client.ip,
            code_channel,
            now,
            &rt.code_rules,
        )
        .await
    {
        Ok(code) => code,
        Err(refusal) => {
            let reason = match refusal {
                Refusal::Cooldown { .. } => Reason::Cooldown,
                Refusal::UserBudget => Reason::UserBudget,
                Refusal::IpBudget => Reason::IpBudget,
                Refusal::Unavailable => Reason::StateUnavailable,
            };
            let mut ev = client.session_event(
                gw,
                Event::CodeSent,
                Outcome::Failure,
                reason,
                session,
                internal,
            );
            ev.method = Some(method.as_str());
            ev.destination = Some(masked);
            gw.audit(rt, ev);
            return SendOutcome::Refused(refusal);
        }
    };
    let minutes = (rt.config.codes.validity.as_secs() / 60).max(1);
    let result = rt
        .notify_code(
            method,
            &destination,
            &code,
            minutes,
            &session.display_name,
            lang,
        )
        .await;
    let mut ev = client.session_event(
        gw,
        Event::CodeSent,
        Outcome::of(result.is_ok()),
        if result.is_ok() {
            Reason::Sent
        } else {
            Reason::DeliveryFailed
        },
        session,
        internal,
    );
    ev.method = Some(method.as_str());
    ev.destination = Some(masked.clone());
    ev.provider = Some(match &result {
        Ok(d) | Err(d) => d.clone(),
    });
    gw.audit(rt, ev);
    match result {
        Ok(_) => SendOutcome::Sent { masked, minutes },
        Err(_) => {
            gw.challenges.forget(&key).await;
            SendOutcome::DeliveryFailed
        }
    }
}

/// What a typed code decided.
#[derive(Debug)]
pub enum CodeOutcome {
    /// Right: the session is now two-factor under a new id (the old one ended).
    Upgraded {
        /// The new session id (for the cookie).
        id: SessionId,
    },
    /// Refused (wrong, or the user or address is blocked: one answer for
    /// both). The reason is for the log.
    Refused {
        /// Why, as logged.
        reason: Reason,
    },
    /// The code cannot be used any more (expired, tries used up, none
    /// sent, another channel's): a new one is needed.
    Dead {
        /// Why, as logged.
        reason: Reason,
    },
    /// A hardware token needs its next code to resynchronise.
    NeedsNext,
    /// `method` is not offered to this client in this realm.
    NotOffered,
    /// The enrolment store could not be read.
    Unavailable,
}

/// What checking a code against its verifier gave, before the rules.
enum Checked {
    /// Right; for a passkey, which one (`passkey:ID`, for the audit line).
    Accepted(Option<String>),
    Wrong,
    /// Wrong in a way with its own reason (a passkey that did not verify, a
    /// counter that went backwards), counted like a wrong code.
    Refused(Reason, Option<String>),
    Dead(Reason),
    Replay,
    NeedsNext,
    Unavailable,
}

/// Check `input` as the `method` code for `session` (in `realm`, which
/// must be the session's).
#[allow(clippy::too_many_arguments)]
pub async fn check_code(
    gw: &Gateway,
    rt: &Runtime,
    realm: &Realm,
    client: &Client<'_>,
    id: &SessionId,
    session: &Arc<Session>,
    method: Method,
    input: &str,
) -> CodeOutcome {
    if !offered(realm, client.ip, method) {
        return CodeOutcome::NotOffered;
    }
    let internal = realm.is_internal(client.ip);
    let now = gw.clock.now_ms();
    let key = UserKey::new(&session.realm, &session.user);
    // Admitted (or not) before the code is looked at, so that a burst of
    // concurrent guesses cannot all pass before the first is counted.
    let attempt = rt.regulator.begin(&key, client.ip, now).await;
    let audit = |result: Outcome, reason: Reason, by: Option<String>| {
        let mut ev =
            client.session_event(gw, Event::SecondFactor, result, reason, session, internal);
        ev.method = Some(method.as_str());
        ev.session = Some(id.key().short());
        ev.destination = by;
        gw.audit(rt, ev);
    };
    // Locked: the code is not even looked at (a right one would be used up
    // for nothing), and the answer is a wrong code's.
    if let Err(block) = attempt {
        audit(Outcome::Failure, block.reason(), None);
        if block == Block::Unavailable {
            return CodeOutcome::Unavailable;
        }
        return CodeOutcome::Refused {
            reason: block.reason(),
        };
    }
    // A wrong, replayed or dead code is a failure: counted, then answered.
    let mut by = None;
    let (reason, outcome) = match verify(gw, rt, id, session, method, input, now).await {
        Checked::Accepted(which) => {
            by = which;
            (None, None)
        }
        Checked::Wrong => (
            Some(Reason::WrongCode),
            Some(CodeOutcome::Refused {
                reason: Reason::WrongCode,
            }),
        ),
        Checked::Refused(reason, which) => {
            by = which;
            (Some(reason), Some(CodeOutcome::Refused { reason }))
        }
        Checked::Replay => (
            Some(Reason::Replay),
            Some(CodeOutcome::Refused {
                reason: Reason::Replay,
            }),
        ),
        Checked::Dead(reason) => (Some(reason), Some(CodeOutcome::Dead { reason })),
        Checked::NeedsNext => {
            audit(Outcome::Info, Reason::TokenResyncStarted, None);
            return CodeOutcome::NeedsNext;
        }
        Checked::Unavailable => return CodeOutcome::Unavailable,
    };
    if let (Some(reason), Some(outcome)) = (reason, outcome) {
        let escalation = rt
            .regulator
            .failed(Some(&key), client.ip, Factor::Second, now)
            .await;
        audit(Outcome::Failure, reason, by);
        if let Some(why) = escalation.lockout_reason() {
            let ev =
                client.session_event(gw, Event::Lockout, Outcome::Info, why, session, internal);
            gw.audit(rt, ev);
        }
        return outcome;
    }
    // The login is complete at the highest level: now failures clear.
    rt.regulator
        .succeeded(&key, Completed::TwoFactors, now)
        .await;

    // Privilege change: a new session id, the old one ends (every host's
    // cookie for it too; they hand off again from the portal).
    let upgraded = Arc::new(session.with_second_factor(method, now));
    let new_id = SessionId::generate();
    // Old id out first: a failure in between leaves the user logged out
    // (they log in again), never with two live sessions.
    if gw.sessions.remove(&id.key()).await.is_err()
        || gw.sessions.insert(new_id.key(), upgraded).await.is_err()
    {
        return CodeOutcome::Unavailable;
    }
    gw.challenges.forget(&id.key().0).await;
    let mut ev = client.session_event(
        gw,
        Event::Login,
        Outcome::Success,
        if session.auth_level >= 1 {
            Reason::SecondFactor
        } else {
            Reason::Ok
        },
        session,
        internal,
    );
    ev.method = Some(method.as_str());
    ev.session = Some(new_id.key().short());
    ev.host = Some(client.host);
    ev.destination = by;
    gw.audit(rt, ev);
    CodeOutcome::Upgraded { id: new_id }
}

/// Check `input` for `method` at `now_ms`: against the issued challenge
/// (SMS, e-mail), the user's authenticator app or hardware token, or (a
/// passkey) the browser's WebAuthn answer against the waiting ceremony.
async fn verify(
    gw: &Gateway,
    rt: &Runtime,
    id: &SessionId,
    session: &Session,
    method: Method,
    input: &str,
    now_ms: u64,
) -> Checked {
    match method {
        Method::Sms | Method::Email => {
            match gw.challenges.verify(id.key().0, input, now_ms).await {
                // A code proves only the channel it was sent through: an SMS
                // code posted as "email" must not make an e-mail login.
                CodeVerdict::Accepted { channel } if channel.as_str() == method.as_str() => {
                    Checked::Accepted(None)
                }
                CodeVerdict::Accepted { .. } => Checked::Dead(Reason::WrongChannel),
                CodeVerdict::Wrong { .. } => Checked::Wrong,
                CodeVerdict::Expired => Checked::Dead(Reason::Expired),
                CodeVerdict::TooManyTries => Checked::Dead(Reason::TooManyTries),
                CodeVerdict::NoChallenge => Checked::Dead(Reason::NoCodeSent),
                CodeVerdict::Unavailable => Checked::Unavailable,
            }
        }
        Method::Totp | Method::Token => {
            let secs = now_ms / 1000;
            let who = UserRef::of(session);
            let result = if method == Method::Totp {
                gw.store.verify_totp(&who, input, secs).await
            } else {
                gw.store.verify_token(&who, input, secs).await
            };
            match result {
                Ok(Verify::Accepted { .. }) => Checked::Accepted(None),
                Ok(Verify::Replay { .. }) => Checked::Replay,
                Ok(Verify::NeedsNextCode { .. }) => Checked::NeedsNext,
                Ok(Verify::Rejected) => Checked::Wrong,
                Err(e) => {
                    tracing::error!(error = %e, "enrolment storage failed");
                    Checked::Unavailable
                }
            }
        }
        Method::Passkey => verify_passkey(gw, rt, id, session, input, now_ms).await,
        Method::Password => Checked::Wrong,
    }
}

/// The browser's answer to the login ceremony of `id`: taken (one answer
/// per challenge), verified against the user's passkeys as stored now, and
/// the new counter saved only if it moved forward (two gateways, or a
/// cloned key racing the real one: one wins, the other is a regression).
async fn verify_passkey(
    gw: &Gateway,
    rt: &Runtime,
    id: &SessionId,
    session: &Session,
    response: &str,
    now_ms: u64,
) -> Checked {
    use crate::passkey::PasskeyError;
    use crate::storage::PasskeyUse;
    let state = match gw.passkey_logins.take(id.key()).await {
        Ok(Some(s)) => s,
        Ok(None) => return Checked::Dead(Reason::NoCodeSent),
        Err(_) => return Checked::Unavailable,
    };
    let who = UserRef::of(session);
    let keys = match gw.store.passkeys(&who).await {
        Ok(k) => k,
        Err(e) => {
            tracing::error!(error = %e, "enrolment storage failed");
            return Checked::Unavailable;
        }
    };
    let named = |id: i64| Some(format!("passkey:{id}"));
    match rt.passkeys.finish_login(response, &state, &keys) {
        Ok(used) => {
            match gw
                .store
                .use_passkey(&who, used.id, used.counter, &used.key, now_ms)
                .await
            {
                Ok(PasskeyUse::Recorded) => Checked::Accepted(named(used.id)),
                Ok(PasskeyUse::Regressed { .. }) => {
                    Checked::Refused(Reason::CounterRegression, named(used.id))
                }
                Ok(PasskeyUse::Gone) => Checked::Refused(Reason::PasskeyRefused, named(used.id)),
                Err(e) => {
                    tracing::error!(error = %e, "enrolment storage failed");
                    Checked::Unavailable
                }
            }
        }
        Err(PasskeyError::CounterRegression { id }) => {
            Checked::Refused(Reason::CounterRegression, id.and_then(named))
        }
        Err(PasskeyError::NoCeremony) => Checked::Dead(Reason::NoCodeSent),
        Err(PasskeyError::State(_)) => Checked::Unavailable,
        Err(e) => {
            tracing::info!(error = %e, "passkey login refused");
            Checked::Refused(Reason::PasskeyRefused, None)
        }
    }
}
