//! Which files to read and in what order: files named on the command line or
//! the logs a configuration names, with their rotated (and gzipped) older
//! files, grouped so each log is read oldest first.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use super::LogError;
use crate::config::model::LogTarget;

/// Which of the two logs a line (or a file) belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, clap::ValueEnum)]
pub enum Kind {
    /// One line per request.
    Access,
    /// One line per authentication decision.
    Auth,
}

impl Kind {
    /// The name used on the command line and in output.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Access => "access",
            Kind::Auth => "auth",
        }
    }
}

/// Where the lines come from, shared by `query` and `report`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Inputs {
    /// Log files: access and auth logs in any mix, rotated ones included
    /// (access.jsonl.1, access.jsonl.2.gz, access.jsonl-20261122.gz), of one
    /// gateway or several; `-` reads standard input. A directory stands for
    /// every log file in it (the logs of a whole cluster collected in one
    /// place; chain heads and other files are left out). Each line is
    /// recognised by its fields, so the order does not matter: the lines of
    /// all logs are merged in time order.
    #[arg(value_name = "FILE|DIR")]
    pub files: Vec<PathBuf>,
    /// Read the logs this configuration writes (audit.access_log and
    /// audit.auth_log), with their rotated files beside them. Repeat it for
    /// each gateway of a cluster.
    #[arg(long, short, value_name = "FILE")]
    pub config: Vec<PathBuf>,
    /// Only lines of this log.
    #[arg(long, value_enum, value_name = "access|auth")]
    pub log: Option<Kind>,
}

/// One log as a chain of files, oldest first: its rotated files and then
/// the live one. Lines of one chain are in time order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    /// The files, oldest first.
    pub files: Vec<PathBuf>,
}

impl Inputs {
    /// Every chain opened as a [`super::Stream`]; problems are printed on
    /// stderr after `me` and the exit code is returned instead.
    pub fn open_streams(&self, me: &str) -> Result<Vec<super::Stream>, std::process::ExitCode> {
        self.open_with_configs(me).map(|(streams, _)| streams)
    }

    /// [`Inputs::open_streams`], and the configurations `--config` named,
    /// loaded, in the order given (`report` reads the SMS price from them).
    pub fn open_with_configs(
        &self,
        me: &str,
    ) -> Result<(Vec<super::Stream>, Vec<Loaded>), std::process::ExitCode> {
        let fail = |e: LogError| {
            eprintln!("{me}: {e}");
            std::process::ExitCode::from(e.exit_code())
        };
        let (chains, configs) = self
            .chains_and_configs(&mut |note| eprintln!("{me}: note: {note}"))
            .map_err(fail)?;
        let streams = chains
            .into_iter()
            .map(|chain| super::Stream::open(chain).map_err(fail))
            .collect::<Result<_, _>>()?;
        Ok((streams, configs))
    }

    /// The chains to read, or why there is nothing to read.
    /// `warn` receives notes that do not stop the command.
    pub fn chains(&self, warn: &mut dyn FnMut(String)) -> Result<Vec<Chain>, LogError> {
        self.chains_and_configs(warn).map(|(chains, _)| chains)
    }

    /// [`Inputs::chains`], and the configurations loaded to find them.
    pub fn chains_and_configs(
        &self,
        warn: &mut dyn FnMut(String),
    ) -> Result<(Vec<Chain>, Vec<Loaded>), LogError> {
        let mut files: Vec<PathBuf> = Vec::new();
        let mut loaded = Vec::new();
        for path in &self.files {
            if path.is_dir() {
                let found = in_dir(path)?;
                if found.logs.is_empty() {
                    warn(format!("{} holds no log files", path.display()));
                }
                files.extend(found.logs.into_iter().map(|(p, _)| p));
            } else {
                files.push(path.clone());
            }
        }
        for config in &self.config {
            let cfg = crate::config::load(config).map_err(|e| LogError::Config {
                path: config.clone(),
                problems: e.to_string().trim_end().to_owned(),
            })?;
            let targets = [(Kind::Access, &cfg.access_log), (Kind::Auth, &cfg.auth_log)];
            for (kind, target) in targets {
                if self.log.is_some_and(|k| k != kind) {
                    continue;
                }
                match target {
                    LogTarget::File(path) => {
                        let found = with_rotated(path)?;
                        if found.is_empty() {
                            warn(format!(
                                "the {} log {} does not exist yet (nothing written?)",
                                kind.as_str(),
                                path.display()
                            ));
                        }
                        files.extend(found);
                    }
                    LogTarget::Stdout => warn(format!(
                        "{} writes the {} log to standard output (journald): pipe it in, \
                         `journalctl -u portvakt -o cat | portvakt audit … -` (the gateway's \
                         own messages in that stream are skipped as malformed lines)",
                        config.display(),
                        kind.as_str()
                    )),
                }
            }
            loaded.push(Loaded {
                path: config.clone(),
                config: cfg,
            });
        }
        match (self.config.first(), files.is_empty()) {
            (Some(config), true) => Err(LogError::NoLogFiles {
                config: config.clone(),
            }),
            (None, true) => Err(LogError::NothingToRead),
            (_, false) => Ok((group(files), loaded)),
        }
    }
}

/// A configuration `--config` named, as loaded.
#[derive(Debug)]
pub struct Loaded {
    /// The file as given.
    pub path: PathBuf,
    /// Its content.
    pub config: crate::config::model::Config,
}

/// What a file in a log directory is, told by its first line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content {
    /// An access or auth log.
    Log(Kind),
    /// A hash chain's head file (`{"seq":…,"hash":…}`).
    ChainHead,
}

/// The files of a log directory, sorted by name.
#[derive(Debug, Default)]
pub struct DirFiles {
    /// Access and auth logs (plain or gzipped).
    pub logs: Vec<(PathBuf, Kind)>,
    /// Chain head files.
    pub heads: Vec<PathBuf>,
}

/// The logs and chain heads directly in `dir` (not below it). Files are
/// told by their first line, not their names: configurations name their
/// files freely. Empty files, hidden files and anything else are left out.
pub fn in_dir(dir: &Path) -> Result<DirFiles, LogError> {
    let entries = std::fs::read_dir(dir).map_err(|source| LogError::ListDir {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut paths: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path())
        .collect();
    paths.sort();
    let mut found = DirFiles::default();
    for path in paths {
        match content(&path) {
            Some(Content::Log(kind)) => found.logs.push((path, kind)),
            Some(Content::ChainHead) => found.heads.push(path),
            None => {}
        }
    }
    Ok(found)
}

/// What `path` holds, by its first line (None: empty, unreadable or neither).
pub fn content(path: &Path) -> Option<Content> {
    let mut reader = open(path).ok()?;
    let mut line = Vec::new();
    // A first line longer than any record is not one of ours.
    std::io::Read::take(&mut reader, super::MAX_LINE as u64)
        .read_until(b'\n', &mut line)
        .ok()?;
    let v: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&line).ok()?;
    if v.contains_key("event") {
        Some(Content::Log(Kind::Auth))
    } else if v.contains_key("status") {
        Some(Content::Log(Kind::Access))
    } else if v.get("seq").is_some_and(serde_json::Value::is_u64)
        && v.get("hash").is_some_and(serde_json::Value::is_string)
    {
        Some(Content::ChainHead)
    } else {
        None
    }
}

/// `path` and the rotated files beside it, as logrotate names them
/// (`.1`, `.2.gz`, `-20261122`, `-20261122.gz`). Missing `path` is fine
/// if rotated files exist (the live file is recreated on first write).
pub fn with_rotated(path: &Path) -> Result<Vec<PathBuf>, LogError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return Ok(vec![path.to_path_buf()]);
    };
    let entries = std::fs::read_dir(&dir).map_err(|source| LogError::ListDir {
        path: dir.clone(),
        source,
    })?;
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(other) = file_name.to_str() else {
            continue;
        };
        let is_rotated = other
            .strip_prefix(name)
            .is_some_and(|rest| rotation_suffix(rest).is_some());
        if other == name || is_rotated {
            found.push(dir.join(other));
        }
    }
    Ok(found)
}

/// The order of a file within its log: dated rotations (oldest date first),
/// then numbered ones (highest number is oldest), then the live file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Age {
    Dated(String),
    Numbered(std::cmp::Reverse<u32>),
    Live,
}

/// The rotation part of a file name after the log's own name, if it is one:
/// `.N`, `-N` or a date stamp, optionally followed by `.gz`.
fn rotation_suffix(rest: &str) -> Option<Age> {
    let rest = rest.strip_suffix(".gz").unwrap_or(rest);
    let stamp = rest.strip_prefix('.').or_else(|| rest.strip_prefix('-'))?;
    if stamp.is_empty() || !stamp.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    if !stamp
        .chars()
        .all(|c| c.is_ascii_digit() || c == '-' || c == '_')
    {
        return None;
    }
    // logrotate numbers rotations from 1 upwards; eight or more digits (or
    // separators) are a `dateext` stamp, which sorts as text.
    match stamp.parse::<u32>() {
        Ok(n) if stamp.len() < 8 => Some(Age::Numbered(std::cmp::Reverse(n))),
        _ => Some(Age::Dated(stamp.to_owned())),
    }
}

/// The log a file belongs to, by its name: `auth.jsonl.2.gz` → `auth.jsonl`.
pub fn log_name(path: &Path) -> PathBuf {
    log_of(path).0
}

/// The log a file belongs to and its place in it.
fn log_of(path: &Path) -> (PathBuf, Age) {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return (path.to_path_buf(), Age::Live);
    };
    // The log's name ends where the rest of the name is one rotation stamp:
    // `access.jsonl.2.gz` → `access.jsonl`, `auth.jsonl-2026-11-22` → `auth.jsonl`.
    for (i, c) in name.char_indices().skip(1) {
        if c == '.' || c == '-' {
            if let Some(age) = rotation_suffix(&name[i..]) {
                return (path.with_file_name(&name[..i]), age);
            }
        }
    }
    let plain = name.strip_suffix(".gz").unwrap_or(name);
    (path.with_file_name(plain), Age::Live)
}

/// Files grouped into chains by the log they belong to, each oldest first,
/// chains in order of first mention; a file named twice is read once.
pub fn group(files: Vec<PathBuf>) -> Vec<Chain> {
    let mut order: Vec<PathBuf> = Vec::new();
    let mut logs: BTreeMap<PathBuf, Vec<(Age, PathBuf)>> = BTreeMap::new();
    let mut seen = std::collections::HashSet::new();
    for file in files {
        let identity = std::fs::canonicalize(&file).unwrap_or_else(|_| file.clone());
        if !seen.insert(identity) {
            continue;
        }
        let (log, age) = log_of(&file);
        let members = logs.entry(log.clone()).or_default();
        if members.is_empty() {
            order.push(log);
        }
        members.push((age, file));
    }
    order
        .into_iter()
        .filter_map(|log| logs.remove(&log))
        .map(|mut members| {
            // Stable: files of equal age keep the order they were given in.
            members.sort_by(|a, b| a.0.cmp(&b.0));
            Chain {
                files: members.into_iter().map(|(_, f)| f).collect(),
            }
        })
        .collect()
}

/// Read buffer size: large reads keep syscalls and refills off the profile.
pub const READ_BUFFER: usize = 1 << 20;

/// The file name that means standard input, as in most Unix tools.
pub const STDIN: &str = "-";

/// Open a log file (or standard input for `-`) for reading lines,
/// decompressing gzip (recognised by its magic bytes, not its name, so a
/// misnamed file still reads).
pub fn open(path: &Path) -> Result<Box<dyn BufRead + Send>, LogError> {
    let source: Box<dyn std::io::Read + Send> = if path.as_os_str() == STDIN {
        // journald users pipe the logs in: `journalctl -o cat … | portvakt audit query -`.
        Box::new(std::io::stdin())
    } else {
        let file = File::open(path).map_err(|source| LogError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        if file.metadata().is_ok_and(|m| m.is_dir()) {
            return Err(LogError::Open {
                path: path.to_path_buf(),
                source: std::io::Error::other("is a directory"),
            });
        }
        Box::new(file)
    };
    let mut raw = BufReader::with_capacity(READ_BUFFER, source);
    let head = raw.fill_buf().map_err(|source| LogError::Read {
        path: path.to_path_buf(),
        line: 1,
        source,
    })?;
    if head.starts_with(&[0x1f, 0x8b]) {
        // logrotate's `compress` may append members (`delaycompress` and
        // copies); MultiGzDecoder reads them all rather than stopping at the first.
        let gz = flate2::bufread::MultiGzDecoder::new(raw);
        Ok(Box::new(BufReader::with_capacity(READ_BUFFER, gz)))
    } else {
        Ok(Box::new(raw))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(chains: &[Chain]) -> Vec<Vec<String>> {
        chains
            .iter()
            .map(|c| {
                c.files
                    .iter()
                    .map(|f| f.to_string_lossy().into_owned())
                    .collect()
            })
            .collect()
    }

    #[test]
    fn rotated_files_are_read_oldest_first_and_logs_stay_apart() {
        let files = [
            "logs/access.jsonl",
            "logs/auth.jsonl",
            "logs/access.jsonl.1",
            "logs/access.jsonl.10.gz",
            "logs/access.jsonl.2.gz",
            "logs/auth.jsonl-20261122.gz",
            "logs/auth.jsonl-20261121",
        ]
        .map(PathBuf::from)
        .to_vec();
        assert_eq!(
            names(&group(files)),
            vec![
                vec![
                    "logs/access.jsonl.10.gz",
                    "logs/access.jsonl.2.gz",
                    "logs/access.jsonl.1",
                    "logs/access.jsonl",
                ],
                vec![
                    "logs/auth.jsonl-20261121",
                    "logs/auth.jsonl-20261122.gz",
                    "logs/auth.jsonl",
                ],
            ]
        );
    }

    #[test]
    fn names_that_only_look_rotated_are_logs_of_their_own() {
        assert_eq!(log_of(Path::new("a/access.jsonl")).1, Age::Live);
        assert_eq!(
            log_of(Path::new("a/access.jsonl.gz")).0,
            PathBuf::from("a/access.jsonl")
        );
        assert_eq!(log_of(Path::new("a/2026.jsonl")).1, Age::Live);
        assert_eq!(log_of(Path::new("a/.1")).1, Age::Live);
        assert_eq!(log_of(Path::new("a/auth-x.jsonl")).1, Age::Live);
        assert_eq!(
            log_of(Path::new("a/auth.jsonl-2026-11-22.gz")),
            (
                PathBuf::from("a/auth.jsonl"),
                Age::Dated("2026-11-22".into())
            )
        );
        assert_eq!(log_of(Path::new("a/app-1.jsonl")).1, Age::Live);
        assert_eq!(rotation_suffix(".x"), None);
        assert_eq!(
            rotation_suffix(".1.gz"),
            Some(Age::Numbered(std::cmp::Reverse(1)))
        );
        assert_eq!(
            rotation_suffix("-2026-11-22"),
            Some(Age::Dated("2026-11-22".into()))
        );
    }

    #[test]
    fn the_same_file_named_twice_is_read_once() {
        let files = ["x/auth.jsonl", "x/auth.jsonl"].map(PathBuf::from).to_vec();
        assert_eq!(names(&group(files)), vec![vec!["x/auth.jsonl"]]);
    }

    #[test]
    fn rotated_siblings_are_found_beside_the_configured_log() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "access.jsonl",
            "access.jsonl.1",
            "access.jsonl.2.gz",
            "access.jsonl-20261122.gz",
            "access.jsonl.bak",
            "access.jsonl.old.1",
            "auth.jsonl",
        ] {
            std::fs::write(dir.path().join(name), "").unwrap();
        }
        let mut found = with_rotated(&dir.path().join("access.jsonl")).unwrap();
        found.sort();
        let found: Vec<_> = found
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            found,
            [
                "access.jsonl",
                "access.jsonl-20261122.gz",
                "access.jsonl.1",
                "access.jsonl.2.gz"
            ]
        );
    }
}
