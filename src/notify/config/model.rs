//! The checked `notify:` section, as [`super::validate`] returns it: URLs
//! parsed, secrets read from their files, methods, bodies and TLS modes
//! decided. The SMS and e-mail senders are built from these types.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use lettre::message::Mailbox;
use url::Url;

/// A secret read from a file. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wrap `value`.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The checked `notify:` section.
#[derive(Debug, Clone, Default)]
pub struct NotifyConfig {
    /// Text messages.
    pub sms: SmsConfig,
    /// E-mail.
    pub email: EmailConfig,
    /// Copy every message into this directory.
    pub outbox: Option<PathBuf>,
}

impl NotifyConfig {
    /// Whether SMS codes can be sent at all (a gateway, the console or the outbox).
    pub fn sms_enabled(&self) -> bool {
        self.sms.http.is_some() || self.sms.console || self.outbox.is_some()
    }

    /// Whether e-mail codes can be sent at all.
    pub fn email_enabled(&self) -> bool {
        self.email.smtp.is_some() || self.email.console || self.outbox.is_some()
    }
}

/// Checked `notify.sms`.
#[derive(Debug, Clone, Default)]
pub struct SmsConfig {
    /// The HTTP gateway, if any.
    pub http: Option<HttpSmsConfig>,
    /// Print to stdout.
    pub console: bool,
    /// What one message costs, if configured (only `portvakt audit report`
    /// and the metrics read it: sending does not depend on it).
    pub cost: Option<super::Price>,
}

/// Checked `notify.email`.
#[derive(Debug, Clone, Default)]
pub struct EmailConfig {
    /// The SMTP server, if any.
    pub smtp: Option<SmtpConfig>,
    /// Print to stdout.
    pub console: bool,
}

/// HTTP method for the SMS gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpMethod {
    /// `GET` (parameters in the query).
    Get,
    /// `POST`.
    Post,
    /// `PUT`.
    Put,
}

impl HttpMethod {
    /// The method when `notify.sms.http.method` is left out.
    pub const DEFAULT: HttpMethod = HttpMethod::Post;
    /// Every method the config file may name.
    pub const ALL: [HttpMethod; 3] = [HttpMethod::Get, HttpMethod::Post, HttpMethod::Put];

    /// The name in the config file (any case is accepted there).
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Post => "POST",
            HttpMethod::Put => "PUT",
        }
    }
}

/// The request body template.
#[derive(Debug, Clone, PartialEq)]
pub enum BodyTemplate {
    /// No body.
    None,
    /// Form fields, in key order.
    Form(Vec<(String, String)>),
    /// JSON; strings anywhere inside are templates.
    Json(serde_json::Value),
}

/// How the SMS gateway is authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpAuth {
    /// Nothing beyond configured headers.
    None,
    /// HTTP Basic.
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: Secret,
    },
    /// `Authorization: Bearer …`.
    Bearer(Secret),
}

/// Checked `notify.sms.http`.
#[derive(Debug, Clone)]
pub struct HttpSmsConfig {
    /// Endpoint (without the templated query).
    pub url: Url,
    /// Method.
    pub method: HttpMethod,
    /// Header name and value template.
    pub headers: Vec<(String, String)>,
    /// Credentials.
    pub auth: HttpAuth,
    /// Body template.
    pub body: BodyTemplate,
    /// Query parameter name and value template.
    pub query: Vec<(String, String)>,
    /// Whole request, answer included, must finish within this.
    pub timeout: Duration,
    /// Statuses that mean "sent"; empty: any 2xx.
    pub success_status: Vec<u16>,
    /// Extra trusted CA certificates (PEM).
    pub ca_pem: Option<Vec<u8>>,
}

/// Transport security of the SMTP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// TLS from the first byte (`smtps://`).
    ImplicitTls,
    /// Plain connection upgraded with STARTTLS; refusing the upgrade fails.
    StartTls,
    /// No encryption (`?tls=none`, written explicitly).
    None,
}

/// Checked `notify.email.smtp`.
#[derive(Debug, Clone)]
pub struct SmtpConfig {
    /// Server host name (also the name its certificate must carry).
    pub host: String,
    /// Server port.
    pub port: u16,
    /// TLS mode.
    pub security: SmtpSecurity,
    /// Sender.
    pub from: Mailbox,
    /// SMTP AUTH user and password.
    pub credentials: Option<(String, Secret)>,
    /// One message, connection included, must be sent within this.
    pub timeout: Duration,
    /// Extra trusted CA certificates (PEM).
    pub ca_pem: Option<Vec<u8>>,
}
