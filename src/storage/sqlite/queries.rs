//! The work behind the methods of [`SqliteStore`](super::SqliteStore):
//! blocking functions on the connection, each its own transaction, which
//! `SqliteStore::call` runs on the blocking pool. Seeds are opened here,
//! checked by the pure rules in [`crate::factors`], and the new state is
//! saved before the commit.

use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};

use super::passkeys::{read_passkeys, remove_all as remove_passkeys};
use super::{int, uint};
use crate::factors::token::{
    check_token, find_consecutive, Hotp, TokenCheck, TokenState, ADMIN_RESYNC_LOOKAHEAD,
    MIN_SECRET_BYTES,
};
use crate::factors::totp::{self, check_steps, StepCheck};
use crate::storage::{
    Credential, Enrolments, Sealer, SmsNumber, StorageError, TokenInfo, TokenKind, TokenMode,
    TokenRecord, TotpDevice, UserRef, Verify,
};

/// The associated data of seeds sealed before realms were stored (schema 1);
/// read only while adopting such rows.
pub(super) fn legacy_totp_aad(id: i64, user: &str) -> Vec<u8> {
    format!("totp:{id}:{user}").into_bytes()
}

pub(super) use crate::storage::crypto::{open_seed, token_aad, totp_aad};

fn immediate(conn: &mut Connection) -> Result<Transaction<'_>, StorageError> {
    Ok(conn.transaction_with_behavior(TransactionBehavior::Immediate)?)
}

pub(super) fn read_sms(conn: &Connection, who: &UserRef) -> Result<Vec<SmsNumber>, StorageError> {
    let mut st = conn.prepare_cached(
        "SELECT position, e164, added_ms FROM sms_numbers WHERE realm = ?1 AND username = ?2 \
         ORDER BY position",
    )?;
    let rows = st.query_map([&who.realm, &who.user], |r| {
        Ok(SmsNumber {
            position: r.get(0)?,
            e164: r.get(1)?,
            added_ms: uint(r.get(2)?),
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(super) fn read_devices(
    conn: &Connection,
    who: &UserRef,
) -> Result<Vec<TotpDevice>, StorageError> {
    let mut st = conn.prepare_cached(
        "SELECT id, description, added_ms, last_step FROM totp_devices \
         WHERE realm = ?1 AND username = ?2 ORDER BY id",
    )?;
    let rows = st.query_map([&who.realm, &who.user], |r| {
        let last: Option<i64> = r.get(3)?;
        Ok(TotpDevice {
            id: r.get(0)?,
            description: r.get(1)?,
            added_ms: uint(r.get(2)?),
            last_used_secs: last.map(|s| uint(s).saturating_mul(totp::PERIOD)),
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(super) fn read_tokens(
    conn: &Connection,
    who: &UserRef,
) -> Result<Vec<TokenInfo>, StorageError> {
    let mut st = conn.prepare_cached(
        "SELECT serial, kind, digits, period, assigned_ms FROM tokens \
         WHERE realm = ?1 AND username = ?2 ORDER BY serial",
    )?;
    let rows = st.query_map([&who.realm, &who.user], |r| {
        let kind: String = r.get(1)?;
        let assigned: Option<i64> = r.get(4)?;
        Ok(TokenInfo {
            serial: r.get(0)?,
            kind: if kind == "totp" {
                TokenKind::Totp
            } else {
                TokenKind::Hotp
            },
            digits: r.get(2)?,
            period: r.get(3)?,
            assigned_ms: assigned.map(uint),
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(super) fn read_enrolments(
    conn: &Connection,
    who: &UserRef,
) -> Result<Enrolments, StorageError> {
    Ok(Enrolments {
        sms: read_sms(conn, who)?,
        totp: read_devices(conn, who)?,
        tokens: read_tokens(conn, who)?,
        passkeys: read_passkeys(conn, who)?,
    })
}

pub(super) fn verify_totp(
    conn: &mut Connection,
    sealer: &Sealer,
    who: &UserRef,
    code: &str,
    now: u64,
) -> Result<Verify, StorageError> {
    let tx = immediate(conn)?;
    let devices: Vec<(i64, Vec<u8>, Option<i64>)> = {
        let mut st = tx.prepare_cached(
            "SELECT id, seed, last_step FROM totp_devices WHERE realm = ?1 AND username = ?2 \
             ORDER BY id",
        )?;
        let rows = st.query_map([&who.realm, &who.user], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
        rows.collect::<Result<_, _>>()?
    };
    let mut replay = None;
    for (id, seed, last) in devices {
        let secret = open_seed(sealer, &seed, &totp_aad(id, who))?;
        let gen = Hotp::new(&secret, totp::DIGITS);
        match check_steps(&gen, code, now, totp::PERIOD, last.map(uint)) {
            StepCheck::Accepted { step } => {
                tx.execute(
                    "UPDATE totp_devices SET last_step = ?1 WHERE id = ?2",
                    params![int(step), id],
                )?;
                tx.commit()?;
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

/// One token as loaded for a check.
struct TokenRow {
    serial: String,
    digits: u8,
    period: Option<u32>,
    seed: Vec<u8>,
    state: TokenState,
}

/// Which tokens to load: one by serial, or all of one user.
enum TokensOf<'a> {
    Serial(&'a str),
    User(&'a UserRef),
}

fn load_token_rows(tx: &Transaction<'_>, of: TokensOf<'_>) -> Result<Vec<TokenRow>, StorageError> {
    const COLUMNS: &str =
        "SELECT serial, digits, period, seed, counter, last_step, resync_counter, resync_at FROM tokens";
    let (sql, keys) = match of {
        TokensOf::Serial(serial) => (format!("{COLUMNS} WHERE serial = ?1"), vec![serial]),
        TokensOf::User(who) => (
            format!("{COLUMNS} WHERE realm = ?1 AND username = ?2 ORDER BY serial"),
            vec![who.realm.as_str(), who.user.as_str()],
        ),
    };
    let mut st = tx.prepare_cached(&sql)?;
    let rows = st.query_map(rusqlite::params_from_iter(keys), |r| {
        let (last, pc, pa): (Option<i64>, Option<i64>, Option<i64>) =
            (r.get(5)?, r.get(6)?, r.get(7)?);
        Ok(TokenRow {
            serial: r.get(0)?,
            digits: r.get(1)?,
            period: r.get(2)?,
            seed: r.get(3)?,
            state: TokenState {
                counter: uint(r.get(4)?),
                last_step: last.map(uint),
                pending: pc.zip(pa).map(|(c, a)| (uint(c), uint(a))),
            },
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn save_token_state(tx: &Transaction<'_>, serial: &str, s: TokenState) -> Result<(), StorageError> {
    tx.execute(
        "UPDATE tokens SET counter = ?1, last_step = ?2, resync_counter = ?3, resync_at = ?4 WHERE serial = ?5",
        params![
            int(s.counter),
            s.last_step.map(int),
            s.pending.map(|p| int(p.0)),
            s.pending.map(|p| int(p.1)),
            serial
        ],
    )?;
    Ok(())
}

pub(super) fn verify_token(
    conn: &mut Connection,
    sealer: &Sealer,
    who: &UserRef,
    code: &str,
    now: u64,
) -> Result<Verify, StorageError> {
    let tx = immediate(conn)?;
    let rows = load_token_rows(&tx, TokensOf::User(who))?;
    let (mut needs, mut replay) = (None, None);
    for row in rows {
        let secret = open_seed(sealer, &row.seed, &token_aad(&row.serial))?;
        let gen = Hotp::new(&secret, row.digits);
        let (check, state) = check_token(&gen, row.period, row.state, code, now);
        if state != row.state {
            save_token_state(&tx, &row.serial, state)?;
        }
        let by = Credential::Token(row.serial);
        match check {
            TokenCheck::Accepted { resynced } => {
                tx.commit()?;
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
    tx.commit()?;
    Ok(match (needs, replay) {
        (Some(by), _) => Verify::NeedsNextCode { by },
        (None, Some(by)) => Verify::Replay { by },
        (None, None) => Verify::Rejected,
    })
}

pub(super) fn resync_token(
    conn: &mut Connection,
    sealer: &Sealer,
    serial: &str,
    code1: &str,
    code2: &str,
) -> Result<Option<u64>, StorageError> {
    let tx = immediate(conn)?;
    let row = load_token_rows(&tx, TokensOf::Serial(serial))?
        .pop()
        .ok_or_else(|| StorageError::UnknownToken(serial.to_string()))?;
    if row.period.is_some() {
        return Err(StorageError::NotHotp(serial.to_string()));
    }
    let secret = open_seed(sealer, &row.seed, &token_aad(serial))?;
    let gen = Hotp::new(&secret, row.digits);
    let from = row.state.counter;
    let Some(first) = find_consecutive(&gen, code1, code2, from, ADMIN_RESYNC_LOOKAHEAD) else {
        return Ok(None);
    };
    let next = first.saturating_add(2);
    save_token_state(
        &tx,
        serial,
        TokenState {
            counter: next,
            last_step: None,
            pending: None,
        },
    )?;
    tx.commit()?;
    Ok(Some(next))
}

pub(super) fn import_tokens(
    conn: &mut Connection,
    sealer: &Sealer,
    tokens: Vec<TokenRecord>,
    now_ms: u64,
) -> Result<usize, StorageError> {
    let tx = immediate(conn)?;
    let mut dup = Vec::new();
    for t in &tokens {
        if t.secret.len() < MIN_SECRET_BYTES {
            return Err(StorageError::WeakSecret {
                bits: t.secret.len() * 8,
                min: MIN_SECRET_BYTES * 8,
            });
        }
        let exists = tx
            .query_row(
                "SELECT 1 FROM tokens WHERE serial = ?1",
                [&t.serial],
                |_| Ok(()),
            )
            .optional()?;
        if exists.is_some() {
            dup.push(t.serial.clone());
        }
    }
    if !dup.is_empty() {
        return Err(StorageError::DuplicateSerials(dup));
    }
    for t in &tokens {
        let seed = sealer
            .seal(&t.secret, &token_aad(&t.serial))
            .map_err(|source| StorageError::Seal {
                what: format!("token:{}", t.serial),
                source,
            })?;
        let (period, counter) = match t.mode {
            TokenMode::Hotp { counter } => (None, counter),
            TokenMode::Totp { period } => (Some(period), 0),
        };
        tx.execute(
            "INSERT INTO tokens (serial, kind, digits, period, counter, seed, imported_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                t.serial,
                t.mode.kind().as_str(),
                t.digits,
                period,
                int(counter),
                seed,
                int(now_ms)
            ],
        )?;
    }
    tx.commit()?;
    Ok(tokens.len())
}

pub(super) fn add_totp_device(
    conn: &mut Connection,
    sealer: &Sealer,
    who: &UserRef,
    description: &str,
    secret: &[u8],
    now_ms: u64,
) -> Result<i64, StorageError> {
    let tx = immediate(conn)?;
    // The AAD names the row id, known only after the insert: insert, then seal.
    tx.execute(
        "INSERT INTO totp_devices (realm, username, description, seed, added_ms) \
         VALUES (?1, ?2, ?3, X'', ?4)",
        params![who.realm, who.user, description, int(now_ms)],
    )?;
    let id = tx.last_insert_rowid();
    let aad = totp_aad(id, who);
    let seed = sealer
        .seal(secret, &aad)
        .map_err(|source| StorageError::Seal {
            what: format!("totp:{id}"),
            source,
        })?;
    tx.execute(
        "UPDATE totp_devices SET seed = ?1 WHERE id = ?2",
        params![seed, id],
    )?;
    tx.commit()?;
    Ok(id)
}

/// Who has the token (None: unassigned); an unknown serial is an error.
fn token_owner(tx: &Transaction<'_>, serial: &str) -> Result<Option<UserRef>, StorageError> {
    let row: Option<(Option<String>, Option<String>)> = tx
        .query_row(
            "SELECT realm, username FROM tokens WHERE serial = ?1",
            [serial],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let (realm, user) = row.ok_or_else(|| StorageError::UnknownToken(serial.to_string()))?;
    // The schema keeps the two NULL together; a half-set row counts as taken
    // by nobody one could name, so it is not handed out either.
    Ok(match (realm, user) {
        (Some(realm), Some(user)) => Some(UserRef { realm, user }),
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

pub(super) fn assign_token(
    conn: &mut Connection,
    serial: &str,
    who: &UserRef,
    now_ms: u64,
) -> Result<(), StorageError> {
    let tx = immediate(conn)?;
    match token_owner(&tx, serial)? {
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
        "UPDATE tokens SET realm = ?1, username = ?2, assigned_ms = ?3, resync_counter = NULL, \
         resync_at = NULL WHERE serial = ?4",
        params![who.realm, who.user, int(now_ms), serial],
    )?;
    tx.commit()?;
    Ok(())
}

pub(super) fn unassign_token(
    conn: &mut Connection,
    serial: &str,
) -> Result<Option<UserRef>, StorageError> {
    let tx = immediate(conn)?;
    let was = token_owner(&tx, serial)?;
    tx.execute(&format!("{FREE_TOKENS}serial = ?1"), [serial])?;
    tx.commit()?;
    Ok(was)
}

pub(super) fn reset_user(conn: &mut Connection, who: &UserRef) -> Result<Enrolments, StorageError> {
    let tx = immediate(conn)?;
    let had = read_enrolments(&tx, who)?;
    let keys = [&who.realm, &who.user];
    tx.execute(
        "DELETE FROM sms_numbers WHERE realm = ?1 AND username = ?2",
        keys,
    )?;
    tx.execute(
        "DELETE FROM totp_devices WHERE realm = ?1 AND username = ?2",
        keys,
    )?;
    remove_passkeys(&tx, who)?;
    tx.execute(&format!("{FREE_TOKENS}realm = ?1 AND username = ?2"), keys)?;
    tx.commit()?;
    Ok(had)
}
