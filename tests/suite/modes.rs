//! Layer modes (required, optional, anonymous-on-invalid), validation outside HTTP and the
//! rejection log event. The extractors, custom responders and plain tower services, tested in
//! this file before, are in `extractors.rs`, `responders.rs` and `plain_services.rs`.

use std::convert::Infallible;
use std::io;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::response::Response;
use axum::{body::Body, routing::get, Extension, Router};
use http::{Request, StatusCode};
use tower::{service_fn, Layer, ServiceExt};
use tower_token_auth::{AuthConfig, AuthError, Claims, Reason, StandardClaims, TokenAuthLayer};

use crate::common::hs::{cfg, expired_token, key, token, AUD, ISS};
use crate::common::{anonymous, bearer, counter, optional_app, required_app, send};
use crate::extractors::MyClaims;

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
                        c.and_then(|c| c.sub.clone()).unwrap_or_default(),
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
            let claims =
                tower_token_auth::Claims::<StandardClaims>::from_extensions(req.extensions());
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
