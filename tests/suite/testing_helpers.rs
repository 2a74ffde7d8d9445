//! The test helpers (feature `test-util`) used the way a user's own handler tests would use
//! them: a [`MockIssuer`] instead of an identity provider, [`TestKey`]s to mint tokens in one
//! line, an axum `Router` behind `TokenAuthLayer`, driven with `oneshot`.
//!
//! Covers: an accepted token reaching the handler, a wrong audience, key rotation with
//! `set_keys` (a new `kid` accepted on the first request) and `add_key`, the fetch counters,
//! an outage (`set_failing`), the endpoints themselves, shutdown on drop, and one-line minting
//! with every `TestKey` type, locally and through the mock issuer.

use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use http::header::{AUTHORIZATION, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;
use tower_token_auth::clock::{Clock, ManualClock};
use tower_token_auth::testing::{MockIssuer, TestKey};
use tower_token_auth::{
    Algorithm, AuthConfig, AuthError, Claims, Keys, Reason, StandardClaims, TokenAuthLayer,
};

const AUD: &str = "api";

// ---------------------------------------------------------------------------------------------
// A user's app and a small client
// ---------------------------------------------------------------------------------------------

/// The app under test: `/me` answers the caller's `sub`.
fn app(keys: Keys) -> Router {
    let cfg = AuthConfig::builder()
        .keys(keys)
        .audience(AUD)
        .build()
        .unwrap();
    app_with(cfg)
}

fn app_with(cfg: AuthConfig) -> Router {
    Router::new()
        .route(
            "/me",
            get(|c: Claims<StandardClaims>| async move { c.sub.clone().unwrap_or_default() }),
        )
        .layer(TokenAuthLayer::new(cfg))
}

/// What came back.
#[derive(Debug)]
struct Reply {
    status: StatusCode,
    www_authenticate: Option<String>,
    retry_after: Option<String>,
    error: Option<AuthError>,
    body: String,
}

impl Reply {
    fn reason(&self) -> Option<Reason> {
        self.error.as_ref().map(AuthError::reason)
    }

    #[track_caller]
    fn assert_ok(&self, sub: &str) {
        assert_eq!(
            self.status,
            StatusCode::OK,
            "{:?}: {}",
            self.reason(),
            self.body
        );
        assert_eq!(self.body, sub);
        assert!(self.error.is_none());
    }

    #[track_caller]
    fn assert_rejected(&self, reason: Reason) {
        assert_eq!(
            self.reason(),
            Some(reason),
            "{}: {}",
            self.status,
            self.body
        );
        assert_eq!(self.status, StatusCode::UNAUTHORIZED);
        let challenge = format!(
            "Bearer error=\"invalid_token\", error_description=\"{}\"",
            reason.description()
        );
        assert_eq!(self.www_authenticate.as_deref(), Some(challenge.as_str()));
        let body: serde_json::Value = serde_json::from_str(&self.body).unwrap();
        assert_eq!(body["reason"], reason.code());
        assert_eq!(body["status"], 401);
    }
}

async fn send(app: &Router, token: &str) -> Reply {
    let req = Request::get("/me")
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    let res: Response = app.clone().oneshot(req).await.unwrap();
    let (parts, body) = res.into_parts();
    let header = |name| {
        parts
            .headers
            .get(name)
            .map(|v: &http::HeaderValue| v.to_str().unwrap().to_owned())
    };
    let www_authenticate = header(WWW_AUTHENTICATE);
    let retry_after = header(RETRY_AFTER);
    let error = parts.extensions.get::<AuthError>().cloned();
    let body = body.collect().await.unwrap().to_bytes();
    Reply {
        status: parts.status,
        www_authenticate,
        retry_after,
        error,
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
}

/// `GET path` on the mock with a plain blocking HTTP/1.1 client: (status, body).
async fn http_get(base: &str, path: &str) -> (u16, String) {
    let addr = base.trim_start_matches("http://").to_owned();
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(&addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut raw = String::new();
        stream.read_to_string(&mut raw).unwrap();
        let (head, body) = raw.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        (status, body.to_owned())
    })
    .await
    .unwrap()
}

// ---------------------------------------------------------------------------------------------
// MockIssuer in a handler test
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn mock_issuer_token_is_accepted_by_the_handler() {
    let idp = MockIssuer::start().await;
    let app = app(idp.keys());

    let token = idp.token().audience(AUD).subject("u1").sign();
    send(&app, &token).await.assert_ok("u1");
    assert_eq!(idp.fetches(), 1);
    assert_eq!(idp.discovery_fetches(), 1);
}

#[tokio::test]
async fn mock_issuer_wrong_audience_is_rejected() {
    let idp = MockIssuer::start().await;
    let app = app(idp.keys());

    let token = idp.token().audience("another-api").subject("u1").sign();
    send(&app, &token)
        .await
        .assert_rejected(Reason::WrongAudience);
}

#[tokio::test]
async fn mock_issuer_token_from_another_issuer_is_rejected() {
    let idp = MockIssuer::start().await;
    let app = app(idp.keys());

    // Same key and kid, but `iss` is not the mock's URL.
    let token = idp
        .token()
        .issuer("https://elsewhere.test")
        .audience(AUD)
        .sign();
    send(&app, &token)
        .await
        .assert_rejected(Reason::WrongIssuer);
}

#[tokio::test]
async fn mock_issuer_rotation_with_set_keys_accepts_new_kid_on_first_try() {
    let mut idp = MockIssuer::start().await;
    let app = app(idp.keys());
    let old = idp.token().audience(AUD).subject("before").sign();
    send(&app, &old).await.assert_ok("before");
    assert_eq!(idp.fetches(), 1);

    idp.set_keys(vec![TestKey::rs256().with_kid("mock-2")]);
    assert_eq!(idp.key().kid(), Some("mock-2"));
    let new = idp.token().audience(AUD).subject("after").sign();
    // The unknown kid triggers one refetch, and the same request is accepted.
    send(&app, &new).await.assert_ok("after");
    assert_eq!(idp.fetches(), 2);
    // Discovery is not repeated: the jwks_uri is kept.
    assert_eq!(idp.discovery_fetches(), 1);

    // The old key is gone from the set: its tokens fail, without another fetch (cool-down).
    send(&app, &old).await.assert_rejected(Reason::UnknownKey);
    assert_eq!(idp.fetches(), 2);
}

#[tokio::test]
async fn mock_issuer_rotation_to_another_algorithm_accepts_new_kid_on_first_try() {
    // A provider moving from RS256 to ES256: the new kid is unknown and its algorithm is not
    // in the cached set yet; the token must trigger the unknown-kid refetch like any new kid
    // (the cool-down bounds it), not be refused as `alg_not_allowed` until the next refresh.
    let mut idp = MockIssuer::start().await;
    let app = app(idp.keys());
    let old = idp.token().audience(AUD).subject("before").sign();
    send(&app, &old).await.assert_ok("before");

    idp.set_keys(vec![TestKey::es256().with_kid("mock-es")]);
    let new = idp.token().audience(AUD).subject("after").sign();
    send(&app, &new).await.assert_ok("after");
    assert_eq!(idp.fetches(), 2);
}

#[tokio::test]
async fn mock_issuer_add_key_keeps_the_old_key_valid() {
    let mut idp = MockIssuer::start().await;
    let app = app(idp.keys());
    let old = idp.token().audience(AUD).subject("old").sign();
    send(&app, &old).await.assert_ok("old");

    idp.add_key(TestKey::rs256().with_kid("mock-2"));
    assert_eq!(idp.published().len(), 2);
    let new = idp.token().audience(AUD).subject("new").sign();
    send(&app, &new).await.assert_ok("new");
    send(&app, &old).await.assert_ok("old");
    assert_eq!(idp.fetches(), 2);
}

#[tokio::test]
async fn mock_issuer_fetch_counter_counts_fetches_not_requests() {
    let idp = MockIssuer::start().await;
    assert_eq!(
        idp.fetches(),
        0,
        "nothing is fetched before the first request"
    );
    let app = app(idp.keys());
    assert_eq!(
        idp.fetches(),
        0,
        "building the configuration fetches nothing"
    );

    for i in 0..5 {
        let sub = format!("u{i}");
        let token = idp.token().audience(AUD).subject(&sub).sign();
        send(&app, &token).await.assert_ok(&sub);
    }
    assert_eq!(idp.fetches(), 1, "the key set is cached");
    assert_eq!(idp.discovery_fetches(), 1);
}

#[tokio::test]
async fn mock_issuer_outage_gives_503_then_recovers() {
    let idp = MockIssuer::start().await;
    let clock = ManualClock::at(1_700_000_000);
    let cfg = AuthConfig::builder()
        .keys(idp.keys())
        .audience(AUD)
        .clock(clock.clone())
        .build()
        .unwrap();
    let app = app_with(cfg);
    let token = idp.token_at(clock.now()).audience(AUD).subject("u1").sign();

    idp.set_failing(true);
    let reply = send(&app, &token).await;
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        reply.body
    );
    assert_eq!(reply.reason(), Some(Reason::KeysUnavailable));
    // Retry-After: when the next fetch will really be tried (a request may retry every second).
    assert_eq!(reply.retry_after.as_deref(), Some("1"));
    assert_eq!(reply.www_authenticate, None);
    assert_eq!(
        idp.discovery_fetches(),
        1,
        "the failed discovery was attempted"
    );
    assert_eq!(idp.fetches(), 0);

    idp.set_failing(false);
    clock.advance(Duration::from_secs(2)); // past the 1 s retry backoff
    send(&app, &token).await.assert_ok("u1");
    assert_eq!(idp.fetches(), 1);
}

#[tokio::test]
async fn mock_issuer_serves_discovery_and_jwks() {
    let idp = MockIssuer::start_with(vec![
        TestKey::rs256().with_kid("a"),
        TestKey::es384().with_kid("b"),
    ])
    .await;
    let issuer = idp.issuer();
    assert!(issuer.starts_with("http://127.0.0.1:"), "{issuer}");
    assert!(!issuer.ends_with('/'));
    assert_eq!(idp.jwks_url(), format!("{issuer}/jwks"));
    assert_eq!(idp.key().kid(), Some("b"), "the last key signs");

    let (status, body) = http_get(&issuer, "/.well-known/openid-configuration").await;
    assert_eq!(status, 200);
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["issuer"], issuer.as_str());
    assert_eq!(doc["jwks_uri"], idp.jwks_url().as_str());

    let (status, body) = http_get(&issuer, "/jwks").await;
    assert_eq!(status, 200);
    let set: serde_json::Value = serde_json::from_str(&body).unwrap();
    let keys = set["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0], TestKey::rs256().with_kid("a").jwk());
    assert_eq!(keys[1]["kid"], "b");
    assert_eq!(keys[1]["kty"], "EC");
    assert!(keys[1].get("d").is_none(), "no private part is published");

    let (status, _) = http_get(&issuer, "/other").await;
    assert_eq!(status, 404);
    assert_eq!(idp.fetches(), 1);
    assert_eq!(idp.discovery_fetches(), 1);
}

#[tokio::test]
async fn mock_issuer_stops_when_dropped() {
    let idp = MockIssuer::start().await;
    let addr = idp.issuer().trim_start_matches("http://").to_owned();
    let (status, _) = http_get(&idp.issuer(), "/jwks").await;
    assert_eq!(status, 200);
    drop(idp);

    // The abort takes effect when the runtime next polls the task.
    let mut refused = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        if std::net::TcpStream::connect(&addr).is_err() {
            refused = true;
            break;
        }
    }
    assert!(refused, "the listener on {addr} is still open");
}

// ---------------------------------------------------------------------------------------------
// One-line minting with every TestKey type, locally and through the mock issuer
// ---------------------------------------------------------------------------------------------

/// Mints `key`'s token in one line and checks that the handler accepts it, first with the
/// key's local verification keys, then published by a mock issuer (HMAC keys: refused there).
async fn accepts_one_line_token(key: TestKey) {
    let iss = "https://issuer.test";
    let local = AuthConfig::builder()
        .keys(key.keys())
        .issuer(iss)
        .audience(AUD)
        .build()
        .unwrap();
    let token = key
        .token()
        .issuer(iss)
        .audience(AUD)
        .subject("local")
        .sign();
    send(&app_with(local), &token).await.assert_ok("local");

    let alg = key.algorithm();
    let hmac = matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512);
    let idp = MockIssuer::start_with(vec![key]).await;
    let token = idp.token().audience(AUD).subject("remote").sign();
    let reply = send(&app(idp.keys()), &token).await;
    if hmac {
        // A published key set never yields a symmetric key: the mock's only key is skipped,
        // so no keys can be loaded.
        assert_eq!(
            reply.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            reply.body
        );
        assert_eq!(reply.reason(), Some(Reason::KeysUnavailable));
        return;
    }
    reply.assert_ok("remote");
    let header: serde_json::Value = {
        use base64::Engine;
        let part = token.split('.').next().unwrap();
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap();
        serde_json::from_slice(&raw).unwrap()
    };
    assert_eq!(header["alg"], format!("{alg:?}"));
    assert_eq!(header["kid"], "k");
}

#[tokio::test]
async fn one_line_token_hs256() {
    accepts_one_line_token(TestKey::hs256().with_kid("k")).await;
}

#[tokio::test]
async fn one_line_token_hs512() {
    accepts_one_line_token(TestKey::hmac(Algorithm::HS512, [7u8; 64]).with_kid("k")).await;
}

#[tokio::test]
async fn one_line_token_rs256() {
    accepts_one_line_token(TestKey::rs256().with_kid("k")).await;
}

#[tokio::test]
async fn one_line_token_ps256() {
    accepts_one_line_token(TestKey::rsa(Algorithm::PS256).with_kid("k")).await;
}

#[tokio::test]
async fn one_line_token_es256() {
    accepts_one_line_token(TestKey::es256().with_kid("k")).await;
}

#[tokio::test]
async fn one_line_token_es384() {
    accepts_one_line_token(TestKey::es384().with_kid("k")).await;
}

#[tokio::test]
async fn one_line_token_ed25519() {
    accepts_one_line_token(TestKey::ed25519().with_kid("k")).await;
}
