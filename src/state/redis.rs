//! The Redis state backend, for several gateways behind one balancer.
//!
//! Client: [fred](https://docs.rs/fred) rather than redis-rs. Both are
//! maintained; fred has Sentinel failover built into its reconnect logic
//! (`redis-sentinel://` URLs follow a failover without our code), rustls
//! with ring (no OpenSSL in the build), per-command timeouts and a
//! reconnect policy, which is exactly the failure behaviour the gateway
//! needs. redis-rs needs a separate Sentinel client and our own
//! reconnect-on-failover glue.
//!
//! Every operation is one command or one Lua script, so it is atomic with
//! respect to every other gateway. Every call ends within the configured
//! timeout: while Redis is down fred queues commands and reconnects, and
//! the timeout turns the wait into [`StateError::Unavailable`].
//!
//! A second connection subscribes to [`CHANGES`]: every gateway publishes
//! there the key of each session it changes or removes, so the others can
//! keep sessions in a local cache ([`super::sessions`]) and a request
//! costs no round trip. While that subscriber is not connected and
//! subscribed, [`ChangeFeed::live`] is false and nothing is served from a
//! cache.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use fred::prelude::*;
use fred::types::scripts::Script;
use futures_util::StreamExt;

use super::changes::ChangeFeed;
use super::{StateBackend, StateError};

/// The pub/sub channel of changed keys.
pub const CHANGES: &str = "portvakt:changed";

/// Compare-and-swap: KEYS[1]; ARGV = expected, "1"/"0" (set or delete), new, ttl ms.
const SWAP: &str = r#"
local cur = redis.call('GET', KEYS[1])
if cur ~= ARGV[1] then return 0 end
if ARGV[2] == '1' then
  redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
else
  redis.call('DEL', KEYS[1])
end
return 1
"#;

/// Sliding window in a sorted set: KEYS[1]; ARGV = now ms, window ms, limit, member.
const ADMIT: &str = r#"
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], now, ARGV[4])
redis.call('PEXPIRE', KEYS[1], window)
return 1
"#;

/// Shared state in Redis.
pub struct RedisBackend {
    client: Client,
    timeout: Duration,
    swap: Script,
    admit: Script,
    /// Keys changed by any gateway, from the subscriber connection.
    feed: std::sync::Arc<ChangeFeed>,
    /// Ends the thread that drives the connection when the backend goes.
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl std::fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password: never print it.
        f.debug_struct("RedisBackend")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// fred builds its default TLS config with rustls's process-wide provider;
/// with more than one provider compiled in (other crates bring aws-lc),
/// rustls cannot pick and would panic. Ours is ring, like pingora's.
fn ensure_crypto_provider() {
    // Err only means one is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Whether `url` names a Redis backend this build can use; the problem if
/// not (for config validation, before anything connects).
pub fn check_url(url: &str) -> Result<(), String> {
    ensure_crypto_provider();
    let scheme = url.split("://").next().unwrap_or_default();
    if !matches!(
        scheme,
        "redis" | "rediss" | "redis-sentinel" | "rediss-sentinel"
    ) {
        return Err(format!(
            "unknown scheme `{scheme}`: use redis://, rediss:// (TLS), redis-sentinel:// or rediss-sentinel://"
        ));
    }
    Config::from_url(url)
        .map(|_| ())
        .map_err(|e| redact(url, &e.to_string()))
}

/// A rustls client config trusting only the CA certificates in `ca` (PEM).
fn tls_trusting(ca: &std::path::Path) -> Result<fred::types::config::TlsConnector, StateError> {
    let bad =
        |what: String| StateError::Unavailable(format!("state_ca_file {}: {what}", ca.display()));
    let pem = std::fs::read(ca).map_err(|e| bad(e.to_string()))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots
            .add(cert.map_err(|e| bad(e.to_string()))?)
            .map_err(|e| bad(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(bad("no certificate in it".into()));
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(fred::types::config::TlsConnector::from(config))
}

/// An error text with any password in `url` blanked out.
fn redact(url: &str, text: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => match u.password() {
            Some(p) if !p.is_empty() => text.replace(p, "***"),
            _ => text.to_owned(),
        },
        Err(_) => text.to_owned(),
    }
}

impl RedisBackend {
    /// A backend for `url` whose commands each end within `timeout`. Does
    /// not wait for Redis: a gateway starting while Redis is down comes up,
    /// answers "not working right now", and works once Redis is back.
    pub fn connect(
        url: &str,
        timeout: Duration,
        ca_file: Option<&std::path::Path>,
    ) -> Result<RedisBackend, StateError> {
        ensure_crypto_provider();
        let mut config = Config::from_url(url)
            .map_err(|e| StateError::Unavailable(redact(url, &e.to_string())))?;
        if let Some(ca) = ca_file {
            // A private CA instead of the system's: rediss:// to a server
            // whose certificate this CA did not sign is refused.
            config.tls = Some(tls_trusting(ca)?.into());
        }
        // Keep retrying the first connection too instead of failing start.
        config.fail_fast = false;
        let mut builder = Builder::from_config(config);
        builder
            .with_performance_config(|p| p.default_command_timeout = timeout)
            .with_connection_config(|c| {
                c.connection_timeout = timeout;
                c.internal_command_timeout = timeout;
                // One retry after a dropped connection, not three: each waits.
                c.max_command_attempts = 2;
            })
            // Forever, between 50 ms and 2 s apart: an outage ends by itself.
            .set_policy(ReconnectPolicy::new_exponential(0, 50, 2_000, 2));
        let client = builder
            .build()
            .map_err(|e| StateError::Unavailable(redact(url, &e.to_string())))?;
        let subscriber = builder
            .build_subscriber_client()
            .map_err(|e| StateError::Unavailable(redact(url, &e.to_string())))?;
        let connected = subscriber.clone();
        let feed = std::sync::Arc::new(ChangeFeed::new(move || connected.is_connected()));
        // fred drives its connections from tasks; give them a runtime of
        // their own so they do not depend on which pingora runtime called first.
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let driver = client.clone();
        let watched = feed.clone();
        std::thread::Builder::new()
            .name("portvakt-redis".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                rt.block_on(async move {
                    let _handle = driver.connect();
                    let _sub_handle = subscriber.connect();
                    let _ = ready_tx.send(Ok(()));
                    tokio::select! {
                        _ = stopped => {}
                        _ = watch_changes(&subscriber, &watched, timeout) => {}
                    }
                    let _ = subscriber.quit().await;
                    let _ = driver.quit().await;
                });
            })
            .map_err(|e| StateError::Unavailable(format!("cannot start the Redis thread: {e}")))?;
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(StateError::Unavailable(e)),
            Err(_) => return Err(StateError::Unavailable("the Redis thread ended".into())),
        }
        Ok(RedisBackend {
            client,
            timeout,
            swap: Script::from_lua(SWAP),
            admit: Script::from_lua(ADMIT),
            feed,
            _stop: stop,
        })
    }

    /// Run one command within the timeout.
    async fn run<T>(
        &self,
        what: &'static str,
        f: impl std::future::Future<Output = Result<T, Error>>,
    ) -> Result<T, StateError> {
        // fred's own command timeout ends most waits; this bounds the rest
        // (e.g. a command queued behind a reconnect).
        match tokio::time::timeout(self.timeout + Duration::from_millis(100), f).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(StateError::Unavailable(format!("{what}: {e}"))),
            Err(_) => Err(StateError::Unavailable(format!(
                "{what}: no answer within {} ms",
                self.timeout.as_millis()
            ))),
        }
    }
}

/// Feed `feed` from the subscriber: each message is a changed key; a
/// reconnect (whose new connection is not subscribed yet) or a lost socket
/// takes the feed down until [`CHANGES`] is subscribed again.
async fn watch_changes(
    sub: &fred::clients::SubscriberClient,
    feed: &ChangeFeed,
    timeout: Duration,
) {
    use tokio::sync::broadcast::error::RecvError;
    let mut messages = sub.message_rx();
    let mut reconnects = sub.reconnect_rx();
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            m = messages.recv() => match m {
                Ok(m) => feed.changed(m.value.as_str().as_deref()),
                // Messages were dropped: any key may have changed.
                Err(RecvError::Lagged(_)) => feed.changed(None),
                Err(RecvError::Closed) => return,
            },
            r = reconnects.recv() => match r {
                Ok(_) | Err(RecvError::Lagged(_)) => feed.set_live(false),
                Err(RecvError::Closed) => return,
            },
            _ = tick.tick() => {
                if !sub.is_connected() {
                    feed.set_live(false);
                } else if !feed.live() {
                    let subscribed = tokio::time::timeout(timeout, sub.subscribe(CHANGES)).await;
                    if matches!(subscribed, Ok(Ok(()))) {
                        feed.set_live(true);
                    }
                }
            }
        }
    }
}

fn px(ttl: Duration) -> i64 {
    (ttl.as_millis() as i64).max(1)
}

#[async_trait]
impl StateBackend for RedisBackend {
    fn kind(&self) -> &'static str {
        "redis"
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StateError> {
        let v: Option<Bytes> = self.run("GET", self.client.get(key)).await?;
        Ok(v.map(|b| b.to_vec()))
    }

    async fn put(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), StateError> {
        let set = self.client.set::<(), _, _>(
            key,
            Bytes::copy_from_slice(value),
            Some(Expiration::PX(px(ttl))),
            None,
            false,
        );
        self.run("SET", set).await
    }

    async fn put_new(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, StateError> {
        let set = self.client.set::<Option<String>, _, _>(
            key,
            Bytes::copy_from_slice(value),
            Some(Expiration::PX(px(ttl))),
            Some(SetOptions::NX),
            false,
        );
        Ok(self.run("SET NX", set).await?.is_some())
    }

    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StateError> {
        let v: Option<Bytes> = self.run("GETDEL", self.client.getdel(key)).await?;
        Ok(v.map(|b| b.to_vec()))
    }

    async fn delete(&self, key: &str) -> Result<bool, StateError> {
        let n: i64 = self.run("DEL", self.client.del(key)).await?;
        Ok(n > 0)
    }

    async fn swap(
        &self,
        key: &str,
        expected: &[u8],
        new: Option<&[u8]>,
        ttl: Duration,
    ) -> Result<bool, StateError> {
        let args: Vec<Value> = vec![
            Bytes::copy_from_slice(expected).into(),
            if new.is_some() { "1" } else { "0" }.into(),
            Bytes::copy_from_slice(new.unwrap_or_default()).into(),
            px(ttl).into(),
        ];
        let done: i64 = self
            .run(
                "swap script",
                self.swap.evalsha_with_reload(&self.client, vec![key], args),
            )
            .await?;
        Ok(done == 1)
    }

    async fn admit(
        &self,
        key: &str,
        now_ms: u64,
        window: Duration,
        limit: u32,
    ) -> Result<bool, StateError> {
        let member = format!("{now_ms}:{:016x}", rand::random::<u64>());
        let args: Vec<Value> = vec![
            (now_ms as i64).into(),
            px(window).into(),
            (limit as i64).into(),
            member.into(),
        ];
        let done: i64 = self
            .run(
                "admit script",
                self.admit
                    .evalsha_with_reload(&self.client, vec![key], args),
            )
            .await?;
        Ok(done == 1)
    }

    async fn keys(&self, prefix: &str, limit: usize) -> Result<Vec<String>, StateError> {
        let pattern = format!("{prefix}*");
        let scan = async {
            let mut out = Vec::new();
            let mut stream = self.client.scan_buffered(pattern, Some(500), None);
            while let Some(key) = stream.next().await {
                let key = key?;
                if let Some(k) = key.as_str() {
                    out.push(k.to_owned());
                }
                if out.len() >= limit {
                    break;
                }
            }
            Ok(out)
        };
        // A scan is many round trips: allow it more than one command's time.
        match tokio::time::timeout(self.timeout * 10, scan).await {
            Ok(r) => r.map_err(|e: Error| StateError::Unavailable(format!("SCAN: {e}"))),
            Err(_) => Err(StateError::Unavailable("SCAN: too slow".into())),
        }
    }

    async fn ping(&self) -> Result<(), StateError> {
        self.run("PING", self.client.ping::<()>(None)).await
    }

    async fn announce(&self, key: &str) -> Result<(), StateError> {
        self.run("PUBLISH", self.client.publish::<(), _, _>(CHANGES, key))
            .await
    }

    fn changes(&self) -> Option<std::sync::Arc<ChangeFeed>> {
        Some(self.feed.clone())
    }
}
