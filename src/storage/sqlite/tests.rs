//! Unit tests of [`super`]: the shared backend contract, migrations and
//! file permissions, seeds at rest, durability across reopening, and two
//! processes on one file.

use super::super::contract::{self, u, NOW, RFC};
use super::*;
use crate::factors::token::Hotp;
use crate::factors::totp::{code_at, PERIOD};

/// Open as a gateway with two realms would: legacy rows refused.
fn open(path: &Path) -> SqliteStore {
    SqliteStore::open(path, Sealer::from_secret(&[7; 32]), refuse()).expect("open")
}

fn refuse() -> LegacyRows {
    LegacyRows::Refuse {
        realms: vec!["adm".into(), "school".into()],
    }
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

#[tokio::test]
async fn contract_realms_apart() {
    contract::realms_apart(&fresh().1).await;
}

#[tokio::test]
async fn contract_passkeys() {
    contract::passkeys(&fresh().1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_racing_one_passkey_counter_record_it_once() {
    let (dir, gateway) = fresh();
    let admin = open(&dir.path().join("state/portvakt.db"));
    contract::passkey_race(Arc::new(gateway), Arc::new(admin)).await;
}

#[tokio::test]
async fn passkeys_and_their_counters_survive_reopen() {
    let (dir, s) = fresh();
    let id = s
        .add_passkey(&u("alice"), "YubiKey", contract::CRED, "{}", 3, 1)
        .await
        .expect("add");
    assert_eq!(
        s.use_passkey(&u("alice"), id, 4, "{}", 2)
            .await
            .expect("use"),
        PasskeyUse::Recorded
    );
    drop(s);
    let s = open(&dir.path().join("state/portvakt.db"));
    assert_eq!(
        s.use_passkey(&u("alice"), id, 4, "{}", 3)
            .await
            .expect("use"),
        PasskeyUse::Regressed { stored: 4 }
    );
    assert!(matches!(
        s.add_passkey(&u("bob"), "Kopia", contract::CRED, "{}", 0, 4)
            .await,
        Err(StorageError::DuplicateCredential)
    ));
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
    let err =
        SqliteStore::open(&path, Sealer::from_secret(&[7; 32]), refuse()).expect_err("too new");
    assert!(
        matches!(err, StorageError::SchemaTooNew { found: 99, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn seeds_are_never_stored_in_plaintext() {
    let (dir, s) = fresh();
    s.add_totp_device(&u("alice"), "Jobbmobil", RFC, 1)
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
    s.add_totp_device(&u("alice"), "Jobbmobil", RFC, 1)
        .await
        .expect("add");
    s.import_tokens(contract::two_tokens(), 1)
        .await
        .expect("import");
    s.assign_token("T1", &u("alice"), 1).await.expect("assign");
    let code = code_at(RFC, NOW / PERIOD);
    assert!(matches!(
        s.verify_totp(&u("alice"), &code, NOW).await.expect("v"),
        Verify::Accepted { .. }
    ));
    let h = Hotp::new(RFC, 6);
    assert!(matches!(
        s.verify_token(&u("alice"), &h.code(3), NOW)
            .await
            .expect("v"),
        Verify::Accepted { .. }
    ));
    assert!(matches!(
        s.verify_token(&u("alice"), &h.code(300), NOW)
            .await
            .expect("v"),
        Verify::NeedsNextCode { .. }
    ));
    drop(s);

    let s = open(&path);
    assert!(matches!(
        s.verify_totp(&u("alice"), &code, NOW + 20)
            .await
            .expect("v"),
        Verify::Replay { .. }
    ));
    // The resynchronisation candidate is durable too.
    let v = s
        .verify_token(&u("alice"), &h.code(301), NOW + 5)
        .await
        .expect("v");
    assert!(
        matches!(v, Verify::Accepted { resynced: true, .. }),
        "{v:?}"
    );
    drop(s);
    let s = open(&path);
    assert!(matches!(
        s.verify_token(&u("alice"), &h.code(3), NOW)
            .await
            .expect("v"),
        Verify::Rejected
    ));
    assert!(matches!(
        s.verify_token(&u("alice"), &h.code(301), NOW)
            .await
            .expect("v"),
        Verify::Replay { .. }
    ));
    assert!(matches!(
        s.verify_token(&u("alice"), &h.code(302), NOW)
            .await
            .expect("v"),
        Verify::Accepted { .. }
    ));
}

#[tokio::test]
async fn two_processes_never_accept_one_code_twice() {
    let (dir, gateway) = fresh();
    let admin = open(&dir.path().join("state/portvakt.db"));
    gateway
        .add_totp_device(&u("alice"), "Jobbmobil", RFC, 1)
        .await
        .expect("add");
    let code = code_at(RFC, NOW / PERIOD);
    let alice = u("alice");
    let (a, b) = tokio::join!(
        gateway.verify_totp(&alice, &code, NOW),
        admin.verify_totp(&alice, &code, NOW)
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
    let one = s
        .add_totp_device(&u("alice"), "A", RFC, 1)
        .await
        .expect("add");
    let two = s
        .add_totp_device(&u("mallory"), "B", &[5; 20], 1)
        .await
        .expect("add");
    let conn = Connection::open(&path).expect("raw");
    conn.execute(
            "UPDATE totp_devices SET seed = (SELECT seed FROM totp_devices WHERE id = ?1) WHERE id = ?2",
            [one, two],
        )
        .expect("copy seed");
    let err = s
        .verify_totp(&u("mallory"), "123456", NOW)
        .await
        .expect_err("moved seed");
    assert!(matches!(err, StorageError::Seal { .. }), "{err}");
    drop(s);
    let other = SqliteStore::open(&path, Sealer::from_secret(&[8; 32]), refuse()).expect("open");
    let err = other
        .verify_totp(&u("alice"), "123456", NOW)
        .await
        .expect_err("other key");
    assert!(matches!(err, StorageError::Seal { .. }), "{err}");
}

#[tokio::test]
async fn a_seed_moved_to_another_realm_does_not_open() {
    let (dir, s) = fresh();
    let id = s
        .add_totp_device(&UserRef::new("adm", "anna"), "A", RFC, 1)
        .await
        .expect("add");
    // Someone with write access to the file gives the device to the other anna.
    let conn = Connection::open(dir.path().join("state/portvakt.db")).expect("raw");
    conn.execute(
        "UPDATE totp_devices SET realm = 'school' WHERE id = ?1",
        [id],
    )
    .expect("move");
    let err = s
        .verify_totp(&UserRef::new("school", "anna"), "123456", NOW)
        .await
        .expect_err("moved seed");
    assert!(matches!(err, StorageError::Seal { .. }), "{err}");
}
