//! Revocation through the layer: one token, every token of a subject, and the failure policy
//! of a store that cannot answer.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::{body::Body, routing::get, Router};
use http::{Request, StatusCode};
use tower::ServiceExt;
use tower_token_auth::clock::ManualClock;
use tower_token_auth::revocation::{
    BoxFuture, MemoryRevocationStore, RevocationError, RevocationPolicy, RevocationStore, TokenRef,
};
use tower_token_auth::testing::TestKey;
use tower_token_auth::{AuthConfig, AuthError, Reason, TokenAuthLayer};

const NOW: i64 = 1_800_000_000;

fn app(key: &TestKey, store: impl RevocationStore, policy: RevocationPolicy) -> Router {
    let cfg = AuthConfig::builder()
        .keys(key.keys())
        .issuer("iss")
        .audience("aud")
        .clock(ManualClock::at(NOW))
        .revocation(store)
        .revocation_policy(policy)
        .build()
        .unwrap();
    Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(TokenAuthLayer::new(cfg))
}

async fn send(app: &Router, token: &str) -> (StatusCode, Option<Reason>, Option<String>) {
    let res = app
        .clone()
        .oneshot(
            Request::get("/")
                .header("authorization", format!("Bearer {token}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let retry = res
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (
        res.status(),
        res.extensions().get::<AuthError>().map(|e| e.reason()),
        retry,
    )
}

fn token(key: &TestKey, jti: &str, sub: &str, iat: i64) -> String {
    key.token_at(NOW)
        .issuer("iss")
        .audience("aud")
        .subject(sub)
        .claim("jti", jti)
        .claim("iat", iat)
        .sign()
}

#[tokio::test]
async fn a_revoked_jti_is_rejected_and_others_pass() {
    let key = TestKey::es256();
    let store = Arc::new(MemoryRevocationStore::with_clock(ManualClock::at(NOW)));
    let app = app(&key, store.clone(), RevocationPolicy::FailClosed);
    let a = token(&key, "a", "alice", NOW);
    let b = token(&key, "b", "alice", NOW);
    assert_eq!(send(&app, &a).await.0, StatusCode::OK);
    store.revoke_token("a", NOW + 300).await.unwrap();
    assert_eq!(
        send(&app, &a).await,
        (StatusCode::UNAUTHORIZED, Some(Reason::Revoked), None)
    );
    assert_eq!(send(&app, &b).await.0, StatusCode::OK);
}

#[tokio::test]
async fn logout_everywhere_revokes_older_tokens_of_the_subject_only() {
    let key = TestKey::hs256();
    let store = Arc::new(MemoryRevocationStore::with_clock(ManualClock::at(NOW)));
    let app = app(&key, store.clone(), RevocationPolicy::FailClosed);
    let old = token(&key, "1", "alice", NOW - 60);
    let fresh = token(&key, "2", "alice", NOW + 1);
    let bob = token(&key, "3", "bob", NOW - 60);
    store
        .revoke_subject("alice", NOW, NOW + 3600)
        .await
        .unwrap();
    assert_eq!(send(&app, &old).await.1, Some(Reason::Revoked));
    assert_eq!(send(&app, &fresh).await.0, StatusCode::OK);
    assert_eq!(send(&app, &bob).await.0, StatusCode::OK);
}

#[tokio::test]
async fn entries_leave_when_the_token_would_have_expired() {
    let clock = ManualClock::at(NOW);
    let store = MemoryRevocationStore::with_clock(clock.clone());
    store.revoke_token("a", NOW + 10).await.unwrap();
    let t = TokenRef {
        jti: Some("a"),
        iss: None,
        sub: None,
        iat: None,
        exp: Some(NOW + 10),
    };
    assert_eq!(store.check_local(&t), Some(true));
    // Kept through the largest leeway (5 min) past exp, then dropped.
    clock.advance(std::time::Duration::from_secs(10 + 299));
    assert_eq!(store.check_local(&t), Some(true));
    clock.advance(std::time::Duration::from_secs(2));
    assert_eq!(store.check_local(&t), Some(false));
    store.revoke_token("b", NOW + 1000).await.unwrap(); // a write drops expired entries
    assert_eq!(store.len(), 1);
}

/// A store that always fails, counting how often it is asked.
struct Down(AtomicUsize);

impl RevocationStore for Down {
    fn is_revoked<'a>(&'a self, _t: TokenRef<'a>) -> BoxFuture<'a, Result<bool, RevocationError>> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Box::pin(async { Err(RevocationError("down".into())) })
    }
    fn revoke_token<'a>(
        &'a self,
        _: &'a str,
        _: i64,
    ) -> BoxFuture<'a, Result<(), RevocationError>> {
        Box::pin(async { Err(RevocationError("down".into())) })
    }
    fn revoke_subject<'a>(
        &'a self,
        _: &'a str,
        _: i64,
        _: i64,
    ) -> BoxFuture<'a, Result<(), RevocationError>> {
        Box::pin(async { Err(RevocationError("down".into())) })
    }
}

#[tokio::test]
async fn a_failing_store_fails_closed_by_default() {
    let key = TestKey::es256();
    let down = Arc::new(Down(AtomicUsize::new(0)));
    let app = app(&key, down.clone(), RevocationPolicy::FailClosed);
    let (status, reason, retry) = send(&app, &token(&key, "x", "s", NOW)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reason, Some(Reason::RevocationUnavailable));
    assert_eq!(retry.as_deref(), Some("5"));
    assert_eq!(down.0.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_failing_store_fails_open_when_chosen() {
    let key = TestKey::es256();
    let app = app(&key, Down(AtomicUsize::new(0)), RevocationPolicy::FailOpen);
    assert_eq!(
        send(&app, &token(&key, "x", "s", NOW)).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn validate_outside_http_consults_the_store() {
    let key = TestKey::es256();
    let store = Arc::new(MemoryRevocationStore::with_clock(ManualClock::at(NOW)));
    let cfg = AuthConfig::builder()
        .keys(key.keys())
        .issuer("iss")
        .audience("aud")
        .clock(ManualClock::at(NOW))
        .revocation(store.clone())
        .build()
        .unwrap();
    let t = token(&key, "z", "s", NOW);
    store.revoke_token("z", NOW + 60).await.unwrap();
    let err = cfg
        .validate::<tower_token_auth::StandardClaims>(&t)
        .await
        .unwrap_err();
    assert_eq!(err.reason(), Reason::Revoked);
}
