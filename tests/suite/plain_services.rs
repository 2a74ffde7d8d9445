//! The layer around plain tower services (no axum): `service_fn` with `String` and `Full`
//! bodies, optional mode, errors of the inner service; thread-safety of the public types and
//! futures.

use std::convert::Infallible;
use std::sync::atomic::Ordering;

use axum::{body::Body, Router};
use bytes::Bytes;
use http::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::{service_fn, Layer, Service, ServiceExt};
use tower_token_auth::{
    AuthConfig, AuthError, Claims, DefaultResponder, Reason, ResponseFuture, StandardClaims,
    TokenAuth, TokenAuthLayer,
};

use crate::common::counter;
use crate::common::hs::{cfg, expired_token, token};
use crate::extractors::MyClaims;

// ---------------------------------------------------------------------------------------------
// Plain tower service (no axum)
// ---------------------------------------------------------------------------------------------

type FullRes = http::Response<Full<Bytes>>;

async fn echo(req: Request<String>) -> Result<FullRes, Infallible> {
    let sub = tower_token_auth::Claims::<StandardClaims>::from_extensions(req.extensions())
        .and_then(|c| c.sub.clone())
        .unwrap_or_else(|| "nobody".into());
    Ok(http::Response::new(Full::new(Bytes::from(format!(
        "{sub}:{}",
        req.body()
    )))))
}

fn string_request(auth: Option<&str>, body: &str) -> Request<String> {
    let mut b = Request::post("/echo");
    if let Some(tok) = auth {
        b = b.header("authorization", format!("Bearer {tok}"));
    }
    b.body(body.to_owned()).unwrap()
}

#[tokio::test]
async fn plain_service_fn_accepts_valid_token_with_string_body() {
    let svc = TokenAuthLayer::new(cfg()).layer(service_fn(echo));
    let res = svc
        .oneshot(string_request(Some(&token("frank")), "hello"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.extensions().get::<AuthError>().is_none());
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"frank:hello");
}

#[tokio::test]
async fn plain_service_fn_rejects_missing_token_with_full_body() {
    let calls = counter();
    let c2 = calls.clone();
    let svc = TokenAuthLayer::new(cfg()).layer(service_fn(move |req: Request<String>| {
        c2.fetch_add(1, Ordering::SeqCst);
        echo(req)
    }));
    let res = svc.oneshot(string_request(None, "hello")).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        res.headers().get(WWW_AUTHENTICATE).unwrap(),
        r#"Bearer realm="api""#
    );
    assert_eq!(
        res.headers().get(CONTENT_TYPE).unwrap(),
        "application/problem+json"
    );
    assert_eq!(
        res.extensions().get::<AuthError>().map(AuthError::reason),
        Some(Reason::Missing)
    );
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["reason"], "missing");
    assert_eq!(json["status"], 401);
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn plain_service_fn_rejects_expired_token_with_full_body() {
    let svc = TokenAuthLayer::new(cfg()).layer(service_fn(echo));
    let res = svc
        .oneshot(string_request(Some(&expired_token()), "hello"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let www = res
        .headers()
        .get(WWW_AUTHENTICATE)
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        www,
        format!(
            "Bearer realm=\"api\", error=\"invalid_token\", error_description=\"{}\"",
            Reason::Expired.description()
        )
    );
    assert_eq!(
        res.extensions().get::<AuthError>().map(AuthError::reason),
        Some(Reason::Expired)
    );
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["reason"], "expired");
    assert_eq!(json["error"], "invalid_token");
}

#[tokio::test]
async fn plain_service_fn_optional_passes_string_body_without_claims() {
    let svc = TokenAuthLayer::new(cfg())
        .optional()
        .layer(service_fn(echo));
    let res = svc.oneshot(string_request(None, "anon")).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"nobody:anon");
}

#[tokio::test]
async fn plain_service_fn_service_error_passes_through() {
    #[derive(Debug, PartialEq)]
    struct Boom;
    let svc = TokenAuthLayer::new(cfg()).layer(service_fn(|_req: Request<String>| async {
        Err::<FullRes, Boom>(Boom)
    }));
    let err = svc
        .clone()
        .oneshot(string_request(Some(&token("g")), ""))
        .await
        .unwrap_err();
    assert_eq!(err, Boom);
    // A rejection is a response, not a service error.
    let res = svc.oneshot(string_request(None, "")).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

// ---------------------------------------------------------------------------------------------
// Send + Sync
// ---------------------------------------------------------------------------------------------

fn assert_send_sync<T: Send + Sync>() {}
fn assert_send<T: Send>() {}

type RouterAuth = TokenAuth<Router, StandardClaims, DefaultResponder>;

#[test]
fn public_types_are_send_and_sync() {
    assert_send_sync::<TokenAuthLayer>();
    assert_send_sync::<TokenAuthLayer<MyClaims>>();
    assert_send_sync::<RouterAuth>();
    assert_send_sync::<TokenAuth<Router, MyClaims, DefaultResponder>>();
    assert_send_sync::<AuthConfig>();
    assert_send_sync::<AuthError>();
    assert_send_sync::<Claims<StandardClaims>>();
}

#[test]
fn router_response_future_is_send() {
    assert_send::<<RouterAuth as Service<Request<Body>>>::Future>();
    assert_send::<ResponseFuture<Router, Body, StandardClaims, DefaultResponder>>();
}

#[tokio::test]
async fn response_future_of_a_call_is_send() {
    fn is_send<F: std::future::Future + Send>(f: F) -> F {
        f
    }
    let mut svc = TokenAuthLayer::new(cfg()).layer(service_fn(echo));
    std::future::poll_fn(|cx| svc.poll_ready(cx)).await.unwrap();
    let fut = is_send(svc.call(string_request(Some(&token("h")), "x")));
    let res = tokio::spawn(fut).await.unwrap().unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}
