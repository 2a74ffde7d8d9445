//! Remote keys (feature `remote`) against a fault-injecting JWKS / OpenID Connect provider: an
//! axum app on 127.0.0.1 whose behaviour each test switches at run time (serve a key set with
//! or without `Cache-Control: max-age`, rotate keys, be down, hang, answer 500, garbage, a
//! huge body or an empty set) and which counts every fetch. Times (TTL, stale bound,
//! cool-down) are driven by a `ManualClock`; only fetch timeouts are real time.
//!
//! TTLs carry ±10 % jitter, so the clock steps below are chosen to hold for any jitter: with
//! the default TTL of 600 s a refresh is due at 432..=528 s and the keys expire at 540..=660 s.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use http::header::{
    HeaderValue, CACHE_CONTROL, CONNECTION, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE,
};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use tokio::net::{TcpListener, TcpStream};
use tower::util::ServiceFn;
use tower::{service_fn, Layer, Service, ServiceExt};
use tower_token_auth::clock::{Clock, ManualClock};
use tower_token_auth::keys::remote::Remote;
use tower_token_auth::testing::TestKey;
use tower_token_auth::{
    AuthConfig, AuthError, Claims, ConfigError, DefaultResponder, Issuer, Keys, Reason,
    StandardClaims, TokenAuth, TokenAuthLayer,
};

use crate::common::bearer;

const ISS: &str = "https://issuer.test";
const AUD: &str = "api";
/// Start of every manual clock: 2023-11-14T22:13:20Z.
const T0: i64 = 1_700_000_000;
/// `Retry-After` of a 503: when the next fetch will really be tried. Requests with no usable
/// keys try at most once per clock second, and the clocks here stand still between steps, so
/// the next attempt is always 1 s away.
const RETRY_AFTER_SECS: &str = "1";

// ---------------------------------------------------------------------------------------------
// The fault-injecting provider
// ---------------------------------------------------------------------------------------------

/// What the provider does with the next JWKS request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Serves the published set (with `Cache-Control: max-age` when one is set).
    Serve,
    /// Answers 500.
    Status500,
    /// Answers 200 with a body that is not JSON.
    Garbage,
    /// Answers 200 with the published set padded to 2 MiB (> the 1 MiB default limit), with
    /// `Content-Length`.
    Huge,
    /// Same as `Huge`, streamed (chunked, no `Content-Length`).
    HugeChunked,
    /// Answers 200 with `{"keys": []}`.
    Empty,
    /// Sleeps a minute before answering (far longer than any fetch timeout here).
    Hang,
    /// Answers 404 (the key set moved away).
    NotFound,
    /// Closes every connection at accept, before reading the request.
    Down,
}

/// Shared state of one provider; the test switches it while the server runs.
struct Provider {
    base: String,
    mode: Mutex<Mode>,
    jwks: Mutex<String>,
    max_age: Mutex<Option<u64>>,
    /// Real-time delay before every JWKS answer (`/jwks` and `/jwks2`).
    delay: Mutex<Duration>,
    /// The set served at `/jwks2`, a second location discovery can point to.
    jwks2: Mutex<String>,
    /// Path of the `jwks_uri` named by the discovery document (default `/jwks`).
    jwks_path: Mutex<&'static str>,
    /// `issuer` named by the discovery document (default: the provider's own base URL).
    discovery_issuer: Mutex<Option<String>>,
    /// JWKS requests that reached the handler.
    jwks_hits: AtomicUsize,
    /// Requests to `/jwks2` that reached the handler.
    jwks2_hits: AtomicUsize,
    /// Discovery requests that reached the handler.
    discovery_hits: AtomicUsize,
    /// Connections closed at accept (mode `Down`).
    dropped: AtomicUsize,
}

impl Provider {
    fn mode(&self) -> Mode {
        *self.mode.lock().unwrap()
    }
}

/// A running provider.
struct Server {
    provider: Arc<Provider>,
}

impl Server {
    async fn start(jwks: String) -> Server {
        Server::start_at("127.0.0.1:0".parse().unwrap(), jwks).await
    }

    async fn start_at(addr: SocketAddr, jwks: String) -> Server {
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let provider = Arc::new(Provider {
            base: format!("http://{addr}"),
            mode: Mutex::new(Mode::Serve),
            jwks: Mutex::new(jwks),
            max_age: Mutex::new(None),
            delay: Mutex::new(Duration::ZERO),
            jwks2: Mutex::new(r#"{"keys":[]}"#.to_owned()),
            jwks_path: Mutex::new("/jwks"),
            discovery_issuer: Mutex::new(None),
            jwks_hits: AtomicUsize::new(0),
            jwks2_hits: AtomicUsize::new(0),
            discovery_hits: AtomicUsize::new(0),
            dropped: AtomicUsize::new(0),
        });
        let app = Router::new()
            .route("/jwks", get(serve_jwks))
            .route("/jwks2", get(serve_jwks2))
            .route("/.well-known/openid-configuration", get(serve_discovery))
            .with_state(Arc::clone(&provider));
        let gate = Gate {
            listener,
            provider: Arc::clone(&provider),
        };
        tokio::spawn(async move {
            let _ = axum::serve(gate, app).await;
        });
        Server { provider }
    }

    /// The issuer URL for discovery (`{base}/.well-known/openid-configuration`).
    fn base(&self) -> String {
        self.provider.base.clone()
    }

    fn jwks_url(&self) -> String {
        format!("{}/jwks", self.provider.base)
    }

    fn set_mode(&self, mode: Mode) {
        *self.provider.mode.lock().unwrap() = mode;
    }

    fn publish(&self, jwks: String) {
        *self.provider.jwks.lock().unwrap() = jwks;
    }

    fn set_max_age(&self, secs: Option<u64>) {
        *self.provider.max_age.lock().unwrap() = secs;
    }

    fn set_discovery_issuer(&self, issuer: &str) {
        *self.provider.discovery_issuer.lock().unwrap() = Some(issuer.to_owned());
    }

    /// Every JWKS answer from now on comes after `delay` (real time).
    fn set_delay(&self, delay: Duration) {
        *self.provider.delay.lock().unwrap() = delay;
    }

    /// Serves `jwks` at `/jwks2` (always, whatever the mode).
    fn publish_at_jwks2(&self, jwks: String) {
        *self.provider.jwks2.lock().unwrap() = jwks;
    }

    /// Makes discovery name `{base}{path}` as the `jwks_uri` (the key set moved).
    fn set_discovered_jwks_path(&self, path: &'static str) {
        *self.provider.jwks_path.lock().unwrap() = path;
    }

    fn jwks2_hits(&self) -> usize {
        self.provider.jwks2_hits.load(Ordering::SeqCst)
    }

    /// JWKS requests answered (or being answered) by the handler.
    fn jwks_hits(&self) -> usize {
        self.provider.jwks_hits.load(Ordering::SeqCst)
    }

    fn discovery_hits(&self) -> usize {
        self.provider.discovery_hits.load(Ordering::SeqCst)
    }

    /// Every fetch attempt that reached the provider: handled JWKS requests plus connections
    /// closed at accept while `Down` (only JWKS is fetched in the tests that go down).
    fn attempts(&self) -> usize {
        self.jwks_hits() + self.provider.dropped.load(Ordering::SeqCst)
    }
}

/// A TCP listener that closes connections at accept while the provider is `Down`.
struct Gate {
    listener: TcpListener,
    provider: Arc<Provider>,
}

impl axum::serve::Listener for Gate {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        loop {
            let Ok((stream, addr)) = self.listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            };
            if self.provider.mode() == Mode::Down {
                self.provider.dropped.fetch_add(1, Ordering::SeqCst);
                drop(stream);
                continue;
            }
            return (stream, addr);
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

/// A JSON response. `Connection: close` on every answer, so each fetch opens a new connection
/// and `Down` takes effect at once (no pooled connection survives it).
fn answer(status: StatusCode, body: Body, max_age: Option<u64>) -> Response {
    let mut res = Response::new(body);
    *res.status_mut() = status;
    let headers = res.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CONNECTION, HeaderValue::from_static("close"));
    if let Some(age) = max_age {
        headers.insert(
            CACHE_CONTROL,
            HeaderValue::from_str(&format!("public, max-age={age}")).unwrap(),
        );
    }
    res
}

const HUGE_PADDING: usize = 2 * 1024 * 1024;

async fn serve_jwks(State(p): State<Arc<Provider>>) -> Response {
    p.jwks_hits.fetch_add(1, Ordering::SeqCst);
    let delay = *p.delay.lock().unwrap();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let jwks = p.jwks.lock().unwrap().clone();
    let max_age = *p.max_age.lock().unwrap();
    match p.mode() {
        Mode::Serve | Mode::Down => answer(StatusCode::OK, Body::from(jwks), max_age),
        Mode::Status500 => answer(
            StatusCode::INTERNAL_SERVER_ERROR,
            Body::from(r#"{"error":"boom"}"#),
            None,
        ),
        Mode::Garbage => answer(
            StatusCode::OK,
            Body::from("<html><body>502 Bad Gateway</body></html>"),
            None,
        ),
        Mode::Huge => {
            // A valid key set followed by 2 MiB of JSON whitespace: only the size limit can
            // refuse it.
            let body = jwks + &" ".repeat(HUGE_PADDING);
            answer(StatusCode::OK, Body::from(body), None)
        }
        Mode::HugeChunked => {
            let body = jwks + &" ".repeat(HUGE_PADDING);
            let streamed = Body::from_stream(Body::from(body).into_data_stream());
            answer(StatusCode::OK, streamed, None)
        }
        Mode::Empty => answer(StatusCode::OK, Body::from(r#"{"keys":[]}"#), None),
        Mode::Hang => {
            tokio::time::sleep(Duration::from_secs(60)).await;
            answer(StatusCode::OK, Body::from(jwks), None)
        }
        Mode::NotFound => answer(StatusCode::NOT_FOUND, Body::from(r#"{}"#), None),
    }
}

/// The second location: always serves its own set (with the delay and max-age).
async fn serve_jwks2(State(p): State<Arc<Provider>>) -> Response {
    p.jwks2_hits.fetch_add(1, Ordering::SeqCst);
    let delay = *p.delay.lock().unwrap();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let jwks = p.jwks2.lock().unwrap().clone();
    let max_age = *p.max_age.lock().unwrap();
    answer(StatusCode::OK, Body::from(jwks), max_age)
}

async fn serve_discovery(State(p): State<Arc<Provider>>) -> Response {
    p.discovery_hits.fetch_add(1, Ordering::SeqCst);
    let issuer = p
        .discovery_issuer
        .lock()
        .unwrap()
        .clone()
        .unwrap_or_else(|| p.base.clone());
    let path = *p.jwks_path.lock().unwrap();
    let doc = serde_json::json!({
        "issuer": issuer,
        "jwks_uri": format!("{}{path}", p.base),
        "id_token_signing_alg_values_supported": ["ES256"],
    });
    answer(StatusCode::OK, Body::from(doc.to_string()), None)
}

/// An address on 127.0.0.1 where nothing listens (yet).
async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

// ---------------------------------------------------------------------------------------------
// The protected app and its replies
// ---------------------------------------------------------------------------------------------

fn app(cfg: AuthConfig) -> Router {
    Router::new()
        .route(
            "/",
            get(|c: Claims<StandardClaims>| async move { c.sub.clone().unwrap_or_default() }),
        )
        .layer(TokenAuthLayer::new(cfg))
}

fn cfg_with(remote: Remote, clock: &ManualClock) -> AuthConfig {
    AuthConfig::builder()
        .keys(Keys::remote(remote.allow_http()))
        .issuer(ISS)
        .audience(AUD)
        .clock(clock.clone())
        .build()
        .unwrap()
}

fn cfg_for(server: &Server, clock: &ManualClock) -> AuthConfig {
    cfg_with(Remote::jwks_url(server.jwks_url()), clock)
}

/// A valid token (iss ISS, aud AUD, sub alice) minted at the clock's now, valid 5 minutes.
fn token(key: &TestKey, clock: &ManualClock) -> String {
    key.token_at(clock.now())
        .issuer(ISS)
        .audience(AUD)
        .subject("alice")
        .sign()
}

/// A set of the given keys, as the provider publishes it.
fn jwks(keys: &[&TestKey]) -> String {
    TestKey::jwks(keys)
}

struct Reply {
    status: StatusCode,
    retry_after: Option<String>,
    www_authenticate: Option<String>,
    error: Option<AuthError>,
    body: String,
    elapsed: Duration,
}

impl Reply {
    fn reason(&self) -> Option<Reason> {
        self.error.as_ref().map(AuthError::reason)
    }

    #[track_caller]
    fn assert_ok(&self) {
        assert_eq!(
            self.status,
            StatusCode::OK,
            "expected 200, got {} ({:?}): {}",
            self.status,
            self.reason(),
            self.body
        );
        assert_eq!(self.body, "alice");
        assert!(self.error.is_none());
    }

    #[track_caller]
    fn assert_rejected(&self, reason: Reason) {
        assert_eq!(
            self.reason(),
            Some(reason),
            "status {}: {}",
            self.status,
            self.body
        );
        assert_eq!(self.status, StatusCode::UNAUTHORIZED);
        let expected = format!(
            "Bearer error=\"invalid_token\", error_description=\"{}\"",
            reason.description()
        );
        assert_eq!(self.www_authenticate.as_deref(), Some(expected.as_str()));
        assert!(self.retry_after.is_none());
        let body: serde_json::Value = serde_json::from_str(&self.body).unwrap();
        assert_eq!(body["reason"], reason.code());
        assert_eq!(body["status"], 401);
    }

    /// 503 `keys_unavailable` with `Retry-After: 1`, no challenge, a problem body.
    #[track_caller]
    fn assert_unavailable(&self) {
        assert_eq!(
            self.reason(),
            Some(Reason::KeysUnavailable),
            "status {}: {}",
            self.status,
            self.body
        );
        assert_eq!(self.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(self.retry_after.as_deref(), Some(RETRY_AFTER_SECS));
        assert_eq!(self.www_authenticate, None);
        let body: serde_json::Value = serde_json::from_str(&self.body).unwrap();
        assert_eq!(body["reason"], "keys_unavailable");
        assert_eq!(body["status"], 503);
        assert!(body.get("error").is_none(), "{body}");
    }
}

async fn send(app: Router, token: &str) -> Reply {
    let started = Instant::now();
    let res = app.oneshot(bearer(token)).await.unwrap();
    reply(res, started.elapsed()).await
}

async fn reply(res: Response, elapsed: Duration) -> Reply {
    let (parts, body) = res.into_parts();
    let header = |name| {
        parts
            .headers
            .get(name)
            .map(|v: &HeaderValue| v.to_str().unwrap().to_owned())
    };
    let status = parts.status;
    let retry_after = header(RETRY_AFTER);
    let www_authenticate = header(WWW_AUTHENTICATE);
    let error = parts.extensions.get::<AuthError>().cloned();
    let body = body.collect().await.unwrap().to_bytes();
    Reply {
        status,
        retry_after,
        www_authenticate,
        error,
        body: String::from_utf8(body.to_vec()).unwrap(),
        elapsed,
    }
}

/// Sends every token at once (one task each) and returns the replies in order.
async fn send_all(app: &Router, tokens: Vec<String>) -> Vec<Reply> {
    let tasks: Vec<_> = tokens
        .into_iter()
        .map(|t| {
            let app = app.clone();
            tokio::spawn(async move { send(app, &t).await })
        })
        .collect();
    let mut replies = Vec::with_capacity(tasks.len());
    for task in tasks {
        replies.push(task.await.unwrap());
    }
    replies
}

/// Waits (real time, at most 5 s) until `cond` holds, then lets the finishing task settle.
async fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // The refresh task has no await point left after its counter moves; give it a moment to
    // clear its "refreshing" flag.
    tokio::time::sleep(Duration::from_millis(20)).await;
}

fn status(cfg: &AuthConfig) -> tower_token_auth::KeyStatus {
    let mut all = cfg.key_status();
    assert_eq!(all.len(), 1, "one remote source expected");
    all.remove(0)
}

// ---------------------------------------------------------------------------------------------
// 1. JWKS URL
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn jwks_url_key_verifies_through_layer_and_validate() {
    let key = TestKey::es256().with_kid("a");
    let server = Server::start(jwks(&[&key])).await;
    let clock = ManualClock::at(T0);
    let cfg = cfg_for(&server, &clock);
    assert!(!cfg.is_ready(), "nothing fetched before the first use");
    assert_eq!(server.jwks_hits(), 0, "building the config fetches nothing");

    let reply = send(app(cfg.clone()), &token(&key, &clock)).await;
    reply.assert_ok();

    let claims: StandardClaims = cfg.validate(&token(&key, &clock)).await.unwrap();
    assert_eq!(claims.sub.as_deref(), Some("alice"));
    assert_eq!(claims.iss.as_deref(), Some(ISS));

    let st = status(&cfg);
    assert!(st.ready);
    assert!(cfg.is_ready());
    assert_eq!(st.source, server.jwks_url());
    assert_eq!(st.keys, 1);
    assert_eq!(st.age_secs, Some(0));
    assert!(!st.stale);
    assert_eq!(st.fetch_ok, 1);
    assert_eq!(st.fetch_error, 0);
    assert_eq!(st.unknown_kid_refetch, 0);
    assert_eq!(st.stale_served, 0);
    assert_eq!(server.jwks_hits(), 1, "one fetch for both checks");
}

// ---------------------------------------------------------------------------------------------
// 2. OpenID Connect discovery
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn oidc_discovery_defaults_the_issuer() {
    let key = TestKey::es256().with_kid("a");
    let server = Server::start(jwks(&[&key])).await;
    let issuer = server.base();
    let clock = ManualClock::at(T0);
    // No `.issuer(..)`: the OIDC issuer is the accepted `iss`.
    let cfg = AuthConfig::builder()
        .keys(Keys::remote(Remote::oidc(issuer.clone()).allow_http()))
        .audience(AUD)
        .clock(clock.clone())
        .build()
        .unwrap();
    let app = app(cfg.clone());

    let tok = |iss: &str| {
        key.token_at(clock.now())
            .issuer(iss)
            .audience(AUD)
            .subject("alice")
            .sign()
    };
    send(app.clone(), &tok(&issuer)).await.assert_ok();
    assert_eq!(server.discovery_hits(), 1);
    assert_eq!(server.jwks_hits(), 1);
    assert_eq!(status(&cfg).source, issuer);

    // Another `iss`, signed by the right key: the discovered issuer is the only one accepted.
    let reply = send(app.clone(), &tok("https://other.test")).await;
    reply.assert_rejected(Reason::WrongIssuer);
    assert_eq!(
        reply.error.as_ref().unwrap().facts().expected_issuers,
        vec![issuer.clone()]
    );
    assert_eq!(server.discovery_hits(), 1, "discovery is not repeated");
    assert_eq!(server.jwks_hits(), 1);
}

#[tokio::test]
async fn oidc_discovery_naming_another_issuer_is_keys_unavailable() {
    let key = TestKey::es256().with_kid("a");
    let server = Server::start(jwks(&[&key])).await;
    server.set_discovery_issuer("https://evil.test");
    let issuer = server.base();
    let clock = ManualClock::at(T0);
    let cfg = AuthConfig::builder()
        .keys(Keys::remote(Remote::oidc(issuer.clone()).allow_http()))
        .audience(AUD)
        .clock(clock.clone())
        .build()
        .unwrap();
    let tok = key
        .token_at(clock.now())
        .issuer(&issuer)
        .audience(AUD)
        .subject("alice")
        .sign();

    let reply = send(app(cfg.clone()), &tok).await;
    reply.assert_unavailable();
    assert_eq!(server.discovery_hits(), 1);
    assert_eq!(
        server.jwks_hits(),
        0,
        "the JWKS of a mismatched issuer is never fetched"
    );
    let st = status(&cfg);
    assert!(!st.ready);
    assert_eq!((st.fetch_ok, st.fetch_error), (0, 1));

    // Outside HTTP too: keys_unavailable, never a token error.
    let err = cfg.validate::<StandardClaims>(&tok).await.unwrap_err();
    assert_eq!(err.reason(), Reason::KeysUnavailable);
    assert_eq!(err.status(), StatusCode::SERVICE_UNAVAILABLE);
}

// ---------------------------------------------------------------------------------------------
// 3. Options checked at build
// ---------------------------------------------------------------------------------------------

#[test]
fn http_urls_need_allow_http() {
    let build = |keys: Keys| {
        AuthConfig::builder()
            .keys(keys)
            .issuer(ISS)
            .audience(AUD)
            .build()
            .unwrap_err()
    };
    assert_eq!(
        build(Keys::jwks_url("http://127.0.0.1:1/jwks")),
        ConfigError::InsecureUrl("JWKS URL")
    );
    assert_eq!(
        build(Keys::remote_oidc("http://127.0.0.1:1")),
        ConfigError::InsecureUrl("OIDC issuer URL")
    );
    assert_eq!(
        build(Keys::remote(
            Remote::jwks_url("ftp://127.0.0.1/jwks").allow_http()
        )),
        ConfigError::InsecureUrl("JWKS URL")
    );
    // With allow_http the same URL builds (and nothing is fetched: port 1 is never asked).
    AuthConfig::builder()
        .keys(Keys::remote(
            Remote::jwks_url("http://127.0.0.1:1/jwks").allow_http(),
        ))
        .issuer(ISS)
        .audience(AUD)
        .build()
        .unwrap();
}

#[test]
fn remote_options_are_checked_at_build() {
    let build = |keys: Keys| {
        AuthConfig::builder()
            .keys(keys)
            .issuer(ISS)
            .audience(AUD)
            .build()
            .unwrap_err()
    };
    assert_eq!(
        build(Keys::jwks_url("https://")),
        ConfigError::InvalidUrl("JWKS URL")
    );
    assert_eq!(
        build(Keys::remote(
            Remote::jwks_url("https://idp.test/jwks").fetch_timeout(Duration::ZERO)
        )),
        ConfigError::InvalidRemoteOption
    );
    assert_eq!(
        build(Keys::remote(
            Remote::jwks_url("https://idp.test/jwks")
                .ttl_bounds(Duration::from_secs(600), Duration::from_secs(60))
        )),
        ConfigError::InvalidRemoteOption
    );
    assert_eq!(
        build(Keys::jwks_url("https://idp.test/jwks").and(TestKey::es256().keys())),
        ConfigError::RemoteMixed
    );
}

// ---------------------------------------------------------------------------------------------
// 4. Unknown-kid flood
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unknown_kid_flood_costs_one_refetch_per_cooldown() {
    let key_a = TestKey::es256().with_kid("a");
    let server = Server::start(jwks(&[&key_a])).await;
    let clock = ManualClock::at(T0);
    let cfg = cfg_for(&server, &clock);
    cfg.warm_up().await.unwrap();
    assert_eq!(server.jwks_hits(), 1);
    let app = app(cfg.clone());

    // 2,000 tokens with kids the provider never published, signed by a key of the right
    // algorithm (so each one reaches the key lookup).
    let ghosts: Vec<String> = (1..=2000)
        .map(|i| token(&TestKey::es256().with_kid(format!("ghost-{i}")), &clock))
        .collect();
    let started = Instant::now();
    let replies = send_all(&app, ghosts).await;
    let took = started.elapsed();
    assert_eq!(replies.len(), 2000);
    for reply in &replies {
        reply.assert_rejected(Reason::UnknownKey);
    }
    assert_eq!(
        server.jwks_hits(),
        2,
        "initial fetch + exactly one unknown-kid refetch for 2,000 unknown kids"
    );
    let st = status(&cfg);
    assert_eq!(st.unknown_kid_refetch, 1);
    assert_eq!((st.fetch_ok, st.fetch_error), (2, 0));
    assert!(took < Duration::from_secs(10), "flood took {took:?}");

    // The known key still works during the cool-down, without a fetch.
    send(app.clone(), &token(&key_a, &clock)).await.assert_ok();
    // Still in the cool-down (29 s later): another unknown kid costs nothing.
    clock.advance(Duration::from_secs(29));
    let ghost = token(&TestKey::es256().with_kid("ghost-late"), &clock);
    send(app.clone(), &ghost)
        .await
        .assert_rejected(Reason::UnknownKey);
    assert_eq!(server.jwks_hits(), 2);

    // Past the 30 s cool-down: one more unknown kid, exactly one more fetch.
    clock.advance(Duration::from_secs(2));
    let ghost = token(&TestKey::es256().with_kid("ghost-2001"), &clock);
    send(app.clone(), &ghost)
        .await
        .assert_rejected(Reason::UnknownKey);
    assert_eq!(server.jwks_hits(), 3);
    let ghost = token(&TestKey::es256().with_kid("ghost-2002"), &clock);
    send(app.clone(), &ghost)
        .await
        .assert_rejected(Reason::UnknownKey);
    assert_eq!(server.jwks_hits(), 3, "the new cool-down holds");
    assert_eq!(status(&cfg).unknown_kid_refetch, 2);
}

// ---------------------------------------------------------------------------------------------
// 5. Rotation
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rotated_key_passes_on_first_try_and_removed_key_stops() {
    // Two kids of one algorithm, so a removed key's token fails on its kid (not on its
    // algorithm). (Remote sets never hold `oct` keys.)
    let key_a = TestKey::es256().with_kid("a");
    let key_b = TestKey::es256().with_kid("b");
    let server = Server::start(jwks(&[&key_a])).await;
    let clock = ManualClock::at(T0);
    let cfg = cfg_for(&server, &clock);
    let app = app(cfg.clone());

    send(app.clone(), &token(&key_a, &clock)).await.assert_ok();
    assert_eq!(server.jwks_hits(), 1);

    // The provider rotates: only B from now on. 200 requests with B tokens arrive at once,
    // each one the first B token its client ever sent.
    server.publish(jwks(&[&key_b]));
    let tokens: Vec<String> = (0..200).map(|_| token(&key_b, &clock)).collect();
    let replies = send_all(&app, tokens).await;
    let rejected = failures(&replies);
    assert!(
        rejected.is_empty(),
        "{} of 200 valid new-key tokens rejected: {:?}",
        rejected.len(),
        &rejected[..rejected.len().min(5)]
    );
    for reply in &replies {
        reply.assert_ok();
    }
    assert_eq!(server.jwks_hits(), 2, "one refetch for the new kid");
    assert_eq!(status(&cfg).unknown_kid_refetch, 1);

    // That refetch was the next refresh: A, no longer published, stops verifying at once
    // (no further fetch: the cool-down holds).
    send(app.clone(), &token(&key_a, &clock))
        .await
        .assert_rejected(Reason::UnknownKey);
    assert_eq!(server.jwks_hits(), 2);
    send(app.clone(), &token(&key_b, &clock)).await.assert_ok();
}

#[tokio::test]
async fn removed_key_stops_after_background_refresh() {
    let key_a = TestKey::es256().with_kid("a");
    let key_b = TestKey::es256().with_kid("b");
    let server = Server::start(jwks(&[&key_a, &key_b])).await;
    let clock = ManualClock::at(T0);
    let cfg = cfg_for(&server, &clock);
    cfg.warm_up().await.unwrap();
    let app = app(cfg.clone());
    send(app.clone(), &token(&key_a, &clock)).await.assert_ok();

    server.publish(jwks(&[&key_b]));
    // 530 s: past the refresh point (80 % of a TTL of 600 s ± 10 %: at most 528 s) and before
    // expiry (at least 540 s). The request that sees it uses the current set and starts the
    // refresh in the background.
    clock.set(T0 + 530);
    send(app.clone(), &token(&key_a, &clock)).await.assert_ok();
    wait_until("the background refresh", || status(&cfg).fetch_ok == 2).await;
    assert_eq!(server.jwks_hits(), 2);
    assert_eq!(status(&cfg).keys, 1);

    send(app.clone(), &token(&key_a, &clock))
        .await
        .assert_rejected(Reason::UnknownKey);
    send(app.clone(), &token(&key_b, &clock)).await.assert_ok();
}

// ---------------------------------------------------------------------------------------------
// 6. Hanging provider, cold start
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hanging_provider_is_bounded_by_fetch_timeout() {
    let key = TestKey::es256().with_kid("a");
    let server = Server::start(jwks(&[&key])).await;
    server.set_mode(Mode::Hang);
    let clock = ManualClock::at(T0);
    let timeout = Duration::from_millis(300);
    let cfg = cfg_with(
        Remote::jwks_url(server.jwks_url()).fetch_timeout(timeout),
        &clock,
    );
    let app = app(cfg.clone());

    let tokens: Vec<String> = (0..50).map(|_| token(&key, &clock)).collect();
    let started = Instant::now();
    let replies = send_all(&app, tokens).await;
    let wall = started.elapsed();
    for reply in &replies {
        reply.assert_unavailable();
    }
    let slowest = replies.iter().map(|r| r.elapsed).max().unwrap();
    assert!(
        slowest >= Duration::from_millis(250),
        "the fetching request waited for the timeout: {slowest:?}"
    );
    assert!(
        slowest < timeout + Duration::from_millis(1200),
        "slowest {slowest:?}"
    );
    assert!(wall < Duration::from_secs(2), "50 requests took {wall:?}");
    assert_eq!(
        server.jwks_hits(),
        1,
        "clock frozen: one fetch attempt for 50 requests"
    );
    let st = status(&cfg);
    assert!(!st.ready);
    assert_eq!((st.fetch_ok, st.fetch_error), (0, 1));

    // One clock second later: exactly one more attempt.
    clock.advance(Duration::from_secs(1));
    send(app.clone(), &token(&key, &clock))
        .await
        .assert_unavailable();
    send(app.clone(), &token(&key, &clock))
        .await
        .assert_unavailable();
    assert_eq!(server.jwks_hits(), 2);
}

/// Requests that were not rejected, as (status, reason), for failure messages.
fn failures(replies: &[Reply]) -> Vec<(StatusCode, Option<Reason>)> {
    replies
        .iter()
        .filter(|r| r.status != StatusCode::OK)
        .map(|r| (r.status, r.reason()))
        .collect()
}

/// Bursts run per test: a race that loses one request in ten bursts is still caught.
const BURSTS: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cold_start_burst_shares_one_fetch() {
    let key = TestKey::es256().with_kid("a");
    let server = Server::start(jwks(&[&key])).await;
    let clock = ManualClock::at(T0);
    // Keys never loaded, provider up: 200 requests at once all pass on one fetch. Repeated
    // on fresh configurations (each its own key cache).
    for burst in 1..=BURSTS {
        let cfg = cfg_for(&server, &clock);
        let app = app(cfg.clone());
        let tokens: Vec<String> = (0..200).map(|_| token(&key, &clock)).collect();
        let replies = send_all(&app, tokens).await;
        let failed = failures(&replies);
        assert!(
            failed.is_empty(),
            "cold start {burst}: {} of 200 valid requests failed: {:?}",
            failed.len(),
            &failed[..failed.len().min(5)]
        );
        for reply in &replies {
            reply.assert_ok();
        }
        assert_eq!(server.jwks_hits(), burst, "one fetch per cold start");
        assert_eq!(status(&cfg).fetch_ok, 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rotation_bursts_never_reject_new_keys() {
    let keys: Vec<TestKey> = (0..=BURSTS)
        .map(|i| TestKey::es256().with_kid(format!("k{i}")))
        .collect();
    let server = Server::start(jwks(&[&keys[0]])).await;
    let clock = ManualClock::at(T0);
    // A long TTL keeps background refreshes out of the count.
    let cfg = cfg_with(
        Remote::jwks_url(server.jwks_url()).default_ttl(Duration::from_secs(86_400)),
        &clock,
    );
    cfg.warm_up().await.unwrap();
    let app = app(cfg.clone());
    for round in 1..=BURSTS {
        // Past the cool-down, the provider publishes the next key (and keeps the previous).
        clock.advance(Duration::from_secs(31));
        server.publish(jwks(&[&keys[round - 1], &keys[round]]));
        let tokens: Vec<String> = (0..200).map(|_| token(&keys[round], &clock)).collect();
        let replies = send_all(&app, tokens).await;
        let failed = failures(&replies);
        assert!(
            failed.is_empty(),
            "rotation {round}: {} of 200 valid new-key tokens rejected: {:?}",
            failed.len(),
            &failed[..failed.len().min(5)]
        );
        assert_eq!(server.jwks_hits(), 1 + round, "one refetch per rotation");
        assert_eq!(status(&cfg).unknown_kid_refetch, round as u64);
    }
}

/// The layer around a plain tower service (no router), so a test can call the service and
/// poll the response future later, as tower allows.
fn plain_service(cfg: AuthConfig) -> TokenAuth<PlainHandler, StandardClaims, DefaultResponder> {
    TokenAuthLayer::new(cfg).layer(service_fn(plain_handler as fn(_) -> _))
}

type PlainHandler = ServiceFn<fn(Request<Body>) -> PlainFuture>;
type PlainFuture = std::future::Ready<Result<Response, Infallible>>;

fn plain_handler(req: Request<Body>) -> PlainFuture {
    let sub = Claims::<StandardClaims>::from_extensions(req.extensions())
        .and_then(|c| c.sub.clone())
        .unwrap_or_default();
    std::future::ready(Ok(Response::new(Body::from(sub))))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_after_a_claimed_refetch_waits_for_it() {
    // Request X carries the new kid and claims the unknown-kid refetch in `call`; its future
    // is polled a little later (tower allows it; buffers and pipelining do it). Request Y,
    // with the same new kid, arrives in between: the refetch is already decided, so Y must
    // be checked against its result, not rejected.
    let key_a = TestKey::es256().with_kid("a");
    let key_b = TestKey::es256().with_kid("b");
    let server = Server::start(jwks(&[&key_a])).await;
    let clock = ManualClock::at(T0);
    let cfg = cfg_for(&server, &clock);
    cfg.warm_up().await.unwrap();
    server.publish(jwks(&[&key_b]));
    let svc = plain_service(cfg.clone());

    let mut x_svc = svc.clone();
    let x = x_svc
        .ready()
        .await
        .unwrap()
        .call(bearer(&token(&key_b, &clock)));
    let y = tokio::spawn(svc.clone().oneshot(bearer(&token(&key_b, &clock))));
    tokio::time::sleep(Duration::from_millis(50)).await;

    let x = tokio::time::timeout(Duration::from_secs(5), x)
        .await
        .expect("X finishes")
        .unwrap();
    reply(x, Duration::ZERO).await.assert_ok();
    let y = tokio::time::timeout(Duration::from_secs(5), y)
        .await
        .expect("Y finishes")
        .unwrap()
        .unwrap();
    reply(y, Duration::ZERO).await.assert_ok();
    assert_eq!(server.jwks_hits(), 2, "one refetch for both");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_after_a_claimed_first_fetch_waits_for_it() {
    // Same at cold start: X claims the first fetch in `call`; Y arrives before X's future is
    // polled and must not get a 503 for keys that are being fetched.
    let key = TestKey::es256().with_kid("a");
    let server = Server::start(jwks(&[&key])).await;
    let clock = ManualClock::at(T0);
    let cfg = cfg_for(&server, &clock);
    let svc = plain_service(cfg.clone());

    let mut x_svc = svc.clone();
    let x = x_svc
        .ready()
        .await
        .unwrap()
        .call(bearer(&token(&key, &clock)));
    let y = tokio::spawn(svc.clone().oneshot(bearer(&token(&key, &clock))));
    tokio::time::sleep(Duration::from_millis(50)).await;

    let x = tokio::time::timeout(Duration::from_secs(5), x)
        .await
        .expect("X finishes")
        .unwrap();
    reply(x, Duration::ZERO).await.assert_ok();
    let y = tokio::time::timeout(Duration::from_secs(5), y)
        .await
        .expect("Y finishes")
        .unwrap()
        .unwrap();
    reply(y, Duration::ZERO).await.assert_ok();
    assert_eq!(server.jwks_hits(), 1, "one fetch for both");
}

// ---------------------------------------------------------------------------------------------
// 7. One-hour outage
// ---------------------------------------------------------------------------------------------

/// Loads keys, breaks the provider in `mode`, then walks the clock through an hour-long
/// outage. The TTL is the default 600 s with ±10 % jitter (540..=660 s), max_stale 1 h:
/// stale keys are guaranteed to serve until 540 + 3600 - 1 = 4139 s, and guaranteed to be
/// refused from 660 + 3600 = 4260 s.
async fn hour_long_outage(mode: Mode) {
    let key = TestKey::es256().with_kid("a");
    let server = Server::start(jwks(&[&key])).await;
    let clock = ManualClock::at(T0);
    let timeout = if mode == Mode::Hang {
        Duration::from_millis(300)
    } else {
        Duration::from_secs(3)
    };
    let cfg = cfg_with(
        Remote::jwks_url(server.jwks_url()).fetch_timeout(timeout),
        &clock,
    );
    let app = app(cfg.clone());
    cfg.warm_up().await.unwrap();
    assert_eq!(server.attempts(), 1);

    server.set_mode(mode);

    // 5 min: fresh, no refresh due (due at 432..=528 s).
    clock.set(T0 + 300);
    send(app.clone(), &token(&key, &clock)).await.assert_ok();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let st = status(&cfg);
    assert!(!st.stale);
    assert_eq!(st.stale_served, 0);
    assert_eq!(server.attempts(), 1, "no refresh before 80 % of the TTL");

    // 10 min, 15 min, ..., 65 min, then 68 min 59 s: every request passes; each step starts
    // exactly one background refresh, which fails.
    let steps: Vec<i64> = (600..=3900).step_by(300).chain([4139]).collect();
    let mut stale_served = 0;
    for (i, t) in steps.iter().enumerate() {
        clock.set(T0 + t);
        let errors = status(&cfg).fetch_error;
        send(app.clone(), &token(&key, &clock)).await.assert_ok();
        wait_until(&format!("the failed refresh at {t} s ({mode:?})"), || {
            status(&cfg).fetch_error == errors + 1
        })
        .await;
        assert_eq!(server.attempts(), 2 + i, "one refresh attempt per step");
        let st = status(&cfg);
        assert!(st.ready, "still ready at {t} s");
        assert_eq!(st.fetch_ok, 1);
        assert_eq!(st.age_secs, Some(*t));
        if *t >= 900 {
            // Past the TTL whatever the jitter: stale, and every request counted.
            assert!(st.stale, "stale at {t} s");
            if stale_served == 0 {
                stale_served = st.stale_served;
                assert!(stale_served >= 1);
            } else {
                stale_served += 1;
                assert_eq!(st.stale_served, stale_served, "at {t} s");
            }
        }
    }
    assert_eq!(status(&cfg).fetch_error, steps.len() as u64);

    // 71 min (TTL + max_stale, whatever the jitter): keys unavailable.
    clock.set(T0 + 4260);
    assert!(!cfg.is_ready());
    send(app.clone(), &token(&key, &clock))
        .await
        .assert_unavailable();
    // Let the failing fetches of this moment (the request's and a background one) finish.
    tokio::time::sleep(timeout.min(Duration::from_millis(300)) * 2 + Duration::from_millis(100))
        .await;
    let attempts = server.attempts();
    assert!(
        (steps.len() + 2..=steps.len() + 3).contains(&attempts),
        "{attempts} attempts"
    );

    // The provider recovers; one clock second later requests pass again.
    server.set_mode(Mode::Serve);
    clock.advance(Duration::from_secs(1));
    send(app.clone(), &token(&key, &clock)).await.assert_ok();
    let st = status(&cfg);
    assert!(st.ready && !st.stale);
    assert_eq!(st.fetch_ok, 2);
    assert_eq!(st.age_secs, Some(0));
    assert_eq!(server.attempts(), attempts + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hour_long_outage_500() {
    hour_long_outage(Mode::Status500).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hour_long_outage_garbage() {
    hour_long_outage(Mode::Garbage).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hour_long_outage_huge_body() {
    hour_long_outage(Mode::Huge).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hour_long_outage_huge_chunked_body() {
    hour_long_outage(Mode::HugeChunked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hour_long_outage_empty_set() {
    hour_long_outage(Mode::Empty).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hour_long_outage_connection_closed() {
    hour_long_outage(Mode::Down).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hour_long_outage_hanging() {
    hour_long_outage(Mode::Hang).await;
}

// ---------------------------------------------------------------------------------------------
// 8. Cache-Control
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn cache_control_max_age_sets_refresh_time() {
    let key = TestKey::es256().with_kid("a");
    let server = Server::start(jwks(&[&key])).await;
    server.set_max_age(Some(120));
    let clock = ManualClock::at(T0);
    let cfg = cfg_with(
        Remote::jwks_url(server.jwks_url())
            .ttl_bounds(Duration::from_secs(60), Duration::from_secs(86_400))
            .fetch_timeout(Duration::from_secs(2)),
        &clock,
    );
    cfg.warm_up().await.unwrap();
    let app = app(cfg.clone());
    assert_eq!(server.jwks_hits(), 1);

    // TTL 120 s ± 10 % (108..=132 s): refresh due at 86..=105 s, expiry at 108 s or later.
    clock.set(T0 + 80);
    send(app.clone(), &token(&key, &clock)).await.assert_ok();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(server.jwks_hits(), 1, "no refresh before 80 % of max-age");

    // 106 s: a refresh is due (with the default TTL it would be at 432 s at the earliest).
    // The provider now hangs: the request must not wait for the refresh it started.
    server.set_mode(Mode::Hang);
    clock.set(T0 + 106);
    let reply = send(app.clone(), &token(&key, &clock)).await;
    reply.assert_ok();
    assert!(
        reply.elapsed < Duration::from_millis(500),
        "request waited {:?}",
        reply.elapsed
    );
    wait_until("the background refresh to reach the provider", || {
        server.jwks_hits() == 2
    })
    .await;
    // While the refresh hangs, requests keep passing at once.
    let reply = send(app.clone(), &token(&key, &clock)).await;
    reply.assert_ok();
    assert!(reply.elapsed < Duration::from_millis(500));
    assert_eq!(server.jwks_hits(), 2, "single flight: no second refresh");
}

#[tokio::test]
async fn cache_control_max_age_is_clamped_to_ttl_bounds() {
    let key = TestKey::es256().with_kid("a");
    let bounds = (Duration::from_secs(60), Duration::from_secs(86_400));

    // max-age=5 is raised to the 60 s floor: refresh due at 43..=52 s (60 s ± 10 %, × 0.8).
    let low = Server::start(jwks(&[&key])).await;
    low.set_max_age(Some(5));
    let clock = ManualClock::at(T0);
    let cfg = cfg_with(
        Remote::jwks_url(low.jwks_url()).ttl_bounds(bounds.0, bounds.1),
        &clock,
    );
    cfg.warm_up().await.unwrap();
    let app_low = app(cfg.clone());
    clock.set(T0 + 40);
    send(app_low.clone(), &token(&key, &clock))
        .await
        .assert_ok();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        low.jwks_hits(),
        1,
        "max-age=5 did not cut the TTL below 60 s"
    );
    clock.set(T0 + 53);
    send(app_low.clone(), &token(&key, &clock))
        .await
        .assert_ok();
    wait_until("the refresh", || status(&cfg).fetch_ok == 2).await;
    assert_eq!(low.jwks_hits(), 2);

    // max-age of 10 days is cut to the 1 day ceiling: refresh due at 62,208..=76,032 s.
    let high = Server::start(jwks(&[&key])).await;
    high.set_max_age(Some(864_000));
    let clock = ManualClock::at(T0);
    let cfg = cfg_with(
        Remote::jwks_url(high.jwks_url()).ttl_bounds(bounds.0, bounds.1),
        &clock,
    );
    cfg.warm_up().await.unwrap();
    let app_high = app(cfg.clone());
    clock.set(T0 + 62_000);
    send(app_high.clone(), &token(&key, &clock))
        .await
        .assert_ok();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(high.jwks_hits(), 1);
    clock.set(T0 + 76_100);
    send(app_high.clone(), &token(&key, &clock))
        .await
        .assert_ok();
    wait_until("the refresh", || status(&cfg).fetch_ok == 2).await;
    assert_eq!(high.jwks_hits(), 2);
    assert!(!status(&cfg).stale);
}

// ---------------------------------------------------------------------------------------------
// 9. Several issuers
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn several_issuers_look_keys_up_by_issuer_and_kid() {
    const ISS_A: &str = "https://a.test";
    const ISS_B: &str = "https://b.test";
    // Same kid, different keys. (Remote sets never hold `oct` keys, and the test keys of one
    // algorithm share their material, so the two differ in algorithm.)
    let key_a = TestKey::es256().with_kid("k1");
    let key_b = TestKey::ed25519().with_kid("k1");
    let server_a = Server::start(jwks(&[&key_a])).await;
    let server_b = Server::start(jwks(&[&key_b])).await;
    let clock = ManualClock::at(T0);
    let cfg = AuthConfig::builder()
        .trust(
            Issuer::new(ISS_A)
                .keys(Keys::remote(
                    Remote::jwks_url(server_a.jwks_url()).allow_http(),
                ))
                .audience("api-a"),
        )
        .trust(
            Issuer::new(ISS_B)
                .keys(Keys::remote(
                    Remote::jwks_url(server_b.jwks_url()).allow_http(),
                ))
                .audience("api-b"),
        )
        .clock(clock.clone())
        .build()
        .unwrap();
    let app = app(cfg.clone());
    let tok = |key: &TestKey, iss: &str, aud: &str| {
        key.token_at(clock.now())
            .issuer(iss)
            .audience(aud)
            .subject("alice")
            .sign()
    };

    send(app.clone(), &tok(&key_a, ISS_A, "api-a"))
        .await
        .assert_ok();
    send(app.clone(), &tok(&key_b, ISS_B, "api-b"))
        .await
        .assert_ok();
    assert_eq!((server_a.jwks_hits(), server_b.jwks_hits()), (1, 1));

    // Claims issuer A, signed with B's key under the same kid: checked against A's k1 only
    // (whose algorithm it does not have).
    send(app.clone(), &tok(&key_b, ISS_A, "api-a"))
        .await
        .assert_rejected(Reason::AlgNotAllowed);
    send(app.clone(), &tok(&key_a, ISS_B, "api-b"))
        .await
        .assert_rejected(Reason::AlgNotAllowed);
    let err = cfg
        .validate::<StandardClaims>(&tok(&key_b, ISS_A, "api-a"))
        .await
        .unwrap_err();
    assert_eq!(err.reason(), Reason::AlgNotAllowed);

    // An issuer nobody trusts: wrong_issuer, no fetch anywhere.
    let reply = send(app.clone(), &tok(&key_a, "https://c.test", "api-a")).await;
    reply.assert_rejected(Reason::WrongIssuer);

    // Audiences are per issuer.
    send(app.clone(), &tok(&key_a, ISS_A, "api-b"))
        .await
        .assert_rejected(Reason::WrongAudience);
    send(app.clone(), &tok(&key_b, ISS_B, "api-a"))
        .await
        .assert_rejected(Reason::WrongAudience);

    assert_eq!((server_a.jwks_hits(), server_b.jwks_hits()), (1, 1));
    let all = cfg.key_status();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].source, server_a.jwks_url());
    assert_eq!(all[1].source, server_b.jwks_url());
    assert!(all.iter().all(|s| s.ready && s.fetch_ok == 1));
}

// ---------------------------------------------------------------------------------------------
// 10. warm_up and readiness
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn warm_up_loads_keys_when_provider_is_up() {
    let key = TestKey::es256().with_kid("a");
    let server = Server::start(jwks(&[&key])).await;
    let clock = ManualClock::at(T0);
    let cfg = cfg_for(&server, &clock);
    assert!(!cfg.is_ready());
    cfg.warm_up().await.unwrap();
    assert!(cfg.is_ready());
    assert_eq!(server.jwks_hits(), 1);
    send(app(cfg.clone()), &token(&key, &clock))
        .await
        .assert_ok();
    assert_eq!(
        server.jwks_hits(),
        1,
        "the first request did not fetch again"
    );
}

#[tokio::test]
async fn warm_up_fails_when_provider_is_down_but_build_succeeds() {
    let addr = closed_port().await;
    let url = format!("http://{addr}/jwks");
    let clock = ManualClock::at(T0);
    // Start-up never needs the provider.
    let cfg = cfg_with(Remote::jwks_url(url.clone()), &clock);
    assert!(!cfg.is_ready());

    let err = cfg.warm_up().await.unwrap_err();
    assert_eq!(err.reason(), Reason::KeysUnavailable);
    assert_eq!(err.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(err.retry_after(), Some(1), "the next request may try again");
    assert!(!cfg.is_ready());
    let st = status(&cfg);
    assert_eq!(st.source, url);
    assert_eq!((st.fetch_ok, st.fetch_error), (0, 1));

    // Requests answer 503 meanwhile (one attempt per clock second)...
    let key = TestKey::es256().with_kid("a");
    let app = app(cfg.clone());
    clock.advance(Duration::from_secs(1));
    send(app.clone(), &token(&key, &clock))
        .await
        .assert_unavailable();
    assert_eq!(status(&cfg).fetch_error, 2);

    // ...and a provider that comes up later on that address is picked up.
    let server = Server::start_at(addr, jwks(&[&key])).await;
    clock.advance(Duration::from_secs(1));
    send(app.clone(), &token(&key, &clock)).await.assert_ok();
    assert_eq!(server.jwks_hits(), 1);
    assert!(cfg.is_ready());
}

// ---------------------------------------------------------------------------------------------
// 11. First fetch fails
// ---------------------------------------------------------------------------------------------

/// Keys never loaded and the first fetch fails in `mode`: 503, no panic; once the provider
/// recovers, one clock second later, requests pass.
async fn first_fetch_fails(mode: Mode) {
    let key = TestKey::es256().with_kid("a");
    let server = Server::start(jwks(&[&key])).await;
    server.set_mode(mode);
    let clock = ManualClock::at(T0);
    let cfg = cfg_with(
        Remote::jwks_url(server.jwks_url()).fetch_timeout(Duration::from_millis(500)),
        &clock,
    );
    let app = app(cfg.clone());

    let reply = send(app.clone(), &token(&key, &clock)).await;
    reply.assert_unavailable();
    assert_eq!(server.attempts(), 1, "{mode:?}");
    let st = status(&cfg);
    assert!(!st.ready);
    assert_eq!(st.keys, 0);
    assert_eq!((st.fetch_ok, st.fetch_error), (0, 1), "{mode:?}");
    let err = cfg
        .validate::<StandardClaims>(&token(&key, &clock))
        .await
        .unwrap_err();
    assert_eq!(err.reason(), Reason::KeysUnavailable);
    assert_eq!(server.attempts(), 1, "same clock second: no new attempt");

    server.set_mode(Mode::Serve);
    clock.advance(Duration::from_secs(1));
    send(app.clone(), &token(&key, &clock)).await.assert_ok();
    assert_eq!(server.attempts(), 2);
}

#[tokio::test]
async fn first_fetch_500_is_keys_unavailable() {
    first_fetch_fails(Mode::Status500).await;
}

#[tokio::test]
async fn first_fetch_garbage_is_keys_unavailable() {
    first_fetch_fails(Mode::Garbage).await;
}

#[tokio::test]
async fn first_fetch_huge_body_is_keys_unavailable() {
    first_fetch_fails(Mode::Huge).await;
}

#[tokio::test]
async fn first_fetch_huge_chunked_body_is_keys_unavailable() {
    first_fetch_fails(Mode::HugeChunked).await;
}

#[tokio::test]
async fn first_fetch_empty_set_is_keys_unavailable() {
    first_fetch_fails(Mode::Empty).await;
}

#[tokio::test]
async fn first_fetch_connection_closed_is_keys_unavailable() {
    first_fetch_fails(Mode::Down).await;
}

#[tokio::test]
async fn first_fetch_to_closed_port_is_keys_unavailable() {
    let key = TestKey::es256().with_kid("a");
    let clock = ManualClock::at(T0);
    let url = format!("http://{}/jwks", closed_port().await);
    let cfg = cfg_with(Remote::jwks_url(url), &clock);
    send(app(cfg.clone()), &token(&key, &clock))
        .await
        .assert_unavailable();
    assert_eq!(status(&cfg).fetch_error, 1);
}

#[tokio::test]
async fn huge_body_within_a_raised_limit_is_accepted() {
    // The same 2 MiB answer passes once the limit allows it: the limit, not the padding, is
    // what refused it above.
    let key = TestKey::es256().with_kid("a");
    let server = Server::start(jwks(&[&key])).await;
    server.set_mode(Mode::Huge);
    let clock = ManualClock::at(T0);
    let cfg = cfg_with(
        Remote::jwks_url(server.jwks_url()).max_response_bytes(4 * 1024 * 1024),
        &clock,
    );
    send(app(cfg.clone()), &token(&key, &clock))
        .await
        .assert_ok();
    assert_eq!(status(&cfg).fetch_ok, 1);
}

// ---------------------------------------------------------------------------------------------
// 12. Dropped requests (#10, item 4)
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_request_does_not_consume_unknown_kid_refetch() {
    // The provider rotates a key in and answers in 300 ms. The first request with the new kid
    // decides the refetch and is dropped after 20 ms (client gone, outer timeout): the refetch
    // must still complete, so the next request with that kid, shortly after the fetch would
    // have finished and still inside the cool-down, passes.
    let key_a = TestKey::es256().with_kid("a");
    let key_b = TestKey::es256().with_kid("b");
    let server = Server::start(jwks(&[&key_a])).await;
    let clock = ManualClock::at(T0);
    let cfg = cfg_for(&server, &clock);
    cfg.warm_up().await.unwrap();
    let app = app(cfg.clone());

    server.publish(jwks(&[&key_a, &key_b]));
    server.set_delay(Duration::from_millis(300));
    let dropped = tokio::time::timeout(
        Duration::from_millis(20),
        send(app.clone(), &token(&key_b, &clock)),
    )
    .await;
    assert!(dropped.is_err(), "the first request was dropped mid-fetch");

    tokio::time::sleep(Duration::from_millis(400)).await;
    send(app.clone(), &token(&key_b, &clock)).await.assert_ok();
    assert_eq!(server.jwks_hits(), 2, "warm-up + the one refetch");
    let st = status(&cfg);
    assert_eq!(st.unknown_kid_refetch, 1);
    assert_eq!((st.fetch_ok, st.fetch_error), (2, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_request_does_not_consume_cold_start_fetch() {
    // Cold start, the provider answers in 300 ms, the first request is dropped after 20 ms:
    // the fetch it started completes anyway, and the next request (same clock second, so no
    // new attempt would be allowed) finds the keys instead of `keys_unavailable`.
    let key = TestKey::es256().with_kid("a");
    let server = Server::start(jwks(&[&key])).await;
    server.set_delay(Duration::from_millis(300));
    let clock = ManualClock::at(T0);
    let cfg = cfg_for(&server, &clock);
    let app = app(cfg.clone());

    let dropped = tokio::time::timeout(
        Duration::from_millis(20),
        send(app.clone(), &token(&key, &clock)),
    )
    .await;
    assert!(dropped.is_err(), "the first request was dropped mid-fetch");

    tokio::time::sleep(Duration::from_millis(400)).await;
    send(app.clone(), &token(&key, &clock)).await.assert_ok();
    assert_eq!(server.jwks_hits(), 1, "one fetch, the dropped request's");
    let st = status(&cfg);
    assert!(st.ready);
    assert_eq!((st.fetch_ok, st.fetch_error), (1, 0));
}

// ---------------------------------------------------------------------------------------------
// 13. Refresh timing (#10, item 8)
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn extreme_ttl_options_do_not_overflow() {
    let key = TestKey::es256().with_kid("a");
    let server = Server::start(jwks(&[&key])).await;
    let far = Duration::MAX;
    let options = [
        // No max-age: the default TTL applies.
        Remote::jwks_url(server.jwks_url()).default_ttl(far),
        // The provider's max-age (set below) is only bounded by `Duration::MAX`.
        Remote::jwks_url(server.jwks_url()).ttl_bounds(Duration::from_secs(60), far),
        Remote::jwks_url(server.jwks_url()).ttl_bounds(far, far),
        Remote::jwks_url(server.jwks_url())
            .default_ttl(far)
            .ttl_bounds(far, far)
            .refetch_cooldown(far)
            .max_stale(far)
            .fetch_timeout(far),
    ];
    for (i, remote) in options.into_iter().enumerate() {
        // Options 1 and 2 see a max-age as large as a header can say.
        server.set_max_age(if i == 0 { None } else { Some(i64::MAX as u64) });
        let clock = ManualClock::at(T0);
        let cfg = cfg_with(remote, &clock);
        cfg.warm_up().await.unwrap();
        let app = app(cfg.clone());
        send(app.clone(), &token(&key, &clock)).await.assert_ok();
        // An unknown kid: a refetch, then the cool-down.
        let ghost = token(&TestKey::es256().with_kid("ghost"), &clock);
        send(app.clone(), &ghost)
            .await
            .assert_rejected(Reason::UnknownKey);
        // A century later the keys are still fresh: no refresh, nothing overflowed.
        clock.advance(Duration::from_secs(100 * 365 * 86_400));
        send(app.clone(), &token(&key, &clock)).await.assert_ok();
        let st = status(&cfg);
        assert!(st.ready && !st.stale, "option {i}");
        assert_eq!(st.fetch_error, 0, "option {i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_age_ttl_minimum_holds_after_jitter() {
    // max-age=60 with the default bounds (1 min..24 h): whatever the jitter, the keys live at
    // least 60 s (not 54 s) and are not refreshed before 48 s (80 % of 60 s). Checked on 20
    // configurations (20 jitter draws): with the bounds applied before the jitter, one of them
    // falls below 59 s with probability 1 - (8/13)^20 > 99.99 %.
    const N: usize = 20;
    let key = TestKey::es256().with_kid("a");
    let server = Server::start(jwks(&[&key])).await;
    server.set_max_age(Some(60));
    let clock = ManualClock::at(T0);
    let cfgs: Vec<AuthConfig> = (0..N).map(|_| cfg_for(&server, &clock)).collect();
    for cfg in &cfgs {
        cfg.warm_up().await.unwrap();
    }
    assert_eq!(server.jwks_hits(), N);

    clock.set(T0 + 47);
    for cfg in &cfgs {
        send(app(cfg.clone()), &token(&key, &clock))
            .await
            .assert_ok();
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(server.jwks_hits(), N, "no refresh before 48 s");

    clock.set(T0 + 59);
    for (i, cfg) in cfgs.iter().enumerate() {
        let st = status(cfg);
        assert!(
            !st.stale,
            "configuration {i}: stale at 59 s with max-age=60"
        );
        assert_eq!(st.age_secs, Some(59));
    }

    // 53 s is past every refresh point (80 % of at most 66 s).
    clock.set(T0 + 53);
    for cfg in &cfgs {
        send(app(cfg.clone()), &token(&key, &clock))
            .await
            .assert_ok();
    }
    wait_until("every refresh", || server.jwks_hits() == 2 * N).await;
}

#[tokio::test]
async fn retry_after_matches_the_next_fetch_attempt() {
    // Retry-After on `keys_unavailable` says when a request will really cause the next
    // attempt: requests with no usable keys try once per clock second, whatever the
    // cool-down (here 45 s, which is what Retry-After said before).
    let key = TestKey::es256().with_kid("a");
    let server = Server::start(jwks(&[&key])).await;
    server.set_mode(Mode::Status500);
    let clock = ManualClock::at(T0);
    let cfg = cfg_with(
        Remote::jwks_url(server.jwks_url()).refetch_cooldown(Duration::from_secs(45)),
        &clock,
    );
    let app = app(cfg.clone());

    let reply = send(app.clone(), &token(&key, &clock)).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.retry_after.as_deref(), Some("1"));
    assert_eq!(server.jwks_hits(), 1);
    // Same second: no new attempt, still "1 s".
    let err = cfg
        .validate::<StandardClaims>(&token(&key, &clock))
        .await
        .unwrap_err();
    assert_eq!(err.retry_after(), Some(1));
    assert_eq!(server.jwks_hits(), 1);

    // Retrying when told to does reach the provider.
    clock.advance(Duration::from_secs(1));
    server.set_mode(Mode::Serve);
    send(app.clone(), &token(&key, &clock)).await.assert_ok();
    assert_eq!(server.jwks_hits(), 2);

    // Keys stale past max_stale (TTL 600 s ± 10 % + 1 h): the same pace.
    server.set_mode(Mode::Status500);
    clock.advance(Duration::from_secs(660 + 3600));
    let reply = send(app.clone(), &token(&key, &clock)).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.retry_after.as_deref(), Some("1"));
}

// ---------------------------------------------------------------------------------------------
// 14. OpenID Connect rediscovery (#10, item 9)
// ---------------------------------------------------------------------------------------------

fn oidc_cfg(server: &Server, clock: &ManualClock) -> AuthConfig {
    AuthConfig::builder()
        .keys(Keys::remote(Remote::oidc(server.base()).allow_http()))
        .audience(AUD)
        .clock(clock.clone())
        .build()
        .unwrap()
}

fn oidc_token(key: &TestKey, server: &Server, clock: &ManualClock) -> String {
    key.token_at(clock.now())
        .issuer(&server.base())
        .audience(AUD)
        .subject("alice")
        .sign()
}

#[tokio::test]
async fn oidc_scheduled_refresh_rediscovers_a_moved_jwks_uri() {
    let key_a = TestKey::es256().with_kid("a");
    let key_b = TestKey::es256().with_kid("b");
    let server = Server::start(jwks(&[&key_a])).await;
    let clock = ManualClock::at(T0);
    let cfg = oidc_cfg(&server, &clock);
    cfg.warm_up().await.unwrap();
    let app = app(cfg.clone());
    assert_eq!((server.discovery_hits(), server.jwks_hits()), (1, 1));
    send(app.clone(), &oidc_token(&key_a, &server, &clock))
        .await
        .assert_ok();

    // The provider moves its key set to /jwks2 (with a new key); the old location still
    // answers with the old set, so only discovery can tell.
    server.publish_at_jwks2(jwks(&[&key_b]));
    server.set_discovered_jwks_path("/jwks2");

    // Past the refresh point (at most 528 s), before expiry (at least 540 s).
    clock.set(T0 + 530);
    send(app.clone(), &oidc_token(&key_a, &server, &clock))
        .await
        .assert_ok();
    wait_until("the scheduled refresh", || status(&cfg).fetch_ok == 2).await;
    assert_eq!(
        server.discovery_hits(),
        2,
        "the scheduled refresh re-read discovery"
    );
    assert_eq!((server.jwks_hits(), server.jwks2_hits()), (1, 1));

    // Tokens signed by the key at the new location verify, with no further fetch.
    send(app.clone(), &oidc_token(&key_b, &server, &clock))
        .await
        .assert_ok();
    assert_eq!(status(&cfg).unknown_kid_refetch, 0);
    assert_eq!((server.jwks_hits(), server.jwks2_hits()), (1, 1));
}

#[tokio::test]
async fn oidc_failed_jwks_fetch_goes_back_to_discovery() {
    let key_a = TestKey::es256().with_kid("a");
    let key_b = TestKey::es256().with_kid("b");
    let server = Server::start(jwks(&[&key_a])).await;
    let clock = ManualClock::at(T0);
    let cfg = oidc_cfg(&server, &clock);
    cfg.warm_up().await.unwrap();
    let app = app(cfg.clone());
    assert_eq!((server.discovery_hits(), server.jwks_hits()), (1, 1));

    // While the last fetch succeeded, an unknown-kid refetch reuses the known jwks_uri.
    let ghost = oidc_token(&TestKey::es256().with_kid("ghost"), &server, &clock);
    send(app.clone(), &ghost)
        .await
        .assert_rejected(Reason::UnknownKey);
    assert_eq!((server.discovery_hits(), server.jwks_hits()), (1, 2));

    // The key set moves: the old location answers 404, discovery names /jwks2.
    server.publish_at_jwks2(jwks(&[&key_b]));
    server.set_discovered_jwks_path("/jwks2");
    server.set_mode(Mode::NotFound);

    // B's first token: the refetch (past the cool-down) still goes to the known location,
    // which fails; the last good keys keep serving.
    clock.advance(Duration::from_secs(31));
    send(app.clone(), &oidc_token(&key_b, &server, &clock))
        .await
        .assert_rejected(Reason::UnknownKey);
    assert_eq!((server.discovery_hits(), server.jwks_hits()), (1, 3));
    assert_eq!(status(&cfg).fetch_error, 1);
    send(app.clone(), &oidc_token(&key_a, &server, &clock))
        .await
        .assert_ok();

    // The next attempt (next cool-down) re-reads discovery and finds the new location.
    clock.advance(Duration::from_secs(31));
    send(app.clone(), &oidc_token(&key_b, &server, &clock))
        .await
        .assert_ok();
    assert_eq!(
        server.discovery_hits(),
        2,
        "back to discovery after the failure"
    );
    assert_eq!((server.jwks_hits(), server.jwks2_hits()), (3, 1));
    let st = status(&cfg);
    assert_eq!((st.fetch_ok, st.fetch_error), (3, 1));
}
