//! E-mail over SMTP with `lettre`: implicit TLS (`smtps://`), STARTTLS that
//! must succeed, or plain text only when configured explicitly; optional
//! SMTP AUTH; multipart/alternative plain text + HTML.

use std::sync::OnceLock;
use std::time::Duration;

use async_trait::async_trait;
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::PoolConfig;
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::config::{SmtpConfig, SmtpSecurity};
use super::{snippet, Delivery, EmailMessage, EmailSender, NotifyError};

/// Characters of a server reply kept for the audit log.
const SNIPPET_CHARS: usize = 160;

/// Idle pooled connections are closed after this (codes are rare).
const POOL_IDLE: Duration = Duration::from_secs(60);

/// Build the MIME message: `text` alone, or `text` + `html` as alternatives.
pub fn build_message(from: &Mailbox, m: &EmailMessage) -> Result<Message, NotifyError> {
    let address: Address =
        m.to.trim()
            .parse()
            .map_err(|e| NotifyError::Transport(format!("bad recipient address: {e}")))?;
    let builder = Message::builder()
        .from(from.clone())
        .to(Mailbox::new(m.to_name.clone(), address))
        .subject(m.subject.as_str())
        .date_now()
        .user_agent(concat!("portvakt/", env!("CARGO_PKG_VERSION")).to_owned());
    let built = match &m.html {
        Some(html) => builder.multipart(MultiPart::alternative_plain_html(
            m.text.clone(),
            html.clone(),
        )),
        None => builder.singlepart(SinglePart::plain(m.text.clone())),
    };
    built.map_err(|e| NotifyError::Transport(format!("cannot build the message: {e}")))
}

/// Sends e-mail through one SMTP server.
pub struct SmtpMailer {
    config: SmtpConfig,
    /// TLS settings, checked when the mailer is made.
    tls: Option<TlsParameters>,
    /// Made on first send: lettre's pool spawns a cleanup task, which needs a
    /// running tokio runtime, and the mailer may be built before one exists.
    transport: OnceLock<AsyncSmtpTransport<Tokio1Executor>>,
}

impl std::fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpMailer")
            .field("host", &self.config.host)
            .field("port", &self.config.port)
            .field("security", &self.config.security)
            .finish_non_exhaustive()
    }
}

impl SmtpMailer {
    /// A mailer for `config`. Needs no async runtime and connects nowhere yet.
    pub fn new(config: &SmtpConfig) -> Result<SmtpMailer, NotifyError> {
        let tls = match config.security {
            SmtpSecurity::None => None,
            SmtpSecurity::ImplicitTls | SmtpSecurity::StartTls => {
                let mut params = TlsParameters::builder(config.host.clone());
                if let Some(pem) = &config.ca_pem {
                    let cert = Certificate::from_pem(pem)
                        .map_err(|e| NotifyError::Transport(format!("smtp ca_file: {e}")))?;
                    params = params.add_root_certificate(cert);
                }
                Some(
                    params
                        .build_rustls()
                        .map_err(|e| NotifyError::Transport(format!("smtp tls: {e}")))?,
                )
            }
        };
        Ok(SmtpMailer {
            config: config.clone(),
            tls,
            transport: OnceLock::new(),
        })
    }

    /// The time one send may take.
    pub fn timeout(&self) -> Duration {
        self.config.timeout
    }

    fn transport(&self) -> &AsyncSmtpTransport<Tokio1Executor> {
        self.transport.get_or_init(|| {
            let c = &self.config;
            let tls = match (c.security, self.tls.clone()) {
                (SmtpSecurity::ImplicitTls, Some(p)) => Tls::Wrapper(p),
                (SmtpSecurity::StartTls, Some(p)) => Tls::Required(p),
                _ => Tls::None,
            };
            let mut builder =
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(c.host.as_str())
                    .port(c.port)
                    .tls(tls)
                    .timeout(Some(c.timeout))
                    .pool_config(PoolConfig::new().min_idle(0).idle_timeout(POOL_IDLE));
            if let Some((user, password)) = &c.credentials {
                builder = builder
                    .credentials(Credentials::new(user.clone(), password.expose().to_owned()));
            }
            builder.build()
        })
    }
}

#[async_trait]
impl EmailSender for SmtpMailer {
    async fn send(&self, message: &EmailMessage) -> Result<Delivery, NotifyError> {
        let email = build_message(&self.config.from, message)?;
        let to = message.to.as_str();
        let sending = self.transport().send(email);
        match tokio::time::timeout(self.config.timeout, sending).await {
            Err(_) => Err(NotifyError::Timeout),
            Ok(Err(e)) if e.is_timeout() => Err(NotifyError::Timeout),
            Ok(Err(e)) => match e.status() {
                Some(code) => Err(NotifyError::Rejected {
                    status: u16::from(code),
                    body_snippet: snippet(&e.to_string(), &[to], SNIPPET_CHARS),
                }),
                None => Err(NotifyError::Transport(snippet(
                    &e.to_string(),
                    &[to],
                    SNIPPET_CHARS,
                ))),
            },
            Ok(Ok(response)) => {
                let line = response.first_line().unwrap_or("");
                Ok(Delivery {
                    provider: snippet(&format!("smtp {} {line}", response.code()), &[to], 80),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::net::TcpListener;
    use tokio::sync::oneshot;

    fn from() -> Mailbox {
        "E-portalen <portal@example.org>".parse().unwrap()
    }

    fn message() -> EmailMessage {
        EmailMessage {
            to: "alice@example.org".into(),
            to_name: Some("Alice Andersson".into()),
            subject: "Din engångskod för E-portalen".into(),
            text: "Din engångskod är K7PM3Q".into(),
            html: Some("<p>Din engångskod är <strong>K7PM3Q</strong></p>".into()),
        }
    }

    fn config(port: u16) -> SmtpConfig {
        SmtpConfig {
            host: "127.0.0.1".into(),
            port,
            security: SmtpSecurity::None,
            from: from(),
            credentials: None,
            timeout: Duration::from_millis(300),
            ca_pem: None,
        }
    }

    #[test]
    fn messages_are_multipart_alternative_with_both_bodies() {
        let m = build_message(&from(), &message()).unwrap();
        let text = String::from_utf8(m.formatted()).unwrap();
        assert!(
            text.contains("From: E-portalen <portal@example.org>"),
            "{text}"
        );
        assert!(
            text.contains("To: \"Alice Andersson\" <alice@example.org>"),
            "{text}"
        );
        assert!(text.contains("Subject: Din =?utf-8?"), "{text}");
        assert!(text.contains("multipart/alternative"), "{text}");
        assert!(text.contains("text/plain; charset=utf-8"), "{text}");
        assert!(text.contains("text/html; charset=utf-8"), "{text}");
        assert!(text.contains("K7PM3Q"));
    }

    #[test]
    fn plain_only_messages_are_single_part() {
        let mut msg = message();
        msg.html = None;
        let m = build_message(&from(), &msg).unwrap();
        let text = String::from_utf8(m.formatted()).unwrap();
        assert!(!text.contains("multipart"), "{text}");
    }

    #[test]
    fn a_bad_recipient_is_refused_before_sending() {
        let mut msg = message();
        msg.to = "not an address".into();
        assert!(matches!(
            build_message(&from(), &msg),
            Err(NotifyError::Transport(_))
        ));
    }

    /// A one-message SMTP server; answers RCPT with `rcpt_reply`. Sends the
    /// DATA it received, or `None` on a dead silent server.
    async fn server(rcpt_reply: &'static str, silent: bool) -> (u16, oneshot::Receiver<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = oneshot::channel();
        tokio::spawn(async move {
            let (sock, _) = listener.accept().await.unwrap();
            if silent {
                tokio::time::sleep(Duration::from_secs(60)).await;
                drop(sock);
                return;
            }
            let (read, mut write) = sock.into_split();
            let mut lines = BufReader::new(read).lines();
            write.write_all(b"220 test ESMTP\r\n").await.unwrap();
            let mut tx = Some(tx);
            while let Ok(Some(line)) = lines.next_line().await {
                let verb = line
                    .split([' ', ':'])
                    .next()
                    .unwrap_or("")
                    .to_ascii_uppercase();
                let reply = match verb.as_str() {
                    "EHLO" => "250-test\r\n250 8BITMIME",
                    "RCPT" => rcpt_reply,
                    "DATA" => {
                        write.write_all(b"354 go ahead\r\n").await.unwrap();
                        let mut data = String::new();
                        while let Ok(Some(l)) = lines.next_line().await {
                            if l == "." {
                                break;
                            }
                            data.push_str(&l);
                            data.push('\n');
                        }
                        if let Some(tx) = tx.take() {
                            let _ = tx.send(data);
                        }
                        "250 2.0.0 Ok: queued as ABC123"
                    }
                    "QUIT" => {
                        let _ = write.write_all(b"221 bye\r\n").await;
                        return;
                    }
                    _ => "250 ok",
                };
                write
                    .write_all(format!("{reply}\r\n").as_bytes())
                    .await
                    .unwrap();
            }
        });
        (port, rx)
    }

    #[tokio::test]
    async fn a_message_reaches_the_server() {
        let (port, data) = server("250 ok", false).await;
        let mailer = SmtpMailer::new(&config(port)).unwrap();
        let delivery = mailer.send(&message()).await.unwrap();
        assert_eq!(delivery.provider, "smtp 250 2.0.0 Ok: queued as ABC123");
        let data = data.await.unwrap();
        assert!(data.contains("Subject: "), "{data}");
        assert!(data.contains("multipart/alternative"), "{data}");
    }

    #[tokio::test]
    async fn a_refused_recipient_is_rejected_without_the_address() {
        let (port, _data) = server("550 5.1.1 <alice@example.org> unknown user", false).await;
        let mailer = SmtpMailer::new(&config(port)).unwrap();
        let err = mailer.send(&message()).await.unwrap_err();
        let NotifyError::Rejected {
            status,
            body_snippet,
        } = err
        else {
            panic!("rejected expected, got {err:?}")
        };
        assert_eq!(status, 550);
        assert!(
            !body_snippet.contains("alice@example.org"),
            "{body_snippet}"
        );
        assert!(body_snippet.contains("unknown user"), "{body_snippet}");
    }

    #[tokio::test]
    async fn a_silent_server_times_out_on_time() {
        let (port, _data) = server("", true).await;
        let mailer = SmtpMailer::new(&config(port)).unwrap();
        let start = Instant::now();
        let err = mailer.send(&message()).await.unwrap_err();
        assert_eq!(err, NotifyError::Timeout);
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn tls_modes_build_without_a_runtime() {
        let mut c = config(465);
        c.host = "mail.example.org".into();
        for security in [SmtpSecurity::ImplicitTls, SmtpSecurity::StartTls] {
            c.security = security;
            assert!(SmtpMailer::new(&c).unwrap().tls.is_some());
        }
    }
}
