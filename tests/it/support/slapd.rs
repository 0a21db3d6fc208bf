//! A real OpenLDAP server for the LDAP directory tests: `slapd` in the
//! foreground on two free loopback ports (`ldap://` with StartTLS, and
//! `ldaps://` with the test CA's `main` certificate), configured from
//! `tests/fixtures/ldap/slapd.conf` with its data in a temporary folder and
//! loaded from `tests/fixtures/ldap/data.ldif` with `ldapadd`. Killed on drop.
//!
//! Also two stand-ins for a directory that misbehaves: [`BlackHole`] (accepts
//! TCP, never answers) and [`SlowProxy`] (forwards to slapd with a delay on
//! every request, so round trips can be counted by timing them).
//!
//! Needs the Debian packages `slapd` and `ldap-utils`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use portvakt::config::types::Duration as ConfigDuration;
use portvakt::directory::ldap::LdapConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::pki::Pki;
use super::repo_dir;
use super::wait::{free_addr, tcp_ready, Readiness};

/// Suffix of the test directory.
pub const BASE_DN: &str = "dc=example,dc=org";
/// The directory's administrator (bypasses the ACLs; used only to load data).
pub const ROOT_DN: &str = "cn=admin,dc=example,dc=org";
/// Password of [`ROOT_DN`].
pub const ROOT_PASSWORD: &str = "root secret";
/// The gateway's service account; the ACL lets it read every entry.
pub const SERVICE_DN: &str = "cn=portvakt,ou=system,dc=example,dc=org";
/// Password of [`SERVICE_DN`], as in `data.ldif`.
pub const SERVICE_PASSWORD: &str = "service account secret";
/// The user filter for `inetOrgPerson` entries (no `sAMAccountName` here).
pub const USER_FILTER: &str = "(&(objectClass=inetOrgPerson)(uid={username}))";
/// A user whose login name holds filter metacharacters.
pub const ODD_USER: &str = "o(dd)*user";
/// Password of [`ODD_USER`].
pub const ODD_PASSWORD: &str = "odd users password";
/// A login name two entries share.
pub const TWIN: &str = "twin";
/// Password of both [`TWIN`] entries.
pub const TWIN_PASSWORD: &str = "twin password";

/// How long slapd may take to listen, and ldapadd to load the data.
const START_LIMIT: Duration = Duration::from_secs(15);

/// A running slapd with the test data.
pub struct Slapd {
    child: Option<Child>,
    dir: tempfile::TempDir,
    ldap: SocketAddr,
    ldaps: SocketAddr,
}

impl Slapd {
    /// Start slapd on free ports and load `data.ldif`. Panics (with slapd's
    /// own output) if it does not come up within a few seconds.
    pub async fn start() -> Slapd {
        let dir = tempfile::tempdir().expect("tempdir for slapd");
        Pki::shared().write_to(dir.path());
        std::fs::create_dir_all(dir.path().join("data")).expect("slapd data dir");
        let template = std::fs::read_to_string(repo_dir().join("tests/fixtures/ldap/slapd.conf"))
            .expect("read tests/fixtures/ldap/slapd.conf");
        let conf = template
            .replace("@DIR@", &dir.path().display().to_string())
            .replace("@ROOTPW@", &format!("\"{ROOT_PASSWORD}\""));
        std::fs::write(dir.path().join("slapd.conf"), conf).expect("write slapd.conf");
        std::fs::write(
            dir.path().join("service-password"),
            format!("{SERVICE_PASSWORD}\n"),
        )
        .expect("write service password");

        // A free port can be taken by someone else before slapd binds it;
        // then slapd exits and we try other ports.
        let mut last = String::new();
        for _ in 0..3 {
            let (ldap, ldaps) = (free_addr(), free_addr());
            match spawn(dir.path(), ldap, ldaps).await {
                Ok(child) => {
                    let slapd = Slapd {
                        child: Some(child),
                        dir,
                        ldap,
                        ldaps,
                    };
                    slapd.load(&repo_dir().join("tests/fixtures/ldap/data.ldif"));
                    return slapd;
                }
                Err(e) => last = e,
            }
        }
        panic!("slapd did not start: {last}");
    }

    /// Load an LDIF file as the administrator, bounded in time.
    pub fn load(&self, ldif: &Path) {
        let mut child = Command::new("ldapadd")
            .args([
                "-x",
                "-D",
                ROOT_DN,
                "-w",
                ROOT_PASSWORD,
                "-H",
                &self.ldap_url(),
            ])
            .args(["-o", "nettimeout=5", "-f"])
            .arg(ldif)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run ldapadd (Debian package ldap-utils)");
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().expect("wait for ldapadd") {
                let out = child.wait_with_output().expect("ldapadd output");
                assert!(
                    status.success(),
                    "ldapadd {} failed ({status}): {}{}\nslapd: {}",
                    ldif.display(),
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr),
                    self.log()
                );
                return;
            }
            if start.elapsed() > START_LIMIT {
                let _ = child.kill();
                panic!("ldapadd did not finish within {START_LIMIT:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `ldap://127.0.0.1:PORT`.
    pub fn ldap_url(&self) -> String {
        format!("ldap://{}", self.ldap)
    }

    /// `ldaps://127.0.0.1:PORT`.
    pub fn ldaps_url(&self) -> String {
        format!("ldaps://{}", self.ldaps)
    }

    /// The plain LDAP port.
    pub fn ldap_addr(&self) -> SocketAddr {
        self.ldap
    }

    /// The folder with `slapd.conf`, `ca.pem`, `certs/` and `service-password`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The test CA (PEM), which issued slapd's certificate.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A config for this server over plain `ldap://` (allowed: loopback),
    /// with the `inetOrgPerson`/`uid` schema and 1 s time limits. Relative
    /// paths in it are relative to [`Slapd::dir`].
    pub fn config(&self) -> LdapConfig {
        let mut c = LdapConfig::new(
            &self.ldap_url(),
            SERVICE_DN,
            Path::new("service-password"),
            BASE_DN,
        );
        c.user_filter = USER_FILTER.into();
        c.username_attribute = "uid".into();
        c.connect_timeout = ConfigDuration::from_secs(1);
        c.timeout = ConfigDuration::from_secs(1);
        c
    }

    /// slapd's output so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("slapd.log")).unwrap_or_default()
    }

    /// Kill slapd (a directory that went down). The data stays.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start slapd again on the same ports with the same data.
    pub async fn restart(&mut self) {
        self.stop();
        match spawn(self.dir.path(), self.ldap, self.ldaps).await {
            Ok(child) => self.child = Some(child),
            Err(e) => panic!("slapd did not restart: {e}"),
        }
    }
}

/// Run slapd from `dir/slapd.conf` on these ports and wait until it listens.
async fn spawn(dir: &Path, ldap: SocketAddr, ldaps: SocketAddr) -> Result<Child, String> {
    let log_path = dir.join("slapd.log");
    let log = std::fs::File::create(&log_path).expect("create slapd.log");
    let urls = format!("ldap://{ldap}/ ldaps://{ldaps}/");
    let child = Command::new("slapd")
        .arg("-f")
        .arg(dir.join("slapd.conf"))
        .args(["-h", &urls, "-d", "0"])
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("clone slapd.log"))
        .stderr(log)
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => panic!(
            "cannot run slapd ({e}); install the Debian packages slapd and ldap-utils (tests/install-deps.sh)"
        ),
    };
    let output = || std::fs::read_to_string(&log_path).unwrap_or_default();
    match tcp_ready(ldap, &mut child, START_LIMIT).await {
        Readiness::Listening => Ok(child),
        Readiness::Exited(status) => Err(format!("slapd exited ({status}): {}", output())),
        Readiness::TimedOut => {
            let _ = child.kill();
            let _ = child.wait();
            Err(format!(
                "slapd did not listen within {START_LIMIT:?}: {}",
                output()
            ))
        }
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A TCP listener that accepts connections and never says anything: a
/// directory that hangs. Counts the connections it accepted.
pub struct BlackHole {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl BlackHole {
    /// Listen on a free loopback port.
    pub async fn start() -> BlackHole {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind black hole");
        let addr = listener.local_addr().expect("black hole addr");
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                // Keep the socket open and unread.
                held.push(stream);
            }
        });
        BlackHole {
            addr,
            accepted,
            task,
        }
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for BlackHole {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A TCP proxy to `target` that holds every chunk the client sends for
/// `delay` before passing it on: each LDAP request then costs at least
/// `delay`, so the number of round trips shows in the time a check takes.
pub struct SlowProxy {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl SlowProxy {
    /// Listen on a free loopback port.
    pub async fn start(target: SocketAddr, delay: Duration) -> SlowProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let Ok(server) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    let (mut cr, mut cw) = client.into_split();
                    let (mut sr, mut sw) = server.into_split();
                    let up = async move {
                        let mut buf = vec![0u8; 16 * 1024];
                        while let Ok(n @ 1..) = cr.read(&mut buf).await {
                            tokio::time::sleep(delay).await;
                            if sw.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    };
                    let down = async move {
                        let _ = tokio::io::copy(&mut sr, &mut cw).await;
                    };
                    tokio::join!(up, down);
                });
            }
        });
        SlowProxy { addr, task }
    }

    /// `ldap://` URL of the proxy.
    pub fn url(&self) -> String {
        format!("ldap://{}", self.addr)
    }
}

impl Drop for SlowProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
