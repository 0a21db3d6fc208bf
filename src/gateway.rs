//! The gateway's state: a [`Runtime`] built from one configuration (swapped
//! whole on SIGHUP) and the [`Gateway`] that outlives reloads (sessions,
//! handoff codes, clock).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use http::HeaderValue;
use pingora::prelude::HttpPeer;

use crate::audit::{self, AuthEvent, Event, LogWriter, Outcome, Reason, RequestIds};
use crate::basic::BasicCache;
use crate::clock::SharedClock;
use crate::config::model::{DirectoryConfig, Realm, Upstream};
use crate::config::types::Lang;
use crate::config::{Config, ConfigError, Problem};
use crate::directory::file::FileDirectory;
use crate::directory::Directory;
use crate::factors::code::{Challenges, CodeRules};
use crate::notify::{split_subject, EmailMessage, Notifier, SmsMessage};
use crate::pages::templates::Pages;
use crate::password::PasswordChecker;
use crate::regulation::Regulator;
use crate::routing::Router;
use crate::session::handoff::HandoffCodes;
use crate::session::memory::MemoryStore;
use crate::session::Method;
use crate::session::SessionStore;
use crate::signing::{Purpose, Signer};
use crate::state::health::{Backend, HealthListener, Monitored};
use crate::state::sessions::SharedSessions;
use crate::state::{SharedState, StateBackend};
use crate::storage::monitored::MonitoredStore;
use crate::storage::{EnrolmentStore, Sealer};

/// Everything derived from one configuration.
#[derive(Debug)]
pub struct Runtime {
    /// The validated configuration.
    pub config: Config,
    /// Host/path → service.
    pub router: Router,
    /// Templates and strings.
    pub pages: Pages,
    /// Secret key.
    pub signer: Signer,
    /// Directory per realm id.
    pub directories: HashMap<String, Arc<dyn Directory>>,
    /// Login throttling (carried over reloads).
    pub regulator: Regulator,
    /// Verified Basic credentials (dropped on reload: the users may have changed).
    pub basic_cache: BasicCache,
    /// `Content-Security-Policy` for our pages.
    pub csp: HeaderValue,
    /// `Strict-Transport-Security`.
    pub hsts: HeaderValue,
    /// Access log.
    pub access_log: LogWriter,
    /// Auth log.
    pub auth_log: LogWriter,
    /// One prebuilt upstream peer per service (by `Service::index`), cloned per request.
    pub peers: Vec<Box<HttpPeer>>,
    /// SMS and e-mail senders.
    pub notifier: Notifier,
    /// Code rules from `codes:`.
    pub code_rules: CodeRules,
    /// The WebAuthn relying party (`passkeys:`).
    pub passkeys: crate::passkey::RelyingParty,
    /// `Content-Security-Policy` for the pages that run our passkey script.
    pub csp_script: HeaderValue,
    /// Identity assertions made for this configuration's services, reused
    /// for most of their lifetime (a reload empties it: audiences and
    /// service indexes may have changed).
    pub assertion_cache: crate::assertion::TokenCache,
}

impl Runtime {
    /// Build from `config`. `previous` donates throttle counters and open log
    /// files so a reload loses nothing.
    pub fn build(config: Config, previous: Option<&Runtime>) -> Result<Runtime, ConfigError> {
        let fail = |p: Problem| ConfigError { problems: vec![p] };
        let pages = Pages::load(&config).map_err(fail)?;
        let signer = Signer::from_file(&config.secret_key_file).map_err(|e| {
            fail(Problem::new(
                &config.source,
                None,
                "secret_key_file",
                e.to_string(),
            ))
        })?;
        let checker = PasswordChecker::new(config.login.max_concurrent_hashes);
        let mut directories: HashMap<String, Arc<dyn Directory>> = HashMap::new();
        let mut problems = Vec::new();
        for realm in &config.realms {
            match &realm.directory {
                DirectoryConfig::File(path) => match FileDirectory::load(path, checker.clone()) {
                    Ok(d) => {
                        directories.insert(realm.id.clone(), Arc::new(d));
                    }
                    Err(mut p) => problems.append(&mut p),
                },
                DirectoryConfig::Ldap {
                    config: l,
                    base_dir,
                } => match crate::directory::ldap::LdapDirectory::new(l, base_dir) {
                    Ok(d) => {
                        directories.insert(realm.id.clone(), Arc::new(d));
                    }
                    Err(list) => problems.extend(list.into_iter().map(|(k, m)| {
                        let key = format!("realms.{}.directory.ldap.{k}", realm.id);
                        Problem::new(&config.source, None, &key, m)
                    })),
                },
            }
        }
        if !problems.is_empty() {
            return Err(ConfigError { problems });
        }
        for w in &config.warnings {
            tracing::warn!(warning = %w, "configuration");
        }
        let router = Router::new(&config.portal_host, &config.services);
        let csp = crate::proxy::respond::csp(&router);
        let csp_script = crate::proxy::respond::with_our_script(&csp);
        let passkeys = crate::passkey::RelyingParty::new(
            &config.passkey_rp_id,
            &config.portal_host,
            config.branding.title.get(config.default_lang),
        )
        .map_err(|e| {
            fail(Problem::new(
                &config.source,
                None,
                "passkeys.rp_id",
                e.to_string(),
            ))
        })?;
        let hsts = HeaderValue::from_str(&config.hsts).map_err(|_| {
            fail(Problem::new(
                &config.source,
                None,
                "tls.hsts_max_age",
                "bad value".into(),
            ))
        })?;
        let access_log = match previous {
            Some(p) if p.config.access_log == config.access_log => Ok(p.access_log.clone()),
            _ => LogWriter::open(&config.access_log, true),
        }
        .map_err(|e| {
            fail(Problem::new(
                &config.source,
                None,
                "audit.access_log",
                e.to_string(),
            ))
        })?;
        // The chained writer is shared across reloads while the log and head
        // stay the same: two writers on one chain would each hold a head.
        let auth_log = match previous {
            Some(p)
                if p.config.auth_log == config.auth_log
                    && p.config.chain_head == config.chain_head =>
            {
                Ok(p.auth_log.clone())
            }
            _ => LogWriter::open_chained(&config.auth_log, &config.chain_head, &config.gateway),
        }
        .map_err(|e| {
            fail(Problem::new(
                &config.source,
                None,
                "audit.auth_log",
                e.to_string(),
            ))
        })?;
        let mut regulator = Regulator::new(config.login.clone());
        if let Some(p) = previous {
            regulator = regulator.inherit(&p.regulator);
        }
        let notifier = Notifier::new(&config.notify)
            .map_err(|e| fail(Problem::new(&config.source, None, "notify", e.to_string())))?;
        let code_rules = config.codes.rules.clone();
        let peers = config
            .services
            .iter()
            .map(|s| Box::new(peer(&s.upstream)))
            .collect();
        Ok(Runtime {
            assertion_cache: crate::assertion::TokenCache::default(),
            notifier,
            code_rules,
            peers,
            basic_cache: BasicCache::new(config.login.basic_auth_cache),
            router,
            pages,
            signer,
            directories,
            regulator,
            csp,
            csp_script,
            passkeys,
            hsts,
            access_log,
            auth_log,
            config,
        })
    }

    /// Render and send a one-time code by SMS or e-mail. Returns the
    /// provider's short answer for the audit log, or why it failed.
    pub async fn notify_code(
        &self,
        method: Method,
        destination: &str,
        code: &str,
        minutes: u64,
        display_name: &str,
        lang: Lang,
    ) -> Result<String, String> {
        let ctx = minijinja::context! {
            code => code,
            minutes => minutes,
            portal_host => self.config.portal_host.as_str(),
            brand_title => self.config.branding.title.get(lang),
            display_name => display_name,
        };
        let l = lang.code();
        let result = match method {
            Method::Sms => {
                let text = self
                    .pages
                    .render_text(&format!("sms/code.{l}.txt"), ctx)
                    .map_err(|e| format!("template: {e}"))?;
                let msg = SmsMessage {
                    to: destination.to_owned(),
                    text: text.trim().to_owned(),
                    code: Some(code.to_owned()),
                };
                self.notifier.send_sms(&msg).await
            }
            _ => {
                let text = self
                    .pages
                    .render_text(&format!("email/code.{l}.txt"), ctx.clone())
                    .map_err(|e| format!("template: {e}"))?;
                let html = self
                    .pages
                    .render_text(&format!("email/code.{l}.html"), ctx)
                    .map_err(|e| format!("template: {e}"))?;
                let (subject, body) = split_subject(&text);
                let msg = EmailMessage {
                    to: destination.to_owned(),
                    to_name: Some(display_name.to_owned()).filter(|n| !n.is_empty()),
                    subject: subject.unwrap_or("portvakt").to_owned(),
                    text: body.to_owned(),
                    html: Some(html),
                };
                self.notifier.send_email(&msg).await
            }
        };
        result
            .map(|d| d.provider)
            .map_err(|e| format!("{}: {e}", e.reason()))
    }

    /// E-mail the user that their enrolments changed; `what` names the
    /// language-file text describing the change, `now_ms` (the gateway's
    /// clock) the time the notice gives.
    pub async fn notify_change(
        &self,
        now_ms: u64,
        to: &str,
        display_name: &str,
        what: &str,
        lang: Lang,
    ) -> Result<String, String> {
        let ctx = minijinja::context! {
            what => self.pages.t(lang, what),
            portal_host => self.config.portal_host.as_str(),
            brand_title => self.config.branding.title.get(lang),
            display_name => display_name,
            when => crate::audit::timestamp(now_ms),
        };
        let l = lang.code();
        let text = self
            .pages
            .render_text(&format!("email/notice.{l}.txt"), ctx.clone())
            .map_err(|e| format!("template: {e}"))?;
        let html = self
            .pages
            .render_text(&format!("email/notice.{l}.html"), ctx)
            .map_err(|e| format!("template: {e}"))?;
        let (subject, body) = split_subject(&text);
        let msg = EmailMessage {
            to: to.to_owned(),
            to_name: Some(display_name.to_owned()).filter(|n| !n.is_empty()),
            subject: subject.unwrap_or("portvakt").to_owned(),
            text: body.to_owned(),
            html: Some(html),
        };
        self.notifier
            .send_email(&msg)
            .await
            .map(|d| d.provider)
            .map_err(|e| format!("{}: {e}", e.reason()))
    }

    /// The realm a service belongs to (its first), else the first realm.
    pub fn realm_for(&self, service_realms: &[String]) -> &Arc<Realm> {
        service_realms
            .first()
            .and_then(|id| self.config.realm(id))
            .unwrap_or(&self.config.realms[0])
    }
}

/// The pingora peer for an upstream: TLS verification on unless turned off,
/// the service's CA bundle, timeouts.
fn peer(u: &Upstream) -> HttpPeer {
    use pingora::utils::tls::WrappedX509;
    let mut p = HttpPeer::new(u.socket, u.tls, u.sni.clone());
    // pingora's connection-reuse key covers address, SNI and the verify flags
    // but not the CA bundle: without this, a service trusting a private CA
    // could hand its verified connection to a service that trusts only the
    // system roots.
    p.group_key = {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        u.ca_der.hash(&mut h);
        u.verify.hash(&mut h);
        h.finish()
    };
    p.options.verify_cert = u.verify;
    p.options.verify_hostname = u.verify;
    p.options.connection_timeout = Some(u.connect_timeout);
    p.options.total_connection_timeout = Some(u.connect_timeout);
    p.options.read_timeout = Some(u.read_timeout);
    p.options.idle_timeout = Some(std::time::Duration::from_secs(60));
    if let Some(ca) = &u.ca_der {
        // Only DER that parsed as a certificate during validation gets here.
        let certs: Vec<WrappedX509> = ca
            .iter()
            .map(|der| WrappedX509::new(der.clone(), pingora::utils::tls::parse_x509))
            .collect();
        p.options.ca = Some(Arc::from(certs.into_boxed_slice()));
    }
    p
}

/// The state that outlives configuration reloads.
#[derive(Debug)]
pub struct Gateway {
    runtime: ArcSwap<Runtime>,
    /// Short-lived state (memory, or Redis shared with other gateways),
    /// watched for outages.
    pub state: Arc<Monitored>,
    /// Sessions.
    pub sessions: Arc<dyn SessionStore>,
    /// Pending handoff codes.
    pub handoffs: HandoffCodes,
    /// Time.
    pub clock: SharedClock,
    /// Request ids.
    pub ids: RequestIds,
    /// Enrolments (SMS numbers, authenticator devices, tokens), durable;
    /// watched for outages like the state.
    pub store: Arc<dyn EnrolmentStore>,
    /// Pending one-time codes.
    pub challenges: Challenges,
    /// Enrolments waiting for their confirming code.
    pub enrolling: crate::enrolment::Enrolling,
    /// Passkey logins waiting for the browser's answer.
    pub passkey_logins: crate::passkey::Ceremonies,
    /// Prometheus metrics.
    pub metrics: crate::metrics::Metrics,
    /// The identity assertion signing keys: a private file in the state
    /// directory, or the shared state when several gateways share it (each
    /// must publish the keys any of them signs with).
    pub assertion_keys: crate::assertion::KeyRing,
}

impl Gateway {
    /// A gateway running `runtime`, keeping short-lived state in `state`.
    /// Sessions stay in this process's own map when `state` is memory (no
    /// encoding on the request path); with a shared backend they live
    /// there, so every gateway sees every session.
    pub fn new(
        mut runtime: Runtime,
        clock: SharedClock,
        store: Arc<dyn EnrolmentStore>,
        state: SharedState,
    ) -> Arc<Gateway> {
        let state = Arc::new(Monitored::new(state));
        let store = Arc::new(MonitoredStore::new(store));
        let shared: SharedState = state.clone();
        // Lockout counters in a shared backend are every gateway's; in
        // memory they stay in the regulator's own bounded tables (one
        // gateway, nothing to share).
        if shared.kind() != "memory" {
            runtime.regulator.use_state(shared.clone());
        }
        let sessions: Arc<dyn SessionStore> = if shared.kind() == "memory" {
            Arc::new(MemoryStore::default())
        } else {
            Arc::new(SharedSessions::new(
                shared.clone(),
                runtime.config.idle_timeout,
                runtime.config.max_lifetime,
            ))
        };
        // One key for every gateway sharing the state: derived from the
        // shared secret, so a value sealed by A opens on B.
        let sealer = || Sealer::from_secret(&runtime.signer.mac(Purpose::StateSeal, b""));
        let pepper = runtime.signer.mac(Purpose::CodePepper, b"");
        let assertion_keys = {
            use crate::assertion::keys::{Place, FILE_NAME};
            let place = if shared.kind() == "memory" {
                Place::File(runtime.config.state_dir.join(FILE_NAME))
            } else {
                Place::Shared(shared.clone())
            };
            let seal = runtime.signer.mac(Purpose::AssertionKeys, b"");
            crate::assertion::KeyRing::new(place, Sealer::from_secret(&seal))
        };
        let gw = Arc::new(Gateway {
            assertion_keys,
            handoffs: HandoffCodes::new(shared.clone(), sealer()),
            challenges: Challenges::new(shared.clone(), pepper),
            passkey_logins: crate::passkey::Ceremonies::new(shared.clone()),
            enrolling: crate::enrolment::Enrolling::new(shared, sealer()),
            runtime: ArcSwap::from_pointee(runtime),
            state,
            sessions,
            clock,
            ids: RequestIds::default(),
            store: store.clone(),
            metrics: crate::metrics::Metrics::new(),
        });
        let weak = Arc::downgrade(&gw);
        let listener: std::sync::Weak<dyn HealthListener> = weak;
        gw.state.health.listen(listener.clone());
        store.health.listen(listener);
        gw
    }

    /// Whether the short-lived sessions are shared with other gateways.
    pub fn shared_sessions(&self) -> bool {
        self.state.kind() != "memory"
    }

    /// The current runtime (cheap; a request keeps the one it started with).
    pub fn runtime(&self) -> Arc<Runtime> {
        self.runtime.load_full()
    }

    /// Re-read the configuration file; on success swap it in, else keep the
    /// old one. Returns the problems on failure.
    pub fn reload(&self) -> Result<(), ConfigError> {
        let current = self.runtime();
        let mut config = crate::config::load(&current.config.source)?;
        // Its chain and chain head hold the name: a new name needs a restart.
        if config.gateway != current.config.gateway {
            tracing::warn!("audit.gateway changed; it takes effect only after a restart");
            config.gateway = current.config.gateway.clone();
        }
        if config.https_addr != current.config.https_addr
            || config.http_addr != current.config.http_addr
            || config.proxy_protocol != current.config.proxy_protocol
        {
            tracing::warn!("listen addresses changed; they take effect only after a restart");
        }
        if config.storage != current.config.storage {
            tracing::warn!("storage changed; it takes effect only after a restart");
        }
        let runtime = Runtime::build(config, Some(&current))?;
        self.runtime.store(Arc::new(runtime));
        Ok(())
    }

    /// Write an auth event.
    pub fn audit(&self, rt: &Runtime, event: AuthEvent<'_>) {
        self.metrics.auth_event(&event);
        match serde_json::to_string(&event) {
            Ok(line) => rt.auth_log.write(line),
            Err(e) => tracing::error!(error = %e, "cannot serialise auth event"),
        }
    }

    /// Audit a session that ended by itself (seen on a request, or swept).
    pub fn audit_expired(
        &self,
        rt: &Runtime,
        s: &crate::session::Session,
        why: crate::session::Expiry,
        key: Option<crate::session::SessionKey>,
    ) {
        let internal = rt.config.is_internal_to(&s.realm, s.ip_at_login);
        let mut ev = self.event(
            Event::Expired,
            Outcome::Info,
            why.reason(),
            Some(&s.user),
            Some(&s.realm),
            s.ip_at_login,
            internal,
            "",
        );
        ev.session = key.map(|k| k.short());
        self.audit(rt, ev);
    }

    /// A fresh auth event skeleton.
    #[allow(clippy::too_many_arguments)]
    pub fn event<'a>(
        &self,
        event: Event,
        result: Outcome,
        reason: Reason,
        user: Option<&'a str>,
        realm: Option<&'a str>,
        client_ip: IpAddr,
        internal: bool,
        request_id: &'a str,
    ) -> AuthEvent<'a> {
        AuthEvent {
            time: audit::timestamp(self.clock.now_ms()),
            event,
            result,
            reason,
            user,
            realm,
            client_ip,
            network: audit::auth::network(internal),
            method: None,
            request_id,
            session: None,
            host: None,
            destination: None,
            provider: None,
        }
    }
}

impl HealthListener for Gateway {
    fn changed(&self, backend: Backend, up: bool, error: Option<&str>) {
        let rt = self.runtime();
        let reason = match (backend, up) {
            (Backend::State, false) => Reason::StateUnavailable,
            (Backend::State, true) => Reason::StateRestored,
            (Backend::Storage, false) => Reason::StorageUnavailable,
            (Backend::Storage, true) => Reason::StorageRestored,
        };
        let unspecified = IpAddr::from([0, 0, 0, 0]);
        let mut ev = self.event(
            Event::Backend,
            Outcome::of(up),
            reason,
            None,
            None,
            unspecified,
            true,
            "",
        );
        // The error text names the backend's address, never its password
        // (both backends redact their URLs in errors).
        ev.provider = error.map(str::to_owned);
        ev.destination = Some(
            if backend == Backend::State {
                self.state.kind()
            } else {
                "storage"
            }
            .to_owned(),
        );
        self.audit(&rt, ev);
    }
}
