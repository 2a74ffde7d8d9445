//! RFC 9728 protected-resource metadata: served by the layer, advertised in challenges.

use axum::{body::Body, routing::get, Router};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;
use tower_token_auth::metadata::ResourceMetadata;
use tower_token_auth::testing::TestKey;
use tower_token_auth::{source, AuthConfig, ConfigError, TokenAuthLayer};

fn cfg(key: &TestKey) -> AuthConfig {
    AuthConfig::builder()
        .keys(key.keys())
        .issuer("https://login.example.com")
        .audience("https://api.example.com/mcp")
        .realm("mcp")
        .resource_metadata(
            ResourceMetadata::new("https://api.example.com/mcp")
                .authorization_server("https://login.example.com")
                .scopes(["mcp:tools"])
                .name("Example MCP"),
        )
        .build()
        .unwrap()
}

fn app(cfg: AuthConfig) -> Router {
    Router::new()
        .route("/mcp", get(|| async { "tools" }))
        .layer(TokenAuthLayer::new(cfg))
}

#[tokio::test]
async fn the_layer_serves_the_metadata_document_unauthenticated() {
    let key = TestKey::es256();
    let res = app(cfg(&key))
        .oneshot(
            Request::get("/.well-known/oauth-protected-resource/mcp")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "application/json");
    let body: serde_json::Value =
        serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(
        body,
        serde_json::json!({
            "resource": "https://api.example.com/mcp",
            "authorization_servers": ["https://login.example.com"],
            "scopes_supported": ["mcp:tools"],
            "bearer_methods_supported": ["header"],
            "resource_name": "Example MCP"
        })
    );
}

#[tokio::test]
async fn challenges_carry_resource_metadata() {
    let key = TestKey::es256();
    let res = app(cfg(&key))
        .oneshot(Request::get("/mcp").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        res.headers()["www-authenticate"],
        r#"Bearer realm="mcp", resource_metadata="https://api.example.com/.well-known/oauth-protected-resource/mcp""#
    );
    let expired = key
        .token()
        .issuer("https://login.example.com")
        .audience("https://api.example.com/mcp")
        .expired_for(std::time::Duration::from_secs(60))
        .sign();
    let res = app(cfg(&key))
        .oneshot(
            Request::get("/mcp")
                .header("authorization", format!("Bearer {expired}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let v = res.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        v.starts_with(r#"Bearer realm="mcp", error="invalid_token""#),
        "{v}"
    );
    assert!(
        v.ends_with(r#", resource_metadata="https://api.example.com/.well-known/oauth-protected-resource/mcp""#),
        "{v}"
    );
}

#[tokio::test]
async fn metadata_lists_the_bearer_methods_of_the_sources() {
    let key = TestKey::es256();
    let cfg = AuthConfig::builder()
        .keys(key.keys())
        .issuer("i")
        .audience("a")
        .source(source::bearer())
        .source(source::query("access_token"))
        .source(source::cookie("session"))
        .resource_metadata(ResourceMetadata::new("https://api.example.com"))
        .build()
        .unwrap();
    assert_eq!(
        cfg.resource_metadata_url(),
        Some("https://api.example.com/.well-known/oauth-protected-resource")
    );
    let doc: serde_json::Value =
        serde_json::from_str(cfg.resource_metadata_json().unwrap()).unwrap();
    assert_eq!(
        doc["bearer_methods_supported"],
        serde_json::json!(["header", "query"])
    );
}

#[test]
fn a_non_https_resource_is_a_build_error() {
    let err = AuthConfig::builder()
        .keys(TestKey::hs256().keys())
        .issuer("i")
        .audience("a")
        .resource_metadata(ResourceMetadata::new("http://api.example.com"))
        .build()
        .unwrap_err();
    assert_eq!(err, ConfigError::InvalidResource);
    assert!(err.to_string().contains("https"));
}

#[tokio::test]
async fn without_metadata_the_path_is_protected_like_any_other() {
    let key = TestKey::es256();
    let cfg = AuthConfig::builder()
        .keys(key.keys())
        .issuer("i")
        .audience("a")
        .build()
        .unwrap();
    let res = app(cfg)
        .oneshot(
            Request::get("/.well-known/oauth-protected-resource")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.headers()["www-authenticate"], "Bearer");
}
