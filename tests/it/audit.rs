//! Audit: one access-log line per request and one auth event per login
//! attempt, with the agreed fields and without secrets.

use serde_json::Value;

use crate::support::client::USER_AGENT;
use crate::support::expect::*;
use crate::support::*;

const ACCESS_FIELDS: &[&str] = &[
    "time",
    "request_id",
    "client_ip",
    "peer_ip",
    "network",
    "host",
    "method",
    "path",
    "status",
    "bytes",
    "duration_ms",
    "service",
    "upstream",
    "upstream_status",
    "user",
    "realm",
    "auth_level",
    "decision",
    "reason",
    "tls_version",
    "user_agent",
];

const AUTH_FIELDS: &[&str] = &["result", "reason", "user", "client_ip", "network", "method"];

fn lines_for<'a>(lines: &'a [Value], host: &str, path: &str) -> Vec<&'a Value> {
    lines
        .iter()
        .filter(|l| l["host"] == host && l["path"] == path)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_leaves_one_access_log_line_without_secrets() {
    let upstream = Upstream::start().await;
    let gw = GatewayConfig::new()
        .service(
            Service::new("app.test", upstream.url())
                .name("App")
                .policy("one_factor"),
        )
        .service(
            Service::new("bypass.test", upstream.url())
                .name("Open")
                .policy("bypass"),
        )
        .start()
        .await;
    let browser = gw.client();

    let form = browser
        .open_login_form("https://app.test/start?token=querysecret0")
        .await;
    let posted = browser.submit_login(&form, "alice", ALICE.password).await;
    let journey = browser.follow_from(posted).await;
    assert!(journey.end.is_whoami(), "{}", journey.describe());
    let session = browser
        .cookie("https://app.test/", SESSION_COOKIE)
        .expect("session cookie");

    for i in 1..=3 {
        browser
            .get(&format!("https://bypass.test/a/{i}?q=querysecret{i}"))
            .await
            .whoami();
    }
    browser
        .get("https://app.test/b?q=querysecret4")
        .await
        .whoami();

    let lines = gw
        .wait_access_log("lines for /a/1../a/3 and /b", |l| {
            (1..=3).all(|i| !lines_for(l, "bypass.test", &format!("/a/{i}")).is_empty())
                && !lines_for(l, "app.test", "/b").is_empty()
        })
        .await;

    for line in &lines {
        for field in ACCESS_FIELDS {
            assert!(
                line.get(*field).is_some(),
                "access log line without {field}: {line}"
            );
        }
        let network = line["network"].as_str().unwrap_or("");
        assert!(
            network == "internal" || network == "external",
            "network: {line}"
        );
        let path = line["path"].as_str().expect("path is a string");
        assert!(!path.contains('?'), "path with a query string: {line}");
    }
    for i in 1..=3 {
        let path = format!("/a/{i}");
        let found = lines_for(&lines, "bypass.test", &path);
        assert_eq!(found.len(), 1, "expected one line for {path}: {found:?}");
        let line = found[0];
        assert_eq!(line["method"], "GET", "{line}");
        assert_eq!(line["status"], 200, "{line}");
        assert_eq!(line["upstream_status"], 200, "{line}");
        assert_eq!(line["client_ip"], "127.0.0.1", "{line}");
        assert_eq!(line["peer_ip"], "127.0.0.1", "{line}");
        assert_eq!(line["network"], "internal", "{line}");
        assert_eq!(line["service"], "Open", "{line}");
        assert_eq!(line["user_agent"], USER_AGENT, "{line}");
        assert!(
            line["tls_version"].as_str().is_some_and(|v| !v.is_empty()),
            "{line}"
        );
        assert!(
            line["request_id"].as_str().is_some_and(|v| !v.is_empty()),
            "{line}"
        );
        assert!(line["bytes"].as_u64().is_some_and(|b| b > 0), "{line}");
    }
    let app = lines_for(&lines, "app.test", "/b");
    assert_eq!(app.len(), 1, "{app:?}");
    assert_eq!(app[0]["user"], "alice", "{}", app[0]);
    assert_eq!(app[0]["realm"], "staff", "{}", app[0]);
    assert!(
        app[0]["auth_level"] == 1 || app[0]["auth_level"] == "1",
        "{}",
        app[0]
    );
    assert_eq!(app[0]["service"], "App", "{}", app[0]);

    let ids: Vec<&str> = lines
        .iter()
        .filter_map(|l| l["request_id"].as_str())
        .collect();
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(ids.len(), unique.len(), "request ids repeat");

    let text = gw.access_log_text();
    assert!(
        !text.contains(ALICE.password),
        "the password is in the access log"
    );
    assert!(
        !text.contains(&session),
        "the session cookie is in the access log"
    );
    assert!(
        !text.contains(&form.csrf),
        "the csrf token is in the access log"
    );
    assert!(
        !text.contains("querysecret"),
        "a query string is in the access log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_login_attempt_leaves_an_auth_event_without_the_password() {
    let upstream = Upstream::start().await;
    let gw = GatewayConfig::new()
        .service(Service::new("app.test", upstream.url()).policy("one_factor"))
        .start()
        .await;
    let browser = gw.client();
    let wrong = "wrong-but-secret-guess";

    let form = browser.open_login_form("https://app.test/").await;
    let failed = browser.submit_login(&form, "alice", wrong).await;
    assert_eq!(failed.status, 401);
    browser.must_login("https://app.test/", &ALICE).await;
    let session = browser
        .cookie("https://app.test/", SESSION_COOKIE)
        .expect("session cookie");

    let lines = gw
        .wait_auth_log("two login events", |l| {
            l.iter().filter(|e| is_login_event(e)).count() >= 2
        })
        .await;
    let logins: Vec<&Value> = lines.iter().filter(|e| is_login_event(e)).collect();
    assert_eq!(logins.len(), 2, "one login event per attempt: {logins:?}");
    for event in &logins {
        for field in AUTH_FIELDS {
            assert!(
                event.get(*field).is_some(),
                "auth event without {field}: {event}"
            );
        }
        assert_eq!(event["user"], "alice", "{event}");
        assert_eq!(event["client_ip"], "127.0.0.1", "{event}");
        assert_eq!(event["network"], "internal", "{event}");
        assert_eq!(event["method"], "password", "{event}");
    }
    assert_eq!(logins[0]["result"], "failure", "{}", logins[0]);
    assert!(
        logins[0]["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "{}",
        logins[0]
    );
    assert_eq!(logins[1]["result"], "success", "{}", logins[1]);

    let text = gw.auth_log_text();
    assert!(!text.contains(wrong), "a typed password is in the auth log");
    assert!(
        !text.contains(ALICE.password),
        "the password is in the auth log"
    );
    assert!(
        !text.contains(&session),
        "the session cookie is in the auth log"
    );
    assert!(
        !text.contains(&form.csrf),
        "the csrf token is in the auth log"
    );
}

/// RFC 3339 UTC with exactly three decimals: `2026-11-23T13:45:00.123Z`.
fn is_rfc3339_millis_utc(t: &str) -> bool {
    let b = t.as_bytes();
    b.len() == 24
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'.',
            23 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_request_id_joins_the_access_line_the_auth_event_and_the_upstream() {
    let upstream = Upstream::start().await;
    let gw = GatewayConfig::new()
        .service(Service::new("app.test", upstream.url()).policy("one_factor"))
        .start()
        .await;
    let browser = gw.client();
    browser.must_login("https://app.test/", &ALICE).await;

    // The login POST: its access line and its auth event carry one id.
    let access = gw
        .wait_access_log("the login POST", |l| {
            l.iter()
                .any(|e| e["method"] == "POST" && e["path"] == "/.portvakt/login")
        })
        .await;
    let post = access
        .iter()
        .find(|e| e["method"] == "POST" && e["path"] == "/.portvakt/login")
        .unwrap();
    let auth = gw
        .wait_auth_log("alice's login", |l| {
            l.iter()
                .any(|e| e["event"] == "login" && e["user"] == "alice")
        })
        .await;
    let login = auth
        .iter()
        .find(|e| e["event"] == "login" && e["user"] == "alice")
        .unwrap();
    assert_eq!(login["request_id"], post["request_id"], "{login}\n{post}");

    // A client cannot choose the id the upstream and the logs see.
    let page = browser
        .get_with(
            "https://app.test/joined",
            &[("X-Request-Id", "chosen-by-client")],
        )
        .await;
    let seen = page.whoami();
    let upstream_id = seen.one("x-request-id").expect("X-Request-Id upstream");
    assert_ne!(upstream_id, "chosen-by-client");
    assert_eq!(seen.all("x-request-id").len(), 1);
    let access = gw
        .wait_access_log("the joined request", |l| {
            l.iter().any(|e| e["path"] == "/joined")
        })
        .await;
    let line = access.iter().find(|e| e["path"] == "/joined").unwrap();
    assert_eq!(line["request_id"], upstream_id, "{line}");

    // Both logs: RFC 3339 UTC with milliseconds.
    for e in access.iter().chain(auth.iter()) {
        let t = e["time"].as_str().unwrap_or("");
        assert!(is_rfc3339_millis_utc(t), "time {t:?} in {e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_request_names_the_user_it_refused() {
    let upstream = Upstream::start().await;
    let gw = GatewayConfig::new()
        .service(Service::new("app.test", upstream.url()).policy("one_factor"))
        .service(
            Service::new("lon.test", upstream.url())
                .name("Lönebesked")
                .policy("one_factor")
                .with("groups: [lon-users]"),
        )
        .start()
        .await;
    let bob = gw.client();
    bob.must_login("https://app.test/", &BOB).await;
    let journey = bob.follow("https://lon.test/payslip").await;
    assert_eq!(journey.end.status, 403, "{}", journey.describe());
    let lines = gw
        .wait_access_log("bob's refused request", |l| {
            l.iter()
                .any(|e| e["path"] == "/payslip" && e["status"] == 403)
        })
        .await;
    let line = lines
        .iter()
        .find(|e| e["path"] == "/payslip" && e["status"] == 403)
        .unwrap();
    assert_eq!(line["decision"], "deny", "{line}");
    assert_eq!(line["reason"], "missing_group", "{line}");
    assert_eq!(line["user"], "bob", "{line}");
    assert_eq!(line["realm"], "staff", "{line}");
    assert_eq!(
        line["upstream_status"],
        Value::Null,
        "never proxied: {line}"
    );
}
