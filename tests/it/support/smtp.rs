//! A real SMTP server: `tests/fixtures/smtp_sink.py` (aiosmtpd) as a child
//! process on a free loopback port. Every message it accepts is filed as
//! `NNNN.eml` plus `NNNN.json` (envelope and decoded MIME parts, decoded by
//! Python's own `email` package); [`SmtpSink::mails`] reads them back.
//!
//! The interpreter is the first of `$PORTVAKT_TEST_PYTHON`, `python3` and
//! `/usr/bin/python3` that can import `aiosmtpd` (PyPI `aiosmtpd`, or the
//! Debian package `python3-aiosmtpd` for the system Python).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::Duration;

use serde::Deserialize;

use super::pki::Pki;
use super::wait::{free_addr, maybe_until};

/// One decoded MIME leaf part.
#[derive(Debug, Clone, Deserialize)]
pub struct Part {
    pub content_type: String,
    pub charset: Option<String>,
    pub transfer_encoding: Option<String>,
    pub content: String,
}

/// One message as the server received it.
#[derive(Debug, Clone, Deserialize)]
pub struct Mail {
    /// Envelope sender (`MAIL FROM`).
    pub mail_from: String,
    /// Envelope recipients (`RCPT TO`).
    pub rcpt_tos: Vec<String>,
    /// Whether the session had switched to TLS (STARTTLS) before `DATA`.
    pub tls: bool,
    /// Decoded `Subject:` header.
    pub subject: String,
    pub from: String,
    pub to: String,
    /// Top-level content type, e.g. `multipart/alternative`.
    pub content_type: String,
    pub headers: Vec<(String, String)>,
    pub parts: Vec<Part>,
    /// The raw message as received (filled in from the `.eml` file).
    #[serde(skip)]
    pub raw: String,
}

impl Mail {
    /// The `text/plain` part; panics if there is none.
    pub fn text(&self) -> &str {
        self.part("text/plain")
            .unwrap_or_else(|| panic!("no text/plain part in {self:#?}"))
    }

    /// The `text/html` part, if any.
    pub fn html(&self) -> Option<&str> {
        self.part("text/html")
    }

    fn part(&self, content_type: &str) -> Option<&str> {
        self.parts
            .iter()
            .find(|p| p.content_type == content_type)
            .map(|p| p.content.as_str())
    }

    /// The one-time code in the plain-text part.
    pub fn code(&self) -> String {
        super::enrol::code_in(self.text())
            .unwrap_or_else(|| panic!("no one-time code in the text part:\n{}", self.text()))
    }
}

/// The interpreter that has aiosmtpd, found once per test process.
fn python() -> &'static str {
    static FOUND: OnceLock<Result<String, String>> = OnceLock::new();
    let found = FOUND.get_or_init(|| {
        let mut candidates: Vec<String> = Vec::new();
        if let Ok(p) = std::env::var("PORTVAKT_TEST_PYTHON") {
            candidates.push(p);
        }
        candidates.push("python3".into());
        candidates.push("/usr/bin/python3".into());
        let mut tried = Vec::new();
        for c in candidates {
            let ok = Command::new(&c)
                .args(["-c", "import aiosmtpd"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return Ok(c);
            }
            tried.push(c);
        }
        Err(tried.join(", "))
    });
    match found {
        Ok(p) => p,
        Err(tried) => panic!(
            "\n\n*** The e-mail tests need a real SMTP server: Python's aiosmtpd.\n\
             *** None of these interpreters can import it: {tried}.\n\
             *** Install it with `python3 -m pip install aiosmtpd` or \
             `apt-get install python3-aiosmtpd` (tests/install-deps.sh test),\n\
             *** or point PORTVAKT_TEST_PYTHON at a python3 that has it.\n"
        ),
    }
}

/// A running SMTP sink; killed on drop.
pub struct SmtpSink {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
    starttls: bool,
}

impl SmtpSink {
    /// A plain-text SMTP server (the gateway must say `?tls=none`).
    pub async fn start() -> SmtpSink {
        SmtpSink::spawn(None).await
    }

    /// A server that offers STARTTLS with the test PKI's main certificate
    /// (it names `127.0.0.1`) and refuses mail without it.
    pub async fn start_with_starttls(pki: &Pki) -> SmtpSink {
        SmtpSink::spawn(Some(pki)).await
    }

    async fn spawn(pki: Option<&Pki>) -> SmtpSink {
        let python = python().to_string();
        let script = super::repo_dir().join("tests/fixtures/smtp_sink.py");
        let dir = tempfile::Builder::new()
            .prefix("portvakt-smtp-")
            .tempdir()
            .expect("smtp sink tempdir");
        let mail_dir = dir.path().join("mail");
        if let Some(pki) = pki {
            let leaf = pki.leaf("main");
            std::fs::write(dir.path().join("cert.pem"), &leaf.cert_pem).expect("cert.pem");
            std::fs::write(dir.path().join("key.pem"), &leaf.key_pem).expect("key.pem");
        }
        let mut last = String::new();
        for _attempt in 0..3 {
            let port = free_addr().port();
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.path().join("sink.log"))
                .expect("sink.log");
            let mut cmd = Command::new(&python);
            cmd.arg(&script).arg(port.to_string()).arg(&mail_dir);
            if pki.is_some() {
                cmd.arg("--starttls")
                    .arg(dir.path().join("cert.pem"))
                    .arg(dir.path().join("key.pem"));
            }
            let mut child = cmd
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("spawn {python} {}: {e}", script.display()));
            let stdout = child.stdout.take().expect("sink stdout");
            let ready = wait_for_ready(stdout, Duration::from_secs(15)).await;
            if ready {
                return SmtpSink {
                    child,
                    port,
                    dir,
                    starttls: pki.is_some(),
                };
            }
            let _ = child.kill();
            let _ = child.wait();
            last = std::fs::read_to_string(dir.path().join("sink.log")).unwrap_or_default();
        }
        panic!("the SMTP sink did not become ready in 3 tries (15 s each):\n{last}");
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL for `notify.email.smtp.url`.
    pub fn url(&self) -> String {
        if self.starttls {
            format!("smtp://127.0.0.1:{}", self.port)
        } else {
            format!("smtp://127.0.0.1:{}?tls=none", self.port)
        }
    }

    /// The `email:` block of `notify:` (indented for [`notify_yaml`]).
    /// With STARTTLS the gateway trusts the test CA (`ca.pem` in its dir).
    pub fn email_yaml(&self) -> String {
        let mut y = format!(
            "  email:\n    smtp:\n      url: \"{}\"\n      from: \"Testportalen <portal@example.org>\"\n      timeout: 5s\n",
            self.url()
        );
        if self.starttls {
            y.push_str("      ca_file: ca.pem\n");
        }
        y
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// What the sink printed (errors, tracebacks).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sink.log")).unwrap_or_default()
    }

    /// Every message received so far, oldest first.
    pub fn mails(&self) -> Vec<Mail> {
        let mail_dir = self.dir.path().join("mail");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&mail_dir)
            .map(|d| {
                d.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "json"))
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files
            .iter()
            .map(|p| {
                let text = std::fs::read_to_string(p).expect("read mail json");
                let mut mail: Mail = serde_json::from_str(&text)
                    .unwrap_or_else(|e| panic!("{}: {e}: {text}", p.display()));
                mail.raw = std::fs::read_to_string(p.with_extension("eml")).unwrap_or_default();
                mail
            })
            .collect()
    }

    /// Wait (at most 10 s) until `n` messages have arrived in all; returns them.
    pub async fn wait_for_mails(&self, n: usize) -> Vec<Mail> {
        let found = maybe_until(Duration::from_secs(10), Duration::from_millis(50), || {
            let mails = self.mails();
            async move { (mails.len() >= n).then_some(mails) }
        })
        .await;
        found.unwrap_or_else(|| {
            panic!(
                "gave up after 10 s waiting for mail number {n}; the sink has {} (log:\n{})",
                self.mails().len(),
                self.log()
            )
        })
    }

    /// Wait for message number `n` (1-based) and return it.
    pub async fn mail(&self, n: usize) -> Mail {
        self.wait_for_mails(n).await.swap_remove(n - 1)
    }
}

/// Read lines from the sink's stdout until `ready` (bounded).
async fn wait_for_ready(stdout: std::process::ChildStdout, limit: Duration) -> bool {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            match line {
                Ok(l) if l.trim() == "ready" => {
                    let _ = tx.send(true);
                    return;
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        let _ = tx.send(false);
    });
    tokio::task::spawn_blocking(move || rx.recv_timeout(limit).unwrap_or(false))
        .await
        .unwrap_or(false)
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "===== SMTP sink on port {} =====\n{}",
                self.port,
                self.log()
            );
        }
        // SIGTERM first (the sink stops its server cleanly), then make sure.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        for _ in 0..20 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `notify:` section from blocks such as [`SmtpSink::email_yaml`] and
/// [`super::sms::SmsProvider::sms_yaml`].
pub fn notify_yaml(blocks: &[String]) -> String {
    let mut y = String::from("notify:\n");
    for b in blocks {
        y.push_str(b);
    }
    y
}
