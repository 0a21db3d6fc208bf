//! Signed identity for upstreams: what an upstream receives on a service
//! with `assertion: true` verifies with an independent JWT library (PyJWT)
//! against the gateway's published JWKS — and forgeries, tokens for another
//! service, expired tokens and tokens of retired keys do not.

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use portvakt::clock::{Clock, ManualClock};
use serde_json::Value;

use crate::support::*;

const HEADER: &str = "portvakt-assertion";
const ISS: &str = "https://portal.test";
const APP_AUD: &str = "https://app.test/";
const OTHER_AUD: &str = "https://other.test/";

/// Settings the tests count with: tokens for 60 s, a new key every hour,
/// the previous one published 10 minutes longer.
const ASSERTION_YAML: &str = "assertion:\n  lifetime: 60s\n  rotate_every: 1h\n  overlap: 10m\n";

async fn gateway(clock: &Arc<ManualClock>, upstream: &Upstream) -> Gateway {
    GatewayConfig::new()
        .service(
            Service::new("app.test", upstream.url())
                .policy("one_factor")
                .with("assertion: true"),
        )
        .service(
            Service::new("other.test", upstream.url())
                .policy("one_factor")
                .with("assertion: true"),
        )
        .service(Service::new("bypass.test", upstream.url()).policy("bypass"))
        .idle_timeout("3h")
        .max_lifetime("10h")
        .extra_yaml(ASSERTION_YAML)
        .clock(clock)
        .start()
        .await
}

/// What the independent verifier said: the claims, or why it refused.
#[derive(Debug)]
enum Verdict {
    Valid(Value),
    Rejected(String),
}

impl Verdict {
    fn claims(self) -> Value {
        match self {
            Verdict::Valid(c) => c,
            Verdict::Rejected(why) => panic!("the upstream's check refused the token: {why}"),
        }
    }

    fn refusal(self) -> String {
        match self {
            Verdict::Rejected(why) => why,
            Verdict::Valid(c) => panic!("the upstream's check accepted a bad token: {c}"),
        }
    }
}

fn python() -> &'static str {
    // Debian's interpreter, where python3-jwt is installed (a pyenv or venv
    // python3 first on PATH would not have it).
    if std::path::Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

/// Run `tests/fixtures/verify_assertion.py` as an upstream would: fetch
/// the JWKS from the portal, verify `token` for `aud` at `now` (seconds).
async fn verify(gw: &Gateway, token: &str, aud: &str, now: u64) -> Verdict {
    let script = repo_dir().join("tests/fixtures/verify_assertion.py");
    let args: Vec<String> = vec![
        script.display().to_string(),
        "--host".into(),
        "portal.test".into(),
        "--port".into(),
        gw.https_port().to_string(),
        "--ca".into(),
        gw.ca_path().display().to_string(),
        "--iss".into(),
        ISS.into(),
        "--aud".into(),
        aud.into(),
        "--token".into(),
        token.into(),
        "--now".into(),
        now.to_string(),
    ];
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python())
            .args(&args)
            .output()
            .expect("run python3 (tests/install-deps.sh test installs python3-jwt)")
    })
    .await
    .expect("verifier thread");
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    match out.status.code() {
        Some(0) => Verdict::Valid(serde_json::from_str(&stdout).expect("claims JSON")),
        Some(1) if stdout.starts_with("REJECTED: ") => Verdict::Rejected(stdout),
        _ => panic!("the verifier failed to run: {stdout}\n{stderr}"),
    }
}

/// The one token the upstream received.
fn token_of(who: &Whoami) -> String {
    who.one(HEADER)
        .unwrap_or_else(|| panic!("no {HEADER} upstream: {:?}", who.headers))
        .to_owned()
}

fn part(token: &str, i: usize) -> Value {
    let p = token.split('.').nth(i).expect("three parts");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).expect("base64url")).expect("JSON")
}

fn kid(token: &str) -> String {
    part(token, 0)["kid"].as_str().expect("kid").to_owned()
}

fn iat(token: &str) -> u64 {
    part(token, 1)["iat"].as_u64().expect("iat")
}

/// `token` with its payload replaced by `claims`, signature kept.
fn with_claims(token: &str, claims: &Value) -> String {
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    parts[1] = URL_SAFE_NO_PAD.encode(claims.to_string());
    parts.join(".")
}

async fn jwks(gw: &Gateway) -> (Page, Value) {
    // A client with no cookies: the keys need no login.
    let page = gw
        .client()
        .get("https://portal.test/.well-known/jwks.json")
        .await;
    let doc = serde_json::from_str(&page.body).expect("JWKS JSON");
    (page, doc)
}

fn jwks_kids(doc: &Value) -> Vec<String> {
    doc["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["kid"].as_str().expect("kid").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_verifies_the_assertion_and_refuses_forged_foreign_and_expired_ones() {
    let upstream = Upstream::start().await;
    let clock = ManualClock::starting_now();
    let gw = gateway(&clock, &upstream).await;
    let browser = gw.client();
    browser.must_login("https://app.test/", &ALICE).await;

    // Mallory's own assertion, in both spellings, never reaches the app:
    // exactly one token arrives, and it is the gateway's.
    let who = browser
        .get_with(
            "https://app.test/spoof",
            &[
                (HEADER, "eyJhbGciOiJub25lIn0.e30."),
                ("Portvakt_Assertion", "x"),
            ],
        )
        .await
        .whoami();
    assert_eq!(who.all(HEADER).len(), 1, "{:?}", who.headers);
    assert!(who.all("portvakt_assertion").is_empty());
    let token = token_of(&who);
    assert_ne!(token, "eyJhbGciOiJub25lIn0.e30.");

    let now = clock.now_secs();
    let claims = verify(&gw, &token, APP_AUD, now).await.claims();
    assert_eq!(claims["iss"], ISS);
    assert_eq!(claims["aud"], APP_AUD);
    assert_eq!(claims["sub"], "staff:alice");
    assert_eq!(claims["preferred_username"], "alice");
    assert_eq!(claims["realm"], "staff");
    assert_eq!(claims["name"], "Alice Andersson");
    assert_eq!(claims["email"], "alice@example.org");
    assert_eq!(claims["groups"], serde_json::json!(["staff", "lon-users"]));
    assert_eq!(claims["amr"], serde_json::json!(["pwd"]));
    assert_eq!(claims["level"], 1);
    assert_eq!(
        claims["exp"].as_u64(),
        Some(claims["iat"].as_u64().unwrap() + 60)
    );
    assert_eq!(part(&token, 0)["alg"], "ES256");

    // The token of one service is no good at another: other.test checks its own audience.
    let why = verify(&gw, &token, OTHER_AUD, now).await.refusal();
    assert!(why.contains("InvalidAudience"), "{why}");
    // And other.test gets a token of its own.
    // (Through the portal once: a host of its own needs its own cookie.)
    let other = token_of(&browser.follow("https://other.test/").await.end.whoami());
    assert_eq!(part(&other, 1)["aud"], OTHER_AUD);
    verify(&gw, &other, OTHER_AUD, now).await.claims();

    // A changed claim breaks the signature.
    let mut forged = part(&token, 1);
    forged["groups"] = serde_json::json!(["admins"]);
    let why = verify(&gw, &with_claims(&token, &forged), APP_AUD, now)
        .await
        .refusal();
    assert!(why.contains("InvalidSignature"), "{why}");

    // Algorithm confusion: "none", or HS256 keyed with the public key, is refused.
    let mut none_header = part(&token, 0);
    none_header["alg"] = "none".into();
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(none_header.to_string()),
        token.split('.').nth(1).unwrap()
    );
    let why = verify(&gw, &none, APP_AUD, now).await.refusal();
    assert!(why.contains("Algorithm"), "{why}");
    let (_, doc) = jwks(&gw).await;
    let mut hs_header = part(&token, 0);
    hs_header["alg"] = "HS256".into();
    let signed = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(hs_header.to_string()),
        token.split('.').nth(1).unwrap()
    );
    let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(
        doc["keys"][0].to_string().as_bytes(),
    )
    .unwrap();
    hmac::Mac::update(&mut mac, signed.as_bytes());
    let hs = format!(
        "{signed}.{}",
        URL_SAFE_NO_PAD.encode(hmac::Mac::finalize(mac).into_bytes())
    );
    let why = verify(&gw, &hs, APP_AUD, now).await.refusal();
    assert!(why.contains("Algorithm"), "{why}");

    // One second past exp: expired.
    let exp = claims["exp"].as_u64().unwrap();
    let why = verify(&gw, &token, APP_AUD, exp + 1).await.refusal();
    assert!(why.contains("ExpiredSignature"), "{why}");

    // A bypass service gets no token, and not the client's either.
    let who = browser
        .get_with("https://bypass.test/", &[(HEADER, &token)])
        .await
        .whoami();
    assert!(who.all(HEADER).is_empty(), "{:?}", who.headers);

    // The JWKS: public halves only, cacheable for a short while.
    let (page, doc) = jwks(&gw).await;
    assert_eq!(page.status, 200);
    assert_eq!(page.header("cache-control"), Some("public, max-age=150"));
    assert_eq!(jwks_kids(&doc), [kid(&token)]);
    let key = &doc["keys"][0];
    assert_eq!(key["kty"], "EC");
    assert_eq!(key["crv"], "P-256");
    assert!(
        key.get("d").is_none(),
        "the private key is published: {key}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_reused_then_keys_rotate_with_an_overlap_and_retired_keys_fail() {
    let upstream = Upstream::start().await;
    let clock = ManualClock::starting_now();
    let gw = gateway(&clock, &upstream).await;
    let browser = gw.client();
    // The first token (during the login) makes the first key, now.
    browser.must_login("https://app.test/", &ALICE).await;
    let get = || async { token_of(&browser.get("https://app.test/").await.whoami()) };

    // Reused for three quarters of its minute, then signed again.
    let first = get().await;
    clock.advance(Duration::from_secs(44));
    assert_eq!(get().await, first, "a token is reused within 45 s");
    clock.advance(Duration::from_secs(2));
    let renewed = get().await;
    assert_ne!(renewed, first, "a token is signed again after 45 s");
    assert_eq!(kid(&renewed), kid(&first));

    // Ten seconds before the key is an hour old: still the first key.
    clock.advance(Duration::from_secs(3600 - 46 - 10));
    let old_key_token = get().await;
    let k1 = kid(&old_key_token);
    assert_eq!(k1, kid(&first));
    // The hour is up: the next request signs with a new key…
    clock.advance(Duration::from_secs(11));
    let new_key_token = get().await;
    let k2 = kid(&new_key_token);
    assert_ne!(k1, k2, "the key rotated");
    // …and during the overlap both verify against the JWKS.
    let now = clock.now_secs();
    assert_eq!(jwks_kids(&jwks(&gw).await.1), [k1.clone(), k2.clone()]);
    verify(&gw, &old_key_token, APP_AUD, now).await.claims();
    verify(&gw, &new_key_token, APP_AUD, now).await.claims();

    // Ten minutes later the first key is retired: gone from the JWKS, and
    // its token fails even at a time it had not yet expired.
    clock.advance(Duration::from_secs(600));
    assert_eq!(jwks_kids(&jwks(&gw).await.1), std::slice::from_ref(&k2));
    let why = verify(&gw, &old_key_token, APP_AUD, iat(&old_key_token) + 1)
        .await
        .refusal();
    assert!(why.contains(&format!("no key with kid {k1}")), "{why}");

    // A second rotation: the second key is the previous one now, still
    // published for its overlap; the first stays gone.
    clock.advance(Duration::from_secs(3600));
    let third = get().await;
    let k3 = kid(&third);
    assert!(k3 != k1 && k3 != k2);
    assert_eq!(jwks_kids(&jwks(&gw).await.1), [k2.clone(), k3]);
    verify(&gw, &new_key_token, APP_AUD, iat(&new_key_token) + 1)
        .await
        .claims();
    let why = verify(&gw, &old_key_token, APP_AUD, iat(&old_key_token) + 1)
        .await
        .refusal();
    assert!(why.contains("no key with kid"), "{why}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateways_sharing_redis_sign_with_one_key_that_each_publishes() {
    let redis = crate::support::redis::Redis::start().await;
    let upstream = Upstream::start().await;
    let key: [u8; 32] = rand::random();
    let config = || {
        GatewayConfig::new()
            .secret_key(key)
            .state(&redis.url())
            .service(
                Service::new("app.test", upstream.url())
                    .policy("one_factor")
                    .with("assertion: true"),
            )
    };
    let (a, b) = tokio::join!(config().start(), config().start());
    // Both asked for their keys at the same moment: one key, not two.
    let (ja, jb) = tokio::join!(jwks(&a), jwks(&b));
    assert_eq!(jwks_kids(&ja.1).len(), 1, "{}", ja.1);
    assert_eq!(jwks_kids(&ja.1), jwks_kids(&jb.1));

    let on_a = a.client();
    on_a.must_login("https://app.test/", &ALICE).await;
    let from_a = token_of(&on_a.get("https://app.test/").await.whoami());
    let on_b =
        b.client_with(crate::support::client::ClientOptions::default().cookie_jar(on_a.jar()));
    let from_b = token_of(&on_b.get("https://app.test/").await.whoami());
    assert_eq!(kid(&from_a), kid(&from_b));
    // An upstream behind the balancer may fetch the keys from either.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    verify(&b, &from_a, APP_AUD, now).await.claims();
    verify(&a, &from_b, APP_AUD, now).await.claims();

    // Redis holds the ring sealed: no private key in the clear.
    let stored = redis.cli(&["--no-raw", "GET", "portvakt:assertion:keys"]);
    assert!(stored.len() > 100, "the ring is in Redis: {stored}");
    assert!(
        !stored.contains("pkcs8") && !stored.contains("created_ms"),
        "{stored}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_gateway_keeps_its_keys_in_a_private_file_across_a_restart() {
    use std::os::unix::fs::PermissionsExt;
    let upstream = Upstream::start().await;
    let mut gw = GatewayConfig::new()
        .service(
            Service::new("app.test", upstream.url())
                .policy("one_factor")
                .with("assertion: true"),
        )
        .start()
        .await;
    let before = jwks_kids(&jwks(&gw).await.1);
    let file = gw.dir().join(portvakt::assertion::keys::FILE_NAME);
    let mode = std::fs::metadata(&file)
        .expect("key file")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "{}", file.display());
    gw.restart().await;
    assert_eq!(
        jwks_kids(&jwks(&gw).await.1),
        before,
        "a restart keeps the key"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_up_gets_a_new_token_at_once_not_the_cached_one_factor_token() {
    use crate::support::enrol::*;
    use crate::support::sms::SmsProvider;
    use crate::support::smtp::notify_yaml;
    let upstream = Upstream::start().await;
    let sms = SmsProvider::start().await;
    let gw = GatewayConfig::new()
        .service(
            Service::new("offsite.test", upstream.url())
                .policy("two_factor_offsite")
                .with("assertion: true"),
        )
        .extra_yaml(&notify_yaml(&[sms.sms_yaml(
            "/send",
            "form: { to: \"{phone}\", message: \"{text}\" }\ntimeout: 2s",
        )]))
        .start()
        .await;
    set_sms_number(&gw, &ALICE, 0, "+46701234567").await;

    // At the office, one factor: a level-1 token, now in the cache.
    let at_office = gw.client();
    let who = at_office.must_login("https://offsite.test/", &ALICE).await;
    let one_factor = token_of(&who);
    assert_eq!(part(&one_factor, 1)["level"], 1);
    assert_eq!(part(&one_factor, 1)["amr"], serde_json::json!(["pwd"]));

    // Seconds later, outside: the second factor, then a level-2 token at
    // once, well within the 45 s a token is reused.
    let on_train = gw.offsite_client_sharing(&at_office);
    let wall = on_train.get("https://offsite.test/").await;
    let choice = open_choice(&on_train, &wall).await;
    let page = choose(&on_train, &choice, "sms:0").await;
    let form = CodePage::parse(page);
    let code = code_in(&sms.request(1).await.form_field("message")).expect("a code");
    let accepted = enter_code(&on_train, &form, &code).await;
    let who = arrive(&on_train, accepted, &ALICE).await;
    let two_factor = token_of(&who);
    assert_ne!(two_factor, one_factor);
    let claims = part(&two_factor, 1);
    assert_eq!(claims["level"], 2);
    assert_eq!(claims["amr"], serde_json::json!(["pwd", "sms", "mfa"]));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    verify(&gw, &two_factor, "https://offsite.test/", now)
        .await
        .claims();
}
