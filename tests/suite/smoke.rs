//! Smoke test: every key type through an axum router.
use axum::{body::Body, routing::get, Router};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;
use tower_token_auth::testing::TestKey;
use tower_token_auth::{
    AuthConfig, AuthError, Claims, DefaultResponder, Reason, StandardClaims, TokenAuthLayer,
};

#[tokio::test]
async fn smoke() {
    for key in [
        TestKey::hs256(),
        TestKey::rs256(),
        TestKey::es256(),
        TestKey::es384(),
        TestKey::ed25519(),
    ] {
        let key = key.with_kid("k1");
        let cfg = AuthConfig::builder()
            .keys(key.keys())
            .issuer("iss")
            .audience("aud")
            .realm("api")
            .build()
            .unwrap();
        let app = Router::new()
            .route(
                "/",
                get(|c: Claims<StandardClaims>| async move { c.sub.clone().unwrap_or_default() }),
            )
            .layer(TokenAuthLayer::new(cfg));
        let tok = key
            .token()
            .issuer("iss")
            .audience("aud")
            .subject("bob")
            .sign();
        let res = app
            .clone()
            .oneshot(
                Request::get("/")
                    .header("authorization", format!("Bearer {tok}"))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{:?}", key.algorithm());
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"bob");
        let tok = key
            .token()
            .issuer("iss")
            .audience("other")
            .expired_for(std::time::Duration::from_secs(100))
            .sign();
        let res = app
            .clone()
            .oneshot(
                Request::get("/")
                    .header("authorization", format!("bearer {tok}"))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        let err = res.extensions().get::<AuthError>().unwrap().clone();
        assert_eq!(err.reason(), Reason::Expired);
        assert!(err.has(Reason::WrongAudience));
        println!("{:?}", res.headers());
        let body = res.into_body().collect().await.unwrap().to_bytes();
        println!("{}", String::from_utf8_lossy(&body));
    }
}

#[tokio::test]
async fn test_key_jwks_verify_their_tokens() {
    let keys = [
        TestKey::rs256().with_kid("r"),
        TestKey::es256().with_kid("e"),
        TestKey::es384().with_kid("e3"),
        TestKey::ed25519().with_kid("d"),
    ];
    let refs: Vec<&TestKey> = keys.iter().collect();
    let cfg = AuthConfig::builder()
        .keys(tower_token_auth::Keys::jwks_json(TestKey::jwks(&refs)))
        .issuer("iss")
        .audience("aud")
        .build()
        .unwrap();
    for key in &keys {
        let tok = key.token().issuer("iss").audience("aud").sign();
        cfg.validate::<StandardClaims>(&tok).await.unwrap();
    }
}

type Reply = std::future::Ready<Result<http::Response<Body>, std::convert::Infallible>>;
type Handler = fn(Request<String>) -> Reply;
type Plain =
    tower_token_auth::TokenAuth<tower::util::ServiceFn<Handler>, StandardClaims, DefaultResponder>;

fn plain_service() -> Plain {
    fn ok(_: Request<String>) -> Reply {
        std::future::ready(Ok(http::Response::new(Body::from("ok"))))
    }
    let cfg = AuthConfig::builder()
        .keys(TestKey::hs256().keys())
        .issuer("iss")
        .audience("aud")
        .build()
        .unwrap();
    tower::Layer::layer(&TokenAuthLayer::new(cfg), tower::service_fn(ok as Handler))
}

#[test]
fn the_inner_service_is_reachable() {
    let mut svc = plain_service();
    let _: &_ = svc.get_ref();
    let _: &mut _ = svc.get_mut();
    let _inner = svc.into_inner();
}

#[test]
#[should_panic(expected = "ResponseFuture polled after completion")]
fn a_response_future_polled_after_completion_panics() {
    use std::future::Future;
    use std::task::{Context, Poll, Waker};
    use tower::Service;

    let mut svc = plain_service();
    let mut fut = Box::pin(svc.call(Request::new(String::new())));
    let mut cx = Context::from_waker(Waker::noop());
    match fut.as_mut().poll(&mut cx) {
        Poll::Ready(Ok(res)) => assert_eq!(res.status(), StatusCode::UNAUTHORIZED),
        other => panic!("expected a ready rejection, got {:?}", other.is_ready()),
    }
    let _ = fut.as_mut().poll(&mut cx);
}

#[tokio::test]
async fn responder_fn_infers_the_closure_and_answers_rejections() {
    use axum::response::IntoResponse;
    let cfg = AuthConfig::builder()
        .keys(TestKey::hs256().keys())
        .issuer("iss")
        .audience("aud")
        .build()
        .unwrap();
    let layer =
        TokenAuthLayer::new(cfg).with_responder(tower_token_auth::responder_fn(|err, parts| {
            (
                StatusCode::IM_A_TEAPOT,
                format!("{} {}", err.reason().code(), parts.uri.path()),
            )
                .into_response()
        }));
    let app = Router::new()
        .route("/x", get(|| async { "ok" }))
        .layer(layer);
    let res = app
        .oneshot(Request::get("/x").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::IM_A_TEAPOT);
    assert_eq!(
        res.extensions().get::<AuthError>().map(AuthError::reason),
        Some(Reason::Missing)
    );
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"missing /x");
}
