//! [`TokenAuthLayer`]: the tower `Layer`.

use std::fmt;
use std::marker::PhantomData;

use std::sync::Arc;

use tower_layer::Layer;

use crate::cache::{CacheStats, TokenCache, DEFAULT_CACHE_CAPACITY};

use super::service::TokenAuth;
use crate::claims::StandardClaims;
use crate::config::AuthConfig;
use crate::response::DefaultResponder;

/// What the layer does with a request that carries no valid token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// No token or an invalid one: rejected.
    Required,
    /// No token: passes without claims. Invalid token: rejected.
    Optional,
    /// No token or an invalid one: passes without claims (the error is in the request
    /// extensions). A 503 reason is still a rejection.
    AnonymousOnInvalid,
}

/// Authenticates every request by bearer token before it reaches the inner service.
///
/// A valid token's claims are inserted into the request extensions as
/// [`Claims<T>`](crate::Claims) (default `T`: [`StandardClaims`]); any failure is answered by
/// the responder `R` (default [`DefaultResponder`]: RFC 6750 headers and an RFC 9457 body),
/// with the [`AuthError`](crate::AuthError) in the response extensions. Rejections are
/// responses, not service errors: `S::Error` passes through untouched.
///
/// ```
/// use axum::{routing::get, Router};
/// use tower_token_auth::{AuthConfig, Claims, Keys, StandardClaims, TokenAuthLayer};
///
/// # fn main() -> Result<(), tower_token_auth::ConfigError> {
/// let cfg = AuthConfig::builder()
///     .keys(Keys::hmac(b"0123456789abcdef0123456789abcdef"))
///     .issuer("https://issuer.example")
///     .audience("api")
///     .build()?;
///
/// async fn me(c: Claims<StandardClaims>) -> String {
///     c.sub.clone().unwrap_or_default()
/// }
///
/// let app: Router = Router::new()
///     .route("/me", get(me))
///     .layer(TokenAuthLayer::new(cfg));
/// # Ok(()) }
/// ```
///
/// Why `TokenAuthLayer::new(cfg)` and not `TokenAuthLayer::<MyClaims>::new(cfg)`: Rust does
/// not fall back to default type parameters in expressions, so a `new` generic over the
/// claims type would need a turbofish every time. `new` builds the default
/// ([`StandardClaims`]) and [`with_claims`](TokenAuthLayer::with_claims) changes the type.
pub struct TokenAuthLayer<T = StandardClaims, R = DefaultResponder> {
    pub(crate) config: AuthConfig,
    pub(crate) responder: R,
    pub(crate) mode: Mode,
    pub(crate) cache: Option<Arc<TokenCache<T>>>,
    cache_capacity: usize,
    pub(crate) diagnose: bool,
    _claims: PhantomData<fn() -> T>,
}

impl TokenAuthLayer {
    /// A layer that requires a valid token and answers with the default responder (using the
    /// configuration's realm and `resource_metadata` URL, as every responder does).
    pub fn new(config: AuthConfig) -> Self {
        TokenAuthLayer {
            responder: DefaultResponder::new(),
            config,
            mode: Mode::Required,
            cache: TokenCache::new(DEFAULT_CACHE_CAPACITY),
            cache_capacity: DEFAULT_CACHE_CAPACITY,
            diagnose: false,
            _claims: PhantomData,
        }
    }
}

impl<T, R> TokenAuthLayer<T, R> {
    /// Deserializes the verified claims into `U` instead (any `serde::Deserialize` type); a
    /// token whose claims do not fit `U` is rejected as `invalid_claim`. Handlers then extract
    /// `Claims<U>`.
    ///
    /// ```
    /// # use tower_token_auth::{AuthConfig, Keys, TokenAuthLayer};
    /// #[derive(Clone, serde::Deserialize)]
    /// struct MyClaims { sub: String, tenant: String }
    ///
    /// # let cfg = AuthConfig::builder().keys(Keys::hmac([7u8; 32])).issuer("i").audience("a").build().unwrap();
    /// let layer = TokenAuthLayer::new(cfg).with_claims::<MyClaims>();
    /// ```
    #[must_use]
    pub fn with_claims<U>(self) -> TokenAuthLayer<U, R> {
        TokenAuthLayer {
            config: self.config,
            responder: self.responder,
            mode: self.mode,
            cache: TokenCache::new(self.cache_capacity),
            cache_capacity: self.cache_capacity,
            diagnose: self.diagnose,
            _claims: PhantomData,
        }
    }

    /// Sizes the verified-token cache (default [`DEFAULT_CACHE_CAPACITY`] slots); `0` turns
    /// it off. A token seen before then skips the signature check, with `exp`/`nbf` and
    /// revocation still checked on every request; see the [cache rules](crate#the-verified-token-cache).
    #[must_use]
    pub fn cache_capacity(mut self, slots: usize) -> Self {
        self.cache = TokenCache::new(slots);
        self.cache_capacity = slots;
        self
    }

    /// Answers rejections with `responder` instead (see [`Responder`](crate::Responder)). The
    /// configuration's realm and `resource_metadata` URL reach it in the request parts
    /// ([`ChallengeParams`](crate::response::ChallengeParams)).
    #[must_use]
    pub fn with_responder<R2>(self, responder: R2) -> TokenAuthLayer<T, R2> {
        TokenAuthLayer {
            config: self.config,
            responder,
            mode: self.mode,
            cache: self.cache,
            cache_capacity: self.cache_capacity,
            diagnose: self.diagnose,
            _claims: PhantomData,
        }
    }

    #[cfg(feature = "diagnose")]
    #[cfg_attr(docsrs, doc(cfg(feature = "diagnose")))]
    /// **Development only**: adds the full [`Diagnosis`](crate::diagnose::Diagnosis) of a
    /// rejected token (every problem, facts, hints, and the token's decoded header and claims)
    /// to the rejection (`AuthError::diagnosis`), and the default responder puts it in the
    /// problem body under `diagnosis`. Off by default; turning it on logs a warning, because
    /// it shows clients what the server expects.
    #[must_use]
    pub fn with_diagnosis_in_responses(mut self) -> Self {
        tracing::warn!(
            target: "tower_token_auth",
            "token diagnosis in rejection responses is ON: clients see every problem of their \
             token and what this server expects. Use it in development only."
        );
        self.diagnose = true;
        self
    }

    /// Counters of the verified-token cache (shared by every service this layer made).
    pub fn cache_stats(&self) -> CacheStats {
        self.cache.as_ref().map(|c| c.stats()).unwrap_or_default()
    }

    /// Lets requests without a token through, without claims (`Option<Claims<T>>` is `None`).
    /// A token that is present but invalid is still rejected.
    #[must_use]
    pub fn optional(mut self) -> Self {
        self.mode = Mode::Optional;
        self
    }

    /// Lets requests with no token **or an invalid one** through without claims; the
    /// [`AuthError`](crate::AuthError) of an invalid token is put in the request extensions.
    /// For pages that show more to signed-in users and must never fail for a stale cookie.
    /// `keys_unavailable` and `revocation_unavailable` are still answered with 503.
    #[must_use]
    pub fn anonymous_on_invalid(mut self) -> Self {
        self.mode = Mode::AnonymousOnInvalid;
        self
    }

    /// The configuration.
    pub fn config(&self) -> &AuthConfig {
        &self.config
    }
}

impl<T, R: Clone> Clone for TokenAuthLayer<T, R> {
    fn clone(&self) -> Self {
        TokenAuthLayer {
            config: self.config.clone(),
            responder: self.responder.clone(),
            mode: self.mode,
            cache: self.cache.clone(),
            cache_capacity: self.cache_capacity,
            diagnose: self.diagnose,
            _claims: PhantomData,
        }
    }
}

impl<T, R: fmt::Debug> fmt::Debug for TokenAuthLayer<T, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenAuthLayer")
            .field("config", &self.config)
            .field("responder", &self.responder)
            .field("mode", &self.mode)
            .field("claims", &std::any::type_name::<T>())
            .finish()
    }
}

impl<S, T: 'static, R: Clone> Layer<S> for TokenAuthLayer<T, R> {
    type Service = TokenAuth<S, T, R>;

    fn layer(&self, inner: S) -> Self::Service {
        TokenAuth::new(inner, self.clone())
    }
}
