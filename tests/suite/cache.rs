//! The verified-token cache: hits skip the signature, but never the time, byte-equality or
//! revocation checks; it can be sized and turned off.

use std::sync::Arc;
use std::time::Duration;

use axum::{body::Body, routing::get, Router};
use http::{Request, StatusCode};
use tower::ServiceExt;
use tower_token_auth::clock::ManualClock;
use tower_token_auth::revocation::{MemoryRevocationStore, RevocationStore};
use tower_token_auth::testing::TestKey;
use tower_token_auth::{AuthConfig, Reason, TokenAuthLayer};

use crate::common::status_and_reason as send;

const NOW: i64 = 1_800_000_000;

fn cfg(key: &TestKey, clock: &ManualClock) -> AuthConfig {
    AuthConfig::builder()
        .keys(key.keys())
        .issuer("iss")
        .audience("aud")
        .leeway(Duration::from_secs(10))
        .clock(clock.clone())
        .build()
        .unwrap()
}

fn router(layer: &TokenAuthLayer) -> Router {
    Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(layer.clone())
}

fn token(key: &TestKey) -> String {
    key.token_at(NOW)
        .issuer("iss")
        .audience("aud")
        .claim("jti", "t1")
        .expires_in(Duration::from_secs(60))
        .sign()
}

#[tokio::test]
async fn a_repeated_token_is_served_from_the_cache() {
    let key = TestKey::es256();
    let clock = ManualClock::at(NOW);
    let layer = TokenAuthLayer::new(cfg(&key, &clock));
    let app = router(&layer);
    let t = token(&key);
    for _ in 0..5 {
        assert_eq!(send(&app, &t).await, (StatusCode::OK, None));
    }
    let stats = layer.cache_stats();
    assert_eq!((stats.misses, stats.hits), (1, 4));
    assert_eq!(stats.capacity, tower_token_auth::DEFAULT_CACHE_CAPACITY);
}

#[tokio::test]
async fn exp_is_rechecked_on_every_hit() {
    let key = TestKey::hs256();
    let clock = ManualClock::at(NOW);
    let layer = TokenAuthLayer::new(cfg(&key, &clock));
    let app = router(&layer);
    let t = token(&key); // exp = NOW + 60, leeway 10 s
    assert_eq!(send(&app, &t).await.0, StatusCode::OK);
    clock.set(NOW + 69);
    assert_eq!(send(&app, &t).await.0, StatusCode::OK);
    assert_eq!(layer.cache_stats().hits, 1);
    clock.set(NOW + 70);
    assert_eq!(
        send(&app, &t).await,
        (StatusCode::UNAUTHORIZED, Some(Reason::Expired))
    );
}

#[tokio::test]
async fn a_hit_needs_byte_equality_even_in_the_same_slot() {
    let key = TestKey::es256();
    let clock = ManualClock::at(NOW);
    // One slot: every token lands on it, so only the byte comparison tells tokens apart.
    let layer = TokenAuthLayer::new(cfg(&key, &clock)).cache_capacity(1);
    let app = router(&layer);
    let good = token(&key);
    assert_eq!(send(&app, &good).await.0, StatusCode::OK);
    // Same header and signature, another payload.
    let other = key
        .token_at(NOW)
        .issuer("iss")
        .audience("aud")
        .subject("mallory")
        .sign();
    let parts: Vec<&str> = good.split('.').collect();
    let forged_payload = other.split('.').nth(1).unwrap();
    let forged = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
    assert_eq!(
        send(&app, &forged).await,
        (StatusCode::UNAUTHORIZED, Some(Reason::BadSignature))
    );
    // Same length, last byte of the signature changed.
    let mut flipped = good.clone().into_bytes();
    let last = flipped.len() - 2;
    flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    assert_ne!(
        send(&app, &flipped).await.0,
        StatusCode::OK,
        "a token differing in one byte must not hit"
    );
}

#[tokio::test]
async fn revocation_is_consulted_on_hits() {
    let key = TestKey::es256();
    let clock = ManualClock::at(NOW);
    let store = Arc::new(MemoryRevocationStore::with_clock(clock.clone()));
    let cfg = AuthConfig::builder()
        .keys(key.keys())
        .issuer("iss")
        .audience("aud")
        .clock(clock.clone())
        .revocation(store.clone())
        .build()
        .unwrap();
    let layer = TokenAuthLayer::new(cfg);
    let app = router(&layer);
    let t = token(&key);
    assert_eq!(send(&app, &t).await.0, StatusCode::OK);
    assert_eq!(send(&app, &t).await.0, StatusCode::OK);
    assert_eq!(layer.cache_stats().hits, 1);
    store.revoke_token("t1", NOW + 60).await.unwrap();
    assert_eq!(
        send(&app, &t).await,
        (StatusCode::UNAUTHORIZED, Some(Reason::Revoked))
    );
}

#[tokio::test]
async fn the_cache_can_be_turned_off() {
    let key = TestKey::es256();
    let clock = ManualClock::at(NOW);
    let layer = TokenAuthLayer::new(cfg(&key, &clock)).cache_capacity(0);
    let app = router(&layer);
    let t = token(&key);
    for _ in 0..3 {
        assert_eq!(send(&app, &t).await.0, StatusCode::OK);
    }
    let stats = layer.cache_stats();
    assert_eq!((stats.capacity, stats.hits, stats.misses), (0, 0, 0));
}

#[tokio::test]
async fn claims_come_through_on_hits() {
    let key = TestKey::es256();
    let clock = ManualClock::at(NOW);
    let layer = TokenAuthLayer::new(cfg(&key, &clock));
    let app = Router::new()
        .route(
            "/",
            get(
                |c: tower_token_auth::Claims<tower_token_auth::StandardClaims>| async move {
                    c.jti.clone().unwrap_or_default()
                },
            ),
        )
        .layer(layer.clone());
    let t = token(&key);
    for _ in 0..2 {
        let res = app
            .clone()
            .oneshot(
                Request::get("/")
                    .header("authorization", format!("Bearer {t}"))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let body = http_body_util::BodyExt::collect(res.into_body())
            .await
            .unwrap()
            .to_bytes();
        assert_eq!(&body[..], b"t1");
    }
    assert_eq!(layer.cache_stats().hits, 1);
}
