//! The embedded backend: one SQLite file in WAL mode, so the admin CLI can
//! write while the gateway runs. Migrations run on open.
//!
//! rusqlite blocks, so every call runs on tokio's blocking pool with the one
//! connection behind a std `Mutex` (held only inside that blocking task, never
//! across an `.await`). Read-modify-write (code checks) uses `BEGIN IMMEDIATE`,
//! which also serialises against other processes on the same file.

mod queries;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{params, Connection, TransactionBehavior};

use self::queries::{
    add_totp_device, assign_token, import_tokens, read_devices, read_enrolments, read_sms,
    read_tokens, reset_user, resync_token, unassign_token, verify_token, verify_totp,
};
use super::{
    check_description, check_e164, check_user, EnrolmentStore, Enrolments, Sealer, SmsNumber,
    StorageError, TokenInfo, TokenRecord, TotpDevice, Verify, MAX_SMS_NUMBERS,
};
use crate::factors::totp;

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

#[async_trait]
impl EnrolmentStore for SqliteStore {
    async fn ping(&self) -> Result<(), StorageError> {
        self.call(|c, _| {
            c.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
                r.get::<_, i64>(0)
            })?;
            Ok(())
        })
        .await
    }

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
mod tests;
