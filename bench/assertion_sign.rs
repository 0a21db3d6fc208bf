//! What one identity assertion costs when it is not in the cache, and what
//! a cache hit costs: `cargo run --release --example assertion-sign [N]`.
//! Prints µs per operation (CPU time of this thread), to read beside
//! bench/run.sh's portvakt-assert figures, where almost every request is a hit.

use std::sync::Arc;
use std::time::Instant;

use portvakt::assertion::keys::SigningKey;
use portvakt::assertion::{encode, CacheKey, Claims, TokenCache};

fn main() {
    let n: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20_000);
    let key = Arc::new(SigningKey::generate(0).expect("a key"));
    let groups = vec!["staff".to_owned(), "lon-users".to_owned()];
    let claims = |iat: u64| Claims {
        iss: "https://login.example.org",
        aud: "https://lon.example.org/",
        sub: "adm:alice".to_owned(),
        preferred_username: "alice",
        realm: "adm",
        name: "Alice Andersson",
        email: "alice@example.org",
        groups: &groups,
        amr: vec!["pwd", "otp", "mfa"],
        level: 2,
        auth_time: 1_764_800_000,
        iat,
        exp: iat + 60,
    };
    let start = Instant::now();
    let mut bytes = 0;
    for i in 0..n {
        bytes += encode(&key, &claims(1_764_800_000 + u64::from(i)))
            .expect("signed")
            .len();
    }
    let sign_us = start.elapsed().as_secs_f64() * 1e6 / f64::from(n);

    let cache = TokenCache::default();
    let k = CacheKey {
        session: [7; 32],
        service: 0,
        level: 2,
    };
    let value = http::HeaderValue::from_static("x");
    cache.put(k, value, key.clone(), 0, u64::MAX);
    let start = Instant::now();
    let mut hits = 0;
    for _ in 0..n * 10 {
        hits += usize::from(cache.get(&k, &key, 1).is_some());
    }
    let hit_us = start.elapsed().as_secs_f64() * 1e6 / f64::from(n * 10);
    assert_eq!(hits, (n * 10) as usize);
    println!(
        "assertion-sign: {n} tokens, {:.0} bytes each: sign+encode {sign_us:.2} µs/token; cache hit {hit_us:.3} µs",
        bytes as f64 / f64::from(n)
    );
}
