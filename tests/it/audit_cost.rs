//! The SMS cost and method adoption part of `portvakt audit report`: codes
//! sent per channel with their estimated cost, logins by method and
//! location, the share of active users on each method, and the users who
//! log in from outside most often by SMS (the ones worth moving to the
//! authenticator app), in the text report, in `--json` and in the metrics.
//!
//! First on the logs a real gateway wrote, priced as its configuration
//! says; then on a generated month of logs, rotated and gzipped, where
//! every figure is computed from what each person was made to do
//! ([`Habits`]), never read back from the report.

use std::collections::BTreeMap;
use std::ops::AddAssign;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use crate::audit_cli::{audit, audit_status, audit_with_stdin, gzip};
use crate::support::enrol::*;
use crate::support::sms::{Answer, SmsProvider};
use crate::support::smtp::notify_yaml;
use crate::support::users::{users_yaml, User};
use crate::support::wait::until;
use crate::support::*;

/// The rows of the text report's section whose heading starts with
/// `heading`, each split into its cells, up to the blank line that ends the
/// section (the heading line itself left out).
fn section(text: &str, heading: &str) -> Vec<Vec<String>> {
    let start = text
        .find(&format!("\n{heading}"))
        .unwrap_or_else(|| panic!("no section {heading:?} in:\n{text}"));
    text[start + 1..]
        .lines()
        .skip(1)
        .take_while(|l| !l.is_empty())
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect()
}

fn cells(row: &[&str]) -> Vec<String> {
    row.iter().map(|c| c.to_string()).collect()
}

// ------------------------------------------------------------- real traffic

/// From outside with the code the provider delivered: the SMS request
/// number `n` of the test carries it.
async fn by_sms(gw: &Gateway, sms: &SmsProvider, user: &User, n: usize) {
    let b = gw.offsite_client();
    let page = password_step(&b, "https://offsite.test/", user, Some("sms")).await;
    assert_eq!(page.status, 200, "{}", page.describe());
    let form = CodePage::parse(page);
    let code = code_in(&sms.request(n).await.form_field("message")).expect("a code");
    arrive(&b, enter_code(&b, &form, &code).await, user).await;
}

/// The value of one series in a Prometheus text exposition.
fn series(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// The seed's question ("the app is there to cut SMS costs"): what did the
/// codes cost, who uses what, and who should move to the app — from the
/// logs a real gateway wrote, priced as its configuration says, and the
/// same live in the metrics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_prices_the_sms_and_names_who_to_move_to_the_app() {
    let upstream = Upstream::start().await;
    let sms = SmsProvider::start().await;
    let mut sms_yaml = sms.sms_yaml("/send", r#"form: { to: "{phone}", message: "{text}" }"#);
    sms_yaml.push_str("    cost_per_message: 0.45\n    currency: SEK\n");
    let gw = GatewayConfig::new()
        .service(Service::new("offsite.test", upstream.url()).policy("two_factor_offsite"))
        .extra_yaml(&notify_yaml(&[sms_yaml]))
        .start()
        .await;
    set_sms_number(&gw, &ALICE, 0, "+46701234567").await;
    set_sms_number(&gw, &BOB, 0, "+46702223344").await;
    let secret = totp_add(&gw, &ORJAN, "Jobbmobil");

    // alice from home by SMS twice and once at the office; bob by SMS once;
    // Örjan from home with his authenticator app.
    by_sms(&gw, &sms, &ALICE, 1).await;
    by_sms(&gw, &sms, &ALICE, 2).await;
    by_sms(&gw, &sms, &BOB, 3).await;
    gw.client()
        .must_login("https://offsite.test/", &ALICE)
        .await;
    let home = gw.offsite_client();
    let form = code_page_for(&home, "https://offsite.test/", &ORJAN, "totp").await;
    let code = totp_code(&secret, fresh_step_time(&gw).await);
    arrive(&home, enter_code(&home, &form, &code).await, &ORJAN).await;
    // The provider fails bob's next SMS: it costs nothing and is shown apart.
    sms.answer(Answer::server_error());
    let b = gw.offsite_client();
    password_step(&b, "https://offsite.test/", &BOB, Some("sms")).await;
    gw.wait_auth_log("the failed SMS and Örjan's login", |lines| {
        lines.iter().any(|l| l["reason"] == "delivery_failed")
            && lines
                .iter()
                .any(|l| l["user"] == "orjan" && l["method"] == "totp" && l["result"] == "success")
    })
    .await;

    let config = gw.config_path();
    let config = config.to_str().expect("utf-8 path");
    let r = audit(&["report", "--config", config, "--json"]).json();
    assert_eq!(
        r["methods"],
        json!({"active_users": 3, "methods": [
            {"method": "password", "users": 3, "share_percent": 100.0, "logins": 6},
            {"method": "sms", "users": 2, "share_percent": 66.7, "logins": 3},
            {"method": "totp", "users": 1, "share_percent": 33.3, "logins": 1},
        ]}),
        "bob's password before the failed SMS is a login step too"
    );
    assert_eq!(
        r["codes"],
        json!({
            "cost_per_message": {"per_message": 0.45, "currency": "SEK"},
            "channels": [
                {"channel": "sms", "sent": 3, "login": 3, "enrolment": 0,
                    "delivery_failed": 1, "not_sent": 0, "estimated_cost": 1.35},
                {"channel": "email", "sent": 0, "login": 0, "enrolment": 0,
                    "delivery_failed": 0, "not_sent": 0, "estimated_cost": null},
            ]
        })
    );
    assert_eq!(
        r["sms_from_outside"],
        json!([
            {"user": "alice", "sms_logins": 2, "sms_codes": 2, "estimated_cost": 0.9,
                "methods": ["password", "sms"]},
            {"user": "bob", "sms_logins": 1, "sms_codes": 1, "estimated_cost": 0.45,
                "methods": ["password", "sms"]},
        ])
    );

    let text = audit(&["report", "--config", config, "--top", "1"]).stdout;
    assert_eq!(
        section(&text, "Codes sent (SMS at 0.45 SEK a message)")[1..],
        [
            cells(&["sms", "3", "3", "0", "1", "0", "1.35", "SEK"]),
            cells(&["email", "0", "0", "0", "0", "0", "-"]),
        ],
        "{text}"
    );
    assert!(
        section(&text, "Methods of active users").contains(&cells(&["sms", "2", "66.7", "%", "3"])),
        "{text}"
    );
    assert_eq!(
        section(&text, "Top 1 users logging in from outside by SMS")[1..],
        [cells(&[
            "alice",
            "2",
            "2",
            "0.90",
            "SEK",
            "password,",
            "sms"
        ])],
        "--top 1 leaves bob out: {text}"
    );

    // The same files without the configuration: counted, not priced.
    let files: Vec<String> = ["access.jsonl", "auth.jsonl"]
        .iter()
        .map(|f| gw.dir().join(f).to_string_lossy().into_owned())
        .collect();
    let unpriced = audit(&["report", &files[0], &files[1]]).stdout;
    assert!(
        section(&unpriced, "Codes sent (cost: not configured")
            .contains(&cells(&["sms", "3", "3", "0", "1", "0", "-"])),
        "{unpriced}"
    );

    // Live, the same figures: steps by method and network, and the price.
    let (status, m) = gw.admin_get("/metrics").await;
    assert_eq!(status, 200, "{m}");
    for (name, want) in [
        (
            r#"portvakt_login_steps_total{method="sms",network="external",result="success"}"#,
            3.0,
        ),
        (
            r#"portvakt_login_steps_total{method="password",network="external",result="success"}"#,
            5.0,
        ),
        (
            r#"portvakt_login_steps_total{method="password",network="internal",result="success"}"#,
            1.0,
        ),
        (
            r#"portvakt_login_steps_total{method="totp",network="external",result="success"}"#,
            1.0,
        ),
        (
            r#"portvakt_codes_sent_total{channel="sms",result="success"}"#,
            3.0,
        ),
        (
            r#"portvakt_codes_sent_total{channel="sms",result="failure"}"#,
            1.0,
        ),
        (r#"portvakt_sms_cost_per_message{currency="SEK"}"#, 0.45),
    ] {
        assert_eq!(series(&m, name), Some(want), "{name}:\n{m}");
    }
    // A new price list: the gauge follows the reload.
    gw.write_config_text(
        &gw.config_text()
            .replace("cost_per_message: 0.45", "cost_per_message: 0.39"),
    );
    gw.reload();
    until(
        "the reloaded SMS price",
        Duration::from_secs(10),
        Duration::from_millis(100),
        || async {
            let (_, m) = gw.admin_get("/metrics").await;
            (series(&m, r#"portvakt_sms_cost_per_message{currency="SEK"}"#) == Some(0.39))
                .then_some(())
        },
    )
    .await;
    // A price that cannot be right is refused on reload; the running one stays.
    gw.write_config_text(
        &gw.config_text()
            .replace("cost_per_message: 0.39", "cost_per_message: -0.39"),
    );
    gw.reload();
    let m = until(
        "the refused reload",
        Duration::from_secs(10),
        Duration::from_millis(100),
        || async {
            let (_, m) = gw.admin_get("/metrics").await;
            (series(&m, r#"portvakt_config_reloads_total{result="failure"}"#) == Some(1.0))
                .then_some(m)
        },
    )
    .await;
    assert_eq!(
        series(&m, r#"portvakt_sms_cost_per_message{currency="SEK"}"#),
        Some(0.39),
        "{m}"
    );
}

// ------------------------------------------------------------- a generated month

/// What one person did in one stretch of the generated month. The report's
/// figures follow from these counts by the definitions in the README; the
/// test computes them from here.
#[derive(Debug, Clone, Copy, Default)]
struct Habits {
    /// Logins at the office: the password alone.
    office: u64,
    /// From home: the password, then an SMS code.
    sms: u64,
    /// At the office, where a service asks for two factors everywhere: the
    /// password, then an SMS code.
    sms_inside: u64,
    /// From home: the password, then the authenticator app.
    totp: u64,
    /// From home: the password, then an e-mail code.
    email: u64,
    /// SMS codes asked for again during one of the `sms` logins, not used.
    resent: u64,
    /// From home: the password, an SMS code, typed wrong; no login.
    wrong_code: u64,
    /// From home: a wrong password.
    wrong_password: u64,
    /// From home: the password, then an SMS the provider refused.
    delivery_failed: u64,
    /// An SMS asked for again before the resend wait was over: not sent.
    cooldown: u64,
    /// An SMS confirming a new number, at the office.
    enrolled: u64,
}

impl AddAssign for Habits {
    fn add_assign(&mut self, o: Habits) {
        self.office += o.office;
        self.sms += o.sms;
        self.sms_inside += o.sms_inside;
        self.totp += o.totp;
        self.email += o.email;
        self.resent += o.resent;
        self.wrong_code += o.wrong_code;
        self.wrong_password += o.wrong_password;
        self.delivery_failed += o.delivery_failed;
        self.cooldown += o.cooldown;
        self.enrolled += o.enrolled;
    }
}

impl Habits {
    /// Successful password steps: every login, and every attempt that got
    /// past the password.
    fn passwords(&self) -> u64 {
        self.office
            + self.sms
            + self.sms_inside
            + self.totp
            + self.email
            + self.wrong_code
            + self.delivery_failed
    }

    /// Successful login steps with `method`.
    fn logins(&self, method: &str) -> u64 {
        match method {
            "password" => self.passwords(),
            "sms" => self.sms + self.sms_inside,
            "totp" => self.totp,
            "email" => self.email,
            _ => 0,
        }
    }

    /// The methods with a successful login step, by name.
    fn methods_used(&self) -> Vec<&'static str> {
        let mut used: Vec<&'static str> = METHODS
            .iter()
            .copied()
            .filter(|m| self.logins(m) > 0)
            .collect();
        used.sort_unstable();
        used
    }

    /// SMS handed to the provider for this person: for logins (the ones
    /// used, the ones resent, the ones typed wrong) and to confirm a number.
    fn sms_sent(&self) -> u64 {
        self.sms + self.sms_inside + self.resent + self.wrong_code + self.enrolled
    }
}

const METHODS: [&str; 4] = ["password", "sms", "totp", "email"];

/// A stretch of the month written to one rotated file.
struct Stretch {
    /// The first day, `YYYY-MM-DD`.
    from: &'static str,
    /// The auth log file it is in (`.gz`: gzipped).
    file: &'static str,
    people: Vec<(&'static str, Habits)>,
}

fn h() -> Habits {
    Habits::default()
}

/// November 2026 in four stretches, oldest in the oldest rotation. Several
/// people change method during the month; some only ever get past the
/// password; the last day has no login at all.
fn november() -> Vec<Stretch> {
    vec![
        Stretch {
            from: "2026-11-01",
            file: "auth.jsonl.2.gz",
            people: vec![
                (
                    "alice",
                    Habits {
                        office: 4,
                        sms: 3,
                        resent: 1,
                        ..h()
                    },
                ),
                (
                    "bob",
                    Habits {
                        office: 2,
                        sms: 1,
                        enrolled: 1,
                        delivery_failed: 1,
                        ..h()
                    },
                ),
                (
                    "örjan",
                    Habits {
                        office: 1,
                        totp: 5,
                        ..h()
                    },
                ),
                (
                    "karin",
                    Habits {
                        email: 2,
                        sms_inside: 1,
                        wrong_password: 1,
                        ..h()
                    },
                ),
            ],
        },
        Stretch {
            from: "2026-11-11",
            file: "auth.jsonl.1",
            people: vec![
                (
                    "alice",
                    Habits {
                        sms: 2,
                        totp: 1,
                        ..h()
                    },
                ),
                (
                    "bob",
                    Habits {
                        sms: 2,
                        wrong_code: 1,
                        cooldown: 1,
                        ..h()
                    },
                ),
                ("åsa.ek", Habits { sms: 4, ..h() }),
                // SMS at the office only: not one to move for working
                // from home.
                (
                    "per",
                    Habits {
                        office: 3,
                        sms_inside: 2,
                        ..h()
                    },
                ),
                // Gets past the password, never types the code right.
                (
                    "dave",
                    Habits {
                        wrong_code: 2,
                        ..h()
                    },
                ),
            ],
        },
        Stretch {
            from: "2026-11-21",
            file: "auth.jsonl",
            people: vec![
                (
                    "alice",
                    Habits {
                        office: 2,
                        totp: 3,
                        ..h()
                    },
                ),
                ("bob", Habits { sms: 1, ..h() }),
                ("örjan", Habits { totp: 2, ..h() }),
                // The only SMS he asked for never arrived.
                (
                    "erik",
                    Habits {
                        delivery_failed: 1,
                        ..h()
                    },
                ),
            ],
        },
        // A day without a single login: two wrong passwords, one SMS
        // asked for too soon.
        Stretch {
            from: "2026-11-30",
            file: "auth.jsonl",
            people: vec![
                (
                    "bob",
                    Habits {
                        wrong_password: 2,
                        ..h()
                    },
                ),
                ("karin", Habits { cooldown: 1, ..h() }),
            ],
        },
    ]
}

const INSIDE: &str = "10.20.1.5";
const OUTSIDE: &str = "198.51.100.7";

/// The auth lines of one stretch, in time order from 07:00 of its first
/// day, one line a minute, as the gateway writes them.
fn lines_of(s: &Stretch) -> Vec<String> {
    let start =
        portvakt::audit::logread::time_ms(&format!("{}T07:00:00Z", s.from)).expect("a date") as u64;
    let mut out = Vec::new();
    let mut line = |event: &str, result: &str, reason: &str, user: &str, net: &str, m: &str| {
        let ip = if net == "internal" { INSIDE } else { OUTSIDE };
        let time = portvakt::audit::timestamp(start + out.len() as u64 * 60_000);
        out.push(
            json!({"time": time, "event": event, "result": result, "reason": reason,
                "user": user, "realm": "staff", "client_ip": ip, "network": net,
                "method": m, "request_id": format!("r{}", out.len()), "session": null,
                "host": "portal.kommun.test", "gateway": "gw1",
                "seq": out.len() + 1, "prev": "00", "hash": "11"})
            .to_string(),
        );
    };
    for (user, d) in &s.people {
        let u = *user;
        for _ in 0..d.office {
            line("login", "success", "ok", u, "internal", "password");
        }
        for (n, (method, count)) in [("sms", d.sms), ("totp", d.totp), ("email", d.email)]
            .into_iter()
            .enumerate()
        {
            for i in 0..count {
                line("login", "success", "ok", u, "external", "password");
                if method != "totp" {
                    line("code_sent", "success", "sent", u, "external", method);
                }
                // The resent codes come with the first SMS logins.
                if n == 0 && i < d.resent {
                    line("code_sent", "success", "sent", u, "external", "sms");
                }
                line("login", "success", "second_factor", u, "external", method);
            }
        }
        for _ in 0..d.sms_inside {
            line("login", "success", "ok", u, "internal", "password");
            line("code_sent", "success", "sent", u, "internal", "sms");
            line("login", "success", "second_factor", u, "internal", "sms");
        }
        for _ in 0..d.wrong_code {
            line("login", "success", "ok", u, "external", "password");
            line("code_sent", "success", "sent", u, "external", "sms");
            line(
                "second_factor",
                "failure",
                "wrong_code",
                u,
                "external",
                "sms",
            );
        }
        for _ in 0..d.wrong_password {
            line(
                "login",
                "failure",
                "wrong_password",
                u,
                "external",
                "password",
            );
        }
        for _ in 0..d.delivery_failed {
            line("login", "success", "ok", u, "external", "password");
            line(
                "code_sent",
                "failure",
                "delivery_failed",
                u,
                "external",
                "sms",
            );
        }
        for _ in 0..d.cooldown {
            line("code_sent", "failure", "cooldown", u, "external", "sms");
        }
        for _ in 0..d.enrolled {
            line("code_sent", "success", "enrolment", u, "internal", "sms");
        }
    }
    out
}

/// Each person's habits over `stretches`, by name (sorted as the report
/// breaks ties: by the name's bytes).
fn people(stretches: &[&Stretch]) -> BTreeMap<&'static str, Habits> {
    let mut all: BTreeMap<&'static str, Habits> = BTreeMap::new();
    for s in stretches {
        for (user, d) in &s.people {
            *all.entry(user).or_default() += *d;
        }
    }
    all
}

/// `öre` hundredths of a krona as the report prints an amount (`4.05`).
fn kronor(ore: u64) -> String {
    format!("{}.{:02}", ore / 100, ore % 100)
}

/// The price in the configurations below, in öre.
const PRICE_ORE: u64 = 45;

/// The report's figures for `stretches`, from the habits alone: the JSON
/// of `methods`, `codes` (priced at 0.45 SEK if `priced`), the top `top`
/// of `sms_from_outside`, and `logins` sorted by method and network.
struct Expected {
    methods: Value,
    codes: Value,
    sms_from_outside: Value,
    logins: Vec<Value>,
}

fn expected(stretches: &[&Stretch], priced: bool, top: usize) -> Expected {
    let people = people(stretches);
    let cost = |n: u64| -> Value {
        if priced {
            json!(kronor(n * PRICE_ORE).parse::<f64>().expect("a number"))
        } else {
            Value::Null
        }
    };
    let sum = |f: &dyn Fn(&Habits) -> u64| -> u64 { people.values().map(f).sum() };

    let active = people.values().filter(|d| d.passwords() > 0).count() as u64;
    let mut methods: Vec<(u64, &str, u64)> = METHODS
        .iter()
        .map(|m| {
            let users = people.values().filter(|d| d.logins(m) > 0).count() as u64;
            (users, *m, sum(&|d| d.logins(m)))
        })
        .filter(|(users, _, _)| *users > 0)
        .collect();
    // Most users first, then by name.
    methods.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
    let methods = json!({
        "active_users": active,
        "methods": methods.iter().map(|(users, m, logins)| json!({
            "method": m,
            "users": users,
            "share_percent": (*users as f64 * 1000.0 / active as f64).round() / 10.0,
            "logins": logins,
        })).collect::<Vec<_>>(),
    });

    let sms_login = sum(&|d| d.sms + d.sms_inside + d.resent + d.wrong_code);
    let enrolment = sum(&|d| d.enrolled);
    let codes = json!({
        "cost_per_message": if priced { json!({"per_message": 0.45, "currency": "SEK"}) }
            else { Value::Null },
        "channels": [
            {"channel": "sms", "sent": sms_login + enrolment, "login": sms_login,
                "enrolment": enrolment, "delivery_failed": sum(&|d| d.delivery_failed),
                "not_sent": sum(&|d| d.cooldown), "estimated_cost": cost(sms_login + enrolment)},
            {"channel": "email", "sent": sum(&|d| d.email), "login": sum(&|d| d.email),
                "enrolment": 0, "delivery_failed": 0, "not_sent": 0, "estimated_cost": null},
        ],
    });

    let mut by_sms: Vec<(&str, &Habits)> = people
        .iter()
        .filter(|(_, d)| d.sms > 0)
        .map(|(u, d)| (*u, d))
        .collect();
    // Most SMS logins from outside first, then by name (`people` is by name
    // and the sort is stable).
    by_sms.sort_by_key(|(_, d)| std::cmp::Reverse(d.sms));
    by_sms.truncate(top);
    let sms_from_outside = json!(by_sms
        .iter()
        .map(|(user, d)| json!({
            "user": user,
            "sms_logins": d.sms,
            "sms_codes": d.sms_sent(),
            "estimated_cost": cost(d.sms_sent()),
            "methods": d.methods_used(),
        }))
        .collect::<Vec<_>>());

    let mut logins: Vec<Value> = [
        ("password", "internal", sum(&|d| d.office + d.sms_inside), 0),
        (
            "password",
            "external",
            sum(&|d| d.passwords() - d.office - d.sms_inside),
            sum(&|d| d.wrong_password),
        ),
        ("sms", "internal", sum(&|d| d.sms_inside), 0),
        ("sms", "external", sum(&|d| d.sms), sum(&|d| d.wrong_code)),
        ("totp", "external", sum(&|d| d.totp), 0),
        ("email", "external", sum(&|d| d.email), 0),
    ]
    .into_iter()
    .filter(|(_, _, ok, failed)| ok + failed > 0)
    .map(|(m, net, ok, failed)| {
        json!({"method": m, "network": net, "success": ok, "failure": failed})
    })
    .collect();
    logins.sort_by_key(|l| (l["method"].to_string(), l["network"].to_string()));
    Expected {
        methods,
        codes,
        sms_from_outside,
        logins,
    }
}

/// The generated month on disk, and three configurations that read it.
struct Month {
    dir: tempfile::TempDir,
}

impl Month {
    fn write() -> Month {
        let dir = tempfile::Builder::new()
            .prefix("portvakt-audit-month-")
            .tempdir()
            .expect("tempdir");
        let d = dir.path();
        let mut files: BTreeMap<&str, String> = BTreeMap::new();
        for s in &november() {
            let text = files.entry(s.file).or_default();
            for l in lines_of(s) {
                text.push_str(&l);
                text.push('\n');
            }
        }
        for (name, text) in &files {
            if name.ends_with(".gz") {
                gzip(&d.join(name), text);
            } else {
                std::fs::write(d.join(name), text).expect("write a log");
            }
        }
        // One request, so the configurations' access log exists.
        std::fs::write(
            d.join("access.jsonl"),
            format!(
                "{}\n",
                json!({"time": "2026-11-02T08:00:00.000Z", "request_id": "a1",
                    "client_ip": INSIDE, "network": "internal", "host": "wiki.kommun.test",
                    "method": "GET", "path": "/", "status": 200, "service": "Wiki",
                    "user": "alice", "realm": "staff", "decision": "allow", "reason": "ok"})
            ),
        )
        .expect("write the access log");

        Pki::shared().write_to(d);
        std::fs::write(d.join("users.yaml"), users_yaml()).expect("users.yaml");
        std::fs::write(d.join("secret.key"), [7u8; 32]).expect("secret.key");
        let price =
            |p: &str| format!("notify:\n  sms:\n    cost_per_message: {p}\n    currency: SEK\n");
        let files = "audit:\n  access_log: access.jsonl\n  auth_log: auth.jsonl\n";
        let journald = "audit:\n  access_log: stdout\n  auth_log: stdout\n";
        for (name, audit, notify) in [
            ("priced.yaml", files, price("0.45")),
            ("unpriced.yaml", files, String::new()),
            ("dearer.yaml", files, price("0.39")),
            ("journald.yaml", journald, price("0.45")),
        ] {
            // Never served: the addresses only have to be valid.
            let addr = |port| std::net::SocketAddr::from(([127, 0, 0, 1], port));
            let mut config = GatewayConfig::new().audit(audit);
            if !notify.is_empty() {
                config = config.extra_yaml(&notify);
            }
            let text = config.render(addr(1), None, addr(2));
            std::fs::write(d.join(name), text).expect("config");
        }
        Month { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_string_lossy().into_owned()
    }

    /// `portvakt audit report -c CONFIG ARGS… --json`.
    fn json(&self, config: &str, args: &[&str]) -> Value {
        let config = self.path(config);
        let mut all = vec!["report", "-c", &config, "--json"];
        all.extend(args);
        audit(&all).json()
    }

    /// `portvakt audit report -c CONFIG ARGS…`, the text.
    fn text(&self, config: &str, args: &[&str]) -> String {
        let config = self.path(config);
        let mut all = vec!["report", "-c", &config];
        all.extend(args);
        audit(&all).stdout
    }
}

/// `r`'s new figures are `want`'s (`logins` compared in method, network order).
fn assert_figures(r: &Value, want: &Expected, what: &str) {
    assert_eq!(r["methods"], want.methods, "{what}: methods");
    assert_eq!(r["codes"], want.codes, "{what}: codes");
    assert_eq!(
        r["sms_from_outside"], want.sms_from_outside,
        "{what}: sms_from_outside"
    );
    let mut logins = r["logins"].as_array().cloned().unwrap_or_default();
    logins.sort_by_key(|l| (l["method"].to_string(), l["network"].to_string()));
    assert_eq!(logins, want.logins, "{what}: logins");
}

/// The whole month, read through `--config` from three rotations (one
/// gzipped), priced: every figure from the habits.
#[test]
fn a_month_of_logins_is_counted_priced_and_ranked_from_what_people_did() {
    let month = Month::write();
    let all = november();
    let all: Vec<&Stretch> = all.iter().collect();
    let r = month.json("priced.yaml", &[]);
    assert_figures(&r, &expected(&all, true, 10), "the month");
    let read: Vec<String> = r["files"]
        .as_array()
        .map(|fs| {
            fs.iter()
                .filter_map(|f| Path::new(f["path"].as_str()?).file_name())
                .map(|n| n.to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        read,
        [
            "access.jsonl",
            "auth.jsonl.2.gz",
            "auth.jsonl.1",
            "auth.jsonl"
        ],
        "every rotation read, the gzipped one too"
    );

    // The shape of this month, so the figures above mean what they should:
    // a user on several methods, a tie in the top list, someone active by
    // the password alone.
    let people = people(&all);
    assert!(people["alice"].sms > 0 && people["alice"].totp > 0 && people["alice"].office > 0);
    assert_eq!(
        people["bob"].sms, people["åsa.ek"].sms,
        "a tie, broken by name"
    );
    assert_eq!(people["dave"].logins("sms"), 0);
    assert!(people["dave"].passwords() > 0);
    assert!(people["per"].sms_inside > 0 && people["per"].sms == 0);

    // --top 2 cuts the list, inside the tie.
    let r = month.json("priced.yaml", &["--top", "2"]);
    assert_eq!(
        r["sms_from_outside"],
        expected(&all, true, 2).sms_from_outside
    );
    assert_eq!(r["sms_from_outside"][1]["user"], "bob");
}

/// The text report shows the same figures, row by row.
#[test]
fn the_text_report_shows_every_figure_of_the_month() {
    let month = Month::write();
    let all = november();
    let all: Vec<&Stretch> = all.iter().collect();
    let want = expected(&all, true, 10);
    let text = month.text("priced.yaml", &[]);

    let active = &want.methods["active_users"];
    assert!(
        text.contains(&format!(
            "\nMethods of active users\n{active} active users (a successful login step in the period)."
        )),
        "{text}"
    );
    let methods = section(&text, "Methods of active users");
    let rows: Vec<Vec<String>> = want.methods["methods"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|m| {
            vec![
                m["method"].as_str().unwrap_or("?").to_owned(),
                m["users"].to_string(),
                format!("{:.1}", m["share_percent"].as_f64().unwrap_or(-1.0)),
                "%".to_owned(),
                m["logins"].to_string(),
            ]
        })
        .collect();
    assert_eq!(methods[3..], rows[..], "{text}");

    let codes = section(&text, "Codes sent (SMS at 0.45 SEK a message)");
    let sms = &want.codes["channels"][0];
    let email = &want.codes["channels"][1];
    let sent = sms["sent"].as_u64().unwrap_or(0);
    let n = |v: &Value, k: &str| v[k].to_string();
    assert_eq!(
        codes[1..],
        [
            vec![
                "sms".to_owned(),
                n(sms, "sent"),
                n(sms, "login"),
                n(sms, "enrolment"),
                n(sms, "delivery_failed"),
                n(sms, "not_sent"),
                kronor(sent * PRICE_ORE),
                "SEK".to_owned(),
            ],
            vec![
                "email".to_owned(),
                n(email, "sent"),
                n(email, "login"),
                "0".to_owned(),
                "0".to_owned(),
                "0".to_owned(),
                "-".to_owned(),
            ],
        ],
        "{text}"
    );

    let top = section(&text, "Top 10 users logging in from outside by SMS");
    let mut rows = vec![cells(&[
        "USER",
        "SMS",
        "LOGINS",
        "FROM",
        "OUTSIDE",
        "SMS",
        "CODES",
        "ESTIMATED",
        "COST",
        "METHODS",
        "USED",
    ])];
    let people = people(&all);
    for u in want.sms_from_outside.as_array().unwrap_or(&Vec::new()) {
        let name = u["user"].as_str().unwrap_or("?");
        let d = &people[name];
        let used = d.methods_used();
        let mut row = vec![
            name.to_owned(),
            d.sms.to_string(),
            d.sms_sent().to_string(),
            kronor(d.sms_sent() * PRICE_ORE),
            "SEK".to_owned(),
        ];
        row.extend(used.join(", ").split_whitespace().map(str::to_owned));
        rows.push(row);
    }
    assert_eq!(top, rows, "{text}");
}

/// The middle stretch only: the period bounds every new figure, and a
/// user's other weeks do not leak in.
#[test]
fn a_period_counts_only_its_own_logins() {
    let month = Month::write();
    let all = november();
    let r = month.json(
        "priced.yaml",
        &["--since", "2026-11-11", "--until", "2026-11-20"],
    );
    assert_figures(
        &r,
        &expected(&[&all[1]], true, 10),
        "2026-11-11 to 2026-11-20",
    );
}

/// A day with failures and a refused SMS but no login, and a month with no
/// line at all: zeros and empty lists, priced at nothing, not an error.
#[test]
fn a_period_without_logins_reports_zeros() {
    let month = Month::write();
    let all = november();
    let quiet = &all[3];
    assert!(quiet.people.iter().all(|(_, d)| d.passwords() == 0));
    let r = month.json("priced.yaml", &["--since", "2026-11-30"]);
    assert_figures(&r, &expected(&[quiet], true, 10), "the last day");
    assert_eq!(r["methods"]["active_users"], 0);
    assert_eq!(r["codes"]["channels"][0]["estimated_cost"], 0.0);
    assert!(r["codes"]["channels"][0]["not_sent"].as_u64() > Some(0));
    let text = month.text("priced.yaml", &["--since", "2026-11-30"]);
    assert!(
        text.contains("\nMethods of active users\n0 active users"),
        "{text}"
    );
    assert_eq!(
        section(&text, "Top 10 users logging in from outside by SMS"),
        [cells(&["(none)"])],
        "{text}"
    );
    let refused: u64 = quiet.people.iter().map(|(_, d)| d.cooldown).sum();
    assert_eq!(
        section(&text, "Codes sent")[1],
        cells(&[
            "sms",
            "0",
            "0",
            "0",
            "0",
            &refused.to_string(),
            "0.00",
            "SEK"
        ]),
        "{text}"
    );

    let r = month.json("priced.yaml", &["--since", "2026-12-01"]);
    assert_figures(&r, &expected(&[], true, 10), "December");
    assert!(r["period"]["first"].is_null(), "{}", r["period"]);
}

/// Without a price the codes are counted and nothing is estimated; two
/// configurations with different prices estimate nothing and say why; a
/// journald gateway's logs piped in are priced from its configuration.
#[test]
fn the_price_comes_from_the_configuration_or_is_not_guessed() {
    let month = Month::write();
    let all = november();
    let all: Vec<&Stretch> = all.iter().collect();
    let unpriced = expected(&all, false, 10);

    let r = month.json("unpriced.yaml", &[]);
    assert_figures(&r, &unpriced, "no price configured");
    let text = month.text("unpriced.yaml", &[]);
    assert!(
        text.contains(
            "\nCodes sent (cost: not configured; set notify.sms.cost_per_message and\n\
             notify.sms.currency, and give --config)\n"
        ),
        "{text}"
    );
    assert!(
        section(&text, "Top 10 users logging in from outside by SMS")[1..]
            .iter()
            .all(|row| row[3] == "-"),
        "{text}"
    );

    let (priced, dearer) = (month.path("priced.yaml"), month.path("dearer.yaml"));
    let run = audit(&["report", "-c", &priced, "-c", &dearer, "--json"]);
    assert_figures(&run.json(), &unpriced, "two prices");
    assert!(
        run.stderr.contains(&format!(
            "{priced} prices an SMS at 0.45 SEK, {dearer} at 0.39 SEK: the SMS cost is not estimated"
        )),
        "{}",
        run.stderr
    );

    // journald: the logs come on stdin, the price from the configuration.
    let mut piped = Vec::new();
    for s in &all {
        for l in lines_of(s) {
            piped.extend_from_slice(l.as_bytes());
            piped.push(b'\n');
        }
    }
    let journald = month.path("journald.yaml");
    let run = audit_with_stdin(&["report", "-c", &journald, "-", "--json"], &piped);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_figures(&run.json(), &expected(&all, true, 10), "journald");

    // A configuration that cannot be loaded is named, not silently unpriced.
    let broken = month.path("broken.yaml");
    std::fs::write(
        &broken,
        std::fs::read_to_string(&priced)
            .expect("read")
            .replace("0.45", "-0.45"),
    )
    .expect("write");
    let run = audit_status(&["report", "-c", &broken]);
    assert_ne!(run.code, 0);
    assert!(
        run.stderr.contains("notify.sms.cost_per_message") && run.stderr.contains("negative"),
        "{}",
        run.stderr
    );
}
