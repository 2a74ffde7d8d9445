//! Custom responders: their answer to rejections, the `AuthError` in the extensions, not used
//! for accepted requests.

use axum::response::{IntoResponse, Response};
use axum::{body::Body, routing::get, Json, Router};
use http::header::CONTENT_TYPE;
use http::request::Parts;
use http::{Request, StatusCode};
use tower_token_auth::{AuthError, Claims, Reason, StandardClaims, TokenAuthLayer};

use crate::common::hs::{cfg, expired_token, token};
use crate::common::send;

// ---------------------------------------------------------------------------------------------
// Custom responder
// ---------------------------------------------------------------------------------------------

fn teapot(err: &AuthError, parts: &Parts) -> Response<Body> {
    let status = if err.is_missing() {
        StatusCode::IM_A_TEAPOT
    } else {
        err.status()
    };
    let body = serde_json::json!({
        "code": err.reason().code(),
        "path": parts.uri.path(),
        "method": parts.method.as_str(),
    });
    (status, Json(body)).into_response()
}

fn responder_app() -> Router {
    Router::new()
        .route(
            "/deep/path",
            get(|c: Claims<StandardClaims>| async move { c.sub.clone().unwrap_or_default() }),
        )
        .layer(TokenAuthLayer::new(cfg()).with_responder(
            |err: &AuthError, parts: &Parts| -> Response<Body> { teapot(err, parts) },
        ))
}

#[tokio::test]
async fn custom_responder_answers_missing_with_its_own_status_and_json() {
    let req = Request::get("/deep/path?x=1").body(Body::empty()).unwrap();
    let r = send(responder_app(), req).await;
    assert_eq!(r.status, StatusCode::IM_A_TEAPOT);
    assert_eq!(r.headers.get(CONTENT_TYPE).unwrap(), "application/json");
    assert_eq!(
        r.json(),
        serde_json::json!({"code": "missing", "path": "/deep/path", "method": "GET"})
    );
    assert!(r.www_authenticate().is_none());
    assert_eq!(r.err().reason(), Reason::Missing);
}

#[tokio::test]
async fn custom_responder_answers_invalid_token_and_error_is_in_extensions() {
    let req = Request::post("/deep/path")
        .header("authorization", format!("Bearer {}", expired_token()))
        .body(Body::empty())
        .unwrap();
    let r = send(responder_app(), req).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.json(),
        serde_json::json!({"code": "expired", "path": "/deep/path", "method": "POST"})
    );
    assert_eq!(r.err().reason(), Reason::Expired);
    assert_eq!(r.err().facts().kid.as_deref(), Some("k1"));
}

#[tokio::test]
async fn custom_responder_is_not_used_for_accepted_requests() {
    let req = Request::get("/deep/path")
        .header("authorization", format!("Bearer {}", token("erin")))
        .body(Body::empty())
        .unwrap();
    let r = send(responder_app(), req).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, "erin");
    assert!(r.error.is_none());
}
