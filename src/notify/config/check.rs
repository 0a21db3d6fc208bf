//! Validation of the `notify:` section: [`validate`] turns the file shape
//! into the model, reading secret and CA files relative to the config file,
//! and reports every problem with its key path under `notify`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lettre::message::Mailbox;
use url::Url;

use super::file::{FileHttpSms, FileNotify, FileSms, FileSmtp, Scalar};
use super::model::{
    BodyTemplate, EmailConfig, HttpAuth, HttpMethod, HttpSmsConfig, NotifyConfig, Secret,
    SmsConfig, SmtpConfig, SmtpSecurity,
};
use super::price::{Amount, Currency, Price};
use super::{DEFAULT_TIMEOUT, MAX_TIMEOUT, PLACEHOLDERS};
use crate::config::types::Duration as FileDuration;

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
            self.problem(key, format!("must be {}", timeout_limits()));
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

/// What a send's timeout may be, for the checker and the reference.
pub(super) fn timeout_limits() -> String {
    format!("more than 0s and at most {}", FileDuration(MAX_TIMEOUT))
}

/// The `name`s of `{name}` tokens in `text` (identifier characters only, so
/// JSON-looking text and lone braces are left alone).
pub(super) fn placeholder_names(text: &str) -> Vec<&str> {
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
    let cost = sms_cost(&mut c, &file.sms);
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
                cost,
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

/// `sms.cost_per_message` and `sms.currency`: both or neither. A number
/// (`0.45`) or a string (`"0.45"`); YAML's float is read back through its
/// shortest decimal form, which is what was written.
fn sms_cost(c: &mut Checker<'_>, f: &FileSms) -> Option<Price> {
    const AMOUNT: &str = "sms.cost_per_message";
    const CURRENCY: &str = "sms.currency";
    let amount = match &f.cost_per_message {
        None => None,
        Some(Scalar::Bool(b)) => {
            c.problem(AMOUNT, format!("{b} is not an amount: write it like 0.45"));
            None
        }
        Some(v) => match Amount::parse(&v.to_string()) {
            Ok(a) => Some(a),
            Err(e) => {
                c.problem(AMOUNT, e.to_string());
                None
            }
        },
    };
    let currency = f.currency.as_deref().and_then(|t| {
        let parsed = Currency::parse(t);
        if parsed.is_none() {
            c.problem(
                CURRENCY,
                format!("{t:?} is not an ISO 4217 currency code like SEK or EUR"),
            );
        }
        parsed
    });
    match (&f.cost_per_message, &f.currency) {
        (Some(_), None) => c.problem(
            CURRENCY,
            "cost_per_message needs the currency it is in, e.g. currency: SEK",
        ),
        (None, Some(_)) => c.problem(
            AMOUNT,
            "currency without cost_per_message: write the price of one message, e.g. 0.45",
        ),
        _ => {}
    }
    Some(Price {
        per_message: amount?,
        currency: currency?,
    })
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

    let method = match f.method.as_deref() {
        None => HttpMethod::DEFAULT,
        Some(name) => HttpMethod::ALL
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(name))
            .unwrap_or_else(|| {
                let names: Vec<&str> = HttpMethod::ALL.map(HttpMethod::as_str).to_vec();
                c.problem(
                    "sms.http.method",
                    format!("{name:?}: use {}", names.join(", ")),
                );
                HttpMethod::DEFAULT
            }),
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
