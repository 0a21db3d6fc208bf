//! LDAP and Active Directory as a directory, with `ldap3`.
//!
//! One password check, as SECURITY.md asks:
//! 1. refuse an empty password at once: LDAP takes a bind with an empty
//!    password as an anonymous ("unauthenticated") bind and reports success;
//! 2. search the user as the service account (subtree under `base_dn`, the
//!    login name escaped into `user_filter`, at most 2 answers: none is an
//!    unknown user, two are treated as unknown and logged);
//! 3. bind as the user's DN with the password, on a connection that only
//!    ever does binds; 49 (`invalidCredentials`) is a wrong password, or a
//!    disabled/locked account when AD's diagnostic says so;
//! 4. the groups (`memberOf` → CN), e-mail and display name come from the
//!    search in step 2; with `nested_groups`, one more search (AD only).
//!
//! **Timing.** An unknown user costs what a wrong password costs: when the
//! search finds nobody we still bind, on a bind connection like a real
//! check, as a DN that does not exist (`cn=portvakt-no-such-user,<base_dn>`)
//! with a random password — never the password typed, which may belong to
//! another account. Both paths are one search and one bind round trip on
//! the same pools. A random password never locks anything out, unlike a
//! wrong bind as the service account would.
//!
//! **Without a password** ([`Directory::lookup`], a passkey login): the
//! same user search, then a second search for the user filter AND-ed with
//! `enabled_filter`, made whether or not the first found anyone (same
//! cost): found by the first but not the second is a disabled account.
//!
//! Every connect and operation has a time limit: a directory that is down
//! or hangs gives [`DirectoryError::Unavailable`] within `connect_timeout`
//! or `timeout`, never a hang.

mod config;
mod conn;
mod syntax;
mod tls;

use std::path::Path;

use async_trait::async_trait;
use ldap3::{Scope, SearchOptions, SearchResult};
use rand::distributions::{Alphanumeric, DistString};

pub use config::LdapConfig;
pub use syntax::{escape_filter_value, first_rdn_value, nested_group_filter, user_filter};

use self::config::Settings;
use self::conn::{Conns, Entry, Kind};
use self::syntax::verdict_for_invalid_credentials;
use super::{Directory, DirectoryError, Presence, User, Verdict};

/// Longer login names are unknown users without asking the server: no real
/// account has one, and it keeps absurd input out of filters and logs.
const MAX_USERNAME: usize = 256;

/// LDAP result code `sizeLimitExceeded`: more entries matched than we allow.
const SIZE_LIMIT_EXCEEDED: u32 = 4;
/// LDAP result code `invalidCredentials`.
const INVALID_CREDENTIALS: u32 = 49;

/// A directory backed by an LDAP server or Active Directory.
pub struct LdapDirectory {
    settings: Settings,
    conns: Conns,
    /// Bound as when the user is unknown (see the module documentation).
    dummy_dn: String,
}

impl std::fmt::Debug for LdapDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The connections know the service password; print only what is safe.
        f.debug_struct("LdapDirectory")
            .field("conns", &self.conns)
            .field("base_dn", &self.settings.base_dn)
            .field("user_filter", &self.settings.user_filter)
            .finish_non_exhaustive()
    }
}

impl LdapDirectory {
    /// Validate `config` and read its files (relative to `base_dir`, the
    /// config file's folder); nothing connects until the first check. Every
    /// problem is returned as `(key under directory.ldap, message)`.
    pub fn new(config: &LdapConfig, base_dir: &Path) -> Result<Self, Vec<(String, String)>> {
        let settings = config::validate(config, base_dir)?;
        let conns = Conns::new(&settings);
        let dummy_dn = format!("cn=portvakt-no-such-user,{}", settings.base_dn);
        Ok(LdapDirectory {
            settings,
            conns,
            dummy_dn,
        })
    }

    /// The attributes the user search asks for.
    fn user_attributes(&self) -> Vec<String> {
        let s = &self.settings;
        vec![
            s.username_attribute.clone(),
            s.display_name_attribute.clone(),
            s.mail_attribute.clone(),
            s.group_attribute.clone(),
        ]
    }

    /// Search `filter` as the service account under `base_dn`; `limit`
    /// entries at most (0: no limit of ours).
    async fn search(
        &self,
        what: &str,
        filter: &str,
        attrs: Vec<String>,
        limit: i32,
    ) -> Result<(Vec<Entry>, u32), DirectoryError> {
        let base = self.settings.base_dn.as_str();
        let SearchResult(entries, res) = self
            .conns
            .run(Kind::Service, what, |mut ldap| {
                let attrs = attrs.clone();
                async move {
                    ldap.with_search_options(SearchOptions::new().sizelimit(limit))
                        .search(base, Scope::Subtree, filter, attrs)
                        .await
                }
            })
            .await?;
        match res.rc {
            0 | SIZE_LIMIT_EXCEEDED => {}
            32 => {
                return Err(self.conns.unavailable(
                    what,
                    format_args!("base_dn {base:?} does not exist ({res})"),
                ))
            }
            _ => return Err(self.conns.unavailable(what, res)),
        }
        // The DN we would bind as must not be empty: an empty DN with a
        // password is an anonymous bind on lenient servers.
        let entries = entries
            .into_iter()
            .filter_map(Entry::parse)
            .filter(|e| !e.dn.is_empty())
            .collect();
        Ok((entries, res.rc))
    }

    /// The one entry `username` names, if exactly one.
    async fn find_user(&self, username: &str) -> Result<Option<Entry>, DirectoryError> {
        let filter = user_filter(&self.settings.user_filter, username);
        let (mut entries, rc) = self
            .search("user search", &filter, self.user_attributes(), 2)
            .await?;
        if entries.len() > 1 || rc == SIZE_LIMIT_EXCEEDED {
            tracing::warn!(
                user = %username,
                filter = %filter,
                "more than one LDAP entry matches this login name; treated as an unknown user (make user_filter stricter)"
            );
            return Ok(None);
        }
        Ok(entries.pop())
    }

    /// Bind as `dn` with `password` on a bind connection; the server's answer.
    async fn bind(&self, dn: &str, password: &str) -> Result<ldap3::LdapResult, DirectoryError> {
        self.conns
            .run(Kind::Bind, "user bind", |mut ldap| async move {
                ldap.simple_bind(dn, password).await
            })
            .await
    }

    /// The round trip an unknown user costs, so that it costs what a wrong
    /// password does.
    async fn bind_dummy(&self) -> Result<(), DirectoryError> {
        let password = Alphanumeric.sample_string(&mut rand::thread_rng(), 32);
        let res = self.bind(&self.dummy_dn, &password).await?;
        if res.rc == 0 {
            tracing::warn!(dn = %self.dummy_dn, "the LDAP server accepted a bind as a DN that should not exist");
        }
        Ok(())
    }

    /// The user as the entry describes them.
    async fn user_from(&self, username: &str, entry: &Entry) -> Result<User, DirectoryError> {
        let s = &self.settings;
        let mut group_dns: Vec<String> = entry.values(&s.group_attribute).to_vec();
        if s.nested_groups {
            let filter = nested_group_filter(&entry.dn);
            let (groups, _) = self
                .search("nested group search", &filter, vec!["1.1".into()], 0)
                .await?;
            group_dns.extend(groups.into_iter().map(|g| g.dn));
        }
        let mut groups: Vec<String> = Vec::new();
        for dn in &group_dns {
            match first_rdn_value(dn, &s.group_name) {
                Some(name) if !groups.contains(&name) => groups.push(name),
                Some(_) => {}
                None => {
                    tracing::debug!(group = %dn, group_name = %s.group_name, "group DN without that RDN; left out")
                }
            }
        }
        // The directory's spelling of the name, so `ALICE` and `alice`
        // become the same session user.
        let username = entry
            .first(&s.username_attribute)
            .unwrap_or(username)
            .to_owned();
        Ok(User {
            display_name: entry
                .first(&s.display_name_attribute)
                .unwrap_or(&username)
                .to_owned(),
            email: entry
                .first(&s.mail_attribute)
                .unwrap_or_default()
                .to_owned(),
            groups,
            username,
        })
    }
}

#[async_trait]
impl Directory for LdapDirectory {
    async fn health(&self) -> Result<(), DirectoryError> {
        // The service account's bind and a search under base_dn: what every
        // login needs first. "1.1" asks for no attributes.
        self.search("health check", "(objectClass=*)", vec!["1.1".into()], 1)
            .await
            .map(drop)
    }

    async fn lookup(&self, username: &str) -> Result<Presence, DirectoryError> {
        if username.is_empty() || username.len() > MAX_USERNAME {
            return Ok(Presence::UnknownUser);
        }
        // Without a filter that tells a disabled account, nobody may log in
        // without a password: the bind is what would have refused them.
        // check-config asks for one; this keeps the rule if it is missing.
        let Some(enabled) = self.settings.enabled_filter.as_deref() else {
            tracing::error!(
                "directory.ldap.enabled_filter is not set: logins without a password are refused"
            );
            return Ok(Presence::Disabled);
        };
        let found = self.find_user(username).await?;
        let filter = format!(
            "(&{}{enabled})",
            user_filter(&self.settings.user_filter, username)
        );
        let (still, _) = self
            .search("enabled check", &filter, vec!["1.1".into()], 2)
            .await?;
        Ok(match found {
            None => Presence::UnknownUser,
            Some(entry) if still.len() == 1 && still[0].dn == entry.dn => {
                Presence::Active(self.user_from(username, &entry).await?)
            }
            Some(_) => Presence::Disabled,
        })
    }

    async fn check(&self, username: &str, password: &str) -> Result<Verdict, DirectoryError> {
        if password.is_empty() {
            // Never sent: an empty password is an anonymous bind, which
            // "succeeds". Answered without any round trip, whoever the user.
            return Ok(Verdict::WrongPassword);
        }
        if username.is_empty() || username.len() > MAX_USERNAME {
            return Ok(Verdict::UnknownUser);
        }
        let Some(entry) = self.find_user(username).await? else {
            self.bind_dummy().await?;
            return Ok(Verdict::UnknownUser);
        };
        let res = self.bind(&entry.dn, password).await?;
        match res.rc {
            0 => Ok(Verdict::Valid(self.user_from(username, &entry).await?)),
            INVALID_CREDENTIALS => {
                let verdict = verdict_for_invalid_credentials(&res.text);
                if verdict == Verdict::Disabled {
                    tracing::debug!(user = %username, text = %res.text, "LDAP: account cannot log in");
                }
                Ok(verdict)
            }
            _ => Err(self.conns.unavailable("user bind", res)),
        }
    }
}
