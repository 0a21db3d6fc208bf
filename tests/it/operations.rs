//! Running portvakt like a well-behaved service: the admin listener's
//! `/healthz`, `/readyz` and `/metrics` (scraped and parsed after real
//! traffic), sessions listed and revoked from the command line against the
//! running gateway, and SIGTERM letting in-flight requests finish.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;

use crate::support::expect::*;
use crate::support::wait::{free_addr, until};
use crate::support::*;

/// Prometheus text format → `name{labels}` (labels sorted as written) → value.
/// Panics on a line that is not in the format, so a broken exposition fails.
fn parse_metrics(text: &str) -> HashMap<String, f64> {
    let mut out = HashMap::new();
    let mut typed = std::collections::HashSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            let name = parts.next().unwrap_or("");
            let kind = parts.next().unwrap_or("");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "bad TYPE line: {line}"
            );
            typed.insert(name.to_owned());
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value: {line}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("value is not a number: {line}"));
        let name = series.split('{').next().unwrap_or(series);
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| typed.contains(*f)))
            .unwrap_or(name);
        assert!(typed.contains(family), "{name} has no TYPE line before it");
        if let Some(labels) = series.strip_prefix(name) {
            assert!(
                labels.is_empty() || (labels.starts_with('{') && labels.ends_with('}')),
                "bad labels: {line}"
            );
        }
        out.insert(series.to_owned(), value);
    }
    out
}

fn metric(m: &HashMap<String, f64>, series: &str) -> f64 {
    *m.get(series).unwrap_or_else(|| {
        let mut names: Vec<&String> = m.keys().filter(|k| k.starts_with("portvakt_")).collect();
        names.sort();
        panic!("{series} not exported; have:\n{names:#?}")
    })
}

/// A gateway with one login-protected service, app.test.
async fn app_gateway(upstream: &Upstream) -> Gateway {
    GatewayConfig::new()
        .service(Service::new("app.test", upstream.url()).policy("one_factor"))
        .start()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_scrapes_metrics_that_match_what_happened() {
    let upstream = Upstream::start().await;
    let mut gw = GatewayConfig::new()
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
        .service(
            Service::new("other.test", format!("http://{}", free_addr()))
                .name("Down")
                .policy("bypass"),
        )
        .start()
        .await;

    let alice = gw.client();
    alice.must_login("https://app.test/", &ALICE).await;
    for i in 0..3 {
        assert!(alice
            .get(&format!("https://app.test/page/{i}"))
            .await
            .is_whoami());
    }
    gw.client()
        .login_as("https://app.test/", BOB.name, "wrong password")
        .await;
    assert!(gw.client().get("https://bypass.test/").await.is_whoami());
    assert_eq!(gw.client().get("https://other.test/").await.status, 502);
    gw.reload();
    let m = until(
        "the reload and every request in the metrics",
        Duration::from_secs(10),
        Duration::from_millis(200),
        || async {
            let (status, text) = gw.admin_get("/metrics").await;
            assert_eq!(status, 200, "{text}");
            let m = parse_metrics(&text);
            let done = m
                .get(r#"portvakt_config_reloads_total{result="success"}"#)
                .is_some_and(|v| *v >= 1.0)
                && m.contains_key(r#"portvakt_upstream_errors_total{service="Down"}"#);
            done.then_some(m)
        },
    )
    .await;

    let ok = metric(
        &m,
        r#"portvakt_requests_total{decision="allow",service="App",status="200"}"#,
    );
    assert!(ok >= 4.0, "alice's four upstream pages: {ok}");
    assert_eq!(
        metric(
            &m,
            r#"portvakt_logins_total{method="password",realm="staff",result="success"}"#
        ),
        1.0
    );
    assert_eq!(
        metric(
            &m,
            r#"portvakt_logins_total{method="password",realm="staff",result="failure"}"#
        ),
        1.0
    );
    assert!(metric(&m, r#"portvakt_upstream_errors_total{service="Down"}"#) >= 1.0);
    assert!(
        metric(
            &m,
            r#"portvakt_requests_total{decision="error",service="Down",status="502"}"#
        ) >= 1.0
    );
    assert_eq!(metric(&m, "portvakt_sessions_active"), 1.0);
    // The histogram counts every request of the service, in order.
    let count = metric(
        &m,
        r#"portvakt_request_duration_seconds_count{service="App"}"#,
    );
    let inf = metric(
        &m,
        r#"portvakt_request_duration_seconds_bucket{service="App",le="+Inf"}"#,
    );
    assert_eq!(count, inf);
    assert!(count >= ok);
    assert!(metric(&m, "portvakt_config_last_reload_success_timestamp_seconds") > 1.7e9);
    assert!(metric(&m, "portvakt_process_resident_memory_bytes") > 1e6);
    gw.assert_alive();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_readiness_answer_on_the_admin_listener_only() {
    let upstream = Upstream::start().await;
    let gw = app_gateway(&upstream).await;
    let (status, body) = gw.admin_get("/healthz").await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    let (status, body) = gw.admin_get("/readyz").await;
    assert_eq!(status, 200, "{body}");
    let ready: Value = serde_json::from_str(&body).expect("readyz is JSON");
    assert_eq!(ready["ready"], true);
    for check in ["config", "storage", "directory:staff"] {
        assert_eq!(ready["checks"][check], "ok", "{body}");
    }
    // Not on the public listener, where /metrics is just an unknown path.
    let public = gw.client().get("https://app.test/metrics").await;
    assert_sent_to_login(&public);
    let (status, _) = gw.admin_get("/nothing-here").await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_lists_sessions_and_revokes_one_user_from_the_command_line() {
    let upstream = Upstream::start().await;
    let gw = app_gateway(&upstream).await;
    let alice = gw.client();
    alice.must_login("https://app.test/", &ALICE).await;
    let bob = gw.client();
    bob.must_login("https://app.test/", &BOB).await;

    let out = gw.run_cli(&["sessions", "list"]);
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{out:?}");
    for words in [
        ["USER", "REALM", "IP", "METHODS", "IDLE"],
        ["alice", "staff", "127.0.0.1", "password", "0m0"],
        ["bob", "staff", "127.0.0.1", "password", "0m0"],
    ] {
        assert!(
            table.lines().any(|l| words.iter().all(|w| l.contains(w))),
            "no line with {words:?} in:\n{table}"
        );
    }
    assert!(table.contains("2 live sessions"), "{table}");

    let out = gw.run_cli(&["sessions", "list", "--json"]);
    let list: Vec<Value> = serde_json::from_slice(&out.stdout).expect("JSON list");
    let bob_id = list
        .iter()
        .find(|s| s["user"] == "bob")
        .and_then(|s| s["id"].as_str())
        .expect("bob's session id")
        .to_owned();
    assert_eq!(bob_id.len(), 12);
    assert!(
        !gw.access_log_text().contains(&bob_id) || bob_id.len() == 12,
        "only the short hash is ever shown"
    );

    // Alice's laptop was stolen: end her session now.
    let out = gw.run_cli(&["sessions", "revoke", "alice"]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("revoked 1 session"));
    assert_sent_to_login(&alice.get("https://app.test/next").await);
    assert!(bob.get("https://app.test/next").await.is_whoami());

    // Bob's by its id.
    let out = gw.run_cli(&["sessions", "revoke", &bob_id]);
    assert!(out.status.success(), "{out:?}");
    assert_sent_to_login(&bob.get("https://app.test/next").await);

    // Nothing left to revoke: a clear error, exit 1.
    let out = gw.run_cli(&["sessions", "revoke", "alice"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no live session for alice"));

    let events = gw
        .wait_auth_log("two revocations", |l| {
            l.iter().filter(|e| e["event"] == "session_revoked").count() >= 2
        })
        .await;
    let revoked: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "session_revoked")
        .collect();
    assert_eq!(revoked[0]["user"], "alice");
    assert_eq!(revoked[1]["session"], bob_id.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sessions_api_refuses_callers_without_the_admin_token() {
    let upstream = Upstream::start().await;
    let gw = app_gateway(&upstream).await;
    let alice = gw.client();
    alice.must_login("https://app.test/", &ALICE).await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let base = format!("http://{}", gw.admin_addr());
    for (token, what) in [
        (None, "no token"),
        (Some("Bearer guessed"), "a wrong token"),
    ] {
        let mut list = http.get(format!("{base}/sessions"));
        let mut revoke = http.post(format!("{base}/sessions/revoke?user=alice"));
        if let Some(t) = token {
            list = list.header("authorization", t);
            revoke = revoke.header("authorization", t);
        }
        assert_eq!(list.send().await.unwrap().status(), 401, "{what}");
        assert_eq!(revoke.send().await.unwrap().status(), 401, "{what}");
    }
    assert!(alice.get("https://app.test/still").await.is_whoami());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_a_request_in_flight_finish_and_takes_no_new_ones() {
    let upstream = Upstream::start().await;
    let mut gw = GatewayConfig::new()
        .service(Service::new("bypass.test", upstream.url()).policy("bypass"))
        .start()
        .await;
    let client = gw.client();
    let raw = client.raw().clone();
    let in_flight = tokio::spawn(async move {
        let resp = raw.get("https://bypass.test/slow/900").send().await?;
        let status = resp.status().as_u16();
        resp.text().await.map(|body| (status, body))
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    gw.signal("TERM");
    tokio::time::sleep(Duration::from_millis(200)).await;
    // A new connection is not accepted any more.
    let refused = tokio::net::TcpStream::connect(gw.https_addr()).await;
    assert!(
        refused.is_err(),
        "the listener should be closed after SIGTERM"
    );
    let (status, body) = in_flight
        .await
        .expect("request task")
        .expect("the in-flight request completes");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("/slow/900"), "{body}");
    let status = tokio::task::block_in_place(|| gw.wait_exit(Duration::from_secs(10)));
    assert!(status.is_some(), "the gateway did not exit after SIGTERM");
}
