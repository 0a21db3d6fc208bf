//! The embedded backend: one SQLite file in WAL mode, so the admin CLI can
//! write while the gateway runs. Migrations run on open.
//!
//! rusqlite blocks, so every call runs on tokio's blocking pool with the one
//! connection behind a std `Mutex` (held only inside that blocking task, never
//! across an `.await`). Read-modify-write (code checks) uses `BEGIN IMMEDIATE`,
//! which also serialises against other processes on the same file.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};

use super::{
    check_description, check_e164, check_user, Credential, EnrolmentStore, Enrolments, Sealer,
    SmsNumber, StorageError, TokenInfo, TokenKind, TokenMode, TokenRecord, TotpDevice, Verify,
    MAX_SMS_NUMBERS,
};
use crate::factors::token::{
    check_token, find_consecutive, Hotp, TokenCheck, TokenState, ADMIN_RESYNC_LOOKAHEAD,
    MIN_SECRET_BYTES,
};
use crate::factors::totp::{self, check_steps, StepCheck};

/// Schema changes in order; entry `i` takes the file from version `i` to
/// `i + 1` (`PRAGMA user_version`). Append only; never edit a shipped entry.
const MIGRATIONS: &[&str] = &[
    // 1: enrolments, token state.
    "CREATE TABLE sms_numbers (
        username TEXT NOT NULL,
        position INTEGER NOT NULL CHECK (position IN (0, 1)),
        e164 TEXT NOT NULL,
        added_ms INTEGER NOT NULL,
        PRIMARY KEY (username, position)
    ) STRICT;
    CREATE TABLE totp_devices (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        username TEXT NOT NULL,
        description TEXT NOT NULL,
        seed BLOB NOT NULL,
        added_ms INTEGER NOT NULL,
        last_step INTEGER
    ) STRICT;
    CREATE INDEX totp_devices_by_user ON totp_devices (username);
    CREATE TABLE tokens (
        serial TEXT PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('hotp', 'totp')),
        digits INTEGER NOT NULL CHECK (digits IN (6, 8)),
        period INTEGER CHECK ((kind = 'totp') = (period IS NOT NULL)),
        counter INTEGER NOT NULL DEFAULT 0,
        last_step INTEGER,
        seed BLOB NOT NULL,
        imported_ms INTEGER NOT NULL,
        username TEXT,
        assigned_ms INTEGER,
        resync_counter INTEGER,
        resync_at INTEGER
    ) STRICT;
    CREATE INDEX tokens_by_user ON tokens (username);",
];

/// How long a call waits for another process's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

impl From<rusqlite::Error> for StorageError {
    fn from(e: rusqlite::Error) -> Self {
        StorageError::Backend(Box::new(e))
    }
}

/// Enrolments in an SQLite file. Cheap to clone (shared connection).
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    /// For Debug and messages.
    path: PathBuf,
    /// One connection: SQLite serialises writers anyway, and a std Mutex is
    /// right because it is only locked inside blocking tasks.
    conn: Mutex<Connection>,
    /// Seals and opens seeds.
    sealer: Sealer,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SqliteStore({})", self.inner.path.display())
    }
}

impl SqliteStore {
    /// Open (creating file and directory if missing, mode 0600) and migrate.
    /// Blocking: call at start-up or from a blocking context.
    pub fn open(path: &Path, sealer: Sealer) -> Result<SqliteStore, StorageError> {
        let io = |source| StorageError::Io {
            path: path.display().to_string(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        create_private(path).map_err(io)?;
        let mut conn = Connection::open(path)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(path = %path.display(), mode, "storage: WAL mode unavailable");
        }
        // FULL: a counter step must survive power loss, or an old code would work again.
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let version = migrate(&mut conn)?;
        tracing::debug!(path = %path.display(), version, "storage: opened");
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                conn: Mutex::new(conn),
                sealer,
            }),
        })
    }

    /// The schema version of the open file.
    pub fn schema_version(&self) -> Result<u32, StorageError> {
        let conn = self.inner.conn.lock().unwrap_or_else(|p| p.into_inner());
        Ok(conn.pragma_query_value(None, "user_version", |r| r.get(0))?)
    }

    /// Run `f` with the connection on the blocking pool.
    async fn call<T, F>(&self, f: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection, &Sealer) -> Result<T, StorageError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            // A panic in another call cannot leave a transaction open (they
            // roll back on drop), so a poisoned lock is still usable.
            let mut conn = inner.conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut conn, &inner.sealer)
        })
        .await
        .map_err(|e| StorageError::Task(e.to_string()))?
    }
}

/// Create the file with owner-only permissions if it does not exist.
fn create_private(path: &Path) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.append(true).create(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    opts.open(path).map(drop)
}

/// Bring the schema up to date; idempotent, and safe when two processes start
/// at once (the version is re-read under the write lock).
fn migrate(conn: &mut Connection) -> Result<u32, StorageError> {
    let known = MIGRATIONS.len() as u32;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let found: u32 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if found > known {
        return Err(StorageError::SchemaTooNew { found, known });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        tx.execute_batch(sql)?;
        tracing::info!(version = i + 1, "storage: migrated");
    }
    if found < known {
        tx.pragma_update(None, "user_version", known)?;
        tx.commit()?;
    }
    Ok(known)
}

/// SQLite integers are i64; our values are far below its limit.
fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Back from an SQLite integer (negative only if someone edited the file).
fn uint(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn totp_aad(id: i64, user: &str) -> Vec<u8> {
    format!("totp:{id}:{user}").into_bytes()
}

fn token_aad(serial: &str) -> Vec<u8> {
    format!("token:{serial}").into_bytes()
}

fn open_seed(sealer: &Sealer, seed: &[u8], aad: &[u8]) -> Result<Vec<u8>, StorageError> {
    sealer.open(seed, aad).map_err(|source| StorageError::Seal {
        what: String::from_utf8_lossy(aad).into_owned(),
        source,
    })
}

fn immediate(conn: &mut Connection) -> Result<Transaction<'_>, StorageError> {
    Ok(conn.transaction_with_behavior(TransactionBehavior::Immediate)?)
}

fn read_sms(conn: &Connection, user: &str) -> Result<Vec<SmsNumber>, StorageError> {
    let mut st = conn.prepare_cached(
        "SELECT position, e164, added_ms FROM sms_numbers WHERE username = ?1 ORDER BY position",
    )?;
    let rows = st.query_map([user], |r| {
        Ok(SmsNumber {
            position: r.get(0)?,
            e164: r.get(1)?,
            added_ms: uint(r.get(2)?),
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn read_devices(conn: &Connection, user: &str) -> Result<Vec<TotpDevice>, StorageError> {
    let mut st = conn.prepare_cached(
        "SELECT id, description, added_ms, last_step FROM totp_devices WHERE username = ?1 ORDER BY id",
    )?;
    let rows = st.query_map([user], |r| {
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

fn read_tokens(conn: &Connection, user: &str) -> Result<Vec<TokenInfo>, StorageError> {
    let mut st = conn.prepare_cached(
        "SELECT serial, kind, digits, period, assigned_ms FROM tokens WHERE username = ?1 ORDER BY serial",
    )?;
    let rows = st.query_map([user], |r| {
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

fn read_enrolments(conn: &Connection, user: &str) -> Result<Enrolments, StorageError> {
    Ok(Enrolments {
        sms: read_sms(conn, user)?,
        totp: read_devices(conn, user)?,
        tokens: read_tokens(conn, user)?,
    })
}

fn verify_totp(
    conn: &mut Connection,
    sealer: &Sealer,
    user: &str,
    code: &str,
    now: u64,
) -> Result<Verify, StorageError> {
    let tx = immediate(conn)?;
    let devices: Vec<(i64, Vec<u8>, Option<i64>)> = {
        let mut st = tx.prepare_cached(
            "SELECT id, seed, last_step FROM totp_devices WHERE username = ?1 ORDER BY id",
        )?;
        let rows = st.query_map([user], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    let mut replay = None;
    for (id, seed, last) in devices {
        let secret = open_seed(sealer, &seed, &totp_aad(id, user))?;
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

fn load_token_rows(
    tx: &Transaction<'_>,
    by: &str,
    key: &str,
) -> Result<Vec<TokenRow>, StorageError> {
    let sql = format!(
        "SELECT serial, digits, period, seed, counter, last_step, resync_counter, resync_at \
         FROM tokens WHERE {by} = ?1 ORDER BY serial"
    );
    let mut st = tx.prepare_cached(&sql)?;
    let rows = st.query_map([key], |r| {
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

fn verify_token(
    conn: &mut Connection,
    sealer: &Sealer,
    user: &str,
    code: &str,
    now: u64,
) -> Result<Verify, StorageError> {
    let tx = immediate(conn)?;
    let rows = load_token_rows(&tx, "username", user)?;
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

fn resync_token(
    conn: &mut Connection,
    sealer: &Sealer,
    serial: &str,
    code1: &str,
    code2: &str,
) -> Result<Option<u64>, StorageError> {
    let tx = immediate(conn)?;
    let row = load_token_rows(&tx, "serial", serial)?
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

fn import_tokens(
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

fn add_totp_device(
    conn: &mut Connection,
    sealer: &Sealer,
    user: &str,
    description: &str,
    secret: &[u8],
    now_ms: u64,
) -> Result<i64, StorageError> {
    let tx = immediate(conn)?;
    // The AAD names the row id, known only after the insert: insert, then seal.
    tx.execute(
        "INSERT INTO totp_devices (username, description, seed, added_ms) VALUES (?1, ?2, X'', ?3)",
        params![user, description, int(now_ms)],
    )?;
    let id = tx.last_insert_rowid();
    let aad = totp_aad(id, user);
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
fn token_owner(tx: &Transaction<'_>, serial: &str) -> Result<Option<String>, StorageError> {
    tx.query_row(
        "SELECT username FROM tokens WHERE serial = ?1",
        [serial],
        |r| r.get(0),
    )
    .optional()?
    .ok_or_else(|| StorageError::UnknownToken(serial.to_string()))
}

/// Sets a token free (the condition is appended); its counter stays, it is the token's.
const FREE_TOKENS: &str = "UPDATE tokens SET username = NULL, assigned_ms = NULL, \
                           resync_counter = NULL, resync_at = NULL WHERE ";

fn assign_token(
    conn: &mut Connection,
    serial: &str,
    user: &str,
    now_ms: u64,
) -> Result<(), StorageError> {
    let tx = immediate(conn)?;
    match token_owner(&tx, serial)? {
        Some(u) if u == user => return Ok(()),
        Some(u) => {
            return Err(StorageError::AlreadyAssigned {
                serial: serial.to_string(),
                user: u,
            })
        }
        None => {}
    }
    tx.execute(
        "UPDATE tokens SET username = ?1, assigned_ms = ?2, resync_counter = NULL, resync_at = NULL \
         WHERE serial = ?3",
        params![user, int(now_ms), serial],
    )?;
    tx.commit()?;
    Ok(())
}

fn unassign_token(conn: &mut Connection, serial: &str) -> Result<bool, StorageError> {
    let tx = immediate(conn)?;
    let was = token_owner(&tx, serial)?.is_some();
    tx.execute(&format!("{FREE_TOKENS}serial = ?1"), [serial])?;
    tx.commit()?;
    Ok(was)
}

fn reset_user(conn: &mut Connection, user: &str) -> Result<Enrolments, StorageError> {
    let tx = immediate(conn)?;
    let had = read_enrolments(&tx, user)?;
    tx.execute("DELETE FROM sms_numbers WHERE username = ?1", [user])?;
    tx.execute("DELETE FROM totp_devices WHERE username = ?1", [user])?;
    tx.execute(&format!("{FREE_TOKENS}username = ?1"), [user])?;
    tx.commit()?;
    Ok(had)
}

#[async_trait]
impl EnrolmentStore for SqliteStore {
    async fn sms_numbers(&self, user: &str) -> Result<Vec<SmsNumber>, StorageError> {
        let user = user.to_string();
        self.call(move |c, _| read_sms(c, &user)).await
    }

    async fn set_sms_number(
        &self,
        user: &str,
        position: u8,
        e164: &str,
        now_ms: u64,
    ) -> Result<(), StorageError> {
        check_user(user)?;
        if position >= MAX_SMS_NUMBERS {
            return Err(StorageError::InvalidPosition(position));
        }
        check_e164(e164)?;
        let (user, e164) = (user.to_string(), e164.to_string());
        self.call(move |c, _| {
            c.execute(
                "INSERT INTO sms_numbers (username, position, e164, added_ms) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (username, position) DO UPDATE SET e164 = excluded.e164, added_ms = excluded.added_ms",
                params![user, position, e164, int(now_ms)],
            )?;
            Ok(())
        })
        .await
    }

    async fn remove_sms_number(&self, user: &str, position: u8) -> Result<bool, StorageError> {
        let user = user.to_string();
        self.call(move |c, _| {
            let n = c.execute(
                "DELETE FROM sms_numbers WHERE username = ?1 AND position = ?2",
                params![user, position],
            )?;
            Ok(n > 0)
        })
        .await
    }

    async fn totp_devices(&self, user: &str) -> Result<Vec<TotpDevice>, StorageError> {
        let user = user.to_string();
        self.call(move |c, _| read_devices(c, &user)).await
    }

    async fn add_totp_device(
        &self,
        user: &str,
        description: &str,
        secret: &[u8],
        now_ms: u64,
    ) -> Result<i64, StorageError> {
        check_user(user)?;
        check_description(description)?;
        if secret.len() < totp::SECRET_BYTES {
            return Err(StorageError::WeakSecret {
                bits: secret.len() * 8,
                min: totp::SECRET_BYTES * 8,
            });
        }
        let (user, description, secret) =
            (user.to_string(), description.to_string(), secret.to_vec());
        self.call(move |c, s| add_totp_device(c, s, &user, &description, &secret, now_ms))
            .await
    }

    async fn remove_totp_device(&self, user: &str, id: i64) -> Result<bool, StorageError> {
        let user = user.to_string();
        self.call(move |c, _| {
            let n = c.execute(
                "DELETE FROM totp_devices WHERE username = ?1 AND id = ?2",
                params![user, id],
            )?;
            Ok(n > 0)
        })
        .await
    }

    async fn verify_totp(
        &self,
        user: &str,
        code: &str,
        now_secs: u64,
    ) -> Result<Verify, StorageError> {
        let (user, code) = (user.to_string(), code.to_string());
        self.call(move |c, s| verify_totp(c, s, &user, &code, now_secs))
            .await
    }

    async fn import_tokens(
        &self,
        tokens: Vec<TokenRecord>,
        now_ms: u64,
    ) -> Result<usize, StorageError> {
        self.call(move |c, s| import_tokens(c, s, tokens, now_ms))
            .await
    }

    async fn assign_token(
        &self,
        serial: &str,
        user: &str,
        now_ms: u64,
    ) -> Result<(), StorageError> {
        check_user(user)?;
        let (serial, user) = (serial.to_string(), user.to_string());
        self.call(move |c, _| assign_token(c, &serial, &user, now_ms))
            .await
    }

    async fn unassign_token(&self, serial: &str) -> Result<bool, StorageError> {
        let serial = serial.to_string();
        self.call(move |c, _| unassign_token(c, &serial)).await
    }

    async fn tokens_of(&self, user: &str) -> Result<Vec<TokenInfo>, StorageError> {
        let user = user.to_string();
        self.call(move |c, _| read_tokens(c, &user)).await
    }

    async fn verify_token(
        &self,
        user: &str,
        code: &str,
        now_secs: u64,
    ) -> Result<Verify, StorageError> {
        let (user, code) = (user.to_string(), code.to_string());
        self.call(move |c, s| verify_token(c, s, &user, &code, now_secs))
            .await
    }

    async fn resync_token(
        &self,
        serial: &str,
        code1: &str,
        code2: &str,
    ) -> Result<Option<u64>, StorageError> {
        let (serial, code1, code2) = (serial.to_string(), code1.to_string(), code2.to_string());
        self.call(move |c, s| resync_token(c, s, &serial, &code1, &code2))
            .await
    }

    async fn enrolments(&self, user: &str) -> Result<Enrolments, StorageError> {
        let user = user.to_string();
        self.call(move |c, _| {
            // One read transaction: a consistent picture of the three tables.
            let tx = c.transaction()?;
            read_enrolments(&tx, &user)
        })
        .await
    }

    async fn reset_user(&self, user: &str) -> Result<Enrolments, StorageError> {
        let user = user.to_string();
        self.call(move |c, _| reset_user(c, &user)).await
    }
}

#[cfg(test)]
mod tests {
    use super::super::contract::{self, NOW, RFC};
    use super::*;
    use crate::factors::totp::{code_at, PERIOD};

    fn open(path: &Path) -> SqliteStore {
        SqliteStore::open(path, Sealer::from_secret(&[7; 32])).expect("open")
    }

    fn fresh() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(&dir.path().join("state/portvakt.db"));
        (dir, store)
    }

    #[tokio::test]
    async fn contract_sms() {
        contract::sms(&fresh().1).await;
    }

    #[tokio::test]
    async fn contract_totp() {
        contract::totp(&fresh().1).await;
    }

    #[tokio::test]
    async fn contract_tokens() {
        contract::tokens(&fresh().1).await;
    }

    #[tokio::test]
    async fn contract_import() {
        contract::import(&fresh().1).await;
    }

    #[tokio::test]
    async fn contract_reset() {
        contract::reset(&fresh().1).await;
    }

    #[test]
    fn migrations_on_fresh_file_and_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("new/dir/portvakt.db");
        let s = open(&path);
        assert_eq!(
            s.schema_version().expect("version"),
            MIGRATIONS.len() as u32
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        drop(s);
        let s = open(&path);
        assert_eq!(
            s.schema_version().expect("version"),
            MIGRATIONS.len() as u32
        );
        let conn = Connection::open(&path).expect("raw");
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .expect("mode");
        assert_eq!(mode, "wal");
        conn.pragma_update(None, "user_version", 99).expect("bump");
        drop(conn);
        drop(s);
        let err = SqliteStore::open(&path, Sealer::from_secret(&[7; 32])).expect_err("too new");
        assert!(
            matches!(err, StorageError::SchemaTooNew { found: 99, .. }),
            "{err}"
        );
    }

    #[tokio::test]
    async fn seeds_are_never_stored_in_plaintext() {
        let (dir, s) = fresh();
        s.add_totp_device("alice", "Jobbmobil", RFC, 1)
            .await
            .expect("add");
        s.import_tokens(contract::two_tokens(), 1)
            .await
            .expect("import");
        let conn = Connection::open(dir.path().join("state/portvakt.db")).expect("raw");
        let mut st = conn
            .prepare("SELECT seed FROM totp_devices UNION ALL SELECT seed FROM tokens")
            .expect("sql");
        let seeds: Vec<Vec<u8>> = st
            .query_map([], |r| r.get(0))
            .expect("q")
            .collect::<Result<_, _>>()
            .expect("rows");
        assert_eq!(seeds.len(), 3);
        let b32 = totp::base32(RFC);
        for seed in &seeds {
            assert!(!seed.windows(RFC.len()).any(|w| w == RFC));
        }
        // Nor anywhere in the files (database and write-ahead log).
        for name in ["portvakt.db", "portvakt.db-wal"] {
            let bytes = std::fs::read(dir.path().join("state").join(name)).unwrap_or_default();
            assert!(!bytes.windows(RFC.len()).any(|w| w == RFC), "{name}");
            assert!(
                !bytes.windows(b32.len()).any(|w| w == b32.as_bytes()),
                "{name}"
            );
        }
    }

    #[tokio::test]
    async fn replay_and_counters_survive_reopen() {
        let (dir, s) = fresh();
        let path = dir.path().join("state/portvakt.db");
        s.add_totp_device("alice", "Jobbmobil", RFC, 1)
            .await
            .expect("add");
        s.import_tokens(contract::two_tokens(), 1)
            .await
            .expect("import");
        s.assign_token("T1", "alice", 1).await.expect("assign");
        let code = code_at(RFC, NOW / PERIOD);
        assert!(matches!(
            s.verify_totp("alice", &code, NOW).await.expect("v"),
            Verify::Accepted { .. }
        ));
        let h = Hotp::new(RFC, 6);
        assert!(matches!(
            s.verify_token("alice", &h.code(3), NOW).await.expect("v"),
            Verify::Accepted { .. }
        ));
        assert!(matches!(
            s.verify_token("alice", &h.code(300), NOW).await.expect("v"),
            Verify::NeedsNextCode { .. }
        ));
        drop(s);

        let s = open(&path);
        assert!(matches!(
            s.verify_totp("alice", &code, NOW + 20).await.expect("v"),
            Verify::Replay { .. }
        ));
        // The resynchronisation candidate is durable too.
        let v = s
            .verify_token("alice", &h.code(301), NOW + 5)
            .await
            .expect("v");
        assert!(
            matches!(v, Verify::Accepted { resynced: true, .. }),
            "{v:?}"
        );
        drop(s);
        let s = open(&path);
        assert!(matches!(
            s.verify_token("alice", &h.code(3), NOW).await.expect("v"),
            Verify::Rejected
        ));
        assert!(matches!(
            s.verify_token("alice", &h.code(301), NOW).await.expect("v"),
            Verify::Replay { .. }
        ));
        assert!(matches!(
            s.verify_token("alice", &h.code(302), NOW).await.expect("v"),
            Verify::Accepted { .. }
        ));
    }

    #[tokio::test]
    async fn two_processes_never_accept_one_code_twice() {
        let (dir, gateway) = fresh();
        let admin = open(&dir.path().join("state/portvakt.db"));
        gateway
            .add_totp_device("alice", "Jobbmobil", RFC, 1)
            .await
            .expect("add");
        let code = code_at(RFC, NOW / PERIOD);
        let (a, b) = tokio::join!(
            gateway.verify_totp("alice", &code, NOW),
            admin.verify_totp("alice", &code, NOW)
        );
        let accepted = [a.expect("a"), b.expect("b")]
            .iter()
            .filter(|v| matches!(v, Verify::Accepted { .. }))
            .count();
        assert_eq!(accepted, 1);
    }

    #[tokio::test]
    async fn moved_seed_or_other_key_does_not_open() {
        let (dir, s) = fresh();
        let path = dir.path().join("state/portvakt.db");
        let one = s.add_totp_device("alice", "A", RFC, 1).await.expect("add");
        let two = s
            .add_totp_device("mallory", "B", &[5; 20], 1)
            .await
            .expect("add");
        let conn = Connection::open(&path).expect("raw");
        conn.execute(
            "UPDATE totp_devices SET seed = (SELECT seed FROM totp_devices WHERE id = ?1) WHERE id = ?2",
            [one, two],
        )
        .expect("copy seed");
        let err = s
            .verify_totp("mallory", "123456", NOW)
            .await
            .expect_err("moved seed");
        assert!(matches!(err, StorageError::Seal { .. }), "{err}");
        drop(s);
        let other = SqliteStore::open(&path, Sealer::from_secret(&[8; 32])).expect("open");
        let err = other
            .verify_totp("alice", "123456", NOW)
            .await
            .expect_err("other key");
        assert!(matches!(err, StorageError::Seal { .. }), "{err}");
    }
}
