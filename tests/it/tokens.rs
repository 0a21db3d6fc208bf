//! Hardware OATH tokens ("Webbdosa"): imported from a CSV file and assigned
//! by the admin commands; RFC 4226 look-ahead, resynchronisation by two
//! consecutive codes, counters that survive a crash, all-or-nothing import.

use crate::support::enrol::*;
use crate::support::expect::*;
use crate::support::*;

/// RFC 4226 appendix D: the secret "12345678901234567890".
const RFC_SECRET: &[u8] = b"12345678901234567890";
const RFC_SECRET_HEX: &str = "3132333435363738393031323334353637383930";

async fn gateway(upstream: &Upstream) -> Gateway {
    config(upstream).start().await
}

fn config(upstream: &Upstream) -> GatewayConfig {
    GatewayConfig::new()
        .service(Service::new("app.test", upstream.url()).policy("one_factor"))
        .service(Service::new("two.test", upstream.url()).policy("two_factor"))
}

/// Import the RFC token as `serial` (HOTP, 6 digits, counter 0) and give it to alice.
fn give_alice_the_rfc_token(gw: &Gateway, serial: &str) {
    let out = token_import(
        gw,
        "tokens.csv",
        &format!(
            "serial,type,secret,digits,period_or_counter\n{serial},hotp,{RFC_SECRET_HEX},6,0\n"
        ),
    );
    assert!(
        out.status.success(),
        "token import failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = token_assign(gw, serial, &ALICE);
    assert!(
        out.status.success(),
        "token assign failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Inside, at the office: password with "Webbdosa" chosen on the login page;
/// the answer is the code page at once.
async fn token_code_page(b: &Client, url: &str) -> CodePage {
    let page = password_step(b, url, &ALICE, Some("token")).await;
    assert_eq!(
        page.status,
        200,
        "choosing Webbdosa should show the code page: {}",
        page.describe()
    );
    let form = CodePage::parse(page);
    assert_eq!(form.method, "token");
    form
}

fn hotp(counter: u64) -> String {
    hotp_code(RFC_SECRET, counter)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hardware_token_counts_forward_resynchronises_and_survives_a_crash() {
    // The generator in these tests agrees with RFC 4226's own table.
    assert_eq!(
        (0..10).map(hotp).collect::<Vec<_>>(),
        [
            "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583",
            "399871", "520489"
        ]
    );
    let upstream = Upstream::start().await;
    let mut gw = gateway(&upstream).await;
    give_alice_the_rfc_token(&gw, "A1000001");
    let listed = enrolments_list(&gw, &ALICE);
    assert!(listed.contains("A1000001"), "{listed}");
    assert!(
        !listed.contains(RFC_SECRET_HEX),
        "the seed is listed:\n{listed}"
    );

    // The first press: she is in with two factors, even on a one-factor app.
    let b = gw.client();
    let form = token_code_page(&b, "https://app.test/dosa").await;
    let who = arrive(&b, enter_code(&b, &form, &hotp(0)).await, &ALICE).await;
    assert_eq!(who.one("remote-auth-methods"), Some("password,token"));

    // The same code again: a replay.
    let b = gw.client();
    let form = token_code_page(&b, "https://app.test/").await;
    let form = assert_refused(
        enter_code(&b, &form, &hotp(0)).await,
        401,
        "Koden stämmer inte",
    );
    // Pressed a few times in her pocket: counter 5 is inside the window of 10.
    arrive(&b, enter_code(&b, &form, &hotp(5)).await, &ALICE).await;

    // Pressed fifty times: too far to trust one code, so the page asks for the next.
    let b = gw.client();
    let form = token_code_page(&b, "https://app.test/").await;
    let asked = enter_code(&b, &form, &hotp(56)).await;
    assert_eq!(asked.status, 401, "{}", asked.describe());
    let form = CodePage::parse(asked);
    assert!(
        form.notice().is_some_and(|n| n.contains("nästa kod")),
        "the page asks for the token's next code: {:?}\n{}",
        form.notice(),
        form.page.describe()
    );
    assert_eq!(
        form.error(),
        None,
        "asking for the next code is not an error"
    );
    arrive(&b, enter_code(&b, &form, &hotp(57)).await, &ALICE).await;

    // A crash and a restart: the counter is where it was.
    gw.restart().await;
    let b = gw.client();
    let form = token_code_page(&b, "https://app.test/").await;
    let form = assert_refused(
        enter_code(&b, &form, &hotp(57)).await,
        401,
        "Koden stämmer inte",
    );
    arrive(&b, enter_code(&b, &form, &hotp(58)).await, &ALICE).await;
    assert!(
        enrolments_list(&gw, &ALICE).contains("A1000001"),
        "the token is still hers after the restart"
    );

    let lines = gw
        .wait_auth_log("the token decisions", |l| {
            events(l, "login")
                .iter()
                .filter(|e| e["reason"] == "second_factor")
                .count()
                >= 4
        })
        .await;
    let decisions: Vec<(&str, &str)> = events(&lines, "second_factor")
        .iter()
        .map(|e| {
            (
                e["result"].as_str().unwrap_or(""),
                e["reason"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        decisions,
        [
            ("failure", "replay"),
            ("info", "token_resync_started"),
            ("failure", "replay"),
        ],
        "{lines:#?}"
    );
    assert!(events(&lines, "login")
        .iter()
        .filter(|e| e["reason"] == "second_factor")
        .all(|e| e["method"] == "token"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_factor_service_takes_the_token_at_the_office() {
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream).await;
    give_alice_the_rfc_token(&gw, "A1000002");
    let b = gw.client();

    // Inside, a password is not enough for two.test: the second step offers the token.
    let posted = password_step(&b, "https://two.test/lon", &ALICE, None).await;
    assert_sent_to_second(&posted, 303);
    let choice = open_choice(&b, &posted).await;
    assert_eq!(
        choice.values(),
        ["token"],
        "inside only the token is offered"
    );
    let page = choose(&b, &choice, "token").await;
    let form = CodePage::parse(page);
    let who = arrive(&b, enter_code(&b, &form, &hotp(0)).await, &ALICE).await;
    assert_eq!(who.host, "two.test");
    assert_eq!(who.path, "/lon");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_administrator_resynchronises_a_token_that_drifted_far() {
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream).await;
    give_alice_the_rfc_token(&gw, "A1000003");

    // Two thousand presses: beyond what a login searches, so the code is just wrong.
    let b = gw.client();
    let form = token_code_page(&b, "https://app.test/").await;
    assert_refused(
        enter_code(&b, &form, &hotp(2000)).await,
        401,
        "Koden stämmer inte",
    );

    // Codes that are not consecutive are refused, and nothing changes.
    let out = admin(
        &gw,
        &["token", "resync", "A1000003", &hotp(2000), &hotp(2002)],
    );
    assert!(
        !out.status.success(),
        "resync accepted two codes that do not follow each other"
    );
    // Two consecutive codes put the counter after them.
    let said = admin_ok(
        &gw,
        &["token", "resync", "A1000003", &hotp(2001), &hotp(2002)],
    );
    assert!(said.contains("2003"), "{said}");

    let b = gw.client();
    let form = token_code_page(&b, "https://app.test/").await;
    let form = assert_refused(
        enter_code(&b, &form, &hotp(2002)).await,
        401,
        "stämmer inte",
    );
    arrive(&b, enter_code(&b, &form, &hotp(2003)).await, &ALICE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_time_based_token_with_a_base32_seed_works_too() {
    let upstream = Upstream::start().await;
    // In-process on a manual clock: the code's time step is the test's.
    let clock = portvakt::clock::ManualClock::starting_now();
    let gw = config(&upstream).clock(&clock).start().await;
    // RFC 6238's SHA-1 seed, base32.
    let seed = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
    let out = token_import(
        &gw,
        "totp-tokens.csv",
        &format!("# from the supplier\nB2000002,totp,base32:{seed},6,30\n"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(token_assign(&gw, "B2000002", &ALICE).status.success());

    let b = gw.offsite_client();
    let form = code_page_for(&b, "https://two.test/", &ALICE, "token").await;
    let now = fresh_step_time(&gw).await;
    let code = totp_code(seed, now);
    arrive(&b, enter_code(&b, &form, &code).await, &ALICE).await;
    let b = gw.offsite_client();
    let form = code_page_for(&b, "https://two.test/", &ALICE, "token").await;
    assert_refused(
        enter_code(&b, &form, &code).await,
        401,
        "Koden stämmer inte",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_token_file_is_refused_with_its_line_number_and_imports_nothing() {
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream).await;
    let csv = format!(
        "serial,type,secret,digits,period_or_counter\n\
         C3000001,hotp,{RFC_SECRET_HEX},6,0\n\
         C3000002,hotp,{RFC_SECRET_HEX},6,0\n\
         C3000003,hotp,not-a-secret!,7,0\n\
         C3000004,hotp,{RFC_SECRET_HEX},6,0\n"
    );
    let out = token_import(&gw, "broken.csv", &csv);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a broken file was imported: {stderr}"
    );
    assert!(
        mentions_line(&stderr, 4),
        "the error names line 4 (C3000003): {stderr}"
    );
    assert!(
        !mentions_line(&stderr, 2) && !mentions_line(&stderr, 3) && !mentions_line(&stderr, 5),
        "only line 4 is wrong: {stderr}"
    );

    // Nothing from that file is there: not even the good lines before it.
    for serial in ["C3000001", "C3000002", "C3000004"] {
        let out = token_assign(&gw, serial, &ALICE);
        assert!(
            !out.status.success(),
            "token {serial} from a refused file could be assigned"
        );
    }
    let listed = enrolments_list(&gw, &ALICE);
    assert!(!listed.contains("C30000"), "{listed}");

    // Fixed, the same file imports whole.
    let fixed = csv.replace("not-a-secret!,7", &format!("{RFC_SECRET_HEX},6"));
    let out = token_import(&gw, "fixed.csv", &fixed);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("imported 4 tokens"));
}
