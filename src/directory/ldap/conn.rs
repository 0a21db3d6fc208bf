//! Connections to the directory: opening them (TLS, timeouts, the service
//! account's bind), two pools of idle ones, running one operation with a
//! time limit, and reading search entries without trusting their shape.
//!
//! There are two kinds of connection and they never mix:
//! - **service** connections are bound as the service account and used for
//!   searches;
//! - **bind** connections are used only to check a user's password with a
//!   bind. After a successful one the connection *is* that user, so it must
//!   never run a service search; it may check the next password, since every
//!   bind replaces the connection's identity.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use ldap3::asn1::{StructureTag, PL};
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapError, ResultEntry};
use parking_lot::Mutex;

use crate::directory::DirectoryError;

/// Which pool, and how a fresh connection is prepared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// Bound as the service account; runs searches.
    Service,
    /// Runs user binds only.
    Bind,
}

/// Idle connections of one kind.
#[derive(Debug)]
struct Pool {
    /// A plain mutex: it is held only to push or pop, never across an await.
    idle: Mutex<Vec<Ldap>>,
    max: usize,
}

impl Pool {
    /// An idle connection whose driver still runs. A connection the server
    /// closed while idle is noticed here without a round trip; one that died
    /// silently fails its next operation and is replaced then.
    fn take(&self) -> Option<Ldap> {
        let mut idle = self.idle.lock();
        while let Some(mut ldap) = idle.pop() {
            if !ldap.is_closed() {
                return Some(ldap);
            }
        }
        None
    }

    /// Keep `ldap` for later, unless the pool is full (then it is closed).
    fn put(&self, ldap: Ldap) {
        let mut idle = self.idle.lock();
        if idle.len() < self.max {
            idle.push(ldap);
        }
    }
}

/// How to reach the directory, and the idle connections.
pub(super) struct Conns {
    /// For messages; ldap3 takes it as text.
    url: String,
    /// StartTLS on an `ldap://` URL.
    starttls: bool,
    /// For `ldaps://` and StartTLS; `None` for plain loopback `ldap://`.
    tls: Option<Arc<rustls::ClientConfig>>,
    connect_timeout: Duration,
    timeout: Duration,
    bind_dn: String,
    /// The service account's password, from `bind_password_file`.
    bind_password: String,
    service: Pool,
    binds: Pool,
}

impl std::fmt::Debug for Conns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not derived: the service password must not reach any log.
        f.debug_struct("Conns")
            .field("url", &self.url)
            .field("starttls", &self.starttls)
            .field("bind_dn", &self.bind_dn)
            .field("idle_service", &self.service.idle.lock().len())
            .field("idle_bind", &self.binds.idle.lock().len())
            .finish_non_exhaustive()
    }
}

/// Why one operation did not give an answer.
enum OpError {
    /// No answer within the limit.
    Timeout,
    /// The connection or the protocol failed.
    Failed(LdapError),
}

impl Conns {
    /// Connection settings; `pool_size` idle connections of each kind.
    pub fn new(s: &super::config::Settings) -> Conns {
        let pool = || Pool {
            idle: Mutex::new(Vec::new()),
            max: s.pool_size,
        };
        Conns {
            url: s.url.clone(),
            starttls: s.starttls,
            tls: s.tls.clone(),
            connect_timeout: s.connect_timeout,
            timeout: s.timeout,
            bind_dn: s.bind_dn.clone(),
            bind_password: s.bind_password.clone(),
            service: pool(),
            binds: pool(),
        }
    }

    fn pool(&self, kind: Kind) -> &Pool {
        match kind {
            Kind::Service => &self.service,
            Kind::Bind => &self.binds,
        }
    }

    /// The error users get as "try again later"; the text is for the log.
    pub fn unavailable(&self, what: &str, cause: impl std::fmt::Display) -> DirectoryError {
        DirectoryError::Unavailable(format!("{}: {what}: {cause}", self.url))
    }

    /// Run `op` on a connection of `kind` with the operation time limit.
    /// A pooled connection that fails (not one that times out: that would
    /// double the wait) is replaced by a fresh one once, because servers
    /// close idle connections (Active Directory after 15 minutes).
    pub async fn run<T, F, Fut>(&self, kind: Kind, what: &str, op: F) -> Result<T, DirectoryError>
    where
        F: Fn(Ldap) -> Fut,
        Fut: Future<Output = Result<T, LdapError>>,
    {
        let pool = self.pool(kind);
        if let Some(ldap) = pool.take() {
            match self.timed(op(ldap.clone())).await {
                Ok(v) => {
                    pool.put(ldap);
                    return Ok(v);
                }
                Err(OpError::Timeout) => return Err(self.timeout_error(what)),
                Err(OpError::Failed(e)) => {
                    tracing::debug!(url = %self.url, cause = %e, "idle LDAP connection failed; opening a fresh one");
                }
            }
        }
        let ldap = self.open(kind).await?;
        match self.timed(op(ldap.clone())).await {
            Ok(v) => {
                pool.put(ldap);
                Ok(v)
            }
            Err(OpError::Timeout) => Err(self.timeout_error(what)),
            Err(OpError::Failed(e)) => Err(self.unavailable(what, e)),
        }
    }

    fn timeout_error(&self, what: &str) -> DirectoryError {
        self.unavailable(what, format_args!("no answer within {:?}", self.timeout))
    }

    async fn timed<T>(&self, op: impl Future<Output = Result<T, LdapError>>) -> Result<T, OpError> {
        match tokio::time::timeout(self.timeout, op).await {
            Err(_elapsed) => Err(OpError::Timeout),
            Ok(Err(e)) => Err(OpError::Failed(e)),
            Ok(Ok(v)) => Ok(v),
        }
    }

    /// A new connection, TLS established; for [`Kind::Service`] also bound
    /// as the service account.
    async fn open(&self, kind: Kind) -> Result<Ldap, DirectoryError> {
        let mut settings = LdapConnSettings::new()
            .set_conn_timeout(self.connect_timeout)
            .set_starttls(self.starttls);
        if let Some(tls) = &self.tls {
            settings = settings.set_config(tls.clone());
        }
        // ldap3's own limit covers TCP, StartTLS and the TLS handshake; ours
        // is the same bound again in case a step is outside it.
        let connect = LdapConnAsync::with_settings(settings, &self.url);
        let (conn, ldap) = match tokio::time::timeout(self.connect_timeout, connect).await {
            Err(_) | Ok(Err(LdapError::Timeout { .. })) => {
                return Err(self.unavailable(
                    "connect",
                    format_args!("no connection within {:?}", self.connect_timeout),
                ))
            }
            Ok(Err(e)) => return Err(self.unavailable("connect", e)),
            Ok(Ok(pair)) => pair,
        };
        let url = self.url.clone();
        tokio::spawn(async move {
            if let Err(e) = conn.drive().await {
                tracing::debug!(url = %url, cause = %e, "LDAP connection ended");
            }
        });
        if kind == Kind::Bind {
            return Ok(ldap);
        }
        let mut handle = ldap.clone();
        let bind = handle.simple_bind(&self.bind_dn, &self.bind_password);
        match self.timed(bind).await {
            Ok(res) if res.rc == 0 => Ok(ldap),
            Ok(res) => {
                // A configuration problem, not a user's: say so loudly.
                tracing::error!(url = %self.url, bind_dn = %self.bind_dn, rc = res.rc, text = %res.text,
                    "the LDAP server refused the service account; check bind_dn and bind_password_file");
                Err(self.unavailable("service account bind", format_args!("refused: {res}")))
            }
            Err(OpError::Timeout) => Err(self.timeout_error("service account bind")),
            Err(OpError::Failed(e)) => Err(self.unavailable("service account bind", e)),
        }
    }
}

/// One search result entry, read defensively (ldap3's `SearchEntry::construct`
/// panics on an entry of unexpected shape; a server's answer is input).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Entry {
    /// The entry's DN.
    pub dn: String,
    /// Attribute descriptions as the server spelled them, with their text
    /// values (values that are not UTF-8 are left out).
    pub attrs: Vec<(String, Vec<String>)>,
}

impl Entry {
    /// Read a `SearchResultEntry`; `None` if it is not one.
    pub fn parse(entry: ResultEntry) -> Option<Entry> {
        let mut parts = constructed(entry.0.match_id(4)?)?.into_iter();
        let dn = text(parts.next()?)?;
        let mut attrs = Vec::new();
        for attr in constructed(parts.next()?)? {
            let mut attr = constructed(attr)?.into_iter();
            let name = text(attr.next()?)?;
            let values = constructed(attr.next()?)?
                .into_iter()
                .filter_map(text)
                .collect();
            attrs.push((name, values));
        }
        Some(Entry { dn, attrs })
    }

    /// Every value of `attr` (names compare without regard to case).
    pub fn values(&self, attr: &str) -> &[String] {
        self.attrs
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(attr))
            .map_or(&[], |(_, v)| v.as_slice())
    }

    /// The first non-empty value of `attr`.
    pub fn first(&self, attr: &str) -> Option<&str> {
        self.values(attr)
            .iter()
            .map(String::as_str)
            .find(|v| !v.is_empty())
    }
}

fn constructed(tag: StructureTag) -> Option<Vec<StructureTag>> {
    match tag.payload {
        PL::C(inner) => Some(inner),
        PL::P(_) => None,
    }
}

fn text(tag: StructureTag) -> Option<String> {
    match tag.payload {
        PL::P(bytes) => String::from_utf8(bytes).ok(),
        PL::C(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ldap3::asn1::TagClass;

    fn prim(s: &[u8]) -> StructureTag {
        StructureTag {
            class: TagClass::Universal,
            id: 4,
            payload: PL::P(s.to_vec()),
        }
    }
    fn cons(id: u64, class: TagClass, inner: Vec<StructureTag>) -> StructureTag {
        StructureTag {
            class,
            id,
            payload: PL::C(inner),
        }
    }
    fn attr(name: &str, values: &[&[u8]]) -> StructureTag {
        let vals = values.iter().map(|v| prim(v)).collect();
        cons(
            16,
            TagClass::Universal,
            vec![prim(name.as_bytes()), cons(17, TagClass::Universal, vals)],
        )
    }

    #[test]
    fn reads_entries_and_refuses_odd_shapes() {
        let tag = cons(
            4,
            TagClass::Application,
            vec![
                prim(b"uid=alice,ou=people,dc=example,dc=org"),
                cons(
                    16,
                    TagClass::Universal,
                    vec![
                        attr(
                            "memberOf",
                            &[b"cn=staff,ou=groups", b"cn=lon-users,ou=groups"],
                        ),
                        attr("displayName", &["Örjan Åberg".as_bytes()]),
                        attr("jpegPhoto", &[b"\xff\xd8"]),
                    ],
                ),
            ],
        );
        let e = Entry::parse(ResultEntry::new(tag)).unwrap();
        assert_eq!(e.dn, "uid=alice,ou=people,dc=example,dc=org");
        assert_eq!(e.values("MEMBEROF").len(), 2);
        assert_eq!(e.first("displayname"), Some("Örjan Åberg"));
        assert!(e.values("jpegPhoto").is_empty());
        assert_eq!(e.first("mail"), None);

        // A primitive where a sequence belongs, a missing DN, another tag.
        let odd = [
            cons(4, TagClass::Application, vec![prim(b"dn"), prim(b"attrs")]),
            cons(4, TagClass::Application, vec![]),
            cons(
                5,
                TagClass::Application,
                vec![prim(b"dn"), cons(16, TagClass::Universal, vec![])],
            ),
            prim(b"x"),
        ];
        for tag in odd {
            assert_eq!(Entry::parse(ResultEntry::new(tag)), None);
        }
    }
}
