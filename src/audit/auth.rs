//! Authentication events: every login decision, logout, expiry and lockout.

use std::net::IpAddr;

use serde::Serialize;

use super::vocabulary::{Event, Outcome, Reason};

/// One authentication decision.
#[derive(Debug, Serialize)]
pub struct AuthEvent<'a> {
    /// RFC 3339 UTC with milliseconds.
    pub time: String,
    /// What happened.
    pub event: Event,
    /// How it went.
    pub result: Outcome,
    /// Why.
    pub reason: Reason,
    /// The user name as given or known.
    pub user: Option<&'a str>,
    /// Realm id.
    pub realm: Option<&'a str>,
    /// Client address.
    pub client_ip: IpAddr,
    /// `internal` or `external`.
    pub network: &'static str,
    /// `password`, ….
    pub method: Option<&'a str>,
    /// Request id (joins the access log).
    pub request_id: &'a str,
    /// Short hash of the session id, never the id.
    pub session: Option<String>,
    /// Host the event happened on.
    pub host: Option<&'a str>,
    /// Masked destination of a code (`070*****67`, `a***e@example.org`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    /// What the SMS/e-mail provider answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
}

/// `internal`/`external` for logs.
pub fn network(internal: bool) -> &'static str {
    if internal {
        "internal"
    } else {
        "external"
    }
}
