//! Authenticator apps (RFC 6238): a device added by the admin command, codes
//! from an independent implementation (oathtool) and from totp-rs at chosen
//! time steps, ±1 step accepted, ±2 refused, and no code accepted twice.

use crate::support::enrol::*;
use crate::support::*;

const APP: &str = "https://offsite.test/";

/// In-process on a manual clock: the codes' time steps are the test's to
/// choose, with no waiting for a fresh step. An hour ahead of the system
/// clock, so that codes checked by any other clock than the gateway's fail.
async fn gateway(upstream: &Upstream) -> Gateway {
    let hour_ahead = now_ms() + 3_600_000;
    GatewayConfig::new()
        .clock(&portvakt::clock::ManualClock::starting_at(hour_ahead))
        .service(Service::new("offsite.test", upstream.url()).policy("two_factor_offsite"))
        .extra_yaml("codes: { issuer: \"Testkommunen\" }")
        .start()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_from_oathtool_logs_alice_in() {
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream).await;
    let secret = totp_add(&gw, &ALICE, "Jobbmobil");
    let listed = enrolments_list(&gw, &ALICE);
    assert!(listed.contains("Jobbmobil"), "{listed}");
    assert!(
        !listed.contains(&secret),
        "enrolments list shows the secret:\n{listed}"
    );
    let alice = gw.offsite_client();

    let posted = password_step(&alice, "https://offsite.test/app", &ALICE, None).await;
    assert_sent_to_second(&posted, 303);
    let choice = open_choice(&alice, &posted).await;
    let totp = choice.option("totp");
    assert!(!totp.disabled, "{totp:?}");
    assert!(
        totp.label.contains("Jobbmobil"),
        "her device is named: {totp:?}"
    );
    let page = choose(&alice, &choice, "totp").await;
    assert_eq!(page.status, 200, "{}", page.describe());
    let form = CodePage::parse(page);
    assert_eq!(form.method, "totp");
    assert!(!form.offers_resend(), "nothing to resend for an app code");

    let now = fresh_step_time(&gw).await;
    let ours = totp_code(&secret, now);
    let code = match oathtool_totp(&secret, now) {
        Some(theirs) => {
            assert_eq!(theirs, ours, "oathtool and totp-rs disagree about {secret}");
            theirs
        }
        None => ours,
    };
    let who = arrive(&alice, enter_code(&alice, &form, &code).await, &ALICE).await;
    assert_eq!(who.path, "/app");
    assert_eq!(who.one("remote-auth-methods"), Some("password,totp"));

    let lines = gw
        .wait_auth_log("the second-factor login", |l| {
            events(l, "login")
                .iter()
                .any(|e| e["reason"] == "second_factor")
        })
        .await;
    let login = events(&lines, "login")
        .into_iter()
        .find(|e| e["reason"] == "second_factor")
        .unwrap();
    assert_eq!(login["method"], "totp");
    assert_eq!(login["result"], "success");
    assert!(
        !gw.auth_log_text().contains(&code),
        "the code is in the auth log"
    );
    assert!(
        !gw.auth_log_text().contains(&secret),
        "the secret is in the auth log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_command_prints_an_otpauth_uri_apps_accept() {
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream).await;
    let out = admin_ok(
        &gw,
        &["totp", "add", "alice", "--description", "Min telefon"],
    );
    let uri = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("uri:"))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no uri line:\n{out}"));
    // What Google Authenticator reads: the issuer and account, SHA1/6/30.
    let parsed = totp_rs::TOTP::from_url_unchecked(uri)
        .unwrap_or_else(|e| panic!("totp-rs cannot read {uri}: {e:?}"));
    assert_eq!(parsed.issuer.as_deref(), Some("Testkommunen"), "{uri}");
    assert_eq!(parsed.account_name, "alice", "{uri}");
    assert_eq!(parsed.digits, 6);
    assert_eq!(parsed.step, 30);
    assert!(parsed.secret.len() >= 20, "a secret of at least 160 bits");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_step_of_clock_drift_is_accepted_and_two_are_not() {
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream).await;
    let secret = totp_add(&gw, &ALICE, "Jobbmobil");

    // Two steps either side: refused (on one code page, the session stays).
    let alice = gw.offsite_client();
    let form = code_page_for(&alice, APP, &ALICE, "totp").await;
    let now = fresh_step_time(&gw).await;
    let form = assert_refused(
        enter_code(&alice, &form, &totp_code(&secret, now - 60)).await,
        401,
        "Koden stämmer inte",
    );
    let now = fresh_step_time(&gw).await;
    let form = assert_refused(
        enter_code(&alice, &form, &totp_code(&secret, now + 60)).await,
        401,
        "Koden stämmer inte",
    );
    // One step behind (a slow phone): accepted.
    let now = fresh_step_time(&gw).await;
    arrive(
        &alice,
        enter_code(&alice, &form, &totp_code(&secret, now - 30)).await,
        &ALICE,
    )
    .await;

    // One step ahead (a fast phone), in a new login: accepted.
    let again = gw.offsite_client();
    let form = code_page_for(&again, APP, &ALICE, "totp").await;
    let now = fresh_step_time(&gw).await;
    arrive(
        &again,
        enter_code(&again, &form, &totp_code(&secret, now + 30)).await,
        &ALICE,
    )
    .await;

    let lines = gw
        .wait_auth_log("two second-factor logins", |l| {
            events(l, "login")
                .iter()
                .filter(|e| e["reason"] == "second_factor")
                .count()
                >= 2
        })
        .await;
    let reasons: Vec<&str> = events(&lines, "second_factor")
        .iter()
        .map(|e| e["reason"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(reasons, ["wrong_code", "wrong_code"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accepted_code_is_never_accepted_again() {
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream).await;
    let secret = totp_add(&gw, &ALICE, "Jobbmobil");

    let alice = gw.offsite_client();
    let form = code_page_for(&alice, APP, &ALICE, "totp").await;
    let now = fresh_step_time(&gw).await;
    let code = totp_code(&secret, now);
    arrive(&alice, enter_code(&alice, &form, &code).await, &ALICE).await;

    // Someone who watched her type it, a second later, in another browser.
    let eve = gw.offsite_client();
    let form = code_page_for(&eve, APP, &ALICE, "totp").await;
    let form = assert_refused(
        enter_code(&eve, &form, &code).await,
        401,
        "Koden stämmer inte",
    );
    // An older step than the one accepted is no better.
    assert_refused(
        enter_code(&eve, &form, &totp_code(&secret, now - 30)).await,
        401,
        "Koden stämmer inte",
    );

    let lines = gw
        .wait_auth_log("two replays", |l| events(l, "second_factor").len() >= 2)
        .await;
    let refusals = events(&lines, "second_factor");
    assert!(
        refusals
            .iter()
            .all(|e| e["reason"] == "replay" && e["result"] == "failure"),
        "{refusals:#?}"
    );
    assert_eq!(
        events(&lines, "login")
            .iter()
            .filter(|e| e["reason"] == "second_factor")
            .count(),
        1,
        "only the first use logged in"
    );
}
