//! RFC 9728 protected-resource metadata: served by `MetadataService` (mounted at the
//! configured path, let through by the layer without a token), advertised in the challenges of
//! every responder.

use axum::response::{IntoResponse, Response};
use axum::{body::Body, routing::get, Json, Router};
use http::request::Parts;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;
use tower_token_auth::metadata::ResourceMetadata;
use tower_token_auth::response::{www_authenticate, ChallengeParams};
use tower_token_auth::testing::TestKey;
use tower_token_auth::{
    responder_fn, source, AuthConfig, AuthError, ConfigError, RequireScope, TokenAuthLayer,
};

const URL: &str = "https://api.example.com/.well-known/oauth-protected-resource/mcp";
const PATH: &str = "/.well-known/oauth-protected-resource/mcp";

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

/// `/mcp` behind the layer, with the metadata service mounted inside the layer too.
fn app(cfg: AuthConfig) -> Router {
    let mut router = Router::new().route("/mcp", get(|| async { "tools" }));
    if let (Some(path), Some(svc)) = (
        cfg.resource_metadata_path(),
        cfg.resource_metadata_service(),
    ) {
        router = router.route_service(path, svc);
    }
    router.layer(TokenAuthLayer::new(cfg))
}

fn get_metadata(authorization: Option<&str>) -> Request<Body> {
    let mut req = Request::get(PATH);
    if let Some(a) = authorization {
        req = req.header("authorization", a);
    }
    req.body(Body::empty()).unwrap()
}

#[tokio::test]
async fn the_metadata_document_is_served_unauthenticated() {
    let key = TestKey::es256();
    let res = app(cfg(&key)).oneshot(get_metadata(None)).await.unwrap();
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
        format!(r#"Bearer realm="mcp", resource_metadata="{URL}""#)
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
        v.ends_with(&format!(r#", resource_metadata="{URL}""#)),
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
        cfg.resource_metadata_path(),
        Some("/.well-known/oauth-protected-resource")
    );
    let res = cfg
        .resource_metadata_service()
        .unwrap()
        .oneshot(Request::get("/").body(()).unwrap())
        .await
        .unwrap();
    let doc: serde_json::Value = serde_json::from_str(res.body()).unwrap();
    assert_eq!(doc["resource"], "https://api.example.com");
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

#[tokio::test]
async fn the_layer_lets_the_metadata_get_through_whatever_the_token() {
    // Mounted inside the layer: an invalid or expired token does not hide the document.
    let key = TestKey::es256();
    for auth in ["Bearer not-a-jwt", "Basic dXNlcjpwYXNz", "Bearer "] {
        let res = app(cfg(&key))
            .oneshot(get_metadata(Some(auth)))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{auth}");
        assert!(res.extensions().get::<AuthError>().is_none());
    }
}

#[tokio::test]
async fn the_service_mounted_outside_the_layer_answers_the_same_bytes() {
    let key = TestKey::es256();
    let cfg = cfg(&key);
    let outside = Router::new()
        .route("/mcp", get(|| async { "tools" }))
        .layer(TokenAuthLayer::new(cfg.clone()))
        .route_service(
            cfg.resource_metadata_path().unwrap(),
            cfg.resource_metadata_service().unwrap(),
        );
    let a = outside.oneshot(get_metadata(None)).await.unwrap();
    let b = app(cfg.clone()).oneshot(get_metadata(None)).await.unwrap();
    assert_eq!(a.status(), StatusCode::OK);
    assert_eq!(a.headers()["content-type"], "application/json");
    let a = a.into_body().collect().await.unwrap().to_bytes();
    let b = b.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(a, b);
    let doc: serde_json::Value = serde_json::from_slice(&a).unwrap();
    assert_eq!(doc["resource"], "https://api.example.com/mcp");
}

#[tokio::test]
async fn only_get_of_the_metadata_path_skips_the_token_check() {
    let key = TestKey::es256();
    let res = app(cfg(&key))
        .oneshot(Request::post(PATH).body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        res.headers()["www-authenticate"],
        format!(r#"Bearer realm="mcp", resource_metadata="{URL}""#)
    );
}

#[tokio::test]
async fn metadata_service_as_a_plain_tower_service() {
    let key = TestKey::es256();
    let cfg = cfg(&key);
    let svc = cfg.resource_metadata_service().unwrap();
    // The path is the router's business: the service answers whatever it is given.
    let res = svc
        .clone()
        .oneshot(Request::get("/anything").body(()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "application/json");
    let doc: serde_json::Value = serde_json::from_str(res.body()).unwrap();
    assert_eq!(doc["resource"], "https://api.example.com/mcp");

    let res = svc
        .clone()
        .oneshot(Request::head(PATH).body(()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    let res = svc
        .oneshot(Request::delete(PATH).body(()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(res.headers()["allow"], "GET, HEAD");
}

#[test]
fn without_metadata_there_is_no_service_nor_path() {
    let cfg = AuthConfig::builder()
        .keys(TestKey::hs256().keys())
        .issuer("i")
        .audience("a")
        .build()
        .unwrap();
    assert!(cfg.resource_metadata_service().is_none());
    assert!(cfg.resource_metadata_path().is_none());
}

#[tokio::test]
async fn require_scope_challenges_carry_the_configured_realm_and_metadata_url() {
    let key = TestKey::es256();
    let app = Router::new()
        .route(
            "/admin",
            get(|| async { "ok" }).layer(RequireScope::all(["mcp:admin"])),
        )
        .layer(TokenAuthLayer::new(cfg(&key)));
    let token = key
        .token()
        .issuer("https://login.example.com")
        .audience("https://api.example.com/mcp")
        .claim("scope", "mcp:tools")
        .sign();
    let res = app
        .oneshot(
            Request::get("/admin")
                .header("authorization", format!("Bearer {token}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        res.headers()["www-authenticate"],
        format!(
            r#"Bearer realm="mcp", error="insufficient_scope", error_description="The token lacks the scope this resource requires.", scope="mcp:admin", resource_metadata="{URL}""#
        )
    );
}

#[cfg(feature = "grpc")]
#[tokio::test]
async fn grpc_responder_challenges_carry_the_configured_realm_and_metadata_url() {
    use tower_token_auth::GrpcResponder;

    let key = TestKey::es256();
    let app = Router::new()
        .route("/mcp", get(|| async { "tools" }))
        .layer(TokenAuthLayer::new(cfg(&key)).with_responder(GrpcResponder::new()));
    let res = app
        .oneshot(Request::get("/mcp").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["grpc-status"], "16");
    assert_eq!(
        res.headers()["www-authenticate"],
        format!(r#"Bearer realm="mcp", resource_metadata="{URL}""#)
    );
}

#[tokio::test]
async fn custom_responders_read_the_challenge_params_from_the_parts() {
    let key = TestKey::es256();
    let layer = TokenAuthLayer::new(cfg(&key)).with_responder(responder_fn(
        |err: &AuthError, parts: &Parts| -> Response<Body> {
            let p = ChallengeParams::from(parts);
            let body = serde_json::json!({ "realm": p.realm, "metadata": p.resource_metadata });
            let mut res = (err.status(), Json(body)).into_response();
            if let Some(v) = www_authenticate(err, parts) {
                res.headers_mut().insert("www-authenticate", v);
            }
            res
        },
    ));
    let app = Router::new()
        .route("/mcp", get(|| async { "tools" }))
        .layer(layer);
    let res = app
        .oneshot(Request::get("/mcp").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        res.headers()["www-authenticate"],
        format!(r#"Bearer realm="mcp", resource_metadata="{URL}""#)
    );
    let body: serde_json::Value =
        serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body, serde_json::json!({ "realm": "mcp", "metadata": URL }));
}

#[test]
fn challenge_params_without_a_layer_are_empty() {
    let (parts, ()) = Request::get("/").body(()).unwrap().into_parts();
    assert_eq!(ChallengeParams::from(&parts), ChallengeParams::default());
    assert_eq!(
        www_authenticate(&AuthError::new(tower_token_auth::Reason::Missing), &parts).unwrap(),
        "Bearer"
    );
}
