//! `portvakt audit verify`: walk the auth log's hash chain across files and
//! report the first record that was edited, removed, moved or cut off.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::chain::{record_hash, Head, ANCHOR_EVENT};
use super::gateway::FIELD as GATEWAY;

mod cluster;

pub use cluster::{render, run, verify_cluster, ChainReport, Cluster, Orphan, VerifyArgs};

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
    /// A record names another gateway than the records before it: it was
    /// moved here from another gateway's chain, or two gateways wrote one chain.
    #[error("record of gateway {found:?} in gateway {chain:?}'s chain (moved from another gateway's log, or two gateways wrote one chain)")]
    OtherGateway {
        /// The gateway the records before name.
        chain: String,
        /// The gateway this record names.
        found: String,
    },
    /// A record without a gateway name after named ones.
    #[error("record without a gateway name in gateway {chain:?}'s chain (only records from before gateways had names may lack one, and they come first)")]
    Unnamed {
        /// The gateway the records before name.
        chain: String,
    },
    /// The chain head belongs to another gateway than the chain.
    #[error("the chain head is gateway {head:?}'s, but these records are gateway {chain:?}'s")]
    HeadOfOtherGateway {
        /// The gateway the head file names.
        head: String,
        /// The gateway the records name.
        chain: String,
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
    /// The gateway its records name (none: all from before names).
    pub gateway: Option<String>,
}

/// Verify `files` as one chain. They are put in chain order by their
/// anchors' sequence numbers (so `auth.jsonl*` in any order works). With
/// `head`, the last record must be the one the gateway last wrote.
pub fn verify(files: &[PathBuf], head: Option<&Head>) -> Result<Verified, Finding> {
    let mut v = walk(files)?;
    if let Some(h) = head {
        check_head(&v, h)?;
        v.head_checked = true;
    }
    Ok(v)
}

/// Walk `files` as one chain, without a head.
pub(crate) fn walk(files: &[PathBuf]) -> Result<Verified, Finding> {
    let files = chain_order(files);
    let mut walk = Walk {
        last: None,
        records: 0,
        first_seq: 0,
        gateway: None,
    };
    for (index, path) in files.iter().enumerate() {
        walk.file(&files[index..], path)?;
    }
    Ok(Verified {
        files,
        records: walk.records,
        first_seq: walk.first_seq,
        last: walk.last.map_or_else(Head::genesis, |last| Head {
            gateway: walk.gateway.clone(),
            ..last
        }),
        head_checked: false,
        gateway: walk.gateway,
    })
}

/// The end of a verified chain against the head its gateway last wrote.
pub(crate) fn check_head(v: &Verified, h: &Head) -> Result<(), Finding> {
    let last = &v.last;
    if let Some(path) = v.files.last() {
        let at = |problem| Finding {
            file: path.clone(),
            line: 0,
            problem,
        };
        if let (Some(head), Some(chain)) = (&h.gateway, &v.gateway) {
            if head != chain {
                return Err(at(Problem::HeadOfOtherGateway {
                    head: head.clone(),
                    chain: chain.clone(),
                }));
            }
        }
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
    Ok(())
}

struct Walk {
    last: Option<Head>,
    records: u64,
    first_seq: u64,
    /// The gateway named by the records so far.
    gateway: Option<String>,
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
            // The name is inside the hash: a record cannot change gateway
            // without showing as edited, so this finds records moved whole.
            let named = record.get(GATEWAY).and_then(Value::as_str);
            match (&self.gateway, named) {
                (Some(chain), Some(found)) if chain != found => {
                    return Err(at(
                        n,
                        Problem::OtherGateway {
                            chain: chain.clone(),
                            found: found.to_owned(),
                        },
                    ))
                }
                (Some(chain), None) => {
                    return Err(at(
                        n,
                        Problem::Unnamed {
                            chain: chain.clone(),
                        },
                    ))
                }
                (None, Some(found)) => self.gateway = Some(found.to_owned()),
                _ => {}
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
                gateway: None,
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
pub(crate) fn chain_order(files: &[PathBuf]) -> Vec<PathBuf> {
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
    // Standard input can be read once only: the walk needs its first line.
    if path.as_os_str() == "-" {
        return None;
    }
    let mut lines = Lines::open(path).ok()?;
    let mut buf = Vec::new();
    lines.next(&mut buf).ok()??;
    let record: Map<String, Value> = serde_json::from_slice(&buf).ok()?;
    record.get("seq")?.as_u64()
}

/// Lines of a plain or gzip-compressed file, one buffer reused.
pub(crate) struct Lines {
    reader: Box<dyn BufRead + Send>,
}

impl Lines {
    pub(crate) fn open(path: &Path) -> std::io::Result<Lines> {
        // The audit commands' opener: gzip recognised by its content.
        let reader =
            super::logread::open(path).map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(Lines { reader })
    }

    /// The next line into `buf` (without its newline); `Some(false)` if the
    /// file ended before a newline.
    pub(crate) fn next(&mut self, buf: &mut Vec<u8>) -> std::io::Result<Option<bool>> {
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
