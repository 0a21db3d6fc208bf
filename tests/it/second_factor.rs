//! The second step of login (seed: "Distansinloggning"): which methods are
//! offered where, who is asked for a code, and what a user who has nothing
//! enrolled for a method is told.

use crate::support::enrol::*;
use crate::support::expect::*;
use crate::support::sms::SmsProvider;
use crate::support::smtp::notify_yaml;
use crate::support::*;

/// An app that needs two factors off the network, and the SMS provider.
async fn gateway(upstream: &Upstream, sms: &SmsProvider) -> Gateway {
    GatewayConfig::new()
        .service(Service::new("offsite.test", upstream.url()).policy("two_factor_offsite"))
        .extra_yaml(&notify_yaml(&[sms.sms_yaml(
            "/send",
            r#"form: { to: "{phone}", message: "{text}" }"#,
        )]))
        .start()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_login_page_offers_the_methods_of_the_network_she_is_on() {
    let upstream = Upstream::start().await;
    let sms = SmsProvider::start().await;
    let gw = gateway(&upstream, &sms).await;

    // At the office: "Enkel inloggning" or "Webbdosa".
    let inside = gw.client().open_login_form("https://offsite.test/").await;
    let inside = ChoicePage::parse(inside.journey.end);
    assert_eq!(
        inside.values(),
        ["password", "token"],
        "{:#?}",
        inside.options
    );
    assert!(inside.option("password").label.contains("Enkel inloggning"));
    assert!(inside.option("token").label.contains("Webbdosa"));

    // Anywhere else: the four ways to get a code.
    let outside = gw
        .offsite_client()
        .open_login_form("https://offsite.test/")
        .await;
    let outside = ChoicePage::parse(outside.journey.end);
    assert_eq!(
        outside.values(),
        ["sms", "email", "totp", "token"],
        "{:#?}",
        outside.options
    );
    for (value, label) in [
        ("sms", "SMS-kod"),
        ("email", "E-post-kod"),
        ("totp", "Authenticator"),
        ("token", "Webbdosa"),
    ] {
        let o = outside.option(value);
        assert!(o.label.contains(label), "{value}: {o:?}");
        assert!(!o.disabled, "{value} is offered on the login page: {o:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inside_a_password_is_enough_and_outside_a_code_is_always_asked_for() {
    let upstream = Upstream::start().await;
    let sms = SmsProvider::start().await;
    let gw = gateway(&upstream, &sms).await;

    for user in [&ALICE, &ORJAN] {
        // At the office the password takes her straight to the app.
        let inside = gw.client();
        let journey = inside.login("https://offsite.test/inside", user).await;
        assert!(
            !journey.hops.iter().any(is_sent_to_second),
            "{} was asked for a second factor on the internal network:\n{}",
            user.name,
            journey.describe()
        );
        let who = journey.end.whoami();
        assert_eq!(who.one("remote-user"), Some(user.name));
        assert_eq!(who.one("remote-auth-level"), Some("1"));
        assert_eq!(who.one("remote-auth-methods"), Some("password"));

        // Outside, the password leads to the second step, never to the app…
        let outside = gw.offsite_client();
        let posted = password_step(&outside, "https://offsite.test/outside", user, None).await;
        assert_sent_to_second(&posted, 303);
        // …and the one-factor session that the password gave does not open it
        // either: it is handed to the app's host and sent to the second step.
        let journey = outside.follow("https://offsite.test/outside").await;
        assert!(
            journey.hops.iter().any(is_sent_to_second) && !journey.end.is_whoami(),
            "a one-factor session from outside was not sent to the second step:\n{}",
            journey.describe()
        );
        assert!(
            journey.end.text().contains("Steg 2"),
            "{}",
            journey.describe()
        );

        // The portal itself, from outside, asks for the code too.
        let portal = gw.offsite_client();
        let posted = password_step(&portal, "https://portal.test/", user, None).await;
        assert_sent_to_second(&posted, 303);
    }
    let access = gw
        .wait_access_log("the requests for /outside", |l| {
            l.iter().filter(|a| a["path"] == "/outside").count() >= 6
        })
        .await;
    for a in access.iter().filter(|a| a["path"] == "/outside") {
        assert!(
            a["upstream_status"].is_null() && a["decision"] != "allow",
            "the app saw a request from outside without a second factor: {a}"
        );
    }
    let lines = gw
        .wait_auth_log("six password logins", |l| {
            events(l, "login")
                .iter()
                .filter(|e| e["result"] == "success")
                .count()
                >= 6
        })
        .await;
    let successes: Vec<_> = events(&lines, "login")
        .into_iter()
        .filter(|l| l["result"] == "success")
        .collect();
    assert!(
        successes
            .iter()
            .all(|l| l["method"] == "password" && l["reason"] != "second_factor"),
        "{successes:#?}"
    );
    assert!(
        sms.requests().is_empty(),
        "no code was asked for, yet an SMS went out"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_method_bob_has_nothing_enrolled_for_is_explained_not_hidden() {
    let upstream = Upstream::start().await;
    let sms = SmsProvider::start().await;
    let gw = gateway(&upstream, &sms).await;
    let bob = gw.offsite_client();

    let posted = password_step(&bob, "https://offsite.test/", &BOB, None).await;
    assert_sent_to_second(&posted, 303);
    let choice = open_choice(&bob, &posted).await;
    assert_branded(&choice.page, 200);

    // No number: "SMS-kod" is there, greyed out, with what to do about it.
    let sms_option = choice.option("sms");
    assert!(sms_option.disabled, "{sms_option:?}");
    let why = sms_option.reason.clone().unwrap_or_default();
    assert!(
        why.contains("Mina SMS-nummer"),
        "the SMS option does not say where to add a number: {why:?}"
    );
    // The same for the app and the token; e-mail works (the directory has his address).
    assert!(choice.option("totp").disabled);
    assert!(choice
        .option("totp")
        .reason
        .as_deref()
        .is_some_and(|r| r.contains("Authenticator")));
    assert!(choice.option("token").disabled);
    assert!(choice.option("token").reason.is_some());
    let email = choice.option("email");
    assert!(!email.disabled, "{email:?}");
    assert!(email.label.contains("b***b@example.org"), "{email:?}");

    // Forcing the SMS anyway sends nothing and says why.
    let forced = choose(&bob, &choice, "sms:0").await;
    assert_eq!(forced.status, 400, "{}", forced.describe());
    let again = ChoicePage::parse(forced);
    assert!(
        again.error().is_some_and(|e| e.contains("Välj")),
        "{}",
        again.page.describe()
    );
    // So does choosing the SMS already on the login page.
    let posted = password_step(
        &gw.offsite_client(),
        "https://offsite.test/",
        &BOB,
        Some("sms"),
    )
    .await;
    assert!(
        is_sent_to_second(&posted),
        "with no number the SMS choice leads to the choice page: {}",
        posted.describe()
    );
    assert!(sms.requests().is_empty(), "{:#?}", sms.requests());
    let lines = gw
        .wait_auth_log("bob's two password logins", |l| {
            events(l, "login")
                .iter()
                .filter(|e| e["result"] == "success")
                .count()
                >= 2
        })
        .await;
    assert!(events(&lines, "code_sent").is_empty(), "{lines:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_two_numbers_alice_chooses_which_one_gets_the_code() {
    let upstream = Upstream::start().await;
    let sms = SmsProvider::start().await;
    let gw = gateway(&upstream, &sms).await;
    set_sms_number(&gw, &ALICE, 0, "+46701234567").await;
    set_sms_number(&gw, &ALICE, 1, "+46731112299").await;
    let alice = gw.offsite_client();

    let posted = password_step(&alice, "https://offsite.test/lista", &ALICE, None).await;
    assert_sent_to_second(&posted, 303);
    let choice = open_choice(&alice, &posted).await;
    assert_eq!(
        choice.values(),
        ["sms:0", "sms:1", "email", "totp", "token"],
        "{:#?}",
        choice.options
    );
    // The numbers are shown masked, never in full.
    assert!(
        choice.option("sms:0").label.contains("070*****67"),
        "{:?}",
        choice.options
    );
    assert!(
        choice.option("sms:1").label.contains("073*****99"),
        "{:?}",
        choice.options
    );
    for full in ["701234567", "731112299"] {
        assert!(
            !choice.page.body.contains(full),
            "a full number is on the page"
        );
    }

    let page = choose(&alice, &choice, "sms:1").await;
    assert_eq!(page.status, 200, "{}", page.describe());
    let form = CodePage::parse(page);
    assert!(
        form.notice().is_some_and(|n| n.contains("073*****99")),
        "the code page says where the code went: {:?}",
        form.notice()
    );
    let request = sms.request(1).await;
    assert_eq!(
        request.form_field("to"),
        "+46731112299",
        "the second number gets the code"
    );
    let code = code_in(&request.form_field("message")).expect("a code in the SMS");

    let who = arrive(&alice, enter_code(&alice, &form, &code).await, &ALICE).await;
    assert_eq!(who.path, "/lista");
    assert_eq!(who.one("remote-auth-methods"), Some("password,sms"));
    assert_eq!(sms.requests().len(), 1, "one SMS for one login");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn choosing_sms_on_the_login_page_with_one_number_sends_the_code_at_once() {
    let upstream = Upstream::start().await;
    let sms = SmsProvider::start().await;
    let gw = gateway(&upstream, &sms).await;
    set_sms_number(&gw, &ALICE, 0, "+46701234567").await;
    let alice = gw.offsite_client();

    // One number, one obvious destination: the password answer is the code page.
    let page = password_step(&alice, "https://offsite.test/direkt", &ALICE, Some("sms")).await;
    assert_eq!(page.status, 200, "{}", page.describe());
    let form = CodePage::parse(page);
    assert_eq!(form.method, "sms:0");
    assert!(
        form.offers_resend(),
        "an SMS code page offers to send it again"
    );
    let code = code_in(&sms.request(1).await.form_field("message")).expect("a code");
    let who = arrive(&alice, enter_code(&alice, &form, &code).await, &ALICE).await;
    assert_eq!(who.path, "/direkt");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_second_step_forms_only_take_their_own_sessions_token() {
    let upstream = Upstream::start().await;
    let sms = SmsProvider::start().await;
    let gw = gateway(&upstream, &sms).await;
    set_sms_number(&gw, &ALICE, 0, "+46701234567").await;
    set_sms_number(&gw, &BOB, 0, "+46702223344").await;

    let alice = gw.offsite_client();
    let form = code_page_for(&alice, "https://offsite.test/", &ALICE, "sms:0").await;
    let code = code_in(&sms.request(1).await.form_field("message")).expect("a code");

    // Bob's browser, with Alice's form (her csrf token) and her code: refused.
    let bob = gw.offsite_client();
    let posted = password_step(&bob, "https://offsite.test/", &BOB, None).await;
    let bobs_choice = open_choice(&bob, &posted).await;
    let stolen = enter_code(&bob, &form, &code).await;
    assert_eq!(stolen.status, 403, "{}", stolen.describe());
    assert!(
        stolen.text().contains("Formuläret har gått ut"),
        "{}",
        stolen.describe()
    );
    // Nor does his choice form work with her token.
    let forged = ChoicePage {
        csrf: form.csrf.clone(),
        ..bobs_choice
    };
    assert_eq!(choose(&bob, &forged, "sms:0").await.status, 403);
    assert_eq!(sms.requests().len(), 1, "no SMS for a forged form");

    // Her own form still works with her code.
    arrive(&alice, enter_code(&alice, &form, &code).await, &ALICE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_proves_only_the_channel_it_was_sent_through() {
    let upstream = Upstream::start().await;
    let sms = SmsProvider::start().await;
    let gw = gateway(&upstream, &sms).await;
    set_sms_number(&gw, &ALICE, 0, "+46701234567").await;
    let alice = gw.offsite_client();

    let mut form = code_page_for(&alice, "https://offsite.test/", &ALICE, "sms:0").await;
    let code = code_in(&sms.request(1).await.form_field("message")).expect("a code");
    // The code came by SMS; the form is edited to say it came by e-mail.
    form.method = "email".into();
    let answer = enter_code(&alice, &form, &code).await;
    if answer.status == 303 {
        // Accepting it is fine only if the session says what was really proven.
        let journey = alice.follow_from(answer).await;
        let who = journey.end.whoami();
        assert_eq!(
            who.one("remote-auth-methods"),
            Some("password,sms"),
            "an SMS code logged her in as having proven her e-mail: a service that \
             requires `methods: [email]` would let her in"
        );
    }
}
