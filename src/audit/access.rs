//! The access-log record: one per request, written from pingora's `logging()`.

use serde::Serialize;

/// One request, as auditors read it.
#[derive(Debug, Serialize)]
pub struct AccessRecord<'a> {
    /// RFC 3339 UTC with milliseconds.
    pub time: String,
    /// The gateway that served it (`audit.gateway`).
    pub gateway: &'a str,
    /// Shared with the auth log and sent upstream as `X-Request-Id`.
    pub request_id: &'a str,
    /// Client address (after trusted-proxy resolution).
    #[serde(serialize_with = "crate::net::serialize_ip")]
    pub client_ip: std::net::IpAddr,
    /// TCP peer address.
    #[serde(serialize_with = "crate::net::serialize_ip")]
    pub peer_ip: std::net::IpAddr,
    /// `internal` or `external` for the realm in question.
    pub network: &'static str,
    /// Host asked for.
    pub host: &'a str,
    /// HTTP method.
    pub method: &'a str,
    /// Path without query string (queries may carry secrets).
    pub path: &'a str,
    /// The path as the client spelt it, only when normalising changed it
    /// (`/public/../admin` for a `path` of `/admin`); without query string.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw_path: Option<&'a str>,
    /// Status sent to the client.
    pub status: u16,
    /// Response body bytes sent.
    pub bytes: usize,
    /// Time from request to log, ms.
    pub duration_ms: f64,
    /// Service name, if routed to one.
    pub service: Option<&'a str>,
    /// Upstream address, if proxied.
    pub upstream: Option<&'a str>,
    /// Status the upstream answered, if any.
    pub upstream_status: Option<u16>,
    /// Logged-in user.
    pub user: Option<&'a str>,
    /// User's realm.
    pub realm: Option<&'a str>,
    /// 1 or 2.
    pub auth_level: Option<u8>,
    /// allow, login, step_up, deny, page, redirect, not_found, error.
    pub decision: &'a str,
    /// Why.
    pub reason: &'a str,
    /// Negotiated TLS version.
    pub tls_version: Option<&'a str>,
    /// HTTP version.
    pub http_version: &'a str,
    /// Client's User-Agent.
    pub user_agent: Option<&'a str>,
    /// Error, if the request failed inside the gateway.
    pub error: Option<String>,
}
