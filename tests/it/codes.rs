//! One-time codes by e-mail (a real SMTP server) and SMS (an HTTP provider
//! stand-in), and the rules of SECURITY.md "One-time codes": case, expiry,
//! three tries, resend cooldown, budgets per user and per IP, lockout, and
//! no code in any log.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use portvakt::clock::ManualClock;

use crate::support::client::ClientOptions;
use crate::support::enrol::*;
use crate::support::sms::{Answer, SmsProvider};
use crate::support::smtp::{notify_yaml, SmtpSink};
use crate::support::*;

const APP: &str = "https://offsite.test/";

fn app(upstream: &Upstream) -> GatewayConfig {
    GatewayConfig::new()
        .service(Service::new("offsite.test", upstream.url()).policy("two_factor_offsite"))
}

/// A gateway whose SMS goes to `sms` as a form, with these `codes:` rules
/// (YAML flow mapping body, e.g. `validity: 2s`).
async fn sms_gateway(upstream: &Upstream, sms: &SmsProvider, codes: &str) -> Gateway {
    sms_gateway_with(app(upstream), sms, codes).await
}

/// [`sms_gateway`] run in-process on `clock`, for the rules about time.
async fn sms_gateway_on(
    upstream: &Upstream,
    sms: &SmsProvider,
    codes: &str,
    clock: &std::sync::Arc<ManualClock>,
) -> Gateway {
    sms_gateway_with(app(upstream).clock(clock), sms, codes).await
}

async fn sms_gateway_with(config: GatewayConfig, sms: &SmsProvider, codes: &str) -> Gateway {
    config
        .extra_yaml(&format!("codes: {{ {codes} }}"))
        .extra_yaml(&notify_yaml(&[sms.sms_yaml(
            "/send",
            "form: { to: \"{phone}\", message: \"{text}\" }\ntimeout: 2s",
        )]))
        .start()
        .await
}

/// The code in SMS request number `n`.
async fn sms_code(sms: &SmsProvider, n: usize) -> String {
    let message = sms.request(n).await.form_field("message");
    code_in(&message).unwrap_or_else(|| panic!("no code in SMS {n}: {message:?}"))
}

/// A code that is certainly not `code`: same length, same alphabet.
fn wrong(code: &str) -> String {
    let alphabet = portvakt::factors::code::ALPHABET;
    code.bytes()
        .map(|b| {
            let i = alphabet.iter().position(|a| *a == b).unwrap_or(0);
            char::from(alphabet[(i + 1) % alphabet.len()])
        })
        .collect()
}

fn client_from(gw: &Gateway, ip: [u8; 4]) -> Client {
    gw.client_with(ClientOptions::default().source_ip(IpAddr::from(ip)))
}

// ---------------------------------------------------------------- e-mail

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_code_arrives_over_smtp_and_logs_alice_in() {
    let upstream = Upstream::start().await;
    let smtp = SmtpSink::start().await;
    let gw = app(&upstream)
        .extra_yaml(&notify_yaml(&[smtp.email_yaml()]))
        .start()
        .await;
    let alice = gw.offsite_client();

    // She picks "E-post-kod" on the login page: the code goes out at once.
    let page = password_step(&alice, "https://offsite.test/mejl", &ALICE, Some("email")).await;
    assert_eq!(page.status, 200, "{}", page.describe());
    let form = CodePage::parse(page);
    assert_eq!(form.method, "email");
    assert!(
        form.notice()
            .is_some_and(|n| n.contains("a***e@example.org")),
        "the page says where the code went, masked: {:?}",
        form.notice()
    );

    let mail = smtp.mail(1).await;
    assert_eq!(mail.rcpt_tos, ["alice@example.org"]);
    assert_eq!(mail.mail_from, "portal@example.org");
    assert!(mail.to.contains("alice@example.org"), "To: {}", mail.to);
    assert!(
        mail.from.contains("portal@example.org"),
        "From: {}",
        mail.from
    );
    assert!(
        mail.subject.contains("engångskod"),
        "Subject: {}",
        mail.subject
    );
    assert_eq!(mail.content_type, "multipart/alternative", "{mail:#?}");
    let code = mail.code();
    assert!(mail.text().contains("portal.test"), "{}", mail.text());
    assert!(mail.text().contains("Alice Andersson"), "{}", mail.text());
    let html = mail.html().expect("an HTML part");
    assert!(html.contains(&code), "the HTML part carries the code too");
    assert!(!mail.tls, "this sink offers no TLS");

    let who = arrive(&alice, enter_code(&alice, &form, &code).await, &ALICE).await;
    assert_eq!(who.path, "/mejl");
    assert_eq!(who.one("remote-auth-methods"), Some("password,email"));

    let lines = gw
        .wait_auth_log("the second-factor login", |l| {
            events(l, "login")
                .iter()
                .any(|e| e["reason"] == "second_factor")
        })
        .await;
    let sent = events(&lines, "code_sent");
    assert_eq!(sent.len(), 1, "{sent:#?}");
    assert_eq!(sent[0]["result"], "success");
    assert_eq!(sent[0]["method"], "email");
    assert_eq!(sent[0]["destination"], "a***e@example.org");
    assert_eq!(sent[0]["user"], "alice");
    assert!(
        sent[0]["provider"].as_str().is_some_and(|p| !p.is_empty()),
        "the provider's answer is recorded: {}",
        sent[0]
    );
    let login = events(&lines, "login")
        .into_iter()
        .find(|e| e["reason"] == "second_factor")
        .unwrap();
    assert_eq!(login["method"], "email");
    assert_eq!(login["network"], "external");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_code_travels_over_starttls_in_the_browsers_language() {
    let upstream = Upstream::start().await;
    let smtp = SmtpSink::start_with_starttls(&Pki::shared()).await;
    let gw = app(&upstream)
        .extra_yaml(&notify_yaml(&[smtp.email_yaml()]))
        .start()
        .await;
    let alice = gw.client_with(
        ClientOptions::default()
            .source_ip(IpAddr::from([127, 0, 0, 2]))
            .header("Accept-Language", "en"),
    );

    let form = code_page_for(&alice, APP, &ALICE, "email").await;
    let mail = smtp.mail(1).await;
    assert!(
        mail.tls,
        "the message was not sent over STARTTLS: {mail:#?}"
    );
    assert!(
        mail.subject.contains("one-time code"),
        "an English browser gets an English e-mail: {}",
        mail.subject
    );
    assert!(mail.text().contains("Hello"), "{}", mail.text());
    arrive(
        &alice,
        enter_code(&alice, &form, &mail.code()).await,
        &ALICE,
    )
    .await;
}

// ---------------------------------------------------------------- SMS

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sms_code_is_posted_to_the_provider_as_a_form_with_basic_auth() {
    let upstream = Upstream::start().await;
    let sms = SmsProvider::start().await;
    let secrets = tempfile::tempdir().unwrap();
    let pass = secrets.path().join("sms.pass");
    std::fs::write(&pass, "s3cret-pass\n").unwrap();
    let gw = app(&upstream)
        .extra_yaml(&notify_yaml(&[sms.sms_yaml(
            "/a1/sms",
            &format!(
                "method: POST\n\
                 basic_auth: {{ username: \"api-user\", password_file: \"{}\" }}\n\
                 form: {{ from: \"Portalen\", to: \"{{phone}}\", message: \"{{text}}\" }}\n\
                 timeout: 2s",
                pass.display()
            ),
        )]))
        .start()
        .await;
    set_sms_number(&gw, &ALICE, 0, "+46701234567").await;
    let alice = gw.offsite_client();

    let form = code_page_for(&alice, APP, &ALICE, "sms:0").await;
    assert!(
        form.notice().is_some_and(|n| n.contains("070*****67")),
        "{:?}",
        form.notice()
    );
    let request = sms.request(1).await;
    assert_eq!(request.method, "POST");
    assert_eq!(request.path(), "/a1/sms");
    assert_eq!(
        request.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(
        request.basic_auth(),
        Some(("api-user".to_string(), "s3cret-pass".to_string()))
    );
    assert_eq!(request.form_field("from"), "Portalen");
    assert_eq!(request.form_field("to"), "+46701234567");
    let text = request.form_field("message");
    assert!(
        text.contains("portal.test"),
        "the SMS names the portal: {text:?}"
    );
    let code = code_in(&text).expect("a code in the SMS");

    let who = arrive(&alice, enter_code(&alice, &form, &code).await, &ALICE).await;
    assert_eq!(who.one("remote-auth-methods"), Some("password,sms"));

    let lines = gw
        .wait_auth_log("code_sent", |l| !events(l, "code_sent").is_empty())
        .await;
    let sent = events(&lines, "code_sent")[0];
    assert_eq!(sent["result"], "success");
    assert_eq!(sent["method"], "sms");
    assert_eq!(sent["destination"], "070*****67");
    assert_eq!(sent["provider"], "http 200");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sms_code_is_posted_as_json_with_a_bearer_token() {
    let upstream = Upstream::start().await;
    let sms = SmsProvider::start().await;
    let secrets = tempfile::tempdir().unwrap();
    let token = secrets.path().join("sms.token");
    std::fs::write(&token, "tok-123\n").unwrap();
    let gw = app(&upstream)
        .extra_yaml(&notify_yaml(&[sms.sms_yaml(
            "/v2/messages",
            &format!(
                "headers: {{ X-Api-Key: \"k-456\" }}\n\
                 bearer_token_file: \"{}\"\n\
                 json: {{ recipient: {{ number: \"{{phone}}\", digits: \"{{phone_digits}}\" }}, body: \"{{text}}\", flash: false, tags: [\"portvakt\"] }}\n\
                 success_status: [200, 202]\n\
                 timeout: 2s",
                token.display()
            ),
        )]))
        .start()
        .await;
    sms.answer(Answer::Status(202, r#"{"queued":true}"#.into()));
    set_sms_number(&gw, &ALICE, 0, "+46701234567").await;
    let alice = gw.offsite_client();

    let form = code_page_for(&alice, APP, &ALICE, "sms:0").await;
    let request = sms.request(1).await;
    assert_eq!(request.method, "POST");
    assert_eq!(request.path(), "/v2/messages");
    assert!(
        request
            .header("content-type")
            .is_some_and(|c| c.starts_with("application/json")),
        "{request:?}"
    );
    assert_eq!(request.header("authorization"), Some("Bearer tok-123"));
    assert_eq!(request.header("x-api-key"), Some("k-456"));
    let json = request.json();
    assert_eq!(json["recipient"]["number"], "+46701234567");
    assert_eq!(json["recipient"]["digits"], "46701234567");
    assert_eq!(
        json["flash"], false,
        "non-string JSON values stay as written"
    );
    assert_eq!(json["tags"][0], "portvakt");
    let code = code_in(json["body"].as_str().unwrap()).expect("a code in the body");

    arrive(&alice, enter_code(&alice, &form, &code).await, &ALICE).await;
    let lines = gw
        .wait_auth_log("code_sent", |l| !events(l, "code_sent").is_empty())
        .await;
    assert_eq!(events(&lines, "code_sent")[0]["provider"], "http 202");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_sms_provider_gives_a_clear_message_and_is_audited() {
    let upstream = Upstream::start().await;
    let sms = SmsProvider::start().await;
    let gw = sms_gateway(&upstream, &sms, "").await;
    set_sms_number(&gw, &ALICE, 0, "+46701234567").await;
    sms.answer(Answer::server_error());
    let alice = gw.offsite_client();

    let posted = password_step(&alice, APP, &ALICE, None).await;
    let choice = open_choice(&alice, &posted).await;
    let failed = choose(&alice, &choice, "sms:0").await;
    assert_eq!(failed.status, 502, "{}", failed.describe());
    let again = ChoicePage::parse(failed);
    let error = again.error().unwrap_or_default();
    assert!(
        error.contains("Koden kunde inte skickas"),
        "no clear message: {error:?}\n{}",
        again.page.describe()
    );
    // The provider did get the request; the code in it must not work (it was never delivered).
    let lost = sms_code(&sms, 1).await;

    let lines = gw
        .wait_auth_log("the failed code_sent", |l| {
            !events(l, "code_sent").is_empty()
        })
        .await;
    let sent = events(&lines, "code_sent")[0];
    assert_eq!(sent["result"], "failure", "{sent}");
    assert_eq!(sent["method"], "sms");
    assert_eq!(sent["destination"], "070*****67");
    let provider = sent["provider"].as_str().unwrap_or("");
    assert!(
        provider.contains("500"),
        "the provider's answer is audited: {sent}"
    );
    assert!(
        !provider.contains(&lost),
        "the code leaked into the log: {sent}"
    );

    // The provider recovers; she tries again at once (a failed send costs no cooldown).
    sms.answer(Answer::ok());
    let page = choose(&alice, &again, "sms:0").await;
    assert_eq!(page.status, 200, "{}", page.describe());
    let form = CodePage::parse(page);
    let lost_try = enter_code(&alice, &form, &lost).await;
    assert_refused(lost_try, 401, "Koden stämmer inte");
    let code = sms_code(&sms, 2).await;
    arrive(&alice, enter_code(&alice, &form, &code).await, &ALICE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_sms_provider_costs_the_timeout_not_a_hung_page() {
    let upstream = Upstream::start().await;
    let sms = SmsProvider::start().await;
    let gw = app(&upstream)
        .service(Service::new("bypass.test", upstream.url()).policy("bypass"))
        .extra_yaml(&notify_yaml(&[sms.sms_yaml(
            "/send",
            "form: { to: \"{phone}\", message: \"{text}\" }\ntimeout: 1s",
        )]))
        .start()
        .await;
    set_sms_number(&gw, &ALICE, 0, "+46701234567").await;
    sms.answer(Answer::Stall);
    let alice = gw.offsite_client();
    let posted = password_step(&alice, APP, &ALICE, None).await;
    let choice = open_choice(&alice, &posted).await;

    // While her page waits for the provider, the gateway serves others.
    let started = Instant::now();
    let (failed, other) = tokio::join!(choose(&alice, &choice, "sms:0"), async {
        // Once the provider holds her request, her page is stuck waiting on it.
        sms.wait_for_requests(1).await;
        let t = Instant::now();
        let page = gw.client().get("https://bypass.test/meanwhile").await;
        (page, t.elapsed())
    });
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(4),
        "with timeout: 1s the page should answer after about 1 s, it took {waited:?}"
    );
    assert_eq!(failed.status, 502, "{}", failed.describe());
    let again = ChoicePage::parse(failed);
    assert!(
        again
            .error()
            .is_some_and(|e| e.contains("Koden kunde inte skickas")),
        "{}",
        again.page.describe()
    );
    assert_eq!(other.0.whoami().path, "/meanwhile");
    assert!(
        other.1 < Duration::from_millis(900),
        "another request waited for the stalled provider: {:?}",
        other.1
    );
    assert_eq!(sms.requests().len(), 1, "the stalled request did arrive");

    let lines = gw
        .wait_auth_log("the failed code_sent", |l| {
            !events(l, "code_sent").is_empty()
        })
        .await;
    let sent = events(&lines, "code_sent")[0];
    assert_eq!(sent["result"], "failure", "{sent}");
    assert!(
        sent["provider"]
            .as_str()
            .is_some_and(|p| p.contains("timeout") || p.contains("in time")),
        "the audit says it timed out: {sent}"
    );
    // And it keeps working once the provider answers again.
    sms.answer(Answer::ok());
    let form = CodePage::parse(choose(&alice, &again, "sms:0").await);
    let code = sms_code(&sms, 2).await;
    arrive(&alice, enter_code(&alice, &form, &code).await, &ALICE).await;
}

// ---------------------------------------------------------------- rules

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_is_accepted_in_lower_case() {
    let upstream = Upstream::start().await;
    let sms = SmsProvider::start().await;
    let gw = sms_gateway(&upstream, &sms, "").await;
    set_sms_number(&gw, &ALICE, 0, "+46701234567").await;
    let alice = gw.offsite_client();

    let form = code_page_for(&alice, APP, &ALICE, "sms:0").await;
    let code = sms_code(&sms, 1).await;
    arrive(
        &alice,
        enter_code(&alice, &form, &code.to_lowercase()).await,
        &ALICE,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_expires_after_its_validity() {
    let upstream = Upstream::start().await;
    let sms = SmsProvider::start().await;
    let clock = ManualClock::starting_now();
    // The default validity: five minutes.
    let gw = sms_gateway_on(&upstream, &sms, "", &clock).await;
    set_sms_number(&gw, &ALICE, 0, "+46701234567").await;
    let alice = gw.offsite_client();

    let form = code_page_for(&alice, APP, &ALICE, "sms:0").await;
    let code = sms_code(&sms, 1).await;
    // A second before the five minutes are up, the code is still checked…
    gw.advance(Duration::from_secs(5 * 60 - 1));
    let form = assert_refused(
        enter_code(&alice, &form, &wrong(&code)).await,
        401,
        "stämmer inte",
    );
    // …and when they are, even the right one is refused.
    gw.advance(Duration::from_secs(1));
    let late = enter_code(&alice, &form, &code).await;
    assert_refused(late, 401, "Koden gäller inte längre");

    let lines = gw
        .wait_auth_log("the expired code", |l| {
            events(l, "second_factor")
                .iter()
                .any(|e| e["reason"] == "expired")
        })
        .await;
    assert!(events(&lines, "login")
        .iter()
        .all(|e| e["reason"] != "second_factor"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_wrong_tries_kill_the_code() {
    let upstream = Upstream::start().await;
    let sms = SmsProvider::start().await;
    let gw = sms_gateway(&upstream, &sms, "").await;
    set_sms_number(&gw, &ALICE, 0, "+46701234567").await;
    let alice = gw.offsite_client();

    let form = code_page_for(&alice, APP, &ALICE, "sms:0").await;
    let code = sms_code(&sms, 1).await;
    let bad = wrong(&code);
    let form = assert_refused(
        enter_code(&alice, &form, &bad).await,
        401,
        "Koden stämmer inte",
    );
    let form = assert_refused(
        enter_code(&alice, &form, &bad).await,
        401,
        "Koden stämmer inte",
    );
    let form = assert_refused(
        enter_code(&alice, &form, &bad).await,
        401,
        "Koden gäller inte längre",
    );
    // Now even the right code is too late.
    assert_refused(
        enter_code(&alice, &form, &code).await,
        401,
        "Koden gäller inte längre",
    );

    let lines = gw
        .wait_auth_log("four refusals", |l| events(l, "second_factor").len() >= 4)
        .await;
    let reasons: Vec<&str> = events(&lines, "second_factor")
        .iter()
        .map(|e| e["reason"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        reasons,
        [
            "wrong_code",
            "wrong_code",
            "too_many_tries",
            "too_many_tries"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_code_must_wait_for_the_cooldown_and_the_first_still_works() {
    let upstream = Upstream::start().await;
    let sms = SmsProvider::start().await;
    let gw = sms_gateway(&upstream, &sms, "resend_after: 30s").await;
    set_sms_number(&gw, &ALICE, 0, "+46701234567").await;
    let alice = gw.offsite_client();

    let form = code_page_for(&alice, APP, &ALICE, "sms:0").await;
    assert!(form.offers_resend());
    let code = sms_code(&sms, 1).await;
    let refused = ask_again(&alice, &form).await;
    assert_eq!(refused.status, 429, "{}", refused.describe());
    let form = CodePage::parse(refused);
    let error = form.error().unwrap_or_default();
    assert!(error.contains("Vänta"), "{error:?}");
    let seconds: u64 = error
        .split_whitespace()
        .find_map(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no number of seconds in {error:?}"));
    assert!((25..=30).contains(&seconds), "{error:?}");
    assert_eq!(sms.requests().len(), 1, "no second SMS during the cooldown");

    arrive(&alice, enter_code(&alice, &form, &code).await, &ALICE).await;
    let lines = gw
        .wait_auth_log("the refused resend", |l| events(l, "code_sent").len() >= 2)
        .await;
    let refusal = events(&lines, "code_sent")[1];
    assert_eq!(refusal["result"], "failure", "{refusal}");
    assert_eq!(refusal["reason"], "cooldown", "{refusal}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resent_code_replaces_the_old_one_but_not_its_failures() {
    let upstream = Upstream::start().await;
    let sms = SmsProvider::start().await;
    let clock = ManualClock::starting_now();
    // The default cooldown: 30 s between codes.
    let gw = sms_gateway_on(&upstream, &sms, "", &clock).await;
    set_sms_number(&gw, &ALICE, 0, "+46701234567").await;
    let alice = gw.offsite_client();

    let form = code_page_for(&alice, APP, &ALICE, "sms:0").await;
    let first = sms_code(&sms, 1).await;
    let bad = wrong(&first);
    let form = assert_refused(enter_code(&alice, &form, &bad).await, 401, "stämmer inte");
    let form = assert_refused(enter_code(&alice, &form, &bad).await, 401, "stämmer inte");

    gw.advance(Duration::from_secs(30));
    let resent = ask_again(&alice, &form).await;
    assert_eq!(resent.status, 200, "{}", resent.describe());
    let form = CodePage::parse(resent);
    let second = sms_code(&sms, 2).await;
    assert_ne!(first, second);
    // The old code is gone, and that third wrong try was the last one.
    let form = assert_refused(
        enter_code(&alice, &form, &first).await,
        401,
        "Koden gäller inte längre",
    );
    assert_refused(
        enter_code(&alice, &form, &second).await,
        401,
        "Koden gäller inte längre",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_user_budget_refuses_the_third_code_in_an_hour() {
    let upstream = Upstream::start().await;
    let sms = SmsProvider::start().await;
    let clock = ManualClock::starting_now();
    let gw = sms_gateway_on(&upstream, &sms, "per_user_per_hour: 2", &clock).await;
    set_sms_number(&gw, &ALICE, 0, "+46701234567").await;
    set_sms_number(&gw, &BOB, 0, "+46702223344").await;

    // Two logins, two codes.
    for n in 1..=2 {
        code_page_for(&gw.offsite_client(), APP, &ALICE, "sms:0").await;
        sms.wait_for_requests(n).await;
    }
    // The third is refused, whatever browser she uses.
    let third = gw.offsite_client();
    let posted = password_step(&third, APP, &ALICE, None).await;
    let choice = open_choice(&third, &posted).await;
    let refused = choose(&third, &choice, "sms:0").await;
    assert_eq!(refused.status, 429, "{}", refused.describe());
    let form = CodePage::parse(refused);
    assert!(
        form.error().is_some_and(|e| e.contains("för många koder")),
        "{:?}",
        form.error()
    );
    assert_eq!(sms.requests().len(), 2, "no SMS beyond the budget");

    // The budget is hers, not the address's: Bob on the same network gets his.
    code_page_for(&gw.offsite_client(), APP, &BOB, "sms:0").await;
    assert_eq!(sms.request(3).await.form_field("to"), "+46702223344");

    let lines = gw
        .wait_auth_log("four code_sent", |l| events(l, "code_sent").len() >= 4)
        .await;
    let refusal = events(&lines, "code_sent")[2];
    assert_eq!(refusal["result"], "failure", "{refusal}");
    assert_eq!(refusal["reason"], "user_budget", "{refusal}");
    assert_eq!(refusal["user"], "alice");

    // Just before the hour is up she is still refused; at the hour she has
    // a new budget.
    gw.advance(Duration::from_secs(3600 - 1));
    let early = gw.offsite_client();
    let posted = password_step(&early, APP, &ALICE, None).await;
    let choice = open_choice(&early, &posted).await;
    let refused = choose(&early, &choice, "sms:0").await;
    assert_eq!(refused.status, 429, "{}", refused.describe());
    gw.advance(Duration::from_secs(1));
    code_page_for(&gw.offsite_client(), APP, &ALICE, "sms:0").await;
    assert_eq!(sms.request(4).await.form_field("to"), "+46701234567");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_ip_budget_refuses_codes_to_anyone_from_that_address() {
    let upstream = Upstream::start().await;
    let sms = SmsProvider::start().await;
    let gw = sms_gateway(&upstream, &sms, "per_ip_per_hour: 2").await;
    set_sms_number(&gw, &ALICE, 0, "+46701234567").await;
    set_sms_number(&gw, &BOB, 0, "+46702223344").await;
    set_sms_number(&gw, &ORJAN, 0, "+46703334455").await;

    code_page_for(&client_from(&gw, [127, 0, 0, 2]), APP, &ALICE, "sms:0").await;
    code_page_for(&client_from(&gw, [127, 0, 0, 2]), APP, &BOB, "sms:0").await;
    sms.wait_for_requests(2).await;

    // Örjan's first code of the hour, but the address has had its two.
    let orjan = client_from(&gw, [127, 0, 0, 2]);
    let posted = password_step(&orjan, APP, &ORJAN, None).await;
    let choice = open_choice(&orjan, &posted).await;
    let refused = choose(&orjan, &choice, "sms:0").await;
    assert_eq!(refused.status, 429, "{}", refused.describe());
    assert!(CodePage::parse(refused)
        .error()
        .is_some_and(|e| e.contains("för många koder")));
    assert_eq!(sms.requests().len(), 2);

    // From another address he gets it.
    let elsewhere = client_from(&gw, [127, 0, 0, 3]);
    let form = code_page_for(&elsewhere, APP, &ORJAN, "sms:0").await;
    let code = sms_code(&sms, 3).await;
    arrive(
        &elsewhere,
        enter_code(&elsewhere, &form, &code).await,
        &ORJAN,
    )
    .await;

    let lines = gw
        .wait_auth_log("four code_sent", |l| events(l, "code_sent").len() >= 4)
        .await;
    let refusal = events(&lines, "code_sent")[2];
    assert_eq!(refusal["reason"], "ip_budget", "{refusal}");
    assert_eq!(refusal["client_ip"], "127.0.0.2", "{refusal}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_codes_count_toward_locking_the_account() {
    let upstream = Upstream::start().await;
    let sms = SmsProvider::start().await;
    // Ten tries per code, so it is the account lock, not the code, that stops her.
    let gw = sms_gateway_with(app(&upstream).throttle(3, 100), &sms, "max_tries: 10").await;
    set_sms_number(&gw, &ALICE, 0, "+46701234567").await;
    let alice = gw.offsite_client();

    let mut form = code_page_for(&alice, APP, &ALICE, "sms:0").await;
    let code = sms_code(&sms, 1).await;
    for _ in 0..3 {
        form = assert_refused(
            enter_code(&alice, &form, &wrong(&code)).await,
            401,
            "Koden stämmer inte",
        );
    }
    // Locked: the right code gets the same answer as a wrong one.
    assert_refused(
        enter_code(&alice, &form, &code).await,
        401,
        "Koden stämmer inte",
    );
    // And so does her password, in a new browser.
    let fresh = gw.offsite_client();
    let posted = password_step(&fresh, APP, &ALICE, None).await;
    assert_eq!(
        posted.status,
        401,
        "a locked account logged in with its password: {}",
        posted.describe()
    );

    let lines = gw
        .wait_auth_log("the lockout", |l| !events(l, "lockout").is_empty())
        .await;
    assert_eq!(events(&lines, "lockout")[0]["user"], "alice");
    let refusals = events(&lines, "second_factor");
    assert_eq!(refusals.len(), 4, "{refusals:#?}");
    assert!(refusals[..3].iter().all(|e| e["reason"] == "wrong_code"));
    assert_eq!(
        refusals[3]["reason"], "locked",
        "the audit log says why the right code failed: {}",
        refusals[3]
    );
    assert!(events(&lines, "login")
        .iter()
        .all(|e| e["reason"] != "second_factor"));
}

// ---------------------------------------------------------------- audit

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_code_ever_reaches_a_log_and_destinations_are_masked() {
    let upstream = Upstream::start().await;
    let sms = SmsProvider::start().await;
    let smtp = SmtpSink::start().await;
    let gw = app(&upstream)
        .extra_yaml(&notify_yaml(&[
            sms.sms_yaml(
                "/send",
                "form: { to: \"{phone}\", message: \"{text}\" }\ntimeout: 2s",
            ),
            smtp.email_yaml(),
        ]))
        .start()
        .await;
    set_sms_number(&gw, &ALICE, 0, "+46701234567").await;
    let mut codes = Vec::new();

    // An SMS login with a wrong try and a code typed in lower case.
    let alice = gw.offsite_client();
    let form = code_page_for(&alice, APP, &ALICE, "sms:0").await;
    let code = sms_code(&sms, 1).await;
    let form = assert_refused(
        enter_code(&alice, &form, &wrong(&code)).await,
        401,
        "stämmer",
    );
    arrive(
        &alice,
        enter_code(&alice, &form, &code.to_lowercase()).await,
        &ALICE,
    )
    .await;
    codes.push(code.clone());
    codes.push(wrong(&code));

    // An e-mail login.
    let bob = gw.offsite_client();
    let form = code_page_for(&bob, APP, &BOB, "email").await;
    let code = smtp.mail(1).await.code();
    arrive(&bob, enter_code(&bob, &form, &code).await, &BOB).await;
    codes.push(code);

    // A code the provider took but answered 500 to.
    sms.answer(Answer::server_error());
    let lost = gw.offsite_client();
    let posted = password_step(&lost, APP, &ALICE, None).await;
    let choice = open_choice(&lost, &posted).await;
    assert_eq!(choose(&lost, &choice, "sms:0").await.status, 502);
    codes.push(sms_code(&sms, 2).await);

    let auth = gw
        .wait_auth_log("three code_sent", |l| events(l, "code_sent").len() >= 3)
        .await;
    let auth_text = gw.auth_log_text();
    let access_text = gw.access_log_text();
    for code in &codes {
        for variant in [code.clone(), code.to_lowercase()] {
            assert!(
                !auth_text.contains(&variant),
                "code {variant} is in the auth log"
            );
            assert!(
                !access_text.contains(&variant),
                "code {variant} is in the access log"
            );
        }
    }
    for sent in events(&auth, "code_sent") {
        let line = sent.to_string();
        for secret in [
            "+46701234567",
            "46701234567",
            "0701234567",
            "alice@example.org",
            "bob@example.org",
        ] {
            assert!(!line.contains(secret), "an unmasked destination: {line}");
        }
        let dest = sent["destination"].as_str().unwrap_or("");
        assert!(
            dest == "070*****67" || dest == "b***b@example.org",
            "destination not masked as expected: {line}"
        );
    }
    // The gateway's own output does not carry them either.
    let output = gw.logs();
    for code in &codes {
        assert!(
            !output.contains(code.as_str()),
            "code {code} is in the gateway's output"
        );
    }
}
