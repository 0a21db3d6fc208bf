//! A log destination fed through a channel by a dedicated thread.

use std::fs::OpenOptions;
use std::io::{BufWriter, Write};
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

/// Handle to a log file or stdout.
#[derive(Debug, Clone)]
pub struct LogWriter {
    tx: SyncSender<String>,
    dropped: Arc<AtomicU64>,
}

impl LogWriter {
    /// Open `target` and start its writer thread.
    /// With `batch`, the writer waits [`BATCH_INTERVAL`] between batches: for
    /// the access log, written on every request. The auth log is written at
    /// once, so a crash right after a login decision does not lose its line.
    pub fn open(target: &LogTarget, batch: bool) -> std::io::Result<LogWriter> {
        let out: Box<dyn Write + Send> = match target {
            LogTarget::Stdout => Box::new(std::io::stdout()),
            LogTarget::File(path) => {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                Box::new(OpenOptions::new().create(true).append(true).open(path)?)
            }
        };
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("portvakt-log".into())
            .spawn(move || run(rx, out, batch))?;
        Ok(LogWriter {
            tx,
            dropped: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Queue one line (without newline).
    pub fn write(&self, line: String) {
        match self.tx.try_send(line) {
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

fn run(rx: Receiver<String>, out: Box<dyn Write + Send>, batch: bool) {
    let mut out = BufWriter::new(out);
    while let Ok(line) = rx.recv() {
        let _ = out.write_all(line.as_bytes());
        let _ = out.write_all(b"\n");
        // Drain what is queued, then flush once: batches under load, prompt when idle.
        while let Ok(line) = rx.try_recv() {
            let _ = out.write_all(line.as_bytes());
            let _ = out.write_all(b"\n");
        }
        if let Err(e) = out.flush() {
            eprintln!("portvakt: cannot write log: {e}");
        }
        if batch {
            std::thread::sleep(BATCH_INTERVAL);
        }
    }
}
