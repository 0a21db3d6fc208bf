//! The embedded backend: one SQLite file in WAL mode, so the admin CLI can
//! write while the gateway runs. Migrations run on open.
//!
//! rusqlite blocks, so every call runs on tokio's blocking pool with the one
//! connection behind a std `Mutex` (held only inside that blocking task, never
//! across an `.await`). Read-modify-write (code checks) uses `BEGIN IMMEDIATE`,
//! which also serialises against other processes on the same file.

mod copy;
mod legacy;
mod passkeys;
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
    check_credential_id, check_description, check_e164, check_passkey_key, check_who,
    EnrolmentStore, Enrolments, Passkey, PasskeyUse, Sealer, SmsNumber, StorageError, TokenInfo,
    TokenRecord, TotpDevice, UserRef, Verify, MAX_SMS_NUMBERS,
};
use crate::factors::totp;

pub use legacy::{Adopted, LegacyRows, LegacyUser};

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
    // 2: a user is (realm, name). The realm-less rows of schema 1 move to
    // legacy_* tables, which nothing reads but the adoption (legacy.rs): it
    // needs the operator's word on their realm and re-seals each seed with
    // the realm in its associated data. The AUTOINCREMENT counter carries
    // over, so device ids are still never reused.
    "DROP INDEX totp_devices_by_user;
    DROP INDEX tokens_by_user;
    ALTER TABLE sms_numbers RENAME TO legacy_sms_numbers;
    ALTER TABLE totp_devices RENAME TO legacy_totp_devices;
    ALTER TABLE tokens RENAME TO legacy_tokens;
    CREATE TABLE sms_numbers (
        realm TEXT NOT NULL,
        username TEXT NOT NULL,
        position INTEGER NOT NULL CHECK (position IN (0, 1)),
        e164 TEXT NOT NULL,
        added_ms INTEGER NOT NULL,
        PRIMARY KEY (realm, username, position)
    ) STRICT;
    CREATE TABLE totp_devices (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        realm TEXT NOT NULL,
        username TEXT NOT NULL,
        description TEXT NOT NULL,
        seed BLOB NOT NULL,
        added_ms INTEGER NOT NULL,
        last_step INTEGER
    ) STRICT;
    CREATE INDEX totp_devices_by_user ON totp_devices (realm, username);
    INSERT INTO sqlite_sequence (name, seq)
        SELECT 'totp_devices', seq FROM sqlite_sequence WHERE name = 'legacy_totp_devices';
    CREATE TABLE tokens (
        serial TEXT PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('hotp', 'totp')),
        digits INTEGER NOT NULL CHECK (digits IN (6, 8)),
        period INTEGER CHECK ((kind = 'totp') = (period IS NOT NULL)),
        counter INTEGER NOT NULL DEFAULT 0,
        last_step INTEGER,
        seed BLOB NOT NULL,
        imported_ms INTEGER NOT NULL,
        realm TEXT,
        username TEXT,
        assigned_ms INTEGER,
        resync_counter INTEGER,
        resync_at INTEGER,
        CHECK ((realm IS NULL) = (username IS NULL))
    ) STRICT;
    CREATE INDEX tokens_by_user ON tokens (realm, username);
    INSERT INTO tokens (serial, kind, digits, period, counter, last_step, seed, imported_ms)
        SELECT serial, kind, digits, period, counter, last_step, seed, imported_ms FROM legacy_tokens;
    CREATE TABLE legacy_token_owners (
        serial TEXT PRIMARY KEY REFERENCES tokens (serial),
        username TEXT NOT NULL,
        assigned_ms INTEGER,
        resync_counter INTEGER,
        resync_at INTEGER
    ) STRICT;
    INSERT INTO legacy_token_owners (serial, username, assigned_ms, resync_counter, resync_at)
        SELECT serial, username, assigned_ms, resync_counter, resync_at
        FROM legacy_tokens WHERE username IS NOT NULL;
    DROP TABLE legacy_tokens;",
    // 3: passkeys (WebAuthn credentials). Nothing sealed: a public key and a
    // counter. The credential id is unique across realms, since the
    // authenticator names it at login before anyone knows whose it is.
    "CREATE TABLE passkeys (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        realm TEXT NOT NULL,
        username TEXT NOT NULL,
        description TEXT NOT NULL,
        credential_id TEXT NOT NULL UNIQUE,
        key TEXT NOT NULL,
        counter INTEGER NOT NULL CHECK (counter >= 0),
        added_ms INTEGER NOT NULL,
        last_used_ms INTEGER
    ) STRICT;
    CREATE INDEX passkeys_by_user ON passkeys (realm, username);",
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
    /// `legacy` says what to do with rows stored before enrolments were kept
    /// per realm ([`LegacyRows::for_config`] in the gateway and the CLI).
    /// Blocking: call at start-up or from a blocking context.
    pub fn open(
        path: &Path,
        sealer: Sealer,
        legacy: LegacyRows,
    ) -> Result<SqliteStore, StorageError> {
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
        legacy::on_open(&mut conn, &sealer, path, legacy)?;
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

    /// Users with enrolments from before they were kept per realm (for
    /// `portvakt storage legacy`). Blocking.
    pub fn legacy_users(&self) -> Result<Vec<LegacyUser>, StorageError> {
        let conn = self.inner.conn.lock().unwrap_or_else(|p| p.into_inner());
        legacy::legacy_users(&conn)
    }

    /// Give the enrolments from before realms of `users` (None: all that are
    /// left) to `realm`, re-sealing their seeds (`portvakt storage adopt`).
    /// Blocking.
    pub fn adopt_legacy(
        &self,
        realm: &str,
        users: Option<&[String]>,
    ) -> Result<Adopted, StorageError> {
        let mut conn = self.inner.conn.lock().unwrap_or_else(|p| p.into_inner());
        legacy::adopt(&mut conn, &self.inner.sealer, realm, users)
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

    async fn sms_numbers(&self, who: &UserRef) -> Result<Vec<SmsNumber>, StorageError> {
        let who = who.clone();
        self.call(move |c, _| read_sms(c, &who)).await
    }

    async fn set_sms_number(
        &self,
        who: &UserRef,
        position: u8,
        e164: &str,
        now_ms: u64,
    ) -> Result<(), StorageError> {
        check_who(who)?;
        if position >= MAX_SMS_NUMBERS {
            return Err(StorageError::InvalidPosition(position));
        }
        check_e164(e164)?;
        let (who, e164) = (who.clone(), e164.to_string());
        self.call(move |c, _| {
            c.execute(
                "INSERT INTO sms_numbers (realm, username, position, e164, added_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (realm, username, position) \
                 DO UPDATE SET e164 = excluded.e164, added_ms = excluded.added_ms",
                params![who.realm, who.user, position, e164, int(now_ms)],
            )?;
            Ok(())
        })
        .await
    }

    async fn remove_sms_number(&self, who: &UserRef, position: u8) -> Result<bool, StorageError> {
        let who = who.clone();
        self.call(move |c, _| {
            let n = c.execute(
                "DELETE FROM sms_numbers WHERE realm = ?1 AND username = ?2 AND position = ?3",
                params![who.realm, who.user, position],
            )?;
            Ok(n > 0)
        })
        .await
    }

    async fn totp_devices(&self, who: &UserRef) -> Result<Vec<TotpDevice>, StorageError> {
        let who = who.clone();
        self.call(move |c, _| read_devices(c, &who)).await
    }

    async fn add_totp_device(
        &self,
        who: &UserRef,
        description: &str,
        secret: &[u8],
        now_ms: u64,
    ) -> Result<i64, StorageError> {
        check_who(who)?;
        check_description(description)?;
        if secret.len() < totp::SECRET_BYTES {
            return Err(StorageError::WeakSecret {
                bits: secret.len() * 8,
                min: totp::SECRET_BYTES * 8,
            });
        }
        let (who, description, secret) = (who.clone(), description.to_string(), secret.to_vec());
        self.call(move |c, s| add_totp_device(c, s, &who, &description, &secret, now_ms))
            .await
    }

    async fn remove_totp_device(&self, who: &UserRef, id: i64) -> Result<bool, StorageError> {
        let who = who.clone();
        self.call(move |c, _| {
            let n = c.execute(
                "DELETE FROM totp_devices WHERE realm = ?1 AND username = ?2 AND id = ?3",
                params![who.realm, who.user, id],
            )?;
            Ok(n > 0)
        })
        .await
    }

    async fn verify_totp(
        &self,
        who: &UserRef,
        code: &str,
        now_secs: u64,
    ) -> Result<Verify, StorageError> {
        let (who, code) = (who.clone(), code.to_string());
        self.call(move |c, s| verify_totp(c, s, &who, &code, now_secs))
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
        who: &UserRef,
        now_ms: u64,
    ) -> Result<(), StorageError> {
        check_who(who)?;
        let (serial, who) = (serial.to_string(), who.clone());
        self.call(move |c, _| assign_token(c, &serial, &who, now_ms))
            .await
    }

    async fn unassign_token(&self, serial: &str) -> Result<Option<UserRef>, StorageError> {
        let serial = serial.to_string();
        self.call(move |c, _| unassign_token(c, &serial)).await
    }

    async fn tokens_of(&self, who: &UserRef) -> Result<Vec<TokenInfo>, StorageError> {
        let who = who.clone();
        self.call(move |c, _| read_tokens(c, &who)).await
    }

    async fn verify_token(
        &self,
        who: &UserRef,
        code: &str,
        now_secs: u64,
    ) -> Result<Verify, StorageError> {
        let (who, code) = (who.clone(), code.to_string());
        self.call(move |c, s| verify_token(c, s, &who, &code, now_secs))
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

    async fn passkeys(&self, who: &UserRef) -> Result<Vec<Passkey>, StorageError> {
        let who = who.clone();
        self.call(move |c, _| passkeys::read_passkeys(c, &who))
            .await
    }

    async fn add_passkey(
        &self,
        who: &UserRef,
        description: &str,
        credential_id: &str,
        key: &str,
        counter: u32,
        now_ms: u64,
    ) -> Result<i64, StorageError> {
        check_who(who)?;
        check_description(description)?;
        check_credential_id(credential_id)?;
        check_passkey_key(key)?;
        let who = who.clone();
        let (description, credential_id, key) = (
            description.to_string(),
            credential_id.to_string(),
            key.to_string(),
        );
        self.call(move |c, _| {
            passkeys::add_passkey(c, &who, &description, &credential_id, &key, counter, now_ms)
        })
        .await
    }

    async fn remove_passkey(&self, who: &UserRef, id: i64) -> Result<bool, StorageError> {
        let who = who.clone();
        self.call(move |c, _| passkeys::remove_passkey(c, &who, id))
            .await
    }

    async fn use_passkey(
        &self,
        who: &UserRef,
        id: i64,
        counter: u32,
        key: &str,
        now_ms: u64,
    ) -> Result<PasskeyUse, StorageError> {
        check_passkey_key(key)?;
        let (who, key) = (who.clone(), key.to_string());
        self.call(move |c, _| passkeys::use_passkey(c, &who, id, counter, &key, now_ms))
            .await
    }

    async fn enrolments(&self, who: &UserRef) -> Result<Enrolments, StorageError> {
        let who = who.clone();
        self.call(move |c, _| {
            // One read transaction: a consistent picture of the four tables.
            let tx = c.transaction()?;
            read_enrolments(&tx, &who)
        })
        .await
    }

    async fn reset_user(&self, who: &UserRef) -> Result<Enrolments, StorageError> {
        let who = who.clone();
        self.call(move |c, _| reset_user(c, &who)).await
    }
}

#[cfg(test)]
pub(crate) mod legacy_tests;
#[cfg(test)]
mod tests;
