//! Sessions: server-side records keyed by the hash of a random id that only
//! the browser's cookie carries.
//!
//! - [`store`]: the `SessionStore` trait (memory now, Redis later).
//! - [`memory`]: the in-process store.
//! - [`handoff`]: single-use codes that carry a login from the portal host to
//!   a service host, so every host gets its own host-only cookie.
//! - [`cookie`]: cookie names and attributes.

pub mod cookie;
pub mod handoff;
pub mod memory;
pub mod store;

use std::sync::atomic::{AtomicU64, Ordering};

use rand::RngCore;
use sha2::{Digest, Sha256};

pub use store::SessionStore;

/// The secret session id as it travels in the cookie (256 bits, base64url).
#[derive(Clone, PartialEq, Eq)]
pub struct SessionId(String);

impl std::fmt::Debug for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret itself.
        write!(f, "SessionId({})", self.key().short())
    }
}

impl SessionId {
    /// A fresh id from the OS CSPRNG.
    pub fn generate() -> SessionId {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        SessionId(crate::signing::b64(&bytes))
    }

    /// Wrap a value read from a cookie, if it has the right shape.
    pub fn from_cookie(value: &str) -> Option<SessionId> {
        (value.len() == 43
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        .then(|| SessionId(value.to_owned()))
    }

    /// The cookie value.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key the store uses: SHA-256 of the id, so a store dump holds no
    /// usable cookie.
    pub fn key(&self) -> SessionKey {
        SessionId::hashed(&self.0)
    }

    /// SHA-256 of any secret token, as a store key.
    pub fn hashed(secret: &str) -> SessionKey {
        SessionKey(Sha256::digest(secret.as_bytes()).into())
    }
}

/// SHA-256 of a session id: what stores key by and logs may show (shortened).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct SessionKey(pub [u8; 32]);

impl SessionKey {
    /// First 12 hex digits, for logs.
    pub fn short(&self) -> String {
        self.0[..6].iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// How the user proved who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// Password (form or Basic).
    Password,
    /// SMS code.
    Sms,
    /// E-mail code.
    Email,
    /// Authenticator app.
    Totp,
    /// Hardware OATH token.
    Token,
    /// Passkey or security key (WebAuthn): possession of a key bound to
    /// this portal's name, so a look-alike site cannot use it.
    Passkey,
}

impl Method {
    /// Every method, in the order pages list them.
    pub const ALL: [Method; 6] = [
        Method::Password,
        Method::Passkey,
        Method::Sms,
        Method::Email,
        Method::Totp,
        Method::Token,
    ];

    /// The method named `name` in config or forms.
    pub fn parse(name: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.as_str() == name)
    }

    /// Name used in config, headers and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Password => "password",
            Method::Sms => "sms",
            Method::Email => "email",
            Method::Totp => "totp",
            Method::Token => "token",
            Method::Passkey => "passkey",
        }
    }
}

/// A logged-in user's server-side record.
#[derive(Debug)]
pub struct Session {
    /// User name.
    pub user: String,
    /// Realm id.
    pub realm: String,
    /// Group names.
    pub groups: Vec<String>,
    /// E-mail address.
    pub email: String,
    /// Display name.
    pub display_name: String,
    /// 1 = one factor, 2 = two factors.
    pub auth_level: u8,
    /// Methods used, in order.
    pub methods: Vec<Method>,
    /// Whether the client was internal at login.
    pub internal_at_login: bool,
    /// Client IP at login (for admin listings).
    pub ip_at_login: std::net::IpAddr,
    /// Login time, ms since epoch.
    pub created_ms: u64,
    /// When the password was last entered, ms since epoch.
    pub password_at_ms: u64,
    /// Last real use, ms since epoch. Atomic so the hot path can refresh it
    /// without a store write.
    last_seen_ms: AtomicU64,
    /// Precomputed header values, so the hot path does not join on every request.
    pub header_values: IdentityValues,
}

/// Identity header values computed once per session.
#[derive(Debug, Clone)]
pub struct IdentityValues {
    /// `Remote-Groups`.
    pub groups: http::HeaderValue,
    /// `Remote-Auth-Methods`.
    pub methods: http::HeaderValue,
    /// `Remote-Name` (non-ASCII names are percent-encoded UTF-8).
    pub name: http::HeaderValue,
    /// `Remote-User`.
    pub user: http::HeaderValue,
    /// `Remote-Email`.
    pub email: http::HeaderValue,
    /// `Remote-Realm`.
    pub realm: http::HeaderValue,
    /// `Remote-Auth-Level`.
    pub level: http::HeaderValue,
}

/// What a new session is made from.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// User name.
    pub user: String,
    /// Realm id.
    pub realm: String,
    /// Groups.
    pub groups: Vec<String>,
    /// E-mail.
    pub email: String,
    /// Display name.
    pub display_name: String,
    /// Level reached.
    pub auth_level: u8,
    /// Methods used.
    pub methods: Vec<Method>,
    /// Internal at login.
    pub internal: bool,
    /// Client IP.
    pub ip: std::net::IpAddr,
}

impl Session {
    /// Build a session at `now_ms`.
    pub fn new(n: NewSession, now_ms: u64) -> Session {
        let header_values = IdentityValues {
            groups: groups_value(&n.groups),
            methods: header_value(
                &n.methods
                    .iter()
                    .map(|m| m.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            name: header_value(&n.display_name),
            user: header_value(&n.user),
            email: header_value(&n.email),
            realm: header_value(&n.realm),
            level: header_value(&n.auth_level.to_string()),
        };
        Session {
            user: n.user,
            realm: n.realm,
            groups: n.groups,
            email: n.email,
            display_name: n.display_name,
            auth_level: n.auth_level,
            methods: n.methods,
            internal_at_login: n.internal,
            ip_at_login: n.ip,
            created_ms: now_ms,
            password_at_ms: now_ms,
            last_seen_ms: AtomicU64::new(now_ms),
            header_values,
        }
    }

    /// The same login after a second factor: level 2, the method added, the
    /// original login and password times kept (the absolute lifetime still
    /// counts from the first login). The caller stores it under a new id.
    pub fn with_second_factor(&self, method: Method, now_ms: u64) -> Session {
        let mut methods = self.methods.clone();
        if !methods.contains(&method) {
            methods.push(method);
        }
        self.renewed(2, methods, self.password_at_ms, now_ms)
    }

    /// The same session with the password entered again at `now_ms` (for
    /// self-service changes, which need a recent password).
    pub fn with_password_at(&self, now_ms: u64) -> Session {
        self.renewed(self.auth_level, self.methods.clone(), now_ms, now_ms)
    }

    /// A copy with a new level, methods and password time; login time kept.
    fn renewed(
        &self,
        auth_level: u8,
        methods: Vec<Method>,
        password_at_ms: u64,
        now_ms: u64,
    ) -> Session {
        let mut s = Session::new(
            NewSession {
                user: self.user.clone(),
                realm: self.realm.clone(),
                groups: self.groups.clone(),
                email: self.email.clone(),
                display_name: self.display_name.clone(),
                auth_level,
                methods,
                internal: self.internal_at_login,
                ip: self.ip_at_login,
            },
            now_ms,
        );
        s.created_ms = self.created_ms;
        s.password_at_ms = password_at_ms;
        s
    }

    /// Last real use.
    pub fn last_seen_ms(&self) -> u64 {
        self.last_seen_ms.load(Ordering::Relaxed)
    }

    /// Record use at `now_ms`; returns whether the stored value moved by more
    /// than `granularity_ms` (what a remote store would need to be told).
    pub fn touch(&self, now_ms: u64, granularity_ms: u64) -> bool {
        let last = self.last_seen_ms();
        if now_ms > last + granularity_ms {
            self.last_seen_ms.store(now_ms, Ordering::Relaxed);
            true
        } else {
            false
        }
    }

    /// Whether the session has expired at `now_ms`.
    pub fn expired(&self, now_ms: u64, idle_ms: u64, lifetime_ms: u64) -> Option<Expiry> {
        if now_ms >= self.created_ms.saturating_add(lifetime_ms) {
            Some(Expiry::Lifetime)
        } else if now_ms >= self.last_seen_ms().saturating_add(idle_ms) {
            Some(Expiry::Idle)
        } else {
            None
        }
    }
}

/// Why a session ended by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// No use for the idle timeout.
    Idle,
    /// Older than the absolute lifetime.
    Lifetime,
}

impl Expiry {
    /// Reason for the audit log.
    pub fn reason(self) -> crate::audit::Reason {
        match self {
            Expiry::Idle => crate::audit::Reason::Idle,
            Expiry::Lifetime => crate::audit::Reason::Lifetime,
        }
    }
}

/// A header value from arbitrary text: ASCII printable stays, anything else
/// is percent-encoded as UTF-8 so no header can be split or smuggled.
pub fn header_value(text: &str) -> http::HeaderValue {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS.add(b'%');
    let encoded: String = percent_encoding::utf8_percent_encode(text, SET).collect();
    http::HeaderValue::from_str(&encoded).unwrap_or_else(|_| http::HeaderValue::from_static(""))
}

/// The `Remote-Groups` value: the names joined by `,`, each encoded as
/// [`header_value`] does and with `,` itself written `%2C`, so a group named
/// `Lärare, åk 7` stays one element. An upstream splits on `,` and
/// percent-decodes each element (UTF-8). Names without `,`, `%`, control
/// characters or non-ASCII arrive exactly as before; percent-encoding (not an
/// RFC 8941 list of quoted strings) keeps the existing consumers, which split
/// on commas, working.
pub fn groups_value(groups: &[String]) -> http::HeaderValue {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS.add(b'%').add(b',');
    let encoded: Vec<String> = groups
        .iter()
        .map(|g| percent_encoding::utf8_percent_encode(g, SET).collect())
        .collect();
    http::HeaderValue::from_str(&encoded.join(","))
        .unwrap_or_else(|_| http::HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_comma_in_a_group_name_does_not_split_it() {
        let groups = vec![
            "staff".to_owned(),
            "Lärare, åk 7".to_owned(),
            "100%".to_owned(),
        ];
        let v = groups_value(&groups);
        let s = v.to_str().unwrap();
        assert_eq!(
            s,
            "staff,L%C3%A4rare%2C åk 7".replace(" åk", " %C3%A5k") + ",100%25"
        );
        let decoded: Vec<String> = s
            .split(',')
            .map(|e| {
                percent_encoding::percent_decode_str(e)
                    .decode_utf8()
                    .unwrap()
                    .into_owned()
            })
            .collect();
        assert_eq!(decoded, groups);
        assert_eq!(
            groups_value(&["a".into(), "b".into()]).to_str().unwrap(),
            "a,b"
        );
    }

    #[test]
    fn ids_are_long_random_and_keyed_by_hash() {
        let a = SessionId::generate();
        let b = SessionId::generate();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 43);
        assert!(SessionId::from_cookie(a.as_str()).is_some());
        assert!(SessionId::from_cookie("short").is_none());
        assert_ne!(a.key().0.to_vec(), a.as_str().as_bytes()[..32].to_vec());
        assert!(!format!("{a:?}").contains(a.as_str()));
    }

    #[test]
    fn header_values_cannot_split_headers() {
        let v = header_value("Åsa\r\nX-Evil: 1");
        let s = v.to_str().unwrap();
        assert!(!s.contains('\r') && !s.contains('\n'));
        assert!(s.starts_with("%C3%85sa"));
    }
}
