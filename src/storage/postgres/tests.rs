//! Unit tests of [`super`] against a real PostgreSQL started for each test
//! ([`super::test_server`]): the contract every backend keeps, migrations
//! raced by two gateways, two gateways racing one code, an outage and its
//! end, and TLS verified against the configured CA.

use std::path::Path;
use std::time::{Duration, Instant};

use super::test_server::TestPostgres;
use super::*;
use crate::factors::token::Hotp;
use crate::factors::totp::{code_at, PERIOD};
use crate::storage::contract::{self, u, NOW, RFC};

fn sealer() -> Sealer {
    Sealer::from_secret(&[7; 32])
}

/// A store on a new database `db` of `pg`.
async fn fresh(pg: &TestPostgres, db: &str, timeout: &str) -> PostgresStore {
    pg.create_db(db);
    open(pg, db, timeout).await
}

/// A store (a gateway's pool) on the existing database `db`.
async fn open(pg: &TestPostgres, db: &str, timeout: &str) -> PostgresStore {
    let settings = PgSettings::parse(&pg.url(db, timeout), Path::new("/")).expect("url");
    PostgresStore::open(&settings, sealer())
        .await
        .expect("open store")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_store_keeps_the_contract() {
    let Some(pg) = TestPostgres::start() else {
        return;
    };
    contract::sms(&fresh(&pg, "c_sms", "5").await).await;
    contract::totp(&fresh(&pg, "c_totp", "5").await).await;
    contract::tokens(&fresh(&pg, "c_tokens", "5").await).await;
    contract::import(&fresh(&pg, "c_import", "5").await).await;
    contract::reset(&fresh(&pg, "c_reset", "5").await).await;
    contract::realms_apart(&fresh(&pg, "c_realms", "5").await).await;
    contract::passkeys(&fresh(&pg, "c_passkeys", "5").await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_racing_one_passkey_counter_record_it_once() {
    let Some(pg) = TestPostgres::start() else {
        return;
    };
    let a = fresh(&pg, "race_passkey", "10").await;
    let b = open(&pg, "race_passkey", "10").await;
    contract::passkey_race(Arc::new(a), Arc::new(b)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_starting_at_once_migrate_once() {
    let Some(pg) = TestPostgres::start() else {
        return;
    };
    pg.create_db("m");
    let (a, b, c) = tokio::join!(
        open(&pg, "m", "5"),
        open(&pg, "m", "5"),
        open(&pg, "m", "5")
    );
    for s in [&a, &b, &c] {
        assert_eq!(
            s.schema_version().await.expect("version"),
            MIGRATIONS.len() as u32
        );
    }
    let rows = a
        .bounded(async {
            let c = a.client().await?;
            Ok(c.query_one("SELECT count(*) FROM portvakt_schema", &[])
                .await?
                .get::<_, i64>(0))
        })
        .await
        .expect("count");
    assert_eq!(rows, MIGRATIONS.len() as i64, "each migration applied once");
    // And the one schema works for all three.
    a.set_sms_number(&u("alice"), 0, "+46701234567", 1)
        .await
        .expect("set on a");
    assert_eq!(b.sms_numbers(&u("alice")).await.expect("b").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_from_a_newer_portvakt_is_refused() {
    let Some(pg) = TestPostgres::start() else {
        return;
    };
    let s = fresh(&pg, "newer", "5").await;
    s.bounded(async {
        s.client()
            .await?
            .execute("INSERT INTO portvakt_schema (version) VALUES (99)", &[])
            .await?;
        Ok(())
    })
    .await
    .expect("insert");
    let settings = PgSettings::parse(&pg.url("newer", "5"), Path::new("/")).expect("url");
    let err = PostgresStore::open(&settings, sealer())
        .await
        .expect_err("a newer schema must be refused");
    assert!(
        matches!(err, StorageError::SchemaTooNew { found: 99, .. }),
        "{err}"
    );
}

/// Twenty requests with one code, split over two gateways' pools, at once.
async fn race<F, Fut>(a: &PostgresStore, b: &PostgresStore, check: F) -> (usize, usize, usize)
where
    F: Fn(PostgresStore) -> Fut,
    Fut: std::future::Future<Output = Result<Verify, StorageError>> + Send + 'static,
{
    let tasks: Vec<_> = (0..20)
        .map(|i| tokio::spawn(check(if i % 2 == 0 { a.clone() } else { b.clone() })))
        .collect();
    let (mut accepted, mut replay, mut other) = (0, 0, 0);
    for t in tasks {
        match t.await.expect("task").expect("verify") {
            Verify::Accepted { .. } => accepted += 1,
            Verify::Replay { .. } => replay += 1,
            v => {
                eprintln!("unexpected {v:?}");
                other += 1
            }
        }
    }
    (accepted, replay, other)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_racing_one_authenticator_code_accept_it_once() {
    let Some(pg) = TestPostgres::start() else {
        return;
    };
    let a = fresh(&pg, "race_totp", "10").await;
    let b = open(&pg, "race_totp", "10").await;
    a.add_totp_device(&u("alice"), "Jobbmobil", RFC, 1)
        .await
        .expect("add");
    let now = NOW;
    let code = code_at(RFC, now / PERIOD);
    let got = race(&a, &b, move |s| {
        let code = code.clone();
        async move { s.verify_totp(&u("alice"), &code, now).await }
    })
    .await;
    assert_eq!(got, (1, 19, 0), "(accepted, replay, other)");
    // The step before is older than the accepted one: never again either.
    let earlier = code_at(RFC, now / PERIOD - 1);
    assert!(matches!(
        b.verify_totp(&u("alice"), &earlier, now).await.expect("v"),
        Verify::Replay { .. } | Verify::Rejected
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_racing_one_token_code_accept_it_once() {
    let Some(pg) = TestPostgres::start() else {
        return;
    };
    let a = fresh(&pg, "race_hotp", "10").await;
    let b = open(&pg, "race_hotp", "10").await;
    a.import_tokens(contract::two_tokens(), 1)
        .await
        .expect("import");
    a.assign_token("T1", &u("alice"), 2).await.expect("assign");
    let code = Hotp::new(RFC, 6).code(3);
    let got = race(&a, &b, move |s| {
        let code = code.clone();
        async move { s.verify_token(&u("alice"), &code, NOW).await }
    })
    .await;
    assert_eq!(got, (1, 19, 0), "(accepted, replay, other)");
    // Counter 4 is next, on either gateway.
    let next = Hotp::new(RFC, 6).code(4);
    assert!(matches!(
        b.verify_token(&u("alice"), &next, NOW).await.expect("v"),
        Verify::Accepted { .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_fails_within_the_timeout_and_heals_without_reopening() {
    let Some(mut pg) = TestPostgres::start() else {
        return;
    };
    let s = fresh(&pg, "outage", "500ms").await;
    s.set_sms_number(&u("alice"), 0, "+46701234567", 1)
        .await
        .expect("set");
    pg.kill();
    for call in 0..3 {
        let started = Instant::now();
        let err = s
            .sms_numbers(&u("alice"))
            .await
            .expect_err("PostgreSQL is down");
        assert!(err.is_unavailable(), "call {call}: {err}");
        assert!(
            started.elapsed() < Duration::from_millis(1500),
            "call {call} took {:?} with timeout=500ms",
            started.elapsed()
        );
    }
    assert!(s.ping().await.expect_err("down").is_unavailable());
    pg.start_again();
    let mut healed = None;
    let mut last = None;
    for _ in 0..100 {
        match s.sms_numbers(&u("alice")).await {
            Ok(n) => {
                healed = Some(n);
                break;
            }
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let n = healed.unwrap_or_else(|| panic!("the same store answers again within 10 s: {last:?}"));
    assert_eq!(n[0].e164, "+46701234567", "nothing was lost");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_started_while_postgres_is_down_says_so_within_the_timeout() {
    let Some(mut pg) = TestPostgres::start() else {
        return;
    };
    pg.kill();
    let settings = PgSettings::parse(&pg.url("postgres", "500ms"), Path::new("/")).expect("url");
    let started = Instant::now();
    let err = PostgresStore::open(&settings, sealer())
        .await
        .expect_err("nothing to connect to");
    assert!(err.is_unavailable(), "{err}");
    assert!(started.elapsed() < Duration::from_millis(1500));
    assert!(
        !err.to_string().contains("password"),
        "no secrets in: {err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_is_verified_against_the_configured_ca() {
    let certs = tempfile::tempdir().expect("tempdir");
    crate::demo::write_certs(certs.path()).expect("certs");
    let Some(pg) = TestPostgres::start_tls(certs.path()) else {
        return;
    };
    pg.create_db("tls");
    let with_ca = |ca: &Path| {
        let url = format!("{}&sslrootcert={}", pg.url("tls", "2"), ca.display());
        PgSettings::parse(&url, Path::new("/")).expect("url")
    };
    let s = PostgresStore::open(&with_ca(&certs.path().join("ca.pem")), sealer())
        .await
        .expect("the demo CA signed the server's certificate");
    s.set_sms_number(&u("alice"), 0, "+46701234567", 1)
        .await
        .expect("over TLS");

    // Another CA (someone else's certificate, or a machine in the middle).
    let other = tempfile::tempdir().expect("tempdir");
    crate::demo::write_certs(other.path()).expect("certs");
    let err = PostgresStore::open(&with_ca(&other.path().join("ca.pem")), sealer())
        .await
        .expect_err("a server the CA did not sign was trusted");
    assert!(err.is_unavailable(), "{err}");
    // The system's roots do not know the demo CA either.
    let system = PgSettings::parse(&pg.url("tls", "2"), Path::new("/")).expect("url");
    assert!(PostgresStore::open(&system, sealer()).await.is_err());
    // And the server refuses plain TCP, so a downgrade is not possible.
    let plain = pg.url("tls", "2").replace("verify-full", "disable");
    let plain = PgSettings::parse(&plain, Path::new("/")).expect("url");
    assert!(PostgresStore::open(&plain, sealer()).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeds_are_sealed_in_the_database() {
    let Some(pg) = TestPostgres::start() else {
        return;
    };
    let s = fresh(&pg, "sealed", "5").await;
    s.add_totp_device(&u("alice"), "Jobbmobil", RFC, 1)
        .await
        .expect("add");
    let raw: Vec<u8> = s
        .bounded(async {
            let c = s.client().await?;
            Ok(c.query_one("SELECT seed FROM totp_devices", &[])
                .await?
                .get(0))
        })
        .await
        .expect("seed");
    assert!(
        !raw.windows(RFC.len()).any(|w| w == RFC),
        "the secret is stored in the clear"
    );
    // Another gateway with another key cannot use it.
    let settings = PgSettings::parse(&pg.url("sealed", "5"), Path::new("/")).expect("url");
    let other = PostgresStore::open(&settings, Sealer::from_secret(&[8; 32]))
        .await
        .expect("open");
    let code = code_at(RFC, NOW / PERIOD);
    assert!(other.verify_totp(&u("alice"), &code, NOW).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_started_while_postgres_is_down_comes_up_and_heals_when_it_answers() {
    let Some(mut pg) = TestPostgres::start() else {
        return;
    };
    pg.create_db("late");
    pg.kill();
    let settings = PgSettings::parse(&pg.url("late", "500ms"), Path::new("/")).expect("url");
    let started = Instant::now();
    let s = PostgresStore::open_or_wait(&settings, sealer())
        .await
        .expect("the gateway starts anyway");
    assert!(started.elapsed() < Duration::from_millis(1500));
    // A crowd of calls during the outage: each fails at once or within the
    // timeout, none queues behind the others.
    let started = Instant::now();
    let alice = u("alice");
    let calls = (0..8).map(|_| s.sms_numbers(&alice));
    for r in futures_util::future::join_all(calls).await {
        assert!(r.expect_err("down").is_unavailable());
    }
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "8 calls took {:?}",
        started.elapsed()
    );
    pg.start_again();
    let mut healed = false;
    for _ in 0..100 {
        if s.set_sms_number(&u("alice"), 0, "+46701234567", 1)
            .await
            .is_ok()
        {
            healed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        healed,
        "no call succeeded within 10 s of PostgreSQL answering"
    );
    assert_eq!(
        s.schema_version().await.expect("version"),
        MIGRATIONS.len() as u32,
        "the first call that reached it migrated the new database"
    );
    assert_eq!(s.sms_numbers(&u("alice")).await.expect("read").len(), 1);
}
