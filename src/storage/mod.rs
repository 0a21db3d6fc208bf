//! Durable enrolments: SMS numbers, authenticator devices, hardware tokens,
//! and the state that must survive restarts (HOTP counters, the last TOTP
//! step accepted per credential).
//!
//! The gateway sees only [`EnrolmentStore`]; [`sqlite`] is the embedded
//! backend, [`postgres`] the shared one for several gateways
//! (`storage: postgres://…`); [`open`] picks one. Which code is valid
//! is decided by the pure rules in [`crate::factors::totp`] and
//! [`crate::factors::token`]; a backend loads the state, applies the rule and
//! saves the new state in one transaction, so two gateways (or the gateway and
//! the admin CLI) never accept the same code twice.
//!
//! Seeds are stored only sealed by [`crypto::Sealer`]. Passkeys hold no
//! secret (a public key and a signature counter), so they are stored as given.

pub mod copy;
#[cfg(test)]
mod copy_tests;
pub mod crypto;
pub mod monitored;
pub mod postgres;
pub mod sqlite;

#[cfg(test)]
pub(crate) mod contract;

use async_trait::async_trait;

pub use crate::factors::token::{TokenKind, TokenMode, TokenRecord};
pub use crypto::{SealError, Sealer};
pub use sqlite::{LegacyRows, SqliteStore};

/// Whose enrolment: a user is (realm, name), never the bare name. Two realms
/// whose directories both hold `anna` are two people (SECURITY.md "Identity
/// across realms"), so every store method takes this pair, and the compiler
/// finds every caller that still has only a name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserRef {
    /// The realm id from the configuration (`[A-Za-z0-9_-]+`).
    pub realm: String,
    /// The directory's canonical user id within that realm (case-sensitive).
    pub user: String,
}

impl UserRef {
    /// The user `user` of realm `realm`.
    pub fn new(realm: impl Into<String>, user: impl Into<String>) -> UserRef {
        UserRef {
            realm: realm.into(),
            user: user.into(),
        }
    }

    /// The user a session belongs to (sessions carry their realm); takes
    /// `&Arc<Session>` too, by deref.
    pub fn of(s: &crate::session::Session) -> UserRef {
        UserRef::new(&s.realm, &s.user)
    }
}

impl From<&crate::session::Session> for UserRef {
    /// The user a session belongs to (sessions carry their realm).
    fn from(s: &crate::session::Session) -> UserRef {
        UserRef::new(&s.realm, &s.user)
    }
}

impl std::fmt::Display for UserRef {
    /// `user (realm R)`, for messages to operators; audit events carry the two
    /// fields separately.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (realm {})", self.user, self.realm)
    }
}

/// Phone numbers a user may have.
pub const MAX_SMS_NUMBERS: u8 = 2;

/// A registered SMS number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsNumber {
    /// Slot 0 or 1 (the user picks which gets the code).
    pub position: u8,
    /// Normalised number, `+` and digits.
    pub e164: String,
    /// When it was registered.
    pub added_ms: u64,
}

/// A registered authenticator app. The secret never leaves the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TotpDevice {
    /// Stable id (never reused), shown in lists and audit events.
    pub id: i64,
    /// The user's name for it ("Jobbmobil").
    pub description: String,
    /// When it was added.
    pub added_ms: u64,
    /// Start of the last time step accepted from it, if any.
    pub last_used_secs: Option<u64>,
}

/// A hardware token assigned to a user, without its seed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    /// Serial printed on the token.
    pub serial: String,
    /// HOTP or TOTP.
    pub kind: TokenKind,
    /// 6 or 8.
    pub digits: u8,
    /// Seconds per step (TOTP only).
    pub period: Option<u32>,
    /// When it was assigned.
    pub assigned_ms: Option<u64>,
}

/// A registered passkey or security key (a WebAuthn credential). Nothing in
/// it is secret: the credential's public key and its signature counter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Passkey {
    /// Stable id (never reused, like device ids), shown in lists and audit events.
    pub id: i64,
    /// The user's name for it ("YubiKey").
    pub description: String,
    /// base64url of the WebAuthn credential id; unique across all users and realms.
    pub credential_id: String,
    /// The relying-party library's serialised credential (JSON text, opaque here).
    pub key: String,
    /// The last signature counter accepted.
    pub counter: u32,
    /// When it was registered.
    pub added_ms: u64,
    /// When it was last used, if ever.
    pub last_used_ms: Option<u64>,
}

/// What [`EnrolmentStore::use_passkey`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasskeyUse {
    /// Saved: the counter moved forward (or both it and the stored one are
    /// 0: authenticators without a counter).
    Recorded,
    /// The counter did not move forward: a cloned authenticator, or a race
    /// with another use of the same count. Nothing saved.
    Regressed {
        /// The counter the store holds.
        stored: u32,
    },
    /// The user has no such passkey (removed meanwhile).
    Gone,
}

/// Everything a user has enrolled.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Enrolments {
    /// SMS numbers by position.
    pub sms: Vec<SmsNumber>,
    /// Authenticator devices by id.
    pub totp: Vec<TotpDevice>,
    /// Assigned tokens by serial.
    pub tokens: Vec<TokenInfo>,
    /// Passkeys by id.
    pub passkeys: Vec<Passkey>,
}

impl Enrolments {
    /// True when the user has nothing enrolled.
    pub fn is_empty(&self) -> bool {
        self.sms.is_empty()
            && self.totp.is_empty()
            && self.tokens.is_empty()
            && self.passkeys.is_empty()
    }
}

/// Which credential a code belonged to, for the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// An authenticator device.
    TotpDevice(i64),
    /// A hardware token.
    Token(String),
}

impl std::fmt::Display for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::TotpDevice(id) => write!(f, "totp:{id}"),
            Credential::Token(serial) => write!(f, "token:{serial}"),
        }
    }
}

/// The outcome of checking a one-time code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verify {
    /// Valid; its step or counter is now used up.
    Accepted {
        /// The credential that matched.
        by: Credential,
        /// True when this code completed a HOTP resynchronisation.
        resynced: bool,
    },
    /// A valid code whose step or counter was already used: audit as replay.
    Replay {
        /// The credential that matched.
        by: Credential,
    },
    /// A HOTP code far ahead of the counter: ask for the token's next code.
    NeedsNextCode {
        /// The token that matched.
        by: Credential,
    },
    /// Wrong or malformed code, or no credential of this kind at all (pages
    /// list the user's devices and tokens first to explain that case).
    Rejected,
}

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The database failed (file, lock, SQL).
    #[error("storage: {0}")]
    Backend(Box<dyn std::error::Error + Send + Sync>),
    /// A file or directory could not be created.
    #[error("storage: cannot create {path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The database was migrated by a newer portvakt.
    #[error("storage: database schema version {found} is newer than this portvakt knows ({known}); upgrade portvakt")]
    SchemaTooNew {
        /// Version in the file.
        found: u32,
        /// Newest version known here.
        known: u32,
    },
    /// A seed does not decrypt (another secret key, or a moved row).
    #[error("storage: seed of {what} does not decrypt: {source}")]
    Seal {
        /// Which credential.
        what: String,
        /// Why.
        source: SealError,
    },
    /// A user name that cannot be stored.
    #[error("user name must be 1 to 256 characters without control characters")]
    InvalidUser,
    /// An SMS position other than 0 or 1.
    #[error("SMS position must be 0 or 1 (at most {MAX_SMS_NUMBERS} numbers), got {0}")]
    InvalidPosition(u8),
    /// Not an E.164 number.
    #[error("{0:?} is not a phone number in E.164 form (+ and 7 to 15 digits)")]
    InvalidNumber(String),
    /// A device description that cannot be stored.
    #[error("description must be 1 to 100 characters without control characters")]
    InvalidDescription,
    /// A secret shorter than required.
    #[error("secret is {bits} bits; at least {min} bits are required")]
    WeakSecret {
        /// Its length in bits.
        bits: usize,
        /// The minimum.
        min: usize,
    },
    /// No token with this serial.
    #[error("no token with serial {0}")]
    UnknownToken(String),
    /// An import names serials that are already in the store.
    #[error("already imported (nothing was imported): {}", .0.join(", "))]
    DuplicateSerials(Vec<String>),
    /// The token belongs to someone else.
    #[error("token {serial} is assigned to {owner}; unassign it first")]
    AlreadyAssigned {
        /// The token.
        serial: String,
        /// Its current user.
        owner: UserRef,
    },
    /// A realm id that cannot be stored (the config's rule: letters, digits, - and _).
    #[error("realm id {0:?} is not valid: use letters, digits, - and _")]
    InvalidRealm(String),
    /// The file holds enrolments from before they were kept per realm, and
    /// nobody said which realm they belong to.
    #[error(
        "storage {path}: it holds enrolments of {users} user{} stored before enrolments \
         were kept per realm, and this configuration has several realms ({}), so portvakt \
         cannot tell whose they are (guessing could give one realm's anna the other's \
         authenticator). Say which realm they belong to, once: \
         `portvakt storage adopt --realm ID --config FILE` (add user names to adopt only \
         those; `portvakt storage legacy --config FILE` lists them), then start again",
        if *.users == 1 { "" } else { "s" },
        .realms.join(", ")
    )]
    LegacyRows {
        /// The database file.
        path: String,
        /// How many user names have such rows.
        users: usize,
        /// The configured realms, to choose from.
        realms: Vec<String>,
    },
    /// A passkey whose credential id is already registered (to anyone).
    #[error("this security key is already registered")]
    DuplicateCredential,
    /// A WebAuthn credential id that cannot be stored.
    #[error(
        "credential id must be 1 to {MAX_CREDENTIAL_ID} characters of base64url (A-Z a-z 0-9 - _)"
    )]
    InvalidCredentialId,
    /// A serialised passkey that cannot be stored.
    #[error("serialised passkey must be 1 to {MAX_PASSKEY_KEY} bytes")]
    InvalidPasskeyKey,
    /// Resynchronisation asked for a TOTP token.
    #[error("token {0} is a TOTP token; only HOTP tokens are resynchronised")]
    NotHotp(String),
    /// The blocking task running the query died.
    #[error("storage task failed: {0}")]
    Task(String),
    /// `storage copy` into a store that already holds enrolments.
    #[error(
        "the target already holds {sms} SMS number(s), {devices} authenticator device(s), \
         {tokens} token(s) and {passkeys} passkey(s); copy only into an empty store (nothing \
         was copied)"
    )]
    NotEmpty {
        /// Rows found.
        sms: usize,
        /// Rows found.
        devices: usize,
        /// Rows found.
        tokens: usize,
        /// Rows found.
        passkeys: usize,
    },
    /// `storage copy` from a SQLite file with enrolments not yet given to a realm.
    #[error(
        "the source holds enrolments of {0} user(s) stored before enrolments were kept per \
         realm; give them to a realm first (`portvakt storage legacy` and `storage adopt`), \
         then copy (nothing was copied)"
    )]
    LegacyNotAdopted(usize),
    /// What `storage copy` read back from the target is not what it wrote.
    #[error("the copy does not match the source ({0}); do not use the target")]
    CopyMismatch(String),
    /// The database cannot be reached or did not answer in time (PostgreSQL
    /// down, network gone, pool exhausted): try again later; nothing was saved
    /// unless the commit itself was cut off, which only ever uses a code up.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
}

impl StorageError {
    /// True when the store could not be reached (as opposed to refusing an
    /// input or failing a query): the gateway answers "try again later".
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StorageError::Unavailable(_))
    }
}

/// Durable enrolments, as the gateway and the admin commands use them.
/// Times are passed in (the [`crate::clock`] seam); users are (realm,
/// canonical id) pairs, names case-sensitive: `anna` of one realm never sees,
/// uses or removes what `anna` of another realm enrolled.
#[async_trait]
pub trait EnrolmentStore: Send + Sync + std::fmt::Debug {
    /// Whether the store answers a query now (the admin listener's `/readyz`).
    async fn ping(&self) -> Result<(), StorageError>;
    /// The user's SMS numbers by position.
    async fn sms_numbers(&self, who: &UserRef) -> Result<Vec<SmsNumber>, StorageError>;
    /// Register or replace the number in `position` (0 or 1).
    async fn set_sms_number(
        &self,
        who: &UserRef,
        position: u8,
        e164: &str,
        now_ms: u64,
    ) -> Result<(), StorageError>;
    /// Remove the number in `position`; false if there was none.
    async fn remove_sms_number(&self, who: &UserRef, position: u8) -> Result<bool, StorageError>;

    /// The user's authenticator devices by id.
    async fn totp_devices(&self, who: &UserRef) -> Result<Vec<TotpDevice>, StorageError>;
    /// Add a device with `secret` (at least 160 bits); returns its id.
    async fn add_totp_device(
        &self,
        who: &UserRef,
        description: &str,
        secret: &[u8],
        now_ms: u64,
    ) -> Result<i64, StorageError>;
    /// Remove the user's device `id`; false if the user has no such device.
    async fn remove_totp_device(&self, who: &UserRef, id: i64) -> Result<bool, StorageError>;
    /// Check an app code against all the user's devices (±1 step, no replay).
    async fn verify_totp(
        &self,
        who: &UserRef,
        code: &str,
        now_secs: u64,
    ) -> Result<Verify, StorageError>;

    /// Import tokens, all or nothing; a serial already present refuses the lot.
    async fn import_tokens(
        &self,
        tokens: Vec<TokenRecord>,
        now_ms: u64,
    ) -> Result<usize, StorageError>;
    /// Assign a token to a user (idempotent for the same user of the same realm).
    async fn assign_token(
        &self,
        serial: &str,
        who: &UserRef,
        now_ms: u64,
    ) -> Result<(), StorageError>;
    /// Take a token from its user; the user it had, None if it was not assigned.
    async fn unassign_token(&self, serial: &str) -> Result<Option<UserRef>, StorageError>;
    /// The tokens assigned to a user by serial.
    async fn tokens_of(&self, who: &UserRef) -> Result<Vec<TokenInfo>, StorageError>;
    /// Check a token code against the user's tokens (HOTP window and
    /// resynchronisation, TOTP ±1 step without replay).
    async fn verify_token(
        &self,
        who: &UserRef,
        code: &str,
        now_secs: u64,
    ) -> Result<Verify, StorageError>;
    /// Resynchronise a HOTP token from two consecutive codes; the new counter, or
    /// None when no consecutive pair was found.
    async fn resync_token(
        &self,
        serial: &str,
        code1: &str,
        code2: &str,
    ) -> Result<Option<u64>, StorageError>;

    /// The user's passkeys by id.
    async fn passkeys(&self, who: &UserRef) -> Result<Vec<Passkey>, StorageError>;
    /// Register a passkey; its id. A credential id already registered (to
    /// anyone) is [`StorageError::DuplicateCredential`].
    async fn add_passkey(
        &self,
        who: &UserRef,
        description: &str,
        credential_id: &str,
        key: &str,
        counter: u32,
        now_ms: u64,
    ) -> Result<i64, StorageError>;
    /// Remove the user's passkey `id`; false if the user has no such passkey.
    async fn remove_passkey(&self, who: &UserRef, id: i64) -> Result<bool, StorageError>;
    /// Record a successful use: the new counter and serialised credential,
    /// and the time, only if `counter` is greater than the stored one or
    /// both are 0, in one statement (two gateways racing with the same
    /// counter: exactly one `Recorded`, the other `Regressed`).
    async fn use_passkey(
        &self,
        who: &UserRef,
        id: i64,
        counter: u32,
        key: &str,
        now_ms: u64,
    ) -> Result<PasskeyUse, StorageError>;

    /// Everything the user has enrolled.
    async fn enrolments(&self, who: &UserRef) -> Result<Enrolments, StorageError>;
    /// Remove numbers, devices and passkeys and unassign tokens; returns what there was.
    async fn reset_user(&self, who: &UserRef) -> Result<Enrolments, StorageError>;
}

/// Open (and migrate) the store the configuration names. Synchronous, for
/// start-up and the admin commands: PostgreSQL is opened on a thread of its
/// own, so this works inside and outside a tokio runtime; its pool opens
/// later connections on whichever runtime uses it. A PostgreSQL server that
/// does not answer is an error ([`StorageError::Unavailable`]).
pub fn open(
    storage: &crate::config::model::Storage,
    sealer: Sealer,
    legacy: LegacyRows,
) -> Result<std::sync::Arc<dyn EnrolmentStore>, StorageError> {
    open_with(storage, sealer, legacy, false)
}

/// [`open`] for the gateway's start: a PostgreSQL server that does not
/// answer yet is waited for ([`postgres::PostgresStore::open_or_wait`]), so
/// the gateway comes up during a database outage and heals by itself.
pub fn open_for_gateway(
    storage: &crate::config::model::Storage,
    sealer: Sealer,
    legacy: LegacyRows,
) -> Result<std::sync::Arc<dyn EnrolmentStore>, StorageError> {
    open_with(storage, sealer, legacy, true)
}

fn open_with(
    storage: &crate::config::model::Storage,
    sealer: Sealer,
    legacy: LegacyRows,
    wait: bool,
) -> Result<std::sync::Arc<dyn EnrolmentStore>, StorageError> {
    use crate::config::model::Storage;
    match storage {
        Storage::Sqlite(path) => Ok(std::sync::Arc::new(SqliteStore::open(
            path, sealer, legacy,
        )?)),
        Storage::Postgres(pg) => {
            let opened = std::thread::scope(|s| {
                s.spawn(|| {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(|e| StorageError::Task(e.to_string()))?;
                    if wait {
                        rt.block_on(postgres::PostgresStore::open_or_wait(pg, sealer))
                    } else {
                        rt.block_on(postgres::PostgresStore::open(pg, sealer))
                    }
                })
                .join()
                .unwrap_or_else(|_| Err(StorageError::Task("opening PostgreSQL panicked".into())))
            })?;
            Ok(std::sync::Arc::new(opened))
        }
    }
}

/// Refuse (realm, user) pairs a backend should not store.
pub(crate) fn check_who(who: &UserRef) -> Result<(), StorageError> {
    check_realm(&who.realm)?;
    check_user(&who.user)
}

/// The config's rule for realm ids; the store repeats it because the realm
/// is part of the sealed seeds' associated data, which must stay unambiguous.
pub(crate) fn check_realm(realm: &str) -> Result<(), StorageError> {
    let ok = !realm.is_empty()
        && realm.len() <= 256
        && realm
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    ok.then_some(())
        .ok_or_else(|| StorageError::InvalidRealm(realm.to_string()))
}

/// Refuse user names a backend should not store.
pub(crate) fn check_user(user: &str) -> Result<(), StorageError> {
    let ok = !user.is_empty() && user.len() <= 256 && !user.chars().any(char::is_control);
    ok.then_some(()).ok_or(StorageError::InvalidUser)
}

/// Refuse numbers not in E.164 form.
pub(crate) fn check_e164(e164: &str) -> Result<(), StorageError> {
    let ok = e164.strip_prefix('+').is_some_and(|d| {
        (7..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()) && !d.starts_with('0')
    });
    ok.then_some(())
        .ok_or_else(|| StorageError::InvalidNumber(e164.to_string()))
}

/// Refuse empty, long or control-character descriptions.
pub(crate) fn check_description(description: &str) -> Result<(), StorageError> {
    let n = description.chars().count();
    let ok = (1..=100).contains(&n) && !description.chars().any(char::is_control);
    ok.then_some(()).ok_or(StorageError::InvalidDescription)
}

/// Longest WebAuthn credential id stored, in base64url characters (the
/// spec's 1023 bytes encode to 1364).
pub const MAX_CREDENTIAL_ID: usize = 1400;
/// Longest serialised passkey stored, in bytes: a public key and a few
/// flags take well under 1 KiB; the bound keeps a hostile client from
/// filling the store.
pub const MAX_PASSKEY_KEY: usize = 16384;

/// Refuse credential ids that are not base64url of a plausible length: the
/// id is the lookup key at login, so one spelling per credential.
pub(crate) fn check_credential_id(credential_id: &str) -> Result<(), StorageError> {
    let ok = (1..=MAX_CREDENTIAL_ID).contains(&credential_id.len())
        && credential_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    ok.then_some(()).ok_or(StorageError::InvalidCredentialId)
}

/// Refuse empty or oversized serialised passkeys.
pub(crate) fn check_passkey_key(key: &str) -> Result<(), StorageError> {
    let ok = (1..=MAX_PASSKEY_KEY).contains(&key.len());
    ok.then_some(()).ok_or(StorageError::InvalidPasskeyKey)
}
