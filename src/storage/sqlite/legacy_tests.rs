//! Upgrading a store written by a portvakt that kept enrolments by bare user
//! name (schema 1): the file is built here with that version's own CREATE
//! statements and seeds sealed the way it sealed them, then opened by this
//! code.

use super::*;
use crate::factors::token::Hotp;
use crate::factors::totp::{code_at, PERIOD};
use crate::storage::contract::{NOW, RFC};
use crate::storage::Credential;

const KEY: [u8; 32] = [7; 32];
const BOB_SECRET: [u8; 20] = [5; 20];

/// Schema 1 exactly as shipped: the first migration, which is never edited.
const SCHEMA_1: &str = MIGRATIONS[0];

/// A schema-1 file: anna has an SMS number, device 1 (RFC secret, its
/// previous step already used) and token T1 (counter 4); bob has device 2;
/// device 3 was deleted (the id must never come back); token T2 is free.
pub(crate) fn old_store(dir: &Path) -> PathBuf {
    let path = dir.join("portvakt.db");
    let conn = Connection::open(&path).expect("create");
    conn.execute_batch(SCHEMA_1).expect("schema 1");
    let sealer = Sealer::from_secret(&KEY);
    let seal = |secret: &[u8], aad: &str| sealer.seal(secret, aad.as_bytes()).expect("seal");
    conn.execute(
        "INSERT INTO sms_numbers VALUES ('anna', 0, '+46701234567', 1)",
        [],
    )
    .expect("sms");
    let step = NOW / PERIOD;
    conn.execute(
        "INSERT INTO totp_devices (id, username, description, seed, added_ms, last_step) \
         VALUES (1, 'anna', 'Jobbmobil', ?1, 2, ?2)",
        params![seal(RFC, "totp:1:anna"), int(step - 1)],
    )
    .expect("anna's device");
    conn.execute(
        "INSERT INTO totp_devices (id, username, description, seed, added_ms) \
         VALUES (2, 'bob', 'Mobil', ?1, 2)",
        params![seal(&BOB_SECRET, "totp:2:bob")],
    )
    .expect("bob's device");
    conn.execute(
        "INSERT INTO totp_devices (id, username, description, seed, added_ms) \
         VALUES (3, 'carol', 'Gammal', X'00', 2)",
        [],
    )
    .expect("carol's device");
    conn.execute("DELETE FROM totp_devices WHERE id = 3", [])
        .expect("delete");
    conn.execute(
        "INSERT INTO tokens (serial, kind, digits, counter, seed, imported_ms, username, assigned_ms) \
         VALUES ('T1', 'hotp', 6, 4, ?1, 1, 'anna', 3)",
        params![seal(RFC, "token:T1")],
    )
    .expect("T1");
    conn.execute(
        "INSERT INTO tokens (serial, kind, digits, counter, seed, imported_ms) \
         VALUES ('T2', 'hotp', 6, 0, ?1, 1)",
        params![seal(RFC, "token:T2")],
    )
    .expect("T2");
    conn.pragma_update(None, "user_version", 1)
        .expect("version");
    path
}

fn open_with(path: &Path, legacy: LegacyRows) -> Result<SqliteStore, StorageError> {
    SqliteStore::open(path, Sealer::from_secret(&KEY), legacy)
}

fn two_realms() -> LegacyRows {
    LegacyRows::Refuse {
        realms: vec!["adm".into(), "school".into()],
    }
}

#[tokio::test]
async fn one_realm_adopts_the_old_rows_and_the_other_realm_sees_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = old_store(dir.path());
    let s = open_with(&path, LegacyRows::AdoptInto("adm".into())).expect("open");
    assert_eq!(s.schema_version().expect("v"), MIGRATIONS.len() as u32);
    let anna = UserRef::new("adm", "anna");
    let step = NOW / PERIOD;

    // The authenticator still works for the adopted realm, with its replay mark.
    assert_eq!(
        s.verify_totp(&anna, &code_at(RFC, step - 1), NOW)
            .await
            .expect("v"),
        Verify::Replay {
            by: Credential::TotpDevice(1)
        },
        "the step used before the upgrade stays used"
    );
    assert_eq!(
        s.verify_totp(&anna, &code_at(RFC, step), NOW)
            .await
            .expect("v"),
        Verify::Accepted {
            by: Credential::TotpDevice(1),
            resynced: false
        }
    );
    // The token kept its counter and its user.
    let h = Hotp::new(RFC, 6);
    assert_eq!(
        s.verify_token(&anna, &h.code(3), NOW).await.expect("v"),
        Verify::Replay {
            by: Credential::Token("T1".into())
        },
        "counter 4 survives: code 3 is spent"
    );
    assert!(matches!(
        s.verify_token(&anna, &h.code(4), NOW).await.expect("v"),
        Verify::Accepted { .. }
    ));
    let e = s.enrolments(&anna).await.expect("e");
    assert_eq!((e.sms.len(), e.totp.len(), e.tokens.len()), (1, 1, 1));
    assert_eq!(e.totp[0].description, "Jobbmobil");
    assert!(s
        .verify_totp(
            &UserRef::new("adm", "bob"),
            &code_at(&BOB_SECRET, step),
            NOW
        )
        .await
        .is_ok_and(|v| matches!(v, Verify::Accepted { .. })));

    // Another realm's anna has nothing, and anna's codes are no codes for her.
    let other = UserRef::new("school", "anna");
    assert!(s.enrolments(&other).await.expect("e").is_empty());
    assert_eq!(
        s.verify_totp(&other, &code_at(RFC, step + 1), NOW)
            .await
            .expect("v"),
        Verify::Rejected
    );
    // The free token is still free; ids are never reused.
    s.assign_token("T2", &other, 5).await.expect("T2 was free");
    let id = s.add_totp_device(&other, "Ny", RFC, 6).await.expect("add");
    assert!(
        id > 3,
        "device id {id} reused an id from before the upgrade"
    );
    assert!(s.legacy_users().expect("legacy").is_empty());
    drop(s);
    // Reopening finds nothing left to adopt, even with two realms configured.
    open_with(&path, two_realms()).expect("reopen with two realms");
}

#[tokio::test]
async fn with_two_realms_the_operator_must_say_whose_rows_they_are() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = old_store(dir.path());
    let err = open_with(&path, two_realms()).expect_err("must refuse");
    let msg = err.to_string();
    assert!(
        matches!(err, StorageError::LegacyRows { users: 2, .. }),
        "{msg}"
    );
    assert!(
        msg.contains("portvakt storage adopt --realm ID") && msg.contains("adm, school"),
        "the message names the command and the realms: {msg}"
    );

    // The operator splits them: bob is a teacher, anna is staff.
    let s = open_with(&path, LegacyRows::Keep).expect("keep");
    let listed: Vec<(String, usize, usize, usize)> = s
        .legacy_users()
        .expect("list")
        .into_iter()
        .map(|u| (u.user, u.sms, u.totp, u.tokens))
        .collect();
    assert_eq!(
        listed,
        vec![("anna".into(), 1, 1, 1), ("bob".into(), 0, 1, 0)]
    );
    let a = s
        .adopt_legacy("school", Some(&["bob".to_string()]))
        .expect("adopt bob");
    assert_eq!((a.users.clone(), a.totp), (vec!["bob".to_string()], 1));
    drop(s);
    assert!(
        matches!(
            open_with(&path, two_realms()),
            Err(StorageError::LegacyRows { users: 1, .. })
        ),
        "anna is still unassigned"
    );
    let s = open_with(&path, LegacyRows::Keep).expect("keep");
    let a = s.adopt_legacy("adm", None).expect("adopt the rest");
    assert_eq!(a.users, vec!["anna".to_string()]);
    drop(s);

    let s = open_with(&path, two_realms()).expect("nothing left");
    let step = NOW / PERIOD;
    let bob = code_at(&BOB_SECRET, step);
    assert_eq!(
        s.verify_totp(&UserRef::new("adm", "bob"), &bob, NOW)
            .await
            .expect("v"),
        Verify::Rejected,
        "bob went to school, not adm"
    );
    assert!(matches!(
        s.verify_totp(&UserRef::new("school", "bob"), &bob, NOW)
            .await
            .expect("v"),
        Verify::Accepted { .. }
    ));
    assert!(matches!(
        s.verify_totp(&UserRef::new("adm", "anna"), &code_at(RFC, step), NOW)
            .await
            .expect("v"),
        Verify::Accepted { .. }
    ));
}

#[test]
fn a_moved_old_seed_stops_the_adoption_and_nothing_moves() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = old_store(dir.path());
    // Before the upgrade, someone gave anna's sealed seed to bob's row.
    let conn = Connection::open(&path).expect("raw");
    conn.execute(
        "UPDATE totp_devices SET seed = (SELECT seed FROM totp_devices WHERE id = 1) WHERE id = 2",
        [],
    )
    .expect("copy");
    drop(conn);
    let err = open_with(&path, LegacyRows::AdoptInto("adm".into())).expect_err("forged");
    assert!(matches!(err, StorageError::Seal { .. }), "{err}");
    let s = open_with(&path, LegacyRows::Keep).expect("keep");
    assert_eq!(s.legacy_users().expect("list").len(), 2, "all or nothing");
}
