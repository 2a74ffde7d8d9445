//! The `Claims` extractors: misuse (no layer, another claims type) and custom claims types
//! (`with_claims`).

use std::sync::atomic::Ordering;

use axum::{routing::get, Router};
use http::StatusCode;
use serde::Deserialize;
use tower_token_auth::{Claims, Reason, StandardClaims, TokenAuthLayer};

use crate::common::hs::{cfg, key, token, AUD, ISS};
use crate::common::{anonymous, bearer, counter, required_app, send};

// ---------------------------------------------------------------------------------------------
// Claims extractor misuse
// ---------------------------------------------------------------------------------------------

/// A claims type no layer in these tests is built for.
#[derive(Clone, Debug, Deserialize)]
struct Other {
    sub: String,
}

#[tokio::test]
async fn claims_without_layer_is_500_saying_to_add_the_layer() {
    let app: Router = Router::new().route(
        "/",
        get(|c: Claims<StandardClaims>| async move { c.sub.clone().unwrap_or_default() }),
    );
    let r = send(app, bearer(&token("alice"))).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(r.body.contains("TokenAuthLayer"), "{}", r.body);
    assert!(r.body.contains("add .layer("), "{}", r.body);
    assert!(r.body.contains("StandardClaims"), "{}", r.body);
}

#[tokio::test]
async fn optional_claims_without_layer_is_500() {
    let app: Router = Router::new().route(
        "/",
        get(|c: Option<Claims<StandardClaims>>| async move { format!("{}", c.is_some()) }),
    );
    let r = send(app, anonymous()).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(r.body.contains("TokenAuthLayer"), "{}", r.body);
}

#[tokio::test]
async fn claims_of_other_type_behind_standard_layer_is_500_naming_with_claims() {
    let app = Router::new()
        .route("/", get(|c: Claims<Other>| async move { c.sub.clone() }))
        .layer(TokenAuthLayer::new(cfg()));
    let r = send(app, bearer(&token("alice"))).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(r.body.contains("with_claims"), "{}", r.body);
    assert!(r.body.contains("Other"), "{}", r.body);
    assert!(r.body.contains("StandardClaims"), "{}", r.body);
}

#[tokio::test]
async fn optional_claims_of_other_type_behind_optional_layer_without_token_is_500() {
    let app =
        Router::new()
            .route(
                "/",
                get(|c: Option<Claims<Other>>| async move {
                    c.map(|c| c.sub.clone()).unwrap_or_default()
                }),
            )
            .layer(TokenAuthLayer::new(cfg()).optional());
    let r = send(app, anonymous()).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(r.body.contains("with_claims"), "{}", r.body);
}

#[tokio::test]
async fn required_claims_behind_optional_layer_without_token_is_401() {
    let calls = counter();
    let r = send(
        required_app(TokenAuthLayer::new(cfg()).optional(), calls.clone()),
        anonymous(),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.www_authenticate(), Some(r#"Bearer realm="api""#));
    assert_eq!(r.json()["reason"], "missing");
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

// ---------------------------------------------------------------------------------------------
// Custom claims type
// ---------------------------------------------------------------------------------------------

/// A custom claims type (also used by `modes` and `plain_services`).
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct MyClaims {
    pub(crate) sub: String,
    pub(crate) tenant: String,
}

fn my_claims_app() -> Router {
    Router::new()
        .route(
            "/",
            get(|c: Claims<MyClaims>| async move { format!("{}@{}", c.sub, c.tenant) }),
        )
        .layer(TokenAuthLayer::new(cfg()).with_claims::<MyClaims>())
}

#[tokio::test]
async fn with_claims_handler_reads_custom_claims() {
    let tok = key()
        .token()
        .issuer(ISS)
        .audience(AUD)
        .subject("dave")
        .claim("tenant", "acme")
        .sign();
    let r = send(my_claims_app(), bearer(&tok)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body, "dave@acme");
}

#[tokio::test]
async fn with_claims_missing_custom_field_is_401_invalid_claim() {
    let tok = token("dave");
    let r = send(my_claims_app(), bearer(&tok)).await;
    r.assert_rejected(Reason::InvalidClaim);
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.json()["error"], "invalid_token");
}

#[tokio::test]
async fn with_claims_wrong_shape_is_401_invalid_claim() {
    let tok = key()
        .token()
        .issuer(ISS)
        .audience(AUD)
        .subject("dave")
        .claim("tenant", 42)
        .sign();
    let r = send(my_claims_app(), bearer(&tok)).await;
    r.assert_rejected(Reason::InvalidClaim);
}

#[tokio::test]
async fn with_claims_standard_claims_extractor_is_500_naming_with_claims() {
    let app = Router::new()
        .route(
            "/",
            get(|c: Claims<StandardClaims>| async move { c.sub.clone().unwrap_or_default() }),
        )
        .layer(TokenAuthLayer::new(cfg()).with_claims::<MyClaims>());
    let tok = key()
        .token()
        .issuer(ISS)
        .audience(AUD)
        .subject("dave")
        .claim("tenant", "acme")
        .sign();
    let r = send(app, bearer(&tok)).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(r.body.contains("with_claims"), "{}", r.body);
    assert!(r.body.contains("MyClaims"), "{}", r.body);
}
