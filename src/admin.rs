//! Admin commands on enrolments: import and assign hardware tokens, add
//! authenticator devices, list and remove what a user has. The CLI parses
//! arguments and prints the returned text; these functions do the work.
//!
//! They run before the gateway starts or while it runs: SQLite in WAL mode
//! lets the CLI process write while the gateway reads, and code checks lock
//! the file, so an admin change and a login never interleave half-way.
//!
//! [`Admin`] is synchronous (it owns a small tokio runtime for the async
//! store): call it from plain `main`, never from inside a runtime.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use crate::clock::{SharedClock, SystemClock};
use crate::factors::token::{parse_csv, CsvError, TokenKind};
use crate::factors::totp;
use crate::signing::KeyError;
use crate::storage::{
    EnrolmentStore, Enrolments, LegacyRows, Sealer, SqliteStore, StorageError, UserRef,
};

/// Why an admin command failed (printed as is).
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The secret key file is missing or too short.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The store refused or failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// An input file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// An import file has errors; nothing was imported.
    #[error("{path}: nothing imported:\n{source}")]
    Csv {
        /// The file.
        path: String,
        /// Every problem, with line numbers.
        source: CsvError,
    },
    /// The thing to change does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The tokio runtime for the store could not start.
    #[error("cannot start the admin runtime: {0}")]
    Runtime(std::io::Error),
    /// A user was named without a realm where the configuration has several.
    #[error(
        "this configuration has several realms ({}), and a user is a realm and a name \
         (two realms may both hold the name): say which with --realm ID",
        .0.join(", ")
    )]
    RealmNeeded(Vec<String>),
    /// `--realm` names no configured realm.
    #[error("--realm {given:?}: the configuration has no such realm; its realms are {}", .realms.join(", "))]
    UnknownRealm {
        /// What was given.
        given: String,
        /// The configured realm ids.
        realms: Vec<String>,
    },
}

/// The realm a command means: `--realm` if given (it must be configured),
/// else the only realm; with several realms it must be given, since a guess
/// would act on another realm's user of the same name.
pub fn realm_for(
    config: &crate::config::Config,
    given: Option<&str>,
) -> Result<String, AdminError> {
    let realms: Vec<String> = config.realms.iter().map(|r| r.id.clone()).collect();
    pick_realm(realms, given)
}

/// [`realm_for`] on the configured realm ids.
fn pick_realm(realms: Vec<String>, given: Option<&str>) -> Result<String, AdminError> {
    match (given, realms.as_slice()) {
        (Some(g), _) if realms.iter().any(|r| r == g) => Ok(g.to_owned()),
        (Some(g), _) => Err(AdminError::UnknownRealm {
            given: g.to_owned(),
            realms,
        }),
        (None, [only]) => Ok(only.clone()),
        (None, _) => Err(AdminError::RealmNeeded(realms)),
    }
}

/// An open store plus what the commands need around it.
#[derive(Debug)]
pub struct Admin {
    /// The store the gateway also uses.
    store: Arc<dyn EnrolmentStore>,
    /// For "added" and "assigned" times.
    clock: SharedClock,
    /// Drives the async store from synchronous CLI code.
    rt: tokio::runtime::Runtime,
}

impl Admin {
    /// Open the store a validated configuration names (rows from before
    /// realms: as [`LegacyRows::for_config`] says).
    pub fn from_config(config: &crate::config::Config) -> Result<Admin, AdminError> {
        Admin::open(
            &config.storage,
            &config.secret_key_file,
            LegacyRows::for_config(config),
        )
    }

    /// Open the store `storage` (SQLite file or PostgreSQL) with the key in
    /// `secret_key_file` (the config's `storage` and `secret_key_file`).
    pub fn open(
        storage: &crate::config::model::Storage,
        secret_key_file: &Path,
        legacy: LegacyRows,
    ) -> Result<Admin, AdminError> {
        let sealer = Sealer::from_key_file(secret_key_file)?;
        let store = crate::storage::open(storage, sealer, legacy)?;
        Admin::with_store(store, Arc::new(SystemClock))
    }

    /// Use an already open store (tests, other backends).
    pub fn with_store(
        store: Arc<dyn EnrolmentStore>,
        clock: SharedClock,
    ) -> Result<Admin, AdminError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(AdminError::Runtime)?;
        Ok(Admin { store, clock, rt })
    }

    fn run<T>(&self, fut: impl Future<Output = Result<T, StorageError>>) -> Result<T, AdminError> {
        Ok(self.rt.block_on(fut)?)
    }

    /// `token import FILE`: all tokens of a CSV file, or none.
    pub fn token_import(&self, csv_path: &Path) -> Result<String, AdminError> {
        let path = csv_path.display().to_string();
        let text = std::fs::read_to_string(csv_path).map_err(|source| AdminError::Read {
            path: path.clone(),
            source,
        })?;
        let records = parse_csv(&text).map_err(|source| AdminError::Csv {
            path: path.clone(),
            source,
        })?;
        let n = self.run(self.store.import_tokens(records, self.clock.now_ms()))?;
        tracing::info!(action = "token_import", file = %path, count = n, "admin");
        Ok(format!("imported {n} token{} from {path}", plural(n)))
    }

    /// `token assign SERIAL USER`.
    pub fn token_assign(&self, serial: &str, who: &UserRef) -> Result<String, AdminError> {
        self.run(self.store.assign_token(serial, who, self.clock.now_ms()))?;
        tracing::info!(
            action = "token_assign",
            serial,
            user = who.user,
            realm = who.realm,
            "admin"
        );
        Ok(format!("token {serial} is assigned to {who}"))
    }

    /// `token unassign SERIAL`.
    pub fn token_unassign(&self, serial: &str) -> Result<String, AdminError> {
        let was = self.run(self.store.unassign_token(serial))?;
        tracing::info!(action = "token_unassign", serial, "admin");
        Ok(match was {
            Some(who) => format!("token {serial} is no longer assigned (it was {who}'s)"),
            None => format!("token {serial} was not assigned"),
        })
    }

    /// `token resync SERIAL CODE1 CODE2`: two consecutive codes from a HOTP token.
    pub fn token_resync(
        &self,
        serial: &str,
        code1: &str,
        code2: &str,
    ) -> Result<String, AdminError> {
        match self.run(self.store.resync_token(serial, code1, code2))? {
            Some(next) => {
                tracing::info!(action = "token_resync", serial, next, "admin");
                Ok(format!("token {serial} resynchronised; the next code uses counter {next}"))
            }
            None => Err(AdminError::NotFound(format!(
                "token {serial}: the two codes are not consecutive codes of this token within {} presses; \
                 press the button twice more and try again",
                crate::factors::token::ADMIN_RESYNC_LOOKAHEAD
            ))),
        }
    }

    /// `totp add USER DESCRIPTION [--issuer ISSUER]`: a new authenticator
    /// device; prints its secret and `otpauth://` URI this once only.
    pub fn totp_add(
        &self,
        who: &UserRef,
        description: &str,
        issuer: &str,
    ) -> Result<String, AdminError> {
        let secret = totp::new_secret();
        let id =
            self.run(
                self.store
                    .add_totp_device(who, description, &secret, self.clock.now_ms()),
            )?;
        let user = who.user.as_str();
        tracing::info!(
            action = "totp_add",
            user,
            realm = who.realm,
            device = id,
            "admin"
        );
        Ok(format!(
            "added authenticator device {id} ({description:?}) for {who}\n\
             secret: {}\n\
             uri:    {}\n\
             The secret is shown only now and cannot be read back later.",
            totp::base32(&secret),
            totp::otpauth_uri(issuer, user, &secret)
        ))
    }

    /// `enrolments USER`: what the user has, without secrets.
    pub fn enrolments_list(&self, who: &UserRef) -> Result<String, AdminError> {
        let e = self.run(self.store.enrolments(who))?;
        if e.is_empty() {
            return Ok(format!("{who} has nothing enrolled"));
        }
        Ok(format!("{who}:\n{}", describe(&e)))
    }

    /// `totp remove USER ID`.
    pub fn remove_totp(&self, who: &UserRef, id: i64) -> Result<String, AdminError> {
        if !self.run(self.store.remove_totp_device(who, id))? {
            return Err(AdminError::NotFound(format!(
                "{who} has no authenticator device {id}"
            )));
        }
        let user = who.user.as_str();
        tracing::info!(
            action = "totp_remove",
            user,
            realm = who.realm,
            device = id,
            "admin"
        );
        Ok(format!("removed authenticator device {id} of {who}"))
    }

    /// `sms remove USER POSITION` (0 or 1).
    pub fn remove_sms(&self, who: &UserRef, position: u8) -> Result<String, AdminError> {
        if !self.run(self.store.remove_sms_number(who, position))? {
            return Err(AdminError::NotFound(format!(
                "{who} has no SMS number {}",
                position + 1
            )));
        }
        let user = who.user.as_str();
        tracing::info!(
            action = "sms_remove",
            user,
            realm = who.realm,
            position,
            "admin"
        );
        Ok(format!("removed SMS number {} of {who}", position + 1))
    }

    /// `reset USER`: remove numbers and devices, unassign tokens.
    pub fn reset_user(&self, who: &UserRef) -> Result<String, AdminError> {
        let had = self.run(self.store.reset_user(who))?;
        let user = who.user.as_str();
        tracing::info!(
            action = "reset_user",
            user,
            realm = who.realm,
            sms = had.sms.len(),
            totp = had.totp.len(),
            tokens = had.tokens.len(),
            passkeys = had.passkeys.len(),
            "admin"
        );
        if had.is_empty() {
            return Ok(format!("{who} had nothing enrolled"));
        }
        Ok(format!("reset {who}; removed:\n{}", describe(&had)))
    }
}

/// `storage legacy`: enrolments stored before they were kept per realm.
pub fn storage_legacy(config: &crate::config::Config) -> Result<String, AdminError> {
    let store = open_keeping_legacy(config)?;
    let users = store.legacy_users()?;
    if users.is_empty() {
        return Ok("no enrolments from before realms: nothing to adopt".into());
    }
    let mut out = vec![format!(
        "{} user{} with enrolments from before realms (adopt them with \
         `portvakt storage adopt --realm ID [USER ...]`):",
        users.len(),
        plural(users.len())
    )];
    for u in &users {
        out.push(format!(
            "  {}  sms {}, totp {}, tokens {}",
            u.user, u.sms, u.totp, u.tokens
        ));
    }
    Ok(out.join("\n"))
}

/// `storage adopt --realm ID [USER ...]`: give enrolments from before realms
/// (of these users, or of all that are left) to one realm.
pub fn storage_adopt(
    config: &crate::config::Config,
    realm: &str,
    users: &[String],
) -> Result<String, AdminError> {
    let store = open_keeping_legacy(config)?;
    if !users.is_empty() {
        let present: Vec<String> = store.legacy_users()?.into_iter().map(|u| u.user).collect();
        let missing: Vec<&str> = users
            .iter()
            .filter(|u| !present.contains(u))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            return Err(AdminError::NotFound(format!(
                "no enrolments from before realms for: {} (nothing was adopted; \
                 `portvakt storage legacy` lists who has some)",
                missing.join(", ")
            )));
        }
    }
    let a = store.adopt_legacy(realm, (!users.is_empty()).then_some(users))?;
    tracing::info!(
        action = "storage_adopt",
        realm,
        users = a.users.len(),
        sms = a.sms,
        totp = a.totp,
        tokens = a.tokens,
        "admin"
    );
    let left = store.legacy_users()?.len();
    Ok(format!(
        "realm {realm} adopted the enrolments of {} user{} ({} SMS number{}, {} authenticator \
         device{}, {} token{}){}; {left} user{} left without a realm",
        a.users.len(),
        plural(a.users.len()),
        a.sms,
        plural(a.sms),
        a.totp,
        plural(a.totp),
        a.tokens,
        plural(a.tokens),
        if a.users.is_empty() {
            String::new()
        } else {
            format!(": {}", a.users.join(", "))
        },
        plural(left),
    ))
}

/// `storage copy --from SRC --to DST`: every enrolment of one store into
/// another, empty one, with the configuration's key ([`crate::storage::copy`]
/// says what is checked). Each side is a `postgres://…` URL or a SQLite file
/// (relative to the working directory); the source file must exist, a target
/// file is created.
pub fn storage_copy(
    config: &crate::config::Config,
    from: &str,
    to: &str,
) -> Result<String, AdminError> {
    let cwd = std::env::current_dir().map_err(|source| AdminError::Read {
        path: ".".into(),
        source,
    })?;
    let from = location(from, &cwd)?;
    let to = location(to, &cwd)?;
    if from == to {
        return Err(AdminError::NotFound(format!(
            "--from and --to are both {from}: copy into another store"
        )));
    }
    if let crate::config::model::Storage::Sqlite(path) = &from {
        if !path.is_file() {
            return Err(AdminError::NotFound(format!(
                "--from {}: no such SQLite file (nothing was copied)",
                path.display()
            )));
        }
    }
    let sealer = Sealer::from_key_file(&config.secret_key_file)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(AdminError::Runtime)?;
    let copied = rt.block_on(async {
        let source = Opened::open(&from, &sealer).await?;
        let target = Opened::open(&to, &sealer).await?;
        crate::storage::copy::copy(source.copyable(), target.copyable(), &sealer).await
    })?;
    tracing::info!(
        action = "storage_copy",
        from = %from,
        to = %to,
        sms = copied.sms,
        devices = copied.devices,
        tokens = copied.tokens,
        passkeys = copied.passkeys,
        "admin"
    );
    Ok(format!(
        "copied the enrolments of {} user{} from {from} to {to}: {} SMS number{}, {} \
         authenticator device{}, {} token{} ({} assigned), {} passkey{}\n\
         checked: every seed opens with this configuration's key, and the target reads back \
         identical to the source\n\
         changes made to {from} after this copy are not in {to}: keep the gateways stopped \
         until their `storage:` names {to}",
        copied.users,
        plural(copied.users),
        copied.sms,
        plural(copied.sms),
        copied.devices,
        plural(copied.devices),
        copied.tokens,
        plural(copied.tokens),
        copied.assigned,
        copied.passkeys,
        plural(copied.passkeys),
    ))
}

/// A `storage copy` side as given on the command line.
fn location(given: &str, cwd: &Path) -> Result<crate::config::model::Storage, AdminError> {
    use crate::config::model::Storage;
    let given = given.trim();
    if crate::storage::postgres::settings::is_postgres_url(given) {
        crate::storage::postgres::PgSettings::parse(given, cwd)
            .map(Storage::Postgres)
            .map_err(|e| AdminError::NotFound(e.to_string()))
    } else if given.is_empty() {
        Err(AdminError::NotFound(
            "an empty store name: give a SQLite file or a postgres:// URL".into(),
        ))
    } else {
        Ok(Storage::Sqlite(cwd.join(given)))
    }
}

/// One side of a copy, opened (and migrated) as the gateway would.
enum Opened {
    Sqlite(SqliteStore),
    Postgres(crate::storage::postgres::PostgresStore),
}

impl Opened {
    async fn open(
        at: &crate::config::model::Storage,
        sealer: &Sealer,
    ) -> Result<Opened, StorageError> {
        use crate::config::model::Storage;
        Ok(match at {
            // Rows from before realms are kept as they are: the snapshot
            // refuses them rather than guessing their realm.
            Storage::Sqlite(path) => {
                Opened::Sqlite(SqliteStore::open(path, sealer.clone(), LegacyRows::Keep)?)
            }
            Storage::Postgres(pg) => Opened::Postgres(
                crate::storage::postgres::PostgresStore::open(pg, sealer.clone()).await?,
            ),
        })
    }

    fn copyable(&self) -> &dyn crate::storage::copy::Copyable {
        match self {
            Opened::Sqlite(s) => s,
            Opened::Postgres(p) => p,
        }
    }
}

/// The SQLite store as it is, rows from before realms included (only SQLite
/// files can hold those: PostgreSQL storage was per realm from its start).
fn open_keeping_legacy(config: &crate::config::Config) -> Result<SqliteStore, AdminError> {
    let crate::config::model::Storage::Sqlite(path) = &config.storage else {
        return Err(AdminError::NotFound(
            "storage is PostgreSQL, which never held enrolments from before realms: \
             nothing to list or adopt"
                .into(),
        ));
    };
    let sealer = Sealer::from_key_file(&config.secret_key_file)?;
    Ok(SqliteStore::open(path, sealer, LegacyRows::Keep)?)
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// Milliseconds since the epoch as a UTC time for people.
fn when(ms: u64) -> String {
    i64::try_from(ms)
        .ok()
        .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
        .map_or_else(
            || "?".into(),
            |t| t.strftime("%Y-%m-%d %H:%M UTC").to_string(),
        )
}

/// One line per enrolment.
fn describe(e: &Enrolments) -> String {
    let mut out = Vec::new();
    for n in &e.sms {
        out.push(format!(
            "  sms    {}  {}  added {}",
            // Shown 1-based, as `enrolments remove-sms` takes it.
            n.position + 1,
            n.e164,
            when(n.added_ms)
        ));
    }
    for d in &e.totp {
        let used = d.last_used_secs.map_or_else(
            || "never used".into(),
            |s| format!("last used {}", when(s.saturating_mul(1000))),
        );
        out.push(format!(
            "  totp   {}  {:?}  added {}, {used}",
            d.id,
            d.description,
            when(d.added_ms)
        ));
    }
    for t in &e.tokens {
        let kind = match (t.kind, t.period) {
            (TokenKind::Totp, Some(p)) => format!("totp/{p}s"),
            (k, _) => k.as_str().to_string(),
        };
        let assigned = t
            .assigned_ms
            .map_or_else(String::new, |ms| format!("  assigned {}", when(ms)));
        out.push(format!(
            "  token  {}  {kind}, {} digits{assigned}",
            t.serial, t.digits
        ));
    }
    for p in &e.passkeys {
        let used = p.last_used_ms.map_or_else(
            || "never used".into(),
            |ms| format!("last used {}", when(ms)),
        );
        out.push(format!(
            "  passkey {}  {:?}  added {}, {used}",
            p.id,
            p.description,
            when(p.added_ms)
        ));
    }
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::factors::token::Hotp;
    use crate::storage::Verify;

    fn u(name: &str) -> UserRef {
        UserRef::new("adm", name)
    }

    const HEX: &str = "3132333435363738393031323334353637383930";

    fn admin(dir: &Path) -> Admin {
        let store = SqliteStore::open(
            &dir.join("db/portvakt.db"),
            Sealer::from_secret(&[9; 32]),
            LegacyRows::Keep,
        )
        .expect("open");
        Admin::with_store(Arc::new(store), ManualClock::starting_at(1_700_000_000_000))
            .expect("admin")
    }

    #[test]
    fn open_reads_the_key_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = dir.path().join("secret.key");
        assert!(matches!(
            Admin::open(
                &crate::config::model::Storage::Sqlite(dir.path().join("a.db")),
                &key,
                LegacyRows::Keep
            ),
            Err(AdminError::Key(_))
        ));
        std::fs::write(&key, [3u8; 32]).expect("write");
        let a = Admin::open(
            &crate::config::model::Storage::Sqlite(dir.path().join("a.db")),
            &key,
            LegacyRows::Keep,
        )
        .expect("open");
        assert_eq!(
            a.enrolments_list(&u("bob")).expect("list"),
            "bob (realm adm) has nothing enrolled"
        );
    }

    #[test]
    fn import_assign_resync_list_reset() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = admin(dir.path());
        let bad = dir.path().join("bad.csv");
        std::fs::write(&bad, format!("T1,hotp,{HEX}\nT2,hotp,abc\n")).expect("write");
        let err = a.token_import(&bad).expect_err("bad line").to_string();
        assert!(
            err.contains("nothing imported") && err.contains("line 2:"),
            "{err}"
        );
        let good = dir.path().join("good.csv");
        std::fs::write(
            &good,
            format!("serial,type,secret\nT1,hotp,{HEX}\nT2,totp,{HEX}\n"),
        )
        .expect("write");
        assert!(a
            .token_import(&good)
            .expect("import")
            .starts_with("imported 2 tokens"));
        let again = a.token_import(&good).expect_err("duplicates").to_string();
        assert!(again.contains("T1, T2"), "{again}");

        assert_eq!(
            a.token_assign("T1", &u("alice")).expect("assign"),
            "token T1 is assigned to alice (realm adm)"
        );
        assert!(
            a.token_assign("T1", &u("bob")).is_err(),
            "assigned elsewhere"
        );
        assert!(a.token_assign("NOPE", &u("bob")).is_err());
        // HEX decodes to the RFC 4226 test secret.
        let h = Hotp::new(b"12345678901234567890", 6);
        assert!(
            a.token_resync("T1", &h.code(7), &h.code(9)).is_err(),
            "not consecutive"
        );
        let out = a
            .token_resync("T1", &h.code(2000), &h.code(2001))
            .expect("resync");
        assert!(out.ends_with("counter 2002"), "{out}");
        let v =
            a.rt.block_on(a.store.verify_token(&u("alice"), &h.code(2002), 0))
                .expect("verify");
        assert!(matches!(v, Verify::Accepted { .. }));
        assert!(a
            .token_resync("T2", "1", "2")
            .expect_err("totp")
            .to_string()
            .contains("TOTP"));

        let added = a
            .totp_add(&u("alice"), "Jobbmobil", "Kommunen")
            .expect("add");
        assert!(
            added.contains("otpauth://totp/Kommunen:alice?secret="),
            "{added}"
        );
        let list = a.enrolments_list(&u("alice")).expect("list");
        assert!(
            list.contains("totp   1  \"Jobbmobil\"") && list.contains("token  T1  hotp, 6 digits"),
            "{list}"
        );
        assert!(
            list.contains("added 2023-11-14 22:13 UTC, never used"),
            "{list}"
        );
        assert!(a.remove_totp(&u("alice"), 99).is_err());
        assert!(a.remove_sms(&u("alice"), 0).is_err());
        let reset = a.reset_user(&u("alice")).expect("reset");
        assert!(
            reset.contains("Jobbmobil") && reset.contains("T1"),
            "{reset}"
        );
        assert_eq!(
            a.enrolments_list(&u("alice")).expect("list"),
            "alice (realm adm) has nothing enrolled"
        );
        assert_eq!(
            a.token_unassign("T1").expect("unassign"),
            "token T1 was not assigned"
        );
    }

    #[test]
    fn the_realm_is_needed_only_when_there_are_several() {
        let ids = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let one = || ids(&["adm"]);
        assert_eq!(pick_realm(one(), None).expect("the only one"), "adm");
        assert_eq!(pick_realm(one(), Some("adm")).expect("given"), "adm");
        let err = pick_realm(one(), Some("school")).expect_err("unknown");
        assert!(
            err.to_string()
                .contains("no such realm; its realms are adm"),
            "{err}"
        );

        let two = || ids(&["adm", "school"]);
        let err = pick_realm(two(), None).expect_err("must say which");
        assert!(
            err.to_string().contains("several realms (adm, school)")
                && err.to_string().contains("--realm ID"),
            "{err}"
        );
        assert_eq!(pick_realm(two(), Some("school")).expect("given"), "school");
        assert!(pick_realm(two(), Some("School")).is_err(), "ids are exact");
    }
}
