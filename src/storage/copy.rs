//! `portvakt storage copy`: every enrolment of one store into another, empty
//! one (SQLite to PostgreSQL when a second gateway arrives, or back).
//!
//! Rows move as they are, seeds still sealed: a seed is bound to its device
//! id, realm and user or to its token serial ([`super::crypto`]), which both
//! backends keep, so nothing is decrypted on the way and the key never
//! changes hands. What must survive a move for codes to stay single-use moves
//! too: each device's last accepted step, each token's counter, last step and
//! half-done resynchronisation, each passkey's signature counter (so a cloned
//! authenticator's older count stays refused), and the highest device and
//! passkey ids ever issued (ids are never reused, so an old audit line never
//! names a new device).
//!
//! The copy is checked three ways before it counts as done: every seed of the
//! source opens with this configuration's key (before anything is written),
//! the target is refused unless empty, and afterwards the target is read back
//! and compared row by row with what was read from the source.

use async_trait::async_trait;

use super::crypto::{open_seed, token_aad, totp_aad};
use super::{Sealer, StorageError, UserRef};

/// An SMS number as stored.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SmsRow {
    /// Whose.
    pub who: UserRef,
    /// Slot 0 or 1.
    pub position: i64,
    /// E.164.
    pub e164: String,
    /// When registered.
    pub added_ms: i64,
}

/// An authenticator device as stored, seed sealed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct DeviceRow {
    /// Its id (part of what the seed is bound to).
    pub id: i64,
    /// Whose.
    pub who: UserRef,
    /// The user's name for it.
    pub description: String,
    /// Sealed secret.
    pub seed: Vec<u8>,
    /// When added.
    pub added_ms: i64,
    /// The last time step accepted from it.
    pub last_step: Option<i64>,
}

/// A hardware token as stored, seed sealed, assigned or not.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TokenRow {
    /// Serial (what the seed is bound to).
    pub serial: String,
    /// `hotp` or `totp`.
    pub kind: String,
    /// 6 or 8.
    pub digits: i64,
    /// Seconds per step (TOTP).
    pub period: Option<i64>,
    /// Next HOTP counter.
    pub counter: i64,
    /// Last TOTP step accepted.
    pub last_step: Option<i64>,
    /// Sealed secret.
    pub seed: Vec<u8>,
    /// When imported.
    pub imported_ms: i64,
    /// Its user, if assigned.
    pub owner: Option<UserRef>,
    /// When assigned.
    pub assigned_ms: Option<i64>,
    /// A resynchronisation's first code's counter, waiting for the second.
    pub resync_counter: Option<i64>,
    /// When that first code came.
    pub resync_at: Option<i64>,
}

/// A passkey as stored (nothing sealed: a public key and a counter).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PasskeyRow {
    /// Its id.
    pub id: i64,
    /// Whose.
    pub who: UserRef,
    /// The user's name for it.
    pub description: String,
    /// base64url WebAuthn credential id (unique in the store).
    pub credential_id: String,
    /// The serialised credential.
    pub key: String,
    /// The last signature counter accepted.
    pub counter: i64,
    /// When registered.
    pub added_ms: i64,
    /// When last used.
    pub last_used_ms: Option<i64>,
}

/// Every row of a store, in a stable order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// SMS numbers.
    pub sms: Vec<SmsRow>,
    /// Authenticator devices.
    pub devices: Vec<DeviceRow>,
    /// Tokens, assigned or not.
    pub tokens: Vec<TokenRow>,
    /// The highest device id ever issued (ids of removed devices included).
    pub device_id_high_water: i64,
    /// Passkeys.
    pub passkeys: Vec<PasskeyRow>,
    /// The highest passkey id ever issued (ids of removed passkeys included).
    pub passkey_id_high_water: i64,
}

impl Snapshot {
    /// Sort every list, so two reads of the same rows compare equal.
    pub fn sorted(mut self) -> Snapshot {
        self.sms.sort();
        self.devices.sort();
        self.tokens.sort();
        self.passkeys.sort();
        self
    }

    /// True when there is no row at all.
    pub fn is_empty(&self) -> bool {
        self.sms.is_empty()
            && self.devices.is_empty()
            && self.tokens.is_empty()
            && self.passkeys.is_empty()
    }
}

/// A backend that can be read whole and filled whole.
#[async_trait]
pub trait Copyable: Send + Sync {
    /// Every row, read in one consistent snapshot. Refuses a store that
    /// still holds enrolments from before realms (adopt them first).
    async fn snapshot(&self) -> Result<Snapshot, StorageError>;
    /// Write every row of `rows` in one transaction, keeping ids, and raise
    /// the device and passkey id sequences to their high water; refuses a store that is not
    /// empty ([`StorageError::NotEmpty`]), so a copy never mixes two stores.
    async fn restore(&self, rows: &Snapshot) -> Result<(), StorageError>;
}

/// What a copy moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Copied {
    /// SMS numbers.
    pub sms: usize,
    /// Authenticator devices.
    pub devices: usize,
    /// Tokens.
    pub tokens: usize,
    /// Of those, assigned to a user.
    pub assigned: usize,
    /// Passkeys.
    pub passkeys: usize,
    /// Distinct users with at least one enrolment.
    pub users: usize,
}

/// Copy every row of `from` into the empty `to`, checked as the module
/// says. `sealer` is the key both stores are used with.
pub async fn copy(
    from: &dyn Copyable,
    to: &dyn Copyable,
    sealer: &Sealer,
) -> Result<Copied, StorageError> {
    let rows = from.snapshot().await?.sorted();
    // A seed that does not open here would not open for the gateway either:
    // find that out before writing anything.
    for d in &rows.devices {
        open_seed(sealer, &d.seed, &totp_aad(d.id, &d.who))?;
    }
    for t in &rows.tokens {
        open_seed(sealer, &t.seed, &token_aad(&t.serial))?;
    }
    to.restore(&rows).await?;
    let back = to.snapshot().await?.sorted();
    if back != rows {
        return Err(StorageError::CopyMismatch(describe_difference(
            &rows, &back,
        )));
    }
    let mut users: Vec<&UserRef> = rows
        .sms
        .iter()
        .map(|s| &s.who)
        .chain(rows.devices.iter().map(|d| &d.who))
        .chain(rows.tokens.iter().filter_map(|t| t.owner.as_ref()))
        .chain(rows.passkeys.iter().map(|p| &p.who))
        .collect();
    users.sort();
    users.dedup();
    Ok(Copied {
        sms: rows.sms.len(),
        devices: rows.devices.len(),
        tokens: rows.tokens.len(),
        assigned: rows.tokens.iter().filter(|t| t.owner.is_some()).count(),
        passkeys: rows.passkeys.len(),
        users: users.len(),
    })
}

/// Which table differs, for the error (never a seed nor a key).
fn describe_difference(want: &Snapshot, got: &Snapshot) -> String {
    let mut out = Vec::new();
    let mut table = |name: &str, a: usize, b: usize, same: bool| {
        if !same {
            out.push(format!(
                "{name}: {a} read from the source, {b} in the target"
            ));
        }
    };
    table(
        "sms numbers",
        want.sms.len(),
        got.sms.len(),
        want.sms == got.sms,
    );
    table(
        "authenticator devices",
        want.devices.len(),
        got.devices.len(),
        want.devices == got.devices,
    );
    table(
        "tokens",
        want.tokens.len(),
        got.tokens.len(),
        want.tokens == got.tokens,
    );
    table(
        "passkeys",
        want.passkeys.len(),
        got.passkeys.len(),
        want.passkeys == got.passkeys,
    );
    let mut sequence = |name: &str, a: i64, b: i64| {
        if a != b {
            out.push(format!(
                "{name} id sequence: {a} in the source, {b} in the target"
            ));
        }
    };
    sequence(
        "device",
        want.device_id_high_water,
        got.device_id_high_water,
    );
    sequence(
        "passkey",
        want.passkey_id_high_water,
        got.passkey_id_high_water,
    );
    out.join("; ")
}

/// Columns of `sms_numbers`, in [`SmsRow`] order (both backends' schema).
pub(crate) const SMS_COLUMNS: &str = "realm, username, position, e164, added_ms";
/// Columns of `totp_devices`, in [`DeviceRow`] order.
pub(crate) const DEVICE_COLUMNS: &str =
    "id, realm, username, description, seed, added_ms, last_step";
/// Columns of `tokens`, in [`TokenRow`] order.
pub(crate) const TOKEN_COLUMNS: &str = "serial, kind, digits, period, counter, last_step, seed, \
     imported_ms, realm, username, assigned_ms, resync_counter, resync_at";
/// Columns of `passkeys`, in [`PasskeyRow`] order.
pub(crate) const PASSKEY_COLUMNS: &str =
    "id, realm, username, description, credential_id, key, counter, added_ms, last_used_ms";

/// `INSERT INTO table (columns) VALUES (p1, p2, …)` with the backend's
/// placeholder for parameter `i` (1-based): `?1` for SQLite, `$1` for PostgreSQL.
pub(crate) fn insert_sql(table: &str, columns: &str, placeholder: char) -> String {
    let n = columns.split(',').count();
    let params: Vec<String> = (1..=n).map(|i| format!("{placeholder}{i}")).collect();
    format!(
        "INSERT INTO {table} ({columns}) VALUES ({})",
        params.join(", ")
    )
}

/// The owner of a token row from its nullable realm and user columns.
pub(crate) fn owner(realm: Option<String>, user: Option<String>) -> Option<UserRef> {
    realm.zip(user).map(|(r, u)| UserRef::new(r, u))
}

/// Refuse to fill a store that holds rows (counts from the target itself,
/// in [`COUNT_ALL`] order: SMS numbers, devices, tokens, passkeys).
pub(crate) fn must_be_empty(counts: [i64; 4]) -> Result<(), StorageError> {
    if counts.iter().all(|&c| c == 0) {
        return Ok(());
    }
    let n = |v: i64| usize::try_from(v).unwrap_or(0);
    let [sms, devices, tokens, passkeys] = counts;
    Err(StorageError::NotEmpty {
        sms: n(sms),
        devices: n(devices),
        tokens: n(tokens),
        passkeys: n(passkeys),
    })
}

/// `SELECT count(*) …` of the four tables, for [`must_be_empty`].
pub(crate) const COUNT_ALL: &str = "SELECT (SELECT count(*) FROM sms_numbers), \
     (SELECT count(*) FROM totp_devices), (SELECT count(*) FROM tokens), \
     (SELECT count(*) FROM passkeys)";
