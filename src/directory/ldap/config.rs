//! `realms[].directory.ldap:` — the shape users write ([`LdapConfig`]) and
//! its validation into the [`Settings`] the directory runs with. Files are
//! read and TLS is prepared here, once; nothing connects.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use schemars::JsonSchema;
use serde::Deserialize;

use super::syntax::{is_attribute_name, USERNAME_PLACEHOLDER};
use super::tls;
use crate::config::types::Duration;

/// An LDAP server or Active Directory as a realm's directory.
///
/// ```yaml
/// ldap:
///   url: ldaps://dc1.example.org
///   ca_file: certs/ad-ca.pem
///   bind_dn: CN=portvakt,OU=Service,DC=example,DC=org
///   bind_password_file: /etc/portvakt/ldap-password
///   base_dn: DC=example,DC=org
/// ```
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LdapConfig {
    /// `ldaps://host[:port]` or `ldap://host[:port]`. Plain `ldap://` needs
    /// `starttls: true` unless the server is on this machine (loopback),
    /// because passwords would otherwise cross the network in clear.
    pub url: String,
    /// Upgrade an `ldap://` connection with StartTLS before anything is sent.
    #[serde(default)]
    pub starttls: bool,
    /// PEM file with the CA certificate(s) that issued the server's
    /// certificate, relative to the config file; default the system roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Verify the server's certificate and name. Turn off only for a test
    /// lab: anyone on the path could then read every password.
    #[serde(default = "yes")]
    pub verify: bool,
    /// DN of the service account that searches for users.
    pub bind_dn: String,
    /// File holding the service account's password (a trailing newline is
    /// dropped), relative to the config file. Kept out of the config so the
    /// config can be shown and versioned.
    pub bind_password_file: PathBuf,
    /// Where users (and, with `nested_groups`, groups) are searched, subtree.
    pub base_dn: String,
    /// Search filter for one user; `{username}` is replaced by the login name,
    /// escaped (RFC 4515). The default is Active Directory's.
    #[serde(default = "default_user_filter")]
    pub user_filter: String,
    /// Filter an account must also match to count as enabled when no
    /// password is checked (a realm with `methods.passkey_alone`): the bind
    /// with a password is what refuses a disabled account otherwise, and a
    /// passkey login makes none. Required for such a realm. Active
    /// Directory: `(!(userAccountControl:1.2.840.113556.1.4.803:=2))`
    /// (the ACCOUNTDISABLE bit not set); OpenLDAP with ppolicy:
    /// `(!(pwdAccountLockedTime=*))`.
    #[serde(default)]
    pub enabled_filter: Option<String>,
    /// Attribute holding the login name, sent upstream as `Remote-User`.
    #[serde(default = "default_username_attribute")]
    pub username_attribute: String,
    /// Attribute holding the name shown on pages (`Remote-Name`).
    #[serde(default = "default_display_name_attribute")]
    pub display_name_attribute: String,
    /// Attribute holding the e-mail address.
    #[serde(default = "default_mail_attribute")]
    pub mail_attribute: String,
    /// Attribute on the user listing the DNs of their groups.
    #[serde(default = "default_group_attribute")]
    pub group_attribute: String,
    /// RDN attribute of a group DN used as the group's name (`cn`:
    /// `CN=staff,OU=Groups,…` is `staff`). Groups whose DN does not start
    /// with it are left out.
    #[serde(default = "default_group_name")]
    pub group_name: String,
    /// Also find groups the user is in through other groups, with Active
    /// Directory's matching rule `1.2.840.113556.1.4.1941` (one more search
    /// per login). AD only: OpenLDAP does not know the rule.
    #[serde(default)]
    pub nested_groups: bool,
    /// Limit for opening a connection, TLS included.
    #[serde(default = "five_seconds")]
    #[schemars(extend("x-limits" = "more than 0s"))]
    pub connect_timeout: Duration,
    /// Limit for each operation (bind, search) on an open connection.
    #[serde(default = "five_seconds")]
    #[schemars(extend("x-limits" = "more than 0s"))]
    pub timeout: Duration,
    /// Idle connections kept open for the next login, of each kind
    /// (service-account searches; user binds).
    #[serde(default = "default_pool_size")]
    #[schemars(range(min = 1, max = MAX_POOL))]
    pub pool_size: usize,
}

fn yes() -> bool {
    true
}
fn default_user_filter() -> String {
    "(&(objectClass=person)(sAMAccountName={username}))".into()
}
fn default_username_attribute() -> String {
    "sAMAccountName".into()
}
fn default_display_name_attribute() -> String {
    "displayName".into()
}
fn default_mail_attribute() -> String {
    "mail".into()
}
fn default_group_attribute() -> String {
    "memberOf".into()
}
fn default_group_name() -> String {
    "cn".into()
}
fn five_seconds() -> Duration {
    Duration::from_secs(5)
}
fn default_pool_size() -> usize {
    4
}

impl LdapConfig {
    /// A configuration with the four required settings and every default
    /// (what deserializing a YAML with only these keys gives).
    pub fn new(url: &str, bind_dn: &str, bind_password_file: &Path, base_dn: &str) -> LdapConfig {
        LdapConfig {
            url: url.into(),
            starttls: false,
            ca_file: None,
            verify: true,
            bind_dn: bind_dn.into(),
            bind_password_file: bind_password_file.into(),
            base_dn: base_dn.into(),
            user_filter: default_user_filter(),
            enabled_filter: None,
            username_attribute: default_username_attribute(),
            display_name_attribute: default_display_name_attribute(),
            mail_attribute: default_mail_attribute(),
            group_attribute: default_group_attribute(),
            group_name: default_group_name(),
            nested_groups: false,
            connect_timeout: five_seconds(),
            timeout: five_seconds(),
            pool_size: default_pool_size(),
        }
    }
}

/// The validated configuration: the fields of [`LdapConfig`] checked, files
/// read (the password), TLS prepared and durations unwrapped.
pub(super) struct Settings {
    /// As configured; ldap3 parses it again when connecting.
    pub url: String,
    pub starttls: bool,
    /// The TLS client configuration, for `ldaps://` and StartTLS.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub bind_dn: String,
    pub bind_password: String,
    pub base_dn: String,
    pub user_filter: String,
    pub enabled_filter: Option<String>,
    pub username_attribute: String,
    pub display_name_attribute: String,
    pub mail_attribute: String,
    pub group_attribute: String,
    pub group_name: String,
    pub nested_groups: bool,
    pub connect_timeout: std::time::Duration,
    pub timeout: std::time::Duration,
    pub pool_size: usize,
}

/// Largest `pool_size`: a gateway has no use for more idle connections,
/// and a typo should not open hundreds against a domain controller.
const MAX_POOL: usize = 64;

/// Check `c` and read its files (relative to `base_dir`). Every problem is
/// reported, as `(key under directory.ldap, message)`.
pub(super) fn validate(c: &LdapConfig, base_dir: &Path) -> Result<Settings, Vec<(String, String)>> {
    let mut problems: Vec<(String, String)> = Vec::new();
    let mut problem = |key: &str, msg: String| problems.push((key.to_owned(), msg));

    // `None` when the URL is wrong: TLS settings cannot be judged then.
    let tls_wanted = match check_url(&c.url, c.starttls) {
        Ok(tls) => Some(tls),
        Err(msg) => {
            problem("url", msg);
            None
        }
    };
    if c.ca_file.is_some() && tls_wanted == Some(false) {
        problem(
            "ca_file",
            "is used only with ldaps:// or starttls: true".into(),
        );
    }
    let tls = if tls_wanted == Some(true) {
        let ca = c.ca_file.as_ref().map(|p| base_dir.join(p));
        match tls::client_config(ca.as_deref(), c.verify) {
            Ok(cfg) => Some(cfg),
            Err(msg) => {
                problem("ca_file", msg);
                None
            }
        }
    } else {
        None
    };
    if !c.verify && tls_wanted == Some(true) {
        tracing::warn!(
            url = %c.url,
            "directory.ldap.verify is false: the LDAP server's certificate is not checked"
        );
    }

    for (key, value) in [("bind_dn", &c.bind_dn), ("base_dn", &c.base_dn)] {
        if value.trim().is_empty() {
            problem(key, "must not be empty".into());
        }
    }
    let bind_password = match read_password(&base_dir.join(&c.bind_password_file)) {
        Ok(pw) => pw,
        Err(msg) => {
            problem("bind_password_file", msg);
            String::new()
        }
    };

    if !c.user_filter.contains(USERNAME_PLACEHOLDER) {
        problem(
            "user_filter",
            format!("must contain {USERNAME_PLACEHOLDER}"),
        );
    } else if ldap3::parse_filter(c.user_filter.replace(USERNAME_PLACEHOLDER, "x")).is_err() {
        problem(
            "user_filter",
            "is not a valid LDAP filter (RFC 4515), e.g. (&(objectClass=person)(sAMAccountName={username}))"
                .into(),
        );
    }
    if let Some(f) = &c.enabled_filter {
        if f.contains(USERNAME_PLACEHOLDER) || ldap3::parse_filter(f).is_err() {
            problem(
                "enabled_filter",
                "is not a valid LDAP filter without {username} (RFC 4515), e.g. (!(userAccountControl:1.2.840.113556.1.4.803:=2))"
                    .into(),
            );
        }
    }
    for (key, value) in [
        ("username_attribute", &c.username_attribute),
        ("display_name_attribute", &c.display_name_attribute),
        ("mail_attribute", &c.mail_attribute),
        ("group_attribute", &c.group_attribute),
        ("group_name", &c.group_name),
    ] {
        if !is_attribute_name(value) {
            problem(key, format!("{value:?} is not an attribute name"));
        }
    }
    for (key, d) in [
        ("connect_timeout", c.connect_timeout),
        ("timeout", c.timeout),
    ] {
        if d.0.is_zero() {
            problem(key, "must be longer than zero".into());
        }
    }
    if !(1..=MAX_POOL).contains(&c.pool_size) {
        problem("pool_size", format!("must be between 1 and {MAX_POOL}"));
    }

    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Settings {
        url: c.url.clone(),
        starttls: c.starttls,
        tls,
        bind_dn: c.bind_dn.clone(),
        bind_password,
        base_dn: c.base_dn.clone(),
        user_filter: c.user_filter.clone(),
        enabled_filter: c.enabled_filter.clone(),
        username_attribute: c.username_attribute.clone(),
        display_name_attribute: c.display_name_attribute.clone(),
        mail_attribute: c.mail_attribute.clone(),
        group_attribute: c.group_attribute.clone(),
        group_name: c.group_name.clone(),
        nested_groups: c.nested_groups,
        connect_timeout: c.connect_timeout.0,
        timeout: c.timeout.0,
        pool_size: c.pool_size,
    })
}

/// Check the URL; returns whether the connection uses TLS.
fn check_url(text: &str, starttls: bool) -> Result<bool, String> {
    let url = url::Url::parse(text).map_err(|e| format!("{text:?} is not a URL: {e}"))?;
    let host = match url.host() {
        Some(h) if !url.host_str().unwrap_or("").is_empty() => h,
        _ => return Err(format!("{text:?} has no host")),
    };
    if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
        return Err("give only scheme, host and port; the base DN goes in base_dn".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not hold credentials; use bind_dn and bind_password_file".into());
    }
    match url.scheme() {
        "ldaps" if starttls => {
            Err("starttls is for ldap:// URLs; ldaps:// is TLS from the first byte".into())
        }
        "ldaps" => Ok(true),
        "ldap" if starttls => Ok(true),
        "ldap" if is_loopback(&host) => Ok(false),
        "ldap" => Err(
            "plain ldap:// would send passwords in clear text: use ldaps:// or starttls: true"
                .into(),
        ),
        other => Err(format!("scheme {other:?}: use ldaps:// or ldap://")),
    }
}

fn is_loopback(host: &url::Host<&str>) -> bool {
    match host {
        // `ldap:` is not a scheme the URL standard knows, so its hosts stay
        // text, IPv4 addresses included.
        url::Host::Domain(d) => {
            d.eq_ignore_ascii_case("localhost")
                || d.parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
    }
}

/// Read the service account's password: the file's text without its
/// trailing newline(s). An empty password is refused, because LDAP treats a
/// bind with an empty password as anonymous — and says it succeeded.
fn read_password(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let pw = text.trim_end_matches(['\n', '\r']);
    if pw.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(pw.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, LdapConfig) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pw"), "s3cret\r\n").unwrap();
        let c = LdapConfig::new(
            "ldap://127.0.0.1:3890",
            "cn=portvakt,ou=system,dc=example,dc=org",
            Path::new("pw"),
            "dc=example,dc=org",
        );
        (dir, c)
    }

    fn keys(r: Result<Settings, Vec<(String, String)>>) -> Vec<String> {
        match r {
            Ok(_) => vec![],
            Err(p) => p.into_iter().map(|(k, _)| k).collect(),
        }
    }

    #[test]
    fn accepts_a_minimal_config_and_reads_the_password() {
        let (dir, c) = setup();
        let s = validate(&c, dir.path())
            .map_err(|p| format!("{p:?}"))
            .unwrap();
        assert_eq!(s.bind_password, "s3cret");
        assert!(s.tls.is_none());
        assert_eq!(s.timeout, std::time::Duration::from_secs(5));
        assert_eq!(s.pool_size, 4);
    }

    #[test]
    fn deserializes_with_defaults_and_refuses_unknown_keys() {
        let yaml = "url: ldaps://dc1.example.org\nbind_dn: cn=x\nbind_password_file: pw\nbase_dn: dc=x\ntimeout: 1s\n";
        let c: LdapConfig = serde_norway::from_str(yaml).unwrap();
        assert_eq!(
            c.user_filter,
            "(&(objectClass=person)(sAMAccountName={username}))"
        );
        assert_eq!(c.group_attribute, "memberOf");
        assert!(c.verify && !c.starttls && !c.nested_groups);
        assert_eq!(c.timeout, Duration::from_secs(1));
        assert_eq!(c.connect_timeout, Duration::from_secs(5));
        let err = serde_norway::from_str::<LdapConfig>(&format!("{yaml}bogus: 1\n")).unwrap_err();
        assert!(err.to_string().contains("bogus"), "{err}");
    }

    #[test]
    fn checks_urls() {
        assert_eq!(check_url("ldaps://dc1.example.org", false), Ok(true));
        assert_eq!(check_url("ldap://dc1.example.org:389", true), Ok(true));
        assert_eq!(check_url("ldap://localhost:3890", false), Ok(false));
        assert_eq!(check_url("ldap://127.0.0.1:389", false), Ok(false));
        assert_eq!(check_url("ldap://[::1]:3890/", false), Ok(false));
        for bad in [
            ("ldap://dc1.example.org", false),
            ("ldaps://dc1.example.org", true),
            ("http://dc1.example.org", false),
            ("ldaps://dc1.example.org/dc=example,dc=org", false),
            ("ldaps://user:pw@dc1.example.org", false),
            ("dc1.example.org", false),
            ("ldaps://", false),
        ] {
            assert!(check_url(bad.0, bad.1).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn reports_every_problem_with_its_key() {
        let (dir, mut c) = setup();
        c.url = "ftp://x".into();
        c.bind_password_file = "missing".into();
        c.user_filter = "(uid=alice)".into();
        c.mail_attribute = "e mail".into();
        c.timeout = Duration::from_secs(0);
        c.pool_size = 0;
        c.base_dn = " ".into();
        let got = keys(validate(&c, dir.path()));
        for want in [
            "url",
            "bind_password_file",
            "user_filter",
            "mail_attribute",
            "timeout",
            "pool_size",
            "base_dn",
        ] {
            assert!(got.iter().any(|k| k == want), "{want} missing in {got:?}");
        }

        let (dir, mut c) = setup();
        c.user_filter = "(uid={username}".into();
        assert_eq!(keys(validate(&c, dir.path())), ["user_filter"]);
    }

    #[test]
    fn refuses_an_empty_service_password_and_stray_ca_files() {
        let (dir, mut c) = setup();
        std::fs::write(dir.path().join("pw"), "\n").unwrap();
        c.ca_file = Some("ca.pem".into());
        assert_eq!(
            keys(validate(&c, dir.path())),
            ["ca_file", "bind_password_file"]
        );
    }

    #[test]
    fn reads_the_ca_file_for_tls() {
        let (dir, mut c) = setup();
        c.starttls = true;
        c.ca_file = Some("ca.pem".into());
        assert_eq!(keys(validate(&c, dir.path())), ["ca_file"]);
        std::fs::write(dir.path().join("ca.pem"), "not a certificate\n").unwrap();
        assert_eq!(keys(validate(&c, dir.path())), ["ca_file"]);
        let ca = rcgen::generate_simple_self_signed(vec!["ca.test".into()]).unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.cert.pem()).unwrap();
        assert!(validate(&c, dir.path()).is_ok_and(|s| s.tls.is_some()));
    }
}
