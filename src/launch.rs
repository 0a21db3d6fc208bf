//! What a gateway gets from whoever starts it, beside its configuration:
//! the clock, whether it may take over process-wide signals, and (for a
//! gateway running inside another program, such as the integration tests) a
//! thread to run on and a handle that stops it.
//!
//! `portvakt serve` is [`Launch::serve`]: the system clock, SIGHUP/SIGUSR1
//! handlers, pingora's own SIGTERM/SIGINT/SIGQUIT handling, and
//! `run_forever`, which ends the process. In-process ([`Launch::in_process`]
//! and [`Prepared::start_in_process`](crate::server::Prepared::start_in_process))
//! nothing process-wide is touched, so several gateways can run in one
//! process:
//! - no signal handler is installed: reload and log reopening are the
//!   [`Reloader`]'s methods, called directly;
//! - pingora is run with [`pingora::server::RunArgs`] carrying our own
//!   shutdown watch, so pingora installs no signal handler either (only its
//!   default `UnixShutdownSignalWatch` does), and `run` returns instead of
//!   calling `process::exit`;
//! - no tracing subscriber is installed (that is the binary's `main`);
//! - pingora's pid file and upgrade socket are never used: we do not
//!   daemonise, bootstrap without `--upgrade`, and never send
//!   `GracefulUpgrade`.

use std::sync::Arc;
use std::thread::JoinHandle;

use async_trait::async_trait;
use pingora::server::{RunArgs, ShutdownSignal, ShutdownSignalWatch};
use tokio::sync::watch;

use crate::clock::SharedClock;
use crate::gateway::Gateway;
use crate::tls::SniResolver;

/// What the starter hands a gateway beside its configuration.
#[derive(Debug, Clone)]
pub struct Launch {
    /// The gateway's clock: every expiry, deadline, opening-hours decision
    /// and log timestamp reads it.
    pub clock: SharedClock,
    /// Install SIGHUP (reload) and SIGUSR1 (reopen logs) handlers. Signals
    /// belong to the process: two gateways in one process would both act
    /// on one signal, and the handler thread lives as long as the process.
    pub process_signals: bool,
    /// Bind the listening sockets, or take them over from the running
    /// process (`serve --upgrade`).
    pub start: crate::server::Start,
}

impl Launch {
    /// As `portvakt serve` runs: system clock, process signal handlers.
    pub fn serve() -> Launch {
        Launch {
            clock: crate::clock::system(),
            process_signals: true,
            start: crate::server::Start::Fresh,
        }
    }

    /// [`Launch::serve`], taking the sockets over from the running gateway.
    pub fn upgrade() -> Launch {
        Launch {
            start: crate::server::Start::Upgrade,
            ..Launch::serve()
        }
    }

    /// Inside another program: the given clock, no process signal handlers.
    pub fn in_process(clock: SharedClock) -> Launch {
        Launch {
            clock,
            process_signals: false,
            start: crate::server::Start::Fresh,
        }
    }
}

/// What SIGHUP and SIGUSR1 do in `serve`, callable without a signal.
#[derive(Debug, Clone)]
pub struct Reloader {
    pub(crate) gw: Arc<Gateway>,
    pub(crate) resolver: Arc<SniResolver>,
}

impl Reloader {
    /// Re-read the config file and certificates; on any error keep the
    /// running configuration (logged, and counted in the metrics).
    pub fn reload(&self) {
        crate::server::reload(&self.gw, &self.resolver);
    }

    /// Reopen the access and auth log files (after they were moved away).
    pub fn reopen_logs(&self) {
        let rt = self.gw.runtime();
        rt.access_log.reopen();
        rt.auth_log.reopen();
    }
}

/// How to stop an in-process gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Close the listeners and end at once (pingora's SIGINT).
    Fast,
    /// Close the listeners, let requests in flight finish for the
    /// configured grace period (pingora's SIGTERM).
    Graceful,
}

/// The shutdown watch handed to pingora: waits for [`Running::stop`] or for
/// the [`Running`] handle to be dropped.
struct HandedIn(watch::Receiver<Option<Stop>>);

#[async_trait]
impl ShutdownSignalWatch for HandedIn {
    async fn recv(&self) -> ShutdownSignal {
        let mut rx = self.0.clone();
        // A dropped sender (the handle is gone) is a fast stop, never a hang.
        let stop = match rx.wait_for(Option::is_some).await {
            Ok(stop) => stop.unwrap_or(Stop::Fast),
            Err(_) => Stop::Fast,
        };
        match stop {
            Stop::Fast => ShutdownSignal::FastShutdown,
            Stop::Graceful => ShutdownSignal::GracefulTerminate,
        }
    }
}

/// A gateway running on its own thread in this process. Dropping it stops
/// the gateway fast and waits for the thread, so the ports are free again
/// and no thread outlives it.
#[derive(Debug)]
pub struct Running {
    /// The gateway's shared state (sessions, clock, runtime).
    pub gateway: Arc<Gateway>,
    reloader: Reloader,
    stop: watch::Sender<Option<Stop>>,
    thread: Option<JoinHandle<()>>,
}

impl Running {
    /// Run `server` on a new thread named `portvakt-in-process`.
    pub(crate) fn spawn(
        server: pingora::server::Server,
        reloader: Reloader,
    ) -> std::io::Result<Running> {
        let (stop, rx) = watch::channel(None);
        let thread = std::thread::Builder::new()
            .name("portvakt-in-process".into())
            .spawn(move || {
                server.run(RunArgs {
                    shutdown_signal: Box::new(HandedIn(rx)),
                })
            })?;
        Ok(Running {
            gateway: reloader.gw.clone(),
            reloader,
            stop,
            thread: Some(thread),
        })
    }

    /// Reload and log reopening, as SIGHUP and SIGUSR1 do in `serve`.
    pub fn reloader(&self) -> &Reloader {
        &self.reloader
    }

    /// Whether the server thread has ended (stopped, or died of a panic).
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Stop the gateway and wait until its thread has ended and its
    /// listeners are closed. `Err` carries a panic of the server thread.
    pub fn stop(mut self, how: Stop) -> std::thread::Result<()> {
        self.stop_and_join(how)
    }

    fn stop_and_join(&mut self, how: Stop) -> std::thread::Result<()> {
        // No receiver left means the thread has ended already.
        let _ = self.stop.send(Some(how));
        match self.thread.take() {
            Some(thread) => thread.join(),
            None => Ok(()),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // A panic of the server thread was already printed by the panic hook.
        let _ = self.stop_and_join(Stop::Fast);
    }
}
