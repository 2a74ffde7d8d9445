//! The options and location of a remote key set ([`Remote`]), checked when the configuration
//! is built.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::state::RemoteKeys;
use crate::clock::Clock;
use crate::error::ConfigError;
use crate::keys::AlgSet;

/// Options and location of a remote key set; give it to [`Keys::remote`](crate::keys::Keys::remote).
///
/// ```
/// use std::time::Duration;
/// use tower_token_auth::keys::{remote::Remote, Keys};
///
/// let keys = Keys::remote(
///     Remote::oidc("https://login.example.com/tenant/v2.0")
///         .fetch_timeout(Duration::from_secs(3))
///         .max_stale(Duration::from_secs(2 * 3600)),
/// );
/// # let _ = keys;
/// ```
#[derive(Clone)]
#[must_use]
pub struct Remote {
    pub(crate) location: Location,
    pub(crate) fetch_timeout: Duration,
    pub(crate) default_ttl: Duration,
    pub(crate) min_ttl: Duration,
    pub(crate) max_ttl: Duration,
    pub(crate) refetch_cooldown: Duration,
    pub(crate) max_stale: Duration,
    pub(crate) max_response_bytes: usize,
    pub(crate) allow_http: bool,
    pub(crate) client: Option<reqwest::Client>,
}

#[derive(Clone, Debug)]
pub(crate) enum Location {
    Jwks(String),
    Oidc(String),
}

impl fmt::Debug for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Remote")
            .field("location", &self.location)
            .field("fetch_timeout", &self.fetch_timeout)
            .field("default_ttl", &self.default_ttl)
            .field("refetch_cooldown", &self.refetch_cooldown)
            .field("max_stale", &self.max_stale)
            .finish_non_exhaustive()
    }
}

impl Remote {
    fn new(location: Location) -> Self {
        Remote {
            location,
            fetch_timeout: Duration::from_secs(5),
            default_ttl: Duration::from_secs(600),
            min_ttl: Duration::from_secs(60),
            max_ttl: Duration::from_secs(24 * 3600),
            refetch_cooldown: Duration::from_secs(30),
            max_stale: Duration::from_secs(3600),
            max_response_bytes: 1024 * 1024,
            allow_http: false,
            client: None,
        }
    }

    /// A JWK set at `url` (https required unless [`allow_http`](Remote::allow_http)).
    pub fn jwks_url(url: impl Into<String>) -> Self {
        Remote::new(Location::Jwks(url.into()))
    }

    /// An OpenID Connect issuer: its `/.well-known/openid-configuration` must name exactly
    /// this `issuer`, and its `jwks_uri` is fetched.
    pub fn oidc(issuer: impl Into<String>) -> Self {
        Remote::new(Location::Oidc(issuer.into()))
    }

    /// Longest wait for one fetch (default 5 s).
    pub fn fetch_timeout(mut self, timeout: Duration) -> Self {
        self.fetch_timeout = timeout;
        self
    }

    /// Time to live when the response has no `Cache-Control: max-age` (default 10 min).
    pub fn default_ttl(mut self, ttl: Duration) -> Self {
        self.default_ttl = ttl;
        self
    }

    /// Bounds for a `max-age` sent by the provider (default 1 min to 24 h), applied after the
    /// ±10 % jitter: the TTL of a set with `max-age` is never outside them.
    pub fn ttl_bounds(mut self, min: Duration, max: Duration) -> Self {
        self.min_ttl = min;
        self.max_ttl = max;
        self
    }

    /// Least time between two refetches caused by unknown `kid`s (default 30 s); also the
    /// time between background refresh attempts after a failed refresh.
    pub fn refetch_cooldown(mut self, cooldown: Duration) -> Self {
        self.refetch_cooldown = cooldown;
        self
    }

    /// How long past their time to live the last good keys keep serving while refreshes fail
    /// (default 1 h).
    pub fn max_stale(mut self, max_stale: Duration) -> Self {
        self.max_stale = max_stale;
        self
    }

    /// Largest response accepted (default 1 MiB).
    pub fn max_response_bytes(mut self, bytes: usize) -> Self {
        self.max_response_bytes = bytes;
        self
    }

    /// Accepts `http://` URLs (for tests on loopback). Never in production: keys fetched
    /// over plain HTTP can be replaced by anyone on the path.
    pub fn allow_http(mut self) -> Self {
        self.allow_http = true;
        self
    }

    /// Uses this HTTP client (proxies, extra root certificates). Its own timeouts apply in
    /// addition to the fetch timeout; redirects should stay disabled.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.client = Some(client);
        self
    }

    /// The configured OIDC issuer, if this is discovery.
    pub(crate) fn oidc_issuer(&self) -> Option<&str> {
        match &self.location {
            Location::Oidc(iss) => Some(iss),
            Location::Jwks(_) => None,
        }
    }

    fn check_url(&self, url: &str, what: &'static str) -> Result<(), ConfigError> {
        let ok = url.starts_with("https://") || (self.allow_http && url.starts_with("http://"));
        if !ok {
            return Err(ConfigError::InsecureUrl(what));
        }
        if reqwest::Url::parse(url).is_err() {
            return Err(ConfigError::InvalidUrl(what));
        }
        Ok(())
    }

    pub(crate) fn build(
        &self,
        allowed: AlgSet,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<RemoteKeys>, ConfigError> {
        match &self.location {
            Location::Jwks(url) => self.check_url(url, "JWKS URL")?,
            Location::Oidc(iss) => self.check_url(iss, "OIDC issuer URL")?,
        }
        if self.fetch_timeout.is_zero() || self.min_ttl > self.max_ttl {
            return Err(ConfigError::InvalidRemoteOption);
        }
        let client = match &self.client {
            Some(c) => c.clone(),
            None => reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(self.fetch_timeout)
                .build()
                .map_err(|_| ConfigError::InvalidRemoteOption)?,
        };
        Ok(Arc::new(RemoteKeys::new(
            self.clone(),
            client,
            allowed,
            clock,
        )))
    }
}
