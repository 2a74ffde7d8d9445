//! Helpers shared by several modules of the suite (each was defined, identically, in more than
//! one test file before the files became one binary).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::response::Response;
use axum::{body::Body, routing::get, Router};
use http::header::WWW_AUTHENTICATE;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use tower::{Service, ServiceExt};
use tower_token_auth::{AuthConfig, AuthError, Claims, Reason, StandardClaims, TokenAuthLayer};

/// The HS256 key, issuer and audience of the layer-mode, extractor, responder, plain-service
/// and token-source tests.
pub(crate) mod hs {
    use std::time::Duration;

    use tower_token_auth::testing::TestKey;
    use tower_token_auth::{Algorithm, AuthConfig, AuthConfigBuilder};

    pub(crate) const ISS: &str = "https://issuer.test";
    pub(crate) const AUD: &str = "api";
    pub(crate) const SECRET: &[u8; 32] = b"0123456789abcdef0123456789abcdef";

    pub(crate) fn key() -> TestKey {
        TestKey::hmac(Algorithm::HS256, SECRET.to_vec()).with_kid("k1")
    }

    /// A valid token for `sub`.
    pub(crate) fn token(sub: &str) -> String {
        key().token().issuer(ISS).audience(AUD).subject(sub).sign()
    }

    /// A correctly signed token that expired ten minutes ago.
    pub(crate) fn expired_token() -> String {
        key()
            .token()
            .issuer(ISS)
            .audience(AUD)
            .subject("late")
            .expired_for(Duration::from_secs(600))
            .sign()
    }

    /// The configuration these tests start from: [`key`], [`ISS`], [`AUD`], realm `api`.
    pub(crate) fn base() -> AuthConfigBuilder {
        AuthConfig::builder()
            .keys(key().keys())
            .issuer(ISS)
            .audience(AUD)
            .realm("api")
    }

    /// [`base`], built.
    pub(crate) fn cfg() -> AuthConfig {
        base().build().unwrap()
    }
}

/// `GET /` with `Authorization: Bearer <token>`.
pub(crate) fn bearer(token: &str) -> Request<Body> {
    Request::get("/")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap()
}

/// `GET /` without credentials.
pub(crate) fn anonymous() -> Request<Body> {
    Request::get("/").body(Body::empty()).unwrap()
}

/// A router whose only route, `/`, answers `ok`, behind the layer.
pub(crate) fn ok_app(cfg: AuthConfig) -> Router {
    Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(TokenAuthLayer::new(cfg))
}

/// Sends `token` to `app` as a bearer token: the status and the reason of the rejection, if any.
pub(crate) async fn status_and_reason(app: &Router, token: &str) -> (StatusCode, Option<Reason>) {
    let res = app.clone().oneshot(bearer(token)).await.unwrap();
    let reason = res.extensions().get::<AuthError>().map(AuthError::reason);
    (res.status(), reason)
}

/// A response, read: status, headers, the `AuthError` of a rejection and the body.
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) error: Option<AuthError>,
    pub(crate) body: String,
}

impl Reply {
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.body))
    }

    pub(crate) fn err(&self) -> &AuthError {
        self.error
            .as_ref()
            .expect("the rejection response carries the AuthError in its extensions")
    }

    pub(crate) fn www_authenticate(&self) -> Option<&str> {
        self.headers
            .get(WWW_AUTHENTICATE)
            .map(|v| v.to_str().unwrap())
    }

    /// Rejected with this reason: status, error in extensions, `reason` in the JSON body.
    pub(crate) fn assert_rejected(&self, reason: Reason) {
        assert_eq!(self.status, reason.status(), "body: {}", self.body);
        assert_eq!(self.err().reason(), reason, "{:?}", self.err());
        assert_eq!(self.json()["reason"], reason.code());
    }
}

/// Sends `req` through `svc` and reads the response.
pub(crate) async fn send<S>(svc: S, req: Request<Body>) -> Reply
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

pub(crate) fn counter() -> Arc<AtomicUsize> {
    Arc::new(AtomicUsize::new(0))
}

/// A router whose handler requires `Claims<StandardClaims>` and counts its calls.
pub(crate) fn required_app(layer: TokenAuthLayer, calls: Arc<AtomicUsize>) -> Router {
    Router::new()
        .route(
            "/",
            get(move |c: Claims<StandardClaims>| async move {
                calls.fetch_add(1, Ordering::SeqCst);
                c.sub.clone().unwrap_or_default()
            }),
        )
        .layer(layer)
}

/// A router whose handler takes `Option<Claims<StandardClaims>>` and counts its calls.
pub(crate) fn optional_app(layer: TokenAuthLayer, calls: Arc<AtomicUsize>) -> Router {
    Router::new()
        .route(
            "/",
            get(move |c: Option<Claims<StandardClaims>>| async move {
                calls.fetch_add(1, Ordering::SeqCst);
                match c {
                    Some(c) => format!("some:{}", c.sub.clone().unwrap_or_default()),
                    None => "none".to_owned(),
                }
            }),
        )
        .layer(layer)
}

/// The executable of the example `name`, built on first use with `cargo build --example name`
/// (the same features as this test when it runs with `--all-features`, so the build is usually
/// fresh) and found through cargo's JSON messages.
pub(crate) fn example_exe(name: &str) -> PathBuf {
    static BUILT: Mutex<BTreeMap<String, PathBuf>> = Mutex::new(BTreeMap::new());
    // Held during the build: tests of the same example wait for one build.
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(exe) = built.get(name) {
        return exe.clone();
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(env!("CARGO_MANIFEST_DIR")).args([
        "build",
        "--quiet",
        "--example",
        name,
        "--message-format=json",
    ]);
    // `rust-crypto` is off by default: with it on, this test runs with `--all-features`.
    if cfg!(feature = "rust-crypto") {
        cmd.arg("--all-features");
    }
    if !cfg!(debug_assertions) {
        cmd.arg("--release");
    }
    let out = cmd.stderr(Stdio::inherit()).output().expect("cargo runs");
    assert!(out.status.success(), "cargo build --example {name} failed");
    let exe = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| {
            m["reason"] == "compiler-artifact"
                && m["target"]["name"] == name
                && m["target"]["kind"][0] == "example"
        })
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .unwrap_or_else(|| panic!("cargo names the {name} executable"));
    built.insert(name.to_owned(), exe.clone());
    exe
}
