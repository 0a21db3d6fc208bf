//! Tests of [`super::copy`]: a SQLite store with every kind of row (numbers,
//! devices with replay state, a removed device's retired id, tokens assigned
//! and not, a counter, a half-done resynchronisation, passkeys with their
//! signature counters and a removed one's retired id) copied to SQLite and,
//! where PostgreSQL is installed, through PostgreSQL and back; after each
//! copy the target behaves as the source did, codes stay single-use, and a
//! copy is refused before writing when it could lose or mix anything.

use std::path::Path;

use super::contract::{two_tokens, u, NOW, RFC};
use super::copy::{copy, Copyable};
use super::postgres::test_server::TestPostgres;
use super::postgres::{PgSettings, PostgresStore};
use super::*;
use crate::factors::token::Hotp;
use crate::factors::totp::{code_at, PERIOD};

fn sealer() -> Sealer {
    Sealer::from_secret(&[7; 32])
}

fn sqlite(path: &Path) -> SqliteStore {
    SqliteStore::open(path, sealer(), LegacyRows::Keep).expect("open sqlite")
}

/// The id the removed device had: never to be issued again.
const RETIRED: i64 = 2;
/// The id the removed passkey had (the highest issued): never again either.
const RETIRED_PASSKEY: i64 = 3;
/// The credential id of alice's passkey.
const YUBIKEY: &str = "eXViaWtleQ";

/// A store as a gateway leaves it after some months.
async fn fill(s: &dyn EnrolmentStore) {
    let alice = u("alice");
    s.set_sms_number(&alice, 0, "+46701234567", 10)
        .await
        .expect("sms");
    s.set_sms_number(&alice, 1, "+46709999999", 11)
        .await
        .expect("sms");
    s.set_sms_number(&UserRef::new("school", "alice"), 0, "+46702222222", 12)
        .await
        .expect("sms other realm");
    assert_eq!(
        s.add_totp_device(&alice, "phone", RFC, 20)
            .await
            .expect("add"),
        1
    );
    let id = s
        .add_totp_device(&alice, "old", &[9; 20], 21)
        .await
        .expect("add");
    assert_eq!(id, RETIRED);
    assert!(s.remove_totp_device(&alice, id).await.expect("remove"));
    let step = NOW / PERIOD;
    let code = code_at(RFC, step);
    assert!(matches!(
        s.verify_totp(&alice, &code, NOW).await.expect("totp"),
        Verify::Accepted { .. }
    ));
    s.import_tokens(two_tokens(), 30).await.expect("import");
    s.assign_token("T1", &u("bob"), 31).await.expect("assign");
    let h = Hotp::new(RFC, 6);
    assert!(matches!(
        s.verify_token(&u("bob"), &h.code(0), NOW)
            .await
            .expect("hotp"),
        Verify::Accepted { .. }
    ));
    // Far beyond the window: waits for the next code to resynchronise.
    assert!(matches!(
        s.verify_token(&u("bob"), &h.code(40), NOW)
            .await
            .expect("hotp"),
        Verify::NeedsNextCode { .. }
    ));
    // Passkeys: alice's used up to counter 9, dora's (only a passkey) never
    // used and without a counter, and a removed one that had the highest id.
    let p = |who: UserRef, cred: &'static str, counter: u32| async move {
        s.add_passkey(&who, "key", cred, r#"{"pk":1}"#, counter, 60)
            .await
            .expect("add passkey")
    };
    assert_eq!(p(alice.clone(), YUBIKEY, 5).await, 1);
    assert_eq!(
        s.use_passkey(&alice, 1, 9, r#"{"pk":9}"#, 61)
            .await
            .expect("use"),
        PasskeyUse::Recorded
    );
    assert_eq!(p(u("dora"), "ZG9yYQ", 0).await, 2);
    assert_eq!(p(alice.clone(), "b2xk", 0).await, RETIRED_PASSKEY);
    assert!(s
        .remove_passkey(&alice, RETIRED_PASSKEY)
        .await
        .expect("remove"));
}

/// What [`fill`] left, seen through the gateway's interface of `s`.
async fn behaves_as_filled(s: &dyn EnrolmentStore) {
    let alice = u("alice");
    let sms = s.sms_numbers(&alice).await.expect("sms");
    assert_eq!(
        sms.iter().map(|n| n.e164.as_str()).collect::<Vec<_>>(),
        ["+46701234567", "+46709999999"]
    );
    assert_eq!(
        s.sms_numbers(&UserRef::new("school", "alice"))
            .await
            .expect("sms")
            .len(),
        1,
        "realms stay apart"
    );
    let step = NOW / PERIOD;
    assert!(
        matches!(
            s.verify_totp(&alice, &code_at(RFC, step), NOW)
                .await
                .expect("totp"),
            Verify::Replay { .. }
        ),
        "the step accepted before the copy is not accepted again after it"
    );
    assert!(matches!(
        s.verify_totp(&alice, &code_at(RFC, step + 1), NOW + PERIOD)
            .await
            .expect("totp"),
        Verify::Accepted { .. }
    ));
    let h = Hotp::new(RFC, 6);
    let resync = s
        .verify_token(&u("bob"), &h.code(41), NOW)
        .await
        .expect("hotp");
    assert!(
        matches!(resync, Verify::Accepted { resynced: true, .. }),
        "the resynchronisation begun before the copy completes after it: {resync:?}"
    );
    assert!(matches!(
        s.verify_token(&u("bob"), &h.code(41), NOW)
            .await
            .expect("hotp"),
        Verify::Replay { .. }
    ));
    assert!(s.tokens_of(&alice).await.expect("tokens").is_empty());
    s.assign_token("T2", &alice, 40)
        .await
        .expect("the unassigned token is still free");
    let keys = s.passkeys(&alice).await.expect("passkeys");
    assert_eq!(
        keys.iter()
            .map(|k| (
                k.id,
                k.credential_id.as_str(),
                k.counter,
                k.key.as_str(),
                k.last_used_ms
            ))
            .collect::<Vec<_>>(),
        [(1, YUBIKEY, 9, r#"{"pk":9}"#, Some(61))],
        "the passkey, its counter, key and last use moved"
    );
    assert_eq!(
        s.use_passkey(&alice, 1, 9, "{}", 70).await.expect("use"),
        PasskeyUse::Regressed { stored: 9 },
        "a count accepted before the copy is not accepted again after it"
    );
    assert_eq!(
        s.use_passkey(&alice, 1, 10, "{}", 71).await.expect("use"),
        PasskeyUse::Recorded
    );
    assert!(matches!(
        s.add_passkey(&u("eve"), "copy", YUBIKEY, "{}", 0, 72).await,
        Err(StorageError::DuplicateCredential)
    ));
    let dora = s.passkeys(&u("dora")).await.expect("passkeys");
    assert_eq!(
        (dora.len(), dora[0].counter, dora[0].last_used_ms),
        (1, 0, None)
    );
    let fresh = s
        .add_passkey(&alice, "new", "bmV3", "{}", 0, 73)
        .await
        .expect("add passkey");
    assert!(
        fresh > RETIRED_PASSKEY,
        "a removed passkey's id {RETIRED_PASSKEY} is never reused (got {fresh})"
    );
    let next = s
        .add_totp_device(&alice, "new", &[5; 20], 50)
        .await
        .expect("add");
    assert!(
        next > RETIRED,
        "a removed device's id {RETIRED} is never reused (got {next})"
    );
}

#[tokio::test]
async fn a_sqlite_store_copied_to_another_file_keeps_every_enrolment_and_its_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    let from = sqlite(&dir.path().join("a.db"));
    fill(&from).await;
    let to = sqlite(&dir.path().join("b.db"));
    let copied = copy(&from, &to, &sealer()).await.expect("copy");
    assert_eq!(
        (
            copied.sms,
            copied.devices,
            copied.tokens,
            copied.assigned,
            copied.passkeys,
            copied.users
        ),
        (3, 1, 2, 1, 2, 4),
        "dora, with only a passkey, is counted among the users"
    );
    behaves_as_filled(&to).await;
}

#[tokio::test]
async fn a_copy_into_a_store_that_holds_enrolments_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let from = sqlite(&dir.path().join("a.db"));
    fill(&from).await;
    let to = sqlite(&dir.path().join("b.db"));
    to.set_sms_number(&u("carl"), 0, "+46703333333", 1)
        .await
        .expect("sms");
    let before = to.snapshot().await.expect("snapshot");
    assert!(matches!(
        copy(&from, &to, &sealer()).await,
        Err(StorageError::NotEmpty {
            sms: 1,
            devices: 0,
            tokens: 0,
            passkeys: 0
        })
    ));
    assert_eq!(to.snapshot().await.expect("snapshot"), before);
}

#[tokio::test]
async fn a_target_holding_only_a_passkey_is_not_empty() {
    let dir = tempfile::tempdir().expect("tempdir");
    let from = sqlite(&dir.path().join("a.db"));
    fill(&from).await;
    let to = sqlite(&dir.path().join("b.db"));
    to.add_passkey(&u("carl"), "key", "Y2FybA", "{}", 0, 1)
        .await
        .expect("passkey");
    assert!(matches!(
        copy(&from, &to, &sealer()).await,
        Err(StorageError::NotEmpty { passkeys: 1, .. })
    ));
    assert_eq!(to.passkeys(&u("carl")).await.expect("list").len(), 1);
}

#[tokio::test]
async fn a_copy_with_another_key_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let from = sqlite(&dir.path().join("a.db"));
    fill(&from).await;
    let to = sqlite(&dir.path().join("b.db"));
    let other = Sealer::from_secret(&[8; 32]);
    assert!(matches!(
        copy(&from, &to, &other).await,
        Err(StorageError::Seal { .. })
    ));
    assert!(to.snapshot().await.expect("snapshot").is_empty());
}

#[tokio::test]
async fn a_store_with_enrolments_from_before_realms_is_not_copied_until_adopted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let old = tempfile::tempdir().expect("tempdir");
    let from = sqlite(&super::sqlite::legacy_tests::old_store(old.path()));
    let to = sqlite(&dir.path().join("b.db"));
    assert!(matches!(
        copy(&from, &to, &sealer()).await,
        Err(StorageError::LegacyNotAdopted(2))
    ));
    assert!(to.snapshot().await.expect("snapshot").is_empty());
    from.adopt_legacy("adm", None).expect("adopt");
    let copied = copy(&from, &to, &sealer())
        .await
        .expect("copy once adopted");
    assert_eq!((copied.devices, copied.tokens, copied.assigned), (2, 2, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_to_postgres_and_back_loses_nothing() {
    let Some(pg) = TestPostgres::start() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let from = sqlite(&dir.path().join("a.db"));
    fill(&from).await;
    pg.create_db("copy_target");
    let settings = PgSettings::parse(&pg.url("copy_target", "5"), Path::new("/")).expect("url");
    let middle = PostgresStore::open(&settings, sealer())
        .await
        .expect("open pg");
    copy(&from, &middle, &sealer()).await.expect("to postgres");
    let in_pg = middle.snapshot().await.expect("pg").sorted();
    assert_eq!(in_pg, from.snapshot().await.expect("sqlite").sorted());
    assert_eq!(
        (in_pg.passkeys.len(), in_pg.passkey_id_high_water),
        (2, RETIRED_PASSKEY),
        "passkeys and their retired id reached PostgreSQL"
    );
    let back = sqlite(&dir.path().join("c.db"));
    copy(&middle, &back, &sealer())
        .await
        .expect("back to sqlite");
    behaves_as_filled(&middle).await;
    behaves_as_filled(&back).await;
}
