//! The auth log's hash chain: every record carries the SHA-256 of the record
//! before it, so an edited, deleted, reordered or truncated record is found
//! offline by `portvakt audit verify`.
//!
//! A record is a JSON object. Sealing adds `seq` (one more than the record
//! before), `prev` (that record's hash) and `hash`:
//!
//! ```text
//! hash = hex(SHA-256(canonical JSON of the record without "hash"))
//! ```
//!
//! Canonical JSON is RFC 8785 (JCS) for the values portvakt writes (objects,
//! strings, integers, booleans, null): keys sorted, no whitespace. Every file
//! starts with a `chain_anchor` record whose `prev` links it to the last
//! record of the file before (or [`GENESIS`] for a new chain), so rotation
//! continues one chain across files.
//!
//! The last `seq` and `hash` are also kept in a small *head file* next to the
//! state: it lets a restarted gateway or an admin command continue the chain
//! after the log was rotated away, and lets `verify` notice records cut off
//! the end of the newest file. The head file is locked while a batch is
//! appended, so the gateway and admin commands never fork the chain.
//!
//! Every record also names the gateway that wrote it (`gateway`, inside the
//! hash), and so does the head file: a gateway refuses to continue a chain
//! whose head or last record names another gateway ([`GatewayConflict`]),
//! so gateways sharing a log directory never mix their chains.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::vocabulary::{Event, Outcome, Reason};
use sha2::{Digest, Sha256};

/// `prev` of the first record of a new chain.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The `event` of the record that starts every file.
pub const ANCHOR_EVENT: &str = Event::ChainAnchor.as_str();

/// The chain's last record: what the next one links to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Head {
    /// Sequence number of the last record (0: nothing written yet).
    pub seq: u64,
    /// Its hash, hex.
    pub hash: String,
    /// The gateway whose chain this is (none: a chain written before
    /// gateways had names).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
}

impl Head {
    /// Before the first record.
    pub fn genesis() -> Head {
        Head {
            seq: 0,
            hash: GENESIS.to_owned(),
            gateway: None,
        }
    }
}

/// Append `v` to `out` as canonical JSON (sorted keys, no whitespace).
pub fn canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => canonical_object(map, None, out),
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(v, out);
            }
            out.push(']');
        }
        // serde_json writes scalars compactly, escapes as JCS does and keeps
        // non-ASCII as UTF-8.
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// An object as canonical JSON, leaving out the member named `skip`.
fn canonical_object(map: &Map<String, Value>, skip: Option<&str>, out: &mut String) {
    let mut entries: Vec<(&String, &Value)> = map
        .iter()
        .filter(|(k, _)| Some(k.as_str()) != skip)
        .collect();
    // RFC 8785 orders keys by UTF-16 code units.
    entries.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
    out.push('{');
    for (i, (k, v)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&Value::String(k.clone()).to_string());
        out.push(':');
        canonical(v, out);
    }
    out.push('}');
}

/// The hash of a record (its `hash` member, if any, left out).
pub fn record_hash(record: &Map<String, Value>) -> String {
    let mut text = String::with_capacity(512);
    canonical_object(record, Some("hash"), &mut text);
    hex(&Sha256::digest(text.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Link `record` to `head` and return its line (canonical JSON, no newline)
/// and the new head.
pub fn seal(mut record: Map<String, Value>, head: &Head) -> (String, Head) {
    let seq = head.seq + 1;
    record.remove("hash");
    record.insert("seq".into(), Value::from(seq));
    record.insert("prev".into(), Value::from(head.hash.clone()));
    let hash = record_hash(&record);
    let gateway = record
        .get(super::gateway::FIELD)
        .and_then(Value::as_str)
        .map(str::to_owned);
    record.insert("hash".into(), Value::from(hash.clone()));
    let mut line = String::with_capacity(512);
    canonical(&Value::Object(record), &mut line);
    (line, Head { seq, hash, gateway })
}

/// The record that starts a file. `why`: `new_chain` (the first record
/// ever) or `new_file` (a rotated or recreated file continuing the chain).
pub fn anchor(time: &str, why: Reason) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("time".into(), Value::from(time));
    m.insert("event".into(), Value::from(ANCHOR_EVENT));
    m.insert("result".into(), Value::from(Outcome::Info.as_str()));
    m.insert("reason".into(), Value::from(why.as_str()));
    m.insert("host".into(), Value::from(super::gateway::host_name()));
    m.insert("pid".into(), Value::from(std::process::id()));
    m
}

/// Where an appender writes.
#[derive(Debug)]
enum Sink {
    /// Standard output (journald): one stream, anchored once per process.
    Stdout { anchored: bool },
    /// A file, reopened when it was rotated away.
    File { path: PathBuf, file: Option<File> },
}

/// Appends sealed records to the auth log, keeping the head file current.
/// Used by the gateway's writer thread and by one-shot admin commands.
#[derive(Debug)]
pub struct Appender {
    sink: Sink,
    head_path: PathBuf,
    /// This gateway's name, sealed into every record.
    gateway: String,
}

/// A gateway was about to continue another gateway's chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{}: {what} belongs to gateway {theirs:?}, but this gateway is {ours:?} (audit.gateway, default \
     the host name). Two gateways never share a chain: give this one its own audit.auth_log and \
     audit.chain_head, or set audit.gateway: {theirs} if it is the same gateway renamed",
    file.display()
)]
pub struct GatewayConflict {
    /// The chain head or auth log that names the other gateway.
    pub file: PathBuf,
    /// `this chain head` or `the last record of this auth log`.
    pub what: &'static str,
    /// The gateway it names.
    pub theirs: String,
    /// This gateway.
    pub ours: String,
}

impl Appender {
    /// Append to `target` as gateway `gateway`, continuing the chain
    /// recorded in `head_path`.
    pub fn new(
        target: &crate::config::model::LogTarget,
        head_path: &Path,
        gateway: &str,
    ) -> Appender {
        let sink = match target {
            crate::config::model::LogTarget::Stdout => Sink::Stdout { anchored: false },
            crate::config::model::LogTarget::File(path) => Sink::File {
                path: path.clone(),
                file: None,
            },
        };
        Appender {
            sink,
            head_path: head_path.to_path_buf(),
            gateway: gateway.to_owned(),
        }
    }

    /// Close the file so the next batch opens the path anew (SIGUSR1 after
    /// logrotate moved it).
    pub fn reopen(&mut self) {
        if let Sink::File { file, .. } = &mut self.sink {
            *file = None;
        }
    }

    /// Seal and append `records` (JSON objects) in one locked step. `now` is
    /// the time for an anchor if the file needs one.
    pub fn append(&mut self, records: Vec<Map<String, Value>>, now: &str) -> std::io::Result<()> {
        if let Some(dir) = self.head_path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&self.head_path)?;
        lock.lock()?;
        let result = self.append_locked(&mut lock, records, now);
        let _ = lock.unlock();
        result
    }

    fn append_locked(
        &mut self,
        head_file: &mut File,
        records: Vec<Map<String, Value>>,
        now: &str,
    ) -> std::io::Result<()> {
        let mut text = String::new();
        head_file.read_to_string(&mut text)?;
        let stored: Option<Head> = serde_json::from_str(&text).ok();
        let fresh = match &mut self.sink {
            Sink::Stdout { anchored } => !std::mem::replace(anchored, true),
            Sink::File { path, file } => open_current(path, file)?.metadata()?.len() == 0,
        };
        // The head file is the truth; without one (first start, or it was
        // lost) continue from the last line of the file itself.
        let from_head_file = stored.is_some();
        let mut head = match (stored, &self.sink) {
            (Some(h), _) => h,
            (None, Sink::File { path, .. }) if !fresh => {
                last_head(path)?.unwrap_or_else(Head::genesis)
            }
            (None, _) => Head::genesis(),
        };
        self.check_gateway(&head, from_head_file, fresh)?;
        let why = if head.seq == 0 {
            Reason::NewChain
        } else {
            Reason::NewFile
        };
        let mut buf = String::new();
        for mut record in fresh.then(|| anchor(now, why)).into_iter().chain(records) {
            record.insert(
                super::gateway::FIELD.into(),
                Value::from(self.gateway.as_str()),
            );
            let (line, next) = seal(record, &head);
            buf.push_str(&line);
            buf.push('\n');
            head = next;
        }
        match &mut self.sink {
            Sink::Stdout { .. } => {
                let mut out = std::io::stdout().lock();
                out.write_all(buf.as_bytes())?;
                out.flush()?;
            }
            Sink::File { file, .. } => {
                if let Some(f) = file {
                    f.write_all(buf.as_bytes())?;
                }
            }
        }
        let mut new_head = serde_json::to_string(&head).map_err(std::io::Error::other)?;
        new_head.push('\n');
        head_file.set_len(0)?;
        head_file.seek(SeekFrom::Start(0))?;
        head_file.write_all(new_head.as_bytes())?;
        Ok(())
    }
}

impl Appender {
    /// Refuse to continue a chain that another gateway wrote: its head file
    /// names another gateway, or (a head from before names) the last record
    /// of the log does. The file's tail is read only while the head names
    /// no gateway, so once this gateway has written, a batch costs nothing here.
    fn check_gateway(&self, head: &Head, from_head_file: bool, fresh: bool) -> std::io::Result<()> {
        let conflict = |file: &Path, what, theirs: &str| {
            std::io::Error::other(GatewayConflict {
                file: file.to_path_buf(),
                what,
                theirs: theirs.to_owned(),
                ours: self.gateway.clone(),
            })
        };
        let log_path = match &self.sink {
            Sink::File { path, .. } => Some(path.as_path()),
            Sink::Stdout { .. } => None,
        };
        match (&head.gateway, log_path) {
            (Some(theirs), _) if *theirs == self.gateway => Ok(()),
            (Some(theirs), Some(log)) if !from_head_file => {
                Err(conflict(log, "the last record of this auth log", theirs))
            }
            (Some(theirs), _) => Err(conflict(&self.head_path, "this chain head", theirs)),
            // A head from before names: the log's last record may name one.
            (None, Some(log)) if from_head_file && !fresh => {
                match last_head(log)?.and_then(|h| h.gateway) {
                    Some(theirs) if theirs != self.gateway => {
                        Err(conflict(log, "the last record of this auth log", &theirs))
                    }
                    _ => Ok(()),
                }
            }
            (None, _) => Ok(()),
        }
    }
}

/// The open file for `path`, opened anew if there is none or `path` now
/// names another file (logrotate moved ours away).
fn open_current<'a>(path: &Path, file: &'a mut Option<File>) -> std::io::Result<&'a mut File> {
    use std::os::unix::fs::MetadataExt;
    let moved = match (&*file, std::fs::metadata(path)) {
        (Some(f), Ok(m)) => {
            let ours = f.metadata()?;
            ours.ino() != m.ino() || ours.dev() != m.dev()
        }
        (Some(_), Err(_)) => true,
        (None, _) => true,
    };
    if moved {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        *file = Some(OpenOptions::new().create(true).append(true).open(path)?);
    }
    file.as_mut()
        .ok_or_else(|| std::io::Error::other("log file not open"))
}

/// The head as recorded by the last complete line of `path`, if it parses.
fn last_head(path: &Path) -> std::io::Result<Option<Head>> {
    let mut f = File::open(path)?;
    let len = f.metadata()?.len();
    // Auth records are well under 64 KiB; read only the tail.
    let start = len.saturating_sub(64 * 1024);
    f.seek(SeekFrom::Start(start))?;
    let mut tail = Vec::new();
    f.read_to_end(&mut tail)?;
    let last = tail
        .split(|b| *b == b'\n')
        .rev()
        .find(|l| !l.iter().all(u8::is_ascii_whitespace));
    Ok(last.and_then(|l| {
        let v: Map<String, Value> = serde_json::from_slice(l).ok()?;
        Some(Head {
            seq: v.get("seq")?.as_u64()?,
            hash: v.get("hash")?.as_str()?.to_owned(),
            gateway: v
                .get(super::gateway::FIELD)
                .and_then(Value::as_str)
                .map(str::to_owned),
        })
    }))
}

/// Read the head file, if there is one.
pub fn read_head(path: &Path) -> std::io::Result<Option<Head>> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| std::io::Error::other(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}
