//! PostgreSQL as the durable store, for several gateways sharing one set of
//! enrolments (`storage: postgres://…`).
//!
//! A small pool (deadpool) of tokio-postgres connections, TLS through rustls
//! with the certificate and the host name verified. Every store call is
//! bounded as a whole by the URL's `timeout`: when the database is gone, the
//! call fails with [`StorageError::Unavailable`] within that time instead of
//! hanging a login, and the pool opens fresh connections once it is back.
//!
//! Code checks lock the credential rows (`SELECT … FOR UPDATE`) and save the
//! new step or counter in the same transaction; the update is also
//! conditional on the stored value not having moved, so two gateways never
//! accept one time step or one counter twice.

mod copy;
mod passkeys;
mod queries;
mod schema;
pub mod settings;
#[cfg(test)]
pub(crate) mod test_server;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};

use super::{
    check_credential_id, check_description, check_e164, check_passkey_key, check_who,
    EnrolmentStore, Enrolments, Passkey, PasskeyUse, Sealer, SmsNumber, StorageError, TokenInfo,
    TokenRecord, TotpDevice, UserRef, Verify, MAX_SMS_NUMBERS,
};
use crate::factors::totp;
#[cfg(test)]
use schema::MIGRATIONS;
pub use settings::{PgSettings, PgTls, PgUrlError};

impl From<tokio_postgres::Error> for StorageError {
    fn from(e: tokio_postgres::Error) -> Self {
        classify(e)
    }
}

/// Lost or refused connections are [`StorageError::Unavailable`] (the
/// gateway shows "try again later"); SQL errors are [`StorageError::Backend`].
fn classify(e: tokio_postgres::Error) -> StorageError {
    let unavailable = match e.as_db_error() {
        // 08: connection exception; 57P0x: shutting down / starting up;
        // 53: out of connections or memory.
        Some(db) => {
            let code = db.code().code();
            code.starts_with("08") || code.starts_with("57P0") || code.starts_with("53")
        }
        // No server answer at all: closed connection, I/O, TLS, timeout.
        None => true,
    };
    if unavailable {
        StorageError::Unavailable(e.to_string())
    } else {
        StorageError::Backend(Box::new(e))
    }
}

fn pool_error(e: deadpool_postgres::PoolError) -> StorageError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => classify(e),
        other => StorageError::Unavailable(other.to_string()),
    }
}

/// Enrolments in a PostgreSQL database. Cheap to clone (shared pool).
#[derive(Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

struct Inner {
    /// Connections; each opened with `settings`' TLS and timeout.
    pool: Pool,
    /// For Debug, messages and the per-call bound.
    settings: PgSettings,
    /// Seals and opens seeds.
    sealer: Sealer,
    /// The schema is known to be current (migrated at open, or later by
    /// the first call that reached the server after a start while it was down).
    migrated: std::sync::atomic::AtomicBool,
    /// One migration attempt at a time; others fail at once rather than queue.
    migrating: tokio::sync::Mutex<Option<std::time::Instant>>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PostgresStore({})", self.inner.settings.redacted())
    }
}

impl PostgresStore {
    /// Connect, migrate, and keep a pool. Fails with
    /// [`StorageError::Unavailable`] when the server cannot be reached within
    /// the URL's timeout.
    pub async fn open(
        settings: &PgSettings,
        sealer: Sealer,
    ) -> Result<PostgresStore, StorageError> {
        let store = PostgresStore::pool(settings, sealer)?;
        store.bounded(store.migrate_now()).await?;
        Ok(store)
    }

    /// Like [`PostgresStore::open`], but a server that cannot be reached
    /// now is not an error: the store is returned unmigrated, every call
    /// answers [`StorageError::Unavailable`] until the server answers, and
    /// the first call that reaches it migrates. For the gateway's start, so
    /// a gateway booted during a database outage comes up (internal
    /// password logins need no enrolments) and heals without a restart.
    /// Anything else (a schema newer than this binary, a refused login) is
    /// still an error at start.
    pub async fn open_or_wait(
        settings: &PgSettings,
        sealer: Sealer,
    ) -> Result<PostgresStore, StorageError> {
        let store = PostgresStore::pool(settings, sealer)?;
        match store.bounded(store.migrate_now()).await {
            Ok(_) => Ok(store),
            Err(e) if e.is_unavailable() => {
                tracing::warn!(
                    url = %settings.redacted(),
                    error = %e,
                    "storage: PostgreSQL does not answer; starting anyway, enrolments \
                     unavailable until it does"
                );
                Ok(store)
            }
            Err(e) => Err(e),
        }
    }

    /// The store with its pool; nothing connected yet.
    fn pool(settings: &PgSettings, sealer: Sealer) -> Result<PostgresStore, StorageError> {
        let tls = tls_connector(&settings.tls)?;
        let manager = Manager::from_config(
            settings.client_config(),
            tls,
            ManagerConfig {
                // Checking `is_closed` is enough: a connection that broke
                // mid-call is closed, and a silent one is bounded by `timeout`.
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let t = Some(settings.timeout);
        let pool = Pool::builder(manager)
            .max_size(settings.pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(t)
            .create_timeout(t)
            .recycle_timeout(t)
            .build()
            .map_err(|e| StorageError::Unavailable(e.to_string()))?;
        Ok(PostgresStore {
            inner: Arc::new(Inner {
                pool,
                settings: settings.clone(),
                sealer,
                migrated: std::sync::atomic::AtomicBool::new(false),
                migrating: tokio::sync::Mutex::new(None),
            }),
        })
    }

    /// A pooled connection to a migrated database (opening one if needed,
    /// within the timeout).
    async fn client(&self) -> Result<deadpool_postgres::Client, StorageError> {
        self.ensure_migrated().await?;
        self.pooled().await
    }

    /// A pooled connection, schema or not.
    async fn pooled(&self) -> Result<deadpool_postgres::Client, StorageError> {
        self.inner.pool.get().await.map_err(pool_error)
    }

    /// Run `work` within the URL's timeout. A call cut off mid-transaction is
    /// rolled back by the server (the transaction is dropped uncommitted);
    /// one cut off during COMMIT may have been saved, which only ever uses a
    /// code up, never accepts one twice.
    async fn bounded<T>(
        &self,
        work: impl Future<Output = Result<T, StorageError>>,
    ) -> Result<T, StorageError> {
        within(self.inner.settings.timeout, work).await
    }

    /// Run whole-store work (`storage copy`) with a generous bound: each
    /// connection attempt is still bounded by the URL's timeout, but moving
    /// many rows may take longer than one login's query should.
    pub(super) async fn bounded_long<T>(
        &self,
        work: impl Future<Output = Result<T, StorageError>>,
    ) -> Result<T, StorageError> {
        let t = (self.inner.settings.timeout * 100).max(std::time::Duration::from_secs(300));
        within(t, work).await
    }
}

/// `work`, or [`StorageError::Unavailable`] once `t` has passed.
async fn within<T>(
    t: std::time::Duration,
    work: impl Future<Output = Result<T, StorageError>>,
) -> Result<T, StorageError> {
    tokio::time::timeout(t, work).await.unwrap_or_else(|_| {
        Err(StorageError::Unavailable(format!(
            "no answer from PostgreSQL within {}",
            humantime::format_duration(t)
        )))
    })
}

/// The rustls connector: the system roots, or only the CAs of `sslrootcert`.
fn tls_connector(tls: &PgTls) -> Result<tokio_postgres_rustls::MakeRustlsConnect, StorageError> {
    let mut roots = rustls::RootCertStore::empty();
    match tls {
        PgTls::VerifyFull {
            root_cert: Some(path),
        } => {
            let io = |source| StorageError::Io {
                path: path.display().to_string(),
                source,
            };
            let pem = std::fs::read(path).map_err(io)?;
            for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                roots
                    .add(cert.map_err(io)?)
                    .map_err(|e| StorageError::Backend(Box::new(e)))?;
            }
            if roots.is_empty() {
                return Err(io(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "sslrootcert holds no PEM certificate",
                )));
            }
        }
        PgTls::VerifyFull { root_cert: None } => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                // A system root rustls cannot parse is one root fewer, not a failure.
                let _ = roots.add(cert);
            }
        }
        PgTls::Disable => {}
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StorageError::Backend(Box::new(e)))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// Store integers are BIGINT; our values are far below its limit.
fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Back from BIGINT (negative only if someone edited the table).
fn uint(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

#[async_trait]
impl EnrolmentStore for PostgresStore {
    async fn ping(&self) -> Result<(), StorageError> {
        self.bounded(async {
            self.client().await?.query_one("SELECT 1", &[]).await?;
            Ok(())
        })
        .await
    }

    async fn sms_numbers(&self, who: &UserRef) -> Result<Vec<SmsNumber>, StorageError> {
        self.bounded(async { queries::read_sms(&**self.client().await?, who).await })
            .await
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
        self.bounded(async {
            self.client()
                .await?
                .execute(
                    "INSERT INTO sms_numbers (realm, username, position, e164, added_ms) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (realm, username, position) \
                     DO UPDATE SET e164 = excluded.e164, added_ms = excluded.added_ms",
                    &[
                        &who.realm,
                        &who.user,
                        &i16::from(position),
                        &e164,
                        &int(now_ms),
                    ],
                )
                .await?;
            Ok(())
        })
        .await
    }

    async fn remove_sms_number(&self, who: &UserRef, position: u8) -> Result<bool, StorageError> {
        self.bounded(async {
            let n = self
                .client()
                .await?
                .execute(
                    "DELETE FROM sms_numbers WHERE realm = $1 AND username = $2 AND position = $3",
                    &[&who.realm, &who.user, &i16::from(position)],
                )
                .await?;
            Ok(n > 0)
        })
        .await
    }

    async fn totp_devices(&self, who: &UserRef) -> Result<Vec<TotpDevice>, StorageError> {
        self.bounded(async { queries::read_devices(&**self.client().await?, who).await })
            .await
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
        self.bounded(async {
            let c = self.client().await?;
            queries::add_totp_device(&c, &self.inner.sealer, who, description, secret, now_ms).await
        })
        .await
    }

    async fn remove_totp_device(&self, who: &UserRef, id: i64) -> Result<bool, StorageError> {
        self.bounded(async {
            let n = self
                .client()
                .await?
                .execute(
                    "DELETE FROM totp_devices WHERE realm = $1 AND username = $2 AND id = $3",
                    &[&who.realm, &who.user, &id],
                )
                .await?;
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
        self.bounded(async {
            let mut c = self.client().await?;
            queries::verify_totp(&mut c, &self.inner.sealer, who, code, now_secs).await
        })
        .await
    }

    async fn import_tokens(
        &self,
        tokens: Vec<TokenRecord>,
        now_ms: u64,
    ) -> Result<usize, StorageError> {
        self.bounded(async {
            let mut c = self.client().await?;
            queries::import_tokens(&mut c, &self.inner.sealer, tokens, now_ms).await
        })
        .await
    }

    async fn assign_token(
        &self,
        serial: &str,
        who: &UserRef,
        now_ms: u64,
    ) -> Result<(), StorageError> {
        check_who(who)?;
        self.bounded(async {
            let mut c = self.client().await?;
            queries::assign_token(&mut c, serial, who, now_ms).await
        })
        .await
    }

    async fn unassign_token(&self, serial: &str) -> Result<Option<UserRef>, StorageError> {
        self.bounded(async {
            let mut c = self.client().await?;
            queries::unassign_token(&mut c, serial).await
        })
        .await
    }

    async fn tokens_of(&self, who: &UserRef) -> Result<Vec<TokenInfo>, StorageError> {
        self.bounded(async { queries::read_tokens(&**self.client().await?, who).await })
            .await
    }

    async fn verify_token(
        &self,
        who: &UserRef,
        code: &str,
        now_secs: u64,
    ) -> Result<Verify, StorageError> {
        self.bounded(async {
            let mut c = self.client().await?;
            queries::verify_token(&mut c, &self.inner.sealer, who, code, now_secs).await
        })
        .await
    }

    async fn resync_token(
        &self,
        serial: &str,
        code1: &str,
        code2: &str,
    ) -> Result<Option<u64>, StorageError> {
        self.bounded(async {
            let mut c = self.client().await?;
            queries::resync_token(&mut c, &self.inner.sealer, serial, code1, code2).await
        })
        .await
    }

    async fn passkeys(&self, who: &UserRef) -> Result<Vec<Passkey>, StorageError> {
        self.bounded(async { passkeys::read_passkeys(&**self.client().await?, who).await })
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
        self.bounded(async {
            let c = self.client().await?;
            passkeys::add_passkey(&**c, who, description, credential_id, key, counter, now_ms).await
        })
        .await
    }

    async fn remove_passkey(&self, who: &UserRef, id: i64) -> Result<bool, StorageError> {
        self.bounded(async { passkeys::remove_passkey(&**self.client().await?, who, id).await })
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
        self.bounded(async {
            let c = self.client().await?;
            passkeys::use_passkey(&**c, who, id, counter, key, now_ms).await
        })
        .await
    }

    async fn enrolments(&self, who: &UserRef) -> Result<Enrolments, StorageError> {
        self.bounded(async {
            let mut c = self.client().await?;
            let c: &mut tokio_postgres::Client = &mut c;
            // One snapshot: a consistent picture of the four tables.
            let tx = c
                .build_transaction()
                .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await?;
            let e = queries::read_enrolments(&tx, who).await?;
            tx.commit().await?;
            Ok(e)
        })
        .await
    }

    async fn reset_user(&self, who: &UserRef) -> Result<Enrolments, StorageError> {
        self.bounded(async {
            let mut c = self.client().await?;
            queries::reset_user(&mut c, who).await
        })
        .await
    }
}
