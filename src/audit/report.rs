//! `portvakt audit report`: one pass over the logs of a period, summarised
//! for an auditor: how people logged in and from where, which methods the
//! active users use, how many one-time codes were sent and what the SMS
//! cost, who logs in from outside by SMS most, what failed and why, who was
//! locked out, who and which addresses were refused most, and which services
//! were used by how many people ([`adoption`] defines the method and cost
//! figures).
//!
//! Memory grows with the number of distinct users, addresses and services,
//! never with the number of lines.
#![warn(missing_docs)]

use std::collections::{HashMap, HashSet};
use std::io::{self, Write};
use std::path::Path;
use std::process::ExitCode;

use crate::audit::logread::{
    format_ms, line_time_ms, parse, BadLine, Inputs, Kind, LineEnd, Loaded, LogError, Period,
    PeriodArgs, Problems, Record, Stream,
};
use crate::audit::vocabulary::{Event, Outcome};
use crate::notify::config::Price;

const AFTER_HELP: &str = "\
Without --since/--until the report covers every line of the files given (so an
archived month reports as that month); it prints the first and last time it saw.

Examples:
  portvakt audit report --config /etc/portvakt/portvakt.yaml --since 24h
  portvakt audit report /var/log/portvakt/*.jsonl* --since 2026-11-01 --until 2026-11-30
  portvakt audit report -c portvakt.yaml --since 7d --json --top 20
  portvakt audit report -c gw-a.yaml -c gw-b.yaml --since 2026-11-01 --until 2026-11-30
  portvakt audit report /var/log/portvakt/ --since 7d     # every gateway writing there

The estimated SMS cost needs the price of one message from the configuration
(notify.sms.cost_per_message and notify.sms.currency), so give --config;
without it the report counts the codes and says \"cost: not configured\".

Over several gateways every figure is for the whole cluster: a login is
counted on the gateway where it happened, once, wherever the session was used
afterwards. The \"Gateways\" section shows each gateway's share.";

/// Period and output format for `portvakt audit report`.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct ReportArgs {
    /// Which logs.
    #[command(flatten)]
    pub inputs: Inputs,
    /// Which period (default: every line of the files).
    #[command(flatten)]
    pub period: PeriodArgs,
    /// How many rows the "top" lists show (refused users and addresses,
    /// lockouts, IP blocks, users logging in from outside by SMS).
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub top: usize,
    /// Print the summary as one JSON document.
    #[arg(long)]
    pub json: bool,
}

/// Decisions that refuse a request (as opposed to asking for a login).
const REFUSED: &[&str] = &["deny", "closed"];

/// Counts per `(success, failure)`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Pair {
    success: u64,
    failure: u64,
}

/// Refusals of one user or address.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Refusals {
    auth: u64,
    access: u64,
}

/// One gateway's share.
#[derive(Debug, Default, Clone, Copy)]
struct GatewayTally {
    requests: u64,
    auth_events: u64,
    logins: Pair,
}

#[derive(Debug, Default)]
struct ServiceTally {
    requests: u64,
    allowed: u64,
    refused: u64,
    users: HashSet<String>,
}

/// Everything counted so far; [`Tally::summary`] sorts and trims it.
#[derive(Debug, Default)]
pub struct Tally {
    first: Option<i64>,
    last: Option<i64>,
    requests: u64,
    auth_events: u64,
    decisions: HashMap<String, u64>,
    events: HashMap<String, HashMap<String, u64>>,
    logins: HashMap<String, HashMap<String, Pair>>,
    failures: HashMap<String, HashMap<String, u64>>,
    lockouts: HashMap<String, u64>,
    lockouts_total: u64,
    ip_blocks: HashMap<String, u64>,
    ip_blocks_total: u64,
    refused_users: HashMap<String, Refusals>,
    refused_ips: HashMap<String, Refusals>,
    services: HashMap<String, ServiceTally>,
    users: HashSet<String>,
    client_ips: HashSet<String>,
    /// By the gateway that wrote the line (`-`: before gateways had names).
    gateways: HashMap<String, GatewayTally>,
    /// Methods, codes and their cost.
    adoption: AdoptionTally,
}

/// A login step that proved something or failed to: the password (event
/// `login`), or a second factor (its success is logged as `login` with the
/// factor's method, its failure as `second_factor`).
fn is_login_step(r: &Record<'_>) -> bool {
    let event = r.f.event.as_deref();
    let result = r.f.result.as_deref();
    (event == Some(Event::Login.as_str()) || event == Some(Event::SecondFactor.as_str()))
        && (result == Some(Outcome::Success.as_str()) || result == Some(Outcome::Failure.as_str()))
}

/// Update `map[key]`, allocating the key only the first time it is seen
/// (millions of lines share a few hundred keys).
fn with<V: Default>(map: &mut HashMap<String, V>, key: &str, f: impl FnOnce(&mut V)) {
    if let Some(v) = map.get_mut(key) {
        f(v);
        return;
    }
    f(map.entry(key.to_owned()).or_default());
}

fn remember(set: &mut HashSet<String>, value: &str) {
    if !set.contains(value) {
        set.insert(value.to_owned());
    }
}

fn or_dash(v: Option<&str>) -> &str {
    match v {
        Some(s) if !s.is_empty() => s,
        _ => "-",
    }
}

impl Tally {
    /// Count one record (already known to be inside the period).
    pub fn add(&mut self, r: &Record<'_>) {
        if r.is_chain_anchor() {
            return;
        }
        self.first = Some(self.first.map_or(r.time_ms, |t| t.min(r.time_ms)));
        self.last = Some(self.last.map_or(r.time_ms, |t| t.max(r.time_ms)));
        let f = &r.f;
        if let Some(ip) = f.client_ip.as_deref() {
            remember(&mut self.client_ips, ip);
        }
        with(&mut self.gateways, or_dash(f.gateway.as_deref()), |g| {
            match r.kind {
                Kind::Access => g.requests += 1,
                Kind::Auth => g.auth_events += 1,
            };
            if r.kind == Kind::Auth && is_login_step(r) {
                let result = f.result.as_deref();
                g.logins.success += u64::from(result == Some(Outcome::Success.as_str()));
                g.logins.failure += u64::from(result == Some(Outcome::Failure.as_str()));
            }
        });
        match r.kind {
            Kind::Access => self.add_access(r),
            Kind::Auth => self.add_auth(r),
        }
    }

    fn add_access(&mut self, r: &Record<'_>) {
        let f = &r.f;
        self.requests += 1;
        let decision = or_dash(f.decision.as_deref());
        with(&mut self.decisions, decision, |n| *n += 1);
        let allowed = decision == "allow";
        let refused = REFUSED.contains(&decision);
        match f.service.as_deref() {
            Some(service) => with(&mut self.services, service, |s| {
                s.requests += 1;
                s.allowed += u64::from(allowed);
                s.refused += u64::from(refused);
                if let (true, Some(user)) = (allowed, f.user.as_deref()) {
                    remember(&mut s.users, user);
                }
            }),
            // Users of services are counted from the services' own sets at
            // the end: one set lookup per request instead of two.
            None => {
                if let (true, Some(user)) = (allowed, f.user.as_deref()) {
                    remember(&mut self.users, user);
                }
            }
        }
        if refused {
            if let Some(user) = f.user.as_deref() {
                with(&mut self.refused_users, user, |c| c.access += 1);
            }
            if let Some(ip) = f.client_ip.as_deref() {
                with(&mut self.refused_ips, ip, |c| c.access += 1);
            }
        }
    }

    fn add_auth(&mut self, r: &Record<'_>) {
        let f = &r.f;
        self.auth_events += 1;
        self.adoption.add(r);
        let event = or_dash(f.event.as_deref());
        let result = or_dash(f.result.as_deref());
        let reason = or_dash(f.reason.as_deref());
        with(&mut self.events, event, |m| with(m, result, |n| *n += 1));
        let success = result == Outcome::Success.as_str();
        let failure = result == Outcome::Failure.as_str();
        // A login is each step that proves something: the password (event
        // `login`), and a second factor (its success is logged as `login`
        // with the factor's method, its failure as `second_factor`).
        if is_login_step(r) {
            let method = or_dash(f.method.as_deref());
            let network = or_dash(f.network.as_deref());
            with(&mut self.logins, method, |m| {
                with(m, network, |p| {
                    p.success += u64::from(success);
                    p.failure += u64::from(failure);
                })
            });
        }
        if failure {
            with(&mut self.failures, event, |m| with(m, reason, |n| *n += 1));
            if let Some(user) = f.user.as_deref() {
                with(&mut self.refused_users, user, |c| c.auth += 1);
            }
            if let Some(ip) = f.client_ip.as_deref() {
                with(&mut self.refused_ips, ip, |c| c.auth += 1);
            }
        }
        if event == Event::Login.as_str() && success {
            if let Some(user) = f.user.as_deref() {
                remember(&mut self.users, user);
            }
        }
        if event == Event::Lockout.as_str() {
            self.lockouts_total += 1;
            with(&mut self.lockouts, or_dash(f.user.as_deref()), |n| *n += 1);
        }
        if event == Event::IpBlock.as_str() {
            self.ip_blocks_total += 1;
            with(&mut self.ip_blocks, or_dash(f.client_ip.as_deref()), |n| {
                *n += 1
            });
        }
    }

    /// Sorted, trimmed to `top` where the report says "top"; SMS priced at
    /// `price` if given.
    pub fn summary(
        &self,
        period: Period,
        files: Vec<FileSummary>,
        malformed: u64,
        top: usize,
        price: Option<&Price>,
    ) -> Summary {
        let auth_failures = self.failures.values().flat_map(HashMap::values).sum();
        let mut logins: Vec<LoginRow> = self
            .logins
            .iter()
            .flat_map(|(method, m)| {
                m.iter().map(move |(network, p)| LoginRow {
                    method: method.clone(),
                    network: network.clone(),
                    success: p.success,
                    failure: p.failure,
                })
            })
            .collect();
        logins.sort_by(|a, b| {
            (b.success + b.failure)
                .cmp(&(a.success + a.failure))
                .then_with(|| (&a.method, &a.network).cmp(&(&b.method, &b.network)))
        });
        let mut failures: Vec<FailureRow> = self
            .failures
            .iter()
            .flat_map(|(event, m)| {
                m.iter().map(move |(reason, n)| FailureRow {
                    event: event.clone(),
                    reason: reason.clone(),
                    count: *n,
                })
            })
            .collect();
        failures.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| (&a.event, &a.reason).cmp(&(&b.event, &b.reason)))
        });
        let mut events: Vec<EventRow> = self
            .events
            .iter()
            .flat_map(|(event, m)| {
                m.iter().map(move |(result, n)| EventRow {
                    event: event.clone(),
                    result: result.clone(),
                    count: *n,
                })
            })
            .collect();
        events.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| (&a.event, &a.result).cmp(&(&b.event, &b.result)))
        });
        let refused = |map: &HashMap<String, Refusals>| -> Vec<RefusedRow> {
            let mut rows: Vec<RefusedRow> = map
                .iter()
                .map(|(who, c)| RefusedRow {
                    who: who.clone(),
                    auth_failures: c.auth,
                    refused_requests: c.access,
                    total: c.auth + c.access,
                })
                .collect();
            rows.sort_by(|a, b| b.total.cmp(&a.total).then_with(|| a.who.cmp(&b.who)));
            rows.truncate(top);
            rows
        };
        let counted = |map: &HashMap<String, u64>, keep: usize| -> Vec<CountRow> {
            let mut rows: Vec<CountRow> = map
                .iter()
                .map(|(name, n)| CountRow {
                    name: name.clone(),
                    count: *n,
                })
                .collect();
            rows.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.name.cmp(&b.name)));
            rows.truncate(keep);
            rows
        };
        let mut services: Vec<ServiceRow> = self
            .services
            .iter()
            .map(|(name, s)| ServiceRow {
                service: name.clone(),
                requests: s.requests,
                allowed: s.allowed,
                refused: s.refused,
                users: s.users.len() as u64,
            })
            .collect();
        services.sort_by(|a, b| {
            b.requests
                .cmp(&a.requests)
                .then_with(|| a.service.cmp(&b.service))
        });
        let mut gateways: Vec<GatewayRow> = self
            .gateways
            .iter()
            .map(|(name, g)| GatewayRow {
                gateway: name.clone(),
                requests: g.requests,
                auth_events: g.auth_events,
                logins_succeeded: g.logins.success,
                logins_failed: g.logins.failure,
            })
            .collect();
        gateways.sort_by(|a, b| a.gateway.cmp(&b.gateway));
        let logins_succeeded = logins.iter().map(|l| l.success).sum();
        let logins_failed = logins.iter().map(|l| l.failure).sum();
        Summary {
            period: PeriodSummary {
                since: period.since.map(format_ms),
                until: period.until.map(format_ms),
                first: self.first.map(format_ms),
                last: self.last.map(format_ms),
            },
            files,
            totals: Totals {
                requests: self.requests,
                refused_requests: REFUSED.iter().filter_map(|d| self.decisions.get(*d)).sum(),
                auth_events: self.auth_events,
                logins_succeeded,
                logins_failed,
                auth_failures,
                lockouts: self.lockouts_total,
                ip_blocks: self.ip_blocks_total,
                users: self
                    .services
                    .values()
                    .flat_map(|s| &s.users)
                    .chain(&self.users)
                    .collect::<HashSet<_>>()
                    .len() as u64,
                client_ips: self.client_ips.len() as u64,
                malformed_lines: malformed,
            },
            gateways,
            logins,
            methods: self.adoption.methods(),
            codes: self.adoption.codes(price),
            sms_from_outside: self.adoption.sms_from_outside(top, price),
            failures,
            lockouts: counted(&self.lockouts, top),
            ip_blocks: counted(&self.ip_blocks, top),
            refused_users: refused(&self.refused_users),
            refused_ips: refused(&self.refused_ips),
            services,
            decisions: counted(&self.decisions, usize::MAX),
            events,
        }
    }
}

/// Print the report; the exit code for the CLI.
pub fn run(args: ReportArgs) -> ExitCode {
    const ME: &str = "portvakt audit report";
    let period = match args.period.period() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{ME}: {e}");
            return ExitCode::from(2);
        }
    };
    let (streams, configs) = match args.inputs.open_with_configs(ME) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let price = sms_price(&configs, &mut |note| eprintln!("{ME}: note: {note}"));
    let mut problems = Problems::default();
    let summary = match summarise(
        streams,
        period,
        args.inputs.log,
        args.top,
        price.as_ref(),
        &mut problems,
    ) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{ME}: {e}");
            return ExitCode::from(e.exit_code());
        }
    };
    eprint!("{}", problems.describe(ME));
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let written = if args.json {
        serde_json::to_writer_pretty(&mut out, &summary)
            .map_err(io::Error::other)
            .and_then(|_| writeln!(out))
    } else {
        render(&summary, args.top, &mut out)
    };
    match written.and_then(|_| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{ME}: cannot write the output: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The price of one SMS the configurations agree on. Those that set none
/// are left out (a price is a fact about the provider's bill, not about one
/// gateway); if two set different prices, none is used and `note` says why:
/// an estimate at either price would be wrong for the other's share.
pub fn sms_price(configs: &[Loaded], note: &mut dyn FnMut(String)) -> Option<Price> {
    agreed_price(
        configs
            .iter()
            .map(|l| (l.path.as_path(), l.config.notify.sms.cost.as_ref())),
        note,
    )
}

fn agreed_price<'a>(
    prices: impl Iterator<Item = (&'a Path, Option<&'a Price>)>,
    note: &mut dyn FnMut(String),
) -> Option<Price> {
    let mut priced = prices.filter_map(|(path, price)| Some((path, price?)));
    let (first_path, first) = priced.next()?;
    if let Some((path, other)) = priced.find(|(_, p)| *p != first) {
        note(format!(
            "{} prices an SMS at {first}, {} at {other}: the SMS cost is not estimated",
            first_path.display(),
            path.display()
        ));
        return None;
    }
    Some(first.clone())
}

/// Read every stream once and summarise the lines inside `period`; SMS are
/// priced at `price` if given.
pub fn summarise(
    streams: Vec<Stream>,
    period: Period,
    only: Option<Kind>,
    top: usize,
    price: Option<&Price>,
    problems: &mut Problems,
) -> Result<Summary, LogError> {
    let mut tally = Tally::default();
    let mut files = Vec::new();
    for mut s in streams {
        while let Some(end) = s.next_line()? {
            let Some(r) = read(&s.buf, end, period, problems, &s) else {
                continue;
            };
            if only.is_none_or(|k| k == r.kind) {
                tally.add(&r);
            }
        }
        files.extend(
            s.files()
                .iter()
                .zip(&s.lines)
                .map(|(path, lines)| FileSummary {
                    path: path.clone(),
                    lines: *lines,
                }),
        );
    }
    Ok(tally.summary(period, files, problems.malformed, top, price))
}

/// The record on a line inside the period; problems counted.
fn read<'a>(
    buf: &'a [u8],
    end: LineEnd,
    period: Period,
    problems: &mut Problems,
    s: &Stream,
) -> Option<Record<'a>> {
    if end == LineEnd::TooLong {
        problems.bad_line(s.path(), s.line_no, end, &BadLine::TooLong);
        return None;
    }
    // Outside the period by its written time: skipped unparsed.
    if !period.is_all() && line_time_ms(buf).is_some_and(|t| !period.contains(t)) {
        return None;
    }
    let parsed = std::str::from_utf8(buf)
        .map_err(|_| BadLine::Utf8)
        .and_then(parse);
    match parsed {
        Ok(r) if period.contains(r.time_ms) => Some(r),
        Ok(_) => None,
        Err(e) => {
            problems.bad_line(s.path(), s.line_no, end, &e);
            None
        }
    }
}

pub mod adoption;
mod summary;
mod text;

use adoption::AdoptionTally;
pub use summary::{
    ChannelRow, Codes, CountRow, EventRow, FailureRow, FileSummary, GatewayRow, LoginRow,
    MethodRow, Methods, PeriodSummary, RefusedRow, ServiceRow, SmsUserRow, Summary, Totals,
};

use text::render;

#[cfg(test)]
mod adoption_tests;
#[cfg(test)]
mod tests;
