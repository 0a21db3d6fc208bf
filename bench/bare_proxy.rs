//! The floor for `bench/run.sh`: a bare pingora 0.9 + rustls TLS proxy with a
//! `HashMap` cookie check and nothing else — no routing, no identity headers,
//! no access log, no metrics. It is the "pingora-bare" target, measured in the
//! same run as portvakt so the cost of everything portvakt adds on top of
//! pingora is a ratio, not a guess. It uses portvakt's allocator (mimalloc)
//! and is built with portvakt's profile, so the two differ only in the code
//! portvakt runs per request. Not part of the product.
//!
//! ```text
//! cargo build --profile production --example bare-proxy
//! target/production/examples/bare-proxy LISTEN CERT KEY UPSTREAM COOKIE [THREADS]
//! ```
//!
//! A request whose `Cookie` header carries `COOKIE` (a `name=value` pair) is
//! proxied to `UPSTREAM` (plain HTTP, keep-alive pool); any other gets 401.

use std::collections::HashMap;

use async_trait::async_trait;
use pingora::listeners::tls::TlsSettings;
use pingora::prelude::HttpPeer;
use pingora::proxy::{ProxyHttp, Session};
use pingora::server::configuration::ServerConf;
use pingora::server::Server;

// As in src/main.rs, so allocation costs the same in both.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The whole proxy: where to send requests and which cookie lets them through.
struct Bare {
    /// `host:port` of the plain-HTTP upstream.
    upstream: String,
    /// Session cookie value → user, as a session store would hold it.
    sessions: HashMap<String, String>,
    /// Name of the session cookie.
    cookie_name: String,
}

#[async_trait]
impl ProxyHttp for Bare {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn request_filter(&self, session: &mut Session, _ctx: &mut ()) -> pingora::Result<bool> {
        let known = session
            .req_header()
            .headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .any(|(name, value)| name == self.cookie_name && self.sessions.contains_key(value));
        if known {
            return Ok(false);
        }
        session.respond_error(401).await?;
        Ok(true)
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        _ctx: &mut (),
    ) -> pingora::Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(
            self.upstream.as_str(),
            false,
            String::new(),
        )))
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, listen, cert, key, upstream, cookie, rest @ ..] = args.as_slice() else {
        eprintln!("usage: bare-proxy LISTEN CERT KEY UPSTREAM NAME=VALUE [THREADS]");
        std::process::exit(2);
    };
    let threads = match rest.first().map(|t| t.parse::<usize>()) {
        None => 2,
        Some(Ok(t)) if t > 0 => t,
        Some(_) => {
            eprintln!("THREADS must be a positive number");
            std::process::exit(2);
        }
    };
    let Some((cookie_name, cookie_value)) = cookie.split_once('=') else {
        eprintln!("the cookie must be NAME=VALUE");
        std::process::exit(2);
    };
    let conf = ServerConf {
        threads,
        grace_period_seconds: Some(1),
        graceful_shutdown_timeout_seconds: Some(1),
        pid_file: format!("/tmp/bare-proxy-{}.pid", std::process::id()),
        upgrade_sock: format!("/tmp/bare-proxy-{}.upgrade", std::process::id()),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let app = Bare {
        upstream: upstream.clone(),
        sessions: HashMap::from([(cookie_value.to_string(), "bench".to_string())]),
        cookie_name: cookie_name.to_string(),
    };
    let mut proxy = pingora::proxy::http_proxy_service(&server.configuration, app);
    let mut tls = match TlsSettings::intermediate(cert, key) {
        Ok(tls) => tls,
        Err(e) => {
            eprintln!("cannot load {cert} / {key}: {e}");
            std::process::exit(1);
        }
    };
    tls.enable_h2();
    proxy.add_tls_with_settings(listen, None, tls);
    server.add_service(proxy);
    server.run_forever();
}
