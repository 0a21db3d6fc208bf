//! Prometheus metrics, served on the admin listener's `/metrics`.
//!
//! Requests are counted where the access-log line is written and
//! authentication figures where auth events are written
//! ([`Metrics::auth_event`]), so the metrics and the logs cannot disagree
//! about what happened. Uses the `prometheus` crate (tikv/rust-prometheus):
//! the text exposition format and process metrics without writing either.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Mutex;

use prometheus::{
    Encoder, Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::audit::{AuthEvent, Event, Outcome};
use crate::notify::config::Price;

/// Request latency buckets, seconds: from a cached page to a slow upstream.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Every metric the gateway exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    upstream_errors: IntCounterVec,
    logins: IntCounterVec,
    login_steps: IntCounterVec,
    auth_events: IntCounterVec,
    codes_sent: IntCounterVec,
    sms_price: GaugeVec,
    /// The currency `sms_price` is exported in now, to drop its series when
    /// a reload changes or removes the price (and only then: a scrape during
    /// a reload must not find the price missing).
    sms_currency: Mutex<Option<String>>,
    second_factors: IntCounterVec,
    enrolments: IntCounterVec,
    lockouts: IntCounterVec,
    sessions_revoked: IntCounterVec,
    reloads: IntCounterVec,
    last_reload: Gauge,
    sessions: IntGauge,
    backend_outages: IntCounterVec,
    backend_down: IntGaugeVec,
    /// Requests whose context is alive (the drain waits for zero).
    in_flight: IntGauge,
    /// Requests whose context ended, for the drain's "finished N" line.
    ended: IntCounter,
    /// 1 from SIGTERM until exit.
    draining: IntGauge,
    /// 1 from the upgrade signal until exit.
    handing_over: IntGauge,
    /// [`Phase`] as a number: read on every response, so one atomic load.
    phase: AtomicU8,
}

/// Where the process is in its life (see `crate::lifecycle`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Serving normally.
    Serving,
    /// Handing the listening sockets to a new binary: still serving, but
    /// every response closes its connection so clients reconnect (and land
    /// on whichever process accepts).
    HandingOver,
    /// SIGTERM: no new connections, finishing what is in flight.
    Draining,
}

/// One request counted as in flight until this is dropped (held by the
/// request's context, so pages, upstream requests and WebSockets all count).
#[derive(Debug)]
pub struct InFlight {
    gauge: IntGauge,
    ended: IntCounter,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.gauge.dec();
        self.ended.inc();
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// What a metric definition that cannot fail (fixed names, fixed labels)
/// returns if it fails anyway: a programming error, caught by the tests.
fn defined<T>(m: prometheus::Result<T>) -> T {
    match m {
        Ok(m) => m,
        Err(e) => panic!("metric definition: {e}"),
    }
}

impl Metrics {
    /// A registry with every metric at zero, plus process metrics (CPU,
    /// memory, open files).
    pub fn new() -> Metrics {
        let registry =
            Registry::new_custom(Some("portvakt".into()), None).unwrap_or_else(|_| Registry::new());
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = defined(IntCounterVec::new(Opts::new(name, help), labels));
            defined(registry.register(Box::new(c.clone())));
            c
        };
        let requests = counter(
            "requests_total",
            "Requests answered, by service, status and decision.",
            &["service", "status", "decision"],
        );
        let upstream_errors = counter(
            "upstream_errors_total",
            "Requests whose upstream could not be reached or failed, by service.",
            &["service"],
        );
        let logins = counter(
            "logins_total",
            "Login decisions, by realm, method and result (success/failure).",
            &["realm", "method", "result"],
        );
        let login_steps = counter(
            "login_steps_total",
            "Login steps as `audit report` counts them (the password and each second factor), by method, network (internal/external) and result.",
            &["method", "network", "result"],
        );
        let auth_events = counter(
            "auth_events_total",
            "Every auth-log event, by event and result.",
            &["event", "result"],
        );
        let codes_sent = counter(
            "codes_sent_total",
            "One-time codes sent, by channel (sms/email) and result.",
            &["channel", "result"],
        );
        // The price, not a running cost: the estimate is codes_sent_total
        // times this, so a price changed by a reload re-prices nothing
        // already counted, and no currency's rounding is baked in.
        let sms_price = defined(GaugeVec::new(
            Opts::new(
                "sms_cost_per_message",
                "notify.sms.cost_per_message, by currency (absent when not configured).",
            ),
            &["currency"],
        ));
        defined(registry.register(Box::new(sms_price.clone())));
        let second_factors = counter(
            "second_factor_checks_total",
            "Second-factor answers checked, by method (sms, email, totp, token, passkey), result and reason.",
            &["method", "result", "reason"],
        );
        let enrolments = counter(
            "enrolment_changes_total",
            "Self-service enrolment changes and refusals, by reason (passkey_added, totp_removed, …) and result.",
            &["reason", "result"],
        );
        let lockouts = counter(
            "lockouts_total",
            "Login lockouts, by kind (user, ip).",
            &["kind"],
        );
        let sessions_revoked = counter(
            "sessions_revoked_total",
            "Sessions ended by an administrator.",
            &["how"],
        );
        let reloads = counter(
            "config_reloads_total",
            "Configuration reloads (SIGHUP), by result.",
            &["result"],
        );
        let backend_outages = counter(
            "backend_outages_total",
            "Times a backend (state: memory/Redis; storage: SQLite/PostgreSQL) stopped answering.",
            &["backend"],
        );
        let backend_down = defined(IntGaugeVec::new(
            Opts::new(
                "backend_down",
                "1 while a backend does not answer (as last seen by this gateway).",
            ),
            &["backend"],
        ));
        defined(registry.register(Box::new(backend_down.clone())));
        for b in ["state", "storage"] {
            backend_down.with_label_values(&[b]).set(0);
        }
        let latency = defined(HistogramVec::new(
            HistogramOpts::new(
                "request_duration_seconds",
                "Time from request to the last byte of the response, by service.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["service"],
        ));
        defined(registry.register(Box::new(latency.clone())));
        let last_reload = defined(Gauge::new(
            "config_last_reload_success_timestamp_seconds",
            "When the configuration was last loaded successfully (Unix time).",
        ));
        defined(registry.register(Box::new(last_reload.clone())));
        let sessions = defined(IntGauge::new("sessions_active", "Live sessions."));
        defined(registry.register(Box::new(sessions.clone())));
        let gauge = |name: &str, help: &str| {
            let g = defined(IntGauge::new(name, help));
            defined(registry.register(Box::new(g.clone())));
            g
        };
        let in_flight = gauge(
            "requests_in_flight",
            "Requests being answered now (pages, proxied requests, open WebSockets).",
        );
        let draining = gauge(
            "draining",
            "1 while the process drains after SIGTERM: no new connections, /readyz answers 503.",
        );
        let handing_over = gauge(
            "handing_over",
            "1 while the process hands its listening sockets to a new binary (upgrade).",
        );
        let ended = defined(IntCounter::new(
            "requests_ended_total",
            "Requests whose handling ended (answered, failed or cut).",
        ));
        defined(registry.register(Box::new(ended.clone())));
        // Process metrics are best effort: without /proc they are left out.
        let _ = registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ));
        Metrics {
            registry,
            requests,
            latency,
            upstream_errors,
            logins,
            login_steps,
            auth_events,
            codes_sent,
            sms_price,
            sms_currency: Mutex::new(None),
            second_factors,
            enrolments,
            lockouts,
            sessions_revoked,
            reloads,
            last_reload,
            sessions,
            backend_outages,
            backend_down,
            in_flight,
            ended,
            draining,
            handing_over,
            phase: AtomicU8::new(0),
        }
    }

    /// A request begins; it is in flight until the guard is dropped.
    pub fn request_started(&self) -> InFlight {
        self.in_flight.inc();
        InFlight {
            gauge: self.in_flight.clone(),
            ended: self.ended.clone(),
        }
    }

    /// Requests in flight now.
    pub fn in_flight(&self) -> i64 {
        self.in_flight.get()
    }

    /// Requests ended since start.
    pub fn requests_ended(&self) -> u64 {
        self.ended.get()
    }

    /// The life-cycle phase.
    pub fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Relaxed) {
            0 => Phase::Serving,
            1 => Phase::HandingOver,
            _ => Phase::Draining,
        }
    }

    /// Enter `phase` (only forwards: a draining process never serves again).
    pub fn set_phase(&self, phase: Phase) {
        let n = match phase {
            Phase::Serving => 0,
            Phase::HandingOver => 1,
            Phase::Draining => 2,
        };
        self.phase.fetch_max(n, Ordering::Relaxed);
        self.draining
            .set(i64::from(self.phase() == Phase::Draining));
        self.handing_over
            .set(i64::from(self.phase() == Phase::HandingOver));
    }

    /// Whether responses should close their connection now (the process is
    /// going away: a client must not reuse the connection for its next request).
    pub fn closing_connections(&self) -> bool {
        self.phase.load(Ordering::Relaxed) != 0
    }

    /// One request answered (from the access-log hook).
    pub fn request(&self, service: Option<&str>, status: u16, decision: &str, seconds: f64) {
        let service = service.unwrap_or("");
        let mut buf = [0u8; 5];
        self.requests
            .with_label_values(&[service, status_text(status, &mut buf), decision])
            .inc();
        self.latency.with_label_values(&[service]).observe(seconds);
    }

    /// A request whose upstream failed.
    pub fn upstream_error(&self, service: &str) {
        self.upstream_errors.with_label_values(&[service]).inc();
    }

    /// Count what an auth event says (called for every auth-log event).
    pub fn auth_event(&self, ev: &AuthEvent<'_>) {
        self.auth_events
            .with_label_values(&[ev.event.as_str(), ev.result.as_str()])
            .inc();
        // The report's "Logins by method and location", live: a login step
        // is a `login` or a refused `second_factor`, success or failure.
        if matches!(ev.event, Event::Login | Event::SecondFactor)
            && matches!(ev.result, Outcome::Success | Outcome::Failure)
        {
            self.login_steps
                .with_label_values(&[ev.method.unwrap_or("-"), ev.network, ev.result.as_str()])
                .inc();
        }
        match ev.event {
            Event::Login => {
                let method = ev.method.unwrap_or("password");
                self.logins
                    .with_label_values(&[ev.realm.unwrap_or(""), method, ev.result.as_str()])
                    .inc();
            }
            Event::CodeSent => {
                self.codes_sent
                    .with_label_values(&[ev.method.unwrap_or(""), ev.result.as_str()])
                    .inc();
            }
            Event::SecondFactor => self
                .second_factors
                .with_label_values(&[
                    ev.method.unwrap_or(""),
                    ev.result.as_str(),
                    ev.reason.as_str(),
                ])
                .inc(),
            Event::Enrolment => self
                .enrolments
                .with_label_values(&[ev.reason.as_str(), ev.result.as_str()])
                .inc(),
            Event::Lockout => self.lockouts.with_label_values(&["user"]).inc(),
            Event::IpBlock => self.lockouts.with_label_values(&["ip"]).inc(),
            Event::SessionRevoked => self
                .sessions_revoked
                .with_label_values(&[ev.reason.as_str()])
                .inc(),
            Event::Backend => {
                use crate::audit::Reason;
                let backend = match ev.reason {
                    Reason::StorageUnavailable | Reason::StorageRestored => "storage",
                    _ => "state",
                };
                let down = ev.result != Outcome::Success;
                if down {
                    self.backend_outages.with_label_values(&[backend]).inc();
                }
                self.backend_down
                    .with_label_values(&[backend])
                    .set(i64::from(down));
            }
            _ => {}
        }
    }

    /// A configuration (re)load finished; `unix_secs` is now.
    pub fn config_loaded(&self, ok: bool, unix_secs: f64) {
        self.reloads
            .with_label_values(&[if ok { "success" } else { "failure" }])
            .inc();
        if ok {
            self.last_reload.set(unix_secs);
        }
    }

    /// The configured price of one SMS (at start and after every reload);
    /// `None` removes the gauge.
    pub fn sms_price(&self, price: Option<&Price>) {
        // A panic elsewhere while holding the lock leaves a plain value.
        let mut current = self
            .sms_currency
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = price.map(|p| p.currency.as_str().to_owned());
        if let Some(p) = price {
            self.sms_price
                .with_label_values(&[p.currency.as_str()])
                .set(p.per_message.as_f64());
        }
        if let Some(old) = current.take().filter(|old| Some(old) != now.as_ref()) {
            // Absent already is fine: nothing to drop.
            let _ = self.sms_price.remove_label_values(&[old.as_str()]);
        }
        *current = now;
    }

    /// The first load at start-up (not a reload).
    pub fn started(&self, unix_secs: f64) {
        self.last_reload.set(unix_secs);
    }

    /// The text exposition, with the live session count as of now.
    pub fn render(&self, active_sessions: i64) -> String {
        self.sessions.set(active_sessions);
        let mut out = Vec::with_capacity(16 * 1024);
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

/// `status` as text without allocating (the hot path calls this per request).
fn status_text(status: u16, buf: &mut [u8; 5]) -> &str {
    let mut n = status;
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 || i == 0 {
            break;
        }
    }
    std::str::from_utf8(&buf[i..]).unwrap_or("0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_render_as_text() {
        let mut b = [0u8; 5];
        assert_eq!(status_text(200, &mut b), "200");
        assert_eq!(status_text(0, &mut b), "0");
        assert_eq!(status_text(65535, &mut b), "65535");
    }

    #[test]
    fn auth_events_feed_the_login_code_and_lockout_counters() {
        let m = Metrics::new();
        let ip = std::net::IpAddr::from([10, 0, 0, 1]);
        let ev = |event, result, method| AuthEvent {
            time: String::new(),
            event,
            result,
            reason: crate::audit::Reason::Ok,
            user: Some("alice"),
            realm: Some("staff"),
            client_ip: ip,
            network: "internal",
            method,
            request_id: "",
            session: None,
            host: None,
            destination: None,
            provider: None,
        };
        m.auth_event(&ev(Event::Login, Outcome::Success, Some("sms")));
        m.auth_event(&ev(Event::Login, Outcome::Failure, Some("password")));
        m.auth_event(&ev(Event::CodeSent, Outcome::Success, Some("sms")));
        m.auth_event(&ev(Event::Lockout, Outcome::Info, None));
        m.request(Some("app"), 302, "login", 0.002);
        let text = m.render(3);
        for line in [
            r#"portvakt_logins_total{method="sms",realm="staff",result="success"} 1"#,
            r#"portvakt_logins_total{method="password",realm="staff",result="failure"} 1"#,
            r#"portvakt_codes_sent_total{channel="sms",result="success"} 1"#,
            r#"portvakt_lockouts_total{kind="user"} 1"#,
            r#"portvakt_requests_total{decision="login",service="app",status="302"} 1"#,
            r#"portvakt_request_duration_seconds_bucket{service="app",le="0.0025"} 1"#,
            "portvakt_sessions_active 3",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
    }
}

#[cfg(test)]
mod report_tests {
    use super::*;
    use crate::audit::Reason;
    use crate::notify::config::{Amount, Currency};

    fn ev(
        event: Event,
        result: Outcome,
        method: Option<&'static str>,
        network: &'static str,
    ) -> AuthEvent<'static> {
        AuthEvent {
            time: String::new(),
            event,
            result,
            reason: Reason::Ok,
            user: Some("alice"),
            realm: Some("staff"),
            client_ip: std::net::IpAddr::from([192, 0, 2, 7]),
            network,
            method,
            request_id: "",
            session: None,
            host: None,
            destination: None,
            provider: None,
        }
    }

    /// The same steps the report counts, by the same method and network.
    #[test]
    fn login_steps_are_counted_as_the_report_counts_them() {
        let m = Metrics::new();
        for e in [
            ev(Event::Login, Outcome::Success, Some("password"), "external"),
            ev(
                Event::SecondFactor,
                Outcome::Failure,
                Some("sms"),
                "external",
            ),
            ev(Event::Login, Outcome::Success, Some("sms"), "external"),
            ev(Event::Login, Outcome::Success, Some("password"), "internal"),
            // Not login steps: a code sent, a lockout.
            ev(Event::CodeSent, Outcome::Success, Some("sms"), "external"),
            ev(Event::Lockout, Outcome::Info, None, "external"),
        ] {
            m.auth_event(&e);
        }
        let text = m.render(0);
        for line in [
            r#"portvakt_login_steps_total{method="password",network="external",result="success"} 1"#,
            r#"portvakt_login_steps_total{method="sms",network="external",result="failure"} 1"#,
            r#"portvakt_login_steps_total{method="sms",network="external",result="success"} 1"#,
            r#"portvakt_login_steps_total{method="password",network="internal",result="success"} 1"#,
            // The existing names are unchanged.
            r#"portvakt_logins_total{method="sms",realm="staff",result="success"} 1"#,
            r#"portvakt_codes_sent_total{channel="sms",result="success"} 1"#,
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
        assert_eq!(
            text.matches("portvakt_login_steps_total{").count(),
            4,
            "{text}"
        );
    }

    #[test]
    fn the_sms_price_follows_the_configuration() {
        let m = Metrics::new();
        assert!(!m.render(0).contains("portvakt_sms_cost_per_message{"));
        let price = |a: &str, c: &str| Price {
            per_message: Amount::parse(a).unwrap(),
            currency: Currency::parse(c).unwrap(),
        };
        m.sms_price(Some(&price("0.45", "SEK")));
        assert!(m
            .render(0)
            .contains(r#"portvakt_sms_cost_per_message{currency="SEK"} 0.45"#));
        // A reload to another currency leaves no stale series behind.
        m.sms_price(Some(&price("0.04", "EUR")));
        let text = m.render(0);
        assert!(text.contains(r#"portvakt_sms_cost_per_message{currency="EUR"} 0.04"#));
        assert!(!text.contains(r#"currency="SEK""#), "{text}");
        m.sms_price(None);
        assert!(!m.render(0).contains("portvakt_sms_cost_per_message{"));
    }
}
