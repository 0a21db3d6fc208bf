//! The `notify:` section: its serde shape as users write it ([`FileNotify`])
//! and the validated model senders are built from ([`NotifyConfig`]).
//!
//! ```yaml
//! notify:
//!   sms:
//!     http:                              # any HTTP SMS gateway, no code per provider
//!       url: https://api.46elks.com/a1/sms
//!       method: POST                     # GET, POST (default) or PUT
//!       headers: { X-Api-Key: "…" }      # optional; {phone}/{text} are filled in here too
//!       basic_auth: { username: u123, password_file: /etc/portvakt/sms.pass }
//!       bearer_token_file: /etc/portvakt/sms.token     # or this, not both
//!       form: { from: Portal, to: "{phone}", message: "{text}" }   # form body, or
//!       json: { to: "{phone}", body: "{text}" }                    # a JSON body (any nesting)
//!       query: { }                       # optional query parameters
//!       timeout: 10s
//!       success_status: [200, 201, 202]  # default: any 2xx
//!       ca_file: /etc/portvakt/internal-ca.pem   # optional extra trusted CAs
//!     console: false                     # demo: print every SMS to stdout
//!     cost_per_message: 0.45             # optional: for the estimated cost in
//!     currency: SEK                      #   `portvakt audit report` (ISO 4217)
//!   email:
//!     smtp:
//!       url: "smtps://mail.example.org"  # or smtp://host:587 (STARTTLS, required)
//!       from: "E-portalen <portal@example.org>"
//!       username: portal                 # optional
//!       password_file: /etc/portvakt/smtp.pass
//!       timeout: 10s
//!       ca_file: /etc/portvakt/internal-ca.pem
//!     console: false
//!   outbox: /var/lib/portvakt/outbox     # optional: also write every message as a file
//! ```
//!
//! Placeholders: `{phone}` (E.164, `+46701234567`), `{phone_digits}` (the
//! same without `+`) and `{text}`. Secrets come from files, read here, so a
//! reload picks up a rotated secret and the YAML file holds none.

mod check;
mod file;
mod model;
mod price;

use std::time::Duration;

pub use self::check::validate;
pub use self::file::{
    FileBasicAuth, FileEmail, FileHttpSms, FileNotify, FileSms, FileSmtp, Scalar,
};
pub use self::model::{
    BodyTemplate, EmailConfig, HttpAuth, HttpMethod, HttpSmsConfig, NotifyConfig, Secret,
    SmsConfig, SmtpConfig, SmtpSecurity,
};
pub use self::price::{Amount, AmountError, Currency, Price};

/// Default time a send may take before it is given up.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest timeout accepted: a login page must not wait longer than this.
const MAX_TIMEOUT: Duration = Duration::from_secs(60);

/// Placeholders filled in SMS request templates.
pub const PLACEHOLDERS: [&str; 3] = ["{phone}", "{phone_digits}", "{text}"];

#[cfg(test)]
mod tests;
