//! `portvakt serve` as a child process with a config written for one test,
//! or — given a manual clock ([`GatewayConfig::clock`]) — the same config
//! run inside the test process (`support::in_process`), so the test moves
//! time instead of sleeping.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use portvakt::clock::ManualClock;

use rand::RngCore;
use serde_json::Value;

use super::client::{Client, ClientOptions};
use super::in_process::{InProcess, NotStarted};
use super::pki::Pki;
use super::wait::{free_addr, maybe_until, tcp_ready, Readiness};

/// One entry of `services:`.
#[derive(Clone, Debug)]
pub struct Service {
    name: String,
    host: String,
    upstream: String,
    policy: Option<String>,
    path: Option<String>,
    /// Raw YAML lines added to the entry (`basic_auth: true`, `groups: [x]`, …).
    extra: Vec<String>,
}

impl Service {
    /// A service on `host` in front of `upstream` (`http://…` or `https://…`),
    /// with the default policy unless [`Service::policy`] says otherwise.
    pub fn new(host: &str, upstream: impl Into<String>) -> Service {
        Service {
            name: host.trim_end_matches(".test").to_string(),
            host: host.to_string(),
            upstream: upstream.into(),
            policy: None,
            path: None,
            extra: Vec::new(),
        }
    }

    pub fn name(mut self, name: &str) -> Service {
        self.name = name.to_string();
        self
    }

    /// `bypass`, `one_factor`, `two_factor`, `deny` or `two_factor_offsite`.
    pub fn policy(mut self, policy: &str) -> Service {
        self.policy = Some(policy.to_string());
        self
    }

    pub fn path(mut self, prefix: &str) -> Service {
        self.path = Some(prefix.to_string());
        self
    }

    /// Add raw YAML to the entry, e.g. `"basic_auth: true"` or
    /// `"upstream_tls: { sni: upstream.test }"`. Several lines are fine.
    pub fn with(mut self, yaml: &str) -> Service {
        self.extra.extend(yaml.lines().map(str::to_string));
        self
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    fn render(&self) -> String {
        let mut out = format!(
            "  - name: \"{}\"\n    host: {}\n    upstream: {}\n",
            self.name, self.host, self.upstream
        );
        if let Some(p) = &self.policy {
            out.push_str(&format!("    policy: {p}\n"));
        }
        if let Some(p) = &self.path {
            out.push_str(&format!("    path: {p}\n"));
        }
        for line in &self.extra {
            out.push_str(&format!("    {line}\n"));
        }
        out
    }
}

/// Builder for a gateway's config file, with test defaults: the portal on
/// `portal.test`, realm `staff` whose internal network is `127.0.0.1/32`,
/// throttling high enough never to get in the way (50 per user, 100 per IP),
/// logs to `access.jsonl` and `auth.jsonl`.
#[derive(Clone, Debug)]
pub struct GatewayConfig {
    services: Vec<Service>,
    idle_timeout: String,
    max_lifetime: String,
    user_failures: u32,
    ip_failures: u32,
    trusted_proxies: Vec<String>,
    internal_networks: Vec<String>,
    http_listener: bool,
    /// `listen.proxy_protocol`.
    proxy_protocol: bool,
    certificates: Vec<&'static str>,
    extra_yaml: String,
    pki: Option<Pki>,
    /// `realms[0].methods` (internal, external); None: the gateway's defaults.
    realm_methods: Option<(Vec<String>, Vec<String>)>,
    /// `methods.passkey_alone` for `staff` (with `realm_methods`).
    passkey_alone: bool,
    /// Raw YAML entries of `realms:` after `staff`.
    extra_realms: String,
    /// Files written into the gateway's directory before it starts.
    files: Vec<(String, String)>,
    /// The `audit:` block instead of the default one.
    audit: Option<String>,
    /// The secret key (default: random per gateway). Gateways sharing state
    /// must share it.
    secret_key: Option<[u8; 32]>,
    /// Run in this process on this clock instead of as `portvakt serve`.
    clock: Option<Arc<ManualClock>>,
    /// `server.grace_period` (short by default: tests stop gateways often).
    grace_period: String,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            services: Vec::new(),
            idle_timeout: "15m".into(),
            max_lifetime: "10h".into(),
            user_failures: 50,
            ip_failures: 100,
            trusted_proxies: Vec::new(),
            internal_networks: vec!["127.0.0.1/32".into()],
            http_listener: false,
            proxy_protocol: false,
            certificates: vec!["main", "second"],
            extra_yaml: String::new(),
            pki: None,
            realm_methods: None,
            passkey_alone: false,
            extra_realms: String::new(),
            files: Vec::new(),
            audit: None,
            secret_key: None,
            clock: None,
            grace_period: "1s".into(),
        }
    }
}

impl GatewayConfig {
    pub fn new() -> GatewayConfig {
        GatewayConfig::default()
    }

    pub fn service(mut self, service: Service) -> GatewayConfig {
        self.services.push(service);
        self
    }

    pub fn idle_timeout(mut self, d: &str) -> GatewayConfig {
        self.idle_timeout = d.to_string();
        self
    }

    pub fn max_lifetime(mut self, d: &str) -> GatewayConfig {
        self.max_lifetime = d.to_string();
        self
    }

    /// `login.user_failures` and `login.ip_failures`.
    pub fn throttle(mut self, user_failures: u32, ip_failures: u32) -> GatewayConfig {
        self.user_failures = user_failures;
        self.ip_failures = ip_failures;
        self
    }

    pub fn trusted_proxies(mut self, cidrs: &[&str]) -> GatewayConfig {
        self.trusted_proxies = cidrs.iter().map(|s| s.to_string()).collect();
        self
    }

    /// `realms[0].internal_networks` (default `[127.0.0.1/32]`).
    pub fn internal_networks(mut self, cidrs: &[&str]) -> GatewayConfig {
        self.internal_networks = cidrs.iter().map(|s| s.to_string()).collect();
        self
    }

    /// `listen.proxy_protocol: true`: a PROXY header before TLS on HTTPS.
    pub fn proxy_protocol(mut self) -> GatewayConfig {
        self.proxy_protocol = true;
        self
    }

    /// Also open the plain-HTTP redirect listener.
    pub fn http_listener(mut self) -> GatewayConfig {
        self.http_listener = true;
        self
    }

    /// Which test certificates (`main`, `second`, `upstream`) to serve, first is default.
    /// `server.grace_period`: the ceiling of a SIGTERM drain.
    pub fn grace_period(mut self, d: &str) -> GatewayConfig {
        self.grace_period = d.into();
        self
    }

    pub fn certificates(mut self, names: &[&'static str]) -> GatewayConfig {
        self.certificates = names.to_vec();
        self
    }

    /// Raw top-level YAML appended to the file (for keys the builder lacks).
    pub fn extra_yaml(mut self, yaml: &str) -> GatewayConfig {
        self.extra_yaml.push_str(yaml);
        if !self.extra_yaml.ends_with('\n') {
            self.extra_yaml.push('\n');
        }
        self
    }

    /// `realms[0].methods`: what the realm offers on its internal networks
    /// and elsewhere (default: `[password, token]` and `[sms, email, totp, token]`).
    pub fn realm_methods(mut self, internal: &[&str], external: &[&str]) -> GatewayConfig {
        let list = |l: &[&str]| l.iter().map(|s| s.to_string()).collect();
        self.realm_methods = Some((list(internal), list(external)));
        self
    }

    /// Let a passkey alone be the whole login in `staff`
    /// (`methods.passkey_alone`; give the methods with `realm_methods`).
    pub fn passkey_alone(mut self) -> GatewayConfig {
        self.passkey_alone = true;
        self
    }

    /// One more realm after `staff`: `id`, its own users file `users_file`
    /// (written from `users_yaml` before the gateway starts), internal
    /// networks as for `staff`, the default methods.
    pub fn realm(mut self, id: &str, users_file: &str, users_yaml: &str) -> GatewayConfig {
        self.extra_realms.push_str(&format!(
            "  - id: {id}\n    title: {{ sv: \"{id}\", en: \"{id}\" }}\n    internal_networks: [{}]\n    directory:\n      file: {users_file}\n",
            self.internal_networks.join(", ")
        ));
        self.files
            .push((users_file.to_string(), users_yaml.to_string()));
        self
    }

    /// The whole `audit:` block (YAML, from `audit:` on) instead of
    /// `access.jsonl` and `auth.jsonl` in the gateway's own directory.
    pub fn audit(mut self, yaml: &str) -> GatewayConfig {
        self.audit = Some(yaml.to_string());
        self
    }

    /// Use this PKI instead of the process-wide one.
    pub fn pki(mut self, pki: &Pki) -> GatewayConfig {
        self.pki = Some(pki.clone());
        self
    }

    /// Run the gateway inside the test process on `clock`, which only the
    /// test moves ([`Gateway::advance`]). No process: no signals, no `pid`;
    /// `reload` and `restart` still work.
    pub fn clock(mut self, clock: &Arc<ManualClock>) -> GatewayConfig {
        self.clock = Some(clock.clone());
        self
    }

    pub async fn start(self) -> Gateway {
        Gateway::start(self).await
    }

    /// Use `key` as the secret key (several gateways behind one balancer
    /// share it: it signs return addresses and seals the shared state).
    pub fn secret_key(mut self, key: [u8; 32]) -> GatewayConfig {
        self.secret_key = Some(key);
        self
    }

    /// Keep short-lived state at `url` (`state:`), e.g. a test Redis.
    pub fn state(self, url: &str) -> GatewayConfig {
        self.extra_yaml(&format!("state: \"{url}\"\nstate_timeout: 500ms\n"))
    }

    /// The YAML text for these listening addresses.
    pub fn render(&self, https: SocketAddr, http: Option<SocketAddr>, admin: SocketAddr) -> String {
        let mut y = String::new();
        y.push_str("# Written by the portvakt integration tests.\n");
        y.push_str(&format!("listen:\n  https: \"{https}\"\n"));
        if let Some(http) = http {
            y.push_str(&format!("  http: \"{http}\"\n"));
        }
        y.push_str(&format!("  admin: \"{admin}\"\n"));
        if self.proxy_protocol {
            y.push_str("  proxy_protocol: true\n");
        }
        y.push_str("tls:\n  certificates:\n");
        for c in &self.certificates {
            y.push_str(&format!(
                "    - {{ cert: certs/{c}.pem, key: certs/{c}.key }}\n"
            ));
        }
        y.push_str("  hsts_max_age: 365d\n");
        y.push_str("portal:\n  host: portal.test\n");
        y.push_str("branding:\n  title: { sv: \"Testportalen\", en: \"Test portal\" }\n  organisation: \"Testkommunen\"\n");
        let html = super::repo_dir().join("html");
        if html.is_dir() {
            y.push_str(&format!("pages:\n  templates: \"{}\"\n", html.display()));
        }
        y.push_str(&format!(
            "trusted_proxies: [{}]\n",
            self.trusted_proxies.join(", ")
        ));
        y.push_str(&format!(
            "sessions:\n  idle_timeout: {}\n  max_lifetime: {}\n",
            self.idle_timeout, self.max_lifetime
        ));
        y.push_str("secret_key_file: secret.key\n");
        y.push_str(&format!(
            "login:\n  user_failures: {}\n  ip_failures: {}\n  window: 10m\n  lockout: 15m\n  basic_auth_cache: 5m\n",
            self.user_failures, self.ip_failures
        ));
        y.push_str(&format!(
            "server:\n  threads: 2\n  grace_period: {}\n  graceful_shutdown_timeout: 1s\n",
            self.grace_period
        ));
        y.push_str(&format!(
            "realms:\n  - id: staff\n    title: {{ sv: \"Övriga anställda\", en: \"Other staff\" }}\n    internal_networks: [{}]\n    directory:\n      file: users.yaml\n",
            self.internal_networks.join(", ")
        ));
        if let Some((internal, external)) = &self.realm_methods {
            y.push_str(&format!(
                "    methods:\n      internal: [{}]\n      external: [{}]\n",
                internal.join(", "),
                external.join(", ")
            ));
            if self.passkey_alone {
                y.push_str("      passkey_alone: true\n");
            }
        }
        y.push_str(&self.extra_realms);
        if self.services.is_empty() {
            y.push_str("services: []\n");
        } else {
            y.push_str("services:\n");
            for s in &self.services {
                y.push_str(&s.render());
            }
        }
        match &self.audit {
            Some(audit) => y.push_str(audit),
            None => y.push_str("audit:\n  access_log: access.jsonl\n  auth_log: auth.jsonl\n"),
        }
        y.push_str(&self.extra_yaml);
        y
    }
}

/// A running gateway; killed on drop. Dropping it also fails the test if the
/// process died on its own (a panic or crash), and prints its logs if the
/// test failed.
pub struct Gateway {
    dir: tempfile::TempDir,
    process: Process,
    https: SocketAddr,
    http: Option<SocketAddr>,
    admin: SocketAddr,
    pki: Pki,
    config: GatewayConfig,
    /// Set when a test stopped the process on purpose (SIGTERM).
    stopped: bool,
}

/// How the gateway runs.
enum Process {
    /// `portvakt serve` (stdout and stderr in the directory's `*.log`).
    Child(Child),
    /// On a thread of the test process, on a manual clock.
    InProcess(InProcess),
    /// Between stopping and starting again in [`Gateway::restart`].
    Stopped,
}

/// Name of the config file inside the gateway's directory.
pub const CONFIG_FILE: &str = "portvakt.yaml";

impl Gateway {
    async fn start(config: GatewayConfig) -> Gateway {
        let pki = config.pki.clone().unwrap_or_else(Pki::shared);
        let dir = tempfile::Builder::new()
            .prefix("portvakt-it-")
            .tempdir()
            .expect("gateway tempdir");
        pki.write_to(dir.path());
        std::fs::write(dir.path().join("users.yaml"), super::users::users_yaml())
            .expect("write users.yaml");
        for (name, text) in &config.files {
            std::fs::write(dir.path().join(name), text).expect("write a file of the config");
        }
        let key = config.secret_key.unwrap_or_else(|| {
            let mut key = [0u8; 32];
            rand::thread_rng().fill_bytes(&mut key);
            key
        });
        std::fs::write(dir.path().join("secret.key"), key).expect("write secret.key");

        let (process, https, http, admin) = spawn(dir.path(), &config).await;
        Gateway {
            dir,
            process,
            https,
            http,
            admin,
            pki,
            config,
            stopped: false,
        }
    }

    /// Stop the process the hard way (SIGKILL, like a crash or a power cut)
    /// and start it again with the same config, directory, database and key,
    /// on new free ports. Clients made before talk to the old ports: make new
    /// ones. Logs are appended to. In-process: a fast stop, the same clock.
    pub async fn restart(&mut self) {
        self.kill();
        let (process, https, http, admin) = spawn(self.dir.path(), &self.config).await;
        self.process = process;
        self.https = https;
        self.http = http;
        self.admin = admin;
    }

    /// The HTTPS listener.
    pub fn https_addr(&self) -> SocketAddr {
        self.https
    }

    pub fn https_port(&self) -> u16 {
        self.https.port()
    }

    /// The admin listener (`/healthz`, `/readyz`, `/metrics`, sessions API).
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
    }

    /// The child process, for what only a real process can do.
    fn child(&self) -> &Child {
        match &self.process {
            Process::Child(child) => child,
            _ => panic!("an in-process gateway has no process: start it without a clock"),
        }
    }

    /// Stop it: SIGKILL for the process, a fast stop in-process.
    fn kill(&mut self) {
        match std::mem::replace(&mut self.process, Process::Stopped) {
            Process::Child(mut child) => {
                let _ = child.kill();
                let _ = child.wait();
            }
            Process::InProcess(gateway) => {
                if !gateway.stop() && !std::thread::panicking() {
                    panic!("the in-process gateway's server thread panicked (see above)");
                }
            }
            Process::Stopped => {}
        }
    }

    /// The manual clock of an in-process gateway.
    pub fn clock(&self) -> &Arc<ManualClock> {
        match &self.process {
            Process::InProcess(gateway) => gateway.clock(),
            _ => panic!("this gateway runs on the system clock: start it with .clock(…)"),
        }
    }

    /// The manual clock, if this gateway runs in-process on one.
    pub fn manual_clock(&self) -> Option<&Arc<ManualClock>> {
        match &self.process {
            Process::InProcess(gateway) => Some(gateway.clock()),
            _ => None,
        }
    }

    /// Move the in-process gateway's clock forward by `d`: that much time
    /// has passed for the gateway, and no time at all for the test.
    pub fn advance(&self, d: Duration) {
        self.clock().advance(d);
    }

    /// The running gateway's state (in-process only).
    pub fn state(&self) -> &Arc<portvakt::gateway::Gateway> {
        match &self.process {
            Process::InProcess(gateway) => gateway.gateway(),
            _ => panic!("the state of a child process is out of reach: start it with .clock(…)"),
        }
    }

    /// The process id (to send signals).
    pub fn pid(&self) -> u32 {
        self.child().id()
    }

    /// GET `path` on the admin listener: status and body.
    pub async fn admin_get(&self, path: &str) -> (u16, String) {
        let resp = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("admin client")
            .get(format!("http://{}{path}", self.admin))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path} on the admin listener: {e}"));
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap_or_default())
    }

    /// GET `path` on the admin listener with the admin bearer token.
    pub async fn admin_get_authorised(&self, path: &str) -> (u16, String) {
        let key = std::fs::read(self.dir.path().join("secret.key")).expect("read secret.key");
        let token =
            portvakt::admin_listener::admin_token(&portvakt::signing::Signer::from_bytes(&key));
        let resp = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("admin client")
            .get(format!("http://{}{path}", self.admin))
            .bearer_auth(token)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path} on the admin listener: {e}"));
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap_or_default())
    }

    /// Run `portvakt ARGS… --config <this gateway's config>` and wait for it.
    pub fn run_cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(super::portvakt_bin())
            .args(args)
            .arg("--config")
            .arg(self.config_path())
            .stdin(Stdio::null())
            .output()
            .expect("run portvakt")
    }

    /// Send `signal` (e.g. "USR1", "TERM") to the gateway process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} failed: {status}");
    }

    /// Wait (at most `limit`) for the process to exit; its exit status.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let Process::Child(child) = &mut self.process else {
            panic!("an in-process gateway has no process to exit: start it without a clock");
        };
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                self.stopped = true;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// The plain-HTTP redirect listener, if configured.
    pub fn http_addr(&self) -> SocketAddr {
        self.http.expect("this gateway has no http listener")
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join(CONFIG_FILE)
    }

    /// The test CA as a file in this gateway's directory.
    pub fn ca_path(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    pub fn pki(&self) -> &Pki {
        &self.pki
    }

    /// A browser-like HTTP/1.1 client on 127.0.0.1 that reaches this gateway
    /// under every test host name.
    pub fn client(&self) -> Client {
        self.client_with(ClientOptions::default())
    }

    pub fn client_with(&self, options: ClientOptions) -> Client {
        Client::new(self.https, self.pki.ca_pem(), options)
    }

    /// A client whose source address is 127.0.0.2 (off the internal network).
    pub fn offsite_client(&self) -> Client {
        self.client_with(ClientOptions::default().source_ip(IpAddr::from([127, 0, 0, 2])))
    }

    /// A client on 127.0.0.2 (off-network) that shares `other`'s cookies:
    /// the same browser, taken out of the office.
    pub fn offsite_client_sharing(&self, other: &Client) -> Client {
        self.client_with(
            ClientOptions::default()
                .source_ip(IpAddr::from([127, 0, 0, 2]))
                .cookie_jar(other.jar()),
        )
    }

    /// The config as built.
    pub fn config(&self) -> &GatewayConfig {
        &self.config
    }

    /// The config file's current text.
    pub fn config_text(&self) -> String {
        std::fs::read_to_string(self.config_path()).expect("read config")
    }

    /// Replace the config file's text (no reload).
    pub fn write_config_text(&self, text: &str) {
        std::fs::write(self.config_path(), text).expect("write config");
    }

    /// Change the config with the builder and write it (same ports; no reload).
    pub fn write_config(&mut self, change: impl FnOnce(GatewayConfig) -> GatewayConfig) {
        self.config = change(self.config.clone());
        let text = self.config.render(self.https, self.http, self.admin);
        self.write_config_text(&text);
    }

    /// Ask the gateway to reload its config (SIGHUP; in-process: directly,
    /// done when this returns).
    pub fn reload(&self) {
        if let Process::InProcess(gateway) = &self.process {
            return gateway.reload();
        }
        let status = Command::new("kill")
            .args(["-HUP", &self.pid().to_string()])
            .status()
            .expect("run kill -HUP");
        assert!(status.success(), "kill -HUP failed: {status}");
    }

    /// stdout and stderr so far. An in-process gateway has none of its own:
    /// its tracing goes to the test process (set `PORTVAKT_LOG` to see it).
    pub fn logs(&self) -> String {
        read_logs(self.dir.path())
    }

    /// Panics (with the logs) if the process is no longer running.
    pub fn assert_alive(&mut self) {
        if let Some(status) = self.died() {
            panic!("the gateway died ({status}):\n{}", self.logs());
        }
    }

    /// How it ended, if it ended on its own.
    fn died(&mut self) -> Option<String> {
        match &mut self.process {
            Process::Child(child) => match child.try_wait() {
                Ok(Some(status)) => Some(status.to_string()),
                _ => None,
            },
            Process::InProcess(gateway) => gateway
                .has_ended()
                .then(|| "the server thread ended".to_string()),
            Process::Stopped => None,
        }
    }

    /// Every complete line of `access.jsonl`, parsed.
    pub fn access_log_lines(&self) -> Vec<Value> {
        json_lines(&self.dir.path().join("access.jsonl"))
    }

    /// Every complete line of `auth.jsonl`, parsed.
    pub fn auth_log_lines(&self) -> Vec<Value> {
        json_lines(&self.dir.path().join("auth.jsonl"))
    }

    /// Raw text of the access log (for looking for secrets).
    pub fn access_log_text(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("access.jsonl")).unwrap_or_default()
    }

    pub fn auth_log_text(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("auth.jsonl")).unwrap_or_default()
    }

    /// Wait (at most 5 s) until the access log has lines satisfying `done`.
    pub async fn wait_access_log(&self, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let path = self.dir.path().join("access.jsonl");
        wait_json_lines(&path, what, done).await
    }

    /// Wait (at most 5 s) until the auth log has lines satisfying `done`.
    pub async fn wait_auth_log(&self, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let path = self.dir.path().join("auth.jsonl");
        wait_json_lines(&path, what, done).await
    }
}

/// Write the config for free ports and start `portvakt serve` in `dir` (or
/// in-process, given a clock); wait (at most 30 s) until it listens. Tries
/// other ports if one was taken.
async fn spawn(
    dir: &Path,
    config: &GatewayConfig,
) -> (Process, SocketAddr, Option<SocketAddr>, SocketAddr) {
    if let Some(clock) = &config.clock {
        return start_in_process(dir, config, clock).await;
    }
    let mut last = String::new();
    for _attempt in 0..3 {
        let https = free_addr();
        let http = config.http_listener.then(free_addr);
        let admin = free_addr();
        let config_path = dir.join(CONFIG_FILE);
        std::fs::write(&config_path, config.render(https, http, admin)).expect("write config");
        let log = |name: &str| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join(name))
                .unwrap_or_else(|e| panic!("{name}: {e}"))
        };
        let mut child = Command::new(super::portvakt_bin())
            .arg("serve")
            .arg("--config")
            .arg(&config_path)
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::null())
            .stdout(log("stdout.log"))
            .stderr(log("stderr.log"))
            .spawn()
            .expect("spawn portvakt serve");
        let mut ready = tcp_ready(https, &mut child, Duration::from_secs(30)).await;
        if let (Readiness::Listening, Some(http)) = (&ready, http) {
            ready = tcp_ready(http, &mut child, Duration::from_secs(10)).await;
        }
        if let Readiness::Listening = &ready {
            ready = tcp_ready(admin, &mut child, Duration::from_secs(10)).await;
        }
        let logs = read_logs(dir);
        match ready {
            Readiness::Listening => return (Process::Child(child), https, http, admin),
            Readiness::Exited(status) if logs.to_ascii_lowercase().contains("in use") => {
                last = format!("exited ({status}), port taken:\n{logs}");
            }
            Readiness::Exited(status) => {
                panic!("portvakt serve exited before listening ({status}):\n{logs}");
            }
            Readiness::TimedOut => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("portvakt serve did not listen on {https} within 30 s:\n{logs}");
            }
        }
    }
    panic!("portvakt serve could not start in 3 tries: {last}");
}

/// [`spawn`] for an in-process gateway on `clock`.
async fn start_in_process(
    dir: &Path,
    config: &GatewayConfig,
    clock: &Arc<ManualClock>,
) -> (Process, SocketAddr, Option<SocketAddr>, SocketAddr) {
    super::in_process::log_to_stderr_if_asked();
    let mut last = String::new();
    for _attempt in 0..3 {
        let https = free_addr();
        let http = config.http_listener.then(free_addr);
        let admin = free_addr();
        let config_path = dir.join(CONFIG_FILE);
        std::fs::write(&config_path, config.render(https, http, admin)).expect("write config");
        let listening: Vec<SocketAddr> = [Some(https), http, Some(admin)]
            .into_iter()
            .flatten()
            .collect();
        match InProcess::start(&config_path, clock.clone(), &listening).await {
            Ok(gateway) => return (Process::InProcess(gateway), https, http, admin),
            Err(NotStarted::Refused(why)) => panic!("the in-process gateway did not start: {why}"),
            Err(NotStarted::NotListening(why)) => last = why,
        }
    }
    panic!("the in-process gateway could not start in 3 tries: {last}");
}

async fn wait_json_lines(path: &Path, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let found = maybe_until(Duration::from_secs(5), Duration::from_millis(100), || {
        let lines = json_lines(path);
        let ok = done(&lines);
        async move { ok.then_some(lines) }
    })
    .await;
    found.unwrap_or_else(|| {
        panic!(
            "gave up after 5 s waiting for {what} in {}; it holds:\n{}",
            path.display(),
            std::fs::read_to_string(path).unwrap_or_else(|e| format!("({e})"))
        )
    })
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let died = self.died().is_some();
        if std::thread::panicking() || died {
            eprintln!(
                "===== gateway in {} =====\n{}",
                self.dir.path().display(),
                tail(&self.logs(), 200)
            );
        }
        self.kill();
        if died && !self.stopped && !std::thread::panicking() {
            panic!("the gateway process died during the test (see its logs above)");
        }
    }
}

fn read_logs(dir: &Path) -> String {
    let out = std::fs::read_to_string(dir.join("stdout.log")).unwrap_or_default();
    let err = std::fs::read_to_string(dir.join("stderr.log")).unwrap_or_default();
    format!("--- stdout ---\n{out}\n--- stderr ---\n{err}")
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Complete lines (ending in a newline) of a JSON-lines file, each parsed.
pub fn json_lines(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let complete = match text.rfind('\n') {
        Some(end) => &text[..end],
        None => "",
    };
    complete
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| {
                panic!("{} has a line that is not JSON ({e}): {l}", path.display())
            })
        })
        .collect()
}
