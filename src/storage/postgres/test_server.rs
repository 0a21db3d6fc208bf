//! A real PostgreSQL server for the store's tests: `initdb` into a temporary
//! directory, `postgres` on a free loopback port, killed on drop. As root
//! (CI, this machine) the server runs as the `postgres` user, which the
//! Debian package creates, because PostgreSQL refuses to run as root. The
//! switch is made in the child itself (setuid, as `runuser` would) so the
//! postmaster is our own child: killed, it is reaped here, where a container
//! whose init reaps nothing would otherwise keep a zombie holding the pid
//! file and the restart would refuse to start.
//!
//! Where PostgreSQL is not installed the tests say so and pass, unless
//! `CI` is set: there `tests/install-deps.sh` has installed it, and a
//! silently skipped race test would be a wall nobody checked.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Where Debian puts the server binaries.
const BIN_DIRS: &[&str] = &[
    "/usr/lib/postgresql/17/bin",
    "/usr/lib/postgresql/16/bin",
    "/usr/lib/postgresql/15/bin",
];

/// A running (or killed) PostgreSQL with a `postgres` superuser and trust
/// authentication on loopback.
pub(crate) struct TestPostgres {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    tls: bool,
    child: Option<Child>,
}

impl TestPostgres {
    /// Start one, or `None` when PostgreSQL is not installed (and `CI` is unset).
    pub(crate) fn start() -> Option<TestPostgres> {
        TestPostgres::start_with(None)
    }

    /// Start one that speaks TLS with the demo certificate in `certs`
    /// (`gateway.pem`/`gateway.key`, valid for 127.0.0.1) and refuses
    /// plain TCP connections.
    pub(crate) fn start_tls(certs: &Path) -> Option<TestPostgres> {
        TestPostgres::start_with(Some(certs))
    }

    fn start_with(certs: Option<&Path>) -> Option<TestPostgres> {
        let Some(bin) = BIN_DIRS
            .iter()
            .map(PathBuf::from)
            .find(|d| d.join("initdb").exists())
        else {
            assert!(
                std::env::var_os("CI").is_none(),
                "PostgreSQL is not installed (tests/install-deps.sh installs it)"
            );
            eprintln!("PostgreSQL not installed: skipped (tests/install-deps.sh installs it)");
            return None;
        };
        let dir = tempfile::Builder::new()
            .prefix("portvakt-pg-")
            .tempdir()
            .expect("pg tempdir");
        let data = dir.path().join("data");
        std::fs::create_dir(&data).expect("pg data dir");
        if let Some(certs) = certs {
            for (from, to) in [("gateway.pem", "server.crt"), ("gateway.key", "server.key")] {
                std::fs::copy(certs.join(from), dir.path().join(to)).expect("copy cert");
            }
        }
        let pg = TestPostgres {
            bin,
            port: free_port(),
            tls: certs.is_some(),
            dir,
            child: None,
        };
        pg.hand_over(pg.dir.path());
        let out = pg
            .command("initdb")
            .arg("-D")
            .arg(&data)
            .args(["--auth=trust", "-U", "postgres", "--no-sync", "-E", "UTF8"])
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut hba = String::from("local all all trust\n");
        hba += if pg.tls {
            "hostssl all all 127.0.0.1/32 trust\n"
        } else {
            "host all all 127.0.0.1/32 trust\n"
        };
        std::fs::write(data.join("pg_hba.conf"), hba).expect("pg_hba.conf");
        pg.hand_over(&data.join("pg_hba.conf"));
        let mut pg = pg;
        pg.start_again();
        Some(pg)
    }

    /// `postgres://postgres@127.0.0.1:PORT/DB?sslmode=…&timeout=…`.
    pub(crate) fn url(&self, db: &str, timeout: &str) -> String {
        let mode = if self.tls { "verify-full" } else { "disable" };
        format!(
            "postgres://postgres@127.0.0.1:{}/{db}?sslmode={mode}&timeout={timeout}",
            self.port
        )
    }

    /// Create an empty database `name` (each test gets its own).
    pub(crate) fn create_db(&self, name: &str) {
        let out = self
            .command("psql")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-U", "postgres", "-d", "postgres", "-q", "-c"])
            .arg(format!("CREATE DATABASE {name}"))
            .env("PGSSLMODE", if self.tls { "require" } else { "disable" })
            .output()
            .expect("psql");
        assert!(
            out.status.success(),
            "CREATE DATABASE {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Kill it (SIGKILL: a crash, not a shutdown); its data stays on disk.
    pub(crate) fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            // Its backends first, so the restart finds no process still
            // attached to the old shared memory.
            let _ = Command::new("pkill")
                .args(["-KILL", "-P", &c.id().to_string()])
                .status();
            let _ = c.kill();
            let _ = c.wait();
        }
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Start it (again) on the same port, after a crash recovery if killed.
    pub(crate) fn start_again(&mut self) {
        self.kill();
        let mut cmd = self.command("postgres");
        cmd.arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-p", &self.port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1"])
            .arg("-c")
            .arg(format!(
                "unix_socket_directories={}",
                self.dir.path().display()
            ))
            // Fast but crash-safe for a killed process (the kernel keeps
            // what was written); synchronous_commit stays on, or a commit
            // just before a kill would be lost and the test see it gone.
            .args(["-c", "fsync=off", "-c", "full_page_writes=off"]);
        if self.tls {
            cmd.args(["-c", "ssl=on"])
                .arg("-c")
                .arg(format!(
                    "ssl_cert_file={}",
                    self.dir.path().join("server.crt").display()
                ))
                .arg("-c")
                .arg(format!(
                    "ssl_key_file={}",
                    self.dir.path().join("server.key").display()
                ));
        }
        // Its log goes to a file, appended across restarts, for the panics below.
        let log_path = self.dir.path().join("postgres.log");
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("postgres.log");
        let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
        // A backend of the killed server may take a moment to let go of the
        // old shared memory (SIGKILL is delivered, not awaited): the new
        // postmaster then refuses to start ("pre-existing shared memory
        // block is still in use"). That is retried, a bounded number of times.
        let mut attempts = 0;
        let mut child = loop {
            attempts += 1;
            let logged_before = log().len();
            let mut child = cmd
                .stdout(Stdio::null())
                .stderr(
                    std::fs::OpenOptions::new()
                        .append(true)
                        .open(&log_path)
                        .expect("postgres.log"),
                )
                .spawn()
                .expect("start postgres");
            std::thread::sleep(Duration::from_millis(100));
            match child.try_wait() {
                Ok(Some(status)) => {
                    let new = log().get(logged_before..).unwrap_or_default().to_owned();
                    if new.contains("pre-existing shared memory block") && attempts < 50 {
                        std::thread::sleep(Duration::from_millis(100));
                        continue;
                    }
                    panic!("postgres exited at start: {status}\n{}", log());
                }
                _ => break child,
            }
        };
        // Ready when it answers a query, not merely when the port is open:
        // after a crash it listens before recovery has finished.
        for _ in 0..200 {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("postgres exited at start: {status}\n{}", log());
            }
            let ok = self
                .command("pg_isready")
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-q"])
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if ok {
                self.child = Some(child);
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        panic!(
            "postgres did not get ready on port {} in 10 s\n{}",
            self.port,
            log()
        );
    }

    /// `name` from the server's bin directory, run as `postgres` when we are root.
    fn command(&self, name: &str) -> Command {
        use std::os::unix::process::CommandExt;
        let mut c = Command::new(self.bin.join(name));
        if let Some((uid, gid)) = postgres_user() {
            // std drops the supplementary groups too when root sets a uid.
            c.uid(uid).gid(gid).env("HOME", self.dir.path());
        }
        c
    }

    /// Let the `postgres` user own `path` (when we are root; otherwise it is ours).
    fn hand_over(&self, path: &Path) {
        if !is_root() {
            return;
        }
        let status = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(path)
            .status()
            .expect("chown");
        assert!(status.success(), "chown postgres {}", path.display());
        if self.tls {
            let key = self.dir.path().join("server.key");
            let _ = Command::new("chmod").arg("600").arg(&key).status();
        }
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The `postgres` user's uid and gid when we are root (None otherwise).
fn postgres_user() -> Option<(u32, u32)> {
    if !is_root() {
        return None;
    }
    let id = |flag: &str| {
        let out = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .expect("run id");
        assert!(
            out.status.success(),
            "no postgres user (the Debian package creates it)"
        );
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse::<u32>()
            .expect("a numeric id")
    };
    Some((id("-u"), id("-g")))
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}
