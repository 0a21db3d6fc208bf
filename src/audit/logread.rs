//! Reading access and auth logs for `portvakt audit query` and `report`:
//! which files ([`files`]), one line at a time into a reused buffer
//! ([`Stream`]), each line parsed into a borrowed [`Record`] that holds only
//! the fields the commands look at.
//!
//! Nothing here holds a whole file: a 1 GB log is read through one 1 MiB
//! buffer and one line buffer per log, and a line's strings point into that
//! buffer unless JSON escapes force a copy.
#![warn(missing_docs)]

mod files;
mod period;

use std::borrow::Cow;
use std::fmt;
use std::io::BufRead;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use files::{
    content, group, in_dir, log_name, open, with_rotated, Chain, Content, DirFiles, Inputs, Kind,
    Loaded, READ_BUFFER,
};
pub use period::{format_ms, line_time_ms, time_ms, Period, PeriodArgs, TimeArg};

/// Lines longer than this are not log lines (the gateway writes well under
/// 8 KiB); they are skipped as malformed instead of growing the buffer.
pub const MAX_LINE: usize = 1 << 20;

/// Why the audit commands cannot read their input.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// A file could not be opened.
    #[error("{}: cannot open: {source}", .path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Reading (or decompressing) failed part-way.
    #[error("{}:{line}: cannot read: {source}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The line being read.
        line: u64,
        /// Why.
        source: std::io::Error,
    },
    /// A directory could not be listed to find rotated files.
    #[error("{}: cannot list rotated logs: {source}", .path.display())]
    ListDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// `--config` names a configuration that does not load.
    #[error("{}: {problems}", .path.display())]
    Config {
        /// The configuration file.
        path: PathBuf,
        /// What the loader said.
        problems: String,
    },
    /// The configuration's logs are on stdout or not written yet.
    #[error("{}: no log files to read (see the notes above)", .config.display())]
    NoLogFiles {
        /// The configuration file.
        config: PathBuf,
    },
    /// Neither files nor a configuration.
    #[error("no log files to read: name them (FILE…) or give --config FILE")]
    NothingToRead,
}

impl LogError {
    /// Usage errors exit 2 like clap's; trouble with the files exits 1.
    pub fn exit_code(&self) -> u8 {
        match self {
            LogError::NothingToRead => 2,
            _ => 1,
        }
    }
}

/// A JSON string that borrows from the line unless it had escapes.
///
/// A newtype because serde borrows a `Cow<str>` only when it is the field's
/// own type; inside `Option` it would always allocate.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Text<'a>(#[serde(borrow)] pub Cow<'a, str>);

impl std::ops::Deref for Text<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

/// The fields of either log that the audit commands read. Everything else
/// (`bytes`, `user_agent`, the hash chain's `seq`/`prev`/`hash`, fields added
/// later) is skipped by the parser without being stored.
#[derive(Debug, Default, Deserialize)]
pub struct Fields<'a> {
    /// RFC 3339.
    #[serde(borrow)]
    pub time: Option<Text<'a>>,
    /// The gateway that wrote the line (none: before gateways had names).
    #[serde(borrow)]
    pub gateway: Option<Text<'a>>,
    /// Auth lines: what happened (`login`, `lockout`, …).
    #[serde(borrow)]
    pub event: Option<Text<'a>>,
    /// Auth lines: `success`, `failure`, `info`.
    #[serde(borrow)]
    pub result: Option<Text<'a>>,
    /// Why (both logs).
    #[serde(borrow)]
    pub reason: Option<Text<'a>>,
    /// User name (both logs).
    #[serde(borrow)]
    pub user: Option<Text<'a>>,
    /// Realm id (both logs).
    #[serde(borrow)]
    pub realm: Option<Text<'a>>,
    /// Client address (both logs).
    #[serde(borrow)]
    pub client_ip: Option<Text<'a>>,
    /// `internal`/`external` (both logs).
    #[serde(borrow)]
    pub network: Option<Text<'a>>,
    /// Host (both logs).
    #[serde(borrow)]
    pub host: Option<Text<'a>>,
    /// Joins the access line and the auth events of one request.
    #[serde(borrow)]
    pub request_id: Option<Text<'a>>,
    /// HTTP method on access lines; how the user proved it on auth lines.
    #[serde(borrow)]
    pub method: Option<Text<'a>>,
    /// Access lines: status sent to the client.
    pub status: Option<u16>,
    /// Access lines: service name.
    #[serde(borrow)]
    pub service: Option<Text<'a>>,
    /// Access lines: path without query.
    #[serde(borrow)]
    pub path: Option<Text<'a>>,
    /// Access lines: allow, login, deny, ….
    #[serde(borrow)]
    pub decision: Option<Text<'a>>,
}

/// One parsed line.
#[derive(Debug)]
pub struct Record<'a> {
    /// Which log it is from, told by its fields.
    pub kind: Kind,
    /// Its time, ms since the epoch.
    pub time_ms: i64,
    /// Its fields.
    pub f: Fields<'a>,
}

/// The event that starts each auth-log file's hash chain; not an
/// authentication decision, so reports leave it out.
pub const CHAIN_ANCHOR: &str = super::Event::ChainAnchor.as_str();

impl Record<'_> {
    /// The hash chain's anchor line.
    pub fn is_chain_anchor(&self) -> bool {
        self.kind == Kind::Auth && self.f.event.as_deref() == Some(CHAIN_ANCHOR)
    }
}

/// Why a line is not a log record.
#[derive(Debug, thiserror::Error)]
pub enum BadLine {
    /// Not UTF-8 (JSON must be).
    #[error("not UTF-8 text")]
    Utf8,
    /// Not JSON, or a field of the wrong type.
    #[error("not a log line: {0}")]
    Json(#[from] serde_json::Error),
    /// JSON, but neither an auth line (`event`) nor an access line (`status`).
    #[error("neither an access line (no \"status\") nor an auth line (no \"event\")")]
    NoKind,
    /// No `time`, or one that is not RFC 3339.
    #[error("no valid RFC 3339 \"time\"")]
    Time,
    /// Longer than [`MAX_LINE`].
    #[error("longer than {} bytes", MAX_LINE)]
    TooLong,
}

/// Parse one line (without its newline).
pub fn parse(line: &str) -> Result<Record<'_>, BadLine> {
    let f: Fields<'_> = serde_json::from_str(line)?;
    let kind = if f.event.is_some() {
        Kind::Auth
    } else if f.status.is_some() {
        Kind::Access
    } else {
        return Err(BadLine::NoKind);
    };
    let time_ms = f.time.as_deref().and_then(time_ms).ok_or(BadLine::Time)?;
    Ok(Record { kind, time_ms, f })
}

/// What [`Stream::next_line`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineEnd {
    /// A line ending in a newline.
    Complete,
    /// The last line of a file without a newline: the gateway may be
    /// writing it right now.
    Unterminated,
    /// More than [`MAX_LINE`] bytes; the buffer holds only the start.
    TooLong,
}

/// One log (a [`Chain`] of files) read line by line into one reused buffer.
pub struct Stream {
    files: Vec<PathBuf>,
    /// Index in `files` of the file being read.
    current: usize,
    reader: Option<Box<dyn BufRead + Send>>,
    /// The current line, without its line ending.
    pub buf: Vec<u8>,
    /// Line number of the current line in its file (1-based).
    pub line_no: u64,
    /// Lines read from each file so far.
    pub lines: Vec<u64>,
}

impl Stream {
    /// A stream over `chain`, with its first file opened so that a missing
    /// file is reported before any output.
    pub fn open(chain: Chain) -> Result<Stream, LogError> {
        let lines = vec![0; chain.files.len()];
        let first = chain.files.first().map(|p| open(p)).transpose()?;
        Ok(Stream {
            files: chain.files,
            current: 0,
            reader: first,
            buf: Vec::with_capacity(8 << 10),
            line_no: 0,
            lines,
        })
    }

    /// The files of this stream.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// The file the current line is from.
    pub fn path(&self) -> &Path {
        &self.files[self.current.min(self.files.len().saturating_sub(1))]
    }

    /// Read the next line into `buf`; `None` at the end of the last file.
    /// Empty lines are skipped.
    pub fn next_line(&mut self) -> Result<Option<LineEnd>, LogError> {
        loop {
            let Some(reader) = self.reader.as_mut() else {
                return Ok(None);
            };
            self.buf.clear();
            // `take` caps the buffer; read_until finds newlines with memchr.
            let limit = MAX_LINE as u64 + 1;
            let read = std::io::Read::take(reader.as_mut(), limit).read_until(b'\n', &mut self.buf);
            let n = match read {
                Ok(n) => n,
                Err(source) => {
                    return Err(LogError::Read {
                        path: self.files[self.current].clone(),
                        line: self.line_no + 1,
                        source,
                    })
                }
            };
            if n == 0 {
                self.next_file()?;
                continue;
            }
            self.line_no += 1;
            self.lines[self.current] += 1;
            let end = if self.buf.last() == Some(&b'\n') {
                self.buf.pop();
                LineEnd::Complete
            } else if self.buf.len() > MAX_LINE {
                self.skip_rest()?;
                LineEnd::TooLong
            } else {
                LineEnd::Unterminated
            };
            if self.buf.last() == Some(&b'\r') {
                self.buf.pop();
            }
            if self.buf.is_empty() || self.buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return Ok(Some(end));
        }
    }

    fn skip_rest(&mut self) -> Result<(), LogError> {
        if let Some(reader) = self.reader.as_mut() {
            reader.skip_until(b'\n').map_err(|source| LogError::Read {
                path: self.files[self.current].clone(),
                line: self.line_no,
                source,
            })?;
        }
        Ok(())
    }

    fn next_file(&mut self) -> Result<(), LogError> {
        self.reader = None;
        self.line_no = 0;
        if self.current + 1 < self.files.len() {
            self.current += 1;
            self.reader = Some(open(&self.files[self.current])?);
        }
        Ok(())
    }
}

/// Lines that could not be read as records: counted, the first few named.
#[derive(Debug, Default)]
pub struct Problems {
    /// Malformed lines skipped.
    pub malformed: u64,
    /// Unterminated last lines that did not parse (being written).
    pub unfinished: u64,
    examples: Vec<String>,
}

/// How many malformed lines are named on stderr.
const EXAMPLES: usize = 5;

impl Problems {
    /// Count a malformed line at `path:line`.
    pub fn malformed(&mut self, path: &Path, line: u64, why: &dyn fmt::Display) {
        self.malformed += 1;
        if self.examples.len() < EXAMPLES {
            self.examples
                .push(format!("{}:{line}: {why}", path.display()));
        }
    }

    /// Handle a line that did not parse, given how it ended.
    pub fn bad_line(&mut self, path: &Path, line: u64, end: LineEnd, why: &BadLine) {
        match end {
            // An unterminated last line is usually a write in progress, not damage.
            LineEnd::Unterminated => self.unfinished += 1,
            LineEnd::TooLong => self.malformed(path, line, &BadLine::TooLong),
            LineEnd::Complete => self.malformed(path, line, why),
        }
    }

    /// The notes for stderr (empty when all lines were good).
    pub fn describe(&self, command: &str) -> String {
        let mut out = String::new();
        if self.malformed > 0 {
            out.push_str(&format!(
                "{command}: skipped {} malformed line{}{}\n",
                self.malformed,
                if self.malformed == 1 { "" } else { "s" },
                if self.malformed as usize > self.examples.len() {
                    format!(", the first {}:", self.examples.len())
                } else {
                    ":".to_owned()
                }
            ));
            for e in &self.examples {
                out.push_str(&format!("  {e}\n"));
            }
        }
        if self.unfinished > 0 {
            out.push_str(&format!(
                "{command}: ignored {} unfinished last line{} (still being written?)\n",
                self.unfinished,
                if self.unfinished == 1 { "" } else { "s" }
            ));
        }
        out
    }
}

/// Make a value from a log safe to print on a terminal: user names and
/// paths are typed by strangers, and an escape sequence in one must not
/// rewrite the auditor's screen.
pub fn printable(s: &str) -> Cow<'_, str> {
    if s.chars().any(char::is_control) {
        Cow::Owned(
            s.chars()
                .map(|c| {
                    if c.is_control() {
                        c.escape_default().to_string()
                    } else {
                        c.to_string()
                    }
                })
                .collect(),
        )
    } else {
        Cow::Borrowed(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const ACCESS: &str = r#"{"time":"2026-11-23T13:45:00.123Z","request_id":"a1","client_ip":"10.20.3.4","peer_ip":"10.20.3.4","network":"internal","host":"lon.example.org","method":"GET","path":"/l\u00f6n","status":200,"bytes":512,"duration_ms":3.5,"service":"Lönebesked","upstream":"10.20.1.5:8443","upstream_status":200,"user":"alice","realm":"adm","auth_level":2,"decision":"allow","reason":"ok","tls_version":"TLSv1.3","http_version":"HTTP/2","user_agent":"Mozilla \"quoted\"","error":null}"#;
    const AUTH: &str = r#"{"time":"2026-11-23T13:44:58.001Z","event":"login","result":"failure","reason":"wrong_password","user":"alice","realm":"adm","client_ip":"192.0.2.7","network":"external","method":"password","request_id":"a0","session":null,"host":"login.example.org","seq":7,"prev":"ab12","hash":"cd34"}"#;

    #[test]
    fn access_and_auth_lines_are_told_apart_by_their_fields() {
        let a = parse(ACCESS).unwrap();
        assert_eq!(a.kind, Kind::Access);
        assert_eq!(a.f.service.as_deref(), Some("Lönebesked"));
        assert_eq!(a.f.path.as_deref(), Some("/lön"));
        assert_eq!(a.f.status, Some(200));
        let u = parse(AUTH).unwrap();
        assert_eq!(u.kind, Kind::Auth);
        assert_eq!(u.f.result.as_deref(), Some("failure"));
        assert_eq!(u.f.method.as_deref(), Some("password"));
        assert!(!u.is_chain_anchor());
    }

    #[test]
    fn strings_borrow_from_the_line_unless_escaped() {
        let a = parse(ACCESS).unwrap();
        assert!(matches!(a.f.user.as_ref().unwrap().0, Cow::Borrowed(_)));
        assert!(matches!(a.f.path.as_ref().unwrap().0, Cow::Owned(_)));
    }

    #[test]
    fn the_chain_anchor_is_an_auth_line_of_its_own_kind() {
        let anchor = r#"{"time":"2026-11-23T00:00:00.000Z","event":"chain_anchor","result":"info","reason":"","seq":0,"prev":"","hash":"00ff"}"#;
        let r = parse(anchor).unwrap();
        assert_eq!(r.kind, Kind::Auth);
        assert!(r.is_chain_anchor());
    }

    #[test]
    fn broken_lines_say_what_is_wrong() {
        assert!(matches!(parse("not json"), Err(BadLine::Json(_))));
        assert!(matches!(
            parse(r#"{"time":"2026-11-23T00:00:00.000Z"}"#),
            Err(BadLine::NoKind)
        ));
        assert!(matches!(parse(r#"{"event":"login"}"#), Err(BadLine::Time)));
        assert!(matches!(
            parse(r#"{"time":"yesterday","status":200}"#),
            Err(BadLine::Time)
        ));
        assert!(matches!(
            parse(r#"{"time":"x","status":"200"}"#),
            Err(BadLine::Json(_))
        ));
    }

    #[test]
    fn a_stream_reads_a_chain_of_plain_and_gzipped_files_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("auth.jsonl.1.gz");
        let mut gz = flate2::write::GzEncoder::new(
            std::fs::File::create(&old).unwrap(),
            flate2::Compression::fast(),
        );
        gz.write_all(b"one\r\ntwo\n").unwrap();
        gz.finish().unwrap();
        let live = dir.path().join("auth.jsonl");
        std::fs::write(&live, b"three\n\n  \nfour").unwrap();
        let mut s = Stream::open(Chain {
            files: vec![old.clone(), live.clone()],
        })
        .unwrap();
        let mut seen = Vec::new();
        while let Some(end) = s.next_line().unwrap() {
            seen.push((
                String::from_utf8(s.buf.clone()).unwrap(),
                s.path().file_name().unwrap().to_string_lossy().into_owned(),
                s.line_no,
                end,
            ));
        }
        let want = [
            ("one", "auth.jsonl.1.gz", 1, LineEnd::Complete),
            ("two", "auth.jsonl.1.gz", 2, LineEnd::Complete),
            ("three", "auth.jsonl", 1, LineEnd::Complete),
            ("four", "auth.jsonl", 4, LineEnd::Unterminated),
        ];
        let want: Vec<_> = want
            .iter()
            .map(|(a, b, c, d)| (a.to_string(), b.to_string(), *c, *d))
            .collect();
        assert_eq!(seen, want);
        assert_eq!(s.lines, vec![2, 4]);
    }

    #[test]
    fn an_overlong_line_is_skipped_whole_and_reading_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.jsonl");
        let mut text = vec![b'x'; MAX_LINE + 10];
        text.extend_from_slice(b"\nnext\n");
        std::fs::write(&path, text).unwrap();
        let mut s = Stream::open(Chain { files: vec![path] }).unwrap();
        assert_eq!(s.next_line().unwrap(), Some(LineEnd::TooLong));
        assert_eq!(s.next_line().unwrap(), Some(LineEnd::Complete));
        assert_eq!(s.buf, b"next");
        assert_eq!(s.line_no, 2);
        assert_eq!(s.next_line().unwrap(), None);
    }

    #[test]
    fn a_missing_file_is_named() {
        let e = Stream::open(Chain {
            files: vec![PathBuf::from("/nonexistent/portvakt/access.jsonl")],
        })
        .err()
        .unwrap();
        assert!(
            e.to_string()
                .starts_with("/nonexistent/portvakt/access.jsonl: cannot open"),
            "{e}"
        );
        assert_eq!(e.exit_code(), 1);
    }

    #[test]
    fn problems_name_the_first_few_lines() {
        let mut p = Problems::default();
        for i in 1..=7 {
            p.bad_line(Path::new("a.jsonl"), i, LineEnd::Complete, &BadLine::NoKind);
        }
        p.bad_line(
            Path::new("a.jsonl"),
            8,
            LineEnd::Unterminated,
            &BadLine::NoKind,
        );
        let text = p.describe("q");
        assert!(
            text.starts_with("q: skipped 7 malformed lines, the first 5:\n  a.jsonl:1: neither"),
            "{text}"
        );
        assert!(!text.contains("a.jsonl:6"), "{text}");
        assert!(text.contains("ignored 1 unfinished last line"), "{text}");
    }

    #[test]
    fn control_characters_are_shown_escaped() {
        assert_eq!(printable("alice"), "alice");
        assert_eq!(printable("a\u{1b}[2Jb\n"), "a\\u{1b}[2Jb\\n");
    }
}
