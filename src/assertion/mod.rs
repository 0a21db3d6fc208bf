//! Signed identity for upstreams: a short-lived ES256 JWT in one request
//! header (`Portvakt-Assertion` by default) on services with
//! `assertion: true`, so an upstream can check *who* with a public key
//! instead of trusting whoever can reach it to write `Remote-User`.
//!
//! - [`keys`]: the key ring: generation, rotation, persistence, JWKS.
//! - here: the settings, the claims, the `amr` vocabulary and the token
//!   cache that keeps a signature off most requests.
//!
//! # Cost
//! An ECDSA signature costs tens of microseconds, more than the rest of a
//! proxied request. A token is therefore made once per (session, service)
//! and reused for [`REUSE_FRACTION`] of its lifetime; the session key is
//! part of the cache key, and a new login or step-up always gets a new
//! session id, so a token is never reused across a change of identity or
//! level.

pub mod keys;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use parking_lot::Mutex;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::config::model::Service;
use crate::session::{Method, Session};
use crate::signing::b64;
pub use keys::{KeyRing, KeyRingError, Ring, Rotation};

/// Where the public keys are published, on the portal host.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";

/// The default header name.
pub const DEFAULT_HEADER: &str = "portvakt-assertion";

/// A cached token is reused until this fraction of its lifetime has
/// passed, so the upstream always receives one with at least a quarter of
/// its lifetime left (clock skew, slow upstreams).
pub const REUSE_FRACTION: (u64, u64) = (3, 4);

/// Most cached tokens (all sessions × services), so memory stays bounded
/// whatever clients do.
pub const CACHE_CAPACITY: usize = 65_536;

/// Shards of the cache: requests on different sessions rarely share a lock.
const SHARDS: usize = 16;

/// The validated `assertion:` section.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The request header carrying the token (lower case).
    pub header: http::HeaderName,
    /// The same name in title case, as shared bytes for inserting (see
    /// `IdentityHeaderNames::wire` for why).
    pub wire: bytes::Bytes,
    /// How long a token is valid (`exp - iat`).
    pub lifetime: Duration,
    /// When keys rotate and how long a replaced one stays published.
    pub rotation: Rotation,
    /// `iss`: `https://` and the portal host.
    pub issuer: String,
    /// The JWKS's `Cache-Control` max-age: well under the overlap, so an
    /// upstream that caches it learns of a new key while the old one is
    /// still published.
    pub jwks_max_age: Duration,
}

/// Why no token could be made.
#[derive(Debug, thiserror::Error)]
pub enum AssertionError {
    /// No signing key (the ring could not be loaded or made).
    #[error(transparent)]
    Keys(#[from] KeyRingError),
    /// The ring holds no key (cannot happen after a successful load).
    #[error("assertion key ring is empty")]
    NoKey,
}

/// The RFC 8176 `amr` value of a method. One exhaustive `match`: a new
/// method does not compile until it says what it proves.
///
/// E-mail, app and hardware-token codes are all one-time passwords
/// (RFC 8176 names RFC 4226 and 6238 under `otp`). `hwk` is kept for a
/// cryptographic proof of possession of a hardware key (passkeys): an OATH
/// token's code can be phished like any other code, and an upstream that
/// asks for `hwk` should not get one.
pub fn amr(method: Method) -> &'static str {
    match method {
        Method::Password => "pwd",
        Method::Sms => "sms",
        Method::Email => "otp",
        Method::Totp => "otp",
        Method::Token => "otp",
        // Attestation is not asked for, so a platform passkey (`swk` in RFC
        // 8176) cannot be told from a security key; both prove possession of
        // a key bound to the portal's name, which is what `hwk` promises an
        // upstream over any code.
        Method::Passkey => "hwk",
    }
}

/// The `amr` list of a session: each method's value once, in login order,
/// and `mfa` when more than one method was used, or when a passkey was the
/// whole login (`methods.passkey_alone` requires user verification: the
/// key and its PIN or fingerprint are two factors).
pub fn amr_list(methods: &[Method]) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::with_capacity(methods.len() + 1);
    for m in methods {
        let v = amr(*m);
        if !out.contains(&v) {
            out.push(v);
        }
    }
    if methods.len() > 1 || methods == [Method::Passkey] {
        out.push("mfa");
    }
    out
}

/// The claims of one token (docs/configuration.md "Signed identity for upstreams").
#[derive(Debug, Serialize)]
pub struct Claims<'a> {
    /// The portal, `https://login.example.org`.
    pub iss: &'a str,
    /// The service, `https://host/path`: what the upstream must check.
    pub aud: &'a str,
    /// `realm:user`: unique per issuer (two realms may both hold `anna`).
    pub sub: String,
    /// The user name as the directory spells it (`Remote-User`).
    pub preferred_username: &'a str,
    /// The realm id (`Remote-Realm`).
    pub realm: &'a str,
    /// Display name.
    pub name: &'a str,
    /// E-mail address.
    pub email: &'a str,
    /// Group names.
    pub groups: &'a [String],
    /// RFC 8176 method references.
    pub amr: Vec<&'static str>,
    /// portvakt's level: 1 (one factor) or 2 (two).
    pub level: u8,
    /// Login time, seconds since the epoch (OIDC `auth_time`).
    pub auth_time: u64,
    /// Issued at, seconds.
    pub iat: u64,
    /// Expires, seconds.
    pub exp: u64,
}

/// The audience of a service: `https://host` and its path prefix (`/` for
/// a whole host). No port: the URL users know, not the listener's.
pub fn audience(host: &str, path: &str) -> String {
    format!("https://{host}{path}")
}

/// A signed JWT (compact form) for `session` at `service`, at `now_ms`.
pub fn sign(
    settings: &Settings,
    key: &keys::SigningKey,
    session: &Session,
    service: &Service,
    now_ms: u64,
) -> Result<String, AssertionError> {
    let iat = now_ms / 1000;
    let claims = Claims {
        iss: &settings.issuer,
        aud: &service.assertion_audience,
        sub: format!("{}:{}", session.realm, session.user),
        preferred_username: &session.user,
        realm: &session.realm,
        name: &session.display_name,
        email: &session.email,
        groups: &session.groups,
        amr: amr_list(&session.methods),
        level: session.auth_level,
        auth_time: session.created_ms / 1000,
        iat,
        exp: iat + settings.lifetime.as_secs(),
    };
    encode(key, &claims)
}

/// `claims` as a compact JWS signed by `key` (ES256, with its `kid`).
pub fn encode(key: &keys::SigningKey, claims: &Claims<'_>) -> Result<String, AssertionError> {
    // kid is base64url (a thumbprint): nothing to escape.
    let header = format!(r#"{{"alg":"ES256","typ":"JWT","kid":"{}"}}"#, key.kid);
    let payload = crate::state::encode(claims);
    let mut token = String::with_capacity(512);
    token.push_str(&b64(header.as_bytes()));
    token.push('.');
    token.push_str(&b64(&payload));
    let signature = key.sign(token.as_bytes())?;
    token.push('.');
    token.push_str(&b64(&signature));
    Ok(token)
}

/// Which token a request may reuse: the session (by its store key, or for
/// Basic logins a hash of what the token says), the service and the level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CacheKey {
    /// The session's identity.
    pub session: [u8; 32],
    /// `Service::index` (the cache is per runtime: a reload empties it).
    pub service: usize,
    /// The level, so even a reused key never serves a lower-level token.
    pub level: u8,
}

impl CacheKey {
    /// The key of `session` at `service`; `session_key` is the session
    /// store's key when the request came with a session cookie.
    pub fn new(session_key: Option<[u8; 32]>, session: &Session, service: &Service) -> CacheKey {
        let session_bytes = session_key.unwrap_or_else(|| {
            // Basic logins have no session id: everything the token says,
            // so a changed group or level never reuses an old token.
            let mut h = Sha256::new();
            for part in [
                &session.realm,
                &session.user,
                &session.email,
                &session.display_name,
            ] {
                h.update(part.as_bytes());
                h.update([0]);
            }
            for g in &session.groups {
                h.update(g.as_bytes());
                h.update([1]);
            }
            for m in &session.methods {
                h.update(m.as_str().as_bytes());
                h.update([2]);
            }
            h.update(session.created_ms.to_be_bytes());
            h.finalize().into()
        });
        CacheKey {
            session: session_bytes,
            service: service.index,
            level: session.auth_level,
        }
    }
}

#[derive(Debug)]
struct Cached {
    value: HeaderValue,
    /// The key that signed it: after a rotation the new key signs at once.
    kid: Arc<keys::SigningKey>,
    /// Reused until then (ms, gateway clock).
    until_ms: u64,
}

/// Tokens per (session, service), bounded. An entry of a session that has
/// ended is never handed out again (nobody can present its key) and goes
/// when it is evicted or its shard is pruned.
#[derive(Debug)]
pub struct TokenCache {
    shards: Vec<Mutex<HashMap<CacheKey, Cached>>>,
    per_shard: usize,
}

impl Default for TokenCache {
    fn default() -> Self {
        TokenCache::with_capacity(CACHE_CAPACITY)
    }
}

impl TokenCache {
    /// A cache holding at most about `capacity` tokens.
    pub fn with_capacity(capacity: usize) -> TokenCache {
        TokenCache {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
        }
    }

    fn shard(&self, key: &CacheKey) -> &Mutex<HashMap<CacheKey, Cached>> {
        // The session part is a hash already.
        &self.shards[usize::from(key.session[0]) % SHARDS]
    }

    /// A reusable token, if there is one signed by `signing` and fresh at `now_ms`.
    pub fn get(
        &self,
        key: &CacheKey,
        signing: &Arc<keys::SigningKey>,
        now_ms: u64,
    ) -> Option<HeaderValue> {
        let shard = self.shard(key).lock();
        let c = shard.get(key)?;
        (now_ms < c.until_ms && Arc::ptr_eq(&c.kid, signing)).then(|| c.value.clone())
    }

    /// Remember `value` until `until_ms`.
    pub fn put(
        &self,
        key: CacheKey,
        value: HeaderValue,
        signing: Arc<keys::SigningKey>,
        now_ms: u64,
        until_ms: u64,
    ) {
        let mut shard = self.shard(&key).lock();
        if shard.len() >= self.per_shard && !shard.contains_key(&key) {
            shard.retain(|_, c| c.until_ms > now_ms);
            if shard.len() >= self.per_shard {
                // Still full of live tokens: start over rather than grow;
                // the cost is one signature per active session.
                shard.clear();
            }
        }
        shard.insert(
            key,
            Cached {
                value,
                kid: signing,
                until_ms,
            },
        );
    }

    /// Tokens held (tests, metrics).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The token header value for a request: from the cache, or signed now.
pub async fn header_value(
    keys: &KeyRing,
    settings: &Settings,
    cache: &TokenCache,
    key: CacheKey,
    session: &Session,
    service: &Service,
    now_ms: u64,
) -> Result<HeaderValue, AssertionError> {
    let ring = keys.at(now_ms, settings.rotation).await?;
    let signing = ring.current().ok_or(AssertionError::NoKey)?;
    if let Some(v) = cache.get(&key, signing, now_ms) {
        return Ok(v);
    }
    let token = sign(settings, signing, session, service, now_ms)?;
    // base64url and dots only: always a valid header value.
    let value = HeaderValue::from_str(&token).map_err(|_| AssertionError::NoKey)?;
    let life = u64::try_from(settings.lifetime.as_millis()).unwrap_or(u64::MAX);
    let until = now_ms.saturating_add(life / REUSE_FRACTION.1 * REUSE_FRACTION.0);
    cache.put(key, value.clone(), signing.clone(), now_ms, until);
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;

    fn settings() -> Settings {
        Settings {
            header: http::HeaderName::from_static(DEFAULT_HEADER),
            wire: bytes::Bytes::from_static(b"Portvakt-Assertion"),
            lifetime: Duration::from_secs(60),
            rotation: Rotation {
                rotate_every: Duration::from_secs(86_400),
                overlap: Duration::from_secs(3_600),
            },
            issuer: "https://login.test".into(),
            jwks_max_age: Duration::from_secs(300),
        }
    }

    fn session(methods: Vec<Method>) -> Session {
        Session::new(
            crate::session::NewSession {
                user: "alice".into(),
                realm: "staff".into(),
                groups: vec!["staff".into(), "lon-users".into()],
                email: "alice@example.org".into(),
                display_name: "Alice Andersson".into(),
                auth_level: if methods.len() > 1 { 2 } else { 1 },
                methods,
                internal: true,
                ip: [127, 0, 0, 1].into(),
            },
            1_000_000,
        )
    }

    fn service(host: &str) -> Service {
        let mut s = crate::testutil::service_at(host, "/", crate::policy::Policy::OneFactor);
        s.assertion = true;
        s.assertion_audience = audience(host, "/");
        s
    }

    #[test]
    fn amr_follows_rfc_8176_and_says_mfa_for_two_methods() {
        assert_eq!(amr_list(&[Method::Password]), ["pwd"]);
        assert_eq!(
            amr_list(&[Method::Password, Method::Sms]),
            ["pwd", "sms", "mfa"]
        );
        assert_eq!(
            amr_list(&[Method::Password, Method::Totp]),
            ["pwd", "otp", "mfa"]
        );
        assert_eq!(
            amr_list(&[Method::Password, Method::Token]),
            ["pwd", "otp", "mfa"]
        );
        assert_eq!(amr(Method::Email), "otp");
        assert_eq!(
            amr_list(&[Method::Password, Method::Passkey]),
            ["pwd", "hwk", "mfa"]
        );
        // A passkey alone: the key and its PIN or fingerprint.
        assert_eq!(amr_list(&[Method::Passkey]), ["hwk", "mfa"]);
    }

    #[test]
    fn a_token_carries_the_claims_and_verifies_with_the_signing_key() {
        use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_FIXED};
        let key = keys::SigningKey::generate(0).unwrap();
        let s = session(vec![Method::Password, Method::Totp]);
        let token = sign(&settings(), &key, &s, &service("app.test"), 2_000_500).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header["alg"], "ES256");
        assert_eq!(header["kid"], key.kid.as_str());
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["iss"], "https://login.test");
        assert_eq!(claims["aud"], "https://app.test/");
        assert_eq!(claims["sub"], "staff:alice");
        assert_eq!(claims["preferred_username"], "alice");
        assert_eq!(claims["groups"], serde_json::json!(["staff", "lon-users"]));
        assert_eq!(claims["amr"], serde_json::json!(["pwd", "otp", "mfa"]));
        assert_eq!(claims["level"], 2);
        assert_eq!(claims["iat"], 2_000);
        assert_eq!(claims["exp"], 2_060);
        assert_eq!(claims["auth_time"], 1_000);
        let sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        let public = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, key.public_point());
        let signed = format!("{}.{}", parts[0], parts[1]);
        public.verify(signed.as_bytes(), &sig).unwrap();
    }

    #[tokio::test]
    async fn a_token_is_reused_for_three_quarters_of_its_life_per_session_and_service() {
        let dir = tempfile::tempdir().unwrap();
        let ring = KeyRing::new(
            keys::Place::File(dir.path().join("k")),
            crate::storage::Sealer::from_secret(&[3; 32]),
        );
        let cfg = settings();
        let cache = TokenCache::default();
        let s = session(vec![Method::Password]);
        let (a, b) = (service("a.test"), service("b.test"));
        let mut b = b;
        b.index = 1;
        let key_a = CacheKey::new(Some([7; 32]), &s, &a);
        let t = 10_000_000;
        let get = |key, svc, now| header_value(&ring, &cfg, &cache, key, &s, svc, now);
        let first = get(key_a, &a, t).await.unwrap();
        assert_eq!(get(key_a, &a, t + 44_999).await.unwrap(), first);
        // Another service: another audience, another token.
        let key_b = CacheKey::new(Some([7; 32]), &s, &b);
        assert_ne!(get(key_b, &b, t).await.unwrap(), first);
        // Another session (a new login or step-up has a new id): another token.
        let other = CacheKey::new(Some([8; 32]), &s, &a);
        assert_ne!(get(other, &a, t + 1_000).await.unwrap(), first);
        // Past 3/4 of the lifetime: signed again.
        assert_ne!(get(key_a, &a, t + 45_000).await.unwrap(), first);
        assert_eq!(cache.len(), 3);
    }

    #[test]
    fn a_basic_login_without_a_session_id_is_keyed_by_what_its_token_says() {
        let svc = service("app.test");
        let s = session(vec![Method::Password]);
        let same = session(vec![Method::Password]);
        assert_eq!(
            CacheKey::new(None, &s, &svc),
            CacheKey::new(None, &same, &svc)
        );
        let mut more = session(vec![Method::Password]);
        more.groups.push("admins".into());
        assert_ne!(
            CacheKey::new(None, &s, &svc),
            CacheKey::new(None, &more, &svc)
        );
        let stepped = session(vec![Method::Password, Method::Token]);
        assert_ne!(
            CacheKey::new(None, &s, &svc),
            CacheKey::new(None, &stepped, &svc)
        );
    }

    #[test]
    fn the_cache_stays_bounded() {
        let key = keys::SigningKey::generate(0).map(Arc::new).unwrap();
        let cache = TokenCache::with_capacity(32);
        for i in 0..1_000u32 {
            let mut session = [0u8; 32];
            session[..4].copy_from_slice(&i.to_be_bytes());
            session[0] = (i % 251) as u8;
            let k = CacheKey {
                session,
                service: 0,
                level: 1,
            };
            cache.put(k, HeaderValue::from_static("t"), key.clone(), 0, 1_000);
        }
        assert!(cache.len() <= 32, "{} entries", cache.len());
    }
}
