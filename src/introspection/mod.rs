//! Opaque tokens: RFC 7662 token introspection (feature `remote`).
//!
//! Many providers issue **opaque** access tokens (random strings the resource server cannot
//! read), or both opaque tokens and JWTs. With [`Introspection`] on one trusted issuer, the
//! layer asks that issuer's introspection endpoint about every token that is not a compact JWS
//! (or about every token, with [`all_tokens`](Introspection::all_tokens)), and checks the
//! answer's claims exactly as it checks a JWT's: `exp`/`nbf` with the leeway, `iss`, `aud`,
//! required claims, user checks, then scopes, roles and the revocation store. Handlers get the
//! same `Claims<T>`.
//!
//! ```
//! use std::time::Duration;
//! use tower_token_auth::{introspection::Introspection, AuthConfig, Issuer};
//!
//! let cfg = AuthConfig::builder()
//!     .trust(
//!         Issuer::oidc("https://login.example.com")
//!             .introspection(
//!                 Introspection::discover() // `introspection_endpoint` from discovery
//!                     .client_secret_basic("orders-api", "s3cret")
//!                     .active_ttl(Duration::from_secs(30)),
//!             ),
//!     )
//!     .audience("api://orders")
//!     .build()?;
//! # Ok::<(), tower_token_auth::ConfigError>(())
//! ```
//!
//! # Reasons
//!
//! - `active: false` → [`Inactive`](crate::Reason::Inactive) (401 `invalid_token`): the
//!   provider says the token is expired, revoked or unknown to it.
//! - The endpoint is down, slow past the timeout, answers a non-200 status, a body over the
//!   limit (default 64 KiB), or anything but a JSON object with a boolean `active` →
//!   [`IntrospectionUnavailable`](crate::Reason::IntrospectionUnavailable) (503 with
//!   `Retry-After`, never 401 or 500). Redirects are never followed.
//! - An active answer whose claims fail a check → the usual reason (`expired`,
//!   `wrong_audience`, …). An answer without `iss` is taken as issued by the issuer whose
//!   endpoint answered (RFC 7662 makes `iss` optional); an answer naming another issuer is
//!   `wrong_issuer`.
//!
//! # Cache, single flight and bounds
//!
//! - An active answer is cached until the earliest of its `exp` and
//!   [`active_ttl`](Introspection::active_ttl) (default 60 s): a token revoked at the provider
//!   is refused at most that long after. An inactive answer is cached for
//!   [`inactive_ttl`](Introspection::inactive_ttl) (default 10 s). Failures are not cached.
//! - Entries are keyed by HMAC-SHA256 of the token under a key drawn at start-up: the token
//!   itself is never stored. At most [`cache_capacity`](Introspection::cache_capacity)
//!   entries (default 10,000; about 0.5 KiB each for a typical answer); when full, expired
//!   entries go first, then arbitrary ones.
//! - One call in flight per token: requests with the same new token wait for the one call.
//!   The call runs as a task of its own, so a request that goes away (client disconnect,
//!   timeout layer) neither cancels it nor leaves its slot taken.
//! - At most [`max_in_flight`](Introspection::max_in_flight) calls at once (default 256),
//!   each bounded by [`timeout`](Introspection::timeout) (default 5 s): a flood of distinct
//!   unknown tokens gets `introspection_unavailable` beyond that, rather than queueing.
//! - The revocation store, when configured, is consulted on every request, cached or not.
//!
//! Only one issuer of a configuration may introspect: a token that is not a JWS names no
//! issuer, and sending it to several providers would hand it to all of them.
//!
//! The client secret and the tokens never appear in logs, errors or `Debug` output.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::error::ConfigError;
use crate::keys::{AlgSet, KeySource};

mod call;
#[cfg(feature = "redis")]
mod shared;
mod state;

pub(crate) use call::CallError;
#[cfg(feature = "redis")]
pub use shared::RedisAnswers;
pub(crate) use state::{Answer, Flight, Introspector, Lookup};

/// Default time an active answer is cached (bounded by the token's `exp`).
pub const DEFAULT_ACTIVE_TTL: Duration = Duration::from_secs(60);
/// Default time an inactive answer is cached.
pub const DEFAULT_INACTIVE_TTL: Duration = Duration::from_secs(10);

/// How to reach an issuer's RFC 7662 introspection endpoint and what to cache; give it to
/// [`Issuer::introspection`](crate::Issuer::introspection) or
/// [`AuthConfigBuilder::introspection`](crate::AuthConfigBuilder::introspection).
/// See the [module docs](self) for the reasons, the cache rules and the bounds.
///
/// ```
/// use std::time::Duration;
/// use tower_token_auth::introspection::Introspection;
///
/// let introspection = Introspection::endpoint("https://login.example.com/oauth2/introspect")
///     .client_secret_post("orders-api", "s3cret")
///     .timeout(Duration::from_secs(2))
///     .inactive_ttl(Duration::from_secs(5));
/// # let _ = introspection;
/// ```
#[derive(Clone)]
#[must_use]
pub struct Introspection {
    pub(crate) endpoint: Option<String>,
    pub(crate) client: Option<ClientAuth>,
    pub(crate) all_tokens: bool,
    pub(crate) active_ttl: Duration,
    pub(crate) inactive_ttl: Duration,
    pub(crate) timeout: Duration,
    pub(crate) max_response_bytes: usize,
    pub(crate) cache_capacity: usize,
    pub(crate) max_in_flight: usize,
    pub(crate) allow_http: bool,
    pub(crate) http: Option<reqwest::Client>,
    pub(crate) jwt_response: bool,
    pub(crate) hash_secret: Option<[u8; 32]>,
    #[cfg(feature = "redis")]
    pub(crate) shared: Option<RedisAnswers>,
}

/// How the resource server authenticates to the introspection endpoint (RFC 6749 §2.3.1).
#[derive(Clone)]
pub(crate) struct ClientAuth {
    pub(crate) id: String,
    pub(crate) secret: String,
    pub(crate) post: bool,
}

impl fmt::Debug for Introspection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the secret.
        f.debug_struct("Introspection")
            .field(
                "endpoint",
                &self.endpoint.as_deref().unwrap_or("(discovery)"),
            )
            .field("client_id", &self.client.as_ref().map(|c| c.id.as_str()))
            .field(
                "client_auth",
                &self.client.as_ref().map(|c| {
                    if c.post {
                        "client_secret_post"
                    } else {
                        "client_secret_basic"
                    }
                }),
            )
            .field("all_tokens", &self.all_tokens)
            .field("active_ttl", &self.active_ttl)
            .field("inactive_ttl", &self.inactive_ttl)
            .field("timeout", &self.timeout)
            .field("jwt_response", &self.jwt_response)
            .finish_non_exhaustive()
    }
}

impl Introspection {
    fn new(endpoint: Option<String>) -> Self {
        Introspection {
            endpoint,
            client: None,
            all_tokens: false,
            active_ttl: DEFAULT_ACTIVE_TTL,
            inactive_ttl: DEFAULT_INACTIVE_TTL,
            timeout: Duration::from_secs(5),
            max_response_bytes: 64 * 1024,
            cache_capacity: 10_000,
            max_in_flight: 256,
            allow_http: false,
            http: None,
            jwt_response: false,
            hash_secret: None,
            #[cfg(feature = "redis")]
            shared: None,
        }
    }

    /// The introspection endpoint at `url` (https required unless
    /// [`allow_http`](Introspection::allow_http)).
    pub fn endpoint(url: impl Into<String>) -> Self {
        Introspection::new(Some(url.into()))
    }

    /// The endpoint named `introspection_endpoint` in the issuer's metadata: OpenID Connect
    /// discovery (`/.well-known/openid-configuration`), else RFC 8414
    /// (`/.well-known/oauth-authorization-server`). Read on the first introspection and again
    /// after a failed call. The metadata's `issuer` must equal the configured issuer.
    pub fn discover() -> Self {
        Introspection::new(None)
    }

    /// Authenticates with HTTP Basic (`client_secret_basic`, the RFC 7662 usual).
    pub fn client_secret_basic(
        mut self,
        client_id: impl Into<String>,
        secret: impl Into<String>,
    ) -> Self {
        self.client = Some(ClientAuth {
            id: client_id.into(),
            secret: secret.into(),
            post: false,
        });
        self
    }

    /// Authenticates with `client_id` and `client_secret` in the form body
    /// (`client_secret_post`).
    pub fn client_secret_post(
        mut self,
        client_id: impl Into<String>,
        secret: impl Into<String>,
    ) -> Self {
        self.client = Some(ClientAuth {
            id: client_id.into(),
            secret: secret.into(),
            post: true,
        });
        self
    }

    /// Introspects every token, JWTs included (default: only tokens that are not a compact
    /// JWS, i.e. not three dot-separated segments). The provider's answer then decides alone:
    /// a JWT is not verified locally.
    pub fn all_tokens(mut self) -> Self {
        self.all_tokens = true;
        self
    }

    /// The longest time an active answer is cached (default 60 s; never past the token's
    /// `exp`). A token revoked at the provider is refused at most this long after. Zero turns
    /// the active cache off.
    pub fn active_ttl(mut self, ttl: Duration) -> Self {
        self.active_ttl = ttl;
        self
    }

    /// How long an inactive answer is cached (default 10 s). Zero turns it off.
    pub fn inactive_ttl(mut self, ttl: Duration) -> Self {
        self.inactive_ttl = ttl;
        self
    }

    /// The bound on one introspection, discovery included (default 5 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The largest answer read (default 64 KiB); a larger one is `introspection_unavailable`.
    pub fn max_response_bytes(mut self, bytes: usize) -> Self {
        self.max_response_bytes = bytes;
        self
    }

    /// The most answers cached (default 10,000).
    pub fn cache_capacity(mut self, entries: usize) -> Self {
        self.cache_capacity = entries;
        self
    }

    /// The most introspection calls at once (default 256); a new token beyond it gets
    /// `introspection_unavailable` (503) at once.
    pub fn max_in_flight(mut self, calls: usize) -> Self {
        self.max_in_flight = calls;
        self
    }

    /// Asks for signed answers (RFC 9701, `Accept: application/token-introspection+jwt`) and
    /// accepts nothing else: the answer must be a JWT of type `token-introspection+jwt`,
    /// signed with one of the issuer's keys (its JWKS or static keys, so the issuer needs
    /// keys), whose `iss` is the issuer and whose `aud` names this client; its
    /// `token_introspection` member is the RFC 7662 answer. Anything else is
    /// `introspection_unavailable`.
    pub fn jwt_response(mut self) -> Self {
        self.jwt_response = true;
        self
    }

    /// The key of the HMAC that names tokens in the cache (default: random per process).
    /// Instances that [share answers](Introspection::share_answers) need the same one.
    pub fn hash_secret(mut self, secret: [u8; 32]) -> Self {
        self.hash_secret = Some(secret);
        self
    }

    /// Shares answers with every instance through Redis (feature `redis`; off by default:
    /// the local cache already bounds the load on the endpoint). A miss in the local cache
    /// asks Redis before the endpoint; an answer is shared for as long as the local cache
    /// may keep it. Redis failing only means asking the endpoint. Needs a shared
    /// [`hash_secret`](Introspection::hash_secret), or `build()` refuses.
    #[cfg(feature = "redis")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
    pub fn share_answers(mut self, shared: RedisAnswers) -> Self {
        self.shared = Some(shared);
        self
    }

    /// Allows `http://` endpoints (loopback tests only).
    pub fn allow_http(mut self) -> Self {
        self.allow_http = true;
        self
    }

    /// Uses this HTTP client (proxies, extra root certificates). Keep its redirects disabled;
    /// the [`timeout`](Introspection::timeout) applies on top of its own.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http = Some(client);
        self
    }

    fn check_url(&self, url: &str, what: &'static str) -> Result<(), ConfigError> {
        let ok = url.starts_with("https://") || (self.allow_http && url.starts_with("http://"));
        if !ok {
            return Err(ConfigError::InsecureIntrospection(what));
        }
        if reqwest::Url::parse(url).is_err() {
            return Err(ConfigError::InvalidUrl(what));
        }
        Ok(())
    }

    /// The runtime side, for the trust of `issuer` (`None` when the issuer check is skipped)
    /// with its `keys` (for signed answers).
    pub(crate) fn build(
        &self,
        issuer: Option<&str>,
        keys: Option<(KeySource, AlgSet)>,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Introspector>, ConfigError> {
        if self.jwt_response && (keys.is_none() || issuer.is_none()) {
            return Err(ConfigError::InvalidIntrospection(
                "jwt_response() verifies answers with the issuer's keys: name the issuer and give it keys (Issuer::oidc(..), or .keys(..))",
            ));
        }
        let Some(client) = &self.client else {
            return Err(ConfigError::InvalidIntrospection(
                "no client credentials: call .client_secret_basic(id, secret) or .client_secret_post(id, secret)",
            ));
        };
        if client.id.is_empty() || client.secret.is_empty() {
            return Err(ConfigError::InvalidIntrospection(
                "the client id and secret must not be empty",
            ));
        }
        match (&self.endpoint, issuer) {
            (Some(url), _) => self.check_url(url, "introspection endpoint")?,
            (None, Some(iss)) => self.check_url(iss, "issuer URL for introspection discovery")?,
            (None, None) => {
                return Err(ConfigError::InvalidIntrospection(
                    "Introspection::discover() needs the issuer URL: name the issuer, or give Introspection::endpoint(url)",
                ))
            }
        }
        #[cfg(feature = "redis")]
        if self.shared.is_some() && self.hash_secret.is_none() {
            return Err(ConfigError::InvalidIntrospection(
                "share_answers(..) needs .hash_secret(..), the same on every instance, so they name a token alike",
            ));
        }
        if self.timeout.is_zero() || self.max_response_bytes == 0 || self.max_in_flight == 0 {
            return Err(ConfigError::InvalidIntrospection(
                "the timeout, the response limit and max_in_flight must be above zero",
            ));
        }
        let http = match &self.http {
            Some(c) => c.clone(),
            None => reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(self.timeout)
                .build()
                .map_err(|_| {
                    ConfigError::InvalidIntrospection("the HTTP client could not be built")
                })?,
        };
        Ok(Arc::new(Introspector::new(
            self.clone(),
            issuer.map(str::to_owned),
            keys,
            http,
            clock,
        )))
    }
}
