//! Rows stored before enrolments were kept per realm (schema 1). Migration 2
//! moves them, untouched, into `legacy_*` tables; they belong to nobody until
//! an operator says which realm they are from, because with several realms
//! a guess could give one realm's `anna` the authenticator of the other's.
//!
//! Adoption moves a user's rows into the realm-keyed tables in one
//! transaction and re-seals each authenticator seed with the realm in its
//! associated data; a seed that does not open with the old associated data
//! (another key, a row moved in the file) stops the whole adoption.

use std::path::Path;

use rusqlite::{params, Connection, TransactionBehavior};

use super::queries::{legacy_totp_aad, open_seed, totp_aad};
use crate::storage::{check_realm, Sealer, StorageError, UserRef};

/// What [`SqliteStore::open`](super::SqliteStore::open) does with legacy rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LegacyRows {
    /// Refuse to open while any remain ([`StorageError::LegacyRows`] names
    /// these realms and the command that assigns them).
    Refuse {
        /// The configured realm ids, for the message.
        realms: Vec<String>,
    },
    /// Give every remaining row to this realm: right for a configuration with
    /// one realm, where every user so far was of that realm.
    AdoptInto(String),
    /// Leave them where they are: only for `portvakt storage legacy|adopt`,
    /// which exist to deal with them.
    Keep,
}

impl LegacyRows {
    /// One realm configured: it adopts them. Several: refuse, the operator
    /// must say (`portvakt storage adopt`).
    pub fn for_config(config: &crate::config::Config) -> LegacyRows {
        match config.realms.as_slice() {
            [only] => LegacyRows::AdoptInto(only.id.clone()),
            all => LegacyRows::Refuse {
                realms: all.iter().map(|r| r.id.clone()).collect(),
            },
        }
    }
}

/// One user name with rows from before realms, and how many of each kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyUser {
    /// The bare name as stored then.
    pub user: String,
    /// SMS numbers.
    pub sms: usize,
    /// Authenticator devices.
    pub totp: usize,
    /// Assigned hardware tokens.
    pub tokens: usize,
}

/// What one adoption moved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Adopted {
    /// The users whose rows moved, by name.
    pub users: Vec<String>,
    /// SMS numbers moved.
    pub sms: usize,
    /// Authenticator devices moved (and re-sealed).
    pub totp: usize,
    /// Token assignments moved.
    pub tokens: usize,
}

/// A schema-1 device row: id, description, sealed seed, added, last step.
type LegacyDevice = (i64, String, Vec<u8>, i64, Option<i64>);

/// Apply `legacy` right after the migrations.
pub(super) fn on_open(
    conn: &mut Connection,
    sealer: &Sealer,
    path: &Path,
    legacy: LegacyRows,
) -> Result<(), StorageError> {
    match legacy {
        LegacyRows::Keep => Ok(()),
        LegacyRows::Refuse { realms } => {
            let users = legacy_users(conn)?.len();
            if users == 0 {
                return Ok(());
            }
            Err(StorageError::LegacyRows {
                path: path.display().to_string(),
                users,
                realms,
            })
        }
        LegacyRows::AdoptInto(realm) => {
            let a = adopt(conn, sealer, &realm, None)?;
            if !a.users.is_empty() {
                tracing::info!(
                    realm,
                    users = a.users.len(),
                    sms = a.sms,
                    totp = a.totp,
                    tokens = a.tokens,
                    "storage: enrolments from before realms were adopted by the only realm"
                );
            }
            Ok(())
        }
    }
}

/// Users with legacy rows, by name.
pub(super) fn legacy_users(conn: &Connection) -> Result<Vec<LegacyUser>, StorageError> {
    let mut st = conn.prepare(
        "SELECT username, sum(kind = 'sms'), sum(kind = 'totp'), sum(kind = 'token') FROM (
            SELECT username, 'sms' AS kind FROM legacy_sms_numbers
            UNION ALL SELECT username, 'totp' FROM legacy_totp_devices
            UNION ALL SELECT username, 'token' FROM legacy_token_owners
         ) GROUP BY username ORDER BY username",
    )?;
    let n = |v: i64| usize::try_from(v).unwrap_or(0);
    let rows = st.query_map([], |r| {
        Ok(LegacyUser {
            user: r.get(0)?,
            sms: n(r.get(1)?),
            totp: n(r.get(2)?),
            tokens: n(r.get(3)?),
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Move the legacy rows of `users` (None: of everyone) into `realm`, all or
/// nothing.
pub(super) fn adopt(
    conn: &mut Connection,
    sealer: &Sealer,
    realm: &str,
    users: Option<&[String]>,
) -> Result<Adopted, StorageError> {
    check_realm(realm)?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let present: Vec<String> = legacy_users(&tx)?.into_iter().map(|u| u.user).collect();
    let chosen: Vec<String> = match users {
        None => present,
        Some(list) => present.into_iter().filter(|u| list.contains(u)).collect(),
    };
    let mut done = Adopted::default();
    for user in chosen {
        let who = UserRef::new(realm, user.as_str());
        done.sms += tx.execute(
            "INSERT INTO sms_numbers (realm, username, position, e164, added_ms) \
             SELECT ?1, username, position, e164, added_ms FROM legacy_sms_numbers \
             WHERE username = ?2",
            params![realm, user],
        )?;
        tx.execute(
            "DELETE FROM legacy_sms_numbers WHERE username = ?1",
            [&user],
        )?;

        let devices: Vec<LegacyDevice> = {
            let mut st = tx.prepare(
                "SELECT id, description, seed, added_ms, last_step FROM legacy_totp_devices \
                 WHERE username = ?1 ORDER BY id",
            )?;
            let rows = st.query_map([&user], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?;
            rows.collect::<Result<_, _>>()?
        };
        for (id, description, seed, added_ms, last_step) in devices {
            let secret = open_seed(sealer, &seed, &legacy_totp_aad(id, &user))?;
            let resealed = sealer
                .seal(&secret, &totp_aad(id, &who))
                .map_err(|source| StorageError::Seal {
                    what: format!("totp:{id}"),
                    source,
                })?;
            // The same id: audit lines and `enrolments list` keep naming it.
            tx.execute(
                "INSERT INTO totp_devices (id, realm, username, description, seed, added_ms, last_step) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![id, realm, user, description, resealed, added_ms, last_step],
            )?;
            done.totp += 1;
        }
        tx.execute(
            "DELETE FROM legacy_totp_devices WHERE username = ?1",
            [&user],
        )?;

        done.tokens += tx.execute(
            "UPDATE tokens SET realm = ?1, username = o.username, assigned_ms = o.assigned_ms, \
             resync_counter = o.resync_counter, resync_at = o.resync_at \
             FROM legacy_token_owners AS o \
             WHERE o.serial = tokens.serial AND o.username = ?2 AND tokens.username IS NULL",
            params![realm, user],
        )?;
        tx.execute(
            "DELETE FROM legacy_token_owners WHERE username = ?1",
            [&user],
        )?;
        done.users.push(user);
    }
    tx.commit()?;
    Ok(done)
}
