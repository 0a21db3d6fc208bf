//! `portvakt audit verify`: walk the auth log's hash chain across files and
//! report the first record that was edited, removed, moved or cut off.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::chain::{record_hash, Head, ANCHOR_EVENT};

#[cfg(test)]
#[path = "chain_tests.rs"]
mod tests;

/// What is wrong at a place in the chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// The file could not be read.
    #[error("cannot read: {0}")]
    Unreadable(String),
    /// The file has no records at all.
    #[error("the file is empty: it should start with a chain anchor")]
    Empty,
    /// The last line ends in the middle of a record.
    #[error("truncated record: the file ends in the middle of a line")]
    Truncated,
    /// A line is not a JSON object.
    #[error("not a JSON record: {0}")]
    NotJson(String),
    /// A line lacks `seq`, `prev` or `hash`.
    #[error("not a chained record: `{0}` is missing")]
    Unchained(&'static str),
    /// A file does not start with an anchor (its first records were removed).
    #[error("the file does not start with a chain anchor: its first records were removed")]
    NoAnchor,
    /// The record's content does not match its hash.
    #[error("record edited: its content does not match its hash")]
    Edited,
    /// Records are missing before this one.
    #[error("record missing: expected seq {expected}, found seq {found} ({} record{} deleted here)", found - expected, if found - expected == 1 { "" } else { "s" })]
    Missing {
        /// The sequence number that should be here.
        expected: u64,
        /// The one that is.
        found: u64,
    },
    /// Records are out of order.
    #[error("records out of order: expected seq {expected}, found seq {found}; seq {expected} is at {at}")]
    Reordered {
        /// The sequence number that should be here.
        expected: u64,
        /// The one that is.
        found: u64,
        /// Where the expected record is (`file:line`).
        at: String,
    },
    /// A record repeats or goes back in the sequence.
    #[error("record repeated or out of order: seq {found} follows seq {previous}")]
    Backwards {
        /// The sequence number before.
        previous: u64,
        /// The one here.
        found: u64,
    },
    /// The record does not name the hash of the one before.
    #[error("chain broken: this record does not link to the one before (the record before was edited and re-hashed, or replaced)")]
    Unlinked,
    /// A later file's anchor does not continue the earlier file.
    #[error("this file's anchor does not continue the previous file (expected seq {expected} linking to {prev_short}…); a file in between is missing or the files are not from one chain")]
    FileGap {
        /// The sequence number the anchor should have.
        expected: u64,
        /// First characters of the hash it should link to.
        prev_short: String,
    },
    /// Records were cut off the end: the head file knows a later record.
    #[error("records missing at the end: the last record is seq {last}, but the chain head says seq {head}")]
    TailMissing {
        /// Last sequence number in the files.
        last: u64,
        /// Sequence number in the head file.
        head: u64,
    },
    /// The last record is not the one the head file names.
    #[error("the last record (seq {seq}) does not match the chain head's hash: it was replaced")]
    HeadDiffers {
        /// Its sequence number.
        seq: u64,
    },
}

/// The first problem found and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}: {problem}", file.display())]
pub struct Finding {
    /// The file.
    pub file: PathBuf,
    /// 1-based line number (0: the file as a whole).
    pub line: u64,
    /// What is wrong.
    pub problem: Problem,
}

/// A chain that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Files, in chain order.
    pub files: Vec<PathBuf>,
    /// Records checked (anchors included).
    pub records: u64,
    /// Sequence number of the first record.
    pub first_seq: u64,
    /// The last record.
    pub last: Head,
    /// Whether it was compared with a head file.
    pub head_checked: bool,
}

/// Verify `files` as one chain. They are put in chain order by their
/// anchors' sequence numbers (so `auth.jsonl*` in any order works). With
/// `head`, the last record must be the one the gateway last wrote.
pub fn verify(files: &[PathBuf], head: Option<&Head>) -> Result<Verified, Finding> {
    let files = chain_order(files);
    let mut walk = Walk {
        last: None,
        records: 0,
        first_seq: 0,
    };
    for (index, path) in files.iter().enumerate() {
        walk.file(&files[index..], path)?;
    }
    let last = walk.last.clone().unwrap_or_else(Head::genesis);
    if let (Some(h), Some(path)) = (head, files.last()) {
        let at = |problem| Finding {
            file: path.clone(),
            line: 0,
            problem,
        };
        if h.seq > last.seq {
            return Err(at(Problem::TailMissing {
                last: last.seq,
                head: h.seq,
            }));
        }
        if h.seq == last.seq && h.hash != last.hash {
            return Err(at(Problem::HeadDiffers { seq: last.seq }));
        }
    }
    Ok(Verified {
        files,
        records: walk.records,
        first_seq: walk.first_seq,
        last,
        head_checked: head.is_some(),
    })
}

struct Walk {
    last: Option<Head>,
    records: u64,
    first_seq: u64,
}

impl Walk {
    /// Check one file; `rest` is this file and the ones after it (to look
    /// ahead for a moved record).
    fn file(&mut self, rest: &[PathBuf], path: &Path) -> Result<(), Finding> {
        let at = |line: u64, problem| Finding {
            file: path.to_path_buf(),
            line,
            problem,
        };
        let mut lines = Lines::open(path).map_err(|e| at(0, Problem::Unreadable(e.to_string())))?;
        let mut n = 0u64;
        let mut buf = Vec::new();
        loop {
            let complete = match lines.next(&mut buf) {
                Ok(Some(complete)) => complete,
                Ok(None) => break,
                Err(e) => return Err(at(n + 1, Problem::Unreadable(e.to_string()))),
            };
            n += 1;
            if buf.iter().all(u8::is_ascii_whitespace) && complete {
                return Err(at(n, Problem::NotJson("empty line".into())));
            }
            let record: Map<String, Value> = match serde_json::from_slice(&buf) {
                Ok(r) => r,
                Err(_) if !complete => return Err(at(n, Problem::Truncated)),
                Err(e) => return Err(at(n, Problem::NotJson(e.to_string()))),
            };
            if !complete {
                return Err(at(n, Problem::Truncated));
            }
            let seq = record.get("seq").and_then(Value::as_u64);
            let prev = record.get("prev").and_then(Value::as_str);
            let hash = record.get("hash").and_then(Value::as_str);
            let (Some(seq), Some(prev), Some(hash)) = (seq, prev, hash) else {
                let missing = if seq.is_none() {
                    "seq"
                } else if prev.is_none() {
                    "prev"
                } else {
                    "hash"
                };
                return Err(at(n, Problem::Unchained(missing)));
            };
            if record_hash(&record) != hash {
                return Err(at(n, Problem::Edited));
            }
            let is_anchor = record.get("event").and_then(Value::as_str) == Some(ANCHOR_EVENT);
            if n == 1 && !is_anchor {
                return Err(at(n, Problem::NoAnchor));
            }
            match &self.last {
                None => self.first_seq = seq,
                Some(last) => {
                    let expected = last.seq + 1;
                    if n == 1 && (seq != expected || prev != last.hash) {
                        return Err(at(
                            n,
                            Problem::FileGap {
                                expected,
                                prev_short: last.hash.chars().take(12).collect(),
                            },
                        ));
                    }
                    if seq < expected {
                        return Err(at(
                            n,
                            Problem::Backwards {
                                previous: last.seq,
                                found: seq,
                            },
                        ));
                    }
                    if seq > expected {
                        return Err(at(
                            n,
                            match find_seq(rest, path, n, expected) {
                                Some(place) => Problem::Reordered {
                                    expected,
                                    found: seq,
                                    at: place,
                                },
                                None => Problem::Missing {
                                    expected,
                                    found: seq,
                                },
                            },
                        ));
                    }
                    if prev != last.hash {
                        return Err(at(n, Problem::Unlinked));
                    }
                }
            }
            self.records += 1;
            self.last = Some(Head {
                seq,
                hash: hash.to_owned(),
            });
        }
        if n == 0 {
            return Err(at(0, Problem::Empty));
        }
        Ok(())
    }
}

/// Where (`file:line`) a record with `seq` is, looking after line `after`
/// of `current` and in the files after it.
fn find_seq(rest: &[PathBuf], current: &Path, after: u64, seq: u64) -> Option<String> {
    for path in rest {
        let mut lines = Lines::open(path).ok()?;
        let mut buf = Vec::new();
        let mut n = 0u64;
        while let Ok(Some(_)) = lines.next(&mut buf) {
            n += 1;
            if path == current && n <= after {
                continue;
            }
            let found = serde_json::from_slice::<Map<String, Value>>(&buf)
                .ok()
                .and_then(|r| r.get("seq").and_then(Value::as_u64));
            if found == Some(seq) {
                return Some(format!("{}:{n}", path.display()));
            }
        }
    }
    None
}

/// Order files by the sequence number of their first record; files whose
/// first line cannot be read keep their place after the readable ones, so
/// the walk reports them.
fn chain_order(files: &[PathBuf]) -> Vec<PathBuf> {
    let mut keyed: Vec<(Option<u64>, usize, PathBuf)> = files
        .iter()
        .enumerate()
        .map(|(i, p)| (first_seq(p), i, p.clone()))
        .collect();
    if keyed.iter().all(|(k, _, _)| k.is_some()) {
        keyed.sort_by_key(|(k, i, _)| (*k, *i));
    }
    keyed.into_iter().map(|(_, _, p)| p).collect()
}

fn first_seq(path: &Path) -> Option<u64> {
    let mut lines = Lines::open(path).ok()?;
    let mut buf = Vec::new();
    lines.next(&mut buf).ok()??;
    let record: Map<String, Value> = serde_json::from_slice(&buf).ok()?;
    record.get("seq")?.as_u64()
}

/// Lines of a plain or gzip-compressed file, one buffer reused.
struct Lines {
    reader: Box<dyn BufRead + Send>,
}

impl Lines {
    fn open(path: &Path) -> std::io::Result<Lines> {
        // The audit commands' opener: gzip recognised by its content.
        let reader =
            super::logread::open(path).map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(Lines { reader })
    }

    /// The next line into `buf` (without its newline); `Some(false)` if the
    /// file ended before a newline.
    fn next(&mut self, buf: &mut Vec<u8>) -> std::io::Result<Option<bool>> {
        buf.clear();
        let n = self.reader.read_until(b'\n', buf)?;
        if n == 0 {
            return Ok(None);
        }
        let complete = buf.last() == Some(&b'\n');
        if complete {
            buf.pop();
        }
        Ok(Some(complete))
    }
}

/// `portvakt audit verify`: verify `files` (default: the config's auth log
/// and its rotated copies beside it), compare the end with the chain head
/// (`head`, or the config's when the newest file is the config's auth log),
/// print the result. Exit 0 intact, 1 broken, 2 unusable arguments.
pub fn run(
    files: Vec<PathBuf>,
    config: Option<&Path>,
    head: Option<&Path>,
) -> std::process::ExitCode {
    use std::process::ExitCode;
    let config = match config.map(crate::config::load).transpose() {
        Ok(c) => c,
        Err(e) => {
            eprint!("{e}");
            return ExitCode::from(2);
        }
    };
    let current = config.as_ref().and_then(|c| match &c.auth_log {
        crate::config::model::LogTarget::File(p) => Some(p.clone()),
        crate::config::model::LogTarget::Stdout => None,
    });
    let files = if files.is_empty() {
        match &current {
            // The current file and its rotated copies, as logrotate names them.
            Some(p) => match super::logread::with_rotated(p) {
                Ok(files) => files,
                Err(e) => {
                    eprintln!("portvakt audit verify: {e}");
                    return ExitCode::from(2);
                }
            },
            None => {
                eprintln!("portvakt audit verify: name the auth log files, or --config FILE whose audit.auth_log is a file");
                return ExitCode::from(2);
            }
        }
    } else {
        files
    };
    let head_path = head.map(Path::to_path_buf).or_else(|| {
        let c = config.as_ref()?;
        let newest = chain_order(&files).pop()?;
        let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        };
        current
            .as_deref()
            .filter(|cur| same(cur, &newest))
            .map(|_| c.chain_head.clone())
    });
    let head = match head_path
        .as_deref()
        .map(super::chain::read_head)
        .transpose()
    {
        Ok(h) => h.flatten(),
        Err(e) => {
            eprintln!("portvakt audit verify: cannot read the chain head: {e}");
            return ExitCode::from(2);
        }
    };
    match verify(&files, head.as_ref()) {
        Ok(v) => {
            let names: Vec<String> = v.files.iter().map(|p| p.display().to_string()).collect();
            println!(
                "chain intact: {} record{} (seq {}–{}) in {} file{}: {}",
                v.records,
                if v.records == 1 { "" } else { "s" },
                v.first_seq,
                v.last.seq,
                v.files.len(),
                if v.files.len() == 1 { "" } else { "s" },
                names.join(", ")
            );
            println!("last record: seq {} hash {}", v.last.seq, v.last.hash);
            match (v.head_checked, &head_path) {
                (true, Some(p)) => println!("matches the chain head in {}", p.display()),
                _ => println!(
                    "not compared with a chain head (records cut off the end would not show): give --config or --head"
                ),
            }
            ExitCode::SUCCESS
        }
        Err(finding) => {
            println!("chain BROKEN at {finding}");
            ExitCode::FAILURE
        }
    }
}
