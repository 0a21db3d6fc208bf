//! The session cache in front of Redis ([`super::sessions`]), with two
//! "gateways" (two backends, two session stores) on one real Redis: a read
//! is served locally, a change announced by either gateway reaches the
//! other's cache, and with the subscriber gone nothing is served from it.

use std::sync::Arc;
use std::time::Duration;

use super::contract::TestRedis;
use super::redis::RedisBackend;
use super::sessions::SharedSessions;
use super::SharedState;
use crate::session::{SessionId, SessionStore};
use crate::testutil::new_session;

fn gateway(url: &str) -> (SharedState, SharedSessions) {
    let state: SharedState =
        Arc::new(RedisBackend::connect(url, Duration::from_millis(300), None).expect("connect"));
    let sessions = SharedSessions::new(
        state.clone(),
        Duration::from_secs(900),
        Duration::from_secs(36_000),
    );
    (state, sessions)
}

/// Wait (bounded) until `state`'s change feed is subscribed.
async fn until_live(state: &SharedState) {
    let feed = state.changes().expect("Redis reports changes");
    for _ in 0..100 {
        if feed.live() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the change feed did not come up within 2 s");
}

/// Two gateways on `url`, each subscribed to the other's changes.
async fn two_gateways(url: &str) -> (SharedState, SharedSessions, SharedSessions) {
    let (state_a, a) = gateway(url);
    let (state_b, b) = gateway(url);
    until_live(&state_a).await;
    until_live(&state_b).await;
    (state_a, a, b)
}

/// Wait (bounded) until `done`; whether it came.
async fn within_a_second(mut done: impl AsyncFnMut() -> bool) -> bool {
    for _ in 0..100 {
        if done().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

#[tokio::test]
async fn a_cached_session_ends_on_every_gateway_when_one_logs_it_out() {
    let Some(redis) = TestRedis::start() else {
        return;
    };
    let (state_a, a, b) = two_gateways(&redis.url).await;
    let id = SessionId::generate();
    a.insert(id.key(), Arc::new(new_session(1_000)))
        .await
        .expect("login on A");
    assert!(b.get(&id.key()).await.expect("B reads").is_some());

    // Deleted behind the gateways' backs (no announcement): B still answers
    // from its cache, which is what saves the round trip.
    let key = format!("portvakt:s:{}", super::hex(&id.key().0));
    assert!(state_a.delete(&key).await.expect("raw delete"));
    assert!(
        b.get(&id.key()).await.expect("B reads").is_some(),
        "B served the session from its cache"
    );

    // Put back, then logged out on A: announced, so B's copy goes too.
    a.insert(id.key(), Arc::new(new_session(1_000)))
        .await
        .expect("again");
    assert!(a.remove(&id.key()).await.expect("logout on A").is_some());
    assert!(
        within_a_second(async || b.get(&id.key()).await.expect("B reads").is_none()).await,
        "B still accepts a session A logged out"
    );
}

#[tokio::test]
async fn a_touch_on_one_gateway_refreshes_the_others_copy() {
    let Some(redis) = TestRedis::start() else {
        return;
    };
    let (_, a, b) = two_gateways(&redis.url).await;
    let id = SessionId::generate();
    a.insert(id.key(), Arc::new(new_session(0)))
        .await
        .expect("login");
    let on_b = b.get(&id.key()).await.expect("read").expect("there");
    assert_eq!(on_b.last_seen_ms(), 0);
    let on_a = a.get(&id.key()).await.expect("read").expect("there");
    assert!(on_a.touch(200_000, 90_000));
    a.touched(&id.key(), &on_a).await.expect("touch");
    assert!(
        within_a_second(async || {
            b.get(&id.key())
                .await
                .expect("read")
                .is_some_and(|s| s.last_seen_ms() == 200_000)
        })
        .await,
        "B kept the old idle clock"
    );
}

#[tokio::test]
async fn with_redis_gone_nothing_is_served_from_the_cache() {
    let Some(mut redis) = TestRedis::start() else {
        return;
    };
    let (state, a) = gateway(&redis.url);
    until_live(&state).await;
    let id = SessionId::generate();
    a.insert(id.key(), Arc::new(new_session(1_000)))
        .await
        .expect("login");
    assert!(a.get(&id.key()).await.expect("cached").is_some());
    redis.kill();
    // Fails closed (the 503 page), never "still logged in from memory".
    assert!(
        within_a_second(async || a.get(&id.key()).await.is_err()).await,
        "a cached session was served with Redis down"
    );
    assert!(!state.changes().expect("feed").live());
}

#[tokio::test]
async fn the_sweep_drops_cached_copies_of_ended_sessions() {
    let Some(redis) = TestRedis::start() else {
        return;
    };
    let (state, a, _) = two_gateways(&redis.url).await;
    let id = SessionId::generate();
    a.insert(id.key(), Arc::new(new_session(1_000)))
        .await
        .expect("login");
    assert!(a.get(&id.key()).await.expect("cached").is_some());
    let key = format!("portvakt:s:{}", super::hex(&id.key().0));
    assert!(state.delete(&key).await.expect("raw delete"));
    // Still live at 14 minutes idle: kept. Ended at 16: dropped.
    a.sweep(1_000 + 14 * 60_000, 900_000, 36_000_000)
        .await
        .expect("sweep");
    assert!(a.get(&id.key()).await.expect("read").is_some(), "kept");
    a.sweep(1_000 + 16 * 60_000, 900_000, 36_000_000)
        .await
        .expect("sweep");
    assert!(
        a.get(&id.key()).await.expect("read").is_none(),
        "an ended session's copy outlived the sweep"
    );
}
