//! Passkeys (WebAuthn credentials) in SQLite: blocking functions on the
//! connection, run by [`SqliteStore::call`](super::SqliteStore) on the
//! blocking pool. Inputs are checked by the trait methods before they get here.

use rusqlite::{params, Connection, ErrorCode, OptionalExtension, TransactionBehavior};

use super::{int, uint};
use crate::storage::{Passkey, PasskeyUse, StorageError, UserRef};

/// The counter column back as the WebAuthn type. The schema keeps it at 0
/// or more; a value above `u32::MAX` (an edited file) reads as the largest
/// counter, so every later use is refused rather than accepted.
fn counter(v: i64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// The user's passkeys by id.
pub(super) fn read_passkeys(
    conn: &Connection,
    who: &UserRef,
) -> Result<Vec<Passkey>, StorageError> {
    let mut st = conn.prepare_cached(
        "SELECT id, description, credential_id, key, counter, added_ms, last_used_ms \
         FROM passkeys WHERE realm = ?1 AND username = ?2 ORDER BY id",
    )?;
    let rows = st.query_map([&who.realm, &who.user], |r| {
        let last: Option<i64> = r.get(6)?;
        Ok(Passkey {
            id: r.get(0)?,
            description: r.get(1)?,
            credential_id: r.get(2)?,
            key: r.get(3)?,
            counter: counter(r.get(4)?),
            added_ms: uint(r.get(5)?),
            last_used_ms: last.map(uint),
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Insert a passkey; its id. The UNIQUE constraint on `credential_id`
/// decides duplicates, so two registrations of one key racing each other
/// (two gateways, or two processes on the file) cannot both succeed.
pub(super) fn add_passkey(
    conn: &Connection,
    who: &UserRef,
    description: &str,
    credential_id: &str,
    key: &str,
    counter: u32,
    now_ms: u64,
) -> Result<i64, StorageError> {
    let inserted = conn.execute(
        "INSERT INTO passkeys (realm, username, description, credential_id, key, counter, added_ms) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            who.realm,
            who.user,
            description,
            credential_id,
            key,
            i64::from(counter),
            int(now_ms)
        ],
    );
    match inserted {
        Ok(_) => Ok(conn.last_insert_rowid()),
        // The only UNIQUE constraint of the table besides the id, which
        // SQLite chooses itself (a primary key clash has its own code).
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == ErrorCode::ConstraintViolation
                && e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE =>
        {
            Err(StorageError::DuplicateCredential)
        }
        Err(e) => Err(e.into()),
    }
}

/// Delete the user's passkey `id`; false if the user has none such.
pub(super) fn remove_passkey(
    conn: &Connection,
    who: &UserRef,
    id: i64,
) -> Result<bool, StorageError> {
    let n = conn.execute(
        "DELETE FROM passkeys WHERE realm = ?1 AND username = ?2 AND id = ?3",
        params![who.realm, who.user, id],
    )?;
    Ok(n > 0)
}

/// Save a use if the counter moved forward (or both are 0). The condition is
/// in the UPDATE itself, so of two uses with the same counter exactly one
/// changes the row; the other finds the counter already there.
pub(super) fn use_passkey(
    conn: &mut Connection,
    who: &UserRef,
    id: i64,
    new: u32,
    key: &str,
    now_ms: u64,
) -> Result<PasskeyUse, StorageError> {
    // IMMEDIATE: the stored counter read after a refused update is the one
    // that refused it, not one written by another process in between.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let new = i64::from(new);
    let n = tx.execute(
        "UPDATE passkeys SET counter = ?1, key = ?2, last_used_ms = ?3 \
         WHERE realm = ?4 AND username = ?5 AND id = ?6 \
         AND (counter < ?1 OR (counter = 0 AND ?1 = 0))",
        params![new, key, int(now_ms), who.realm, who.user, id],
    )?;
    let outcome = if n > 0 {
        PasskeyUse::Recorded
    } else {
        let stored: Option<i64> = tx
            .query_row(
                "SELECT counter FROM passkeys WHERE realm = ?1 AND username = ?2 AND id = ?3",
                params![who.realm, who.user, id],
                |r| r.get(0),
            )
            .optional()?;
        stored.map_or(PasskeyUse::Gone, |c| PasskeyUse::Regressed {
            stored: counter(c),
        })
    };
    tx.commit()?;
    Ok(outcome)
}

/// Delete all the user's passkeys (inside `reset_user`'s transaction).
pub(super) fn remove_all(conn: &Connection, who: &UserRef) -> Result<(), StorageError> {
    conn.execute(
        "DELETE FROM passkeys WHERE realm = ?1 AND username = ?2",
        [&who.realm, &who.user],
    )?;
    Ok(())
}
