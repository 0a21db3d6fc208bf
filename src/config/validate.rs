//! From the file's shape to the validated model. Collects every problem with
//! its key path (like Authelia's validator) instead of stopping at the first.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::defaults;
use super::file::{self, FileConfig};
use super::locate::Locations;
use super::model::*;
use super::types::Localized;
use super::Problem;

// The bounds checked below, named once for the checker's messages and for
// the reference (`file.rs` puts them in the schema).

/// `login.user_failures` and `login.ip_failures`: NIST SP 800-63B allows
/// no more than 100 consecutive failures.
pub(super) const FAILURES: std::ops::RangeInclusive<u32> = 1..=100;
/// `server.threads`.
pub(super) const THREADS: std::ops::RangeInclusive<usize> = 1..=256;
/// `codes.length`: 4 characters are ≈ 20 bits, 12 are more than anyone types.
pub(super) const CODE_LENGTH: std::ops::RangeInclusive<usize> = 4..=12;
/// `state_timeout`: longer than this and a login page would hang instead
/// of saying the service is unavailable.
pub(super) const STATE_TIMEOUT_MAX: std::time::Duration = std::time::Duration::from_secs(60);

pub(super) struct Checker<'a> {
    file: &'a Path,
    base: PathBuf,
    locations: &'a Locations,
    problems: Vec<Problem>,
    warnings: Vec<Problem>,
}

impl Checker<'_> {
    /// Something allowed but probably not meant (check-config prints it,
    /// the gateway logs it; the configuration still loads).
    pub(super) fn warn(&mut self, key: &str, message: impl Into<String>) {
        self.warnings.push(Problem::new(
            self.file,
            self.locations.find(key),
            key,
            message.into(),
        ));
    }

    pub(super) fn problem(&mut self, key: &str, message: impl Into<String>) {
        self.problems.push(Problem::new(
            self.file,
            self.locations.find(key),
            key,
            message.into(),
        ));
    }

    /// A path relative to the config file's directory.
    pub(super) fn path(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        }
    }

    /// A path that must name a readable file.
    pub(super) fn existing_file(&mut self, key: &str, p: &str) -> PathBuf {
        let path = self.path(p);
        match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => {}
            Ok(_) => self.problem(key, format!("{} is not a file", path.display())),
            Err(e) => self.problem(key, format!("cannot read {}: {e}", path.display())),
        }
        path
    }

    pub(super) fn host(&mut self, key: &str, host: &str) -> String {
        let h = host.trim().trim_end_matches('.').to_ascii_lowercase();
        let valid = !h.is_empty()
            && h.len() <= 253
            && h.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if !valid {
            self.problem(
                key,
                format!("{host:?} is not a host name (like app.example.org)"),
            );
        }
        h
    }

    pub(super) fn colour(&mut self, key: &str, value: Option<&String>, default: &str) -> String {
        match value {
            None => default.to_owned(),
            Some(v)
                if v.len() == 7
                    && v.starts_with('#')
                    && v[1..].bytes().all(|b| b.is_ascii_hexdigit()) =>
            {
                v.to_ascii_lowercase()
            }
            Some(v) => {
                self.problem(key, format!("{v:?} is not a colour; write it as #rrggbb"));
                default.to_owned()
            }
        }
    }
}

/// Validate `f`, read from `path`.
pub fn validate(path: &Path, f: FileConfig, locations: &Locations) -> Result<Config, Vec<Problem>> {
    let base = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let mut c = Checker {
        file: path,
        base,
        locations,
        problems: Vec::new(),
        warnings: Vec::new(),
    };

    if f.tls.certificates.is_empty() {
        c.problem("tls.certificates", "at least one certificate is needed");
    }
    let mut certificates = Vec::new();
    for (i, pair) in f.tls.certificates.iter().enumerate() {
        let before = c.problems.len();
        let files = CertFiles {
            cert: c.existing_file(&format!("tls.certificates[{i}].cert"), &pair.cert),
            key: c.existing_file(&format!("tls.certificates[{i}].key"), &pair.key),
        };
        if c.problems.len() == before {
            if let Err(e) = crate::tls::load_pair(&files.cert, &files.key) {
                c.problem(&format!("tls.certificates[{i}]"), e.to_string());
            }
        }
        certificates.push(files);
    }
    let mut hsts = format!("max-age={}", f.tls.hsts_max_age.0.as_secs());
    if f.tls.hsts_include_subdomains {
        hsts.push_str("; includeSubDomains");
    }

    let portal_host = c.host("portal.host", &f.portal.host);
    let branding = branding(&mut c, &f.branding);
    super::contrast::check(&mut c, &branding);
    let templates_dir = f.pages.templates.as_ref().map(|t| {
        let p = c.path(t);
        if !p.is_dir() {
            c.problem(
                "pages.templates",
                format!("{} is not a directory", p.display()),
            );
        }
        p
    });

    let zone_name = f.pages.time_zone.as_deref().unwrap_or(defaults::TIME_ZONE);
    let time_zone = jiff::tz::TimeZone::get(zone_name).unwrap_or_else(|_| {
        c.problem(
            "pages.time_zone",
            format!(
                "{zone_name:?} is not an IANA time zone like {}",
                defaults::TIME_ZONE
            ),
        );
        jiff::tz::TimeZone::UTC
    });
    let idle_timeout = f.sessions.idle_timeout.0;
    let max_lifetime = f.sessions.max_lifetime.0;
    if idle_timeout.is_zero() {
        c.problem("sessions.idle_timeout", "must be longer than 0s");
    }
    if max_lifetime < idle_timeout {
        c.problem(
            "sessions.max_lifetime",
            "must not be shorter than sessions.idle_timeout",
        );
    }
    let secret_key_file = c.existing_file("secret_key_file", &f.secret_key_file);
    if let Ok(m) = std::fs::metadata(&secret_key_file) {
        if m.len() < 32 {
            c.problem(
                "secret_key_file",
                format!(
                    "{} holds {} bytes; at least 32 random bytes are needed",
                    secret_key_file.display(),
                    m.len()
                ),
            );
        }
    }

    let login = LoginLimits {
        user_failures: f.login.user_failures,
        ip_failures: f.login.ip_failures,
        window: f.login.window.0,
        lockout: f.login.lockout.0,
        basic_auth_cache: f.login.basic_auth_cache.0,
        max_concurrent_hashes: f.login.max_concurrent_hashes,
    };
    for (key, v) in [
        ("login.user_failures", login.user_failures),
        ("login.ip_failures", login.ip_failures),
    ] {
        if !FAILURES.contains(&v) {
            c.problem(
                key,
                format!(
                    "{v} is out of range; use {} to {}",
                    FAILURES.start(),
                    FAILURES.end()
                ),
            );
        }
    }
    if login.max_concurrent_hashes == 0 {
        c.problem("login.max_concurrent_hashes", "must be at least 1");
    }
    let mut server = ServerTuning {
        threads: f.server.threads,
        grace_period: f.server.grace_period.0,
        graceful_shutdown_timeout: f.server.graceful_shutdown_timeout.0,
        upstream_keepalive_pool_size: f.server.upstream_keepalive_pool_size,
        upgrade_socket: PathBuf::new(),
        pid_file: PathBuf::new(),
    };
    if !THREADS.contains(&server.threads) {
        c.problem(
            "server.threads",
            format!("must be between {} and {}", THREADS.start(), THREADS.end()),
        );
    }

    let realms = realms(&mut c, &f.realms);
    let realm_ids: Vec<&str> = realms.iter().map(|r| r.id.as_str()).collect();
    let assertion = super::assertion::settings(&mut c, &f.assertion, &portal_host);
    let services = super::services::services(
        &mut c,
        &f.services,
        &realm_ids,
        &portal_host,
        &assertion.header,
    );

    let log = |v: &Option<String>, c: &mut Checker| match v.as_deref() {
        None | Some(defaults::LOG) | Some("-") => LogTarget::Stdout,
        Some(p) => LogTarget::File(c.path(p)),
    };
    let access_log = log(&f.audit.access_log, &mut c);
    let auth_log = log(&f.audit.auth_log, &mut c);
    let storage = match f.storage.as_deref().map(str::trim) {
        Some(url) if crate::storage::postgres::settings::is_postgres_url(url) => {
            match crate::storage::postgres::PgSettings::parse(url, &c.base) {
                Ok(pg) => Storage::Postgres(pg),
                Err(e) => {
                    c.problem("storage", e.to_string());
                    Storage::Sqlite(c.path(defaults::STORAGE))
                }
            }
        }
        other => Storage::Sqlite(c.path(other.unwrap_or(defaults::STORAGE))),
    };
    let state_url = match f.state.as_deref().map(str::trim) {
        None | Some(defaults::STATE) => None,
        Some(url) => match crate::state::redis::check_url(url) {
            Ok(()) => Some(url.to_owned()),
            Err(e) => {
                c.problem("state", e);
                None
            }
        },
    };
    let state_timeout = f.state_timeout.unwrap_or(defaults::STATE_TIMEOUT).0;
    if state_timeout.is_zero() || state_timeout > STATE_TIMEOUT_MAX {
        c.problem(
            "state_timeout",
            format!(
                "must be between 1ms and {}",
                super::types::Duration(STATE_TIMEOUT_MAX)
            ),
        );
    }
    let state_ca_file = f
        .state_ca_file
        .as_ref()
        .map(|p| c.existing_file("state_ca_file", p));
    if state_ca_file.is_some()
        && !state_url
            .as_deref()
            .is_some_and(|u| u.starts_with("rediss"))
    {
        c.problem(
            "state_ca_file",
            "is only used with state: rediss://… (TLS); without TLS nothing is verified",
        );
    }
    let state_dir = match (&f.state_dir, &storage) {
        (Some(dir), _) => c.path(dir),
        (None, Storage::Sqlite(file)) => file.parent().map(Path::to_path_buf).unwrap_or_default(),
        (None, Storage::Postgres(_)) => c.base.clone(),
    };
    server.upgrade_socket = match &f.server.upgrade_socket {
        Some(p) => c.path(p),
        None => state_dir.join(defaults::UPGRADE_SOCKET),
    };
    // sockaddr_un holds 108 bytes with the terminating NUL.
    if server.upgrade_socket.as_os_str().len() > 107 {
        c.problem(
            "server.upgrade_socket",
            format!(
                "{} is longer than a Unix socket path may be (107 bytes); choose a shorter path",
                server.upgrade_socket.display()
            ),
        );
    }
    server.pid_file = match &f.server.pid_file {
        Some(p) => c.path(p),
        None => state_dir.join(defaults::PID_FILE),
    };
    let admin_addr = match f.listen.admin.as_deref().map(str::trim) {
        None => Some(defaults::ADMIN),
        Some("off") | Some("none") | Some("false") => None,
        Some(a) => match a.parse::<SocketAddr>() {
            Ok(addr) if Some(addr) == Some(f.listen.https) || Some(addr) == f.listen.http => {
                c.problem(
                    "listen.admin",
                    format!("{a} is already the https or http listener"),
                );
                None
            }
            Ok(addr) if !addr.ip().is_loopback() && !f.listen.admin_insecure_plain_http => {
                c.problem(
                    "listen.admin",
                    format!(
                        "{a} is not a loopback address, and the admin listener speaks plain HTTP: \
                         its bearer token (which lists and revokes sessions) and the metrics \
                         would cross the network in clear text. Keep it on 127.0.0.1 or [::1] \
                         (reach it over SSH or a TLS proxy), or set \
                         listen.admin_insecure_plain_http: true to accept that risk"
                    ),
                );
                None
            }
            Ok(addr) => Some(addr),
            Err(_) => {
                c.problem(
                    "listen.admin",
                    format!(
                        "{a:?} is not an address like {} (or `off`)",
                        defaults::ADMIN
                    ),
                );
                None
            }
        },
    };
    let chain_head = match &f.audit.chain_head {
        Some(p) => c.path(p),
        None => state_dir.join(defaults::CHAIN_HEAD),
    };
    let gateway =
        crate::audit::gateway::from_config(f.audit.gateway.as_deref()).unwrap_or_else(|message| {
            c.problem("audit.gateway", message);
            String::new()
        });
    let codes = CodeSettings {
        rules: crate::factors::code::CodeRules {
            length: f.codes.length,
            validity: f.codes.validity.0,
            max_tries: f.codes.max_tries,
            resend_after: f.codes.resend_after.0,
            per_user_per_hour: f.codes.per_user_per_hour,
            per_ip_per_hour: f.codes.per_ip_per_hour,
        },
        issuer: f
            .codes
            .issuer
            .clone()
            .unwrap_or_else(|| portal_host.clone()),
        default_country: f.codes.default_country.clone(),
    };
    let cc = &codes.default_country;
    if !(cc.starts_with('+')
        && (2..=4).contains(&cc.len())
        && cc[1..].bytes().all(|b| b.is_ascii_digit()))
    {
        c.problem(
            "codes.default_country",
            format!("{cc:?} is not a country calling code like +46"),
        );
    }
    if !CODE_LENGTH.contains(&codes.length) {
        c.problem(
            "codes.length",
            format!(
                "use {} to {} characters (6 gives 30 bits)",
                CODE_LENGTH.start(),
                CODE_LENGTH.end()
            ),
        );
    }
    if codes.max_tries == 0 || codes.per_user_per_hour == 0 || codes.per_ip_per_hour == 0 {
        c.problem(
            "codes",
            "max_tries and the hourly budgets must be at least 1",
        );
    }
    let notify = match crate::notify::config::validate(&f.notify, &c.base.clone()) {
        Ok(n) => Some(n),
        Err(list) => {
            for (key, message) in list {
                c.problem(&format!("notify.{key}"), message);
            }
            None
        }
    };

    let request_limits = crate::request::headers::Limits {
        header_bytes: f.limits.header_bytes,
        header_fields: f.limits.header_fields,
    };
    let min = crate::request::headers::Limits::MIN;
    if request_limits.header_bytes < min.header_bytes
        || request_limits.header_fields < min.header_fields
    {
        c.problem(
            "limits",
            format!(
                "header_bytes must be at least {} and header_fields at least {}: browsers send 1–8 KiB in 10–30 fields",
                min.header_bytes, min.header_fields
            ),
        );
    }
    let passkey_rp_id = super::passkeys::rp_id(&mut c, f.passkeys.rp_id.as_deref(), &portal_host);
    if f.listen.proxy_protocol && f.trusted_proxies.is_empty() {
        c.problem(
            "listen.proxy_protocol",
            "needs trusted_proxies: only those peers may send a PROXY header, and nobody could connect",
        );
    }

    let Some(notify) = notify.filter(|_| c.problems.is_empty()) else {
        return Err(c.problems);
    };
    Ok(Config {
        source: path.to_path_buf(),
        https_addr: f.listen.https,
        http_addr: f.listen.http,
        admin_addr,
        certificates,
        hsts,
        portal_host,
        branding,
        templates_dir,
        default_lang: f.pages.default_language.unwrap_or_default(),
        time_zone,
        trusted_proxies: f.trusted_proxies,
        client_header: f.client_address.header,
        proxy_protocol: f.listen.proxy_protocol,
        idle_timeout,
        max_lifetime,
        secret_key_file,
        login,
        server,
        realms,
        services,
        access_log,
        auth_log,
        chain_head,
        gateway,
        storage,
        state_dir,
        state_url,
        state_timeout,
        state_ca_file,
        codes,
        notify,
        request_limits,
        passkey_rp_id,
        assertion,
        warnings: c.warnings,
    })
}

fn branding(c: &mut Checker, b: &file::Branding) -> Branding {
    let logo = b.logo.as_ref().map(|l| c.existing_file("branding.logo", l));
    Branding {
        title: b.title.clone().unwrap_or_else(defaults::title),
        organisation: b.organisation.clone().unwrap_or_default(),
        logo,
        primary: c.colour(
            "branding.colors.primary",
            b.colors.primary.as_ref(),
            defaults::PRIMARY,
        ),
        background: c.colour(
            "branding.colors.background",
            b.colors.background.as_ref(),
            defaults::BACKGROUND,
        ),
        on_primary: c.colour(
            "branding.colors.on_primary",
            b.colors.on_primary.as_ref(),
            defaults::ON_PRIMARY,
        ),
        support: b.support.clone(),
    }
}

fn realms(c: &mut Checker, list: &[file::Realm]) -> Vec<Arc<Realm>> {
    if list.is_empty() {
        c.problem("realms", "at least one realm is needed");
    }
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (i, r) in list.iter().enumerate() {
        let key = format!("realms[{i}]");
        if r.id.is_empty()
            || !r
                .id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            c.problem(
                &format!("{key}.id"),
                format!("{:?}: use letters, digits, - and _", r.id),
            );
        }
        if !seen.insert(r.id.clone()) {
            c.problem(
                &format!("{key}.id"),
                format!("realm {:?} is defined twice", r.id),
            );
        }
        let directory = match (&r.directory.file, &r.directory.ldap) {
            (Some(f), None) => {
                DirectoryConfig::File(c.existing_file(&format!("{key}.directory.file"), f))
            }
            (None, Some(l)) => {
                // Check it now (files, URL, filter) so check-config catches it;
                // connecting waits for the first login.
                if let Err(list) = crate::directory::ldap::LdapDirectory::new(l, &c.base) {
                    for (k, m) in list {
                        c.problem(&format!("{key}.directory.ldap.{k}"), m);
                    }
                }
                DirectoryConfig::Ldap {
                    config: Box::new(l.clone()),
                    base_dir: c.base.clone(),
                }
            }
            _ => {
                c.problem(
                    &format!("{key}.directory"),
                    "name one directory: `file: users.yaml` or `ldap: {…}`",
                );
                DirectoryConfig::File(PathBuf::new())
            }
        };
        let mut methods = |which: &str, names: &[String]| {
            let mut list = Vec::new();
            for (j, n) in names.iter().enumerate() {
                match crate::session::Method::parse(n) {
                    Some(m) if !list.contains(&m) => list.push(m),
                    Some(_) => c.problem(
                        &format!("{key}.methods.{which}[{j}]"),
                        format!("{n} is listed twice"),
                    ),
                    None => c.problem(
                        &format!("{key}.methods.{which}[{j}]"),
                        format!("{n:?} is not a method; use password, passkey, sms, email, totp or token"),
                    ),
                }
            }
            list
        };
        let internal_methods = methods("internal", &r.methods.internal);
        let external_methods = methods("external", &r.methods.external);
        if r.methods.passkey_alone {
            let passkey = crate::session::Method::Passkey;
            if !internal_methods.contains(&passkey) && !external_methods.contains(&passkey) {
                c.problem(
                    &format!("{key}.methods.passkey_alone"),
                    "needs passkey in methods.internal or methods.external: that is where users register the keys they log in with",
                );
            }
            if let Some(l) = &r.directory.ldap {
                if l.enabled_filter.is_none() {
                    c.problem(
                        &format!("{key}.methods.passkey_alone"),
                        "needs directory.ldap.enabled_filter, so that a disabled account cannot log in without its password; for Active Directory: (!(userAccountControl:1.2.840.113556.1.4.803:=2))",
                    );
                }
            }
        }
        out.push(Arc::new(Realm {
            passkey_alone: r.methods.passkey_alone,
            help: r.help.clone(),
            internal_methods,
            external_methods,
            id: r.id.clone(),
            title: r
                .title
                .clone()
                .unwrap_or_else(|| Localized::Plain(r.id.clone())),
            internal_networks: r.internal_networks.iter().map(|n| n.trunc()).collect(),
            directory,
        }));
    }
    out
}
