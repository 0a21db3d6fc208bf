//! Builds and runs the pingora server from our configuration: the HTTPS
//! proxy service, the redirect-only HTTP listener, the admin listener,
//! background sweeping, SIGHUP reloads, SIGUSR1 log reopening and SIGUSR2
//! upgrades; how the process ends is in [`crate::lifecycle`].

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::apps::http_app::ServeHttp;
use pingora::listeners::tls::TlsSettings;
use pingora::protocols::http::ServerSession;
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server, ShutdownWatch};
use pingora::services::background::{background_service, BackgroundService};
use pingora::services::listening::Service;

use crate::config::{self, Config};
use crate::gateway::{Gateway, Runtime};
use crate::proxy::Proxy;
use crate::state::StateBackend;
use crate::tls::SniResolver;

pub use crate::launch::{Launch, Reloader, Running, Stop};

/// Errors starting the server.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is invalid.
    #[error("{0}")]
    Config(#[from] config::ConfigError),
    /// Certificates could not be loaded.
    #[error("{0}")]
    Tls(#[from] crate::tls::TlsError),
    /// Enrolment storage could not be opened.
    #[error("cannot open storage: {0}")]
    Storage(#[from] crate::storage::StorageError),
    /// The secret key could not be read.
    #[error("cannot read the secret key: {0}")]
    Key(std::io::Error),
    /// The auth log or its chain head cannot be written.
    #[error("cannot write the auth log or its chain head ({0}): {1}")]
    AuditLog(String, std::io::Error),
    /// The shared state could not be set up (not: is down — that is
    /// survived, and answered with the "not working right now" page).
    #[error("cannot set up the shared state: {0}")]
    State(#[from] crate::state::StateError),
    /// Signal handling could not be installed.
    #[error("cannot install signal handler: {0}")]
    Signals(std::io::Error),
    /// The in-process server thread could not be started.
    #[error("cannot start the server thread: {0}")]
    Thread(std::io::Error),
    /// The upgrade socket's place is not private.
    #[error("{0}")]
    Lifecycle(#[from] crate::lifecycle::LifecycleError),
}

/// A gateway ready to run.
pub struct Prepared {
    /// Shared state (for tests and admin tooling).
    pub gateway: Arc<Gateway>,
    server: Server,
    /// Kept for [`Prepared::reloader`]: certificates are reloaded with the config.
    resolver: Arc<SniResolver>,
    life: Arc<crate::lifecycle::Control>,
}

/// How the process gets its listening sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Bind them.
    Fresh,
    /// Take them over from the running process (`serve --upgrade`): it hands
    /// them over the upgrade socket after SIGQUIT.
    Upgrade,
}

/// Build the pingora server for `config`, as `portvakt serve` runs it: the
/// system clock, and SIGHUP/SIGUSR1 handled by this process.
pub fn prepare(config: Config) -> Result<Prepared, StartError> {
    prepare_with(config, Launch::serve())
}

/// Build the pingora server for `config` with what `launch` hands in
/// (clock, signals, whether to take the sockets over).
pub fn prepare_with(config: Config, launch: Launch) -> Result<Prepared, StartError> {
    let start = launch.start;
    let resolver = Arc::new(SniResolver::load(&config.certificates)?);
    let https_addr = config.https_addr;
    let http_addr = config.http_addr;
    let admin_addr = config.admin_addr;
    let proxy_protocol = config.proxy_protocol;
    let tuning = config.server.clone();
    let runtime = Runtime::build(config, None)?;
    crate::audit::LogWriter::preflight_chained(
        &runtime.config.auth_log,
        &runtime.config.chain_head,
        &runtime.config.gateway,
    )
    .map_err(|e| StartError::AuditLog(runtime.config.chain_head.display().to_string(), e))?;
    let store = open_store(&runtime)?;
    let state = crate::state::open(
        runtime.config.state_url.as_deref(),
        runtime.config.state_timeout,
        runtime.config.state_ca_file.as_deref(),
        launch.clock.clone(),
    )?;
    let gateway = Gateway::new(runtime, launch.clock, store, state);
    gateway.metrics.started(gateway.clock.now_secs_f64());
    gateway
        .metrics
        .sms_price(gateway.runtime().config.notify.sms.cost.as_ref());

    let conf = ServerConf {
        threads: tuning.threads,
        grace_period_seconds: Some(tuning.grace_period.as_secs()),
        graceful_shutdown_timeout_seconds: Some(tuning.graceful_shutdown_timeout.as_secs()),
        upstream_keepalive_pool_size: tuning.upstream_keepalive_pool_size,
        // pingora uses the pid file only when daemonising (we never do);
        // ours is written by the lifecycle's drainer.
        pid_file: tuning.pid_file.display().to_string(),
        upgrade_sock: tuning.upgrade_socket.display().to_string(),
        ..ServerConf::default()
    };
    crate::lifecycle::private_socket_dir(&tuning.upgrade_socket)?;
    let opt = pingora::server::configuration::Opt {
        upgrade: start == Start::Upgrade,
        ..Default::default()
    };
    let mut server = Server::new_with_opt_and_conf(opt, conf);
    // With `Start::Upgrade` this waits (a few seconds at most) for the old
    // process to send its listening sockets, and exits if none come.
    server.bootstrap();
    let life = crate::lifecycle::Control::new(gateway.clone(), start == Start::Upgrade);

    let mut proxy = pingora::proxy::http_proxy_service_with_name(
        &server.configuration,
        Proxy {
            gw: gateway.clone(),
        },
        "portvakt https",
    );
    // The resolver replaces the cert/key paths given here.
    let mut tls = TlsSettings::intermediate("", "").map_err(|e| crate::tls::TlsError::Invalid {
        path: String::new(),
        what: e.to_string(),
    })?;
    tls.set_cert_resolver(resolver.clone());
    tls.enable_h2();
    proxy.add_tls_with_settings(&https_addr.to_string(), None, tls);
    if proxy_protocol {
        let hook = crate::proxy_protocol::ProxyProtocol::new(gateway.clone());
        proxy.endpoints().set_pre_tls_callback(Arc::new(hook));
    }
    server.add_service(proxy);

    if let Some(addr) = http_addr {
        let mut redirect = Service::new(
            "portvakt http redirect".into(),
            RedirectToHttps {
                https_port: https_addr.port(),
            },
        );
        redirect.add_tcp(&addr.to_string());
        server.add_service(redirect);
    }
    if let Some(addr) = admin_addr {
        let mut admin = Service::new(
            "portvakt admin".into(),
            crate::admin_listener::AdminApp::new(gateway.clone()),
        );
        admin.add_tcp(&addr.to_string());
        // Not stopped by pingora's broadcast: /readyz answers 503 while draining.
        server.add_service(crate::lifecycle::KeepServing::new(
            admin,
            life.admin_shutdown(),
        ));
    }
    server.add_service(background_service(
        "portvakt lifecycle",
        crate::lifecycle::Drainer::new(life.clone()),
    ));
    server.add_service(background_service(
        "portvakt sweeper",
        Sweeper {
            gw: gateway.clone(),
        },
    ));
    if launch.process_signals {
        install_reload(gateway.clone(), resolver.clone(), life.clone())?;
    }
    Ok(Prepared {
        gateway,
        server,
        resolver,
        life,
    })
}

impl Prepared {
    /// The reload and log-reopen actions SIGHUP and SIGUSR1 trigger in
    /// `serve`, to call directly where no signal handler was installed.
    pub fn reloader(&self) -> Reloader {
        Reloader {
            gw: self.gateway.clone(),
            resolver: self.resolver.clone(),
        }
    }

    /// Run until SIGTERM (drain), SIGQUIT (hand-over) or SIGINT (fast stop).
    /// Never returns.
    pub fn run_forever(self) -> ! {
        crate::lifecycle::remember_binary();
        self.life.exit_when_drained();
        let watch = crate::lifecycle::SignalWatch::new(self.life.clone());
        self.server.run(RunArgs {
            shutdown_signal: Box::new(watch),
        });
        self.life.after_run()
    }

    /// Run until the given shutdown signal (tests, embedding).
    pub fn run(self, args: RunArgs) {
        self.server.run(args)
    }

    /// Run on a thread of this process until the returned handle is
    /// stopped or dropped (tests, embedding; prepare with
    /// [`Launch::in_process`]). Returns at once: the listeners are bound
    /// shortly after, so wait for them to accept.
    pub fn start_in_process(self) -> Result<Running, StartError> {
        let reloader = self.reloader();
        Running::spawn(self.server, reloader).map_err(StartError::Thread)
    }
}

/// Open the enrolment store named by the config, with seeds sealed by a key
/// derived from the gateway's secret key.
pub fn open_store(rt: &Runtime) -> Result<Arc<dyn crate::storage::EnrolmentStore>, StartError> {
    let secret = std::fs::read(&rt.config.secret_key_file).map_err(StartError::Key)?;
    let sealer = crate::storage::crypto::Sealer::from_secret(&secret);
    Ok(crate::storage::open_for_gateway(
        &rt.config.storage,
        sealer,
        crate::storage::LegacyRows::for_config(&rt.config),
    )?)
}

/// SIGHUP: re-read the config file; keep the old one on any error.
/// SIGUSR1: reopen the log files (after logrotate moved them).
/// SIGUSR2: start the new binary and hand the listening sockets to it.
fn install_reload(
    gw: Arc<Gateway>,
    resolver: Arc<SniResolver>,
    life: Arc<crate::lifecycle::Control>,
) -> Result<(), StartError> {
    use signal_hook::consts::{SIGHUP, SIGUSR1, SIGUSR2};
    let mut signals = signal_hook::iterator::Signals::new([SIGHUP, SIGUSR1, SIGUSR2])
        .map_err(StartError::Signals)?;
    std::thread::Builder::new()
        .name("portvakt-signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                if signal == SIGUSR2 {
                    life.start_successor();
                } else if signal == SIGUSR1 {
                    let rt = gw.runtime();
                    rt.access_log.reopen();
                    rt.auth_log.reopen();
                    tracing::info!("log files reopened");
                } else {
                    reload(&gw, &resolver);
                }
            }
        })
        .map_err(StartError::Signals)?;
    Ok(())
}

/// One reload attempt, logged either way.
pub fn reload(gw: &Gateway, resolver: &SniResolver) {
    let source = gw.runtime().config.source.clone();
    // Load certificates first: if they fail, nothing changes.
    let result = config::load(&source)
        .map_err(|e| e.to_string())
        .and_then(|cfg| {
            resolver
                .reload(&cfg.certificates)
                .map_err(|e| e.to_string())?;
            gw.reload().map_err(|e| e.to_string())
        });
    // The running configuration's price, the new one or (after a failed
    // reload) the old; set before the reload is counted, so a scrape that
    // sees the count sees the price it left.
    gw.metrics
        .sms_price(gw.runtime().config.notify.sms.cost.as_ref());
    gw.metrics
        .config_loaded(result.is_ok(), gw.clock.now_secs_f64());
    match result {
        Ok(()) => tracing::info!(config = %source.display(), "configuration reloaded"),
        Err(e) => {
            tracing::error!(config = %source.display(), "reload failed, keeping the running configuration:\n{e}")
        }
    }
}

/// The plain-HTTP listener: every request is sent to HTTPS.
struct RedirectToHttps {
    https_port: u16,
}

#[async_trait]
impl ServeHttp for RedirectToHttps {
    async fn response(&self, session: &mut ServerSession) -> http::Response<Vec<u8>> {
        let req = session.req_header();
        let host = req
            .headers
            .get(http::header::HOST)
            .and_then(|v| v.to_str().ok())
            .map(crate::routing::normalise_host)
            .filter(|h| {
                !h.is_empty()
                    && h.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
            });
        let Some(host) = host else {
            return http::Response::builder()
                .status(400)
                .header(http::header::CONTENT_TYPE, "text/plain")
                .body(b"portvakt: a Host header is needed\n".to_vec())
                .unwrap_or_default();
        };
        let port = if self.https_port == 443 {
            String::new()
        } else {
            format!(":{}", self.https_port)
        };
        let path = req.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let location = format!("https://{host}{port}{path}");
        http::Response::builder()
            .status(301)
            .header(http::header::LOCATION, location)
            .header(http::header::CONTENT_LENGTH, "0")
            .body(Vec::new())
            .unwrap_or_default()
    }
}

/// Periodic cleanup: expired sessions (audited), handoff codes, throttle records.
struct Sweeper {
    gw: Arc<Gateway>,
}

#[async_trait]
impl BackgroundService for Sweeper {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut tick = tokio::time::interval(Duration::from_secs(10));
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = tick.tick() => self.sweep().await,
            }
        }
    }
}

impl Sweeper {
    async fn sweep(&self) {
        let gw = &self.gw;
        let rt = gw.runtime();
        let now = gw.clock.now_ms();
        let cfg = &rt.config;
        let removed = gw
            .sessions
            .sweep(
                now,
                cfg.idle_timeout.as_millis() as u64,
                cfg.max_lifetime.as_millis() as u64,
            )
            .await
            .unwrap_or_default();
        for s in removed {
            let why = s
                .expired(
                    now,
                    cfg.idle_timeout.as_millis() as u64,
                    cfg.max_lifetime.as_millis() as u64,
                )
                .unwrap_or(crate::session::Expiry::Idle);
            gw.audit_expired(&rt, &s, why, None);
        }
        // Handoff and one-time codes and pending enrolments live in the
        // state backend, which drops them when they expire.
        gw.state.sweep();
        rt.regulator.sweep(now);
        rt.basic_cache.sweep(now);
    }
}
