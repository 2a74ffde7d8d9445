//! DPoP proofs remembered in Redis: a proof accepted by one replica is a replay on another,
//! and a Redis that does not answer fails closed (`replay_unavailable`, 503), then recovers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::{Request, StatusCode};
use tower::ServiceExt;
use tower_token_auth::binding::{Dpop, RedisReplayStore};
use tower_token_auth::testing::TestKey;
use tower_token_auth::{AuthError, Reason, TokenAuthLayer};

use crate::common::hs;
use crate::redis_revocation::RedisServer;

fn sha256_b64(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data).as_ref())
}

fn bound_token(key: &TestKey) -> String {
    let jwk = key.jwk();
    let jkt = sha256_b64(
        format!(
            r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
            jwk["crv"].as_str().unwrap(),
            jwk["x"].as_str().unwrap(),
            jwk["y"].as_str().unwrap()
        )
        .as_bytes(),
    );
    hs::key()
        .token()
        .issuer(hs::ISS)
        .audience(hs::AUD)
        .claim("cnf", serde_json::json!({ "jkt": jkt }))
        .sign()
}

static JTI: AtomicU64 = AtomicU64::new(0);

fn proof(key: &TestKey, token: &str) -> String {
    key.token()
        .header("typ", "dpop+jwt")
        .header("jwk", key.jwk())
        .without("exp")
        .without("nbf")
        .claim(
            "jti",
            format!(
                "r-{}-{}",
                std::process::id(),
                JTI.fetch_add(1, Ordering::SeqCst)
            ),
        )
        .claim("htm", "GET")
        .claim("htu", "https://api.example.com/")
        .claim("ath", sha256_b64(token.as_bytes()))
        .sign()
}

/// One replica: its own configuration, layer and Redis connection.
async fn replica(url: &str) -> Router {
    let store = RedisReplayStore::connect(url).await.unwrap();
    let cfg = hs::base()
        .dpop(
            Dpop::allowed()
                .base_url("https://api.example.com")
                .replay_store(store)
                .replay_timeout(Duration::from_millis(200)),
        )
        .build()
        .unwrap();
    Router::new()
        .route("/", axum::routing::get(|| async { "ok" }))
        .layer(TokenAuthLayer::new(cfg))
}

async fn send(app: &Router, token: &str, proof: &str) -> (StatusCode, Option<Reason>) {
    let req = Request::get("/")
        .header("authorization", format!("DPoP {token}"))
        .header("dpop", proof)
        .body(Body::empty())
        .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    (
        res.status(),
        res.extensions().get::<AuthError>().map(AuthError::reason),
    )
}

#[tokio::test]
async fn a_proof_used_on_one_replica_is_a_replay_on_the_others() {
    let redis = RedisServer::start();
    let (a, b, c) = (
        replica(&redis.url()).await,
        replica(&redis.url()).await,
        replica(&redis.url()).await,
    );
    let key = TestKey::es256();
    let token = bound_token(&key);
    let p = proof(&key, &token);
    assert_eq!(send(&a, &token, &p).await, (StatusCode::OK, None));
    for replica in [&b, &c, &a] {
        assert_eq!(
            send(replica, &token, &p).await,
            (StatusCode::UNAUTHORIZED, Some(Reason::InvalidDpopProof))
        );
    }
    // A new proof is fine anywhere (the token itself is cached on A now).
    assert_eq!(
        send(&b, &token, &proof(&key, &token)).await.0,
        StatusCode::OK
    );
    assert_eq!(
        send(&a, &token, &proof(&key, &token)).await.0,
        StatusCode::OK
    );
    // Concurrent: the same new proof sent to the three replicas at once is accepted once.
    for _ in 0..20 {
        let p = proof(&key, &token);
        let (ra, rb, rc) = tokio::join!(
            send(&a, &token, &p),
            send(&b, &token, &p),
            send(&c, &token, &p)
        );
        let ok = [ra, rb, rc]
            .iter()
            .filter(|r| r.0 == StatusCode::OK)
            .count();
        assert_eq!(ok, 1, "{ra:?} {rb:?} {rc:?}");
    }
}

#[tokio::test]
async fn a_silent_redis_fails_closed_within_the_timeout_then_recovers() {
    let mut redis = RedisServer::start();
    let a = replica(&redis.url()).await;
    let key = TestKey::es256();
    let token = bound_token(&key);
    assert_eq!(
        send(&a, &token, &proof(&key, &token)).await.0,
        StatusCode::OK
    );

    redis.freeze();
    let started = Instant::now();
    let r = send(&a, &token, &proof(&key, &token)).await;
    redis.thaw();
    assert_eq!(
        r,
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Some(Reason::ReplayUnavailable)
        )
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );

    // Killed and restarted on the same port: the connection comes back by itself.
    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = send(&a, &token, &proof(&key, &token)).await;
        if r.0 == StatusCode::OK {
            break;
        }
        assert_eq!(
            r.1,
            Some(Reason::ReplayUnavailable),
            "only 503 while reconnecting"
        );
        assert!(Instant::now() < deadline, "no recovery after the restart");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The extra latency of the Redis replay store per DPoP request, on loopback: medians of
/// interleaved rounds, printed (not asserted: a timed test would be flaky).
/// `cargo test --release --all-features --test suite dpop_redis::measure -- --ignored --nocapture`
#[tokio::test]
#[ignore]
async fn measure_dpop_latency_redis_vs_memory() {
    let redis = RedisServer::start();
    let shared = replica(&redis.url()).await;
    let local = {
        let cfg = hs::base()
            .dpop(Dpop::allowed().base_url("https://api.example.com"))
            .build()
            .unwrap();
        Router::new()
            .route("/", axum::routing::get(|| async { "ok" }))
            .layer(TokenAuthLayer::new(cfg))
    };
    let key = TestKey::es256();
    let token = bound_token(&key);
    let (mut mem, mut red) = (Vec::new(), Vec::new());
    for _ in 0..300 {
        for (app, times) in [(&local, &mut mem), (&shared, &mut red)] {
            let p = proof(&key, &token);
            let t = Instant::now();
            assert_eq!(send(app, &token, &p).await.0, StatusCode::OK);
            times.push(t.elapsed());
        }
    }
    mem.sort();
    red.sort();
    let (m, r) = (mem[mem.len() / 2], red[red.len() / 2]);
    println!(
        "DPoP request median: memory replay {m:?}, Redis replay {r:?}, extra {:?}",
        r.saturating_sub(m)
    );
}

/// The crate's Redis stores share one prefix: the revocation store primes its cache with its
/// own keys only (a refresh family is a hash, a DPoP proof another string).
#[tokio::test]
async fn the_revocation_store_starts_beside_refresh_families_and_proofs() {
    use tower_token_auth::revocation::{RedisRevocationStore, RevocationStore};

    let redis = RedisServer::start();
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("HSET")
        .arg("tta:rf:family-1")
        .arg("cur")
        .arg("jti-1")
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg("tta:dpop:00ff")
        .arg(1)
        .query_async(&mut conn)
        .await
        .unwrap();
    let store = RedisRevocationStore::builder(redis.url())
        .connect()
        .await
        .unwrap();
    store
        .revoke_token(
            "jti-9",
            tower_token_auth::clock::Clock::now(&tower_token_auth::clock::SystemClock) + 600,
        )
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !store.is_synced() {
        assert!(
            Instant::now() < deadline,
            "the store never primed its cache"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(store.cached(), 1, "only its own revocation is cached");
}
