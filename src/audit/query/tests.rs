use super::*;
use crate::audit::logread::Chain;
use clap::Parser;
use serde_json::{json, Value};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    q: QueryArgs,
}

fn args(a: &[&str]) -> QueryArgs {
    Cli::try_parse_from(std::iter::once("query").chain(a.iter().copied()))
        .unwrap_or_else(|e| panic!("{a:?}: {e}"))
        .q
}

fn refused(a: &[&str]) -> String {
    match Cli::try_parse_from(std::iter::once("query").chain(a.iter().copied())) {
        Ok(c) => match Filter::new(&c.q) {
            Ok(_) => panic!("{a:?} was accepted"),
            Err(e) => e.to_string(),
        },
        Err(e) => e.to_string(),
    }
}

fn access(
    time: &str,
    user: Option<&str>,
    ip: &str,
    network: &str,
    service: Option<&str>,
    decision: &str,
) -> Value {
    json!({
        "time": time, "request_id": "r", "client_ip": ip, "peer_ip": ip, "network": network,
        "host": "lon.example.org", "method": "GET", "path": "/", "status": 200, "bytes": 1,
        "duration_ms": 1.0, "service": service, "upstream": null, "upstream_status": null,
        "user": user, "realm": user.map(|_| "adm"), "auth_level": 1, "decision": decision,
        "reason": "ok", "tls_version": "TLSv1.3", "http_version": "HTTP/2", "user_agent": "ua",
        "error": null
    })
}

fn auth(
    time: &str,
    event: &str,
    result: &str,
    user: Option<&str>,
    ip: &str,
    network: &str,
) -> Value {
    json!({
        "time": time, "event": event, "result": result, "reason": "wrong_password", "user": user,
        "realm": "adm", "client_ip": ip, "network": network, "method": "password",
        "request_id": "r", "session": null, "host": "portal.example.org", "seq": 3,
        "prev": "aa", "hash": "bb"
    })
}

fn matches(a: &[&str], line: &Value) -> bool {
    let f = Filter::new(&args(a)).unwrap();
    let text = line.to_string();
    let r = parse(&text).unwrap();
    let full = f.matches(&r);
    // Whatever the full filter accepts, the quick text check must let through.
    assert!(
        !full || f.prefilter.may_match(&text),
        "prefilter dropped a match: {a:?} {text}"
    );
    full
}

const T: &str = "2026-11-23T10:00:00.000Z";

#[test]
fn a_user_filter_matches_both_logs_and_only_that_user() {
    let a = access(
        T,
        Some("alice"),
        "10.20.3.4",
        "internal",
        Some("Wiki"),
        "allow",
    );
    let u = auth(
        T,
        "login",
        "failure",
        Some("alice"),
        "10.20.3.4",
        "internal",
    );
    assert!(matches(&["--user", "alice"], &a));
    assert!(matches(&["--user", "alice"], &u));
    assert!(!matches(&["--user", "alicia"], &a));
    assert!(!matches(&["--user", "Alice"], &a), "names match exactly");
    assert!(
        matches(&["--user", "bob", "--user", "alice"], &a),
        "one of several"
    );
    let anonymous = access(T, None, "10.20.3.4", "internal", Some("Wiki"), "login");
    assert!(!matches(&["--user", "alice"], &anonymous));
}

#[test]
fn addresses_and_networks_match_the_client_ip() {
    let a = access(
        T,
        Some("alice"),
        "10.20.3.4",
        "internal",
        Some("Wiki"),
        "allow",
    );
    assert!(matches(&["--ip", "10.20.3.4"], &a));
    assert!(matches(&["--ip", "10.20.0.0/16"], &a));
    assert!(
        matches(&["--ip", "10.20.3.4/16"], &a),
        "host bits are ignored"
    );
    assert!(
        matches(&["--ip", "10.0.0.0/9"], &a),
        "prefix not on an octet boundary"
    );
    assert!(matches(&["--ip", "192.0.2.0/24,10.20.3.0/24"], &a));
    assert!(!matches(&["--ip", "10.21.0.0/16"], &a));
    assert!(!matches(&["--ip", "10.20.3.40"], &a));
    assert!(!matches(&["--ip", "2001:db8::/32"], &a));
    let v6 = auth(
        T,
        "login",
        "failure",
        Some("bob"),
        "2001:db8::7",
        "external",
    );
    assert!(matches(&["--ip", "2001:db8::/32"], &v6));
    assert!(matches(&["--ip", "2001:db8::7"], &v6));
    assert!(!matches(&["--ip", "2001:db8::8"], &v6));
}

#[test]
fn bad_addresses_and_times_are_refused_before_reading() {
    assert!(refused(&["--ip", "10.20.300.1"]).contains("neither an IP address nor a network"));
    assert!(refused(&["--ip", "10.20.0.0/33"]).contains("neither"));
    assert!(refused(&["--since", "last tuesday"]).contains("not a time"));
    assert!(refused(&["--result", "failed"]).contains("failed"));
    assert!(refused(&["--limit", "0"]).contains("0"));
    assert!(refused(&["--log", "both"]).contains("both"));
    assert!(refused(&["--since", "2026-11-23", "--until", "2026-11-22"]).contains("empty"));
}

#[test]
fn a_filter_for_one_log_leaves_out_the_other_log() {
    let a = access(
        T,
        Some("alice"),
        "10.20.3.4",
        "internal",
        Some("Lönebesked"),
        "deny",
    );
    let u = auth(
        T,
        "login",
        "failure",
        Some("alice"),
        "10.20.3.4",
        "internal",
    );
    assert!(matches(&["--service", "Lönebesked"], &a));
    assert!(
        !matches(&["--service", "Lönebesked"], &u),
        "auth lines have no service"
    );
    assert!(matches(&["--decision", "deny"], &a));
    assert!(!matches(&["--decision", "deny"], &u));
    assert!(matches(&["--result", "failure"], &u));
    assert!(!matches(&["--result", "failure"], &a));
    // Each log by its own filter: every refusal in both.
    assert!(matches(&["--decision", "deny", "--result", "failure"], &a));
    assert!(matches(&["--decision", "deny", "--result", "failure"], &u));
    assert!(!matches(
        &["--decision", "allow", "--result", "success"],
        &a
    ));
    assert!(!matches(
        &["--decision", "allow", "--result", "success"],
        &u
    ));
    assert!(matches(&["--event", "login,lockout"], &u));
    assert!(!matches(&["--event", "logout"], &u));
}

#[test]
fn a_log_filter_that_contradicts_a_flag_is_an_error() {
    assert_eq!(
        refused(&["--log", "auth", "--service", "Wiki"]),
        "--service filters access lines, but --log auth leaves only auth lines"
    );
    assert_eq!(
        refused(&["--log", "access", "--result", "failure"]),
        "--result filters auth lines, but --log access leaves only access lines"
    );
    let a = access(
        T,
        Some("alice"),
        "10.20.3.4",
        "internal",
        Some("Wiki"),
        "allow",
    );
    let u = auth(
        T,
        "login",
        "failure",
        Some("alice"),
        "10.20.3.4",
        "internal",
    );
    assert!(matches(&["--log", "access"], &a));
    assert!(!matches(&["--log", "access"], &u));
    assert!(matches(&["--log", "auth"], &u));
}

#[test]
fn a_request_id_joins_the_access_line_and_its_auth_events() {
    let a = access(
        T,
        Some("alice"),
        "10.0.0.1",
        "internal",
        Some("Wiki"),
        "allow",
    );
    let u = auth(T, "login", "success", Some("alice"), "10.0.0.1", "internal");
    assert!(matches(&["--request-id", "r"], &a));
    assert!(matches(&["--request-id", "r"], &u));
    assert!(!matches(&["--request-id", "r2"], &a));
}

#[test]
fn network_realm_and_host_filters() {
    let a = access(
        T,
        Some("alice"),
        "192.0.2.1",
        "external",
        Some("Wiki"),
        "allow",
    );
    assert!(matches(&["--network", "external"], &a));
    assert!(!matches(&["--network", "internal"], &a));
    assert!(matches(&["--realm", "adm"], &a));
    assert!(!matches(&["--realm", "ped"], &a));
    assert!(
        matches(&["--host", "LON.example.org"], &a),
        "host names ignore case"
    );
    let mut with_port = a.clone();
    with_port["host"] = json!("lon.example.org:8443");
    assert!(matches(&["--host", "lon.example.org"], &with_port));
    assert!(!matches(&["--host", "example.org"], &a));
}

#[test]
fn the_period_is_half_open() {
    let at = |t: &str| {
        access(
            t,
            Some("alice"),
            "10.0.0.1",
            "internal",
            Some("Wiki"),
            "allow",
        )
    };
    let day = ["--since", "2026-11-23", "--until", "2026-11-23"];
    assert!(matches(&day, &at("2026-11-23T00:00:00.000Z")));
    assert!(matches(&day, &at("2026-11-23T23:59:59.999Z")));
    assert!(!matches(&day, &at("2026-11-24T00:00:00.000Z")));
    assert!(!matches(&day, &at("2026-11-22T23:59:59.999Z")));
    let hour = [
        "--since",
        "2026-11-23T10:00:00Z",
        "--until",
        "2026-11-23T12:00:00+01:00",
    ];
    assert!(matches(&hour, &at("2026-11-23T10:00:00.000Z")));
    assert!(matches(&hour, &at("2026-11-23T10:59:59.999Z")));
    assert!(
        !matches(&hour, &at("2026-11-23T11:00:00.000Z")),
        "12:00+01:00 is 11:00Z"
    );
}

#[test]
fn the_chain_anchor_is_hidden_unless_asked_for() {
    let anchor = json!({"time": T, "event": "chain_anchor", "result": "info", "reason": "",
        "seq": 0, "prev": "", "hash": "ab"});
    assert!(!matches(&[], &anchor));
    assert!(!matches(&["--log", "auth"], &anchor));
    assert!(matches(&["--event", "chain_anchor"], &anchor));
}

#[test]
fn the_quick_check_lets_escaped_spellings_through() {
    let f = Filter::new(&args(&["--user", "alice"])).unwrap();
    // Equal after JSON decoding, but not as text: must go to the parser.
    let escaped = r#"{"time":"2026-11-23T10:00:00.000Z","event":"login","result":"success","user":"al\u0069ce"}"#;
    assert!(f.prefilter.may_match(escaped));
    assert!(f.matches(&parse(escaped).unwrap()));
    let other =
        r#"{"time":"2026-11-23T10:00:00.000Z","event":"login","result":"success","user":"bob"}"#;
    assert!(!f.prefilter.may_match(other));
    assert!(Filter::new(&args(&[])).unwrap().prefilter.may_match(other));
}

fn write(dir: &std::path::Path, name: &str, lines: &[String]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

fn run_query(a: &[&str], files: &[&std::path::Path]) -> (String, Outcome, Problems) {
    let q = args(a);
    let f = Filter::new(&q).unwrap();
    let chains = crate::audit::logread::group(files.iter().map(|p| p.to_path_buf()).collect());
    let streams = chains
        .into_iter()
        .map(|c: Chain| Stream::open(c).unwrap())
        .collect();
    let mut out = Vec::new();
    let mut problems = Problems::default();
    let outcome = query(&q, &f, streams, &mut out, &mut problems).unwrap();
    (String::from_utf8(out).unwrap(), outcome, problems)
}

#[test]
fn logs_are_merged_in_time_order_and_json_lines_come_out_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let a = [
        access(
            "2026-11-23T10:00:01.000Z",
            Some("alice"),
            "10.0.0.1",
            "internal",
            Some("Wiki"),
            "allow",
        ),
        access(
            "2026-11-23T10:00:03.000Z",
            Some("alice"),
            "10.0.0.1",
            "internal",
            Some("Wiki"),
            "allow",
        ),
    ]
    .map(|v| v.to_string());
    let u = [
        auth(
            "2026-11-23T10:00:00.000Z",
            "login",
            "success",
            Some("alice"),
            "10.0.0.1",
            "internal",
        ),
        auth(
            "2026-11-23T10:00:02.000Z",
            "logout",
            "success",
            Some("alice"),
            "10.0.0.1",
            "internal",
        ),
    ]
    .map(|v| v.to_string());
    let af = write(dir.path(), "access.jsonl", &a);
    let uf = write(dir.path(), "auth.jsonl", &u);
    let (out, outcome, _) = run_query(&["--json"], &[&af, &uf]);
    let want = [&u[0], &a[0], &u[1], &a[1]]
        .map(|s| format!("{s}\n"))
        .concat();
    assert_eq!(out, want);
    assert_eq!(
        outcome,
        Outcome {
            read: 4,
            matched: 4,
            limited: false
        }
    );

    let (out, outcome, _) = run_query(&["--json", "--limit", "3"], &[&af, &uf]);
    assert_eq!(out.lines().count(), 3);
    assert!(outcome.limited);
}

#[test]
fn the_table_shows_who_where_what_and_why() {
    let dir = tempfile::tempdir().unwrap();
    let mut evil = auth(
        T,
        "login",
        "failure",
        Some("x\u{1b}[2Jy"),
        "192.0.2.9",
        "external",
    );
    evil["reason"] = json!("unknown_user");
    let lines = [
        access(
            T,
            Some("alice"),
            "10.20.3.4",
            "internal",
            Some("Lönebesked"),
            "deny",
        )
        .to_string(),
        evil.to_string(),
    ];
    let f = write(dir.path(), "mixed.jsonl", &lines);
    let (out, _, _) = run_query(&[], &[&f]);
    let rows: Vec<&str> = out.lines().collect();
    assert_eq!(rows.len(), 4, "{out}");
    fn cells(r: &str) -> Vec<&str> {
        r.split("  ")
            .filter(|c| !c.is_empty())
            .map(str::trim)
            .collect()
    }
    assert_eq!(
        cells(rows[0]),
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
        cells(rows[1]),
        [
            T,
            "-",
            "access",
            "alice",
            "10.20.3.4",
            "internal",
            "Lönebesked",
            "GET /",
            "deny 200",
            "ok"
        ]
    );
    assert_eq!(
        cells(rows[2]),
        [
            T,
            "-",
            "auth",
            "x\\u{1b}[2Jy",
            "192.0.2.9",
            "external",
            "portal.example.org",
            "login password",
            "failure",
            "unknown_user"
        ]
    );
    assert_eq!(rows[3], "2 matching lines of 2 read.");
    let (out, _, _) = run_query(&["--user", "nobody"], &[&f]);
    assert_eq!(out, "No matching lines of 2 read.\n");
}

#[test]
fn malformed_lines_are_counted_and_named_but_do_not_stop_the_query() {
    let dir = tempfile::tempdir().unwrap();
    let lines = [
        access(
            T,
            Some("alice"),
            "10.0.0.1",
            "internal",
            Some("Wiki"),
            "allow",
        )
        .to_string(),
        "{\"time\":\"2026-11-23T10:00:00.000Z\",\"user\":\"alice\"".to_owned(),
        "{\"time\":\"2026-11-23T10:00:00.000Z\",\"user\":\"alice\"}".to_owned(),
        access(
            T,
            Some("alice"),
            "10.0.0.1",
            "internal",
            Some("Wiki"),
            "allow",
        )
        .to_string(),
    ];
    let f = write(dir.path(), "access.jsonl", &lines);
    let (out, outcome, problems) = run_query(&["--user", "alice", "--json"], &[&f]);
    assert_eq!(out.lines().count(), 2);
    assert_eq!(outcome.read, 4);
    assert_eq!(problems.malformed, 2);
    let text = problems.describe("q");
    assert!(text.contains("access.jsonl:2: not a log line"), "{text}");
    assert!(
        text.contains("access.jsonl:3: neither an access line"),
        "{text}"
    );
}

#[test]
fn unknown_values_earn_a_hint_when_nothing_matched() {
    let h = hints(&args(&["--decision", "denied,deny", "--event", "signin"]));
    assert_eq!(h.len(), 2, "{h:?}");
    assert!(h[0].starts_with("`denied` is not a decision"), "{h:?}");
    assert!(h[1].starts_with("`signin` is not an event"), "{h:?}");
}

/// Two gateways writing to one directory: their access and auth logs are
/// four files; a query over the directory reads them as one cluster, in
/// time order, with the gateway named on every row.
#[test]
fn a_clusters_logs_in_one_directory_merge_in_time_order_with_the_gateway_shown() {
    let dir = tempfile::tempdir().unwrap();
    let at = |s: u32| format!("2026-11-23T10:00:{s:02}.000Z");
    let on = |mut v: Value, gw: &str| {
        v["gateway"] = json!(gw);
        v.to_string()
    };
    let login = |s, gw| {
        on(
            auth(
                &at(s),
                "login",
                "success",
                Some("alice"),
                "10.0.0.1",
                "internal",
            ),
            gw,
        )
    };
    let visit = |s, gw| {
        on(
            access(
                &at(s),
                Some("alice"),
                "10.0.0.1",
                "internal",
                Some("Wiki"),
                "allow",
            ),
            gw,
        )
    };
    write(
        dir.path(),
        "auth-gw-a.jsonl",
        &[login(1, "gw-a"), login(7, "gw-a")],
    );
    write(
        dir.path(),
        "access-gw-a.jsonl",
        &[visit(2, "gw-a"), visit(8, "gw-a")],
    );
    write(dir.path(), "auth-gw-b.jsonl", &[login(4, "gw-b")]);
    write(
        dir.path(),
        "access-gw-b.jsonl",
        &[visit(5, "gw-b"), visit(9, "gw-b")],
    );
    // A chain head beside them is not a log line.
    std::fs::write(
        dir.path().join("auth-gw-a.head"),
        r#"{"seq":2,"hash":"ab","gateway":"gw-a"}"#,
    )
    .unwrap();
    let q = args(&[dir.path().to_str().unwrap(), "--user", "alice"]);
    let f = Filter::new(&q).unwrap();
    let streams = q.inputs.open_streams("test").unwrap();
    assert_eq!(streams.len(), 4, "four logs, the head left out");
    let mut out = Vec::new();
    let mut problems = Problems::default();
    let outcome = query(&q, &f, streams, &mut out, &mut problems).unwrap();
    assert_eq!(problems.malformed, 0);
    assert_eq!(outcome.matched, 7);
    let text = String::from_utf8(out).unwrap();
    let rows: Vec<(String, String)> = text
        .lines()
        .skip(1)
        .take(7)
        .map(|r| {
            let c: Vec<&str> = r.split_whitespace().collect();
            (c[0].to_owned(), c[1].to_owned())
        })
        .collect();
    let want: Vec<(String, String)> = [
        (1, "gw-a"),
        (2, "gw-a"),
        (4, "gw-b"),
        (5, "gw-b"),
        (7, "gw-a"),
        (8, "gw-a"),
        (9, "gw-b"),
    ]
    .iter()
    .map(|(s, g)| (at(*s), g.to_string()))
    .collect();
    assert_eq!(rows, want, "{text}");

    let (out, outcome, _) = run_query(
        &["--gateway", "gw-b"],
        &[
            &dir.path().join("auth-gw-a.jsonl"),
            &dir.path().join("auth-gw-b.jsonl"),
            &dir.path().join("access-gw-b.jsonl"),
        ],
    );
    assert_eq!(outcome.matched, 3, "{out}");
    assert!(!out.contains("gw-a"), "{out}");
}
