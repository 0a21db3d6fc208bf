//! The validated configuration the program runs on. Built only by
//! [`super::load`]; every value here has been checked.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;

use super::types::{Lang, Localized};
use crate::policy::Policy;

/// The whole validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from (for messages and relative paths).
    pub source: PathBuf,
    /// HTTPS listener.
    pub https_addr: SocketAddr,
    /// Optional redirect-only HTTP listener.
    pub http_addr: Option<SocketAddr>,
    /// Admin listener (health, readiness, metrics, sessions API), if on.
    pub admin_addr: Option<SocketAddr>,
    /// Certificates; the first is the default when SNI matches none.
    pub certificates: Vec<CertFiles>,
    /// Ready-made `Strict-Transport-Security` value.
    pub hsts: String,
    /// Portal host name, lower case.
    pub portal_host: String,
    /// Branding for pages.
    pub branding: Branding,
    /// Template directory, if any (else the built-in copies).
    pub templates_dir: Option<PathBuf>,
    /// Language when the browser states none we have.
    pub default_lang: Lang,
    /// Zone for times shown on pages.
    pub time_zone: jiff::tz::TimeZone,
    /// Peers whose forwarding header or PROXY protocol header is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// The one header a trusted proxy's client address is read from.
    pub client_header: crate::net::ForwardedHeader,
    /// The HTTPS listener reads a PROXY protocol header first.
    pub proxy_protocol: bool,
    /// Session idle timeout.
    pub idle_timeout: Duration,
    /// Session absolute lifetime.
    pub max_lifetime: Duration,
    /// Secret key file.
    pub secret_key_file: PathBuf,
    /// Throttling and password checking.
    pub login: LoginLimits,
    /// pingora tuning.
    pub server: ServerTuning,
    /// Realms in file order.
    pub realms: Vec<Arc<Realm>>,
    /// Services in file order.
    pub services: Vec<Arc<Service>>,
    /// Access log destination.
    pub access_log: LogTarget,
    /// Auth log destination.
    pub auth_log: LogTarget,
    /// The auth log's hash-chain head file.
    pub chain_head: PathBuf,
    /// This gateway's name (`audit.gateway`, default the host name): in every
    /// record, sealed into its chain and kept in its chain head.
    pub gateway: String,
    /// Where enrolments live (`storage:`).
    pub storage: Storage,
    /// This gateway's own files (pid file, upgrade socket, chain head) when
    /// not configured one by one: `state_dir`, or the SQLite file's directory.
    pub state_dir: PathBuf,
    /// The shared state's URL (`None`: in memory). May hold a password:
    /// never log it.
    pub state_url: Option<String>,
    /// Longest wait for one shared-state command.
    pub state_timeout: std::time::Duration,
    /// The only CA trusted for `rediss://` (`None`: the system's).
    pub state_ca_file: Option<PathBuf>,
    /// One-time code rules.
    pub codes: CodeSettings,
    /// Code delivery.
    pub notify: crate::notify::config::NotifyConfig,
    /// What one request may carry.
    pub request_limits: crate::request::headers::Limits,
    /// The WebAuthn relying party id passkeys are bound to (`passkeys.rp_id`,
    /// default the portal host).
    pub passkey_rp_id: String,
    /// Signed identity assertions (`assertion:`).
    pub assertion: crate::assertion::Settings,
    /// What check-config warns about (brand colours below WCAG contrast);
    /// the gateway logs them at load.
    pub warnings: Vec<super::Problem>,
}

/// `codes:` as checked: the rules codes are issued by, and what pages need
/// besides. Derefs to the rules, so `codes.validity` reads as written.
#[derive(Debug, Clone)]
pub struct CodeSettings {
    /// What the code issuer enforces.
    pub rules: crate::factors::code::CodeRules,
    /// Issuer name in authenticator apps.
    pub issuer: String,
    /// Country code for numbers typed without one, like `+46`.
    pub default_country: String,
}

impl std::ops::Deref for CodeSettings {
    type Target = crate::factors::code::CodeRules;
    fn deref(&self) -> &Self::Target {
        &self.rules
    }
}

impl Config {
    /// The realm with this id.
    pub fn realm(&self, id: &str) -> Option<&Arc<Realm>> {
        self.realms.iter().find(|r| r.id == id)
    }

    /// Whether `ip` is on the internal networks of the realm with this id
    /// (an unknown realm has none).
    pub fn is_internal_to(&self, realm: &str, ip: std::net::IpAddr) -> bool {
        self.realm(realm).is_some_and(|r| r.is_internal(ip))
    }
}

/// A certificate chain and key on disk.
#[derive(Debug, Clone)]
pub struct CertFiles {
    /// PEM chain.
    pub cert: PathBuf,
    /// PEM key.
    pub key: PathBuf,
}

/// Look and feel.
#[derive(Debug, Clone)]
pub struct Branding {
    /// Title per language.
    pub title: Localized,
    /// Organisation name for the footer.
    pub organisation: String,
    /// Logo file.
    pub logo: Option<PathBuf>,
    /// Primary colour `#rrggbb`.
    pub primary: String,
    /// Background colour.
    pub background: String,
    /// Text colour on primary.
    pub on_primary: String,
    /// Help-desk contact.
    pub support: Option<Localized>,
}

/// Login throttling and password checking limits.
#[derive(Debug, Clone)]
pub struct LoginLimits {
    /// Failures per user within `window` before lockout.
    pub user_failures: u32,
    /// Failures per IP within `window` before block.
    pub ip_failures: u32,
    /// Counting window.
    pub window: Duration,
    /// Lockout length.
    pub lockout: Duration,
    /// How long verified Basic credentials are cached.
    pub basic_auth_cache: Duration,
    /// Concurrent argon2 computations.
    pub max_concurrent_hashes: usize,
}

/// pingora tuning.
#[derive(Debug, Clone)]
pub struct ServerTuning {
    /// Proxy worker threads.
    pub threads: usize,
    /// SIGTERM grace period.
    pub grace_period: Duration,
    /// Shutdown timeout after the grace period.
    pub graceful_shutdown_timeout: Duration,
    /// Upstream keep-alive pool size.
    pub upstream_keepalive_pool_size: usize,
    /// Where a new binary receives the listening sockets (`serve --upgrade`).
    /// Its directory must be private: pingora makes the socket itself 0666.
    pub upgrade_socket: PathBuf,
    /// The serving process's id, for `portvakt upgrade` and supervisors.
    pub pid_file: PathBuf,
}

/// A user population.
#[derive(Debug)]
pub struct Realm {
    /// Identifier.
    pub id: String,
    /// Display name.
    pub title: Localized,
    /// Internal networks.
    pub internal_networks: Vec<IpNet>,
    /// Directory settings.
    pub directory: DirectoryConfig,
    /// Help text on the landing page (which group to pick).
    pub help: Option<Localized>,
    /// Methods offered on the internal networks (password first).
    pub internal_methods: Vec<crate::session::Method>,
    /// Methods offered elsewhere.
    pub external_methods: Vec<crate::session::Method>,
    /// A passkey with user verification may be the whole login
    /// (`methods.passkey_alone`).
    pub passkey_alone: bool,
}

impl Realm {
    /// The second factors offered to a client that is (or is not) internal.
    pub fn second_factors(
        &self,
        internal: bool,
    ) -> impl Iterator<Item = crate::session::Method> + '_ {
        let list = if internal {
            &self.internal_methods
        } else {
            &self.external_methods
        };
        list.iter()
            .copied()
            .filter(|m| *m != crate::session::Method::Password)
    }

    /// Whether `ip` is on one of this realm's internal networks.
    pub fn is_internal(&self, ip: std::net::IpAddr) -> bool {
        crate::net::in_networks(&self.internal_networks, ip)
    }
}

/// Where a realm's users come from.
#[derive(Debug, Clone)]
pub enum DirectoryConfig {
    /// A `users.yaml` file.
    File(PathBuf),
    /// LDAP / Active Directory; relative paths resolve against `base_dir`.
    Ldap {
        /// Settings as written.
        config: Box<crate::directory::ldap::LdapConfig>,
        /// The config file's directory.
        base_dir: PathBuf,
    },
}

/// A published upstream.
#[derive(Debug)]
pub struct Service {
    /// Position in the file, for stable ordering and messages.
    pub index: usize,
    /// Display name.
    pub name: String,
    /// Host, lower case.
    pub host: String,
    /// Path prefix starting and (unless `/`) not ending with `/`.
    pub path: String,
    /// Upstream connection details.
    pub upstream: Upstream,
    /// Realm ids allowed; empty means all.
    pub realms: Vec<String>,
    /// Access policy.
    pub policy: Policy,
    /// Group condition.
    pub groups: Vec<String>,
    /// `true`: all groups needed; `false`: any one.
    pub groups_all: bool,
    /// Accept Basic credentials from internal clients.
    pub basic_auth: bool,
    /// Pass the client's Host header.
    pub preserve_host: bool,
    /// Identity header names.
    pub headers: IdentityHeaderNames,
    /// Client networks allowed (empty: any).
    pub networks: Vec<IpNet>,
    /// Methods of which the login must have used one (empty: any).
    pub methods: Vec<crate::session::Method>,
    /// Opening hours (none: always open).
    pub hours: Option<crate::policy::hours::Hours>,
    /// Description on the portal.
    pub description: Option<Localized>,
    /// Icon file shown on the portal.
    pub icon: Option<PathBuf>,
    /// Accept `%2F` in paths (see the file's `keep_encoded_slashes`).
    pub keep_encoded_slashes: bool,
    /// Forward headers with `_` in their names.
    pub keep_underscore_headers: bool,
    /// Send a signed identity token upstream.
    pub assertion: bool,
    /// The token's `aud`: `https://host/path` (see [`crate::assertion::audience`]).
    pub assertion_audience: String,
}

/// How to reach a service's upstream.
#[derive(Debug)]
pub struct Upstream {
    /// `host:port` as written (for logs).
    pub address: String,
    /// Resolved at (re)load time; a name that stops resolving keeps the last
    /// good address until the next reload.
    pub socket: std::net::SocketAddr,
    /// Host part of the URL (for the Host header when not preserved, and SNI).
    pub host: String,
    /// Whether to speak TLS.
    pub tls: bool,
    /// SNI / verified name.
    pub sni: String,
    /// Verify the certificate.
    pub verify: bool,
    /// CA certificates (DER) for this upstream, if configured.
    pub ca_der: Option<Vec<Vec<u8>>>,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Read timeout.
    pub read_timeout: Duration,
}

/// Header names used to pass identity upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityHeaderNames {
    /// User name.
    pub user: http::HeaderName,
    /// Comma-separated groups.
    pub groups: http::HeaderName,
    /// E-mail address.
    pub email: http::HeaderName,
    /// Display name.
    pub name: http::HeaderName,
    /// Realm id.
    pub realm: http::HeaderName,
    /// `1` or `2`.
    pub auth_level: http::HeaderName,
    /// Comma-separated methods.
    pub auth_methods: http::HeaderName,
    /// The same seven names in title case as shared bytes, in [`Self::all`]
    /// order, for inserting: pingora copies and re-parses a `HeaderName` on
    /// every insert but only clones these (measured: ~2 k instructions per
    /// header per request).
    pub wire: [bytes::Bytes; 7],
    /// Every name a client must not send on this service: the defaults and,
    /// when renamed, this service's own, each once. Checked on every request.
    pub strip: Vec<http::HeaderName>,
}

impl IdentityHeaderNames {
    /// Recompute [`Self::wire`] and [`Self::strip`] after the names changed.
    pub fn with_wire(mut self) -> Self {
        self.wire = self
            .all()
            .map(|n| bytes::Bytes::from(title_case(n.as_str())));
        let mut strip: Vec<http::HeaderName> = Self::DEFAULTS
            .iter()
            .map(|(_, n)| http::HeaderName::from_static(n))
            .collect();
        // The assertion header under its default name, on every service:
        // whether or not this one sends a token, a client's must never
        // pass as ours. A renamed one is added by the service validation.
        strip.push(http::HeaderName::from_static(
            crate::assertion::DEFAULT_HEADER,
        ));
        for name in self.all() {
            if !strip.contains(name) {
                strip.push(name.clone());
            }
        }
        self.strip = strip;
        self
    }

    /// The keys allowed under `identity_headers:` with their default names.
    pub const DEFAULTS: [(&'static str, &'static str); 7] = [
        ("user", "remote-user"),
        ("groups", "remote-groups"),
        ("email", "remote-email"),
        ("name", "remote-name"),
        ("realm", "remote-realm"),
        ("auth_level", "remote-auth-level"),
        ("auth_methods", "remote-auth-methods"),
    ];

    /// The default names by key as a config file spells them
    /// (`user: Remote-User`), for the reference.
    pub fn by_key() -> BTreeMap<&'static str, String> {
        Self::DEFAULTS
            .iter()
            .map(|(k, n)| (*k, title_case(n)))
            .collect()
    }

    /// All names, for stripping.
    pub fn all(&self) -> [&http::HeaderName; 7] {
        [
            &self.user,
            &self.groups,
            &self.email,
            &self.name,
            &self.realm,
            &self.auth_level,
            &self.auth_methods,
        ]
    }
}

/// `remote-auth-level` → `Remote-Auth-Level`.
pub(crate) fn title_case(name: &str) -> String {
    let mut up = true;
    name.chars()
        .map(|c| {
            let out = if up { c.to_ascii_uppercase() } else { c };
            up = c == '-';
            out
        })
        .collect()
}

impl Default for IdentityHeaderNames {
    fn default() -> Self {
        let h = http::HeaderName::from_static;
        IdentityHeaderNames {
            wire: Default::default(),
            strip: Vec::new(),
            user: h("remote-user"),
            groups: h("remote-groups"),
            email: h("remote-email"),
            name: h("remote-name"),
            realm: h("remote-realm"),
            auth_level: h("remote-auth-level"),
            auth_methods: h("remote-auth-methods"),
        }
        .with_wire()
    }
}

/// Where a log goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogTarget {
    /// Standard output (journald).
    Stdout,
    /// Appended to a file.
    File(PathBuf),
}

/// The durable store of enrolments (`storage:` in the file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Storage {
    /// An embedded SQLite file: the default, for one gateway.
    Sqlite(PathBuf),
    /// A PostgreSQL database that several gateways share (`postgres://…`).
    Postgres(crate::storage::postgres::PgSettings),
}

impl std::fmt::Display for Storage {
    /// The file, or the URL without its password: for messages.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Storage::Sqlite(path) => write!(f, "{}", path.display()),
            Storage::Postgres(pg) => f.write_str(&pg.redacted()),
        }
    }
}
