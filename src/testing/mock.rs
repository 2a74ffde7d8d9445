//! A mock OpenID Connect issuer: discovery and JWKS on an ephemeral loopback port.

use std::convert::Infallible;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

use super::{TestKey, TokenBuilder};

/// The path of the JWK set served by a [`MockIssuer`].
const JWKS_PATH: &str = "/jwks";
/// The discovery path of a [`MockIssuer`].
const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";

/// A mock OpenID Connect issuer for tests: serves a discovery document and a JWK set on
/// `127.0.0.1` (an ephemeral port) and mints tokens signed by the keys it publishes, so
/// handler tests need no identity provider.
///
/// - `GET /.well-known/openid-configuration` names [`issuer`](MockIssuer::issuer) (its own
///   base URL, `http://127.0.0.1:PORT`, no trailing slash) and
///   [`jwks_url`](MockIssuer::jwks_url) (`{issuer}/jwks`);
/// - `GET /jwks` serves the public JWKs ([`TestKey::jwk`]) of the published keys, without
///   `Cache-Control` (the verifier's default time to live applies);
/// - anything else is 404; while [`set_failing`](MockIssuer::set_failing) is on, every
///   request gets 503.
///
/// It starts with one key, [`TestKey::rs256`] with `kid` `mock-1`. Tokens from
/// [`token`](MockIssuer::token) carry `iss` = the issuer and are signed by the **signing
/// key**: the key most recently given to [`add_key`](MockIssuer::add_key) or the last one
/// given to [`set_keys`](MockIssuer::set_keys) (or [`start_with`](MockIssuer::start_with)).
/// Give every key a distinct `kid` ([`TestKey::with_kid`]): key rotation is found by `kid`.
///
/// **Needs a tokio runtime with I/O enabled** (`#[tokio::test]` and `#[tokio::main]`, either
/// flavor, have one): [`start`](MockIssuer::start) binds a tokio listener and spawns the
/// server on the current runtime. The server (with its open connections) is stopped when the
/// `MockIssuer` is dropped.
///
/// The verifier side, `keys`, needs the `remote` feature; it fetches keys
/// over plain HTTP, which is allowed for this loopback URL only because it is marked
/// `allow_http` (see `Remote::allow_http`).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use tower_token_auth::testing::{MockIssuer, TestKey};
/// use tower_token_auth::{AuthConfig, Reason, StandardClaims};
///
/// let mut idp = MockIssuer::start().await;
/// let cfg = AuthConfig::builder().keys(idp.keys()).audience("api").build().unwrap();
///
/// let token = idp.token().audience("api").subject("u1").sign();
/// let claims: StandardClaims = cfg.validate(&token).await.unwrap();
/// assert_eq!(claims.sub.as_deref(), Some("u1"));
/// assert_eq!(idp.fetches(), 1);
///
/// // Rotation: publish a new key only; a token with its `kid` triggers one refetch.
/// idp.set_keys(vec![TestKey::rs256().with_kid("mock-2")]);
/// let token = idp.token().audience("api").subject("u2").sign();
/// let claims: StandardClaims = cfg.validate(&token).await.unwrap();
/// assert_eq!(claims.sub.as_deref(), Some("u2"));
/// assert_eq!(idp.fetches(), 2);
///
/// // The wrong audience is still rejected.
/// let token = idp.token().audience("other").sign();
/// let err = cfg.validate::<StandardClaims>(&token).await.unwrap_err();
/// assert!(err.has(Reason::WrongAudience));
/// # }
/// ```
#[must_use = "the server stops when the MockIssuer is dropped"]
pub struct MockIssuer {
    base: String,
    published: Vec<TestKey>,
    signing: TestKey,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

/// State shared with the server task.
struct Shared {
    discovery: Bytes,
    jwks: Mutex<Bytes>,
    failing: AtomicBool,
    jwks_fetches: AtomicUsize,
    discovery_fetches: AtomicUsize,
}

impl fmt::Debug for MockIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockIssuer")
            .field("issuer", &self.base)
            .field("published", &self.published)
            .field("signing", &self.signing)
            .field("fetches", &self.fetches())
            .finish_non_exhaustive()
    }
}

impl MockIssuer {
    /// Starts a mock issuer on `127.0.0.1` (an ephemeral port) publishing one key,
    /// [`TestKey::rs256`] with `kid` `mock-1`, which also signs its tokens.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime with I/O enabled, or if no loopback port can be bound.
    pub async fn start() -> Self {
        MockIssuer::start_with(vec![TestKey::rs256().with_kid("mock-1")]).await
    }

    /// Starts a mock issuer publishing `keys`; the last one signs its tokens.
    ///
    /// # Panics
    ///
    /// If `keys` is empty, outside a tokio runtime with I/O enabled, or if no loopback port
    /// can be bound.
    pub async fn start_with(keys: Vec<TestKey>) -> Self {
        let signing = keys
            .last()
            .cloned()
            .unwrap_or_else(|| panic!("MockIssuer::start_with needs at least one key"));
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap_or_else(|e| panic!("MockIssuer cannot bind 127.0.0.1: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("MockIssuer has no local address: {e}"));
        let base = format!("http://{addr}");
        let discovery = serde_json::json!({
            "issuer": base,
            "jwks_uri": format!("{base}{JWKS_PATH}"),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256", "ES256", "ES384", "EdDSA"],
        })
        .to_string();
        let shared = Arc::new(Shared {
            discovery: Bytes::from(discovery),
            jwks: Mutex::new(render(&keys)),
            failing: AtomicBool::new(false),
            jwks_fetches: AtomicUsize::new(0),
            discovery_fetches: AtomicUsize::new(0),
        });
        let server = tokio::spawn(serve(listener, Arc::clone(&shared)));
        MockIssuer {
            base,
            published: keys,
            signing,
            shared,
            server,
        }
    }

    /// The issuer URL, `http://127.0.0.1:PORT` (no trailing slash): the `iss` of its tokens
    /// and the `issuer` of its discovery document.
    pub fn issuer(&self) -> String {
        self.base.clone()
    }

    /// The JWK set URL, `{issuer}/jwks`.
    pub fn jwks_url(&self) -> String {
        format!("{}{JWKS_PATH}", self.base)
    }

    /// Remote keys for [`AuthConfigBuilder::keys`](crate::AuthConfigBuilder::keys): OpenID
    /// Connect discovery at this issuer, over plain HTTP. The issuer becomes the expected
    /// `iss` unless the configuration names one.
    #[cfg(feature = "remote")]
    #[cfg_attr(docsrs, doc(cfg(feature = "remote")))]
    pub fn keys(&self) -> crate::Keys {
        crate::Keys::remote(self.remote())
    }

    /// The [`Remote`](crate::keys::remote::Remote) behind [`keys`](MockIssuer::keys), to
    /// change its options (e.g. a shorter
    /// [`refetch_cooldown`](crate::keys::remote::Remote::refetch_cooldown)) before
    /// [`Keys::remote`](crate::Keys::remote).
    #[cfg(feature = "remote")]
    #[cfg_attr(docsrs, doc(cfg(feature = "remote")))]
    pub fn remote(&self) -> crate::keys::remote::Remote {
        crate::keys::remote::Remote::oidc(self.issuer()).allow_http()
    }

    /// Publishes `key` next to the current keys and signs tokens with it from now on.
    pub fn add_key(&mut self, key: TestKey) {
        self.signing = key.clone();
        self.published.push(key);
        self.publish();
    }

    /// Publishes exactly `keys` (rotation). The last one signs tokens from now on; with none,
    /// the signing key stays as it was (its tokens then fail verification once the empty
    /// set is fetched).
    pub fn set_keys(&mut self, keys: Vec<TestKey>) {
        if let Some(last) = keys.last() {
            self.signing = last.clone();
        }
        self.published = keys;
        self.publish();
    }

    /// The key that signs [`token`](MockIssuer::token)s.
    pub fn key(&self) -> &TestKey {
        &self.signing
    }

    /// The published keys, in the order of the JWK set.
    pub fn published(&self) -> &[TestKey] {
        &self.published
    }

    /// Starts a token signed by the signing key, with `iss` set to
    /// [`issuer`](MockIssuer::issuer) (and the defaults of [`TestKey::token`]: `kid`, `iat`,
    /// `nbf`, `exp` = now + 5 minutes). Add `aud`, `sub` and the rest, then
    /// [`sign`](TokenBuilder::sign).
    pub fn token(&self) -> TokenBuilder<'_> {
        self.signing.token().issuer(&self.base)
    }

    /// Like [`token`](MockIssuer::token), with "now" at `unix_seconds` (for a configuration
    /// with a [`ManualClock`](crate::clock::ManualClock)).
    pub fn token_at(&self, unix_seconds: i64) -> TokenBuilder<'_> {
        self.signing.token_at(unix_seconds).issuer(&self.base)
    }

    /// Requests for the JWK set received so far (failed ones included).
    pub fn fetches(&self) -> usize {
        self.shared.jwks_fetches.load(Ordering::SeqCst)
    }

    /// Requests for the discovery document received so far (failed ones included).
    pub fn discovery_fetches(&self) -> usize {
        self.shared.discovery_fetches.load(Ordering::SeqCst)
    }

    /// While `true`, every request is answered `503 Service Unavailable` (an outage of the
    /// identity provider). Requests are still counted.
    pub fn set_failing(&self, failing: bool) {
        self.shared.failing.store(failing, Ordering::SeqCst);
    }

    fn publish(&self) {
        let jwks = render(&self.published);
        *self
            .shared
            .jwks
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = jwks;
    }
}

impl Drop for MockIssuer {
    fn drop(&mut self) {
        // Aborting the accept loop drops its `JoinSet`, which aborts every open connection.
        self.server.abort();
    }
}

fn render(keys: &[TestKey]) -> Bytes {
    let refs: Vec<&TestKey> = keys.iter().collect();
    Bytes::from(TestKey::jwks(&refs))
}

async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of file descriptors and the like: do not spin.
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            continue;
        };
        while connections.try_join_next().is_some() {}
        let shared = Arc::clone(&shared);
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let response = respond(&shared, &req);
                async move { Ok::<_, Infallible>(response) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn respond<B>(shared: &Shared, req: &Request<B>) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    let counter = match path {
        JWKS_PATH => Some(&shared.jwks_fetches),
        DISCOVERY_PATH => Some(&shared.discovery_fetches),
        _ => None,
    };
    if let Some(counter) = counter {
        counter.fetch_add(1, Ordering::SeqCst);
    }
    if shared.failing.load(Ordering::SeqCst) {
        return plain(StatusCode::SERVICE_UNAVAILABLE);
    }
    if counter.is_none() {
        return plain(StatusCode::NOT_FOUND);
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return plain(StatusCode::METHOD_NOT_ALLOWED);
    }
    let body = if path == JWKS_PATH {
        shared
            .jwks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    } else {
        shared.discovery.clone()
    };
    let mut response = Response::new(Full::new(body));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn plain(status: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
}
