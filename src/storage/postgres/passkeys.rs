//! Passkeys (WebAuthn credentials) in PostgreSQL. Inputs are checked by the
//! trait methods before they get here. A use is saved by one conditional
//! UPDATE, so two gateways presenting the same counter at once cannot both
//! record it: PostgreSQL re-checks the condition on the row the first one
//! changed, and the second finds it no longer holds.

use tokio_postgres::error::SqlState;
use tokio_postgres::GenericClient;

use super::{int, uint};
use crate::storage::{Passkey, PasskeyUse, StorageError, UserRef};

/// The name PostgreSQL gives the `credential_id … UNIQUE` constraint.
const CREDENTIAL_UNIQUE: &str = "passkeys_credential_id_key";

/// The counter column back as the WebAuthn type. The schema keeps it at 0
/// or more; a value above `u32::MAX` (an edited table) reads as the largest
/// counter, so every later use is refused rather than accepted.
fn counter(v: i64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// The columns of a [`Passkey`], in [`passkey`]'s order.
const COLUMNS: &str = "id, description, credential_id, key, counter, added_ms, last_used_ms";

fn passkey(r: &tokio_postgres::Row) -> Passkey {
    Passkey {
        id: r.get(0),
        description: r.get(1),
        credential_id: r.get(2),
        key: r.get(3),
        counter: counter(r.get(4)),
        added_ms: uint(r.get(5)),
        last_used_ms: r.get::<_, Option<i64>>(6).map(uint),
    }
}

/// The user's passkeys by id.
pub(super) async fn read_passkeys(
    c: &impl GenericClient,
    who: &UserRef,
) -> Result<Vec<Passkey>, StorageError> {
    let rows = c
        .query(
            &format!(
                "SELECT {COLUMNS} FROM passkeys WHERE realm = $1 AND username = $2 ORDER BY id"
            ),
            &[&who.realm, &who.user],
        )
        .await?;
    Ok(rows.iter().map(passkey).collect())
}

/// Insert a passkey; its id. The UNIQUE constraint decides duplicates, so two
/// gateways registering one key at once cannot both succeed.
pub(super) async fn add_passkey(
    c: &impl GenericClient,
    who: &UserRef,
    description: &str,
    credential_id: &str,
    key: &str,
    count: u32,
    now_ms: u64,
) -> Result<i64, StorageError> {
    let inserted = c
        .query_one(
            "INSERT INTO passkeys (realm, username, description, credential_id, key, counter, \
             added_ms) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
            &[
                &who.realm,
                &who.user,
                &description,
                &credential_id,
                &key,
                &i64::from(count),
                &int(now_ms),
            ],
        )
        .await;
    match inserted {
        Ok(row) => Ok(row.get(0)),
        Err(e) if is_duplicate_credential(&e) => Err(StorageError::DuplicateCredential),
        Err(e) => Err(e.into()),
    }
}

/// A unique violation of the credential id (not of the id: a sequence set
/// behind its rows is a fault to report, not a key someone already has).
fn is_duplicate_credential(e: &tokio_postgres::Error) -> bool {
    e.as_db_error().is_some_and(|db| {
        *db.code() == SqlState::UNIQUE_VIOLATION && db.constraint() == Some(CREDENTIAL_UNIQUE)
    })
}

/// Delete the user's passkey `id`; false if the user has none such.
pub(super) async fn remove_passkey(
    c: &impl GenericClient,
    who: &UserRef,
    id: i64,
) -> Result<bool, StorageError> {
    let n = c
        .execute(
            "DELETE FROM passkeys WHERE realm = $1 AND username = $2 AND id = $3",
            &[&who.realm, &who.user, &id],
        )
        .await?;
    Ok(n > 0)
}

/// Save a use if the counter moved forward (or both are 0), in one statement.
pub(super) async fn use_passkey(
    c: &impl GenericClient,
    who: &UserRef,
    id: i64,
    new: u32,
    key: &str,
    now_ms: u64,
) -> Result<PasskeyUse, StorageError> {
    let new = i64::from(new);
    let n = c
        .execute(
            "UPDATE passkeys SET counter = $1, key = $2, last_used_ms = $3 \
             WHERE realm = $4 AND username = $5 AND id = $6 \
             AND (counter < $1 OR (counter = 0 AND $1 = 0))",
            &[&new, &key, &int(now_ms), &who.realm, &who.user, &id],
        )
        .await?;
    if n > 0 {
        return Ok(PasskeyUse::Recorded);
    }
    // Only to say why: whatever this reads (a counter moved on further
    // meanwhile, or the row removed), nothing was saved.
    let stored = c
        .query_opt(
            "SELECT counter FROM passkeys WHERE realm = $1 AND username = $2 AND id = $3",
            &[&who.realm, &who.user, &id],
        )
        .await?;
    Ok(stored.map_or(PasskeyUse::Gone, |r| PasskeyUse::Regressed {
        stored: counter(r.get(0)),
    }))
}

/// Delete all the user's passkeys (inside `reset_user`'s transaction); the
/// ones deleted, by id. Read from the DELETE itself, so a passkey registered
/// while the reset runs is either reported and gone or kept, never gone
/// unreported.
pub(super) async fn remove_all(
    c: &impl GenericClient,
    who: &UserRef,
) -> Result<Vec<Passkey>, StorageError> {
    let rows = c
        .query(
            &format!("DELETE FROM passkeys WHERE realm = $1 AND username = $2 RETURNING {COLUMNS}"),
            &[&who.realm, &who.user],
        )
        .await?;
    let mut gone: Vec<Passkey> = rows.iter().map(passkey).collect();
    gone.sort_by_key(|p| p.id);
    Ok(gone)
}
