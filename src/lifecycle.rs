//! How a serving process ends: a SIGTERM drain that exits as soon as nothing
//! is in flight, and the hand-over of the listening sockets to a new binary
//! (pingora's graceful upgrade) so an upgrade refuses no connection.
//!
//! ```text
//! signal     phase        listeners            /readyz   process
//! ─────────  ───────────  ───────────────────  ────────  ───────────────────────────
//! SIGTERM    Draining     closed at once       503       exits when in-flight = 0
//!                         (admin stays open)             (grace_period is the ceiling)
//! SIGQUIT    HandingOver  sent to the process  as before exits when in-flight = 0,
//!  (a successor waits     waiting on the                 after pingora's 5 s overlap
//!   on upgrade_socket)    upgrade socket
//! SIGUSR2    —            starts the successor (`serve --upgrade`), then SIGQUIT itself
//! SIGINT     —            fast stop: requests in flight are cut
//! ```
//!
//! pingora itself sleeps the whole grace period after SIGTERM; here the
//! [`Drainer`] background service watches the in-flight count (one atomic per
//! request, [`crate::metrics::InFlight`]) and ends the process when it
//! reaches zero. While the process is going away every response carries
//! `Connection: close`, so a keep-alive client opens its next request on a
//! fresh connection (a live process) instead of racing the close.

use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use parking_lot::Mutex;
use pingora::proxy::Session;
use pingora::server::{ListenFds, ShutdownSignal, ShutdownSignalWatch, ShutdownWatch};
use pingora::services::background::BackgroundService;
use tokio::sync::watch;

use crate::gateway::Gateway;
use crate::metrics::{Metrics, Phase};

/// After the last request, how long the log writer threads get to write
/// what is queued (the access log batches every 10 ms; the auth log writes
/// at once) before the process exits.
const LOG_SETTLE: Duration = Duration::from_millis(100);

/// How often the drain looks at the in-flight count.
const POLL: Duration = Duration::from_millis(10);

/// How long SIGUSR2 waits for the successor to listen on the upgrade socket.
const SUCCESSOR_WAIT: Duration = Duration::from_secs(20);

/// Errors preparing the life-cycle files.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    /// The upgrade socket's directory cannot be made private.
    #[error("server.upgrade_socket: {path}: {why}")]
    UpgradeSocket {
        /// The directory.
        path: String,
        /// What is wrong.
        why: String,
    },
}

/// A response on this connection is its last one while the process is
/// going away (`Connection: close` on HTTP/1.1; h2 gets pingora's GOAWAY).
pub fn last_on_connection_if_closing(session: &mut Session, metrics: &Metrics) {
    if metrics.closing_connections() {
        session.set_keepalive(None);
    }
}

/// What the signal watch, the drainer and `run_forever` share.
pub struct Control {
    gw: Arc<Gateway>,
    /// Told to the admin listener when it must stop accepting: on a hand-over
    /// (its socket now belongs to the successor), never on a drain (/readyz
    /// must keep answering 503 until the process exits).
    admin_stop: watch::Sender<bool>,
    /// `run_forever` ends the process when drained; an embedded server
    /// (tests) only stops serving.
    exit_when_drained: AtomicBool,
    upgrade_socket: PathBuf,
    pid_file: PathBuf,
    config_path: PathBuf,
    /// This process took its sockets over from another one.
    took_over: bool,
    /// Set when draining or handing over began.
    began: Mutex<Option<Began>>,
}

/// The moment the process began to go away.
#[derive(Debug, Clone, Copy)]
struct Began {
    at: Instant,
    ended_before: u64,
}

impl Control {
    /// Shared state for `gw`'s life cycle.
    pub fn new(gw: Arc<Gateway>, took_over: bool) -> Arc<Control> {
        let rt = gw.runtime();
        let tuning = &rt.config.server;
        Arc::new(Control {
            upgrade_socket: tuning.upgrade_socket.clone(),
            pid_file: tuning.pid_file.clone(),
            config_path: rt.config.source.clone(),
            took_over,
            admin_stop: watch::channel(false).0,
            exit_when_drained: AtomicBool::new(false),
            began: Mutex::new(None),
            gw: gw.clone(),
        })
    }

    /// The shutdown watch the admin listener runs with.
    pub fn admin_shutdown(&self) -> ShutdownWatch {
        self.admin_stop.subscribe()
    }

    /// End the process once drained (the `serve` command).
    pub fn exit_when_drained(&self) {
        self.exit_when_drained.store(true, Ordering::Relaxed);
    }

    fn begin(&self, phase: Phase) {
        let m = &self.gw.metrics;
        m.set_phase(phase);
        let mut began = self.began.lock();
        if began.is_none() {
            *began = Some(Began {
                at: Instant::now(),
                ended_before: m.requests_ended(),
            });
        }
        let grace = self.gw.runtime().config.server.grace_period;
        match phase {
            Phase::Draining => tracing::info!(
                in_flight = m.in_flight(),
                ceiling_secs = grace.as_secs(),
                "SIGTERM: draining; no new connections, /readyz answers 503, exiting when the requests in flight are done"
            ),
            Phase::HandingOver => tracing::info!(
                in_flight = m.in_flight(),
                socket = %self.upgrade_socket.display(),
                "upgrade: handing the listening sockets to the new process"
            ),
            Phase::Serving => {}
        }
    }

    /// The last words: log what the drain did, let the log writers catch
    /// up, remove our pid file, and exit (or return, when embedded).
    fn finish(&self, how: &str) {
        let m = &self.gw.metrics;
        let began = *self.began.lock();
        let (elapsed_ms, finished) = began
            .map(|b| {
                (
                    b.at.elapsed().as_millis() as u64,
                    m.requests_ended().saturating_sub(b.ended_before),
                )
            })
            .unwrap_or((0, 0));
        tracing::info!(
            how,
            finished,
            cut = m.in_flight(),
            elapsed_ms,
            "portvakt stopped"
        );
        std::thread::sleep(LOG_SETTLE);
        remove_pid_file_if_ours(&self.pid_file);
        if self.exit_when_drained.load(Ordering::Relaxed) {
            std::process::exit(0);
        }
    }

    /// After pingora's `run` returned: the grace period ran out, or SIGINT.
    pub fn after_run(&self) -> ! {
        self.exit_when_drained();
        self.finish("stopped by pingora (grace period over, or SIGINT)");
        std::process::exit(0)
    }

    /// SIGUSR2: start `portvakt serve --upgrade` from the binary this process
    /// was started from (a package upgrade replaced it), wait until it listens
    /// on the upgrade socket, then hand over (SIGQUIT to ourselves). If the
    /// successor fails to start, nothing changes here.
    pub fn start_successor(&self) {
        if self.gw.metrics.phase() != Phase::Serving {
            tracing::warn!("upgrade asked for while already going away; ignored");
            return;
        }
        let Some(exe) = started_from() else {
            tracing::error!("upgrade: cannot tell which binary to start; staying up");
            return;
        };
        let _ = std::fs::remove_file(&self.upgrade_socket);
        let mut child = match std::process::Command::new(&exe)
            .arg("serve")
            .arg("--upgrade")
            .arg("--config")
            .arg(&self.config_path)
            .stdin(std::process::Stdio::null())
            .spawn()
        {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(binary = %exe.display(), error = %e, "upgrade: cannot start the new binary; staying up");
                return;
            }
        };
        tracing::info!(binary = %exe.display(), pid = child.id(), "upgrade: new process started; waiting for it to ask for the sockets");
        let deadline = Instant::now() + SUCCESSOR_WAIT;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                tracing::error!(%status, "upgrade: the new process exited before taking over (see its log); staying up");
                return;
            }
            if is_socket(&self.upgrade_socket) {
                // Reaped by init once we are gone; a successor that fails
                // later is seen by the supervisor, not by us.
                drop(child);
                if let Err(e) = signal_hook::low_level::raise(signal_hook::consts::SIGQUIT) {
                    tracing::error!(error = %e, "upgrade: cannot signal ourselves");
                }
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        tracing::error!("upgrade: the new process did not listen on the upgrade socket in time; stopping it, staying up");
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// The binary this process was started from, as a path (not
/// `/proc/self/exe`, which keeps naming the old, replaced file).
fn started_from() -> Option<PathBuf> {
    static EXE: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    EXE.get_or_init(|| {
        let exe = std::env::current_exe().ok()?;
        // After a replacement the kernel reports "… (deleted)".
        let text = exe.to_string_lossy();
        Some(PathBuf::from(
            text.strip_suffix(" (deleted)").unwrap_or(&text).to_owned(),
        ))
    })
    .clone()
}

/// Remember the binary's path now, before a package upgrade replaces it.
pub fn remember_binary() {
    let _ = started_from();
}

fn is_socket(p: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::symlink_metadata(p)
        .map(|m| m.file_type().is_socket())
        .unwrap_or(false)
}

/// The shutdown signals pingora waits for, with our phases set before
/// pingora acts on them.
pub struct SignalWatch {
    control: Arc<Control>,
}

impl SignalWatch {
    /// Signals for `control`'s process.
    pub fn new(control: Arc<Control>) -> SignalWatch {
        SignalWatch { control }
    }
}

#[async_trait]
impl ShutdownSignalWatch for SignalWatch {
    async fn recv(&self) -> ShutdownSignal {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut quit), Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::quit()),
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            tracing::error!("cannot watch SIGTERM/SIGQUIT/SIGINT; only SIGKILL stops this process");
            return std::future::pending().await;
        };
        loop {
            tokio::select! {
                _ = quit.recv() => {
                    // Without a successor waiting, pingora would send the
                    // sockets to no one and stop serving: refuse.
                    if !is_socket(&self.control.upgrade_socket) {
                        tracing::warn!(
                            socket = %self.control.upgrade_socket.display(),
                            "SIGQUIT but no new process waits on the upgrade socket; ignored (use `portvakt upgrade` or SIGUSR2)"
                        );
                        continue;
                    }
                    self.control.begin(Phase::HandingOver);
                    return ShutdownSignal::GracefulUpgrade;
                }
                _ = term.recv() => {
                    self.control.begin(Phase::Draining);
                    notify("STOPPING=1");
                    return ShutdownSignal::GracefulTerminate;
                }
                _ = int.recv() => {
                    tracing::info!(in_flight = self.control.gw.metrics.in_flight(), "SIGINT: stopping now; requests in flight are cut");
                    return ShutdownSignal::FastShutdown;
                }
            }
        }
    }
}

/// Tells the supervisor we are up, keeps the pid file, and ends the process
/// when pingora's shutdown has closed the listeners and nothing is in flight.
pub struct Drainer {
    control: Arc<Control>,
}

impl Drainer {
    /// The drainer of `control`'s process.
    pub fn new(control: Arc<Control>) -> Drainer {
        Drainer { control }
    }
}

#[async_trait]
impl BackgroundService for Drainer {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let c = &self.control;
        write_pid_file(&c.pid_file);
        // systemd (Type=notify, NotifyAccess=all): after an upgrade this
        // process is the service's main process from now on.
        notify(&format!("MAINPID={}\nREADY=1", std::process::id()));
        if c.took_over {
            tracing::info!(
                pid = std::process::id(),
                "upgrade: listening sockets taken over; serving"
            );
        }
        while !*shutdown.borrow() {
            if shutdown.changed().await.is_err() {
                return;
            }
        }
        let m = &c.gw.metrics;
        if m.phase() == Phase::HandingOver {
            let _ = c.admin_stop.send(true);
        }
        if m.phase() == Phase::Serving {
            // Shut down by someone else's signal watch (embedded): nothing to wait for.
            return;
        }
        let mut int =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).ok();
        let how = loop {
            if m.in_flight() <= 0 {
                break "drained";
            }
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                Some(()) = async { match int.as_mut() { Some(s) => s.recv().await, None => std::future::pending().await } } => {
                    break "SIGINT during the drain";
                }
            }
        };
        // Sleeping and exiting block this thread; nothing else runs here.
        let control = c.clone();
        let _ = tokio::task::spawn_blocking(move || control.finish(how)).await;
    }
}

/// A service that runs with its own shutdown watch instead of pingora's
/// broadcast: the admin listener, so `/readyz` can say 503 during a drain.
pub struct KeepServing<S> {
    inner: S,
    shutdown: ShutdownWatch,
}

impl<S> KeepServing<S> {
    /// Run `inner` until `shutdown` turns true (or the process ends).
    pub fn new(inner: S, shutdown: ShutdownWatch) -> KeepServing<S> {
        KeepServing { inner, shutdown }
    }
}

#[async_trait]
impl<S: pingora::services::Service> pingora::services::Service for KeepServing<S> {
    async fn start_service(
        &mut self,
        fds: Option<ListenFds>,
        _shutdown: ShutdownWatch,
        listeners_per_fd: usize,
    ) {
        let own = self.shutdown.clone();
        self.inner.start_service(fds, own, listeners_per_fd).await
    }

    fn name(&self) -> &str {
        self.inner.name()
    }

    fn threads(&self) -> Option<usize> {
        self.inner.threads()
    }

    fn listen_addresses(&self) -> Option<Vec<String>> {
        self.inner.listen_addresses()
    }
}

/// Create the upgrade socket's directory (mode 0700) or check that it is
/// private: pingora makes the socket itself world-writable (0666), and
/// whoever can connect to it while a new process waits can hand it
/// listening sockets of their own — or, binding the path first, receive ours.
pub fn private_socket_dir(socket: &Path) -> Result<(), LifecycleError> {
    let dir = socket.parent().unwrap_or(Path::new("."));
    let err = |why: String| LifecycleError::UpgradeSocket {
        path: dir.display().to_string(),
        why,
    };
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| err(format!("cannot create it: {e}")))?;
    }
    let meta = std::fs::symlink_metadata(dir).map_err(|e| err(e.to_string()))?;
    check_private(&meta, euid()).map_err(err)
}

fn check_private(meta: &std::fs::Metadata, uid: u32) -> Result<(), String> {
    if !meta.is_dir() {
        return Err("is not a directory (a symbolic link is not accepted)".into());
    }
    if meta.uid() != uid {
        return Err(format!(
            "belongs to uid {}, not to this process (uid {uid})",
            meta.uid()
        ));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "mode {mode:o} lets other users in; the directory of the upgrade socket must be 0700"
        ));
    }
    Ok(())
}

fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

fn write_pid_file(path: &Path) {
    let write = || -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        // Write beside it and rename: a reader never sees a half-written pid.
        let tmp = path.with_extension("pid.tmp");
        std::fs::write(&tmp, format!("{}\n", std::process::id()))?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644))?;
        std::fs::rename(&tmp, path)
    };
    if let Err(e) = write() {
        tracing::warn!(pid_file = %path.display(), error = %e, "cannot write the pid file");
    }
}

/// The pid a pid file names, if it names one.
pub fn read_pid_file(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn remove_pid_file_if_ours(path: &Path) {
    // After an upgrade the file already names the new process: leave it.
    if read_pid_file(path) == Some(std::process::id()) {
        let _ = std::fs::remove_file(path);
    }
}

/// One sd_notify message to `$NOTIFY_SOCKET` (systemd `Type=notify`);
/// nothing without it.
pub fn notify(message: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(sock) = std::os::unix::net::UnixDatagram::unbound() else {
        return;
    };
    let bytes = path.as_encoded_bytes();
    let sent = if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(name)
            .and_then(|addr| sock.send_to_addr(message.as_bytes(), &addr))
    } else {
        sock.send_to(message.as_bytes(), &path)
    };
    if let Err(e) = sent {
        tracing::warn!(error = %e, "cannot notify the service manager");
    }
}

/// `portvakt upgrade`: ask the running gateway (its pid file) to start the
/// installed binary and hand its sockets over (SIGUSR2); wait until the new
/// process serves and the old one has exited.
pub fn upgrade_command(config_path: &Path) -> std::process::ExitCode {
    use std::process::ExitCode;
    let cfg = match crate::config::load(config_path) {
        Ok(c) => c,
        Err(e) => {
            eprint!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let pid_file = &cfg.server.pid_file;
    let Some(old) = read_pid_file(pid_file).filter(|p| alive(*p)) else {
        eprintln!(
            "portvakt upgrade: no running gateway named by {} (start it with `portvakt serve`)",
            pid_file.display()
        );
        return ExitCode::FAILURE;
    };
    // SIGUSR2 ends a process that does not handle it: make sure the pid
    // file (which may be stale, and whose pid may be reused) names a gateway.
    if !serves(old) {
        eprintln!(
            "portvakt upgrade: process {old} (from {}) is not `portvakt serve`; not signalling it",
            pid_file.display()
        );
        return ExitCode::FAILURE;
    }
    if let Err(e) = send_signal(old, libc::SIGUSR2) {
        eprintln!("portvakt upgrade: cannot signal process {old}: {e}");
        return ExitCode::FAILURE;
    }
    println!("asked process {old} to start the new binary and hand over its sockets");
    let started = Instant::now();
    let new = loop {
        if let Some(p) = read_pid_file(pid_file).filter(|p| *p != old && alive(*p)) {
            break p;
        }
        if started.elapsed() > SUCCESSOR_WAIT + Duration::from_secs(10) {
            eprintln!(
                "portvakt upgrade: no new process took over; process {old} keeps serving (see its log)"
            );
            return ExitCode::FAILURE;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    println!(
        "process {new} serves (after {} ms); process {old} finishes its requests",
        started.elapsed().as_millis()
    );
    // pingora keeps both accepting for 5 s, then the old one drains.
    let limit =
        Duration::from_secs(10) + cfg.server.grace_period + cfg.server.graceful_shutdown_timeout;
    let handed = Instant::now();
    while alive(old) {
        if handed.elapsed() > limit {
            eprintln!("portvakt upgrade: process {old} has not exited after {limit:?}");
            return ExitCode::FAILURE;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    println!(
        "process {old} exited {} ms after the hand-over; upgrade done",
        handed.elapsed().as_millis()
    );
    ExitCode::SUCCESS
}

fn alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // Signal 0 checks existence and permission.
    // SAFETY: kill with signal 0 sends nothing.
    if unsafe { libc::kill(pid, 0) } != 0 {
        return false;
    }
    // An exited process its parent has not reaped yet is not serving.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat.rsplit_once(") ").map(|(_, rest)| rest.chars().next());
    state != Some(Some('Z'))
}

/// Whether `pid` runs `… serve …` (its command line, from /proc).
fn serves(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| {
            c.split(|b| *b == 0)
                .any(|arg| arg == b"serve" || arg == b"demo")
        })
        .unwrap_or(false)
}

fn send_signal(pid: u32, signal: libc::c_int) -> std::io::Result<()> {
    let pid = libc::pid_t::try_from(pid).map_err(std::io::Error::other)?;
    // SAFETY: plain kill(2) on a pid read from our pid file.
    if unsafe { libc::kill(pid, signal) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_upgrade_socket_directory_is_created_private() {
        let tmp = tempfile::tempdir().unwrap();
        let socket = tmp.path().join("a/b/portvakt.sock");
        private_socket_dir(&socket).unwrap();
        let mode = std::fs::metadata(tmp.path().join("a/b"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    #[test]
    fn a_directory_others_can_enter_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("shared");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let e = private_socket_dir(&dir.join("portvakt.sock")).unwrap_err();
        assert!(e.to_string().contains("mode 755"), "{e}");
        assert!(e.to_string().starts_with("server.upgrade_socket"), "{e}");
    }

    #[test]
    fn a_directory_of_another_user_or_a_symlink_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("mine");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        let meta = std::fs::symlink_metadata(&dir).unwrap();
        assert!(check_private(&meta, meta.uid()).is_ok());
        let e = check_private(&meta, meta.uid() + 1).unwrap_err();
        assert!(e.contains("belongs to uid"), "{e}");
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        let e = private_socket_dir(&link.join("portvakt.sock")).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
    }

    #[test]
    fn the_pid_file_is_removed_only_while_it_names_us() {
        let tmp = tempfile::tempdir().unwrap();
        let pid = tmp.path().join("portvakt.pid");
        write_pid_file(&pid);
        assert_eq!(read_pid_file(&pid), Some(std::process::id()));
        std::fs::write(&pid, "1\n").unwrap();
        remove_pid_file_if_ours(&pid);
        assert!(pid.exists(), "a successor's pid file stays");
        write_pid_file(&pid);
        remove_pid_file_if_ours(&pid);
        assert!(!pid.exists());
    }

    #[test]
    fn notify_reaches_a_datagram_socket() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("notify");
        let rx = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        // The environment is process-wide: only this test sets it.
        std::env::set_var("NOTIFY_SOCKET", &path);
        notify("READY=1");
        std::env::remove_var("NOTIFY_SOCKET");
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
    }
}
