//! Realms that share people (issue 12, class 4; SECURITY.md "Identity across
//! realms"): a user is (realm, name). The school realm and the office realm
//! both have an `anna`, with different passwords: two people. Whatever one
//! of them enrols — an authenticator, an SMS number, a token — the other can
//! neither use nor see nor remove, their code budgets are their own, and the
//! admin commands make the operator say which anna they mean.

use crate::support::enrol::*;
use crate::support::sms::SmsProvider;
use crate::support::smtp::notify_yaml;
use crate::support::users::{password_hash, User};
use crate::support::*;

/// anna of the school realm (users-school.yaml).
const ANNA_SCHOOL: User = User {
    name: "anna",
    password: "annas skolord",
    display_name: "Anna Lärare",
    email: "anna@skola.example.org",
    groups: &["teachers"],
    disabled: false,
};

/// Another person: anna of the office realm (users-office.yaml).
const ANNA_OFFICE: User = User {
    name: "anna",
    password: "annas kontorsord",
    display_name: "Anna Ekonom",
    email: "anna@kontor.example.org",
    groups: &["staff"],
    disabled: false,
};

const SCHOOL_APP: &str = "https://app.test/app";
const OFFICE_APP: &str = "https://other.test/app";

fn users_file(u: &User) -> String {
    format!(
        "users:\n  {}:\n    password: \"{}\"\n    display_name: \"{}\"\n    email: {}\n    groups: [{}]\n",
        u.name,
        password_hash(u.password),
        u.display_name,
        u.email,
        u.groups.join(", ")
    )
}

/// Three realms (`staff` of the harness, `school`, `office`), one service
/// each for the two annas, two factors off the network.
fn two_annas(upstream: &Upstream) -> GatewayConfig {
    GatewayConfig::new()
        .realm("school", "users-school.yaml", &users_file(&ANNA_SCHOOL))
        .realm("office", "users-office.yaml", &users_file(&ANNA_OFFICE))
        .service(
            Service::new("app.test", upstream.url())
                .policy("two_factor_offsite")
                .with("realms: [school]"),
        )
        .service(
            Service::new("other.test", upstream.url())
                .policy("two_factor_offsite")
                .with("realms: [office]"),
        )
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `portvakt totp add anna --realm REALM`; the secret it prints.
fn totp_add_in(gw: &Gateway, realm: &str, description: &str) -> String {
    let out = admin_ok(
        gw,
        &[
            "totp",
            "add",
            "anna",
            "--realm",
            realm,
            "--description",
            description,
        ],
    );
    out.lines()
        .find_map(|l| l.trim().strip_prefix("secret:"))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| panic!("no secret in the output of totp add:\n{out}"))
}

/// The current code of `secret`, by oathtool where installed.
async fn code_now(gw: &Gateway, secret: &str) -> String {
    let now = fresh_step_time(gw).await;
    oathtool_totp(secret, now).unwrap_or_else(|| totp_code(secret, now))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_annas_authenticator_does_not_log_in_the_other_anna() {
    let upstream = Upstream::start().await;
    let gw = two_annas(&upstream).start().await;
    let secret = totp_add_in(&gw, "school", "Skolmobil");

    // Someone with the office anna's password, off the network, holds the
    // school anna's phone. The office anna has no authenticator: none offered.
    let office = gw.offsite_client();
    let posted = password_step(&office, OFFICE_APP, &ANNA_OFFICE, None).await;
    assert_sent_to_second(&posted, 303);
    let choice = open_choice(&office, &posted).await;
    let totp = choice.option("totp");
    assert!(
        totp.disabled && !totp.label.contains("Skolmobil"),
        "the office anna is offered the school anna's device: {totp:?}"
    );

    // She types the school anna's current code anyway, by hand-made form.
    let code = code_now(&gw, &secret).await;
    let forged = CodePage {
        csrf: choice.csrf.clone(),
        rd: choice.rd.clone(),
        method: "totp".into(),
        page: choice.page,
    };
    let answer = enter_code(&office, &forged, &code).await;
    assert_ne!(
        answer.status,
        303,
        "the school anna's code logged the office anna in: {}",
        answer.describe()
    );
    let end = office.follow(OFFICE_APP).await.end;
    assert!(
        !end.is_whoami(),
        "the office app opened for the office anna without her own second factor: {}",
        end.describe()
    );

    // The code itself was good: the school anna logs in with it.
    let school = gw.offsite_client();
    let form = code_page_for(&school, SCHOOL_APP, &ANNA_SCHOOL, "totp").await;
    let who = arrive(
        &school,
        enter_code(&school, &form, &code).await,
        &ANNA_SCHOOL,
    )
    .await;
    assert_eq!(who.one("remote-realm"), Some("school"));

    // The office anna enrols her own app: the school anna's codes still do
    // not work for her, and hers do.
    let own = totp_add_in(&gw, "office", "Kontorsmobil");
    let office = gw.offsite_client();
    let form = code_page_for(&office, OFFICE_APP, &ANNA_OFFICE, "totp").await;
    let theirs = code_now(&gw, &secret).await;
    let refused = enter_code(&office, &form, &theirs).await;
    assert_ne!(refused.status, 303, "{}", refused.describe());
    let form = CodePage::parse(refused);
    let mine = code_now(&gw, &own).await;
    let who = arrive(
        &office,
        enter_code(&office, &form, &mine).await,
        &ANNA_OFFICE,
    )
    .await;
    assert_eq!(who.one("remote-realm"), Some("office"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_other_anna_cannot_see_or_remove_the_devices() {
    let upstream = Upstream::start().await;
    let gw = two_annas(&upstream).start().await;
    totp_add_in(&gw, "school", "Skolmobil");
    let listed = admin_ok(&gw, &["enrolments", "list", "anna", "--realm", "school"]);
    let id = listed
        .lines()
        .find_map(|l| l.trim().strip_prefix("totp").map(str::trim))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no device id in:\n{listed}"))
        .to_string();

    // The office anna, on the internal network, with a fresh password.
    let office = gw.client();
    let journey = office
        .login_as(OFFICE_APP, ANNA_OFFICE.name, ANNA_OFFICE.password)
        .await;
    assert!(journey.end.is_whoami(), "{}", journey.describe());
    let settings = office.get("https://portal.test/.portvakt/settings").await;
    assert_eq!(settings.status, 200, "{}", settings.describe());
    assert!(
        !settings.body.contains("Skolmobil"),
        "the office anna sees the school anna's device:\n{}",
        settings.body
    );
    // She has no device, so no remove form: the session's CSRF token is on
    // the enrolment page.
    let enrol = office
        .get("https://portal.test/.portvakt/settings/authenticator")
        .await;
    let csrf = enrol
        .input_value("csrf")
        .unwrap_or_else(|| panic!("no csrf: {}", enrol.describe()));
    let removed = office
        .post_form(
            "https://portal.test/.portvakt/settings",
            &[("csrf", &csrf), ("action", "remove"), ("id", &id)],
        )
        .await;
    assert!(
        !removed
            .location()
            .is_some_and(|l| l.as_str().contains("totp_removed")),
        "the page says the school anna's device was removed: {}",
        removed.describe()
    );
    let still = admin_ok(&gw, &["enrolments", "list", "anna", "--realm", "school"]);
    assert!(
        still.contains("Skolmobil"),
        "the office anna removed the school anna's device:\n{still}"
    );
    let hers = admin_ok(&gw, &["enrolments", "list", "anna", "--realm", "office"]);
    assert!(
        hers.contains("nothing enrolled") && !hers.contains("Skolmobil"),
        "{hers}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numbers_and_code_budgets_of_one_anna_are_not_the_others() {
    let upstream = Upstream::start().await;
    let sms = SmsProvider::start().await;
    let gw = two_annas(&upstream)
        .extra_yaml("codes: { per_user_per_hour: 2 }")
        .extra_yaml(&notify_yaml(&[sms.sms_yaml(
            "/send",
            "form: { to: \"{phone}\", message: \"{text}\" }\ntimeout: 2s",
        )]))
        .start()
        .await;
    set_sms_number_in(&gw, "school", &ANNA_SCHOOL, 0, "+46701110001").await;
    set_sms_number_in(&gw, "office", &ANNA_OFFICE, 0, "+46702220002").await;

    // The school anna spends her budget; her codes go to her phone.
    for n in 1..=2 {
        code_page_for(&gw.offsite_client(), SCHOOL_APP, &ANNA_SCHOOL, "sms:0").await;
        assert_eq!(
            sms.request(n).await.form_field("to"),
            "+46701110001",
            "the school anna's code went to another number"
        );
    }
    let third = gw.offsite_client();
    let posted = password_step(&third, SCHOOL_APP, &ANNA_SCHOOL, None).await;
    let choice = open_choice(&third, &posted).await;
    assert_eq!(choose(&third, &choice, "sms:0").await.status, 429);

    // The office anna is another person: her own number, her own budget.
    code_page_for(&gw.offsite_client(), OFFICE_APP, &ANNA_OFFICE, "sms:0").await;
    assert_eq!(
        sms.request(3).await.form_field("to"),
        "+46702220002",
        "the office anna's code went to the school anna's number"
    );
    assert_eq!(sms.requests().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_several_realms_the_admin_must_say_which_anna() {
    let upstream = Upstream::start().await;
    let gw = two_annas(&upstream).start().await;

    // Naming a user without a realm is refused, naming the realms.
    for args in [
        &["enrolments", "list", "anna"][..],
        &["totp", "add", "anna"],
        &["enrolments", "reset", "anna"],
        &["token", "assign", "T1", "anna"],
    ] {
        let out = admin(&gw, args);
        assert!(!out.status.success(), "{args:?} ran without --realm");
        let err = stderr(&out);
        assert!(
            err.contains("several realms (staff, school, office)") && err.contains("--realm"),
            "{args:?}: {err}"
        );
    }
    let out = admin(&gw, &["enrolments", "list", "anna", "--realm", "nowhere"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no such realm"), "{}", stderr(&out));

    // The school anna's device and token are not the office anna's.
    totp_add_in(&gw, "school", "Skolmobil");
    let csv = "serial,type,secret\nT1,hotp,3132333435363738393031323334353637383930\n";
    let out = token_import(&gw, "tokens.csv", csv);
    assert!(out.status.success(), "{}", stderr(&out));
    admin_ok(&gw, &["token", "assign", "T1", "anna", "--realm", "school"]);
    let office = admin_ok(&gw, &["enrolments", "list", "anna", "--realm", "office"]);
    assert!(
        office.contains("nothing enrolled")
            && !office.contains("Skolmobil")
            && !office.contains("T1"),
        "the office anna's list shows the school anna's enrolments:\n{office}"
    );
    let out = admin(&gw, &["token", "assign", "T1", "anna", "--realm", "office"]);
    assert!(
        !out.status.success() && stderr(&out).contains("anna (realm school)"),
        "the school anna's token moved to the office anna: {}",
        stderr(&out)
    );
    // Resetting the office anna leaves the school anna's enrolments.
    admin_ok(&gw, &["enrolments", "reset", "anna", "--realm", "office"]);
    let school = admin_ok(&gw, &["enrolments", "list", "anna", "--realm", "school"]);
    assert!(
        school.contains("Skolmobil") && school.contains("T1"),
        "{school}"
    );

    // The audit log names the realm of each admin action.
    let lines = gw
        .wait_auth_log("admin events", |l| {
            events(l, "admin")
                .iter()
                .any(|e| e["reason"] == "reset_user")
        })
        .await;
    let reset = events(&lines, "admin")
        .into_iter()
        .find(|e| e["reason"] == "reset_user")
        .unwrap();
    assert_eq!(reset["realm"], "office", "{reset}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_one_annas_sessions_leaves_the_others() {
    let upstream = Upstream::start().await;
    let gw = two_annas(&upstream).start().await;
    let school = gw.client();
    let office = gw.client();
    for (b, app, u) in [
        (&school, SCHOOL_APP, &ANNA_SCHOOL),
        (&office, OFFICE_APP, &ANNA_OFFICE),
    ] {
        let j = b.login_as(app, u.name, u.password).await;
        assert!(j.end.is_whoami(), "{}", j.describe());
    }

    let out = admin(&gw, &["sessions", "revoke", "anna"]);
    assert!(
        !out.status.success() && stderr(&out).contains("--realm"),
        "revoke by a bare name with several realms: {}",
        stderr(&out)
    );
    // The API itself refuses a bare name too (curl, scripts).
    let signer = portvakt::signing::Signer::from_file(&gw.dir().join("secret.key"))
        .expect("the gateway's key");
    let token = portvakt::admin_listener::admin_token(&signer);
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let bare = http
        .post(format!(
            "http://{}/sessions/revoke?user=anna",
            gw.admin_addr()
        ))
        .bearer_auth(&token)
        .send()
        .await
        .expect("admin listener");
    assert_eq!(bare.status(), 400, "the API revoked by a bare name");
    let said = admin_ok(&gw, &["sessions", "revoke", "anna", "--realm", "office"]);
    assert!(said.starts_with("revoked 1 session"), "{said}");

    let end = office.follow(OFFICE_APP).await.end;
    assert!(!end.is_whoami(), "the office anna is still logged in");
    let end = school.follow(SCHOOL_APP).await.end;
    assert!(
        end.is_whoami(),
        "revoking the office anna logged the school anna out: {}",
        end.describe()
    );
    let listed = admin_ok(&gw, &["sessions", "list", "--realm", "school"]);
    assert!(
        listed.contains("1 live session") && listed.contains("school"),
        "{listed}"
    );
}

/// Schema 1 of the enrolment store, as the portvakt before realms wrote it.
const SCHEMA_1: &str = "CREATE TABLE sms_numbers (
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
    CREATE INDEX tokens_by_user ON tokens (username);
    PRAGMA user_version = 1;";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgraded_store_waits_for_the_operator_to_say_whose_enrolments_they_are() {
    let upstream = Upstream::start().await;
    let mut gw = two_annas(&upstream).start().await;
    gw.signal("TERM");
    assert!(
        gw.wait_exit(std::time::Duration::from_secs(10)).is_some(),
        "the gateway did not stop"
    );
    // The store as the portvakt before realms left it: anna's authenticator,
    // keyed by the bare name, its seed sealed without a realm.
    for name in ["portvakt.db", "portvakt.db-wal", "portvakt.db-shm"] {
        let _ = std::fs::remove_file(gw.dir().join(name));
    }
    let secret = b"12345678901234567890";
    let key = std::fs::read(gw.dir().join("secret.key")).expect("key");
    let sealed = portvakt::storage::Sealer::from_secret(&key)
        .seal(secret, b"totp:1:anna")
        .expect("seal");
    let conn = rusqlite::Connection::open(gw.dir().join("portvakt.db")).expect("old store");
    conn.execute_batch(SCHEMA_1).expect("schema 1");
    conn.execute(
        "INSERT INTO totp_devices (id, username, description, seed, added_ms) \
         VALUES (1, 'anna', 'Gammal mobil', ?1, 1)",
        [sealed],
    )
    .expect("anna's device");
    drop(conn);

    // Three realms: the gateway will not guess whose anna that was.
    let mut serve = std::process::Command::new(portvakt_bin())
        .args(["serve", "--config"])
        .arg(gw.config_path())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn serve");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let status = loop {
        if let Some(status) = serve.try_wait().expect("wait") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = serve.kill();
            let _ = serve.wait();
            panic!("portvakt serve started on a store with enrolments of no realm");
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut serve.stderr.take().expect("stderr"), &mut err)
        .expect("stderr");
    assert!(!status.success());
    assert!(
        err.contains("portvakt storage adopt --realm ID") && err.contains("staff, school, office"),
        "the refusal says what to run and which realms there are: {err}"
    );
    let out = admin(&gw, &["enrolments", "list", "anna", "--realm", "office"]);
    assert!(!out.status.success(), "the admin commands refuse too");

    // The operator looks, and says: the school's.
    let legacy = admin_ok(&gw, &["storage", "legacy"]);
    assert!(legacy.contains("anna  sms 0, totp 1, tokens 0"), "{legacy}");
    let adopted = admin_ok(&gw, &["storage", "adopt", "--realm", "school"]);
    assert!(
        adopted.contains("1 user") && adopted.contains("anna"),
        "{adopted}"
    );
    let out = admin(&gw, &["storage", "adopt", "--realm", "nowhere"]);
    assert!(
        !out.status.success(),
        "adopted into a realm that does not exist"
    );

    // The gateway starts; the old authenticator logs the school anna in and
    // is nothing to the office anna.
    gw.restart().await;
    let office = admin_ok(&gw, &["enrolments", "list", "anna", "--realm", "office"]);
    assert!(office.contains("nothing enrolled"), "{office}");
    let b32 = portvakt::factors::totp::base32(secret);
    let school = gw.offsite_client();
    let form = code_page_for(&school, SCHOOL_APP, &ANNA_SCHOOL, "totp").await;
    let code = code_now(&gw, &b32).await;
    let who = arrive(
        &school,
        enter_code(&school, &form, &code).await,
        &ANNA_SCHOOL,
    )
    .await;
    assert_eq!(who.one("remote-realm"), Some("school"));
}
