//! The `notify:` section as users write it: the serde shape of the YAML,
//! which refuses unknown keys and checks nothing else. [`super::validate`]
//! turns it into the model senders are built from.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;

use crate::config::types::Duration as FileDuration;

/// `notify:`
#[derive(Debug, Deserialize, Default)]
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
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct FileSms {
    /// An HTTP SMS gateway.
    pub http: Option<FileHttpSms>,
    /// Print every SMS, code included, to stdout (demo).
    #[serde(default)]
    pub console: bool,
    /// What one message costs you (`0.45`): at most four decimals, not
    /// negative, at most 10000; with `currency`, or not at all. Read only by
    /// `portvakt audit report` (the estimated SMS cost) and the
    /// `sms_cost_per_message` metric; sending does not depend on it.
    pub cost_per_message: Option<Scalar>,
    /// The ISO 4217 code of that price (`SEK`, `EUR`).
    pub currency: Option<String>,
}

/// `notify.sms.http:`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileHttpSms {
    /// Endpoint. `https://`, or `http://` to a loopback address only.
    pub url: String,
    /// `GET`, `POST` (default) or `PUT`.
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
    /// A JSON body; every string in it is a template.
    pub json: Option<serde_json::Value>,
    /// Query parameters; values are templates.
    #[serde(default)]
    pub query: BTreeMap<String, Scalar>,
    /// Give up after this long. Default 10s.
    pub timeout: Option<FileDuration>,
    /// Statuses that mean "sent". Default: any 2xx.
    #[serde(default)]
    pub success_status: Vec<u16>,
    /// PEM file with CA certificates trusted in addition to the public roots.
    pub ca_file: Option<String>,
}

/// `notify.sms.http.basic_auth:`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileBasicAuth {
    /// User name (API user).
    pub username: String,
    /// File holding the password.
    pub password_file: String,
}

/// `notify.email:`
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct FileEmail {
    /// An SMTP server.
    pub smtp: Option<FileSmtp>,
    /// Print every e-mail, code included, to stdout (demo).
    #[serde(default)]
    pub console: bool,
}

/// `notify.email.smtp:`
#[derive(Debug, Deserialize)]
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
    /// Give up after this long. Default 10s.
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
