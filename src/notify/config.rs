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

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lettre::message::Mailbox;
use serde::Deserialize;
use url::Url;

use crate::config::types::Duration as FileDuration;

/// Default time a send may take before it is given up.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest timeout accepted: a login page must not wait longer than this.
const MAX_TIMEOUT: Duration = Duration::from_secs(60);

/// Placeholders filled in SMS request templates.
pub const PLACEHOLDERS: [&str; 3] = ["{phone}", "{phone_digits}", "{text}"];

// ---------------------------------------------------------------- file shape

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

// ---------------------------------------------------------- validated model

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

// ---------------------------------------------------------------- validation

/// Problems found so far: key path under `notify` and message.
type Problems = Vec<(String, String)>;

struct Checker<'a> {
    base: &'a Path,
    problems: Problems,
}

impl Checker<'_> {
    fn problem(&mut self, key: &str, message: impl Into<String>) {
        self.problems.push((key.to_owned(), message.into()));
    }

    fn path(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        }
    }

    fn read(&mut self, key: &str, p: &str) -> Option<Vec<u8>> {
        let path = self.path(p);
        match std::fs::read(&path) {
            Ok(bytes) => Some(bytes),
            Err(e) => {
                self.problem(key, format!("cannot read {}: {e}", path.display()));
                None
            }
        }
    }

    /// A secret file: UTF-8, trailing newline dropped, not empty.
    fn secret(&mut self, key: &str, p: &str) -> Option<Secret> {
        let bytes = self.read(key, p)?;
        let Ok(text) = String::from_utf8(bytes) else {
            self.problem(key, format!("{p} is not UTF-8 text"));
            return None;
        };
        let value = text.trim_end_matches(['\r', '\n']);
        if value.is_empty() {
            self.problem(key, format!("{p} is empty"));
            return None;
        }
        Some(Secret::new(value))
    }

    fn ca(&mut self, key: &str, p: Option<&String>) -> Option<Vec<u8>> {
        let pem = self.read(key, p?)?;
        match reqwest::Certificate::from_pem_bundle(&pem) {
            Ok(certs) if !certs.is_empty() => Some(pem),
            Ok(_) => {
                self.problem(key, "no PEM certificate in the file");
                None
            }
            Err(e) => {
                self.problem(key, format!("not a PEM certificate bundle: {e}"));
                None
            }
        }
    }

    fn timeout(&mut self, key: &str, t: Option<FileDuration>) -> Duration {
        let t = t.map_or(DEFAULT_TIMEOUT, |d| d.0);
        if t.is_zero() || t > MAX_TIMEOUT {
            self.problem(key, "must be more than 0s and at most 60s");
            return DEFAULT_TIMEOUT;
        }
        t
    }

    /// A template string: every `{name}` must be a known placeholder.
    fn template(&mut self, key: &str, text: &str) -> String {
        for name in placeholder_names(text) {
            let written = format!("{{{name}}}");
            if !PLACEHOLDERS.contains(&written.as_str()) {
                self.problem(
                    key,
                    format!("unknown placeholder {written}; use {{phone}}, {{phone_digits}} or {{text}}"),
                );
            }
        }
        text.to_owned()
    }

    fn pairs(&mut self, key: &str, map: &BTreeMap<String, Scalar>) -> Vec<(String, String)> {
        map.iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    self.template(&format!("{key}.{k}"), &v.to_string()),
                )
            })
            .collect()
    }

    fn json(&mut self, key: &str, value: &serde_json::Value) {
        match value {
            serde_json::Value::String(s) => {
                self.template(key, s);
            }
            serde_json::Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    self.json(&format!("{key}[{i}]"), v);
                }
            }
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    self.json(&format!("{key}.{k}"), v);
                }
            }
            _ => {}
        }
    }
}

/// The `name`s of `{name}` tokens in `text` (identifier characters only, so
/// JSON-looking text and lone braces are left alone).
fn placeholder_names(text: &str) -> Vec<&str> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        rest = &rest[open + 1..];
        if let Some(close) = rest.find('}') {
            let name = &rest[..close];
            if !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                names.push(name);
                rest = &rest[close + 1..];
            }
        }
    }
    names
}

fn is_loopback_host(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

fn host_is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_matches(['[', ']'])
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Check `file` (the `notify:` section of a config file in `base_dir`).
/// Problems carry their key path under `notify`, e.g. `sms.http.url`.
pub fn validate(file: &FileNotify, base_dir: &Path) -> Result<NotifyConfig, Vec<(String, String)>> {
    let mut c = Checker {
        base: base_dir,
        problems: Vec::new(),
    };
    let http = file.sms.http.as_ref().and_then(|h| http_sms(&mut c, h));
    let smtp = file.email.smtp.as_ref().and_then(|s| smtp(&mut c, s));
    let outbox = file.outbox.as_ref().map(|p| {
        let path = c.path(p);
        if path.exists() && !path.is_dir() {
            c.problem("outbox", format!("{} is not a directory", path.display()));
        }
        path
    });
    if c.problems.is_empty() {
        Ok(NotifyConfig {
            sms: SmsConfig {
                http,
                console: file.sms.console,
            },
            email: EmailConfig {
                smtp,
                console: file.email.console,
            },
            outbox,
        })
    } else {
        Err(c.problems)
    }
}

fn http_sms(c: &mut Checker<'_>, f: &FileHttpSms) -> Option<HttpSmsConfig> {
    let before = c.problems.len();
    let url = match Url::parse(f.url.trim()) {
        Ok(u) if u.scheme() == "https" && u.host().is_some() => Some(u),
        Ok(u) if u.scheme() == "http" && is_loopback_host(&u) => Some(u),
        Ok(u) if u.scheme() == "http" => {
            c.problem(
                "sms.http.url",
                "use https:// (plain http:// is allowed only to a loopback address)",
            );
            None
        }
        Ok(_) => {
            c.problem("sms.http.url", "must be an https:// address");
            None
        }
        Err(e) => {
            c.problem("sms.http.url", format!("not a URL: {e}"));
            None
        }
    };
    if url
        .as_ref()
        .is_some_and(|u| !u.username().is_empty() || u.password().is_some())
    {
        c.problem(
            "sms.http.url",
            "put credentials in basic_auth, not in the URL",
        );
    }

    let method = match f.method.as_deref().map(str::to_ascii_uppercase).as_deref() {
        None | Some("POST") => HttpMethod::Post,
        Some("GET") => HttpMethod::Get,
        Some("PUT") => HttpMethod::Put,
        Some(other) => {
            c.problem(
                "sms.http.method",
                format!("{other:?}: use GET, POST or PUT"),
            );
            HttpMethod::Post
        }
    };

    let form = f.form.as_ref().map(|form| c.pairs("sms.http.form", form));
    if let Some(json) = &f.json {
        c.json("sms.http.json", json);
    }
    let body = match (form, &f.json) {
        (Some(_), Some(_)) => {
            c.problem("sms.http", "write either form or json, not both");
            BodyTemplate::None
        }
        (Some(pairs), None) => BodyTemplate::Form(pairs),
        (None, Some(json)) => BodyTemplate::Json(json.clone()),
        (None, None) => BodyTemplate::None,
    };
    if method == HttpMethod::Get && body != BodyTemplate::None {
        c.problem(
            "sms.http.method",
            "GET sends no body; put the fields in query",
        );
    }

    let mut headers = Vec::new();
    for (name, value) in &f.headers {
        let key = format!("sms.http.headers.{name}");
        if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
            c.problem(&key, "not a valid header name");
        }
        let value = c.template(&key, &value.to_string());
        if reqwest::header::HeaderValue::from_str(&value).is_err() {
            c.problem(&key, "not a valid header value (printable ASCII only)");
        }
        headers.push((name.clone(), value));
    }
    let query = c.pairs("sms.http.query", &f.query);

    let auth = match (&f.basic_auth, &f.bearer_token_file) {
        (Some(_), Some(_)) => {
            c.problem(
                "sms.http",
                "write either basic_auth or bearer_token_file, not both",
            );
            HttpAuth::None
        }
        (Some(b), None) => match c.secret("sms.http.basic_auth.password_file", &b.password_file) {
            Some(password) => HttpAuth::Basic {
                username: b.username.clone(),
                password,
            },
            None => HttpAuth::None,
        },
        (None, Some(p)) => c
            .secret("sms.http.bearer_token_file", p)
            .map_or(HttpAuth::None, HttpAuth::Bearer),
        (None, None) => HttpAuth::None,
    };
    if auth != HttpAuth::None
        && headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("authorization"))
    {
        c.problem(
            "sms.http.headers.Authorization",
            "the Authorization header is set by basic_auth or bearer_token_file",
        );
    }

    // The message must be able to reach the gateway: number and text somewhere.
    let mut all_text: Vec<String> = headers.iter().map(|(_, v)| v.clone()).collect();
    all_text.extend(query.iter().map(|(_, v)| v.clone()));
    match &body {
        BodyTemplate::Form(pairs) => all_text.extend(pairs.iter().map(|(_, v)| v.clone())),
        BodyTemplate::Json(v) => all_text.push(v.to_string()),
        BodyTemplate::None => {}
    }
    let joined = all_text.join("\n");
    if !joined.contains("{phone}") && !joined.contains("{phone_digits}") {
        c.problem(
            "sms.http",
            "no {phone} or {phone_digits} placeholder in form, json, query or headers",
        );
    }
    if !joined.contains("{text}") {
        c.problem(
            "sms.http",
            "no {text} placeholder in form, json, query or headers",
        );
    }

    for s in &f.success_status {
        if !(100..=599).contains(s) {
            c.problem(
                "sms.http.success_status",
                format!("{s} is not an HTTP status"),
            );
        }
    }
    let timeout = c.timeout("sms.http.timeout", f.timeout);
    let ca_pem = c.ca("sms.http.ca_file", f.ca_file.as_ref());

    if c.problems.len() > before {
        return None;
    }
    Some(HttpSmsConfig {
        url: url?,
        method,
        headers,
        auth,
        body,
        query,
        timeout,
        success_status: f.success_status.clone(),
        ca_pem,
    })
}

fn smtp(c: &mut Checker<'_>, f: &FileSmtp) -> Option<SmtpConfig> {
    let before = c.problems.len();
    let endpoint = smtp_url(c, &f.url);

    let from = match f.from.trim().parse::<Mailbox>() {
        Ok(m) => Some(m),
        Err(e) => {
            c.problem(
                "email.smtp.from",
                format!(
                    "{:?} is not an address like \"E-portalen <portal@example.org>\": {e}",
                    f.from
                ),
            );
            None
        }
    };

    let credentials = match (&f.username, &f.password_file) {
        (Some(user), Some(p)) => c
            .secret("email.smtp.password_file", p)
            .map(|s| (user.clone(), s)),
        (None, None) => None,
        (Some(_), None) => {
            c.problem("email.smtp.password_file", "username needs a password_file");
            None
        }
        (None, Some(_)) => {
            c.problem("email.smtp.username", "password_file needs a username");
            None
        }
    };
    if let Some((host, _, SmtpSecurity::None)) = &endpoint {
        if f.username.is_some() && !host_is_loopback(host) {
            c.problem(
                "email.smtp.url",
                "tls=none would send the SMTP password in clear text; use TLS with credentials",
            );
        }
    }
    if let Some((_, _, SmtpSecurity::None)) = &endpoint {
        if f.ca_file.is_some() {
            c.problem("email.smtp.ca_file", "has no effect with tls=none");
        }
    }
    let timeout = c.timeout("email.smtp.timeout", f.timeout);
    let ca_pem = c.ca("email.smtp.ca_file", f.ca_file.as_ref());

    if c.problems.len() > before {
        return None;
    }
    let (host, port, security) = endpoint?;
    Some(SmtpConfig {
        host,
        port,
        security,
        from: from?,
        credentials,
        timeout,
        ca_pem,
    })
}

/// `smtps://host[:port]` or `smtp://host[:port][?tls=starttls|none]`.
fn smtp_url(c: &mut Checker<'_>, text: &str) -> Option<(String, u16, SmtpSecurity)> {
    const KEY: &str = "email.smtp.url";
    let url = match Url::parse(text.trim()) {
        Ok(u) => u,
        Err(e) => {
            c.problem(KEY, format!("not a URL: {e}"));
            return None;
        }
    };
    let Some(host) = url.host_str().filter(|h| !h.is_empty()) else {
        c.problem(KEY, "no host");
        return None;
    };
    let host = host.trim_matches(['[', ']']).to_owned();
    if !url.username().is_empty() || url.password().is_some() {
        c.problem(
            KEY,
            "put the user in username and the password in password_file",
        );
        return None;
    }
    if !matches!(url.path(), "" | "/") {
        c.problem(KEY, "an SMTP URL has no path");
        return None;
    }
    let mut tls = None;
    for (k, v) in url.query_pairs() {
        match (k.as_ref(), v.as_ref()) {
            ("tls", "starttls") => tls = Some(SmtpSecurity::StartTls),
            ("tls", "none") => tls = Some(SmtpSecurity::None),
            ("tls", other) => {
                c.problem(KEY, format!("tls={other}: use tls=starttls or tls=none"));
                return None;
            }
            (other, _) => {
                c.problem(
                    KEY,
                    format!("unknown parameter {other:?}; only tls= is known"),
                );
                return None;
            }
        }
    }
    let security = match (url.scheme(), tls) {
        ("smtps", None) => SmtpSecurity::ImplicitTls,
        ("smtps", Some(_)) => {
            c.problem(KEY, "smtps:// is always TLS; tls= belongs to smtp://");
            return None;
        }
        ("smtp", t) => t.unwrap_or(SmtpSecurity::StartTls),
        (other, _) => {
            c.problem(KEY, format!("scheme {other}: use smtps:// or smtp://"));
            return None;
        }
    };
    let port = url.port().unwrap_or(match security {
        SmtpSecurity::ImplicitTls => 465,
        SmtpSecurity::StartTls => 587,
        SmtpSecurity::None => 25,
    });
    Some((host, port, security))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> FileNotify {
        serde_norway::from_str(yaml).unwrap()
    }

    fn check(yaml: &str) -> Result<NotifyConfig, Vec<(String, String)>> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("sms.pass"), "s3cret\n").unwrap();
        std::fs::write(dir.path().join("empty"), "\n").unwrap();
        validate(&parse(yaml), dir.path())
    }

    fn keys(r: Result<NotifyConfig, Vec<(String, String)>>) -> Vec<String> {
        r.unwrap_err().into_iter().map(|(k, _)| k).collect()
    }

    #[test]
    fn an_empty_section_enables_nothing() {
        let c = check("{}").unwrap();
        assert!(!c.sms_enabled());
        assert!(!c.email_enabled());
    }

    #[test]
    fn a_form_gateway_with_basic_auth() {
        let c = check(
            r#"
sms:
  http:
    url: https://api.46elks.com/a1/sms
    basic_auth: { username: u123, password_file: sms.pass }
    form: { from: Portal, to: "{phone}", message: "{text}", flash: 0 }
"#,
        )
        .unwrap();
        let h = c.sms.http.unwrap();
        assert_eq!(h.method, HttpMethod::Post);
        assert_eq!(h.timeout, DEFAULT_TIMEOUT);
        assert_eq!(
            h.auth,
            HttpAuth::Basic {
                username: "u123".into(),
                password: Secret::new("s3cret")
            }
        );
        assert!(!format!("{:?}", h.auth).contains("s3cret"));
        let BodyTemplate::Form(pairs) = h.body else {
            panic!("form expected")
        };
        assert!(pairs.contains(&("flash".into(), "0".into())));
        assert!(pairs.contains(&("to".into(), "{phone}".into())));
    }

    #[test]
    fn a_json_gateway_with_a_bearer_token_and_timeout() {
        let c = check(
            r#"
sms:
  http:
    url: https://sms.example.org/v1/messages
    bearer_token_file: sms.pass
    json: { recipients: [{ msisdn: "{phone_digits}" }], content: { text: "{text}" } }
    timeout: 3s
    success_status: [202]
"#,
        )
        .unwrap();
        let h = c.sms.http.unwrap();
        assert_eq!(h.timeout, Duration::from_secs(3));
        assert_eq!(h.auth, HttpAuth::Bearer(Secret::new("s3cret")));
        assert!(matches!(h.body, BodyTemplate::Json(_)));
    }

    #[test]
    fn get_with_query_only_is_fine() {
        let c = check(
            r#"
sms: { http: { url: "http://127.0.0.1:8080/send", method: get, query: { to: "{phone}", msg: "{text}" } } }
"#,
        )
        .unwrap();
        assert_eq!(c.sms.http.unwrap().method, HttpMethod::Get);
    }

    #[test]
    fn sms_gateway_mistakes_are_all_reported() {
        let k = keys(check(
            r#"
sms:
  http:
    url: http://sms.example.org/send
    method: PATCH
    headers: { "Bad Header": x }
    basic_auth: { username: u, password_file: missing.pass }
    form: { to: "{phone}", message: "{txt}" }
    json: { a: b }
    timeout: 0s
    success_status: [42]
"#,
        ));
        for expected in [
            "sms.http.url",
            "sms.http.method",
            "sms.http.headers.Bad Header",
            "sms.http.basic_auth.password_file",
            "sms.http.form.message",
            "sms.http",
            "sms.http.timeout",
            "sms.http.success_status",
        ] {
            assert!(
                k.iter().any(|x| x == expected),
                "{expected} missing in {k:?}"
            );
        }
    }

    #[test]
    fn placeholders_must_be_present() {
        let r = check(r#"sms: { http: { url: "https://x.example", form: { to: "{phone}" } } }"#);
        let problems = r.unwrap_err();
        assert_eq!(problems.len(), 1);
        assert!(problems[0].1.contains("{text}"), "{problems:?}");
    }

    #[test]
    fn get_with_a_body_is_refused() {
        let k = keys(check(
            r#"sms: { http: { url: "https://x.example", method: GET, form: { to: "{phone}", m: "{text}" } } }"#,
        ));
        assert_eq!(k, ["sms.http.method"]);
    }

    #[test]
    fn an_empty_secret_file_is_refused() {
        let k = keys(check(
            r#"sms: { http: { url: "https://x.example", bearer_token_file: empty, form: { to: "{phone}", m: "{text}" } } }"#,
        ));
        assert_eq!(k, ["sms.http.bearer_token_file"]);
    }

    #[test]
    fn unknown_keys_are_refused_by_serde() {
        assert!(serde_norway::from_str::<FileNotify>("sms: { htp: {} }").is_err());
    }

    #[test]
    fn smtp_urls_choose_the_tls_mode_and_port() {
        let cases = [
            ("smtps://mail.example.org", SmtpSecurity::ImplicitTls, 465),
            ("smtp://mail.example.org", SmtpSecurity::StartTls, 587),
            (
                "smtp://mail.example.org:2525?tls=starttls",
                SmtpSecurity::StartTls,
                2525,
            ),
            ("smtp://127.0.0.1:2525?tls=none", SmtpSecurity::None, 2525),
        ];
        for (url, security, port) in cases {
            let yaml = format!("email: {{ smtp: {{ url: \"{url}\", from: \"E-portalen <portal@example.org>\" }} }}");
            let s = check(&yaml).unwrap().email.smtp.unwrap();
            assert_eq!((s.security, s.port), (security, port), "{url}");
            assert_eq!(s.from.email.to_string(), "portal@example.org");
        }
    }

    #[test]
    fn smtp_mistakes_are_reported() {
        for (url, extra, key) in [
            ("http://mail.example.org", "", "email.smtp.url"),
            ("smtp://mail.example.org?tls=maybe", "", "email.smtp.url"),
            ("smtps://u:p@mail.example.org", "", "email.smtp.url"),
            (
                "smtp://mail.example.org?tls=none",
                "username: u, password_file: sms.pass",
                "email.smtp.url",
            ),
            (
                "smtps://mail.example.org",
                "username: u",
                "email.smtp.password_file",
            ),
        ] {
            let yaml = format!(
                "email: {{ smtp: {{ url: \"{url}\", from: \"portal@example.org\", {extra} }} }}"
            );
            assert_eq!(keys(check(&yaml)), [key], "{url} {extra}");
        }
        let yaml =
            "email: { smtp: { url: \"smtps://mail.example.org\", from: \"not an address\" } }";
        assert_eq!(keys(check(yaml)), ["email.smtp.from"]);
    }

    #[test]
    fn plain_smtp_with_credentials_is_fine_on_loopback() {
        let yaml = "email: { smtp: { url: \"smtp://localhost:2525?tls=none\", from: \"portal@example.org\", username: u, password_file: sms.pass } }";
        let s = check(yaml).unwrap().email.smtp.unwrap();
        assert_eq!(s.credentials.unwrap().1.expose(), "s3cret");
    }

    #[test]
    fn the_outbox_must_not_be_a_file() {
        assert_eq!(keys(check("outbox: sms.pass")), ["outbox"]);
        let c = check("outbox: new-dir\nsms: { console: true }").unwrap();
        assert!(c.outbox.unwrap().ends_with("new-dir"));
        assert!(c.sms.console);
    }

    #[test]
    fn placeholder_names_are_found() {
        assert_eq!(placeholder_names("{a} {b_c}{ x } {}"), ["a", "b_c"]);
        assert_eq!(placeholder_names(r#"{"to": "{phone}"}"#), ["phone"]);
    }
}
