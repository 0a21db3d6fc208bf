//! Delivering one-time codes and notices: SMS through any HTTP gateway,
//! e-mail over SMTP, and a console/file outbox for the demo and tests.
//!
//! - [`config`]: the `notify:` section, file shape and validated model.
//! - [`sms_http`]: [`SmsSender`] over HTTP (`reqwest`), request built from templates.
//! - [`smtp`]: [`EmailSender`] over SMTP (`lettre`), implicit TLS or STARTTLS.
//! - [`outbox`]: both senders, printing to stdout and/or writing files.
//!
//! Every send is bounded by a timeout, so a slow provider costs the user a
//! clear error message, never a hanging login page. Destinations appear in
//! logs only masked ([`mask_phone`], [`mask_email`]); codes never.

pub mod config;
pub mod outbox;
pub mod sms_http;
pub mod smtp;

use std::sync::Arc;

use async_trait::async_trait;

use self::config::NotifyConfig;
use self::outbox::Outbox;
use self::sms_http::HttpSms;
use self::smtp::SmtpMailer;

/// A text message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsMessage {
    /// Number in E.164 form, e.g. `+46701234567`.
    pub to: String,
    /// The message text.
    pub text: String,
    /// The one-time code inside `text`, if any: removed from anything that
    /// may be logged (a provider that echoes the message in an error).
    pub code: Option<String>,
}

/// An e-mail to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailMessage {
    /// Recipient address.
    pub to: String,
    /// Recipient's display name, if known.
    pub to_name: Option<String>,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub text: String,
    /// HTML body; with it the message is multipart/alternative.
    pub html: Option<String>,
}

/// What the provider said when it took a message, for the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Short and free of secrets, e.g. `http 202` or `smtp 250 2.0.0 Ok`.
    pub provider: String,
}

/// Why a message was not delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotifyError {
    /// The provider did not answer in time.
    #[error("the provider did not answer in time")]
    Timeout,
    /// The provider answered with a refusal.
    #[error("the provider refused the message: {status} {body_snippet}")]
    Rejected {
        /// HTTP status or SMTP reply code.
        status: u16,
        /// Start of the answer, single line, secrets removed.
        body_snippet: String,
    },
    /// Connecting or talking to the provider failed.
    #[error("cannot reach the provider: {0}")]
    Transport(String),
    /// No sender is configured for this channel.
    #[error("no sender is configured for this channel")]
    NotConfigured,
}

impl NotifyError {
    /// Reason for the audit log.
    pub fn reason(&self) -> &'static str {
        match self {
            NotifyError::Timeout => "timeout",
            NotifyError::Rejected { .. } => "rejected",
            NotifyError::Transport(_) => "transport",
            NotifyError::NotConfigured => "not_configured",
        }
    }
}

/// Sends text messages.
#[async_trait]
pub trait SmsSender: Send + Sync + std::fmt::Debug {
    /// Send `message`; returns within the sender's timeout.
    async fn send(&self, message: &SmsMessage) -> Result<Delivery, NotifyError>;
}

/// Sends e-mail.
#[async_trait]
pub trait EmailSender: Send + Sync + std::fmt::Debug {
    /// Send `message`; returns within the sender's timeout.
    async fn send(&self, message: &EmailMessage) -> Result<Delivery, NotifyError>;
}

/// The configured senders: one real sender per channel (if any) plus an
/// optional outbox copy (console and/or files) for the demo and tests.
#[derive(Debug, Clone, Default)]
pub struct Notifier {
    sms: Option<Arc<dyn SmsSender>>,
    email: Option<Arc<dyn EmailSender>>,
    sms_copy: Option<Arc<Outbox>>,
    email_copy: Option<Arc<Outbox>>,
}

impl Notifier {
    /// Build the senders for `config`. Needs no async runtime; connections
    /// are made on first use.
    pub fn new(config: &NotifyConfig) -> Result<Notifier, NotifyError> {
        let sms = match &config.sms.http {
            Some(h) => Some(Arc::new(HttpSms::new(h)?) as Arc<dyn SmsSender>),
            None => None,
        };
        let email = match &config.email.smtp {
            Some(s) => Some(Arc::new(SmtpMailer::new(s)?) as Arc<dyn EmailSender>),
            None => None,
        };
        let copy = |console: bool| {
            (console || config.outbox.is_some())
                .then(|| Arc::new(Outbox::new(console, config.outbox.clone())))
        };
        Ok(Notifier {
            sms,
            email,
            sms_copy: copy(config.sms.console),
            email_copy: copy(config.email.console),
        })
    }

    /// A notifier from parts (tests, embedding).
    pub fn from_parts(
        sms: Option<Arc<dyn SmsSender>>,
        email: Option<Arc<dyn EmailSender>>,
    ) -> Notifier {
        Notifier {
            sms,
            email,
            sms_copy: None,
            email_copy: None,
        }
    }

    /// Whether SMS can be sent (a gateway or the outbox).
    pub fn sms_available(&self) -> bool {
        self.sms.is_some() || self.sms_copy.is_some()
    }

    /// Whether e-mail can be sent (an SMTP server or the outbox).
    pub fn email_available(&self) -> bool {
        self.email.is_some() || self.email_copy.is_some()
    }

    /// Send a text message. With a gateway its answer decides; the outbox
    /// copy is written either way and its failure is only logged.
    pub async fn send_sms(&self, message: &SmsMessage) -> Result<Delivery, NotifyError> {
        let copy = match &self.sms_copy {
            Some(o) => Some(SmsSender::send(o.as_ref(), message).await),
            None => None,
        };
        match (&self.sms, copy) {
            (Some(sender), copy) => {
                if let Some(Err(e)) = copy {
                    tracing::warn!(cause = %e, "cannot write the SMS outbox copy");
                }
                sender.send(message).await
            }
            (None, Some(copy)) => copy,
            (None, None) => Err(NotifyError::NotConfigured),
        }
    }

    /// Send an e-mail; like [`Notifier::send_sms`].
    pub async fn send_email(&self, message: &EmailMessage) -> Result<Delivery, NotifyError> {
        let copy = match &self.email_copy {
            Some(o) => Some(EmailSender::send(o.as_ref(), message).await),
            None => None,
        };
        match (&self.email, copy) {
            (Some(sender), copy) => {
                if let Some(Err(e)) = copy {
                    tracing::warn!(cause = %e, "cannot write the e-mail outbox copy");
                }
                sender.send(message).await
            }
            (None, Some(copy)) => copy,
            (None, None) => Err(NotifyError::NotConfigured),
        }
    }
}

/// Split a rendered `.txt` e-mail template into its `Subject: …` first line
/// and the body. Without such a line the subject is `None`.
pub fn split_subject(rendered: &str) -> (Option<&str>, &str) {
    let rendered = rendered.trim_start_matches(['\r', '\n']);
    let (first, rest) = rendered.split_once('\n').unwrap_or((rendered, ""));
    match first.trim_end().strip_prefix("Subject:") {
        Some(subject) => (Some(subject.trim()), rest.trim_start_matches(['\r', '\n'])),
        None => (None, rendered),
    }
}

/// A phone number for logs: national form when it is in `default_country`
/// (`+46`), first 3 and last 2 digits shown: `+46701234567` → `070*****67`.
/// Other countries keep `+` and the country digits: `+4791234567` → `+479*****67`.
pub fn mask_phone(e164: &str, default_country: &str) -> String {
    let digits: String = e164.chars().filter(char::is_ascii_digit).collect();
    let country = default_country.trim().trim_start_matches('+');
    let (prefix, shown) = match digits.strip_prefix(country) {
        Some(national) if !country.is_empty() && e164.trim().starts_with('+') => {
            ("", format!("0{national}"))
        }
        _ if e164.trim().starts_with('+') => ("+", digits),
        _ => ("", digits),
    };
    let n = shown.len();
    if n < 6 {
        return format!("{prefix}{}", "*".repeat(n.max(1)));
    }
    format!(
        "{prefix}{}{}{}",
        &shown[..3],
        "*".repeat(n - 5),
        &shown[n - 2..]
    )
}

/// An e-mail address for logs: `alice@example.org` → `a***e@example.org`.
/// The domain stays (it tells which mail system); the local part keeps only
/// its first and last character, with a fixed number of stars.
pub fn mask_email(address: &str) -> String {
    let Some((local, domain)) = address.trim().rsplit_once('@') else {
        return "***".to_owned();
    };
    let chars: Vec<char> = local.chars().collect();
    let local = match chars.as_slice() {
        [] => String::new(),
        [_] | [_, _] => format!("{}***", chars[0]),
        [first, .., last] => format!("{first}***{last}"),
    };
    format!("{local}@{domain}")
}

/// A provider answer fit for a log line: one line, printable, at most
/// `max` characters, with `secrets` (the message, number, code) cut out.
pub(crate) fn snippet(raw: &str, secrets: &[&str], max: usize) -> String {
    let mut text = raw.to_owned();
    for s in secrets.iter().filter(|s| s.len() >= 3) {
        text = text.replace(s, "[redacted]");
    }
    let mut out = String::new();
    let mut space = false;
    for c in text.chars() {
        if c.is_whitespace() || c.is_control() {
            space = !out.is_empty();
            continue;
        }
        if out.chars().count() >= max {
            out.push('…');
            return out;
        }
        if space {
            out.push(' ');
            space = false;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use minijinja::{context, Environment};

    /// An SMS sender that remembers what it was asked to send.
    #[derive(Debug, Default)]
    struct Recorder(parking_lot::Mutex<Vec<SmsMessage>>);

    #[async_trait]
    impl SmsSender for Recorder {
        async fn send(&self, message: &SmsMessage) -> Result<Delivery, NotifyError> {
            self.0.lock().push(message.clone());
            Ok(Delivery {
                provider: "recorder".into(),
            })
        }
    }

    fn sms() -> SmsMessage {
        SmsMessage {
            to: "+46701234567".into(),
            text: "K7PM3Q".into(),
            code: Some("K7PM3Q".into()),
        }
    }

    #[tokio::test]
    async fn nothing_configured_is_an_error() {
        let n = Notifier::new(&NotifyConfig::default()).unwrap();
        assert!(!n.sms_available() && !n.email_available());
        assert_eq!(n.send_sms(&sms()).await, Err(NotifyError::NotConfigured));
    }

    #[tokio::test]
    async fn the_gateway_answers_and_the_outbox_keeps_a_copy() {
        let tmp = tempfile::tempdir().unwrap();
        let config = NotifyConfig {
            outbox: Some(tmp.path().to_path_buf()),
            ..NotifyConfig::default()
        };
        let mut n = Notifier::new(&config).unwrap();
        assert!(n.sms_available() && n.email_available());
        // The outbox alone delivers.
        let d = n.send_sms(&sms()).await.unwrap();
        assert!(d.provider.starts_with("outbox "), "{}", d.provider);
        // With a gateway, the gateway's answer counts; the copy is still made.
        let gateway = Arc::new(Recorder::default());
        n.sms = Some(gateway.clone());
        assert_eq!(n.send_sms(&sms()).await.unwrap().provider, "recorder");
        assert_eq!(gateway.0.lock().len(), 1);
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 2);
    }

    #[test]
    fn senders_are_built_without_a_runtime() {
        let yaml = r#"
sms: { http: { url: "https://sms.example.org/send", form: { to: "{phone}", m: "{text}" } } }
email: { smtp: { url: "smtps://mail.example.org", from: "portal@example.org" } }
"#;
        let file: config::FileNotify = serde_norway::from_str(yaml).unwrap();
        let config = config::validate(&file, std::path::Path::new(".")).unwrap();
        let n = Notifier::new(&config).unwrap();
        assert!(n.sms_available() && n.email_available());
    }

    #[test]
    fn phones_are_masked_in_national_form() {
        assert_eq!(mask_phone("+46701234567", "+46"), "070*****67");
        assert_eq!(mask_phone("+46701234567", "46"), "070*****67");
        assert_eq!(mask_phone("+4791234567", "+46"), "+479*****67");
        assert_eq!(mask_phone("0701234567", "+46"), "070*****67");
        assert_eq!(mask_phone("+4612", "+46"), "***");
    }

    #[test]
    fn emails_are_masked_keeping_the_domain() {
        assert_eq!(mask_email("alice@example.org"), "a***e@example.org");
        assert_eq!(mask_email("al@example.org"), "a***@example.org");
        assert_eq!(mask_email("åsa.öberg@example.se"), "å***g@example.se");
        assert_eq!(mask_email("nonsense"), "***");
    }

    #[test]
    fn snippets_are_one_short_line_without_secrets() {
        let s = snippet(
            "error:\n  bad\tnumber +46701234567 code K7PM3Q",
            &["+46701234567", "K7PM3Q"],
            200,
        );
        assert_eq!(s, "error: bad number [redacted] code [redacted]");
        assert_eq!(snippet("abcdef", &[], 3), "abc…");
    }

    #[test]
    fn subjects_are_split_off() {
        assert_eq!(
            split_subject("Subject: Din kod\n\nHej!\nKod"),
            (Some("Din kod"), "Hej!\nKod")
        );
        assert_eq!(split_subject("Hej!"), (None, "Hej!"));
    }

    /// The shipped templates parse and carry the code, validity and host.
    #[test]
    fn code_templates_render() {
        let mut env = Environment::new();
        let files = [
            (
                "email/code.sv.txt",
                include_str!("../../html/email/code.sv.txt"),
            ),
            (
                "email/code.en.txt",
                include_str!("../../html/email/code.en.txt"),
            ),
            (
                "email/code.sv.html",
                include_str!("../../html/email/code.sv.html"),
            ),
            (
                "email/code.en.html",
                include_str!("../../html/email/code.en.html"),
            ),
            (
                "sms/code.sv.txt",
                include_str!("../../html/sms/code.sv.txt"),
            ),
            (
                "sms/code.en.txt",
                include_str!("../../html/sms/code.en.txt"),
            ),
        ];
        for (name, text) in files {
            env.add_template(name, text).unwrap();
        }
        let ctx = context! {
            code => "K7PM3Q", minutes => 5, portal_host => "login.example.org",
            brand_title => "E-portalen", display_name => "Åsa <Öberg>",
        };
        for (name, _) in files {
            let out = env.get_template(name).unwrap().render(&ctx).unwrap();
            assert!(out.contains("K7PM3Q"), "{name}");
            assert!(out.contains('5'), "{name}");
            assert!(out.contains("login.example.org"), "{name}");
            if name.starts_with("email/") && name.ends_with(".txt") {
                let (subject, body) = split_subject(&out);
                let subject = subject.unwrap_or_else(|| panic!("{name}: no subject"));
                assert!(!subject.contains("K7PM3Q"), "{name}: code in subject");
                assert!(body.contains("K7PM3Q"));
            }
            if name.ends_with(".html") {
                assert!(out.contains("&lt;Öberg&gt;"), "{name}: not escaped");
                assert!(!out.contains("<img") && !out.contains("<script"), "{name}");
            }
            if name.starts_with("sms/") {
                assert!(
                    out.chars().count() <= 160,
                    "{name}: {} chars",
                    out.chars().count()
                );
            }
        }
    }
}
