use super::*;
use crate::audit::logread::{group, Chain};
use serde_json::{json, Value};

fn access(user: Option<&str>, ip: &str, service: Option<&str>, decision: &str) -> Value {
    json!({
        "time": "2026-11-23T10:00:00.000Z", "request_id": "r", "client_ip": ip, "peer_ip": ip,
        "network": "internal", "host": "h", "method": "GET", "path": "/", "status": 200,
        "bytes": 1, "duration_ms": 1.0, "service": service, "upstream": null,
        "upstream_status": null, "user": user, "realm": "adm", "auth_level": 1,
        "decision": decision, "reason": "x", "tls_version": "TLSv1.3",
        "http_version": "HTTP/2", "user_agent": "ua", "error": null
    })
}

pub(super) fn auth(
    event: &str,
    result: &str,
    reason: &str,
    user: Option<&str>,
    ip: &str,
    network: &str,
    method: Option<&str>,
) -> Value {
    json!({
        "time": "2026-11-23T09:00:00.000Z", "event": event, "result": result, "reason": reason,
        "user": user, "realm": "adm", "client_ip": ip, "network": network, "method": method,
        "request_id": "r", "session": null, "host": "portal", "seq": 1, "prev": "a", "hash": "b"
    })
}

fn summary_of(lines: &[Value], period: Period, top: usize) -> Summary {
    summary_priced(lines, period, top, None)
}

/// The report of `lines`, SMS priced at `price`.
pub(super) fn summary_priced(
    lines: &[Value],
    period: Period,
    top: usize,
    price: Option<&Price>,
) -> Summary {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mixed.jsonl");
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&path, text).unwrap();
    let streams = group(vec![path])
        .into_iter()
        .map(|c: Chain| Stream::open(c).unwrap())
        .collect();
    let mut problems = Problems::default();
    summarise(streams, period, None, top, price, &mut problems).unwrap()
}

fn week() -> Vec<Value> {
    let anchor = json!({"time": "2026-11-23T00:00:00.000Z", "event": "chain_anchor",
        "result": "info", "reason": "", "seq": 0, "prev": "", "hash": "h"});
    vec![
        anchor,
        auth(
            "login",
            "success",
            "ok",
            Some("alice"),
            "10.0.0.1",
            "internal",
            Some("password"),
        ),
        auth(
            "login",
            "failure",
            "wrong_password",
            Some("alice"),
            "10.0.0.1",
            "internal",
            Some("password"),
        ),
        auth(
            "login",
            "success",
            "ok",
            Some("bob"),
            "192.0.2.7",
            "external",
            Some("password"),
        ),
        auth(
            "second_factor",
            "failure",
            "wrong_code",
            Some("bob"),
            "192.0.2.7",
            "external",
            Some("sms"),
        ),
        auth(
            "login",
            "success",
            "second_factor",
            Some("bob"),
            "192.0.2.7",
            "external",
            Some("sms"),
        ),
        auth(
            "login",
            "failure",
            "unknown_user",
            Some("mallory"),
            "203.0.113.5",
            "external",
            Some("password"),
        ),
        auth(
            "login",
            "failure",
            "unknown_user",
            Some("mallory"),
            "203.0.113.5",
            "external",
            Some("password"),
        ),
        auth(
            "lockout",
            "info",
            "too_many_failures",
            Some("mallory"),
            "203.0.113.5",
            "external",
            None,
        ),
        auth(
            "ip_block",
            "info",
            "too_many_failures",
            None,
            "203.0.113.5",
            "external",
            None,
        ),
        auth(
            "code_sent",
            "failure",
            "cooldown",
            Some("bob"),
            "192.0.2.7",
            "external",
            Some("sms"),
        ),
        auth(
            "logout",
            "success",
            "user",
            Some("alice"),
            "10.0.0.1",
            "internal",
            None,
        ),
        access(Some("alice"), "10.0.0.1", Some("Lönebesked"), "allow"),
        access(Some("alice"), "10.0.0.1", Some("Lönebesked"), "allow"),
        access(Some("bob"), "192.0.2.7", Some("Lönebesked"), "deny"),
        access(Some("bob"), "192.0.2.7", Some("Wiki"), "allow"),
        access(None, "203.0.113.5", Some("Wiki"), "login"),
        access(None, "203.0.113.5", Some("Wiki"), "closed"),
        access(None, "203.0.113.5", None, "not_found"),
    ]
}

#[test]
fn the_totals_count_every_line_once_and_leave_out_the_chain_anchor() {
    let s = summary_of(&week(), Period::default(), 10);
    assert_eq!(
        s.totals,
        Totals {
            requests: 7,
            refused_requests: 2,
            auth_events: 11,
            logins_succeeded: 3,
            logins_failed: 4,
            auth_failures: 5,
            lockouts: 1,
            ip_blocks: 1,
            users: 2,
            client_ips: 3,
            malformed_lines: 0,
        }
    );
    assert_eq!(s.period.first.as_deref(), Some("2026-11-23T09:00:00.000Z"));
    assert_eq!(s.period.last.as_deref(), Some("2026-11-23T10:00:00.000Z"));
    assert_eq!(s.files.len(), 1);
    assert_eq!(s.files[0].lines, 19);
}

#[test]
fn logins_are_counted_by_method_and_location() {
    let s = summary_of(&week(), Period::default(), 10);
    let row = |m: &str, n: &str, success, failure| LoginRow {
        method: m.into(),
        network: n.into(),
        success,
        failure,
    };
    assert_eq!(
        s.logins,
        vec![
            row("password", "external", 1, 2),
            row("password", "internal", 1, 1),
            row("sms", "external", 1, 1),
        ]
    );
}

#[test]
fn failures_lockouts_and_refusals_name_who_and_where() {
    let s = summary_of(&week(), Period::default(), 10);
    let f = |e: &str, r: &str, count| FailureRow {
        event: e.into(),
        reason: r.into(),
        count,
    };
    assert_eq!(
        s.failures,
        vec![
            f("login", "unknown_user", 2),
            f("code_sent", "cooldown", 1),
            f("login", "wrong_password", 1),
            f("second_factor", "wrong_code", 1),
        ]
    );
    assert_eq!(
        s.lockouts,
        vec![CountRow {
            name: "mallory".into(),
            count: 1
        }]
    );
    assert_eq!(
        s.ip_blocks,
        vec![CountRow {
            name: "203.0.113.5".into(),
            count: 1
        }]
    );
    let r = |who: &str, a, q| RefusedRow {
        who: who.into(),
        auth_failures: a,
        refused_requests: q,
        total: a + q,
    };
    assert_eq!(
        s.refused_users,
        vec![r("bob", 2, 1), r("mallory", 2, 0), r("alice", 1, 0)]
    );
    assert_eq!(
        s.refused_ips,
        vec![
            r("192.0.2.7", 2, 1),
            r("203.0.113.5", 2, 1),
            r("10.0.0.1", 1, 0)
        ]
    );
}

#[test]
fn services_count_requests_refusals_and_distinct_users() {
    let s = summary_of(&week(), Period::default(), 10);
    let v = |name: &str, requests, allowed, refused, users| ServiceRow {
        service: name.into(),
        requests,
        allowed,
        refused,
        users,
    };
    assert_eq!(
        s.services,
        vec![v("Lönebesked", 3, 2, 1, 1), v("Wiki", 3, 1, 1, 1)]
    );
    let d: Vec<(&str, u64)> = s
        .decisions
        .iter()
        .map(|c| (c.name.as_str(), c.count))
        .collect();
    assert_eq!(
        d,
        [
            ("allow", 3),
            ("closed", 1),
            ("deny", 1),
            ("login", 1),
            ("not_found", 1)
        ]
    );
}

#[test]
fn top_trims_the_top_lists_only() {
    let s = summary_of(&week(), Period::default(), 1);
    assert_eq!(s.refused_users.len(), 1);
    assert_eq!(s.refused_users[0].who, "bob");
    assert_eq!(s.refused_ips.len(), 1);
    assert_eq!(s.failures.len(), 4, "every reason is shown");
    assert_eq!(s.services.len(), 2);
}

#[test]
fn the_period_leaves_out_lines_outside_it() {
    let ms = |s: &str| crate::audit::logread::time_ms(s).unwrap();
    let access_hour = Period {
        since: Some(ms("2026-11-23T09:30:00Z")),
        until: None,
    };
    let s = summary_of(&week(), access_hour, 10);
    assert_eq!(s.totals.requests, 7);
    assert_eq!(s.totals.auth_events, 0);
    assert_eq!(s.period.since.as_deref(), Some("2026-11-23T09:30:00.000Z"));
    let auth_hour = Period {
        since: None,
        until: Some(ms("2026-11-23T09:30:00Z")),
    };
    let s = summary_of(&week(), auth_hour, 10);
    assert_eq!((s.totals.requests, s.totals.auth_events), (0, 11));
}

#[test]
fn the_text_report_has_every_section() {
    let s = summary_of(&week(), Period::default(), 10);
    let mut out = Vec::new();
    render(&s, 10, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    for heading in [
        "Period:   every line of the files",
        "Seen:     2026-11-23T09:00:00.000Z … 2026-11-23T10:00:00.000Z",
        "Totals",
        "Logins by method and location",
        "Failures by reason",
        "Lockouts: 1 (top 10 users)",
        "IP blocks: 1 (top 10 addresses)",
        "Top 10 refused users",
        "Top 10 refused client IPs",
        "Services used",
        "Access decisions",
        "Auth events",
    ] {
        assert!(text.contains(heading), "{heading} missing:\n{text}");
    }
    assert!(
        text.contains("\n  requests           7  access-log lines\n"),
        "{text}"
    );
    assert!(
        text.contains("\npassword  external        1        2\n"),
        "{text}"
    );
    assert!(
        text.contains("\nLönebesked         3        2        1      1\n"),
        "{text}"
    );
}

#[test]
fn an_empty_period_reports_none_rather_than_failing() {
    let s = summary_of(&[], Period::default(), 10);
    let mut out = Vec::new();
    render(&s, 10, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("Seen:     - … -"), "{text}");
    assert!(text.contains("Services used\n(none)"), "{text}");
}

/// A cluster's report counts each login once, on the gateway that decided
/// it, and shows each gateway's share.
#[test]
fn each_gateways_share_is_shown_and_every_login_counted_once() {
    let on = |mut v: Value, gw: &str| {
        v["gateway"] = json!(gw);
        v
    };
    let lines = vec![
        on(
            auth(
                "login",
                "success",
                "ok",
                Some("alice"),
                "10.0.0.1",
                "internal",
                Some("password"),
            ),
            "gw-a",
        ),
        on(
            auth(
                "login",
                "success",
                "ok",
                Some("bob"),
                "10.0.0.1",
                "internal",
                Some("password"),
            ),
            "gw-b",
        ),
        on(
            auth(
                "login",
                "failure",
                "ok",
                Some("bob"),
                "10.0.0.1",
                "internal",
                Some("password"),
            ),
            "gw-b",
        ),
        // alice's session used on both gateways: requests, not logins.
        on(
            access(Some("alice"), "10.0.0.1", Some("Wiki"), "allow"),
            "gw-a",
        ),
        on(
            access(Some("alice"), "10.0.0.1", Some("Wiki"), "allow"),
            "gw-b",
        ),
        on(
            access(Some("alice"), "10.0.0.1", Some("Wiki"), "allow"),
            "gw-b",
        ),
        access(None, "10.0.0.9", None, "login"),
    ];
    let s = summary_of(&lines, Period::default(), 10);
    assert_eq!(s.totals.logins_succeeded, 2);
    assert_eq!(s.totals.logins_failed, 1);
    assert_eq!(s.totals.users, 2);
    let shares: Vec<(&str, u64, u64, u64, u64)> = s
        .gateways
        .iter()
        .map(|g| {
            (
                g.gateway.as_str(),
                g.requests,
                g.auth_events,
                g.logins_succeeded,
                g.logins_failed,
            )
        })
        .collect();
    assert_eq!(
        shares,
        [
            ("-", 1, 0, 0, 0),
            ("gw-a", 1, 1, 1, 0),
            ("gw-b", 2, 2, 1, 1)
        ]
    );
    let mut out = Vec::new();
    render(&s, 10, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("\nGateways\nGATEWAY"), "{text}");
    assert!(text.contains("\ngw-b            2            2"), "{text}");
}
