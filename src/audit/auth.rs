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

#[cfg(test)]
mod tests {
    use super::*;

    /// The line format is what readers of old logs parse: the enums must
    /// write the same strings, in the same field order, as before them.
    #[test]
    fn an_event_is_written_as_it_always_was() {
        let ev = AuthEvent {
            time: "2026-11-23T13:44:58.001Z".into(),
            event: Event::Login,
            result: Outcome::Failure,
            reason: Reason::WrongPassword,
            user: Some("alice"),
            realm: Some("adm"),
            client_ip: "192.0.2.7".parse().unwrap(),
            network: network(false),
            method: Some("password"),
            request_id: "a0",
            session: None,
            host: Some("login.example.org"),
            destination: None,
            provider: None,
        };
        assert_eq!(
            serde_json::to_string(&ev).unwrap(),
            r#"{"time":"2026-11-23T13:44:58.001Z","event":"login","result":"failure","reason":"wrong_password","user":"alice","realm":"adm","client_ip":"192.0.2.7","network":"external","method":"password","request_id":"a0","session":null,"host":"login.example.org"}"#
        );
    }
}
