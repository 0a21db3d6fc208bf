//! The work behind the methods of [`PostgresStore`](super::PostgresStore),
//! each its own transaction. The rules are SQLite's (the pure checks in
//! [`crate::factors`]); what differs is how a check is kept from running
//! twice at once: the credential rows are locked with `FOR UPDATE` before
//! they are read, and the saving `UPDATE` is conditional on the value read,
//! so a second gateway waits for the first and then sees the step used.

use tokio_postgres::{Client, GenericClient, Row, Transaction};

use super::passkeys::{read_passkeys, remove_all as remove_passkeys};
use super::{int, uint};
use crate::factors::token::{
    check_token, find_consecutive, Hotp, TokenCheck, TokenState, ADMIN_RESYNC_LOOKAHEAD,
    MIN_SECRET_BYTES,
};
use crate::factors::totp::{self, check_steps, StepCheck};
use crate::storage::crypto::{open_seed, token_aad, totp_aad};
use crate::storage::{
    Credential, Enrolments, Sealer, SmsNumber, StorageError, TokenInfo, TokenKind, TokenMode,
    TokenRecord, TotpDevice, UserRef, Verify,
};

pub(super) async fn read_sms(
    c: &impl GenericClient,
    who: &UserRef,
) -> Result<Vec<SmsNumber>, StorageError> {
    let rows = c
        .query(
            "SELECT position, e164, added_ms FROM sms_numbers WHERE realm = $1 AND username = $2 \
             ORDER BY position",
            &[&who.realm, &who.user],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| SmsNumber {
            position: u8::try_from(r.get::<_, i16>(0)).unwrap_or(u8::MAX),
            e164: r.get(1),
            added_ms: uint(r.get(2)),
        })
        .collect())
}

pub(super) async fn read_devices(
    c: &impl GenericClient,
    who: &UserRef,
) -> Result<Vec<TotpDevice>, StorageError> {
    let rows = c
        .query(
            "SELECT id, description, added_ms, last_step FROM totp_devices \
             WHERE realm = $1 AND username = $2 ORDER BY id",
            &[&who.realm, &who.user],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| TotpDevice {
            id: r.get(0),
            description: r.get(1),
            added_ms: uint(r.get(2)),
            last_used_secs: r
                .get::<_, Option<i64>>(3)
                .map(|s| uint(s).saturating_mul(totp::PERIOD)),
        })
        .collect())
}

pub(super) async fn read_tokens(
    c: &impl GenericClient,
    who: &UserRef,
) -> Result<Vec<TokenInfo>, StorageError> {
    let rows = c
        .query(
            "SELECT serial, kind, digits, period, assigned_ms FROM tokens \
             WHERE realm = $1 AND username = $2 ORDER BY serial",
            &[&who.realm, &who.user],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| TokenInfo {
            serial: r.get(0),
            kind: if r.get::<_, &str>(1) == "totp" {
                TokenKind::Totp
            } else {
                TokenKind::Hotp
            },
            digits: u8::try_from(r.get::<_, i16>(2)).unwrap_or(0),
            period: r.get::<_, Option<i32>>(3).map(|p| p.unsigned_abs()),
            assigned_ms: r.get::<_, Option<i64>>(4).map(uint),
        })
        .collect())
}

pub(super) async fn read_enrolments(
    c: &impl GenericClient,
    who: &UserRef,
) -> Result<Enrolments, StorageError> {
    Ok(Enrolments {
        sms: read_sms(c, who).await?,
        totp: read_devices(c, who).await?,
        tokens: read_tokens(c, who).await?,
        passkeys: read_passkeys(c, who).await?,
    })
}

pub(super) async fn verify_totp(
    c: &mut Client,
    sealer: &Sealer,
    who: &UserRef,
    code: &str,
    now: u64,
) -> Result<Verify, StorageError> {
    let tx = c.transaction().await?;
    // FOR UPDATE: a second check of the same user's devices waits here until
    // this one commits, and then reads the step this one saved.
    let rows = tx
        .query(
            "SELECT id, seed, last_step FROM totp_devices WHERE realm = $1 AND username = $2 \
             ORDER BY id FOR UPDATE",
            &[&who.realm, &who.user],
        )
        .await?;
    let mut replay = None;
    for r in rows {
        let (id, seed, last): (i64, Vec<u8>, Option<i64>) = (r.get(0), r.get(1), r.get(2));
        let secret = open_seed(sealer, &seed, &totp_aad(id, who))?;
        let gen = Hotp::new(&secret, totp::DIGITS);
        match check_steps(&gen, code, now, totp::PERIOD, last.map(uint)) {
            StepCheck::Accepted { step } => {
                // Conditional as well as locked: if the row moved anyway, the
                // code counts as used, never as accepted twice.
                let n = tx
                    .execute(
                        "UPDATE totp_devices SET last_step = $1 WHERE id = $2 \
                         AND last_step IS NOT DISTINCT FROM $3",
                        &[&int(step), &id, &last],
                    )
                    .await?;
                if n != 1 {
                    return Ok(Verify::Replay {
                        by: Credential::TotpDevice(id),
                    });
                }
                tx.commit().await?;
                return Ok(Verify::Accepted {
                    by: Credential::TotpDevice(id),
                    resynced: false,
                });
            }
            StepCheck::Replay { .. } => replay = replay.or(Some(id)),
            StepCheck::NoMatch => {}
        }
    }
    Ok(replay.map_or(Verify::Rejected, |id| Verify::Replay {
        by: Credential::TotpDevice(id),
    }))
}

/// One token as loaded (and locked) for a check.
struct TokenRow {
    serial: String,
    digits: u8,
    period: Option<u32>,
    seed: Vec<u8>,
    state: TokenState,
}

fn token_row(r: &Row) -> TokenRow {
    let (pc, pa): (Option<i64>, Option<i64>) = (r.get(6), r.get(7));
    TokenRow {
        serial: r.get(0),
        digits: u8::try_from(r.get::<_, i16>(1)).unwrap_or(0),
        period: r.get::<_, Option<i32>>(2).map(|p| p.unsigned_abs()),
        seed: r.get(3),
        state: TokenState {
            counter: uint(r.get(4)),
            last_step: r.get::<_, Option<i64>>(5).map(uint),
            pending: pc.zip(pa).map(|(c, a)| (uint(c), uint(a))),
        },
    }
}

const TOKEN_COLUMNS: &str =
    "SELECT serial, digits, period, seed, counter, last_step, resync_counter, resync_at FROM tokens";

/// Save a token's new state if it is still the state that was read (`was`);
/// false when another transaction changed it first.
async fn save_token_state(
    tx: &Transaction<'_>,
    serial: &str,
    was: TokenState,
    s: TokenState,
) -> Result<bool, StorageError> {
    let n = tx
        .execute(
            "UPDATE tokens SET counter = $1, last_step = $2, resync_counter = $3, resync_at = $4 \
             WHERE serial = $5 AND counter = $6 AND last_step IS NOT DISTINCT FROM $7",
            &[
                &int(s.counter),
                &s.last_step.map(int),
                &s.pending.map(|p| int(p.0)),
                &s.pending.map(|p| int(p.1)),
                &serial,
                &int(was.counter),
                &was.last_step.map(int),
            ],
        )
        .await?;
    Ok(n == 1)
}

pub(super) async fn verify_token(
    c: &mut Client,
    sealer: &Sealer,
    who: &UserRef,
    code: &str,
    now: u64,
) -> Result<Verify, StorageError> {
    let tx = c.transaction().await?;
    // Locked in serial order, so two checks of one user never deadlock.
    let rows = tx
        .query(
            &format!(
                "{TOKEN_COLUMNS} WHERE realm = $1 AND username = $2 ORDER BY serial FOR UPDATE"
            ),
            &[&who.realm, &who.user],
        )
        .await?;
    let (mut needs, mut replay) = (None, None);
    for row in rows.iter().map(token_row) {
        let secret = open_seed(sealer, &row.seed, &token_aad(&row.serial))?;
        let gen = Hotp::new(&secret, row.digits);
        let (check, state) = check_token(&gen, row.period, row.state, code, now);
        let by = Credential::Token(row.serial.clone());
        if state != row.state && !save_token_state(&tx, &row.serial, row.state, state).await? {
            // Moved under us despite the lock: use nothing, accept nothing.
            return Ok(Verify::Replay { by });
        }
        match check {
            TokenCheck::Accepted { resynced } => {
                tx.commit().await?;
                if resynced {
                    tracing::info!(credential = %by, "token resynchronised by two consecutive codes");
                }
                return Ok(Verify::Accepted { by, resynced });
            }
            TokenCheck::NeedsNextCode => needs = needs.or(Some(by)),
            TokenCheck::Replay => replay = replay.or(Some(by)),
            TokenCheck::NoMatch => {}
        }
    }
    tx.commit().await?;
    Ok(match (needs, replay) {
        (Some(by), _) => Verify::NeedsNextCode { by },
        (None, Some(by)) => Verify::Replay { by },
        (None, None) => Verify::Rejected,
    })
}

pub(super) async fn resync_token(
    c: &mut Client,
    sealer: &Sealer,
    serial: &str,
    code1: &str,
    code2: &str,
) -> Result<Option<u64>, StorageError> {
    let tx = c.transaction().await?;
    let row = tx
        .query_opt(
            &format!("{TOKEN_COLUMNS} WHERE serial = $1 FOR UPDATE"),
            &[&serial],
        )
        .await?
        .map(|r| token_row(&r))
        .ok_or_else(|| StorageError::UnknownToken(serial.to_string()))?;
    if row.period.is_some() {
        return Err(StorageError::NotHotp(serial.to_string()));
    }
    let secret = open_seed(sealer, &row.seed, &token_aad(serial))?;
    let gen = Hotp::new(&secret, row.digits);
    let Some(first) = find_consecutive(
        &gen,
        code1,
        code2,
        row.state.counter,
        ADMIN_RESYNC_LOOKAHEAD,
    ) else {
        return Ok(None);
    };
    let next = first.saturating_add(2);
    let new = TokenState {
        counter: next,
        last_step: None,
        pending: None,
    };
    if !save_token_state(&tx, serial, row.state, new).await? {
        return Ok(None);
    }
    tx.commit().await?;
    Ok(Some(next))
}

pub(super) async fn import_tokens(
    c: &mut Client,
    sealer: &Sealer,
    tokens: Vec<TokenRecord>,
    now_ms: u64,
) -> Result<usize, StorageError> {
    for t in &tokens {
        if t.secret.len() < MIN_SECRET_BYTES {
            return Err(StorageError::WeakSecret {
                bits: t.secret.len() * 8,
                min: MIN_SECRET_BYTES * 8,
            });
        }
    }
    let tx = c.transaction().await?;
    let serials: Vec<&str> = tokens.iter().map(|t| t.serial.as_str()).collect();
    let present: Vec<String> = tx
        .query(
            "SELECT serial FROM tokens WHERE serial = ANY($1)",
            &[&serials],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    // In the order of the import, as SQLite reports them.
    let dup: Vec<String> = serials
        .iter()
        .filter(|s| present.iter().any(|p| p == *s))
        .map(|s| s.to_string())
        .collect();
    if !dup.is_empty() {
        return Err(StorageError::DuplicateSerials(dup));
    }
    let insert = tx
        .prepare(
            "INSERT INTO tokens (serial, kind, digits, period, counter, seed, imported_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .await?;
    for t in &tokens {
        let seed = sealer
            .seal(&t.secret, &token_aad(&t.serial))
            .map_err(|source| StorageError::Seal {
                what: format!("token:{}", t.serial),
                source,
            })?;
        let (period, counter) = match t.mode {
            TokenMode::Hotp { counter } => (None, counter),
            TokenMode::Totp { period } => (Some(i32::try_from(period).unwrap_or(i32::MAX)), 0),
        };
        tx.execute(
            &insert,
            &[
                &t.serial,
                &t.mode.kind().as_str(),
                &i16::from(t.digits),
                &period,
                &int(counter),
                &seed,
                &int(now_ms),
            ],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(tokens.len())
}

pub(super) async fn add_totp_device(
    c: &Client,
    sealer: &Sealer,
    who: &UserRef,
    description: &str,
    secret: &[u8],
    now_ms: u64,
) -> Result<i64, StorageError> {
    // The AAD names the row id: take the id first, then insert the sealed seed.
    let id: i64 = c
        .query_one(
            "SELECT nextval(pg_get_serial_sequence('totp_devices', 'id'))",
            &[],
        )
        .await?
        .get(0);
    let seed = sealer
        .seal(secret, &totp_aad(id, who))
        .map_err(|source| StorageError::Seal {
            what: format!("totp:{id}"),
            source,
        })?;
    c.execute(
        "INSERT INTO totp_devices (id, realm, username, description, seed, added_ms) \
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &id,
            &who.realm,
            &who.user,
            &description,
            &seed,
            &int(now_ms),
        ],
    )
    .await?;
    Ok(id)
}

/// Who has the token (None: unassigned), its row locked; an unknown serial is an error.
async fn token_owner(tx: &Transaction<'_>, serial: &str) -> Result<Option<UserRef>, StorageError> {
    let row = tx
        .query_opt(
            "SELECT realm, username FROM tokens WHERE serial = $1 FOR UPDATE",
            &[&serial],
        )
        .await?
        .ok_or_else(|| StorageError::UnknownToken(serial.to_string()))?;
    let (realm, user): (Option<String>, Option<String>) = (row.get(0), row.get(1));
    // The schema keeps the two NULL together; a half-set row counts as taken.
    Ok(match (realm, user) {
        (None, None) => None,
        (realm, user) => Some(UserRef::new(
            realm.unwrap_or_default(),
            user.unwrap_or_default(),
        )),
    })
}

/// Sets a token free (the condition is appended); its counter stays, it is the token's.
const FREE_TOKENS: &str = "UPDATE tokens SET realm = NULL, username = NULL, assigned_ms = NULL, \
                           resync_counter = NULL, resync_at = NULL WHERE ";

pub(super) async fn assign_token(
    c: &mut Client,
    serial: &str,
    who: &UserRef,
    now_ms: u64,
) -> Result<(), StorageError> {
    let tx = c.transaction().await?;
    match token_owner(&tx, serial).await? {
        Some(owner) if owner == *who => return Ok(()),
        Some(owner) => {
            return Err(StorageError::AlreadyAssigned {
                serial: serial.to_string(),
                owner,
            })
        }
        None => {}
    }
    tx.execute(
        "UPDATE tokens SET realm = $1, username = $2, assigned_ms = $3, resync_counter = NULL, \
         resync_at = NULL WHERE serial = $4",
        &[&who.realm, &who.user, &int(now_ms), &serial],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn unassign_token(
    c: &mut Client,
    serial: &str,
) -> Result<Option<UserRef>, StorageError> {
    let tx = c.transaction().await?;
    let was = token_owner(&tx, serial).await?;
    tx.execute(&format!("{FREE_TOKENS}serial = $1"), &[&serial])
        .await?;
    tx.commit().await?;
    Ok(was)
}

pub(super) async fn reset_user(c: &mut Client, who: &UserRef) -> Result<Enrolments, StorageError> {
    let tx = c.transaction().await?;
    // Lock the user's token rows first, so what is reported is what is freed.
    tx.execute(
        "SELECT 1 FROM tokens WHERE realm = $1 AND username = $2 FOR UPDATE",
        &[&who.realm, &who.user],
    )
    .await?;
    let mut had = read_enrolments(&tx, who).await?;
    let keys: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&who.realm, &who.user];
    tx.execute(
        "DELETE FROM sms_numbers WHERE realm = $1 AND username = $2",
        &keys,
    )
    .await?;
    tx.execute(
        "DELETE FROM totp_devices WHERE realm = $1 AND username = $2",
        &keys,
    )
    .await?;
    had.passkeys = remove_passkeys(&tx, who).await?;
    tx.execute(&format!("{FREE_TOKENS}realm = $1 AND username = $2"), &keys)
        .await?;
    tx.commit().await?;
    Ok(had)
}
