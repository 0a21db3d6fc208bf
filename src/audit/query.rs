//! `portvakt audit query`: the access and auth lines that match a filter,
//! in time order across all the logs given, as an aligned table or as the
//! original JSON lines.
//!
//! Filters of one flag are alternatives (`--user a --user b`: either);
//! different flags must all hold. Flags that only make sense for one log
//! (`--service`, `--decision` for access lines; `--result`, `--event` for
//! auth lines) leave the other log out, unless that log has a filter of its
//! own: `--decision deny --result failure` lists every refusal in both.
#![warn(missing_docs)]

mod prefilter;
pub(crate) mod table;

use std::io::{self, Write};
use std::net::IpAddr;
use std::process::ExitCode;

use ipnet::IpNet;

use crate::audit::logread::{
    line_time_ms, parse, printable, BadLine, Inputs, Kind, LineEnd, LogError, Period, PeriodArgs,
    Problems, Record, Stream, CHAIN_ANCHOR,
};
use crate::audit::vocabulary::{self, Event};
use prefilter::Prefilter;
use table::Table;

const AFTER_HELP: &str = "\
Examples:
  portvakt audit query --config /etc/portvakt/portvakt.yaml --user alice --since 7d
  portvakt audit query -c portvakt.yaml --service Lönebesked --network external --since 2026-11-16
  portvakt audit query /var/log/portvakt/auth.jsonl* --result failure --ip 10.20.0.0/16
  portvakt audit query -c portvakt.yaml --decision deny,closed --result failure --json | jq .
  portvakt audit query -c gw-a.yaml -c gw-b.yaml --user alice --since 24h
  portvakt audit query /var/log/portvakt/ --user alice        # every gateway writing there
  portvakt audit query /var/log/portvakt/ --gateway gw-b --result failure

Several gateways' logs are merged into one time order; the GATEWAY column
says which gateway wrote each line (`-`: written before gateways had names).

Names are matched exactly (case matters). Times are UTC. Exit status: 0 when the
logs were read (with or without matches), 1 when a file cannot be read, 2 for
bad arguments.";

/// Filters and output format for `portvakt audit query`.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct QueryArgs {
    /// Which logs.
    #[command(flatten)]
    pub inputs: Inputs,
    /// Which period.
    #[command(flatten)]
    pub period: PeriodArgs,
    /// What to look for (boxed: the CLI's enum of subcommands stays small).
    #[command(flatten)]
    pub select: Box<Select>,
    /// Stop after N matching lines (the earliest N).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub limit: Option<u64>,
    /// Print the matching lines unchanged, as JSON lines.
    #[arg(long)]
    pub json: bool,
}

/// The filters of `portvakt audit query`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Select {
    /// Lines of this user (the name as logged; repeat for several).
    #[arg(long, short, value_name = "NAME")]
    pub user: Vec<String>,
    /// Lines of this realm (its id).
    #[arg(long, value_name = "ID")]
    pub realm: Vec<String>,
    /// Lines written by this gateway (its audit.gateway name); repeat for several.
    #[arg(long, short = 'g', value_name = "NAME")]
    pub gateway: Vec<String>,
    /// Access lines of this service (its name in the configuration).
    /// Auth lines carry no service: use --host for them.
    #[arg(long, short, value_name = "NAME")]
    pub service: Vec<String>,
    /// Lines for this host name (either log).
    #[arg(long, value_name = "HOST")]
    pub host: Vec<String>,
    /// Lines of this request: its access line and its auth events (the id
    /// the upstream received as X-Request-Id).
    #[arg(long, value_name = "ID")]
    pub request_id: Vec<String>,
    /// Lines whose client address is this address or inside this network
    /// (10.20.0.0/16, 2001:db8::/32); comma-separated or repeated.
    #[arg(long, value_name = "IP|CIDR", value_delimiter = ',', value_parser = parse_net)]
    pub ip: Vec<IpNet>,
    /// Lines from the realm's internal networks or from outside them.
    #[arg(long, value_enum)]
    pub network: Option<Network>,
    /// Access lines with this decision: allow, login, step_up, deny, closed,
    /// page, redirect, not_found, error, … (comma-separated or repeated).
    #[arg(long, value_name = "DECISION", value_delimiter = ',')]
    pub decision: Vec<String>,
    /// Auth lines with this result.
    #[arg(long, value_name = "RESULT", value_delimiter = ',',
          value_parser = clap::builder::PossibleValuesParser::new(
              vocabulary::Outcome::ALL.iter().map(|o| o.as_str())))]
    pub result: Vec<String>,
    /// Auth lines of this event: login, second_factor, logout, expired,
    /// lockout, ip_block, code_sent, enrolment, reauth, admin, …
    #[arg(long, value_name = "EVENT", value_delimiter = ',')]
    pub event: Vec<String>,
}

/// Where a client was, as the logs record it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Network {
    /// On one of the realm's internal networks.
    Internal,
    /// Anywhere else.
    External,
}

impl Network {
    fn as_str(self) -> &'static str {
        match self {
            Network::Internal => "internal",
            Network::External => "external",
        }
    }
}

/// An address is a network of one.
fn parse_net(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    if let Ok(net) = s.parse::<IpNet>() {
        // 10.20.3.4/16 is almost certainly meant as 10.20.0.0/16.
        return Ok(net.trunc());
    }
    s.parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| format!("`{s}` is neither an IP address nor a network (10.20.0.0/16)"))
}

/// Decisions the gateway writes today; others are allowed (a newer gateway
/// may write more) but earn a hint when nothing matched.
const KNOWN_DECISIONS: &[&str] = &[
    "allow",
    "login",
    "step_up",
    "deny",
    "closed",
    "page",
    "redirect",
    "not_found",
    "bad_request",
    "error",
    "csrf",
    "logout",
    "asset",
];

/// Why a query's arguments cannot be used (exit 2).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum QueryError {
    /// A filter for one log combined with `--log` naming the other.
    #[error("{flag} filters {wanted} lines, but --log {log} leaves only {log} lines")]
    KindConflict {
        /// The flag.
        flag: &'static str,
        /// The log it filters.
        wanted: &'static str,
        /// The log asked for.
        log: &'static str,
    },
    /// `--since` not before `--until`.
    #[error("{0}")]
    Period(String),
}

/// The compiled filter.
#[derive(Debug)]
pub struct Filter {
    users: Vec<String>,
    realms: Vec<String>,
    gateways: Vec<String>,
    services: Vec<String>,
    hosts: Vec<String>,
    request_ids: Vec<String>,
    nets: Vec<IpNet>,
    network: Option<&'static str>,
    decisions: Vec<String>,
    results: Vec<String>,
    events: Vec<String>,
    access: bool,
    auth: bool,
    period: Period,
    prefilter: Prefilter,
}

impl Filter {
    /// Compile the arguments, or say why they cannot all hold.
    pub fn new(a: &QueryArgs) -> Result<Filter, QueryError> {
        let access_only = [
            ("--service", &a.select.service),
            ("--decision", &a.select.decision),
        ];
        let auth_only = [("--result", &a.select.result), ("--event", &a.select.event)];
        let has =
            |fs: &[(&'static str, &Vec<String>)]| fs.iter().find(|f| !f.1.is_empty()).map(|f| f.0);
        let (access_flag, auth_flag) = (has(&access_only), has(&auth_only));
        match (a.inputs.log, access_flag, auth_flag) {
            (Some(Kind::Auth), Some(flag), _) => {
                return Err(QueryError::KindConflict {
                    flag,
                    wanted: "access",
                    log: "auth",
                })
            }
            (Some(Kind::Access), _, Some(flag)) => {
                return Err(QueryError::KindConflict {
                    flag,
                    wanted: "auth",
                    log: "access",
                })
            }
            _ => {}
        }
        let log_allows = |k: Kind| a.inputs.log.is_none_or(|l| l == k);
        let access = log_allows(Kind::Access) && (auth_flag.is_none() || access_flag.is_some());
        let auth = log_allows(Kind::Auth) && (access_flag.is_none() || auth_flag.is_some());
        let period = a.period.period().map_err(QueryError::Period)?;
        let mut f = Filter {
            users: a.select.user.clone(),
            realms: a.select.realm.clone(),
            gateways: a.select.gateway.clone(),
            services: a.select.service.clone(),
            hosts: a
                .select
                .host
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            request_ids: a.select.request_id.clone(),
            nets: a.select.ip.clone(),
            network: a.select.network.map(Network::as_str),
            decisions: a.select.decision.clone(),
            results: a.select.result.clone(),
            events: a.select.event.clone(),
            access,
            auth,
            period,
            prefilter: Prefilter::default(),
        };
        f.prefilter = Prefilter::for_filter(&f);
        Ok(f)
    }

    /// Whether a parsed line matches.
    pub fn matches(&self, r: &Record<'_>) -> bool {
        let f = &r.f;
        let kind_ok = match r.kind {
            Kind::Access => {
                self.access
                    && one_of(&self.services, f.service.as_deref())
                    && one_of(&self.decisions, f.decision.as_deref())
            }
            Kind::Auth => {
                // The chain anchor is bookkeeping, not a decision: shown
                // only to someone who asks for it by name.
                self.auth
                    && one_of(&self.results, f.result.as_deref())
                    && one_of(&self.events, f.event.as_deref())
                    && (!r.is_chain_anchor() || self.events.iter().any(|e| e == CHAIN_ANCHOR))
            }
        };
        kind_ok
            && self.period.contains(r.time_ms)
            && one_of(&self.users, f.user.as_deref())
            && one_of(&self.realms, f.realm.as_deref())
            && one_of(&self.gateways, f.gateway.as_deref())
            && one_of(&self.request_ids, f.request_id.as_deref())
            && self.network.is_none_or(|n| f.network.as_deref() == Some(n))
            && (self.hosts.is_empty()
                || f.host.as_deref().is_some_and(|h| {
                    let h = h
                        .rsplit_once(':')
                        .filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit()))
                        .map_or(h, |(h, _)| h);
                    self.hosts.iter().any(|want| want.eq_ignore_ascii_case(h))
                }))
            && (self.nets.is_empty()
                || f.client_ip
                    .as_deref()
                    .and_then(|ip| ip.parse::<IpAddr>().ok())
                    .is_some_and(|ip| self.nets.iter().any(|n| n.contains(&ip))))
    }
}

fn one_of(wanted: &[String], value: Option<&str>) -> bool {
    wanted.is_empty() || value.is_some_and(|v| wanted.iter().any(|w| w == v))
}

/// What one run found, for the summary and the tests.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Lines read.
    pub read: u64,
    /// Lines printed.
    pub matched: u64,
    /// Stopped at `--limit`.
    pub limited: bool,
}

/// Run the query; the exit code for the CLI.
pub fn run(args: QueryArgs) -> ExitCode {
    const ME: &str = "portvakt audit query";
    let filter = match Filter::new(&args) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{ME}: {e}");
            return ExitCode::from(2);
        }
    };
    let streams = match args.inputs.open_streams(ME) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let stdout = io::stdout();
    let mut out = io::BufWriter::with_capacity(256 << 10, stdout.lock());
    let mut problems = Problems::default();
    let result = query(&args, &filter, streams, &mut out, &mut problems);
    let flushed = out.flush();
    eprint!("{}", problems.describe(ME));
    match result.and_then(|o| flushed.map(|_| o).map_err(QueryFailure::from)) {
        Ok(outcome) => {
            if outcome.matched == 0 {
                for hint in hints(&args) {
                    eprintln!("{ME}: note: {hint}");
                }
            }
            ExitCode::SUCCESS
        }
        Err(QueryFailure::Log(e)) => {
            eprintln!("{ME}: {e}");
            ExitCode::from(e.exit_code())
        }
        // `… | head` closes the pipe: the reader has what it wanted.
        Err(QueryFailure::Output(e)) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(QueryFailure::Output(e)) => {
            eprintln!("{ME}: cannot write the output: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Values that the gateway never writes, named when nothing matched.
fn hints(a: &QueryArgs) -> Vec<String> {
    let unknown = |vs: &[String], known: &[&str], what: &str| -> Vec<String> {
        vs.iter()
            .filter(|v| !known.contains(&v.as_str()))
            .map(|v| {
                format!(
                    "`{v}` is not {what} this version of portvakt writes ({})",
                    known.join(", ")
                )
            })
            .collect()
    };
    let mut out = unknown(&a.select.decision, KNOWN_DECISIONS, "a decision");
    let events: Vec<&str> = Event::ALL.iter().map(|e| e.as_str()).collect();
    out.extend(unknown(&a.select.event, &events, "an event"));
    out
}

/// Why a query stopped early.
#[derive(Debug, thiserror::Error)]
pub enum QueryFailure {
    /// Reading a log failed.
    #[error(transparent)]
    Log(#[from] LogError),
    /// Writing the output failed.
    #[error("cannot write the output: {0}")]
    Output(#[from] io::Error),
}

/// The next line of each stream and its time, for merging logs by time.
struct Head {
    stream: Stream,
    end: Option<LineEnd>,
    time: i64,
}

impl Head {
    fn advance(&mut self, ordered: bool) -> Result<(), LogError> {
        self.end = self.stream.next_line()?;
        if ordered && self.end.is_some() {
            // A line whose time cannot be read keeps its place after the
            // previous line of its log; it will be reported as malformed.
            self.time = line_time_ms(&self.stream.buf)
                .or_else(|| {
                    std::str::from_utf8(&self.stream.buf)
                        .ok()
                        .and_then(|l| parse(l).ok())
                        .map(|r| r.time_ms)
                })
                .unwrap_or(self.time);
        }
        Ok(())
    }
}

/// Read the streams merged by time and write the matching lines to `out`.
pub fn query(
    args: &QueryArgs,
    filter: &Filter,
    streams: Vec<Stream>,
    out: &mut dyn Write,
    problems: &mut Problems,
) -> Result<Outcome, QueryFailure> {
    // With one log the file order is the time order; no need to read times.
    let ordered = streams.len() > 1;
    let mut heads: Vec<Head> = streams
        .into_iter()
        .map(|stream| Head {
            stream,
            end: None,
            time: i64::MIN,
        })
        .collect();
    for h in &mut heads {
        h.advance(ordered)?;
    }
    let mut table = (!args.json).then(|| {
        Table::new(
            &[
                "TIME",
                "GATEWAY",
                "LOG",
                "USER",
                "CLIENT IP",
                "NETWORK",
                "SERVICE/HOST",
                "WHAT",
                "RESULT",
                "REASON",
            ],
            1000,
        )
    });
    let mut outcome = Outcome::default();
    loop {
        let next = heads
            .iter()
            .enumerate()
            .filter(|(_, h)| h.end.is_some())
            .min_by_key(|(_, h)| h.time)
            .map(|(i, _)| i);
        let Some(i) = next else { break };
        let head = &mut heads[i];
        outcome.read += 1;
        if let Some(end) = head.end {
            let s = &head.stream;
            if let Some(record) = check(filter, &s.buf, end, s.path(), s.line_no, problems) {
                outcome.matched += 1;
                match &mut table {
                    Some(t) => t.push(row(&record), out)?,
                    None => {
                        out.write_all(&s.buf)?;
                        out.write_all(b"\n")?;
                    }
                }
                if args.limit.is_some_and(|l| outcome.matched >= l) {
                    outcome.limited = true;
                    break;
                }
            }
        }
        head.advance(ordered)?;
    }
    if let Some(t) = &mut table {
        // A header over nothing reads like a broken table.
        if outcome.matched > 0 {
            t.finish(out)?;
        }
        match (outcome.matched, outcome.limited) {
            (0, _) => writeln!(out, "No matching lines of {} read.", outcome.read)?,
            (n, true) => writeln!(out, "{n} matching line{} (--limit reached).", plural(n))?,
            (n, false) => writeln!(
                out,
                "{n} matching line{} of {} read.",
                plural(n),
                outcome.read
            )?,
        }
    }
    Ok(outcome)
}

fn plural(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// The line's record if it matches; problems counted.
fn check<'a>(
    filter: &Filter,
    buf: &'a [u8],
    end: LineEnd,
    path: &std::path::Path,
    line_no: u64,
    problems: &mut Problems,
) -> Option<Record<'a>> {
    if end == LineEnd::TooLong {
        problems.bad_line(path, line_no, end, &BadLine::TooLong);
        return None;
    }
    let Ok(line) = std::str::from_utf8(buf) else {
        problems.bad_line(path, line_no, end, &BadLine::Utf8);
        return None;
    };
    if !filter.prefilter.may_match(line) {
        return None;
    }
    // Outside the period by its written time: no need to parse at all.
    if !filter.period.is_all() && line_time_ms(buf).is_some_and(|t| !filter.period.contains(t)) {
        return None;
    }
    match parse(line) {
        Ok(r) if filter.matches(&r) => Some(r),
        Ok(_) => None,
        Err(e) => {
            problems.bad_line(path, line_no, end, &e);
            None
        }
    }
}

/// A table row: what an auditor reads first, left to right.
fn row(r: &Record<'_>) -> Vec<String> {
    let f = &r.f;
    let text = |v: Option<&str>| match v {
        Some(s) if !s.is_empty() => printable(s).into_owned(),
        _ => "-".to_owned(),
    };
    let time = f.time.as_deref().map(str::to_owned).unwrap_or_default();
    let (place, what, result) = match r.kind {
        Kind::Access => (
            text(f.service.as_deref().or(f.host.as_deref())),
            format!("{} {}", text(f.method.as_deref()), text(f.path.as_deref())),
            format!(
                "{} {}",
                text(f.decision.as_deref()),
                f.status.map(|s| s.to_string()).unwrap_or_default()
            ),
        ),
        Kind::Auth => (
            text(f.host.as_deref()),
            match f.method.as_deref() {
                Some(m) if !m.is_empty() => {
                    format!("{} {}", text(f.event.as_deref()), printable(m))
                }
                _ => text(f.event.as_deref()),
            },
            text(f.result.as_deref()),
        ),
    };
    vec![
        printable(&time).into_owned(),
        text(f.gateway.as_deref()),
        r.kind.as_str().to_owned(),
        text(f.user.as_deref()),
        text(f.client_ip.as_deref()),
        text(f.network.as_deref()),
        place,
        what,
        result.trim_end().to_owned(),
        text(f.reason.as_deref()),
    ]
}

#[cfg(test)]
mod tests;
