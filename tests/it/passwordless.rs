//! A passkey alone as the whole login (`methods.passkey_alone`): Alice
//! registers a key at work, then from home types only her name and uses the
//! key with its PIN (a real Chromium with a virtual CTAP2 key that verifies
//! its user). The service sees level 2 and `amr ["hwk","mfa"]`; a key that
//! did not verify her is refused, and once her account is disabled the key
//! no longer lets her in.
//!
//! Without a browser: a name with no usable key (unknown, disabled, none
//! registered) gets the same page as a real user's, with credential ids
//! that stay the same for the name; every refusal looks alike; a ceremony
//! answers once; the CSRF token is checked; a realm without the option
//! never starts a ceremony.

use serde_json::Value;

use crate::browser::{log_in_at_work, log_out, whoami_on_page};
use crate::passkeys::{register_key, scripts};
use crate::support::browser::{Browser, BrowserOptions};
use crate::support::forwarder::Forwarder;
use crate::support::users::User;
use crate::support::wait::until;
use crate::support::webauthn::SecurityKey;
use crate::support::*;

const BUTTON: &str = "Logga in med säkerhetsnyckel";
const REFUSED: &str = "Det gick inte att logga in med säkerhetsnyckeln";

/// `portal.test`, and `app.test` needing two factors from home; `staff`
/// offers the key as a second step and as the whole login.
async fn gateway(upstream: &Upstream) -> Gateway {
    GatewayConfig::new()
        .service(
            Service::new("app.test", upstream.url())
                .name("Appen")
                .policy("two_factor_offsite")
                .with("assertion: true"),
        )
        .realm_methods(&["password", "token"], &["passkey", "email", "totp"])
        .passkey_alone()
        .extra_yaml(
            "notify:\n  sms: { console: false }\n  email: { console: false }\n  outbox: outbox\n",
        )
        .start()
        .await
}

/// At home: the service, the login page, only the name (snapped), "Logga
/// in med säkerhetsnyckel"; the page that asks for the key.
async fn start_alone_from_home(b: &Browser, home: &Forwarder, user: &User) {
    b.open(&format!("https://app.test:{}/", home.port())).await;
    assert_eq!(b.url().await.path(), "/.portvakt/login");
    let hint = b.text_of("#passkey-alone-hint").await;
    assert!(hint.contains("i stället för lösenordet"), "{hint:?}");
    b.type_into("#username", user.name).await;
    // The user guide's picture of the button (docs/screenshots.sh).
    b.snap("logga-in-utan-losenord").await;
    b.press(BUTTON).await;
    assert_eq!(b.heading().await, "Logga in med säkerhetsnyckel");
    assert_eq!(scripts(b).await, 1, "the key page runs passkey.js");
}

fn login_lines(gw: &Gateway, result: &str) -> Vec<Value> {
    gw.auth_log_lines()
        .into_iter()
        .filter(|l| l["event"] == "login" && l["method"] == "passkey" && l["result"] == result)
        .collect()
}

async fn wait_refusal(gw: &Gateway, reason: &str) {
    gw.wait_auth_log(&format!("a refusal for {reason}"), |lines| {
        lines.iter().any(|l| {
            l["event"] == "login"
                && l["method"] == "passkey"
                && l["result"] == "failure"
                && l["reason"] == reason
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_her_key_alone_alice_logs_in_from_home_without_a_password() {
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream).await;
    let home = Forwarder::offsite(gw.https_addr()).await;
    let b = Browser::launch(
        "with_her_key_alone_alice_logs_in_from_home_without_a_password",
        gw.pki(),
        BrowserOptions::desktop(),
    )
    .await;
    let work = format!("https://portal.test:{}", gw.https_port());
    let key = SecurityKey::plug_into(&b).await;
    log_in_at_work(&b, &work, &ALICE).await;
    register_key(&b, "YubiKey").await;
    b.follow_link("Tillbaka till portalen").await;
    log_out(&b).await;

    // At home: her name, the key with its PIN, and she is in: two factors.
    let passwords_before = gw
        .auth_log_lines()
        .iter()
        .filter(|l| l["method"] == "password")
        .count();
    start_alone_from_home(&b, &home, &ALICE).await;
    b.snap("logga-in-med-nyckel-utan-losenord").await;
    b.press("Använd säkerhetsnyckeln").await;
    assert_eq!(
        b.url().await.host_str(),
        Some("app.test"),
        "not at the service"
    );
    let who = whoami_on_page(&b).await;
    assert_eq!(who.one("remote-user"), Some("alice"));
    assert_eq!(who.one("remote-auth-level"), Some("2"));
    assert_eq!(who.one("remote-auth-methods"), Some("passkey"));
    let token = who.one("portvakt-assertion").expect("a signed identity");
    let payload = token.split('.').nth(1).expect("a JWT");
    let claims: Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
            .expect("base64url"),
    )
    .expect("JSON claims");
    assert_eq!(claims["amr"], serde_json::json!(["hwk", "mfa"]));
    let ok = gw
        .wait_auth_log("the login", |lines| {
            lines.iter().any(|l| {
                l["event"] == "login"
                    && l["method"] == "passkey"
                    && l["result"] == "success"
                    && l["reason"] == "ok"
            })
        })
        .await;
    let line = ok
        .iter()
        .rev()
        .find(|l| l["event"] == "login" && l["result"] == "success")
        .expect("the line just seen");
    assert_eq!(line["user"], "alice");
    assert_eq!(line["client_ip"], "127.0.0.2");
    assert!(
        line["destination"]
            .as_str()
            .unwrap_or("")
            .starts_with("passkey:"),
        "{line}"
    );
    let passwords_after = gw
        .auth_log_lines()
        .iter()
        .filter(|l| l["method"] == "password")
        .count();
    assert_eq!(
        passwords_before, passwords_after,
        "no password step was logged"
    );
    let (_, metrics) = gw.admin_get("/metrics").await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("portvakt_logins_total") && l.contains("method=\"passkey\"")),
        "{metrics}"
    );

    // Possession without her PIN is one factor. The page's request is
    // edited (as an attacker holding the key would) to ask the key not to
    // verify her; the gateway's challenge still requires it.
    b.open(&format!(
        "https://portal.test:{}/.portvakt/logout",
        home.port()
    ))
    .await;
    b.press("Logga ut").await;
    start_alone_from_home(&b, &home, &ALICE).await;
    b.script(
        "const f = document.querySelector('form[data-passkey]');
         const o = JSON.parse(f.dataset.options);
         o.publicKey.userVerification = 'discouraged';
         f.dataset.options = JSON.stringify(o);
         const old = document.getElementById('passkey-start');
         old.replaceWith(old.cloneNode(true));
         const s = document.createElement('script');
         s.src = document.querySelector('script[src$=\"passkey.js\"]').src + '?again';
         document.body.appendChild(s); return null;",
    )
    .await;
    b.press("Använd säkerhetsnyckeln").await;
    assert_eq!(b.heading().await, "Logga in");
    assert!(b.page_text().await.contains(REFUSED));
    wait_refusal(&gw, "user_not_verified").await;

    // Her account is disabled in the directory while the key page is open:
    // the key alone no longer lets her in (the password check would have
    // refused her; the passkey login asks the directory again). The realm's
    // title changes in the same reload, so the test can see it happened.
    // (Had she been disabled before, her name would have got a decoy that
    // no key answers.)
    start_alone_from_home(&b, &home, &ALICE).await;
    let users =
        crate::support::users::users_yaml().replacen("disabled: false", "disabled: true", 1);
    assert!(users.starts_with("users:\n  alice:"), "Alice comes first");
    std::fs::write(gw.dir().join("users.yaml"), users).expect("write users.yaml");
    let text = gw.config_text();
    gw.write_config_text(&text.replacen("Övriga anställda", "Anställda", 1));
    gw.reload();
    until(
        "the reload",
        std::time::Duration::from_secs(10),
        std::time::Duration::from_millis(200),
        || async {
            (!gw.client()
                .get("https://portal.test/.portvakt/login")
                .await
                .text()
                .contains("Övriga anställda"))
            .then_some(())
        },
    )
    .await;
    b.press("Använd säkerhetsnyckeln").await;
    assert_eq!(b.heading().await, "Logga in");
    assert!(b.page_text().await.contains(REFUSED));
    wait_refusal(&gw, "disabled").await;
    assert_eq!(login_lines(&gw, "success").len(), 1, "one login only");
    key.unplug().await;
}

/// The page a name gets: its status, heading, form field names and the
/// options with the challenge and ids taken out.
struct KeyPage {
    status: u16,
    heading: String,
    fields: Vec<String>,
    options: Value,
    ids: Vec<String>,
    csrf: String,
    ceremony: String,
}

fn read_key_page(page: &Page) -> KeyPage {
    let body = &page.body;
    let heading = body
        .split("<h1 class=\"card__heading\">")
        .nth(1)
        .and_then(|h| h.split("</h1>").next())
        .unwrap_or_default()
        .to_string();
    let fields = body
        .split("name=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .map(str::to_string)
        .collect();
    let raw = body
        .split("data-options=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or_else(|| panic!("no options on {}", page.describe()));
    let json = raw
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&amp;", "&");
    let mut options: Value = serde_json::from_str(&json).expect("options are JSON");
    let pk = options["publicKey"].as_object_mut().expect("publicKey");
    assert!(
        pk["challenge"].as_str().is_some_and(|c| c.len() >= 43),
        "{pk:?}"
    );
    pk.remove("challenge");
    let list = pk
        .remove("allowCredentials")
        .and_then(|l| l.as_array().cloned())
        .unwrap_or_default();
    let ids = list
        .iter()
        .map(|c| {
            let keys: Vec<&String> = c.as_object().expect("a credential").keys().collect();
            assert_eq!(keys, ["id", "type"], "only an id and a type: {c}");
            assert_eq!(c["type"], "public-key");
            c["id"].as_str().expect("an id").to_string()
        })
        .collect::<Vec<_>>();
    KeyPage {
        status: page.status,
        heading,
        fields,
        options,
        ids,
        csrf: page.input_value("csrf").expect("csrf"),
        ceremony: page.input_value("ceremony").expect("a ceremony"),
    }
}

async fn key_page(c: &Client, form: &LoginForm, name: &str) -> KeyPage {
    let mut fields = vec![
        ("username", name),
        ("csrf", form.csrf.as_str()),
        ("via", "passkey"),
        ("realm", "staff"),
    ];
    if let Some(rd) = &form.rd {
        fields.push(("rd", rd.as_str()));
    }
    read_key_page(&c.post_form(form.action.as_str(), &fields).await)
}

async fn answer(c: &Client, gw: &Gateway, page: &KeyPage, response: &str) -> Page {
    c.post_form(
        &format!(
            "https://portal.test:{}/.portvakt/passkey/alone",
            gw.https_port()
        ),
        &[
            ("csrf", page.csrf.as_str()),
            ("ceremony", page.ceremony.as_str()),
            ("realm", "staff"),
            ("response", response),
        ],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_does_not_tell_who_has_an_account_and_every_refusal_looks_alike() {
    let upstream = Upstream::start().await;
    let gw = gateway(&upstream).await;
    // Bob registers a key first (no browser needed for the others: their
    // pages are what is compared).
    let b = Browser::launch(
        "the_page_does_not_tell_who_has_an_account",
        gw.pki(),
        BrowserOptions::desktop(),
    )
    .await;
    let key = SecurityKey::plug_into(&b).await;
    log_in_at_work(
        &b,
        &format!("https://portal.test:{}", gw.https_port()),
        &BOB,
    )
    .await;
    register_key(&b, "Nyckeln").await;
    key.unplug().await;
    drop(b);

    let c = gw.offsite_client();
    let form = c.open_login_form("https://app.test/").await;
    assert!(
        form.journey.end.text().contains(BUTTON),
        "the login page offers it"
    );
    // Bob has a key; Alice has none; Carol is disabled; "nobody" is no one.
    let bob = key_page(&c, &form, BOB.name).await;
    assert_eq!(bob.ids.len(), 1, "Bob's one key is named");
    for name in [ALICE.name, CAROL.name, "nobody", "x'\"<y>"] {
        let other = key_page(&c, &form, name).await;
        assert_eq!(other.status, bob.status, "{name}");
        assert_eq!(other.heading, bob.heading, "{name}");
        assert_eq!(other.fields, bob.fields, "{name}");
        assert_eq!(
            other.options, bob.options,
            "{name}: the same options but ids and challenge"
        );
        assert!(
            (1..=2).contains(&other.ids.len()),
            "{name}: {:?}",
            other.ids
        );
        assert!(!other.ids.iter().any(|i| bob.ids.contains(i)), "{name}");
        // The same name shows the same ids every time, as a real user's do.
        let again = key_page(&c, &form, name).await;
        assert_eq!(again.ids, other.ids, "{name}: stable ids");
        assert_ne!(again.ceremony, other.ceremony, "a new ceremony each time");
        // Any answer is refused with the one message.
        let refused = answer(&c, &gw, &other, "{\"id\":\"AAAA\"}").await;
        assert_eq!(refused.status, 401, "{name}: {}", refused.describe());
        assert!(refused.text().contains(REFUSED), "{name}");
    }
    assert_eq!(key_page(&c, &form, BOB.name).await.ids, bob.ids);
    let refused = answer(&c, &gw, &bob, "{\"id\":\"AAAA\"}").await;
    assert_eq!(refused.status, 401);
    assert!(refused.text().contains(REFUSED));
    for reason in ["no_passkey", "disabled", "unknown_user", "passkey_refused"] {
        wait_refusal(&gw, reason).await;
    }

    // A ceremony answers once; a made-up one is nothing.
    let page = key_page(&c, &form, BOB.name).await;
    assert_eq!(answer(&c, &gw, &page, "{}").await.status, 401);
    let replayed = answer(&c, &gw, &page, "{}").await;
    assert_eq!(replayed.status, 401);
    assert!(replayed.text().contains(REFUSED));
    let made_up = KeyPage {
        ceremony: "../../portvakt:sessions:*".into(),
        ..key_page(&c, &form, BOB.name).await
    };
    assert_eq!(answer(&c, &gw, &made_up, "{}").await.status, 401);
    wait_refusal(&gw, "no_code_sent").await;

    // Without the login form's CSRF token: refused before anything.
    let page = key_page(&c, &form, BOB.name).await;
    let forged = KeyPage {
        csrf: "forged".into(),
        ..page
    };
    let answer_page = answer(&c, &gw, &forged, "{}").await;
    assert_eq!(answer_page.status, 403, "{}", answer_page.describe());

    // No name: the login form says to type it first (no ceremony).
    let empty = c
        .post_form(
            form.action.as_str(),
            &[
                ("username", ""),
                ("csrf", form.csrf.as_str()),
                ("via", "passkey"),
            ],
        )
        .await;
    assert_eq!(empty.status, 400);
    assert!(empty.text().contains("Skriv ditt användarnamn först"));
    assert!(empty.input_value("ceremony").is_none());
    assert_eq!(login_lines(&gw, "success").len(), 0, "nobody got in");
}

#[tokio::test]
async fn a_realm_without_it_never_starts_a_ceremony() {
    let upstream = Upstream::start().await;
    let gw = GatewayConfig::new()
        .service(Service::new("app.test", upstream.url()).policy("two_factor_offsite"))
        .realm_methods(&["password", "token"], &["passkey", "email"])
        .start()
        .await;
    let c = gw.offsite_client();
    let form = c.open_login_form("https://app.test/").await;
    assert!(!form.journey.end.text().contains(BUTTON), "not offered");
    let posted = c
        .post_form(
            form.action.as_str(),
            &[
                ("username", ALICE.name),
                ("csrf", form.csrf.as_str()),
                ("via", "passkey"),
            ],
        )
        .await;
    // An ordinary login without a password: refused, no key page.
    assert_eq!(posted.status, 401, "{}", posted.describe());
    assert!(posted.input_value("ceremony").is_none());
    assert!(posted.text().contains("Fel användarnamn eller lösenord"));
    let direct = c
        .post_form(
            &format!(
                "https://portal.test:{}/.portvakt/passkey/alone",
                gw.https_port()
            ),
            &[
                ("csrf", form.csrf.as_str()),
                ("realm", "staff"),
                ("ceremony", "00"),
            ],
        )
        .await;
    assert_eq!(direct.status, 400, "{}", direct.describe());
}
