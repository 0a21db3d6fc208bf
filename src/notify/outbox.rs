//! The demo outbox: every message printed to stdout and/or written as a file
//! (`<timestamp>-<channel>-<to>.txt`), so `portvakt demo` and the tests can
//! read codes without a phone or a mail server. It holds live codes in clear
//! text: never enable it in production.

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::AsyncWriteExt;

use super::{Delivery, EmailMessage, EmailSender, NotifyError, SmsMessage, SmsSender};

/// A file write must not hold up a login longer than this (a hung disk).
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Prints and/or files every message.
#[derive(Debug, Clone)]
pub struct Outbox {
    /// Print each message to stdout.
    console: bool,
    /// Write each message into this directory (created on first use).
    dir: Option<PathBuf>,
}

impl Outbox {
    /// An outbox printing when `console` and filing into `dir` when given.
    pub fn new(console: bool, dir: Option<PathBuf>) -> Outbox {
        Outbox { console, dir }
    }

    /// The directory messages are written to, if any.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    async fn deliver(
        &self,
        channel: &str,
        to: &str,
        content: String,
    ) -> Result<Delivery, NotifyError> {
        let mut provider = Vec::new();
        if self.console {
            provider.push("console".to_owned());
        }
        if let Some(dir) = &self.dir {
            let written =
                tokio::time::timeout(WRITE_TIMEOUT, write_file(dir, channel, to, &content))
                    .await
                    .map_err(|_| NotifyError::Timeout)?
                    .map_err(|e| {
                        NotifyError::Transport(format!("outbox {}: {e}", dir.display()))
                    })?;
            let name = written
                .file_name()
                .map(|n| n.to_string_lossy().into_owned());
            provider.push(format!("outbox {}", name.unwrap_or_default()));
        }
        Ok(Delivery {
            provider: provider.join(", "),
        })
    }
}

/// A file name part from an address: letters, digits and `+@._-` kept.
fn file_safe(to: &str) -> String {
    to.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "+@._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Write `content` to a new file in `dir`; a name already taken (two
/// messages within the same microsecond) gets a counter.
async fn write_file(
    dir: &Path,
    channel: &str,
    to: &str,
    content: &str,
) -> std::io::Result<PathBuf> {
    tokio::fs::create_dir_all(dir).await?;
    // The system clock, not the gateway's: the stamp only orders files for
    // a reader and decides nothing, and a test's clock standing still would
    // give every message the same name and a counter that sorts first.
    let stamp = jiff::Timestamp::now()
        .strftime("%Y%m%dT%H%M%S.%6fZ")
        .to_string();
    let base = format!("{stamp}-{channel}-{}", file_safe(to));
    for n in 0u32.. {
        let name = match n {
            0 => format!("{base}.txt"),
            n => format!("{base}-{n}.txt"),
        };
        let path = dir.join(name);
        match tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .await
        {
            Ok(mut file) => {
                file.write_all(content.as_bytes()).await?;
                file.flush().await?;
                return Ok(path);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 100 => continue,
            Err(e) => return Err(e),
        }
    }
    unreachable!("the loop returns")
}

#[async_trait]
impl SmsSender for Outbox {
    async fn send(&self, m: &SmsMessage) -> Result<Delivery, NotifyError> {
        if self.console {
            println!(
                "[portvakt demo] SMS to {}: {}",
                m.to,
                m.text.replace('\n', " / ")
            );
        }
        self.deliver("sms", &m.to, format!("To: {}\n\n{}\n", m.to, m.text))
            .await
    }
}

#[async_trait]
impl EmailSender for Outbox {
    async fn send(&self, m: &EmailMessage) -> Result<Delivery, NotifyError> {
        if self.console {
            println!("[portvakt demo] E-mail to {}: {}", m.to, m.subject);
            for line in m.text.lines() {
                println!("[portvakt demo]   {line}");
            }
        }
        let mut content = format!("To: {}\nSubject: {}\n\n{}\n", m.to, m.subject, m.text);
        if let Some(html) = &m.html {
            content.push_str("\n--- HTML ---\n");
            content.push_str(html);
            content.push('\n');
        }
        self.deliver("email", &m.to, content).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(dir: &Path) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let path = e.unwrap().path();
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                (name, std::fs::read_to_string(&path).unwrap())
            })
            .collect();
        out.sort();
        out
    }

    #[tokio::test]
    async fn sms_and_email_are_written_as_files() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("outbox");
        let outbox = Outbox::new(false, Some(dir.clone()));
        let sms = SmsMessage {
            to: "+46701234567".into(),
            text: "Din engångskod är K7PM3Q".into(),
            code: Some("K7PM3Q".into()),
        };
        for _ in 0..2 {
            let d = SmsSender::send(&outbox, &sms).await.unwrap();
            assert!(d.provider.starts_with("outbox "), "{}", d.provider);
        }
        let mail = EmailMessage {
            to: "alice@example.org".into(),
            to_name: None,
            subject: "Din engångskod".into(),
            text: "Koden är K7PM3Q".into(),
            html: None,
        };
        EmailSender::send(&outbox, &mail).await.unwrap();

        let files = files(&dir);
        assert_eq!(files.len(), 3, "{files:?}");
        let sms_files: Vec<_> = files
            .iter()
            .filter(|(n, _)| n.contains("-sms-+46701234567"))
            .collect();
        assert_eq!(sms_files.len(), 2, "{files:?}");
        assert!(sms_files[0].1.contains("K7PM3Q"));
        let (name, text) = files.iter().find(|(n, _)| n.contains("-email-")).unwrap();
        assert!(name.ends_with("-email-alice@example.org.txt"), "{name}");
        assert!(
            text.starts_with("To: alice@example.org\nSubject: Din engångskod\n\nKoden är K7PM3Q")
        );
    }

    #[tokio::test]
    async fn console_only_writes_nothing() {
        let outbox = Outbox::new(true, None);
        let sms = SmsMessage {
            to: "+46701234567".into(),
            text: "kod".into(),
            code: None,
        };
        let d = SmsSender::send(&outbox, &sms).await.unwrap();
        assert_eq!(d.provider, "console");
    }

    #[test]
    fn file_names_are_safe() {
        assert_eq!(file_safe("../a b/c@x.se"), ".._a_b_c@x.se");
    }
}
