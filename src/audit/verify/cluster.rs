//! `portvakt audit verify` over the logs of several gateways at once: the
//! files are sorted into one chain per gateway (by the name their records
//! carry, not by their file names), each chain is verified on its own, and
//! each gateway is reported intact or broken.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::{Map, Value};

use super::{chain_order, check_head, walk, Finding, Lines, Verified};
use crate::audit::chain::{read_head, Head};
use crate::audit::gateway::FIELD as GATEWAY;
use crate::audit::logread::{in_dir, log_name, printable, with_rotated, Kind};

const AFTER_HELP: &str = "\
Each gateway keeps its own chain. Give the auth logs of one gateway or of a
whole cluster, in any order and mix: the files are sorted into one chain per
gateway by the `gateway` name inside their records, so a renamed or misplaced
file is still checked in its own gateway's chain. Chain heads are matched to
chains by the gateway name they record; a chain head whose gateway has no
log among the files is reported as a missing chain.

Examples:
  portvakt audit verify --config /etc/portvakt/portvakt.yaml
  portvakt audit verify /var/log/portvakt/            # every gateway writing there
  portvakt audit verify -c gw-a.yaml -c gw-b.yaml
  portvakt audit verify a/auth.jsonl* b/auth.jsonl* --head a/auth-chain.head --head b/auth-chain.head

Exit status: 0 when every chain is intact, 1 when any is broken or missing,
2 for unusable arguments.";

/// Arguments of `portvakt audit verify`.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct VerifyArgs {
    /// Auth log files, current and rotated, of one gateway or several, in
    /// any order (`.gz` is read too). A directory stands for every auth log
    /// and chain head in it (access logs and other files are left out).
    /// Default: the auth logs of the configurations given.
    #[arg(value_name = "FILE|DIR")]
    pub files: Vec<PathBuf>,
    /// A gateway's configuration: its auth log (with the rotated files
    /// beside it) and its chain head. Repeat it for each gateway.
    #[arg(long, short, value_name = "FILE")]
    pub config: Vec<PathBuf>,
    /// A chain head file to check a chain's end against (records cut off
    /// the end); repeat it, one per gateway.
    #[arg(long, value_name = "FILE")]
    pub head: Vec<PathBuf>,
}

/// What to verify: auth log files of any gateways and the heads to compare.
#[derive(Debug, Default)]
pub struct Cluster {
    /// Auth log files, any gateways, any order.
    pub files: Vec<PathBuf>,
    /// Chain heads given (or found in a directory), each matched to the
    /// chain of the gateway it names.
    pub heads: Vec<(PathBuf, Head)>,
    /// From configurations: (the auth log, its chain head) — the head is
    /// compared with the chain whose newest file is that log.
    pub config_heads: Vec<(PathBuf, PathBuf, Head)>,
}

/// One gateway's chain, as verified.
#[derive(Debug)]
pub struct ChainReport {
    /// The gateway (none: records from before gateways had names).
    pub gateway: Option<String>,
    /// Its files, as given.
    pub files: Vec<PathBuf>,
    /// Intact, or the first problem.
    pub result: Result<Verified, Finding>,
    /// The chain head it was compared with.
    pub head: Option<PathBuf>,
}

/// A chain head whose gateway has no log among the files: a whole chain
/// is missing (or was not given).
#[derive(Debug)]
pub struct Orphan {
    /// The head file.
    pub path: PathBuf,
    /// What it says.
    pub head: Head,
}

/// Verify every gateway's chain in `c`.
pub fn verify_cluster(c: &Cluster) -> (Vec<ChainReport>, Vec<Orphan>) {
    let groups = by_gateway(&c.files);
    let single = groups.len() == 1;
    let mut used = vec![false; c.heads.len()];
    let mut reports = Vec::new();
    for (key, files) in groups {
        let walked = walk(&files);
        let name = key
            .clone()
            .or_else(|| walked.as_ref().ok().and_then(|v| v.gateway.clone()));
        // A head that names this gateway; a head from before names only
        // for a chain without one, or when there is one chain.
        let explicit = c.heads.iter().enumerate().position(|(i, (_, h))| {
            !used[i]
                && match &h.gateway {
                    Some(g) => name.as_deref() == Some(g),
                    None => name.is_none() || single,
                }
        });
        let head = match explicit {
            Some(i) => {
                used[i] = true;
                Some((c.heads[i].0.clone(), c.heads[i].1.clone()))
            }
            None => {
                let newest = chain_order(&files).pop();
                c.config_heads
                    .iter()
                    .find(|(log, _, _)| newest.as_deref().is_some_and(|n| same_file(n, log)))
                    .map(|(_, path, h)| (path.clone(), h.clone()))
            }
        };
        let result = walked.and_then(|mut v| {
            if let Some((_, h)) = &head {
                check_head(&v, h)?;
                v.head_checked = true;
            }
            Ok(v)
        });
        reports.push(ChainReport {
            gateway: name,
            files,
            result,
            head: head.map(|(p, _)| p),
        });
    }
    let orphans = c
        .heads
        .iter()
        .zip(used)
        .filter(|(_, used)| !used)
        .map(|((path, head), _)| Orphan {
            path: path.clone(),
            head: head.clone(),
        })
        .collect();
    (reports, orphans)
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// The gateway named by a file's first record (its anchor).
fn first_gateway(path: &Path) -> Option<String> {
    // Standard input can be read once only: the walk needs its first line.
    if path.as_os_str() == "-" {
        return None;
    }
    let mut lines = Lines::open(path).ok()?;
    let mut buf = Vec::new();
    lines.next(&mut buf).ok()??;
    let record: Map<String, Value> = serde_json::from_slice(&buf).ok()?;
    record.get(GATEWAY)?.as_str().map(str::to_owned)
}

/// Files sorted into chains, one per gateway named by their first records,
/// named gateways in name order and then the unnamed. A file without a name
/// (from before names, or unreadable) joins the gateway whose other files
/// share its log name (`auth.jsonl.3.gz` with `auth.jsonl`), else the only
/// gateway there is, else a chain of the unnamed.
fn by_gateway(files: &[PathBuf]) -> Vec<(Option<String>, Vec<PathBuf>)> {
    let mut seen = HashSet::new();
    let mut named: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    let mut families: HashMap<PathBuf, HashSet<String>> = HashMap::new();
    let mut unnamed = Vec::new();
    for file in files {
        let identity = file.canonicalize().unwrap_or_else(|_| file.clone());
        if !seen.insert(identity) {
            continue;
        }
        match first_gateway(file) {
            Some(g) => {
                families
                    .entry(log_name(file))
                    .or_default()
                    .insert(g.clone());
                named.entry(g).or_default().push(file.clone());
            }
            None => unnamed.push(file.clone()),
        }
    }
    let mut rest = Vec::new();
    for file in unnamed {
        match families.get(&log_name(&file)) {
            Some(gs) if gs.len() == 1 => {
                let g = gs.iter().next().cloned().unwrap_or_default();
                named.entry(g).or_default().push(file);
            }
            _ => rest.push(file),
        }
    }
    if named.len() == 1 && !rest.is_empty() {
        if let Some(files) = named.values_mut().next() {
            files.append(&mut rest);
        }
    }
    let mut groups: Vec<(Option<String>, Vec<PathBuf>)> =
        named.into_iter().map(|(g, f)| (Some(g), f)).collect();
    if !rest.is_empty() {
        groups.push((None, rest));
    }
    groups
}

/// Why the arguments cannot be used (exit 2).
fn usage(message: String) -> Result<Cluster, (String, ExitCode)> {
    Err((message, ExitCode::from(2)))
}

/// The cluster the arguments name.
fn cluster(args: &VerifyArgs) -> Result<Cluster, (String, ExitCode)> {
    let mut c = Cluster::default();
    let mut head_paths = args.head.clone();
    for path in &args.files {
        if path.is_dir() {
            match in_dir(path) {
                Ok(found) => {
                    c.files.extend(
                        found
                            .logs
                            .into_iter()
                            .filter(|(_, k)| *k == Kind::Auth)
                            .map(|(p, _)| p),
                    );
                    head_paths.extend(found.heads);
                }
                Err(e) => return usage(e.to_string()),
            }
        } else {
            c.files.push(path.clone());
        }
    }
    for config in &args.config {
        let cfg = match crate::config::load(config) {
            Ok(cfg) => cfg,
            Err(e) => return usage(e.to_string().trim_end().to_owned()),
        };
        let crate::config::model::LogTarget::File(log) = &cfg.auth_log else {
            return usage(format!(
                "{}: audit.auth_log is stdout: name the auth log files (journalctl -o cat … > FILE)",
                config.display()
            ));
        };
        // The current file and its rotated copies, as logrotate names them.
        match with_rotated(log) {
            Ok(files) => c.files.extend(files),
            Err(e) => return usage(e.to_string()),
        }
        match read_head(&cfg.chain_head) {
            Ok(Some(h)) => c
                .config_heads
                .push((log.clone(), cfg.chain_head.clone(), h)),
            Ok(None) => {}
            Err(e) => {
                return Err((
                    format!("cannot read the chain head: {e}"),
                    ExitCode::from(2),
                ))
            }
        }
    }
    let mut seen = HashSet::new();
    for path in head_paths {
        // Named twice (a directory and --head): one head, not an orphan.
        if !seen.insert(path.canonicalize().unwrap_or_else(|_| path.clone())) {
            continue;
        }
        match read_head(&path) {
            Ok(Some(h)) => c.heads.push((path, h)),
            Ok(None) => return usage(format!("{}: no such chain head", path.display())),
            Err(e) => return usage(format!("cannot read the chain head: {e}")),
        }
    }
    if c.files.is_empty() {
        return usage(
            "name the auth log files or a directory of them, or --config FILE whose audit.auth_log is a file"
                .into(),
        );
    }
    Ok(c)
}

/// `portvakt audit verify`: print per gateway whether its chain is intact.
/// Exit 0 all intact, 1 any broken or missing, 2 unusable arguments.
pub fn run(args: VerifyArgs) -> ExitCode {
    let c = match cluster(&args) {
        Ok(c) => c,
        Err((message, code)) => {
            eprintln!("portvakt audit verify: {message}");
            return code;
        }
    };
    let (reports, orphans) = verify_cluster(&c);
    let (text, ok) = render(&reports, &orphans);
    print!("{text}");
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The report's text, and whether everything was intact.
pub fn render(reports: &[ChainReport], orphans: &[Orphan]) -> (String, bool) {
    use std::fmt::Write as _;
    let mut out = String::new();
    let mut broken = Vec::new();
    let several = reports.len() + orphans.len() > 1;
    for r in reports {
        // Names come from the files: a forged one must not drive the terminal.
        let label = printable(r.gateway.as_deref().unwrap_or("(no gateway name)")).into_owned();
        // One chain from before names reads as it always did.
        let (lead, indent) = match (&r.gateway, several) {
            (None, false) => (String::new(), ""),
            _ => (format!("gateway {label}: "), "  "),
        };
        match &r.result {
            Ok(v) => {
                let names: Vec<String> = v.files.iter().map(|p| p.display().to_string()).collect();
                let _ = writeln!(
                    out,
                    "{lead}chain intact: {} (seq {}–{}) in {}: {}",
                    plural(v.records, "record", "records"),
                    v.first_seq,
                    v.last.seq,
                    plural(v.files.len() as u64, "file", "files"),
                    names.join(", ")
                );
                let _ = writeln!(
                    out,
                    "{indent}last record: seq {} hash {}",
                    v.last.seq, v.last.hash
                );
                let _ = match (v.head_checked, &r.head) {
                    (true, Some(p)) => {
                        writeln!(out, "{indent}matches the chain head in {}", p.display())
                    }
                    _ => writeln!(
                        out,
                        "{indent}not compared with a chain head (records cut off the end would not show): give --config or --head"
                    ),
                };
            }
            Err(finding) => {
                broken.push(label.clone());
                let _ = writeln!(out, "{lead}chain BROKEN at {finding}");
            }
        }
    }
    for o in orphans {
        let label =
            printable(o.head.gateway.as_deref().unwrap_or("(no gateway name)")).into_owned();
        broken.push(label.clone());
        let _ = writeln!(
            out,
            "gateway {label}: chain MISSING: the chain head {} says seq {}, but no auth log of this gateway was given",
            o.path.display(),
            o.head.seq
        );
    }
    if several {
        let total = reports.len() + orphans.len();
        let _ = if broken.is_empty() {
            writeln!(out, "{total} gateways: all chains intact")
        } else {
            writeln!(
                out,
                "{total} gateways: {} intact, {} BROKEN or missing ({})",
                total - broken.len(),
                broken.len(),
                broken.join(", ")
            )
        };
    }
    (out, broken.is_empty())
}

#[cfg(test)]
#[path = "cluster_tests.rs"]
mod tests;
