//! `portvakt audit query` and `portvakt audit report` on real and generated logs.
//!
//! First on the logs a real gateway wrote while people used it (found through
//! `--config`, a rotated file beside them included), then on a week of logs
//! written here with known content — rotated, gzipped, with a damaged line —
//! where every filter and every number of the report is checked exactly.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

use crate::support::enrol::*;
use crate::support::*;

/// What one run of `portvakt audit …` printed.
pub(crate) struct Run {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Run {
    /// The JSON lines of a `--json` query.
    fn lines(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}\n{}", self.stdout))
            })
            .collect()
    }

    /// The request ids of a `--json` query, in output order.
    fn ids(&self) -> Vec<String> {
        self.lines()
            .iter()
            .map(|l| l["request_id"].as_str().unwrap_or("?").to_owned())
            .collect()
    }

    /// The `--json` report.
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("the report is not JSON ({e}):\n{}", self.stdout))
    }
}

/// `portvakt audit ARGS…`, which must exit 0.
pub(crate) fn audit(args: &[&str]) -> Run {
    let run = audit_status(args);
    assert_eq!(
        run.code, 0,
        "portvakt audit {args:?} failed:\n{}\n{}",
        run.stdout, run.stderr
    );
    run
}

/// `portvakt audit ARGS…`, whatever its exit status.
pub(crate) fn audit_status(args: &[&str]) -> Run {
    let out = Command::new(portvakt_bin())
        .arg("audit")
        .args(args)
        .output()
        .expect("run portvakt audit");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `portvakt audit ARGS…` with `input` on its standard input.
pub(crate) fn audit_with_stdin(args: &[&str], input: &[u8]) -> Run {
    use std::process::Stdio;
    let mut child = Command::new(portvakt_bin())
        .arg("audit")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run portvakt audit");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_vec();
    // Written from a thread so a full stdout pipe cannot deadlock us.
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().expect("wait for portvakt audit");
    writer.join().expect("writer thread").expect("write stdin");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn with_args<'a>(base: &[&'a str], more: &[&'a str]) -> Vec<&'a str> {
    base.iter().chain(more).copied().collect()
}

/// The row of `--json` report section `section` whose fields have these values.
fn row<'a>(report: &'a Value, section: &str, fields: &[(&str, &str)]) -> &'a Value {
    report[section]
        .as_array()
        .unwrap_or_else(|| panic!("no {section} in {report:#}"))
        .iter()
        .find(|r| fields.iter().all(|(k, v)| r[*k] == *v))
        .unwrap_or_else(|| panic!("no {section} row with {fields:?} in {report:#}"))
}

/// `text` gzipped into `path`, as logrotate's `compress` leaves a log.
pub(crate) fn gzip(path: &Path, text: &str) {
    let file = std::fs::File::create(path).expect("create .gz");
    let mut gz = flate2::write::GzEncoder::new(file, flate2::Compression::default());
    gz.write_all(text.as_bytes()).expect("gzip");
    gz.finish().expect("finish gzip");
}

// ------------------------------------------------------------- real traffic

async fn lon_gateway(upstream: &Upstream) -> Gateway {
    GatewayConfig::new()
        .service(
            Service::new("lon.test", upstream.url())
                .name("Lönebesked")
                .policy("two_factor_offsite")
                .with("groups: [lon-users]"),
        )
        .service(
            Service::new("app.test", upstream.url())
                .name("Wiki")
                .policy("one_factor"),
        )
        .start()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auditor_reads_a_working_day_from_the_gateways_own_logs() {
    let upstream = Upstream::start().await;
    let gw = lon_gateway(&upstream).await;
    let secret = totp_add(&gw, &ALICE, "Jobbmobil");

    // At the office: alice opens her pay slip with a password.
    let office = gw.client();
    office.must_login("https://lon.test/", &ALICE).await;
    // bob mistypes once, gets into the wiki, then tries Lönebesked (not his group).
    let bob = gw.client();
    let form = bob.open_login_form("https://app.test/").await;
    assert_eq!(
        bob.submit_login(&form, "bob", "bobs battery stapel")
            .await
            .status,
        401
    );
    bob.must_login("https://app.test/", &BOB).await;
    let refused = bob.follow("https://lon.test/lon/2026-11").await;
    assert_eq!(refused.end.status, 403, "{}", refused.describe());
    // From home: alice again, with her authenticator app as the second factor.
    let home = gw.offsite_client();
    let form = code_page_for(&home, "https://lon.test/lon/2026-11", &ALICE, "totp").await;
    let code = totp_code(&secret, fresh_step_time(&gw).await);
    arrive(&home, enter_code(&home, &form, &code).await, &ALICE).await;

    gw.wait_access_log("alice from home and bob refused at Lönebesked", |lines| {
        let at_lon = |decision: &str, network: &str| {
            lines.iter().any(|l| {
                l["service"] == "Lönebesked" && l["decision"] == decision && l["network"] == network
            })
        };
        at_lon("allow", "external") && at_lon("deny", "internal")
    })
    .await;
    // Last week's rotated log lies beside the live one, compressed by logrotate.
    let last_week = portvakt::audit::timestamp(now_ms() - 8 * 86_400_000);
    gzip(
        &gw.dir().join("access.jsonl.1.gz"),
        &format!(
            "{}\n",
            json!({"time": last_week, "request_id": "lastweek", "client_ip": "198.51.100.7",
                "peer_ip": "198.51.100.7", "network": "external", "host": "lon.test", "method": "GET",
                "path": "/", "status": 200, "bytes": 10, "duration_ms": 1.0, "service": "Lönebesked",
                "upstream": null, "upstream_status": 200, "user": "erik", "realm": "staff",
                "auth_level": 2, "decision": "allow", "reason": "ok", "tls_version": "TLSv1.3",
                "http_version": "HTTP/1.1", "user_agent": "ua", "error": null})
        ),
    );
    let config = gw.config_path();
    let config = config.to_str().expect("utf-8 path");
    let cfg = ["query", "--config", config];

    // "Who reached Lönebesked from outside?" — erik last week, alice today.
    let outside = [
        "--service",
        "Lönebesked",
        "--network",
        "external",
        "--decision",
        "allow",
    ];
    let ever = audit(&with_args(&cfg, &with_args(&outside, &["--json"])));
    let who: Vec<(String, String)> = ever
        .lines()
        .iter()
        .map(|l| {
            (
                l["user"].as_str().unwrap_or("-").to_owned(),
                l["client_ip"].as_str().unwrap_or("-").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        who[0],
        ("erik".to_owned(), "198.51.100.7".to_owned()),
        "oldest first: {who:?}"
    );
    assert!(who.len() >= 2, "{who:?}");
    assert!(
        who[1..]
            .iter()
            .all(|w| *w == ("alice".to_owned(), "127.0.0.2".to_owned())),
        "only alice, from 127.0.0.2: {who:?}"
    );
    // "…in the last week?" — only today's visit.
    let week = audit(&with_args(
        &cfg,
        &with_args(&outside, &["--since", "7d", "--json"]),
    ));
    assert!(
        !week.ids().contains(&"lastweek".to_owned()),
        "{}",
        week.stdout
    );
    assert_eq!(week.lines().len(), who.len() - 1);

    // The same as a table: time, gateway, log, user, address, network, service, request, outcome.
    let table = audit(&with_args(&cfg, &with_args(&outside, &["--since", "7d"])));
    let rows: Vec<&str> = table.stdout.lines().collect();
    assert!(rows[0].starts_with("TIME"), "{}", table.stdout);
    assert!(
        rows[0].contains("CLIENT IP") && rows[0].contains("SERVICE/HOST"),
        "{}",
        table.stdout
    );
    let first: Vec<&str> = rows[1].split_whitespace().collect();
    assert_eq!(
        &first[2..],
        [
            "access",
            "alice",
            "127.0.0.2",
            "external",
            "Lönebesked",
            "GET",
            "/lon/2026-11",
            "allow",
            "200",
            "ok"
        ],
        "{}",
        table.stdout
    );
    assert!(
        rows.last().is_some_and(|r| r.contains("matching line")),
        "{}",
        table.stdout
    );

    // "What was refused?" — bob's wrong password and his request to Lönebesked.
    let refusals = audit(&with_args(
        &cfg,
        &["--decision", "deny,closed", "--result", "failure", "--json"],
    ));
    let lines = refusals.lines();
    assert_eq!(lines.len(), 2, "{}", refusals.stdout);
    assert_eq!(
        (
            &lines[0]["event"],
            &lines[0]["user"],
            &lines[0]["reason"],
            &lines[0]["network"]
        ),
        (
            &json!("login"),
            &json!("bob"),
            &json!("wrong_password"),
            &json!("internal")
        )
    );
    assert_eq!(
        (
            &lines[1]["service"],
            &lines[1]["user"],
            &lines[1]["client_ip"],
            &lines[1]["reason"],
            &lines[1]["status"]
        ),
        (
            &json!("Lönebesked"),
            &json!("bob"),
            &json!("127.0.0.1"),
            &json!("missing_group"),
            &json!(403)
        )
    );
    // "What happened in that failed login?" — its request in both logs.
    let id = lines[0]["request_id"].as_str().unwrap_or("-").to_owned();
    let request = audit(&with_args(&cfg, &["--request-id", &id, "--json"])).lines();
    let mut seen: Vec<(&str, &str, String)> = request
        .iter()
        .map(|l| {
            let kind = if l["event"].is_string() {
                "auth"
            } else {
                "access"
            };
            (
                kind,
                l["path"].as_str().unwrap_or("-"),
                l["status"].to_string(),
            )
        })
        .collect();
    // Both in the same millisecond is possible; the order then is not the point.
    seen.sort();
    assert_eq!(
        seen,
        [
            ("access", "/.portvakt/login", "401".to_owned()),
            ("auth", "-", "null".to_owned())
        ],
        "{request:?}"
    );

    // The day in one report.
    let report = audit(&["report", "--config", config, "--json"]).json();
    let logins = |method: &str, network: &str| {
        let r = row(
            &report,
            "logins",
            &[("method", method), ("network", network)],
        );
        (
            r["success"].as_u64().unwrap_or(99),
            r["failure"].as_u64().unwrap_or(99),
        )
    };
    assert_eq!(
        logins("password", "internal"),
        (2, 1),
        "alice and bob at the office, bob's typo"
    );
    assert_eq!(logins("password", "external"), (1, 0), "alice from home");
    assert_eq!(
        logins("totp", "external"),
        (1, 0),
        "her app as the second factor"
    );
    assert_eq!(
        report["logins"].as_array().map(Vec::len),
        Some(3),
        "{report:#}"
    );
    let bob_refused = row(&report, "refused_users", &[("who", "bob")]);
    assert_eq!(bob_refused["auth_failures"], 1, "{bob_refused}");
    let office_refused = row(&report, "refused_ips", &[("who", "127.0.0.1")]);
    assert_eq!(
        (
            &office_refused["auth_failures"],
            &office_refused["refused_requests"]
        ),
        (&json!(1), &json!(1)),
        "bob's typo and his refused request, both from the office"
    );
    let lon = row(&report, "services", &[("service", "Lönebesked")]);
    assert_eq!(
        lon["users"], 2,
        "erik last week and alice; bob was refused: {lon}"
    );
    assert_eq!(lon["refused"], 1, "{lon}");
    assert!(row(&report, "services", &[("service", "Wiki")])["users"].as_u64() >= Some(1));
    assert_eq!(report["totals"]["lockouts"], 0);
    assert_eq!(report["totals"]["malformed_lines"], 0);
    assert!(
        report["events"]
            .as_array()
            .is_some_and(|es| es.iter().all(|e| e["event"] != "chain_anchor")),
        "the chain anchor is not an event: {report:#}"
    );
    // The text report says the same for people.
    let text = audit(&["report", "--config", config]).stdout;
    assert!(text.contains("Logins by method and location"), "{text}");
    assert!(
        text.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["password", "internal", "2", "1"]),
        "{text}"
    );

    // Where the logs go to journald instead, the auditor is told how to get them.
    let journald = gw
        .config_text()
        .replace("access_log: access.jsonl", "access_log: stdout")
        .replace("auth_log: auth.jsonl", "auth_log: stdout");
    gw.write_config_text(&journald);
    let run = audit_status(&["report", "--config", config]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("journalctl") && run.stderr.contains("no log files to read"),
        "{}",
        run.stderr
    );
}

// ------------------------------------------------------------- a known week

const H: u64 = 3_600_000;

/// A week of logs with known content, in a temporary directory:
/// `access.jsonl.2.gz`, `access.jsonl.1`, `access.jsonl` (with one damaged
/// line), `auth.jsonl.1.gz` and `auth.jsonl`, times relative to now.
struct Week {
    dir: tempfile::TempDir,
}

fn at(hours_ago: f64) -> String {
    portvakt::audit::timestamp(now_ms() - (hours_ago * H as f64) as u64)
}

#[allow(clippy::too_many_arguments)]
fn access(
    id: &str,
    hours_ago: f64,
    user: Option<&str>,
    realm: &str,
    ip: &str,
    network: &str,
    service: &str,
    decision: &str,
    reason: &str,
    status: u16,
) -> String {
    let host = if service == "Wiki" {
        "wiki.kommun.test"
    } else {
        "lon.kommun.test"
    };
    json!({"time": at(hours_ago), "request_id": id, "client_ip": ip, "peer_ip": ip,
        "network": network, "host": host, "method": "GET", "path": "/", "status": status,
        "bytes": 100, "duration_ms": 2.5, "service": service, "upstream": null,
        "upstream_status": null, "user": user, "realm": user.map(|_| realm), "auth_level": 1,
        "decision": decision, "reason": reason, "tls_version": "TLSv1.3",
        "http_version": "HTTP/2", "user_agent": "Mozilla/5.0", "error": null})
    .to_string()
}

/// Auth lines as the hash-chained writer puts them: keys sorted.
#[allow(clippy::too_many_arguments)]
fn auth(
    id: &str,
    hours_ago: f64,
    event: &str,
    result: &str,
    reason: &str,
    user: Option<&str>,
    realm: &str,
    ip: &str,
    network: &str,
    method: Option<&str>,
) -> String {
    json!({"time": at(hours_ago), "event": event, "result": result, "reason": reason,
        "user": user, "realm": realm, "client_ip": ip, "network": network, "method": method,
        "request_id": id, "session": null, "host": "portal.kommun.test",
        "seq": 1, "prev": "00", "hash": "11"})
    .to_string()
}

fn anchor(hours_ago: f64) -> String {
    json!({"time": at(hours_ago), "event": "chain_anchor", "result": "info",
        "reason": "new_file", "host": "gw1", "pid": 1, "seq": 1, "prev": "00", "hash": "11"})
    .to_string()
}

const LON: &str = "Lönebesked";
const EXT: &str = "external";
const INT: &str = "internal";

impl Week {
    fn write() -> Week {
        let dir = tempfile::Builder::new()
            .prefix("portvakt-audit-week-")
            .tempdir()
            .expect("tempdir");
        let d = dir.path();
        let lines = |ls: &[String]| ls.iter().map(|l| format!("{l}\n")).collect::<String>();
        gzip(
            &d.join("access.jsonl.2.gz"),
            &lines(&[
                access(
                    "a1",
                    240.0,
                    Some("alice"),
                    "adm",
                    "198.51.100.7",
                    EXT,
                    LON,
                    "allow",
                    "ok",
                    200,
                ),
                access(
                    "a2",
                    236.0,
                    Some("bob"),
                    "adm",
                    "203.0.113.9",
                    EXT,
                    LON,
                    "deny",
                    "missing_group",
                    403,
                ),
            ]),
        );
        std::fs::write(
            d.join("access.jsonl.1"),
            lines(&[
                access(
                    "a3",
                    120.0,
                    Some("alice"),
                    "adm",
                    "198.51.100.7",
                    EXT,
                    LON,
                    "allow",
                    "ok",
                    200,
                ),
                access(
                    "a4",
                    119.0,
                    None,
                    "adm",
                    "203.0.113.9",
                    EXT,
                    "Wiki",
                    "login",
                    "no_session",
                    302,
                ),
            ]),
        )
        .expect("write");
        std::fs::write(
            d.join("access.jsonl"),
            lines(&[
                access(
                    "a5",
                    48.0,
                    Some("alice"),
                    "adm",
                    "10.20.1.5",
                    INT,
                    "Wiki",
                    "allow",
                    "ok",
                    200,
                ),
                // A line cut short by a full disk.
                format!(
                    "{{\"time\":\"{}\",\"request_id\":\"broken\",\"status\":",
                    at(40.0)
                ),
                access(
                    "a6",
                    30.0,
                    Some("bob"),
                    "adm",
                    "10.20.2.2",
                    INT,
                    LON,
                    "closed",
                    "outside_opening_hours",
                    403,
                ),
                access(
                    "a7",
                    2.0,
                    Some("dave"),
                    "ped",
                    "198.51.100.8",
                    EXT,
                    LON,
                    "allow",
                    "ok",
                    200,
                ),
            ]),
        )
        .expect("write");
        gzip(
            &d.join("auth.jsonl.1.gz"),
            &lines(&[
                anchor(250.0),
                auth(
                    "u1",
                    240.1,
                    "login",
                    "success",
                    "ok",
                    Some("alice"),
                    "adm",
                    "198.51.100.7",
                    EXT,
                    Some("password"),
                ),
                auth(
                    "u2",
                    236.1,
                    "login",
                    "failure",
                    "wrong_password",
                    Some("bob"),
                    "adm",
                    "203.0.113.9",
                    EXT,
                    Some("password"),
                ),
                auth(
                    "u3",
                    236.05,
                    "lockout",
                    "info",
                    "too_many_failures",
                    Some("bob"),
                    "adm",
                    "203.0.113.9",
                    EXT,
                    None,
                ),
            ]),
        );
        std::fs::write(
            d.join("auth.jsonl"),
            lines(&[
                anchor(130.0),
                auth(
                    "u4",
                    120.2,
                    "login",
                    "success",
                    "ok",
                    Some("alice"),
                    "adm",
                    "198.51.100.7",
                    EXT,
                    Some("password"),
                ),
                auth(
                    "u5",
                    120.1,
                    "login",
                    "success",
                    "second_factor",
                    Some("alice"),
                    "adm",
                    "198.51.100.7",
                    EXT,
                    Some("totp"),
                ),
                auth(
                    "u6",
                    2.4,
                    "login",
                    "success",
                    "ok",
                    Some("dave"),
                    "ped",
                    "198.51.100.8",
                    EXT,
                    Some("password"),
                ),
                auth(
                    "u7",
                    2.3,
                    "second_factor",
                    "failure",
                    "wrong_code",
                    Some("dave"),
                    "ped",
                    "198.51.100.8",
                    EXT,
                    Some("sms"),
                ),
                auth(
                    "u8",
                    2.2,
                    "login",
                    "success",
                    "second_factor",
                    Some("dave"),
                    "ped",
                    "198.51.100.8",
                    EXT,
                    Some("sms"),
                ),
                auth(
                    "u9",
                    1.0,
                    "ip_block",
                    "info",
                    "too_many_failures",
                    None,
                    "adm",
                    "203.0.113.9",
                    EXT,
                    None,
                ),
            ]),
        )
        .expect("write");
        Week { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_string_lossy().into_owned()
    }

    /// Every file, in a muddled order (the command sorts out rotations).
    fn files(&self) -> Vec<String> {
        [
            "access.jsonl",
            "auth.jsonl.1.gz",
            "access.jsonl.2.gz",
            "auth.jsonl",
            "access.jsonl.1",
        ]
        .iter()
        .map(|n| self.path(n))
        .collect()
    }

    /// `portvakt audit query FILES… ARGS… --json`: the request ids in output order.
    fn query(&self, args: &[&str]) -> Vec<String> {
        let files = self.files();
        let mut all: Vec<&str> = vec!["query"];
        all.extend(files.iter().map(String::as_str));
        all.extend(args);
        all.push("--json");
        audit(&all).ids()
    }

    fn run(&self, command: &str, args: &[&str]) -> Run {
        let files = self.files();
        let mut all: Vec<&str> = vec![command];
        all.extend(files.iter().map(String::as_str));
        all.extend(args);
        audit_status(&all)
    }
}

#[test]
fn an_auditor_asks_who_reached_lonebesked_from_outside_last_week() {
    let week = Week::write();
    let outside = ["--service", LON, "--network", EXT, "--decision", "allow"];
    assert_eq!(week.query(&outside), ["a1", "a3", "a7"]);
    assert_eq!(
        week.query(&with_args(&outside, &["--since", "7d"])),
        ["a3", "a7"]
    );
    assert_eq!(
        week.query(&with_args(&outside, &["--since", "7d", "--until", "24h"])),
        ["a3"]
    );
    assert_eq!(
        week.query(&with_args(&outside, &["--realm", "ped"])),
        ["a7"]
    );
    assert_eq!(week.query(&with_args(&outside, &["--limit", "1"])), ["a1"]);
}

#[test]
fn everything_one_person_did_comes_in_time_order_across_both_logs_and_rotations() {
    let week = Week::write();
    assert_eq!(
        week.query(&["--user", "alice"]),
        ["u1", "a1", "u4", "u5", "a3", "a5"]
    );
    assert_eq!(week.query(&["--user", "dave"]), ["u6", "u7", "u8", "a7"]);
    assert_eq!(
        week.query(&["--user", "alice", "--log", "auth"]),
        ["u1", "u4", "u5"]
    );
    assert_eq!(
        week.query(&["--user", "alice", "--log", "access"]),
        ["a1", "a3", "a5"]
    );
    assert_eq!(
        week.query(&["--user", "alice", "--user", "bob", "--limit", "3"]),
        ["u1", "a1", "u2"]
    );
    assert!(
        week.query(&["--user", "Alice"]).is_empty(),
        "names are matched exactly"
    );
}

#[test]
fn an_address_or_a_network_finds_what_came_from_it() {
    let week = Week::write();
    let attacker = ["u2", "u3", "a2", "a4", "u9"];
    assert_eq!(week.query(&["--ip", "203.0.113.9"]), attacker);
    assert_eq!(week.query(&["--ip", "203.0.113.0/24"]), attacker);
    assert_eq!(week.query(&["--ip", "10.20.0.0/16"]), ["a5", "a6"]);
    assert_eq!(
        week.query(&["--ip", "10.20.0.0/16,198.51.100.8"]),
        ["a5", "a6", "u6", "u7", "u8", "a7"]
    );
    assert_eq!(week.query(&["--ip", "2001:db8::/32"]), Vec::<String>::new());
    assert_eq!(week.query(&["--network", INT]), ["a5", "a6"]);
}

#[test]
fn refusals_lockouts_and_blocks_are_found_by_decision_result_and_event() {
    let week = Week::write();
    assert_eq!(
        week.query(&["--decision", "deny,closed", "--result", "failure"]),
        ["u2", "a2", "a6", "u7"]
    );
    assert_eq!(
        week.query(&["--decision", "deny", "--decision", "closed"]),
        ["a2", "a6"]
    );
    assert_eq!(week.query(&["--result", "failure"]), ["u2", "u7"]);
    assert_eq!(week.query(&["--event", "lockout,ip_block"]), ["u3", "u9"]);
    assert_eq!(
        week.query(&["--event", "second_factor", "--result", "failure"]),
        ["u7"]
    );
    assert_eq!(week.query(&["--host", "wiki.kommun.test"]), ["a4", "a5"]);
    assert_eq!(week.query(&["--service", "Wiki"]), ["a4", "a5"]);
    assert_eq!(week.query(&["--realm", "ped"]), ["u6", "u7", "u8", "a7"]);
    assert_eq!(week.query(&["--request-id", "a5"]), ["a5"]);
}

#[test]
fn periods_are_times_dates_or_how_long_ago() {
    let week = Week::write();
    assert_eq!(
        week.query(&[
            "--log",
            "access",
            "--since",
            &at(50.0),
            "--until",
            &at(25.0)
        ]),
        ["a5", "a6"]
    );
    assert_eq!(
        week.query(&["--since", "3h"]),
        ["u6", "u7", "u8", "a7", "u9"]
    );
    // A date as the end includes that whole day; nothing happened 176–200 h ago.
    let day = &at(200.0)[..10];
    assert_eq!(
        week.query(&["--until", day]),
        ["u1", "a1", "u2", "u3", "a2"]
    );
}

#[test]
fn logs_from_journald_are_read_from_standard_input() {
    let week = Week::write();
    // What `journalctl -o cat` gives for a unit logging both to stdout: the
    // two logs interleaved, and the gateway's own messages among them.
    let live = |name: &str| std::fs::read_to_string(week.path(name)).unwrap_or_default();
    let mut stream = String::from("2026-11-23T10:00:00.000000Z  INFO portvakt: listening\n");
    stream.push_str(&live("auth.jsonl"));
    stream.push_str(&live("access.jsonl"));
    let run = audit_with_stdin(
        &["query", "-", "--user", "dave", "--json"],
        stream.as_bytes(),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.ids(), ["u6", "u7", "u8", "a7"]);
    let run = audit_with_stdin(&["report", "-", "--json"], stream.as_bytes());
    assert_eq!(run.code, 0, "{}", run.stderr);
    let r = run.json();
    assert_eq!(r["totals"]["auth_events"], 6);
    assert_eq!(r["totals"]["requests"], 3);
    assert_eq!(
        r["totals"]["malformed_lines"], 2,
        "the message and the cut line"
    );
    assert!(run.stderr.contains("-:1: not a log line"), "{}", run.stderr);
}

#[test]
fn the_chain_anchor_and_a_damaged_line_do_not_disturb_a_query() {
    let week = Week::write();
    let run = week.run("query", &["--json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let ids = run.ids();
    assert_eq!(
        ids.len(),
        16,
        "7 access + 9 auth lines, no anchors: {ids:?}"
    );
    assert!(!ids.contains(&"broken".to_owned()));
    let damaged = format!("{}:2:", week.path("access.jsonl"));
    assert!(
        run.stderr.contains("skipped 1 malformed line") && run.stderr.contains(&damaged),
        "the damaged line is named with file and line:\n{}",
        run.stderr
    );
    // The lines come out exactly as written.
    let written = std::fs::read_to_string(week.path("access.jsonl")).unwrap_or_default();
    let a5 = written.lines().next().unwrap_or_default();
    assert!(run.stdout.lines().any(|l| l == a5), "{}", run.stdout);
    assert_eq!(
        week.query(&["--event", "chain_anchor"]).len(),
        2,
        "shown when asked for"
    );
}

#[test]
fn the_table_reads_left_to_right_as_who_where_what_and_why() {
    let week = Week::write();
    let run = week.run("query", &["--user", "dave"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let rows: Vec<Vec<&str>> = run
        .stdout
        .lines()
        .map(|l| {
            l.split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect()
        })
        .collect();
    assert_eq!(
        rows[0],
        [
            "TIME",
            "GATEWAY",
            "LOG",
            "USER",
            "CLIENT IP",
            "NETWORK",
            "SERVICE/HOST",
            "WHAT",
            "RESULT",
            "REASON"
        ]
    );
    assert_eq!(
        rows[1][2..],
        [
            "auth",
            "dave",
            "198.51.100.8",
            EXT,
            "portal.kommun.test",
            "login password",
            "success",
            "ok"
        ]
    );
    assert_eq!(
        rows[2][2..],
        [
            "auth",
            "dave",
            "198.51.100.8",
            EXT,
            "portal.kommun.test",
            "second_factor sms",
            "failure",
            "wrong_code"
        ]
    );
    assert_eq!(
        rows[4][2..],
        [
            "access",
            "dave",
            "198.51.100.8",
            EXT,
            LON,
            "GET /",
            "allow 200",
            "ok"
        ]
    );
    assert!(
        rows[4][0].len() == 24 && rows[4][0].ends_with('Z'),
        "{}",
        run.stdout
    );
    assert_eq!(rows[5], ["4 matching lines of 19 read."]);
}

#[test]
fn the_weeks_report_counts_logins_failures_refusals_and_services_exactly() {
    let week = Week::write();
    let run = week.run("report", &["--json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("skipped 1 malformed line"),
        "{}",
        run.stderr
    );
    let r = run.json();
    assert_eq!(
        r["totals"],
        json!({"requests": 7, "refused_requests": 2, "auth_events": 9, "logins_succeeded": 5,
            "logins_failed": 2, "auth_failures": 2, "lockouts": 1, "ip_blocks": 1, "users": 2,
            "client_ips": 5, "malformed_lines": 1})
    );
    assert_eq!(
        r["logins"],
        json!([
            {"method": "password", "network": EXT, "success": 3, "failure": 1},
            {"method": "sms", "network": EXT, "success": 1, "failure": 1},
            {"method": "totp", "network": EXT, "success": 1, "failure": 0},
        ])
    );
    assert_eq!(
        r["failures"],
        json!([
            {"event": "login", "reason": "wrong_password", "count": 1},
            {"event": "second_factor", "reason": "wrong_code", "count": 1},
        ])
    );
    assert_eq!(r["lockouts"], json!([{"name": "bob", "count": 1}]));
    assert_eq!(r["ip_blocks"], json!([{"name": "203.0.113.9", "count": 1}]));
    assert_eq!(
        r["refused_users"],
        json!([
            {"who": "bob", "auth_failures": 1, "refused_requests": 2, "total": 3},
            {"who": "dave", "auth_failures": 1, "refused_requests": 0, "total": 1},
        ])
    );
    assert_eq!(
        r["refused_ips"],
        json!([
            {"who": "203.0.113.9", "auth_failures": 1, "refused_requests": 1, "total": 2},
            {"who": "10.20.2.2", "auth_failures": 0, "refused_requests": 1, "total": 1},
            {"who": "198.51.100.8", "auth_failures": 1, "refused_requests": 0, "total": 1},
        ])
    );
    assert_eq!(
        r["services"],
        json!([
            {"service": LON, "requests": 5, "allowed": 3, "refused": 2, "users": 2},
            {"service": "Wiki", "requests": 2, "allowed": 1, "refused": 0, "users": 1},
        ])
    );
    let files: Vec<(String, u64)> = r["files"]
        .as_array()
        .map(|fs| {
            fs.iter()
                .map(|f| {
                    let path = PathBuf::from(f["path"].as_str().unwrap_or_default());
                    let name = path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    (name, f["lines"].as_u64().unwrap_or(0))
                })
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        files,
        [
            ("access.jsonl.2.gz", 2),
            ("access.jsonl.1", 2),
            ("access.jsonl", 4),
            ("auth.jsonl.1.gz", 4),
            ("auth.jsonl", 7)
        ]
        .map(|(n, c)| (n.to_owned(), c))
    );

    // The last seven days only, the top one of each list.
    let r = week
        .run("report", &["--json", "--since", "7d", "--top", "1"])
        .json();
    assert_eq!(r["totals"]["requests"], 5);
    assert_eq!(r["totals"]["auth_events"], 6);
    assert_eq!(r["totals"]["lockouts"], 0);
    assert_eq!(
        r["refused_users"],
        json!([{"who": "bob", "auth_failures": 0, "refused_requests": 1, "total": 1}])
    );
    assert!(
        r["period"]["since"].is_string() && r["period"]["until"].is_null(),
        "{}",
        r["period"]
    );
}

#[test]
fn the_text_report_is_for_people() {
    let week = Week::write();
    let run = week.run("report", &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let text = run.stdout;
    let has_row = |cells: &[&str]| {
        text.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == cells)
    };
    assert!(
        text.starts_with("portvakt audit report\nPeriod:   every line of the files\n"),
        "{text}"
    );
    assert!(has_row(&["password", EXT, "3", "1"]), "{text}");
    assert!(has_row(&["bob", "1", "2", "3"]), "{text}");
    assert!(has_row(&[LON, "5", "3", "2", "2"]), "{text}");
    assert!(
        has_row(&["Lockouts:", "1", "(top", "10", "users)"]),
        "{text}"
    );
}

#[test]
fn mistakes_are_named_and_exit_with_a_status_scripts_can_tell_apart() {
    let week = Week::write();
    let bad_net = week.run("query", &["--ip", "10.20.0.0/33"]);
    assert_eq!(bad_net.code, 2, "{}", bad_net.stderr);
    assert!(
        bad_net
            .stderr
            .contains("neither an IP address nor a network"),
        "{}",
        bad_net.stderr
    );
    let bad_time = week.run("report", &["--since", "last tuesday"]);
    assert_eq!(bad_time.code, 2);
    assert!(
        bad_time.stderr.contains("not a time"),
        "{}",
        bad_time.stderr
    );
    let contradiction = week.run("query", &["--log", "auth", "--decision", "deny"]);
    assert_eq!(contradiction.code, 2);
    assert!(
        contradiction
            .stderr
            .contains("--decision filters access lines"),
        "{}",
        contradiction.stderr
    );
    let nothing = audit_status(&["query", "--user", "alice"]);
    assert_eq!(nothing.code, 2);
    assert!(
        nothing.stderr.contains("no log files"),
        "{}",
        nothing.stderr
    );

    let missing = week.path("auth.jsonl.7.gz");
    let run = audit_status(&["report", &week.path("auth.jsonl"), &missing]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!("{missing}: cannot open")),
        "{}",
        run.stderr
    );
    assert!(
        run.stdout.is_empty(),
        "nothing half-done on stdout: {}",
        run.stdout
    );

    let unknown = week.run("query", &["--decision", "denied"]);
    assert_eq!(unknown.code, 0);
    assert!(
        unknown.stderr.contains("`denied` is not a decision"),
        "{}",
        unknown.stderr
    );
}
