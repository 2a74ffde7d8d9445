//! Layer modes (required, optional, anonymous-on-invalid), the `Claims` extractors, custom
//! claims types, custom responders, plain tower services, thread-safety of the public types,
//! validation outside HTTP and the rejection log event.

use std::convert::Infallible;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::response::{IntoResponse, Response};
use axum::{body::Body, routing::get, Extension, Json, Router};
use bytes::Bytes;
use http::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use http::request::Parts;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use serde::Deserialize;
use tower::{service_fn, Layer, Service, ServiceExt};
use tower_token_auth::testing::TestKey;
use tower_token_auth::{
    Algorithm, AuthConfig, AuthError, Claims, DefaultResponder, Reason, ResponseFuture,
    StandardClaims, TokenAuth, TokenAuthLayer,
};

const ISS: &str = "https://issuer.test";
const AUD: &str = "api";
const SECRET: &[u8; 32] = b"0123456789abcdef0123456789abcdef";

fn key() -> TestKey {
    TestKey::hmac(Algorithm::HS256, SECRET.to_vec()).with_kid("k1")
}

fn token(sub: &str) -> String {
    key().token().issuer(ISS).audience(AUD).subject(sub).sign()
}

fn expired_token() -> String {
    key()
        .token()
        .issuer(ISS)
        .audience(AUD)
        .subject("late")
        .expired_for(Duration::from_secs(600))
        .sign()
}

fn cfg() -> AuthConfig {
    AuthConfig::builder()
        .keys(key().keys())
        .issuer(ISS)
        .audience(AUD)
        .realm("api")
        .build()
        .unwrap()
}

fn bearer(tok: &str) -> Request<Body> {
    Request::get("/")
        .header("authorization", format!("Bearer {tok}"))
        .body(Body::empty())
        .unwrap()
}

fn anonymous() -> Request<Body> {
    Request::get("/").body(Body::empty()).unwrap()
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    error: Option<AuthError>,
    body: String,
}

impl Reply {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.body))
    }

    fn err(&self) -> &AuthError {
        self.error
            .as_ref()
            .expect("the rejection response carries the AuthError in its extensions")
    }

    fn www_authenticate(&self) -> Option<&str> {
        self.headers
            .get(WWW_AUTHENTICATE)
            .map(|v| v.to_str().unwrap())
    }

    fn assert_rejected(&self, reason: Reason) {
        assert_eq!(self.status, reason.status(), "body: {}", self.body);
        assert_eq!(self.err().reason(), reason, "{:?}", self.err());
        assert_eq!(self.json()["reason"], reason.code());
    }
}

async fn send<S>(svc: S, req: Request<Body>) -> Reply
where
    S: Service<Request<Body>, Response = Response, Error = Infallible>,
{
    let res = svc.oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let error = res.extensions().get::<AuthError>().cloned();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        headers,
        error,
        body: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

fn counter() -> Arc<AtomicUsize> {
    Arc::new(AtomicUsize::new(0))
}

/// A router whose handler requires `Claims<StandardClaims>` and counts its calls.
fn required_app(layer: TokenAuthLayer, calls: Arc<AtomicUsize>) -> Router {
    Router::new()
        .route(
            "/",
            get(move |Claims(c): Claims<StandardClaims>| async move {
                calls.fetch_add(1, Ordering::SeqCst);
                c.sub.unwrap_or_default()
            }),
        )
        .layer(layer)
}

/// A router whose handler takes `Option<Claims<StandardClaims>>` and counts its calls.
fn optional_app(layer: TokenAuthLayer, calls: Arc<AtomicUsize>) -> Router {
    Router::new()
        .route(
            "/",
            get(move |c: Option<Claims<StandardClaims>>| async move {
                calls.fetch_add(1, Ordering::SeqCst);
                match c {
                    Some(Claims(c)) => format!("some:{}", c.sub.unwrap_or_default()),
                    None => "none".to_owned(),
                }
            }),
        )
        .layer(layer)
}

// ---------------------------------------------------------------------------------------------
// Required mode
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn required_no_token_is_401_missing_and_handler_not_called() {
    let calls = counter();
    let r = send(
        required_app(TokenAuthLayer::new(cfg()), calls.clone()),
        anonymous(),
    )
    .await;
    r.assert_rejected(Reason::Missing);
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.www_authenticate(), Some(r#"Bearer realm="api""#));
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn required_invalid_token_is_401_and_handler_not_called() {
    let calls = counter();
    let r = send(
        required_app(TokenAuthLayer::new(cfg()), calls.clone()),
        bearer(&expired_token()),
    )
    .await;
    r.assert_rejected(Reason::Expired);
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn required_valid_token_calls_handler_once() {
    let calls = counter();
    let r = send(
        required_app(TokenAuthLayer::new(cfg()), calls.clone()),
        bearer(&token("alice")),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, "alice");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

// ---------------------------------------------------------------------------------------------
// Optional mode
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn optional_no_token_runs_handler_without_claims() {
    let calls = counter();
    let r = send(
        optional_app(TokenAuthLayer::new(cfg()).optional(), calls.clone()),
        anonymous(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, "none");
    assert!(r.error.is_none());
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn optional_valid_token_gives_some_claims() {
    let calls = counter();
    let r = send(
        optional_app(TokenAuthLayer::new(cfg()).optional(), calls.clone()),
        bearer(&token("bob")),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, "some:bob");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn optional_invalid_token_is_still_401() {
    let calls = counter();
    let r = send(
        optional_app(TokenAuthLayer::new(cfg()).optional(), calls.clone()),
        bearer(&expired_token()),
    )
    .await;
    r.assert_rejected(Reason::Expired);
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn optional_invalid_request_is_still_400() {
    let calls = counter();
    let tok = token("x");
    let req = Request::get("/")
        .header("authorization", format!("Bearer {tok}"))
        .header("authorization", format!("Bearer {tok}"))
        .body(Body::empty())
        .unwrap();
    let r = send(
        optional_app(TokenAuthLayer::new(cfg()).optional(), calls.clone()),
        req,
    )
    .await;
    r.assert_rejected(Reason::InvalidRequest);
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

// ---------------------------------------------------------------------------------------------
// Anonymous on invalid
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn anonymous_on_invalid_lets_invalid_token_through_with_error_in_extensions() {
    let calls = counter();
    let c2 = calls.clone();
    let app =
        Router::new()
            .route(
                "/",
                get(
                    move |c: Option<Claims<StandardClaims>>,
                          Extension(err): Extension<AuthError>| async move {
                        c2.fetch_add(1, Ordering::SeqCst);
                        format!("claims:{} reason:{}", c.is_some(), err.reason().code())
                    },
                ),
            )
            .layer(TokenAuthLayer::new(cfg()).anonymous_on_invalid());
    let r = send(app, bearer(&expired_token())).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body, "claims:false reason:expired");
    assert!(r.error.is_none());
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn anonymous_on_invalid_lets_invalid_request_through() {
    let app = Router::new()
        .route(
            "/",
            get(
                |c: Option<Claims<StandardClaims>>, Extension(err): Extension<AuthError>| async move {
                    format!("claims:{} reason:{}", c.is_some(), err.reason().code())
                },
            ),
        )
        .layer(TokenAuthLayer::new(cfg()).anonymous_on_invalid());
    let r = send(app, bearer("")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body, "claims:false reason:invalid_request");
}

#[tokio::test]
async fn anonymous_on_invalid_no_token_runs_handler_without_error() {
    let app = Router::new()
        .route(
            "/",
            get(
                |c: Option<Claims<StandardClaims>>, err: Option<Extension<AuthError>>| async move {
                    format!("claims:{} error:{}", c.is_some(), err.is_some())
                },
            ),
        )
        .layer(TokenAuthLayer::new(cfg()).anonymous_on_invalid());
    let r = send(app, anonymous()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body, "claims:false error:false");
}

#[tokio::test]
async fn anonymous_on_invalid_valid_token_gives_claims() {
    let app = Router::new()
        .route(
            "/",
            get(
                |c: Option<Claims<StandardClaims>>, err: Option<Extension<AuthError>>| async move {
                    format!(
                        "sub:{} error:{}",
                        c.and_then(|c| c.0.sub).unwrap_or_default(),
                        err.is_some()
                    )
                },
            ),
        )
        .layer(TokenAuthLayer::new(cfg()).anonymous_on_invalid());
    let r = send(app, bearer(&token("carol"))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body, "sub:carol error:false");
}

#[tokio::test]
async fn anonymous_on_invalid_error_is_in_request_extensions_of_service_fn() {
    let svc = TokenAuthLayer::new(cfg())
        .anonymous_on_invalid()
        .layer(service_fn(|req: Request<Body>| async move {
            let err = req.extensions().get::<AuthError>().cloned();
            let claims = req
                .extensions()
                .get::<tower_token_auth::VerifiedClaims<StandardClaims>>()
                .cloned();
            let text = format!(
                "claims:{} reason:{}",
                claims.is_some(),
                err.map(|e| e.reason().code()).unwrap_or("none")
            );
            Ok::<_, Infallible>(Response::new(Body::from(text)))
        }));
    let r = send(svc, bearer("not-a-jwt")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, "claims:false reason:malformed");
}

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
        get(|Claims(c): Claims<StandardClaims>| async move { c.sub.unwrap_or_default() }),
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
        .route("/", get(|Claims(c): Claims<Other>| async move { c.sub }))
        .layer(TokenAuthLayer::new(cfg()));
    let r = send(app, bearer(&token("alice"))).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(r.body.contains("with_claims"), "{}", r.body);
    assert!(r.body.contains("Other"), "{}", r.body);
    assert!(r.body.contains("StandardClaims"), "{}", r.body);
}

#[tokio::test]
async fn optional_claims_of_other_type_behind_optional_layer_without_token_is_500() {
    let app = Router::new()
        .route(
            "/",
            get(|c: Option<Claims<Other>>| async move { c.map(|c| c.0.sub).unwrap_or_default() }),
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

#[derive(Clone, Debug, Deserialize)]
struct MyClaims {
    sub: String,
    tenant: String,
}

fn my_claims_app() -> Router {
    Router::new()
        .route(
            "/",
            get(|Claims(c): Claims<MyClaims>| async move { format!("{}@{}", c.sub, c.tenant) }),
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
            get(|Claims(c): Claims<StandardClaims>| async move { c.sub.unwrap_or_default() }),
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
            get(|Claims(c): Claims<StandardClaims>| async move { c.sub.unwrap_or_default() }),
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

// ---------------------------------------------------------------------------------------------
// Plain tower service (no axum)
// ---------------------------------------------------------------------------------------------

type FullRes = http::Response<Full<Bytes>>;

async fn echo(req: Request<String>) -> Result<FullRes, Infallible> {
    let sub = req
        .extensions()
        .get::<tower_token_auth::VerifiedClaims<StandardClaims>>()
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

// ---------------------------------------------------------------------------------------------
// Validation outside HTTP
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn validate_outside_http_returns_claims() {
    let claims: StandardClaims = cfg().validate(&token("ivy")).await.unwrap();
    assert_eq!(claims.sub.as_deref(), Some("ivy"));
    assert_eq!(claims.iss.as_deref(), Some(ISS));
    assert_eq!(claims.aud, vec![AUD.to_owned()]);
}

#[tokio::test]
async fn validate_outside_http_returns_error_with_reason() {
    let err = cfg()
        .validate::<StandardClaims>(&expired_token())
        .await
        .unwrap_err();
    assert_eq!(err.reason(), Reason::Expired);
    assert_eq!(err.status(), StatusCode::UNAUTHORIZED);
    assert!(err.is_expired());
    assert_eq!(err.problems()[0].subject(), Some("exp"));
    assert_eq!(err.facts().kid.as_deref(), Some("k1"));
    // No HTTP source was involved.
    assert_eq!(err.facts().source, None);
}

#[tokio::test]
async fn validate_outside_http_custom_type_mismatch_is_invalid_claim() {
    let err = cfg()
        .validate::<MyClaims>(&token("no-tenant"))
        .await
        .unwrap_err();
    assert_eq!(err.reason(), Reason::InvalidClaim);
}

#[tokio::test]
async fn validate_outside_http_custom_type() {
    let tok = key()
        .token()
        .issuer(ISS)
        .audience(AUD)
        .subject("jo")
        .claim("tenant", "acme")
        .sign();
    let c: MyClaims = cfg().validate(&tok).await.unwrap();
    assert_eq!((c.sub.as_str(), c.tenant.as_str()), ("jo", "acme"));
}

// ---------------------------------------------------------------------------------------------
// Rejection log event
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Sends `tok` through a required layer with a capturing subscriber installed and returns
/// the response status and the captured log.
async fn logged_rejection(tok: &str) -> (StatusCode, String) {
    logged_rejection_with(tok, cfg()).await
}

fn signature_of(tok: &str) -> &str {
    tok.rsplit('.').next().unwrap()
}

#[tokio::test]
async fn log_of_expired_token_names_reason_kid_and_audiences_but_not_the_token() {
    let tok = key()
        .with_kid("log-kid-expired")
        .token()
        .issuer(ISS)
        .audience(AUD)
        .expired_for(Duration::from_secs(600))
        .sign();
    let cfg_keys = AuthConfig::builder()
        .keys(key().with_kid("log-kid-expired").keys())
        .issuer(ISS)
        .audience(AUD)
        .build()
        .unwrap();
    // The token verifies against the configured key (only its exp is wrong).
    assert_eq!(
        cfg_keys
            .validate::<StandardClaims>(&tok)
            .await
            .unwrap_err()
            .problems()
            .iter()
            .map(|p| p.reason())
            .collect::<Vec<_>>(),
        vec![Reason::Expired]
    );
    let (status, log) = logged_rejection_with(&tok, cfg_keys).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(log.contains("tower_token_auth"), "{log}");
    assert!(log.contains("token rejected"), "{log}");
    assert!(log.contains(r#"reason="expired""#), "{log}");
    assert!(log.contains("log-kid-expired"), "{log}");
    assert!(log.contains(r#"expected_aud=["api"]"#), "{log}");
    assert!(log.contains(r#"aud=["api"]"#), "{log}");
    assert!(!log.contains(&tok), "the token is in the log: {log}");
    assert!(
        !log.contains(signature_of(&tok)),
        "the signature is in the log: {log}"
    );
}

#[tokio::test]
async fn log_of_wrong_audience_names_reason_kid_and_both_audiences_but_not_the_token() {
    let tok = key()
        .token()
        .issuer(ISS)
        .audience("audience-of-another-service")
        .subject("mallory")
        .sign();
    let (status, log) = logged_rejection(&tok).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(log.contains(r#"reason="wrong_audience""#), "{log}");
    assert!(log.contains(r#"kid="k1""#), "{log}");
    assert!(log.contains(r#"expected_aud=["api"]"#), "{log}");
    assert!(
        log.contains(r#"aud=["audience-of-another-service"]"#),
        "{log}"
    );
    assert!(!log.contains(&tok), "the token is in the log: {log}");
    assert!(
        !log.contains(signature_of(&tok)),
        "the signature is in the log: {log}"
    );
}

/// Like [`logged_rejection`], with a given configuration.
async fn logged_rejection_with(tok: &str, cfg: AuthConfig) -> (StatusCode, String) {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let app = Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(TokenAuthLayer::new(cfg));
    let res = app.oneshot(bearer(tok)).await.unwrap();
    (res.status(), captured.text())
}
