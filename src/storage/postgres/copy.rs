//! [`Copyable`] for PostgreSQL: read in one repeatable-read snapshot, filled
//! in one transaction that holds the tables against gateways writing meanwhile.

use async_trait::async_trait;
use tokio_postgres::IsolationLevel;

use super::PostgresStore;
use crate::storage::copy::{
    insert_sql, must_be_empty, owner, Copyable, DeviceRow, PasskeyRow, SmsRow, Snapshot, TokenRow,
    COUNT_ALL, DEVICE_COLUMNS, PASSKEY_COLUMNS, SMS_COLUMNS, TOKEN_COLUMNS,
};
use crate::storage::{StorageError, UserRef};

/// The sequence behind `totp_devices.id` (GENERATED … AS IDENTITY).
const DEVICE_SEQUENCE: &str = "totp_devices_id_seq";
/// The sequence behind `passkeys.id`.
const PASSKEY_SEQUENCE: &str = "passkeys_id_seq";

/// The highest id `sequence` has issued (0: none yet).
async fn high_water(
    tx: &tokio_postgres::Transaction<'_>,
    sequence: &str,
) -> Result<i64, StorageError> {
    Ok(tx
        .query_one(
            &format!("SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM {sequence}"),
            &[],
        )
        .await?
        .get(0))
}

/// Back to the snapshot's integers (the columns are narrower, never wider).
fn wide(v: impl Into<i64>) -> i64 {
    v.into()
}

/// SMALLINT and INTEGER columns from the snapshot's integers.
fn narrow<T: TryFrom<i64>>(v: i64, what: &str) -> Result<T, StorageError> {
    T::try_from(v).map_err(|_| StorageError::CopyMismatch(format!("{what} {v} out of range")))
}

#[async_trait]
impl Copyable for PostgresStore {
    async fn snapshot(&self) -> Result<Snapshot, StorageError> {
        self.bounded_long(async {
            let mut c = self.client().await?;
            let c: &mut tokio_postgres::Client = &mut c;
            let tx = c
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await?;
            let sms = tx
                .query(&format!("SELECT {SMS_COLUMNS} FROM sms_numbers"), &[])
                .await?
                .iter()
                .map(|r| SmsRow {
                    who: UserRef::new(r.get::<_, String>(0), r.get::<_, String>(1)),
                    position: wide(r.get::<_, i16>(2)),
                    e164: r.get(3),
                    added_ms: r.get(4),
                })
                .collect();
            let devices: Vec<DeviceRow> = tx
                .query(&format!("SELECT {DEVICE_COLUMNS} FROM totp_devices"), &[])
                .await?
                .iter()
                .map(|r| DeviceRow {
                    id: r.get(0),
                    who: UserRef::new(r.get::<_, String>(1), r.get::<_, String>(2)),
                    description: r.get(3),
                    seed: r.get(4),
                    added_ms: r.get(5),
                    last_step: r.get(6),
                })
                .collect();
            let tokens = tx
                .query(&format!("SELECT {TOKEN_COLUMNS} FROM tokens"), &[])
                .await?
                .iter()
                .map(|r| TokenRow {
                    serial: r.get(0),
                    kind: r.get(1),
                    digits: wide(r.get::<_, i16>(2)),
                    period: r.get::<_, Option<i32>>(3).map(wide),
                    counter: r.get(4),
                    last_step: r.get(5),
                    seed: r.get(6),
                    imported_ms: r.get(7),
                    owner: owner(r.get(8), r.get(9)),
                    assigned_ms: r.get(10),
                    resync_counter: r.get(11),
                    resync_at: r.get(12),
                })
                .collect();
            let passkeys: Vec<PasskeyRow> = tx
                .query(&format!("SELECT {PASSKEY_COLUMNS} FROM passkeys"), &[])
                .await?
                .iter()
                .map(|r| PasskeyRow {
                    id: r.get(0),
                    who: UserRef::new(r.get::<_, String>(1), r.get::<_, String>(2)),
                    description: r.get(3),
                    credential_id: r.get(4),
                    key: r.get(5),
                    counter: r.get(6),
                    added_ms: r.get(7),
                    last_used_ms: r.get(8),
                })
                .collect();
            let device_high = high_water(&tx, DEVICE_SEQUENCE).await?;
            let passkey_high = high_water(&tx, PASSKEY_SEQUENCE).await?;
            tx.commit().await?;
            let max_device = devices.iter().map(|d: &DeviceRow| d.id).max().unwrap_or(0);
            let max_passkey = passkeys.iter().map(|p| p.id).max().unwrap_or(0);
            Ok(Snapshot {
                sms,
                devices,
                tokens,
                device_id_high_water: device_high.max(max_device),
                passkeys,
                passkey_id_high_water: passkey_high.max(max_passkey),
            })
        })
        .await
    }

    async fn restore(&self, rows: &Snapshot) -> Result<(), StorageError> {
        self.bounded_long(async {
            let mut c = self.client().await?;
            let tx = c.transaction().await?;
            // No gateway writes between the emptiness check and the commit.
            tx.batch_execute(
                "LOCK TABLE sms_numbers, totp_devices, tokens, passkeys IN EXCLUSIVE MODE",
            )
            .await?;
            let n = tx.query_one(COUNT_ALL, &[]).await?;
            must_be_empty([n.get(0), n.get(1), n.get(2), n.get(3)])?;
            let st = tx
                .prepare(&insert_sql("sms_numbers", SMS_COLUMNS, '$'))
                .await?;
            for r in &rows.sms {
                let position: i16 = narrow(r.position, "sms position")?;
                tx.execute(
                    &st,
                    &[&r.who.realm, &r.who.user, &position, &r.e164, &r.added_ms],
                )
                .await?;
            }
            let st = tx
                .prepare(&insert_sql("totp_devices", DEVICE_COLUMNS, '$'))
                .await?;
            for r in &rows.devices {
                tx.execute(
                    &st,
                    &[
                        &r.id,
                        &r.who.realm,
                        &r.who.user,
                        &r.description,
                        &r.seed,
                        &r.added_ms,
                        &r.last_step,
                    ],
                )
                .await?;
            }
            let st = tx
                .prepare(&insert_sql("tokens", TOKEN_COLUMNS, '$'))
                .await?;
            for r in &rows.tokens {
                let digits: i16 = narrow(r.digits, "token digits")?;
                let period: Option<i32> =
                    r.period.map(|p| narrow(p, "token period")).transpose()?;
                let realm = r.owner.as_ref().map(|o| o.realm.as_str());
                let user = r.owner.as_ref().map(|o| o.user.as_str());
                tx.execute(
                    &st,
                    &[
                        &r.serial,
                        &r.kind,
                        &digits,
                        &period,
                        &r.counter,
                        &r.last_step,
                        &r.seed,
                        &r.imported_ms,
                        &realm,
                        &user,
                        &r.assigned_ms,
                        &r.resync_counter,
                        &r.resync_at,
                    ],
                )
                .await?;
            }
            let st = tx
                .prepare(&insert_sql("passkeys", PASSKEY_COLUMNS, '$'))
                .await?;
            for r in &rows.passkeys {
                tx.execute(
                    &st,
                    &[
                        &r.id,
                        &r.who.realm,
                        &r.who.user,
                        &r.description,
                        &r.credential_id,
                        &r.key,
                        &r.counter,
                        &r.added_ms,
                        &r.last_used_ms,
                    ],
                )
                .await?;
            }
            // Rows inserted with their ids do not move the identity
            // sequences: set each to the source's high water, so the next
            // device or passkey gets a fresh id and retired ids stay retired.
            for (sequence, high) in [
                (DEVICE_SEQUENCE, rows.device_id_high_water),
                (PASSKEY_SEQUENCE, rows.passkey_id_high_water),
            ] {
                if high > 0 {
                    tx.execute(&format!("SELECT setval('{sequence}', $1, true)"), &[&high])
                        .await?;
                }
            }
            tx.commit().await?;
            Ok(())
        })
        .await
    }
}
