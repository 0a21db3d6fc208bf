//! A log destination fed through a channel by a dedicated thread.

use std::fs::OpenOptions;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;

use crate::config::model::LogTarget;

/// Lines waiting in the queue before new ones are dropped (and counted):
/// a stuck disk must not stall the proxy.
const QUEUE: usize = 65_536;

/// After writing a batch the writer sleeps this long instead of blocking in
/// `recv()` at once: while it sleeps, the proxy threads queue lines without a
/// futex wake-up and a context switch per request (measured: the access log's
/// hand-off was ~20 % of the proxy's CPU per request; this removes most of
/// it). Lines reach the file at most this much later.
const BATCH_INTERVAL: std::time::Duration = std::time::Duration::from_millis(10);

/// What the writer thread is asked to do.
#[derive(Debug)]
enum Msg {
    /// Write one line (without newline).
    Line(String),
    /// Close and reopen the file (after logrotate moved it).
    Reopen,
}

/// How lines reach their destination.
enum Output {
    /// As they come, to a file reopened on request, or to stdout.
    Plain {
        target: LogTarget,
        out: BufWriter<Box<dyn Write + Send>>,
    },
    /// Sealed into the auth log's hash chain.
    Chained(super::chain::Appender),
}

/// Handle to a log file or stdout.
#[derive(Debug, Clone)]
pub struct LogWriter {
    tx: SyncSender<Msg>,
    dropped: Arc<AtomicU64>,
}

impl LogWriter {
    /// Open `target` and start its writer thread.
    /// With `batch`, the writer waits [`BATCH_INTERVAL`] between batches: for
    /// the access log, written on every request.
    pub fn open(target: &LogTarget, batch: bool) -> std::io::Result<LogWriter> {
        let out = BufWriter::new(open_target(target)?);
        Self::start(
            Output::Plain {
                target: target.clone(),
                out,
            },
            batch,
        )
    }

    /// The auth log: every line (a JSON object) is sealed, as gateway
    /// `gateway`'s, into the hash chain whose head is kept in `head_path`,
    /// and written at once, so a crash right after a login decision does not
    /// lose its line.
    pub fn open_chained(
        target: &LogTarget,
        head_path: &Path,
        gateway: &str,
    ) -> std::io::Result<LogWriter> {
        // Nothing is opened here: check-config builds a runtime too and must
        // not write. `serve` calls [`LogWriter::preflight_chained`] at start.
        let appender = super::chain::Appender::new(target, head_path, gateway);
        Self::start(Output::Chained(appender), false)
    }

    /// Open the auth log and its chain head now, writing the anchor if the
    /// file is new, so a bad path or permission stops `serve` at start-up
    /// rather than losing the first login's record; and refuse a chain head
    /// or auth log that another gateway writes
    /// ([`super::chain::GatewayConflict`]).
    pub fn preflight_chained(
        target: &LogTarget,
        head_path: &Path,
        gateway: &str,
    ) -> std::io::Result<()> {
        match target {
            // The writer thread anchors the stream with its first record; here
            // only the head file is checked.
            LogTarget::Stdout => {
                if let Some(dir) = head_path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(head_path)
                    .map(drop)?;
                let theirs = std::fs::read_to_string(head_path)
                    .ok()
                    .and_then(|t| serde_json::from_str::<super::chain::Head>(&t).ok())
                    .and_then(|h| h.gateway);
                match theirs {
                    Some(theirs) if theirs != gateway => {
                        Err(std::io::Error::other(super::chain::GatewayConflict {
                            file: head_path.to_path_buf(),
                            what: "this chain head",
                            theirs,
                            ours: gateway.to_owned(),
                        }))
                    }
                    _ => Ok(()),
                }
            }
            LogTarget::File(_) => {
                super::chain::Appender::new(target, head_path, gateway).append(Vec::new(), &now())
            }
        }
    }

    fn start(output: Output, batch: bool) -> std::io::Result<LogWriter> {
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("portvakt-log".into())
            .spawn(move || run(rx, output, batch))?;
        Ok(LogWriter {
            tx,
            dropped: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Queue one line (without newline).
    pub fn write(&self, line: String) {
        self.send(Msg::Line(line));
    }

    /// Reopen the file before the next line (SIGUSR1, after logrotate).
    pub fn reopen(&self) {
        self.send(Msg::Reopen);
    }

    fn send(&self, msg: Msg) {
        match self.tx.try_send(msg) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                let n = self.dropped.fetch_add(1, Ordering::Relaxed);
                if n.is_power_of_two() {
                    tracing::error!(dropped = n + 1, "log queue full; lines dropped");
                }
            }
        }
    }
}

fn now() -> String {
    super::timestamp(crate::clock::Clock::now_ms(&crate::clock::SystemClock))
}

fn open_target(target: &LogTarget) -> std::io::Result<Box<dyn Write + Send>> {
    Ok(match target {
        LogTarget::Stdout => Box::new(std::io::stdout()),
        LogTarget::File(path) => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            Box::new(OpenOptions::new().create(true).append(true).open(path)?)
        }
    })
}

fn run(rx: Receiver<Msg>, mut output: Output, batch: bool) {
    let mut lines = Vec::new();
    while let Ok(first) = rx.recv() {
        // Take what is queued, then write once: batches under load, prompt when idle.
        let mut reopen = false;
        for msg in std::iter::once(first).chain(std::iter::from_fn(|| rx.try_recv().ok())) {
            match msg {
                Msg::Line(line) => lines.push(line),
                Msg::Reopen => reopen = true,
            }
        }
        // Lines queued before a reopen still belong to the old file.
        if let Err(e) = output.write(&mut lines) {
            eprintln!("portvakt: cannot write log: {e}");
        }
        if reopen {
            if let Err(e) = output.reopen() {
                eprintln!("portvakt: cannot reopen log: {e}");
            }
        }
        if batch {
            std::thread::sleep(BATCH_INTERVAL);
        }
    }
}

impl Output {
    fn write(&mut self, lines: &mut Vec<String>) -> std::io::Result<()> {
        match self {
            Output::Plain { out, .. } => {
                for line in lines.drain(..) {
                    out.write_all(line.as_bytes())?;
                    out.write_all(b"\n")?;
                }
                out.flush()
            }
            Output::Chained(appender) => {
                if lines.is_empty() {
                    return Ok(());
                }
                let records = lines
                    .drain(..)
                    .filter_map(|l| match serde_json::from_str(&l) {
                        Ok(record) => Some(record),
                        Err(e) => {
                            eprintln!("portvakt: auth event is not a JSON object: {e}");
                            None
                        }
                    })
                    .collect();
                appender.append(records, &now())
            }
        }
    }

    fn reopen(&mut self) -> std::io::Result<()> {
        match self {
            Output::Plain { target, out } => {
                out.flush()?;
                *out = BufWriter::new(open_target(target)?);
                Ok(())
            }
            Output::Chained(appender) => {
                // The new file gets its anchor with the next event.
                appender.reopen();
                Ok(())
            }
        }
    }
}
