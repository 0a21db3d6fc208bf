//! The `notify:` section as users write it: the serde shape of the YAML,
//! which refuses unknown keys and checks nothing else. [`super::validate`]
//! turns it into the model senders are built from.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::Deserialize;

use crate::config::types::{Duration as FileDuration, X_TYPE};

/// `notify:`
#[derive(Debug, Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileNotify {
    /// Text messages.
    #[serde(default)]
    pub sms: FileSms,
    /// E-mail.
    #[serde(default)]
    pub email: FileEmail,
    /// Directory where every message is also written as a file (demo, tests).
    /// Created if missing. It holds live codes: keep it out of production.
    pub outbox: Option<String>,
}

/// `notify.sms:`
#[derive(Debug, Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileSms {
    /// An HTTP SMS gateway.
    pub http: Option<FileHttpSms>,
    /// Print every SMS, code included, to stdout (demo).
    #[serde(default)]
    pub console: bool,
    /// What one message costs you (`0.45`); with `currency`, or not at all.
    /// Read only by `portvakt audit report` (the estimated SMS cost) and the
    /// `sms_cost_per_message` metric; sending does not depend on it.
    #[schemars(extend(
        "x-type" = "decimal number",
        "x-limits" = super::price::limits(),
    ))]
    pub cost_per_message: Option<Scalar>,
    /// The ISO 4217 code of that price (`SEK`, `EUR`); with
    /// `cost_per_message`, or not at all.
    #[schemars(extend("x-type" = "ISO 4217 currency code"))]
    pub currency: Option<String>,
}

/// `notify.sms.http:`
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileHttpSms {
    /// Endpoint. `https://`, or `http://` to a loopback address only.
    pub url: String,
    /// HTTP method; with `GET` the parameters go in the query.
    #[schemars(extend(
        "x-values" = super::HttpMethod::ALL.map(super::HttpMethod::as_str),
        "x-default" = super::HttpMethod::DEFAULT.as_str(),
    ))]
    pub method: Option<String>,
    /// Extra request headers; values are templates.
    #[serde(default)]
    pub headers: BTreeMap<String, Scalar>,
    /// HTTP Basic credentials.
    pub basic_auth: Option<FileBasicAuth>,
    /// File holding a bearer token (`Authorization: Bearer …`).
    pub bearer_token_file: Option<String>,
    /// An `application/x-www-form-urlencoded` body; values are templates.
    pub form: Option<BTreeMap<String, Scalar>>,
    /// A JSON body, of any shape; every string in it is a template. Not
    /// with `form`.
    #[schemars(extend("x-type" = "any YAML value (sent as JSON)"))]
    pub json: Option<serde_json::Value>,
    /// Query parameters; values are templates.
    #[serde(default)]
    pub query: BTreeMap<String, Scalar>,
    /// Give up after this long.
    #[schemars(extend(
        "x-default" = FileDuration(super::DEFAULT_TIMEOUT),
        "x-limits" = super::check::timeout_limits(),
    ))]
    pub timeout: Option<FileDuration>,
    /// Statuses that mean "sent"; empty: any 2xx.
    #[serde(default)]
    pub success_status: Vec<u16>,
    /// PEM file with CA certificates trusted in addition to the public roots.
    pub ca_file: Option<String>,
}

/// `notify.sms.http.basic_auth:`
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileBasicAuth {
    /// User name (API user).
    pub username: String,
    /// File holding the password.
    pub password_file: String,
}

/// `notify.email:`
#[derive(Debug, Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileEmail {
    /// An SMTP server.
    pub smtp: Option<FileSmtp>,
    /// Print every e-mail, code included, to stdout (demo).
    #[serde(default)]
    pub console: bool,
}

/// `notify.email.smtp:`
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileSmtp {
    /// `smtps://host[:465]` (implicit TLS), `smtp://host[:587]` (STARTTLS,
    /// required) or `smtp://host[:25]?tls=none` (plain text, explicit opt-in).
    pub url: String,
    /// Sender, e.g. `E-portalen <portal@example.org>`.
    pub from: String,
    /// SMTP AUTH user name.
    pub username: Option<String>,
    /// File holding the SMTP AUTH password.
    pub password_file: Option<String>,
    /// Give up after this long.
    #[schemars(extend(
        "x-default" = FileDuration(super::DEFAULT_TIMEOUT),
        "x-limits" = super::check::timeout_limits(),
    ))]
    pub timeout: Option<FileDuration>,
    /// PEM file with CA certificates trusted in addition to the public roots.
    pub ca_file: Option<String>,
}

/// A YAML scalar used as text: `flash: 0` and `flash: "0"` both work.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Scalar {
    /// A string.
    Text(String),
    /// A whole number.
    Int(i64),
    /// A decimal number.
    Float(f64),
    /// `true` / `false`.
    Bool(bool),
}

/// One value in the reference: text, whichever way YAML wrote it.
impl JsonSchema for Scalar {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        "Scalar".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": ["string", "number", "boolean"],
            X_TYPE: crate::config::reference::TEMPLATE,
        })
    }
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Text(s) => f.write_str(s),
            Scalar::Int(n) => write!(f, "{n}"),
            Scalar::Float(n) => write!(f, "{n}"),
            Scalar::Bool(b) => write!(f, "{b}"),
        }
    }
}
