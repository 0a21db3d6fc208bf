//! Unit tests of [`super`]: gateway and SMTP settings that pass, every
//! mistake reported with its key, and the placeholder scanner.

use super::check::placeholder_names;
use super::*;

fn parse(yaml: &str) -> FileNotify {
    serde_norway::from_str(yaml).unwrap()
}

fn check(yaml: &str) -> Result<NotifyConfig, Vec<(String, String)>> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("sms.pass"), "s3cret\n").unwrap();
    std::fs::write(dir.path().join("empty"), "\n").unwrap();
    validate(&parse(yaml), dir.path())
}

fn keys(r: Result<NotifyConfig, Vec<(String, String)>>) -> Vec<String> {
    r.unwrap_err().into_iter().map(|(k, _)| k).collect()
}

#[test]
fn an_empty_section_enables_nothing() {
    let c = check("{}").unwrap();
    assert!(!c.sms_enabled());
    assert!(!c.email_enabled());
}

#[test]
fn a_form_gateway_with_basic_auth() {
    let c = check(
        r#"
sms:
  http:
    url: https://api.46elks.com/a1/sms
    basic_auth: { username: u123, password_file: sms.pass }
    form: { from: Portal, to: "{phone}", message: "{text}", flash: 0 }
"#,
    )
    .unwrap();
    let h = c.sms.http.unwrap();
    assert_eq!(h.method, HttpMethod::Post);
    assert_eq!(h.timeout, DEFAULT_TIMEOUT);
    assert_eq!(
        h.auth,
        HttpAuth::Basic {
            username: "u123".into(),
            password: Secret::new("s3cret")
        }
    );
    assert!(!format!("{:?}", h.auth).contains("s3cret"));
    let BodyTemplate::Form(pairs) = h.body else {
        panic!("form expected")
    };
    assert!(pairs.contains(&("flash".into(), "0".into())));
    assert!(pairs.contains(&("to".into(), "{phone}".into())));
}

#[test]
fn a_json_gateway_with_a_bearer_token_and_timeout() {
    let c = check(
        r#"
sms:
  http:
    url: https://sms.example.org/v1/messages
    bearer_token_file: sms.pass
    json: { recipients: [{ msisdn: "{phone_digits}" }], content: { text: "{text}" } }
    timeout: 3s
    success_status: [202]
"#,
    )
    .unwrap();
    let h = c.sms.http.unwrap();
    assert_eq!(h.timeout, Duration::from_secs(3));
    assert_eq!(h.auth, HttpAuth::Bearer(Secret::new("s3cret")));
    assert!(matches!(h.body, BodyTemplate::Json(_)));
}

#[test]
fn get_with_query_only_is_fine() {
    let c = check(
            r#"
sms: { http: { url: "http://127.0.0.1:8080/send", method: get, query: { to: "{phone}", msg: "{text}" } } }
"#,
        )
        .unwrap();
    assert_eq!(c.sms.http.unwrap().method, HttpMethod::Get);
}

#[test]
fn sms_gateway_mistakes_are_all_reported() {
    let k = keys(check(
        r#"
sms:
  http:
    url: http://sms.example.org/send
    method: PATCH
    headers: { "Bad Header": x }
    basic_auth: { username: u, password_file: missing.pass }
    form: { to: "{phone}", message: "{txt}" }
    json: { a: b }
    timeout: 0s
    success_status: [42]
"#,
    ));
    for expected in [
        "sms.http.url",
        "sms.http.method",
        "sms.http.headers.Bad Header",
        "sms.http.basic_auth.password_file",
        "sms.http.form.message",
        "sms.http",
        "sms.http.timeout",
        "sms.http.success_status",
    ] {
        assert!(
            k.iter().any(|x| x == expected),
            "{expected} missing in {k:?}"
        );
    }
}

#[test]
fn placeholders_must_be_present() {
    let r = check(r#"sms: { http: { url: "https://x.example", form: { to: "{phone}" } } }"#);
    let problems = r.unwrap_err();
    assert_eq!(problems.len(), 1);
    assert!(problems[0].1.contains("{text}"), "{problems:?}");
}

#[test]
fn get_with_a_body_is_refused() {
    let k = keys(check(
        r#"sms: { http: { url: "https://x.example", method: GET, form: { to: "{phone}", m: "{text}" } } }"#,
    ));
    assert_eq!(k, ["sms.http.method"]);
}

#[test]
fn an_empty_secret_file_is_refused() {
    let k = keys(check(
        r#"sms: { http: { url: "https://x.example", bearer_token_file: empty, form: { to: "{phone}", m: "{text}" } } }"#,
    ));
    assert_eq!(k, ["sms.http.bearer_token_file"]);
}

#[test]
fn unknown_keys_are_refused_by_serde() {
    assert!(serde_norway::from_str::<FileNotify>("sms: { htp: {} }").is_err());
}

#[test]
fn smtp_urls_choose_the_tls_mode_and_port() {
    let cases = [
        ("smtps://mail.example.org", SmtpSecurity::ImplicitTls, 465),
        ("smtp://mail.example.org", SmtpSecurity::StartTls, 587),
        (
            "smtp://mail.example.org:2525?tls=starttls",
            SmtpSecurity::StartTls,
            2525,
        ),
        ("smtp://127.0.0.1:2525?tls=none", SmtpSecurity::None, 2525),
    ];
    for (url, security, port) in cases {
        let yaml = format!(
            "email: {{ smtp: {{ url: \"{url}\", from: \"E-portalen <portal@example.org>\" }} }}"
        );
        let s = check(&yaml).unwrap().email.smtp.unwrap();
        assert_eq!((s.security, s.port), (security, port), "{url}");
        assert_eq!(s.from.email.to_string(), "portal@example.org");
    }
}

#[test]
fn smtp_mistakes_are_reported() {
    for (url, extra, key) in [
        ("http://mail.example.org", "", "email.smtp.url"),
        ("smtp://mail.example.org?tls=maybe", "", "email.smtp.url"),
        ("smtps://u:p@mail.example.org", "", "email.smtp.url"),
        (
            "smtp://mail.example.org?tls=none",
            "username: u, password_file: sms.pass",
            "email.smtp.url",
        ),
        (
            "smtps://mail.example.org",
            "username: u",
            "email.smtp.password_file",
        ),
    ] {
        let yaml = format!(
            "email: {{ smtp: {{ url: \"{url}\", from: \"portal@example.org\", {extra} }} }}"
        );
        assert_eq!(keys(check(&yaml)), [key], "{url} {extra}");
    }
    let yaml = "email: { smtp: { url: \"smtps://mail.example.org\", from: \"not an address\" } }";
    assert_eq!(keys(check(yaml)), ["email.smtp.from"]);
}

#[test]
fn plain_smtp_with_credentials_is_fine_on_loopback() {
    let yaml = "email: { smtp: { url: \"smtp://localhost:2525?tls=none\", from: \"portal@example.org\", username: u, password_file: sms.pass } }";
    let s = check(yaml).unwrap().email.smtp.unwrap();
    assert_eq!(s.credentials.unwrap().1.expose(), "s3cret");
}

#[test]
fn the_outbox_must_not_be_a_file() {
    assert_eq!(keys(check("outbox: sms.pass")), ["outbox"]);
    let c = check("outbox: new-dir\nsms: { console: true }").unwrap();
    assert!(c.outbox.unwrap().ends_with("new-dir"));
    assert!(c.sms.console);
}

#[test]
fn placeholder_names_are_found() {
    assert_eq!(placeholder_names("{a} {b_c}{ x } {}"), ["a", "b_c"]);
    assert_eq!(placeholder_names(r#"{"to": "{phone}"}"#), ["phone"]);
}

#[test]
fn the_price_of_an_sms_is_an_amount_and_a_currency() {
    let c = check("sms: { console: true, cost_per_message: 0.45, currency: SEK }").unwrap();
    let price = c.sms.cost.unwrap();
    assert_eq!(price.to_string(), "0.45 SEK");
    assert_eq!(price.of(3).to_string(), "1.35");
    // Written as a string, or in lower case, it is the same price.
    let c = check(r#"sms: { cost_per_message: "0.45", currency: sek }"#).unwrap();
    assert_eq!(c.sms.cost.unwrap().to_string(), "0.45 SEK");
    let c = check("sms: { cost_per_message: 1, currency: EUR }").unwrap();
    assert_eq!(c.sms.cost.unwrap().to_string(), "1.00 EUR");
    // Not set: no price, and nothing else changes.
    assert!(check("sms: { console: true }").unwrap().sms.cost.is_none());
}

#[test]
fn a_price_that_cannot_be_right_is_refused_with_its_key() {
    for (yaml, key, words) in [
        (
            "cost_per_message: -0.45, currency: SEK",
            "sms.cost_per_message",
            "negative",
        ),
        (
            "cost_per_message: .nan, currency: SEK",
            "sms.cost_per_message",
            "not an amount",
        ),
        (
            "cost_per_message: .inf, currency: SEK",
            "sms.cost_per_message",
            "not an amount",
        ),
        (
            "cost_per_message: 45000, currency: SEK",
            "sms.cost_per_message",
            "mistake",
        ),
        (
            "cost_per_message: 1e300, currency: SEK",
            "sms.cost_per_message",
            "mistake",
        ),
        (
            "cost_per_message: 0.00001, currency: SEK",
            "sms.cost_per_message",
            "decimals",
        ),
        (
            r#"cost_per_message: "0,45", currency: SEK"#,
            "sms.cost_per_message",
            "decimal point",
        ),
        (
            "cost_per_message: true, currency: SEK",
            "sms.cost_per_message",
            "not an amount",
        ),
        (
            "cost_per_message: 0.45",
            "sms.currency",
            "needs the currency",
        ),
        (
            "currency: SEK",
            "sms.cost_per_message",
            "without cost_per_message",
        ),
        (
            "cost_per_message: 0.45, currency: kr",
            "sms.currency",
            "ISO 4217",
        ),
    ] {
        let problems = check(&format!("sms: {{ {yaml} }}")).unwrap_err();
        assert_eq!(problems.len(), 1, "{yaml}: {problems:?}");
        assert_eq!(problems[0].0, key, "{yaml}: {problems:?}");
        assert!(problems[0].1.contains(words), "{yaml}: {problems:?}");
    }
}

/// The whole configuration points at the line of a bad price, like every
/// other mistake.
#[test]
fn a_bad_price_is_reported_at_its_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    crate::demo::write_certs(dir.path()).unwrap();
    std::fs::write(dir.path().join("secret.key"), [7u8; 32]).unwrap();
    std::fs::write(dir.path().join("users.yaml"), "users: {}\n").unwrap();
    let yaml = r#"listen: { https: "127.0.0.1:1" }
tls:
  certificates:
    - { cert: gateway.pem, key: gateway.key }
portal: { host: portal.test }
secret_key_file: secret.key
realms:
  - id: staff
    title: { sv: "Personal", en: "Staff" }
    directory: { file: users.yaml }
services: []
notify:
  sms:
    console: true
    cost_per_message: -0.45
    currency: SEK
"#;
    let path = dir.path().join("portvakt.yaml");
    let e = crate::config::parse(&path, yaml).unwrap_err().to_string();
    assert!(e.contains("portvakt.yaml: line 15 column"), "{e}");
    assert!(e.contains("notify.sms.cost_per_message"), "{e}");
    assert!(e.contains("negative"), "{e}");
    let good = yaml.replace("-0.45", "0.45");
    let c = crate::config::parse(&path, &good).unwrap();
    assert_eq!(c.notify.sms.cost.unwrap().to_string(), "0.45 SEK");
}
