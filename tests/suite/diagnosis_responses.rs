//! The development option that puts the full diagnosis in rejection bodies: off by default,
//! complete when on.

use axum::{body::Body, routing::get, Router};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;
use tower_token_auth::testing::TestKey;
use tower_token_auth::{AuthConfig, AuthError, TokenAuthLayer};

fn cfg(key: &TestKey) -> AuthConfig {
    AuthConfig::builder()
        .keys(key.keys())
        .issuer("https://login.example.com")
        .audience("api://orders")
        .build()
        .unwrap()
}

async fn body_of(app: Router, token: &str) -> (StatusCode, serde_json::Value, AuthError) {
    let res = app
        .oneshot(
            Request::get("/")
                .header("authorization", format!("Bearer {token}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let status = res.status();
    let err = res.extensions().get::<AuthError>().unwrap().clone();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap(), err)
}

fn bad_token(key: &TestKey) -> String {
    key.token()
        .issuer("https://login.example.com/")
        .audience("api://billing")
        .expired_for(std::time::Duration::from_secs(600))
        .sign()
}

#[tokio::test]
async fn off_by_default() {
    let key = TestKey::es256();
    let app = Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(TokenAuthLayer::new(cfg(&key)));
    let (status, body, err) = body_of(app, &bad_token(&key)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.get("diagnosis").is_none(), "{body}");
    assert!(err.diagnosis().is_none());
    // And nothing of the token leaks into the default body.
    assert!(!body.to_string().contains("billing"));
}

#[tokio::test]
async fn when_on_every_problem_is_in_the_body() {
    let key = TestKey::es256();
    let app = Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(TokenAuthLayer::new(cfg(&key)).with_diagnosis_in_responses());
    let (status, body, err) = body_of(app, &bad_token(&key)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["reason"], "expired");
    let d = &body["diagnosis"];
    let reasons: Vec<&str> = d["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["reason"].as_str().unwrap())
        .collect();
    assert!(reasons.contains(&"expired"), "{reasons:?}");
    assert!(reasons.contains(&"wrong_issuer"), "{reasons:?}");
    assert!(reasons.contains(&"wrong_audience"), "{reasons:?}");
    // The trailing-slash look-alike is called out with a hint.
    assert!(d.to_string().contains("trailing slash"), "{d}");
    assert!(err.diagnosis().is_some());
}
