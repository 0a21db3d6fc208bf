//! The gateway run inside the test process, on a manual clock: for tests
//! about time (idle expiry, code validity, cooldowns, lockouts, opening
//! hours) that move the clock instead of sleeping.
//!
//! It is the library's own entry (`portvakt::server::prepare_with` with
//! `Launch::in_process`, then `Prepared::start_in_process`) given the same
//! config file `portvakt serve` would read. It installs no signal handler
//! and never exits the process, so several run side by side in this test
//! binary. Tests that need a real process (signals, crashes, restarts of
//! the binary, the CLI against a running server) use the child process.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use portvakt::clock::ManualClock;
use portvakt::server::{Launch, Running, Stop};

/// A gateway on a thread of this process. Stopped (and its ports freed)
/// when dropped.
pub struct InProcess {
    running: Running,
    clock: Arc<ManualClock>,
}

/// Why an in-process start did not come up.
pub enum NotStarted {
    /// The config or its files were refused: a test bug, not bad luck.
    Refused(String),
    /// A listener did not accept in time (a port taken by another process
    /// between choosing it and binding it): try other ports.
    NotListening(String),
}

impl InProcess {
    /// Load `config_path` and run it with `clock`; wait (at most 15 s) until
    /// every address in `listening` accepts TCP.
    pub async fn start(
        config_path: &Path,
        clock: Arc<ManualClock>,
        listening: &[SocketAddr],
    ) -> Result<InProcess, NotStarted> {
        let path = config_path.to_path_buf();
        let for_gateway: portvakt::clock::SharedClock = clock.clone();
        // Loading opens files and the database: off the async threads.
        let running = tokio::task::spawn_blocking(move || {
            let config = portvakt::config::load(&path).map_err(|e| e.to_string())?;
            portvakt::server::prepare_with(config, Launch::in_process(for_gateway))
                .and_then(|p| p.start_in_process())
                .map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| NotStarted::Refused(format!("the start panicked: {e}")))?
        .map_err(NotStarted::Refused)?;
        let gateway = InProcess { running, clock };
        for addr in listening {
            gateway
                .wait_listening(*addr, Duration::from_secs(15))
                .await?;
        }
        Ok(gateway)
    }

    async fn wait_listening(&self, addr: SocketAddr, limit: Duration) -> Result<(), NotStarted> {
        let start = Instant::now();
        let every = Duration::from_millis(20);
        for _ in 0..(limit.as_millis() / every.as_millis()) + 1 {
            if self.running.is_finished() {
                return Err(NotStarted::Refused(format!(
                    "the server thread ended before {addr} listened"
                )));
            }
            let connect = tokio::net::TcpStream::connect(addr);
            if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(1), connect).await {
                return Ok(());
            }
            if start.elapsed() >= limit {
                break;
            }
            tokio::time::sleep(every).await;
        }
        Err(NotStarted::NotListening(format!(
            "{addr} did not accept within {limit:?}"
        )))
    }

    /// The clock the gateway reads.
    pub fn clock(&self) -> &Arc<ManualClock> {
        &self.clock
    }

    /// What SIGHUP does to `portvakt serve`, done directly.
    pub fn reload(&self) {
        self.running.reloader().reload();
    }

    /// What SIGUSR1 does to `portvakt serve`, done directly.
    pub fn reopen_logs(&self) {
        self.running.reloader().reopen_logs();
    }

    /// The server thread ended on its own (it should run until stopped).
    pub fn has_ended(&self) -> bool {
        self.running.is_finished()
    }

    /// The gateway's state, for assertions the HTTP side cannot make.
    pub fn gateway(&self) -> &Arc<portvakt::gateway::Gateway> {
        &self.running.gateway
    }

    /// Stop at once and wait until the listeners are closed; false if the
    /// server thread had panicked.
    pub fn stop(self) -> bool {
        self.running.stop(Stop::Fast).is_ok()
    }
}

/// The binary's `main` sets up tracing; in this process nothing does, so
/// an in-process gateway's log lines go nowhere — unless `PORTVAKT_LOG` is
/// set (e.g. `PORTVAKT_LOG=debug`), then to stderr, for every gateway of
/// the test binary at once.
pub fn log_to_stderr_if_asked() {
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_env("PORTVAKT_LOG") {
        // Already set by an earlier gateway: fine.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .try_init();
    }
}
