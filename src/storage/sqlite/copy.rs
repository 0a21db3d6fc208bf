//! [`Copyable`] for SQLite: the file read in one transaction, or filled in one.

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::legacy::legacy_users;
use super::SqliteStore;
use crate::storage::copy::{
    insert_sql, must_be_empty, owner, Copyable, DeviceRow, PasskeyRow, SmsRow, Snapshot, TokenRow,
    COUNT_ALL, DEVICE_COLUMNS, PASSKEY_COLUMNS, SMS_COLUMNS, TOKEN_COLUMNS,
};
use crate::storage::{StorageError, UserRef};

#[async_trait]
impl Copyable for SqliteStore {
    async fn snapshot(&self) -> Result<Snapshot, StorageError> {
        self.call(|conn, _| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
            let legacy = legacy_users(&tx)?;
            if !legacy.is_empty() {
                return Err(StorageError::LegacyNotAdopted(legacy.len()));
            }
            let snapshot = read_all(&tx)?;
            tx.commit()?;
            Ok(snapshot)
        })
        .await
    }

    async fn restore(&self, rows: &Snapshot) -> Result<(), StorageError> {
        let rows = rows.clone();
        self.call(move |conn, _| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let counts = tx.query_row(COUNT_ALL, [], |r| {
                Ok([r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?])
            })?;
            must_be_empty(counts)?;
            let mut st = tx.prepare(&insert_sql("sms_numbers", SMS_COLUMNS, '?'))?;
            for r in &rows.sms {
                st.execute(params![
                    r.who.realm,
                    r.who.user,
                    r.position,
                    r.e164,
                    r.added_ms
                ])?;
            }
            drop(st);
            let mut st = tx.prepare(&insert_sql("totp_devices", DEVICE_COLUMNS, '?'))?;
            for r in &rows.devices {
                st.execute(params![
                    r.id,
                    r.who.realm,
                    r.who.user,
                    r.description,
                    r.seed,
                    r.added_ms,
                    r.last_step
                ])?;
            }
            drop(st);
            let mut st = tx.prepare(&insert_sql("tokens", TOKEN_COLUMNS, '?'))?;
            for r in &rows.tokens {
                let (realm, user) = r.owner.as_ref().map(|o| (&o.realm, &o.user)).unzip();
                st.execute(params![
                    r.serial,
                    r.kind,
                    r.digits,
                    r.period,
                    r.counter,
                    r.last_step,
                    r.seed,
                    r.imported_ms,
                    realm,
                    user,
                    r.assigned_ms,
                    r.resync_counter,
                    r.resync_at
                ])?;
            }
            drop(st);
            let mut st = tx.prepare(&insert_sql("passkeys", PASSKEY_COLUMNS, '?'))?;
            for r in &rows.passkeys {
                st.execute(params![
                    r.id,
                    r.who.realm,
                    r.who.user,
                    r.description,
                    r.credential_id,
                    r.key,
                    r.counter,
                    r.added_ms,
                    r.last_used_ms
                ])?;
            }
            drop(st);
            // AUTOINCREMENT remembers the highest id inserted; raise it to the
            // source's high water so removed devices' and passkeys' ids stay retired.
            for (table, high) in [
                ("totp_devices", rows.device_id_high_water),
                ("passkeys", rows.passkey_id_high_water),
            ] {
                tx.execute("DELETE FROM sqlite_sequence WHERE name = ?1", [table])?;
                tx.execute(
                    "INSERT INTO sqlite_sequence (name, seq) VALUES (?1, ?2)",
                    params![table, high],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }
}

fn read_all(conn: &Connection) -> Result<Snapshot, StorageError> {
    let mut st = conn.prepare(&format!("SELECT {SMS_COLUMNS} FROM sms_numbers"))?;
    let sms = st
        .query_map([], |r| {
            Ok(SmsRow {
                who: UserRef::new(r.get::<_, String>(0)?, r.get::<_, String>(1)?),
                position: r.get(2)?,
                e164: r.get(3)?,
                added_ms: r.get(4)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    let mut st = conn.prepare(&format!("SELECT {DEVICE_COLUMNS} FROM totp_devices"))?;
    let devices = st
        .query_map([], |r| {
            Ok(DeviceRow {
                id: r.get(0)?,
                who: UserRef::new(r.get::<_, String>(1)?, r.get::<_, String>(2)?),
                description: r.get(3)?,
                seed: r.get(4)?,
                added_ms: r.get(5)?,
                last_step: r.get(6)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let mut st = conn.prepare(&format!("SELECT {TOKEN_COLUMNS} FROM tokens"))?;
    let tokens = st
        .query_map([], |r| {
            Ok(TokenRow {
                serial: r.get(0)?,
                kind: r.get(1)?,
                digits: r.get(2)?,
                period: r.get(3)?,
                counter: r.get(4)?,
                last_step: r.get(5)?,
                seed: r.get(6)?,
                imported_ms: r.get(7)?,
                owner: owner(r.get(8)?, r.get(9)?),
                assigned_ms: r.get(10)?,
                resync_counter: r.get(11)?,
                resync_at: r.get(12)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    let mut st = conn.prepare(&format!("SELECT {PASSKEY_COLUMNS} FROM passkeys"))?;
    let passkeys = st
        .query_map([], |r| {
            Ok(PasskeyRow {
                id: r.get(0)?,
                who: UserRef::new(r.get::<_, String>(1)?, r.get::<_, String>(2)?),
                description: r.get(3)?,
                credential_id: r.get(4)?,
                key: r.get(5)?,
                counter: r.get(6)?,
                added_ms: r.get(7)?,
                last_used_ms: r.get(8)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let max_device = devices.iter().map(|d| d.id).max().unwrap_or(0);
    let max_passkey = passkeys.iter().map(|p| p.id).max().unwrap_or(0);
    Ok(Snapshot {
        sms,
        devices,
        tokens,
        device_id_high_water: high_water(conn, "totp_devices")?.max(max_device),
        passkeys,
        passkey_id_high_water: high_water(conn, "passkeys")?.max(max_passkey),
    })
}

/// The highest id AUTOINCREMENT has issued for `table` (0: none yet).
fn high_water(conn: &Connection, table: &str) -> Result<i64, StorageError> {
    let seq: Option<i64> = conn
        .query_row(
            "SELECT seq FROM sqlite_sequence WHERE name = ?1",
            [table],
            |r| r.get(0),
        )
        .optional()?;
    Ok(seq.unwrap_or(0))
}
