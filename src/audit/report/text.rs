//! The text form of `portvakt audit report`: the page an auditor reads.

use std::io::{self, Write};

use super::{CountRow, RefusedRow, Summary};
use crate::audit::logread::printable;
use crate::audit::query::table::Table;
use crate::notify::config::{Amount, Price};

/// The text report.
pub(super) fn render(s: &Summary, top: usize, out: &mut dyn Write) -> io::Result<()> {
    let p = &s.period;
    let none = || "-".to_owned();
    writeln!(out, "portvakt audit report")?;
    match (&p.since, &p.until) {
        (None, None) => writeln!(out, "Period:   every line of the files")?,
        (since, until) => writeln!(
            out,
            "Period:   {} to {} (UTC; the end excluded)",
            since.clone().unwrap_or_else(|| "the beginning".to_owned()),
            until.clone().unwrap_or_else(|| "the end".to_owned())
        )?,
    }
    writeln!(
        out,
        "Seen:     {} … {}",
        p.first.clone().unwrap_or_else(none),
        p.last.clone().unwrap_or_else(none)
    )?;
    let lines: u64 = s.files.iter().map(|f| f.lines).sum();
    writeln!(
        out,
        "Read:     {lines} line{} in {} file{}",
        if lines == 1 { "" } else { "s" },
        s.files.len(),
        if s.files.len() == 1 { "" } else { "s" }
    )?;
    for f in &s.files {
        writeln!(
            out,
            "          {} ({} line{})",
            printable(&f.path.to_string_lossy()),
            f.lines,
            if f.lines == 1 { "" } else { "s" }
        )?;
    }

    let t = &s.totals;
    section(out, "Totals")?;
    let mut totals = Table::new(&["", "", ""], usize::MAX).right(&[1]);
    let rows: [(&str, u64, &str); 11] = [
        ("requests", t.requests, "access-log lines"),
        (
            "refused requests",
            t.refused_requests,
            "decision deny or closed",
        ),
        ("auth events", t.auth_events, "auth-log lines"),
        (
            "logins succeeded",
            t.logins_succeeded,
            "password and second-factor steps",
        ),
        ("logins failed", t.logins_failed, ""),
        (
            "auth failures",
            t.auth_failures,
            "any auth event with result failure",
        ),
        ("lockouts", t.lockouts, ""),
        ("IP blocks", t.ip_blocks, ""),
        (
            "users",
            t.users,
            "distinct, with a successful login or an allowed request",
        ),
        ("client IPs", t.client_ips, "distinct"),
        ("malformed lines", t.malformed_lines, "skipped"),
    ];
    for (name, n, note) in rows {
        totals.push(
            vec![format!("  {name}"), n.to_string(), note.to_owned()],
            out,
        )?;
    }
    // The header row of this table is blank; write the rows only.
    let mut buf = Vec::new();
    totals.finish(&mut buf)?;
    let text = String::from_utf8_lossy(&buf);
    for line in text.lines().skip(1) {
        writeln!(out, "{}", line.trim_end())?;
    }

    section(out, "Gateways")?;
    let mut tb = Table::new(
        &[
            "GATEWAY",
            "REQUESTS",
            "AUTH EVENTS",
            "LOGINS SUCCEEDED",
            "LOGINS FAILED",
        ],
        usize::MAX,
    )
    .right(&[1, 2, 3, 4]);
    for g in &s.gateways {
        tb.push(
            vec![
                printable(&g.gateway).into_owned(),
                g.requests.to_string(),
                g.auth_events.to_string(),
                g.logins_succeeded.to_string(),
                g.logins_failed.to_string(),
            ],
            out,
        )?;
    }
    finish(tb, s.gateways.is_empty(), out)?;

    section(out, "Logins by method and location")?;
    let mut tb =
        Table::new(&["METHOD", "NETWORK", "SUCCESS", "FAILURE"], usize::MAX).right(&[2, 3]);
    for l in &s.logins {
        tb.push(
            vec![
                printable(&l.method).into_owned(),
                printable(&l.network).into_owned(),
                l.success.to_string(),
                l.failure.to_string(),
            ],
            out,
        )?;
    }
    finish(tb, s.logins.is_empty(), out)?;

    methods(s, out)?;
    codes(s, out)?;
    sms_users(s, top, out)?;

    section(out, "Failures by reason (auth events with result failure)")?;
    let mut tb = Table::new(&["EVENT", "REASON", "COUNT"], usize::MAX).right(&[2]);
    for f in &s.failures {
        tb.push(
            vec![
                printable(&f.event).into_owned(),
                printable(&f.reason).into_owned(),
                f.count.to_string(),
            ],
            out,
        )?;
    }
    finish(tb, s.failures.is_empty(), out)?;

    section(out, &format!("Lockouts: {} (top {top} users)", t.lockouts))?;
    counts(&s.lockouts, "USER", out)?;
    section(
        out,
        &format!("IP blocks: {} (top {top} addresses)", t.ip_blocks),
    )?;
    counts(&s.ip_blocks, "CLIENT IP", out)?;

    section(
        out,
        &format!("Top {top} refused users (auth failures; requests denied or closed)"),
    )?;
    refused(&s.refused_users, "USER", out)?;
    section(out, &format!("Top {top} refused client IPs"))?;
    refused(&s.refused_ips, "CLIENT IP", out)?;

    section(out, "Services used")?;
    let mut tb = Table::new(
        &["SERVICE", "REQUESTS", "ALLOWED", "REFUSED", "USERS"],
        usize::MAX,
    )
    .right(&[1, 2, 3, 4]);
    for v in &s.services {
        tb.push(
            vec![
                printable(&v.service).into_owned(),
                v.requests.to_string(),
                v.allowed.to_string(),
                v.refused.to_string(),
                v.users.to_string(),
            ],
            out,
        )?;
    }
    finish(tb, s.services.is_empty(), out)?;

    section(out, "Access decisions")?;
    counts(&s.decisions, "DECISION", out)?;

    section(out, "Auth events")?;
    let mut tb = Table::new(&["EVENT", "RESULT", "COUNT"], usize::MAX).right(&[2]);
    for e in &s.events {
        tb.push(
            vec![
                printable(&e.event).into_owned(),
                printable(&e.result).into_owned(),
                e.count.to_string(),
            ],
            out,
        )?;
    }
    finish(tb, s.events.is_empty(), out)
}

fn section(out: &mut dyn Write, title: &str) -> io::Result<()> {
    writeln!(out, "\n{title}")
}

fn finish(mut t: Table, empty: bool, out: &mut dyn Write) -> io::Result<()> {
    if empty {
        writeln!(out, "(none)")
    } else {
        t.finish(out)
    }
}

fn counts(rows: &[CountRow], what: &'static str, out: &mut dyn Write) -> io::Result<()> {
    let mut tb = Table::new(&[what, "COUNT"], usize::MAX).right(&[1]);
    for r in rows {
        tb.push(
            vec![printable(&r.name).into_owned(), r.count.to_string()],
            out,
        )?;
    }
    finish(tb, rows.is_empty(), out)
}

fn refused(rows: &[RefusedRow], what: &'static str, out: &mut dyn Write) -> io::Result<()> {
    let mut tb = Table::new(
        &[what, "AUTH FAILURES", "REFUSED REQUESTS", "TOTAL"],
        usize::MAX,
    )
    .right(&[1, 2, 3]);
    for r in rows {
        tb.push(
            vec![
                printable(&r.who).into_owned(),
                r.auth_failures.to_string(),
                r.refused_requests.to_string(),
                r.total.to_string(),
            ],
            out,
        )?;
    }
    finish(tb, rows.is_empty(), out)
}

fn methods(s: &Summary, out: &mut dyn Write) -> io::Result<()> {
    let m = &s.methods;
    section(out, "Methods of active users")?;
    writeln!(
        out,
        "{} active user{} (a successful login step in the period). A user counts\n\
         for every method used, so the shares add up to more than 100 %.",
        m.active_users,
        if m.active_users == 1 { "" } else { "s" }
    )?;
    let mut tb = Table::new(&["METHOD", "USERS", "SHARE", "LOGINS"], usize::MAX).right(&[1, 2, 3]);
    for r in &m.methods {
        tb.push(
            vec![
                printable(&r.method).into_owned(),
                r.users.to_string(),
                format!("{:.1} %", r.share_percent),
                r.logins.to_string(),
            ],
            out,
        )?;
    }
    finish(tb, m.methods.is_empty(), out)
}

/// `amount currency`, or `-` where there is no price.
fn cost(amount: Option<Amount>, price: Option<&Price>) -> String {
    match (amount, price) {
        (Some(a), Some(p)) => format!("{a} {}", p.currency),
        _ => "-".to_owned(),
    }
}

fn codes(s: &Summary, out: &mut dyn Write) -> io::Result<()> {
    let price = s.codes.cost_per_message.as_ref();
    match price {
        Some(p) => section(out, &format!("Codes sent (SMS at {p} a message)"))?,
        None => section(
            out,
            "Codes sent (cost: not configured; set notify.sms.cost_per_message and\n\
             notify.sms.currency, and give --config)",
        )?,
    }
    let mut tb = Table::new(
        &[
            "CHANNEL",
            "SENT",
            "FOR LOGIN",
            "FOR ENROLMENT",
            "DELIVERY FAILED",
            "NOT SENT",
            "ESTIMATED COST",
        ],
        usize::MAX,
    )
    .right(&[1, 2, 3, 4, 5, 6]);
    for c in &s.codes.channels {
        tb.push(
            vec![
                printable(&c.channel).into_owned(),
                c.sent.to_string(),
                c.login.to_string(),
                c.enrolment.to_string(),
                c.delivery_failed.to_string(),
                c.not_sent.to_string(),
                cost(c.estimated_cost, price),
            ],
            out,
        )?;
    }
    finish(tb, s.codes.channels.is_empty(), out)
}

fn sms_users(s: &Summary, top: usize, out: &mut dyn Write) -> io::Result<()> {
    let price = s.codes.cost_per_message.as_ref();
    section(
        out,
        &format!(
            "Top {top} users logging in from outside by SMS (worth moving to the authenticator app)"
        ),
    )?;
    let mut tb = Table::new(
        &[
            "USER",
            "SMS LOGINS FROM OUTSIDE",
            "SMS CODES",
            "ESTIMATED COST",
            "METHODS USED",
        ],
        usize::MAX,
    )
    .right(&[1, 2, 3]);
    for u in &s.sms_from_outside {
        let methods: Vec<String> = u
            .methods
            .iter()
            .map(|m| printable(m).into_owned())
            .collect();
        tb.push(
            vec![
                printable(&u.user).into_owned(),
                u.sms_logins.to_string(),
                u.sms_codes.to_string(),
                cost(u.estimated_cost, price),
                methods.join(", "),
            ],
            out,
        )?;
    }
    finish(tb, s.sms_from_outside.is_empty(), out)
}
