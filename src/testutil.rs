//! Builders for unit tests.

use std::time::Duration;

use crate::config::model::{IdentityHeaderNames, Service, Upstream};
use crate::policy::Policy;
use crate::session::{Method, NewSession, Session};

/// A service on `host` + `path` with `policy`.
pub fn service_at(host: &str, path: &str, policy: Policy) -> Service {
    Service {
        index: 0,
        name: format!("{host}{path}"),
        host: host.into(),
        path: path.into(),
        upstream: Upstream {
            address: "127.0.0.1:1".into(),
            socket: ([127, 0, 0, 1], 1).into(),
            host: "127.0.0.1".into(),
            tls: false,
            sni: String::new(),
            verify: true,
            ca_der: None,
            connect_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(1),
        },
        realms: vec![],
        policy,
        groups: vec![],
        groups_all: false,
        basic_auth: false,
        preserve_host: true,
        headers: IdentityHeaderNames::default(),
        networks: vec![],
        methods: vec![],
        hours: None,
        description: None,
        icon: None,
        keep_encoded_slashes: false,
        keep_underscore_headers: false,
        assertion: false,
        assertion_audience: String::new(),
    }
}

/// A service with a policy and group condition.
pub fn service_with(policy: Policy, groups: &[&str], all: bool) -> Service {
    let mut s = service_at("app.test", "/", policy);
    s.groups = groups.iter().map(|g| g.to_string()).collect();
    s.groups_all = all;
    s
}

/// A session at level `level` with `groups`.
pub fn session_with(level: u8, groups: &[&str]) -> Session {
    let mut n = new_session_args();
    n.auth_level = level;
    n.groups = groups.iter().map(|g| g.to_string()).collect();
    Session::new(n, 0)
}

/// A level-1 session created at `now_ms`.
pub fn new_session(now_ms: u64) -> Session {
    Session::new(new_session_args(), now_ms)
}

fn new_session_args() -> NewSession {
    NewSession {
        user: "alice".into(),
        realm: "staff".into(),
        groups: vec![],
        email: "alice@example.org".into(),
        display_name: "Alice".into(),
        auth_level: 1,
        methods: vec![Method::Password],
        internal: true,
        ip: "127.0.0.1".parse().expect("literal IP"),
    }
}

/// A gateway built from a real configuration in a temporary directory
/// (generated certificate, random key, SQLite enrolments, auth log to a
/// file), with a manual clock and a scripted directory for realm `staff`
/// (internal network 10.0.0.0/8).
#[allow(dead_code)]
pub struct TestGateway {
    /// The configuration's directory (auth log, store), removed on drop.
    pub dir: tempfile::TempDir,
    /// The gateway.
    pub gw: std::sync::Arc<crate::gateway::Gateway>,
    /// Its runtime.
    pub rt: std::sync::Arc<crate::gateway::Runtime>,
    /// The clock the gateway reads.
    pub clock: std::sync::Arc<crate::clock::ManualClock>,
    /// The realm's directory.
    pub directory: std::sync::Arc<FakeDirectory>,
}

/// A [`TestGateway`] whose realm locks a user after `user_failures`.
pub fn gateway(user_failures: u32) -> TestGateway {
    use std::sync::Arc;
    let dir = tempfile::tempdir().expect("tempdir");
    crate::demo::write_certs(dir.path()).expect("dev certificate");
    let key: [u8; 32] = rand::random();
    std::fs::write(dir.path().join("secret.key"), key).expect("secret.key");
    std::fs::write(dir.path().join("users.yaml"), "users: {}\n").expect("users.yaml");
    let yaml = format!(
        r#"listen: {{ https: "127.0.0.1:1" }}
tls:
  certificates:
    - {{ cert: gateway.pem, key: gateway.key }}
portal: {{ host: portal.test }}
secret_key_file: secret.key
login: {{ user_failures: {user_failures}, ip_failures: 100, window: 10m, lockout: 15m }}
realms:
  - id: staff
    title: {{ sv: "Personal", en: "Staff" }}
    internal_networks: [10.0.0.0/8]
    directory: {{ file: users.yaml }}
services: []
audit: {{ access_log: access.jsonl, auth_log: auth.jsonl }}
storage: portvakt.db
"#
    );
    let path = dir.path().join("portvakt.yaml");
    let config = crate::config::parse(&path, &yaml).expect("test configuration");
    let mut runtime = crate::gateway::Runtime::build(config, None).expect("runtime");
    let directory = Arc::new(FakeDirectory::default());
    runtime.directories.insert(
        "staff".into(),
        directory.clone() as Arc<dyn crate::directory::Directory>,
    );
    let store = crate::storage::sqlite::SqliteStore::open(
        &dir.path().join("portvakt.db"),
        crate::storage::crypto::Sealer::from_secret(&key),
        crate::storage::sqlite::LegacyRows::AdoptInto("staff".into()),
    )
    .expect("store");
    let clock = crate::clock::ManualClock::starting_at(1_700_000_000_000);
    let state = Arc::new(crate::state::memory::MemoryBackend::new(clock.clone()));
    let gw = crate::gateway::Gateway::new(runtime, clock.clone(), Arc::new(store), state);
    let rt = gw.runtime();
    TestGateway {
        dir,
        gw,
        rt,
        clock,
        directory,
    }
}

/// A directory that knows `alice` (password [`FakeDirectory::PASSWORD`],
/// any letter case, returned as `alice`) and disabled `carol`, and counts
/// how often it was asked.
#[derive(Debug, Default)]
pub struct FakeDirectory {
    /// Checks so far.
    pub calls: std::sync::atomic::AtomicUsize,
    /// Answer every check with "unavailable".
    pub down: std::sync::atomic::AtomicBool,
}

impl FakeDirectory {
    /// alice's password.
    pub const PASSWORD: &'static str = "correct horse";

    /// Checks so far.
    pub fn calls(&self) -> usize {
        self.calls.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[async_trait::async_trait]
impl crate::directory::Directory for FakeDirectory {
    async fn check(
        &self,
        username: &str,
        password: &str,
    ) -> Result<crate::directory::Verdict, crate::directory::DirectoryError> {
        use crate::directory::{DirectoryError, User, Verdict};
        use std::sync::atomic::Ordering;
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.down.load(Ordering::SeqCst) {
            return Err(DirectoryError::Unavailable("scripted".into()));
        }
        Ok(match username.to_lowercase().as_str() {
            "alice" if password == Self::PASSWORD => Verdict::Valid(User {
                username: "alice".into(),
                display_name: "Alice".into(),
                email: "alice@example.org".into(),
                groups: vec!["staff".into()],
            }),
            "alice" => Verdict::WrongPassword,
            "carol" => Verdict::Disabled,
            _ => Verdict::UnknownUser,
        })
    }

    async fn lookup(
        &self,
        username: &str,
    ) -> Result<crate::directory::Presence, crate::directory::DirectoryError> {
        // The password check's answers, as if the password were right.
        Ok(match self.check(username, Self::PASSWORD).await? {
            crate::directory::Verdict::Valid(u) => crate::directory::Presence::Active(u),
            crate::directory::Verdict::Disabled => crate::directory::Presence::Disabled,
            _ => crate::directory::Presence::UnknownUser,
        })
    }
}
