//! The SMS cost and method adoption figures on a generated log with known
//! answers: five people, their logins inside and outside, the codes sent to
//! them, and what the report must say about each.

use super::tests::{auth, summary_priced};
use super::*;
use crate::notify::config::{Amount, Currency};
use serde_json::{json, Value};

fn sek(amount: &str) -> Price {
    Price {
        per_message: Amount::parse(amount).unwrap(),
        currency: Currency::parse("SEK").unwrap(),
    }
}

const INSIDE: &str = "10.0.0.1";
const OUTSIDE: &str = "192.0.2.7";

/// One completed login: the password and, from outside, the second factor
/// (with the code sent first for SMS and e-mail).
fn login(user: &str, network: &str, second: Option<&str>) -> Vec<Value> {
    let ip = if network == "internal" {
        INSIDE
    } else {
        OUTSIDE
    };
    let u = Some(user);
    let mut lines = vec![auth(
        "login",
        "success",
        "ok",
        u,
        ip,
        network,
        Some("password"),
    )];
    if let Some(m) = second {
        if m == "sms" || m == "email" {
            lines.push(auth(
                "code_sent",
                "success",
                "sent",
                u,
                ip,
                network,
                Some(m),
            ));
        }
        lines.push(auth(
            "login",
            "success",
            "second_factor",
            u,
            ip,
            network,
            Some(m),
        ));
    }
    lines
}

fn times(n: usize, lines: Vec<Value>) -> Vec<Value> {
    (0..n).flat_map(|_| lines.clone()).collect()
}

/// alice: twice at the office, three times from home by SMS (one code
/// resent), once by her authenticator app. bob: once by SMS; one SMS the
/// provider refused, one asked for too soon, and one confirming his new
/// number. carol: once at the office, twice by e-mail. dave: sent an SMS,
/// typed it wrong, never got in. erin: three times by SMS, like alice.
fn month() -> Vec<Value> {
    let mut lines = Vec::new();
    lines.extend(times(2, login("alice", "internal", None)));
    lines.extend(times(3, login("alice", "external", Some("sms"))));
    lines.push(auth(
        "code_sent",
        "success",
        "sent",
        Some("alice"),
        OUTSIDE,
        "external",
        Some("sms"),
    ));
    lines.extend(login("alice", "external", Some("totp")));
    lines.extend(login("bob", "external", Some("sms")));
    for (result, reason, network) in [
        ("failure", "delivery_failed", "external"),
        ("failure", "cooldown", "external"),
        ("success", "enrolment", "internal"),
    ] {
        lines.push(auth(
            "code_sent",
            result,
            reason,
            Some("bob"),
            OUTSIDE,
            network,
            Some("sms"),
        ));
    }
    lines.extend(login("carol", "internal", None));
    lines.extend(times(2, login("carol", "external", Some("email"))));
    lines.push(auth(
        "login",
        "failure",
        "wrong_password",
        Some("dave"),
        OUTSIDE,
        "external",
        Some("password"),
    ));
    lines.push(auth(
        "code_sent",
        "success",
        "sent",
        Some("dave"),
        OUTSIDE,
        "external",
        Some("sms"),
    ));
    lines.push(auth(
        "second_factor",
        "failure",
        "wrong_code",
        Some("dave"),
        OUTSIDE,
        "external",
        Some("sms"),
    ));
    lines.extend(times(3, login("erin", "external", Some("sms"))));
    lines
}

#[test]
fn active_users_are_those_who_got_in_and_each_counts_for_every_method_used() {
    let s = summary_priced(&month(), Period::default(), 10, None);
    assert_eq!(s.methods.active_users, 4, "dave never got in");
    let row = |method: &str, users, share_percent, logins| MethodRow {
        method: method.into(),
        users,
        share_percent,
        logins,
    };
    assert_eq!(
        s.methods.methods,
        vec![
            row("password", 4, 100.0, 13),
            row("sms", 3, 75.0, 7),
            row("email", 1, 25.0, 2),
            row("totp", 1, 25.0, 1),
        ]
    );
    let shares: f64 = s.methods.methods.iter().map(|m| m.share_percent).sum();
    assert_eq!(shares, 225.0, "shares add up to more than 100 %");
}

#[test]
fn codes_are_counted_per_channel_and_only_sent_sms_are_priced() {
    let s = summary_priced(&month(), Period::default(), 10, Some(&sek("0.45")));
    let amount = |a: &str| Some(Amount::parse(a).unwrap());
    assert_eq!(
        s.codes,
        Codes {
            cost_per_message: Some(sek("0.45")),
            channels: vec![
                ChannelRow {
                    channel: "sms".into(),
                    sent: 10,
                    login: 9,
                    enrolment: 1,
                    delivery_failed: 1,
                    not_sent: 1,
                    estimated_cost: amount("4.50"),
                },
                ChannelRow {
                    channel: "email".into(),
                    sent: 2,
                    login: 2,
                    enrolment: 0,
                    delivery_failed: 0,
                    not_sent: 0,
                    estimated_cost: None,
                },
            ],
        }
    );
    // cost = count × price, exactly, at any price.
    let s = summary_priced(&month(), Period::default(), 10, Some(&sek("0.4523")));
    assert_eq!(s.codes.channels[0].estimated_cost, amount("4.523"));
}

#[test]
fn the_top_list_ranks_sms_logins_from_outside_ties_by_name() {
    let price = sek("0.45");
    let s = summary_priced(&month(), Period::default(), 10, Some(&price));
    let row = |user: &str, sms_logins, sms_codes, cost: &str, methods: &[&str]| SmsUserRow {
        user: user.into(),
        sms_logins,
        sms_codes,
        estimated_cost: Some(Amount::parse(cost).unwrap()),
        methods: methods.iter().map(|m| m.to_string()).collect(),
    };
    assert_eq!(
        s.sms_from_outside,
        vec![
            row("alice", 3, 4, "1.80", &["password", "sms", "totp"]),
            row("erin", 3, 3, "1.35", &["password", "sms"]),
            row("bob", 1, 2, "0.90", &["password", "sms"]),
        ],
        "dave's SMS cost money but he never logged in"
    );
    let s = summary_priced(&month(), Period::default(), 2, Some(&price));
    let users: Vec<&str> = s.sms_from_outside.iter().map(|u| u.user.as_str()).collect();
    assert_eq!(users, ["alice", "erin"]);
}

#[test]
fn the_json_carries_every_new_field() {
    let s = summary_priced(&month(), Period::default(), 1, Some(&sek("0.45")));
    let v = serde_json::to_value(&s).unwrap();
    assert_eq!(
        v["methods"],
        json!({"active_users": 4, "methods": [
            {"method": "password", "users": 4, "share_percent": 100.0, "logins": 13},
            {"method": "sms", "users": 3, "share_percent": 75.0, "logins": 7},
            {"method": "email", "users": 1, "share_percent": 25.0, "logins": 2},
            {"method": "totp", "users": 1, "share_percent": 25.0, "logins": 1},
        ]})
    );
    assert_eq!(
        v["codes"],
        json!({
            "cost_per_message": {"per_message": 0.45, "currency": "SEK"},
            "channels": [
                {"channel": "sms", "sent": 10, "login": 9, "enrolment": 1,
                    "delivery_failed": 1, "not_sent": 1, "estimated_cost": 4.5},
                {"channel": "email", "sent": 2, "login": 2, "enrolment": 0,
                    "delivery_failed": 0, "not_sent": 0, "estimated_cost": null},
            ]
        })
    );
    assert_eq!(
        v["sms_from_outside"],
        json!([{"user": "alice", "sms_logins": 3, "sms_codes": 4, "estimated_cost": 1.8,
            "methods": ["password", "sms", "totp"]}])
    );
    // Without a price: counts only.
    let s = summary_priced(&month(), Period::default(), 1, None);
    let v = serde_json::to_value(&s).unwrap();
    assert_eq!(v["codes"]["cost_per_message"], Value::Null);
    assert_eq!(v["codes"]["channels"][0]["sent"], 10);
    assert_eq!(v["codes"]["channels"][0]["estimated_cost"], Value::Null);
    assert_eq!(v["sms_from_outside"][0]["estimated_cost"], Value::Null);
}

fn text(s: &Summary, top: usize) -> String {
    let mut out = Vec::new();
    render(s, top, &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

fn has_row(text: &str, cells: &[&str]) -> bool {
    text.lines()
        .any(|l| l.split_whitespace().collect::<Vec<_>>() == cells)
}

#[test]
fn the_text_report_shows_methods_codes_cost_and_the_top_list() {
    let s = summary_priced(&month(), Period::default(), 10, Some(&sek("0.45")));
    let t = text(&s, 10);
    for heading in [
        "\nMethods of active users\n4 active users (a successful login step in the period).",
        "shares add up to more than 100 %.",
        "\nCodes sent (SMS at 0.45 SEK a message)\n",
        "\nTop 10 users logging in from outside by SMS (worth moving to the authenticator app)\n",
    ] {
        assert!(t.contains(heading), "{heading:?} missing:\n{t}");
    }
    for row in [
        &["password", "4", "100.0", "%", "13"][..],
        &["sms", "3", "75.0", "%", "7"],
        &["totp", "1", "25.0", "%", "1"],
        &["sms", "10", "9", "1", "1", "1", "4.50", "SEK"],
        &["email", "2", "2", "0", "0", "0", "-"],
        &[
            "alice",
            "3",
            "4",
            "1.80",
            "SEK",
            "password,",
            "sms,",
            "totp",
        ],
        &["bob", "1", "2", "0.90", "SEK", "password,", "sms"],
    ] {
        assert!(has_row(&t, row), "{row:?} missing:\n{t}");
    }
    // The sections sit after the logins table and before the failures.
    let at = |h: &str| t.find(h).unwrap_or_else(|| panic!("{h} missing"));
    assert!(at("Logins by method and location") < at("Methods of active users"));
    assert!(at("Top 10 users logging in from outside") < at("Failures by reason"));
}

#[test]
fn without_a_price_the_codes_are_counted_and_the_cost_is_not_configured() {
    let s = summary_priced(&month(), Period::default(), 10, None);
    let t = text(&s, 10);
    assert!(
        t.contains("Codes sent (cost: not configured; set notify.sms.cost_per_message"),
        "{t}"
    );
    assert!(has_row(&t, &["sms", "10", "9", "1", "1", "1", "-"]), "{t}");
    assert!(
        has_row(&t, &["alice", "3", "4", "-", "password,", "sms,", "totp"]),
        "{t}"
    );
}

#[test]
fn an_empty_period_and_a_month_without_sms_report_zeros_not_errors() {
    let price = sek("0.45");
    let s = summary_priced(&[], Period::default(), 10, Some(&price));
    assert_eq!(s.methods.active_users, 0);
    assert!(s.methods.methods.is_empty());
    assert!(s.sms_from_outside.is_empty());
    let sms = &s.codes.channels[0];
    assert_eq!((sms.channel.as_str(), sms.sent), ("sms", 0));
    assert_eq!(sms.estimated_cost, Some(Amount::default()));
    let t = text(&s, 10);
    assert!(t.contains("0 active users"), "{t}");
    assert!(
        has_row(&t, &["sms", "0", "0", "0", "0", "0", "0.00", "SEK"]),
        "{t}"
    );
    assert!(
        t.contains("worth moving to the authenticator app)\n(none)"),
        "{t}"
    );

    // Only passwords and the app: nothing to pay, nobody to move.
    let mut lines = login("alice", "internal", None);
    lines.extend(login("bob", "external", Some("totp")));
    let s = summary_priced(&lines, Period::default(), 10, Some(&price));
    assert_eq!(s.codes.channels[0].sent, 0);
    assert_eq!(s.codes.channels[0].estimated_cost, Some(Amount::default()));
    assert!(s.sms_from_outside.is_empty());
    assert_eq!(s.methods.active_users, 2);
    assert_eq!(s.methods.methods[0].method, "password");
    assert_eq!(s.methods.methods[1].share_percent, 50.0);
}

#[test]
fn the_period_bounds_the_new_figures_too() {
    let ms = |s: &str| crate::audit::logread::time_ms(s).unwrap();
    // Every generated auth line is at 09:00; a period after it has none.
    let later = Period {
        since: Some(ms("2026-11-23T09:30:00Z")),
        until: None,
    };
    let s = summary_priced(&month(), later, 10, Some(&sek("0.45")));
    assert_eq!(s.methods.active_users, 0);
    assert_eq!(s.codes.channels[0].sent, 0);
    assert!(s.sms_from_outside.is_empty());
}

#[test]
fn configurations_must_agree_on_the_price_or_none_is_used() {
    let (a, b, c) = (
        Path::new("a.yaml"),
        Path::new("b.yaml"),
        Path::new("c.yaml"),
    );
    let (p45, p50) = (sek("0.45"), sek("0.50"));
    let mut notes = Vec::new();
    let mut note = |n: String| notes.push(n);
    assert_eq!(
        agreed_price(
            [(a, None), (b, Some(&p45)), (c, Some(&p45))].into_iter(),
            &mut note
        ),
        Some(p45.clone()),
        "a configuration without a price does not disagree"
    );
    assert_eq!(agreed_price([(a, None)].into_iter(), &mut note), None);
    assert_eq!(
        agreed_price([(a, Some(&p45)), (b, Some(&p50))].into_iter(), &mut note),
        None
    );
    assert_eq!(
        notes,
        ["a.yaml prices an SMS at 0.45 SEK, b.yaml at 0.50 SEK: the SMS cost is not estimated"]
    );
}

/// A user name is shown as printable text, like everywhere in the report.
#[test]
fn a_hostile_user_name_cannot_write_to_the_terminal() {
    let lines = login("eve\u{1b}[2J", "external", Some("sms"));
    let s = summary_priced(&lines, Period::default(), 10, None);
    let t = text(&s, 10);
    assert!(!t.contains('\u{1b}'), "{t:?}");
}
