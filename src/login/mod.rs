//! The login flow's decisions, apart from any page: checking a password
//! under the regulator's rules and issuing the session, the second step
//! (sending and checking a code, upgrading the session), the password again
//! before a self-service change, and redeeming a handoff on a service host.
//!
//! Each function takes plain inputs (the gateway and runtime, the realm,
//! the [`Client`], what was typed, the session) and returns a typed outcome;
//! the audit events and the regulator's bookkeeping happen here, so the
//! pages in [`crate::pages`] only choose how to show the outcome (template,
//! status, cookies, redirect) and cannot forget a rule by rendering.
//!
//! - [`password`]: the password step of login.
//! - [`second`]: the second step: send a code, check a code.
//! - [`passwordless`]: a login with a passkey alone (no password).
//! - [`reauth`]: the password again, before a change.
//! - [`handoff`]: issuing and redeeming the code that carries a login to a
//!   service host.

pub mod handoff;
pub mod password;
pub mod passwordless;
pub mod reauth;
pub mod second;

#[cfg(test)]
mod tests;

use std::net::IpAddr;

use crate::audit::{AuthEvent, Event, Outcome, Reason};
use crate::config::model::Realm;
use crate::gateway::{Gateway, Runtime};
use crate::regulation::{Factor, UserKey};
use crate::session::Session;

/// Count a failed login (a wrong password, or a passkey alone refused) on
/// the typed name and the address, and log the lockout or address block it
/// may cause.
#[allow(clippy::too_many_arguments)]
async fn count_failure(
    gw: &Gateway,
    rt: &Runtime,
    client: &Client<'_>,
    realm: &Realm,
    typed: &UserKey,
    username: &str,
    internal: bool,
    now: u64,
) {
    let escalation = rt
        .regulator
        .failed(Some(typed), client.ip, Factor::Password, now)
        .await;
    if let Some(reason) = escalation.lockout_reason() {
        let ev = client.event(
            gw,
            Event::Lockout,
            Outcome::Info,
            reason,
            Some(username),
            Some(&realm.id),
            internal,
        );
        gw.audit(rt, ev);
    }
    if escalation.ip_blocked {
        let ev = client.event(
            gw,
            Event::IpBlock,
            Outcome::Info,
            Reason::TooManyFailures,
            None,
            Some(&realm.id),
            internal,
        );
        gw.audit(rt, ev);
    }
}

/// Who is asking, as the request shows it.
#[derive(Debug, Clone, Copy)]
pub struct Client<'a> {
    /// The client address (after trusted proxies).
    pub ip: IpAddr,
    /// This request's id, for the auth log.
    pub request_id: &'a str,
    /// The host the request came to.
    pub host: &'a str,
}

impl<'c> Client<'c> {
    /// An auth event for `user` in `realm` from this client.
    #[allow(clippy::too_many_arguments)]
    fn event<'a>(
        &self,
        gw: &Gateway,
        event: Event,
        result: Outcome,
        reason: Reason,
        user: Option<&'a str>,
        realm: Option<&'a str>,
        internal: bool,
    ) -> AuthEvent<'a>
    where
        'c: 'a,
    {
        gw.event(
            event,
            result,
            reason,
            user,
            realm,
            self.ip,
            internal,
            self.request_id,
        )
    }

    /// An auth event for the user of `session` from this client.
    fn session_event<'a>(
        &self,
        gw: &Gateway,
        event: Event,
        result: Outcome,
        reason: Reason,
        session: &'a Session,
        internal: bool,
    ) -> AuthEvent<'a>
    where
        'c: 'a,
    {
        self.event(
            gw,
            event,
            result,
            reason,
            Some(&session.user),
            Some(&session.realm),
            internal,
        )
    }
}
