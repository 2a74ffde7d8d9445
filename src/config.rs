//! [`AuthConfig`]: what a token must be to be accepted, built once and shared.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::Algorithm;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::clock::{Clock, SystemClock};
use crate::error::AuthError;
use crate::keys::KeyStatus;
use crate::keys::{AlgSet, KeySource, Keys};
use crate::metadata::{BuiltMetadata, ResourceMetadata};
use crate::revocation::{Revocation, RevocationPolicy, RevocationStore};
use crate::source::{Bearer, TokenSource};

/// Default leeway for `exp` and `nbf`: 30 seconds.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
/// Default maximum token length: 16 KiB.
pub const DEFAULT_MAX_TOKEN_LEN: usize = 16 * 1024;
/// The largest leeway accepted at `build()`: 5 minutes.
pub const MAX_LEEWAY: Duration = Duration::from_secs(300);

type Check = Arc<dyn Fn(&Map<String, Value>) -> Result<(), ClaimError> + Send + Sync>;

/// A claim refused by a user check (see [`AuthConfigBuilder::check`]).
///
/// The claim name is shown to clients in the problem body's reason context and in logs: name
/// the claim, do not copy its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimError {
    pub(crate) missing: bool,
    pub(crate) claim: Cow<'static, str>,
}

impl ClaimError {
    /// The claim is absent (reason `missing_claim`).
    pub fn missing(claim: impl Into<Cow<'static, str>>) -> Self {
        ClaimError {
            missing: true,
            claim: claim.into(),
        }
    }

    /// The claim has a value that is not accepted (reason `invalid_claim`).
    pub fn invalid(claim: impl Into<Cow<'static, str>>) -> Self {
        ClaimError {
            missing: false,
            claim: claim.into(),
        }
    }
}

/// A configuration mistake found by [`AuthConfigBuilder::build`]. Each message names the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// No key was given.
    #[error("no verification keys: call .keys(Keys::hmac(..)), .keys(Keys::rsa_pem(..)) or .keys(Keys::jwks_json(..))")]
    NoKeys,
    /// No issuer was configured and the issuer check was not disabled.
    #[error("no issuer configured: call .issuer(\"https://your-issuer.example\"), or .skip_issuer_check() if your tokens carry no `iss`")]
    NoIssuer,
    /// No audience was configured and the audience check was not disabled.
    #[error("no audience configured: call .audience(\"your-api\"), or .skip_audience_check() if your tokens carry no `aud`")]
    NoAudience,
    /// An HMAC secret is shorter than the hash output of its algorithm.
    #[error("{alg:?} secret is {len} bytes; use at least {need} random bytes")]
    WeakSecret {
        /// The algorithm.
        alg: Algorithm,
        /// The secret's length.
        len: usize,
        /// The minimum length.
        need: usize,
    },
    /// A key could not be parsed or used.
    #[error("the {key} cannot be used: {fix}")]
    InvalidKey {
        /// What kind of key.
        key: &'static str,
        /// What to do.
        fix: &'static str,
    },
    /// An algorithm was asked of a key of another family.
    #[error(
        "{alg:?} cannot be verified with an {key}; allow only the algorithms of the key's type"
    )]
    AlgorithmNotForKey {
        /// The algorithm.
        alg: Algorithm,
        /// What kind of key.
        key: &'static str,
    },
    /// Two keys have the same `kid`.
    #[error("two keys have the kid {0:?}; give each key its own kid")]
    DuplicateKid(String),
    /// The allow-list leaves no key usable.
    #[error("none of the keys can verify an allowed algorithm; add a key of the allowed type or widen .algorithms(..)")]
    NoUsableKey,
    /// An allowed algorithm has no key to verify it.
    #[error("{0:?} is allowed but no key can verify it; remove it from .algorithms(..) or add a key for it")]
    AlgorithmWithoutKey(Algorithm),
    /// The leeway is larger than [`MAX_LEEWAY`].
    #[error("a leeway of {0} s is too large (at most 300 s); synchronise clocks with NTP instead")]
    LeewayTooLarge(u64),
    /// The maximum token length is zero.
    #[error("the maximum token length must be at least 1 byte (default 16 KiB)")]
    ZeroTokenLength,
    /// A token source was given an unusable header, cookie or parameter name.
    #[error("`{0}` cannot name a token source: use a non-empty name of visible ASCII (for headers: letters, digits and '-')")]
    InvalidSourceName(String),
    /// Remote keys were combined with other keys for the same issuer.
    #[error("remote keys (JWKS URL or OIDC) cannot be combined with other keys of the same issuer; give them to separate issuers with .trust(Issuer::new(..).keys(..))")]
    RemoteMixed,
    /// A remote key URL is not https.
    #[error("the {0} must use https; for loopback tests call .allow_http() on the Remote options")]
    InsecureUrl(&'static str),
    /// A remote key URL cannot be parsed.
    #[error("the {0} is not a valid URL")]
    InvalidUrl(&'static str),
    /// A remote option is out of range.
    #[error("remote key options out of range: the fetch timeout must be above zero and the minimum TTL at most the maximum")]
    InvalidRemoteOption,
    /// Two trusted issuers have the same `iss`.
    #[error("the issuer {0:?} is trusted twice; give each issuer once")]
    DuplicateIssuer(String),
    /// The issuer check was skipped while several issuers are trusted.
    #[error("skip_issuer_check() cannot be used with several issuers: tokens are routed to their keys by `iss`")]
    SkipIssuerWithSeveral,
    /// The protected resource identifier is not an https URL.
    #[error("the protected resource must be an https URL without query or fragment (http only for localhost), e.g. \"https://api.example.com\"")]
    InvalidResource,
    /// The realm or the required type contains characters that cannot be sent in a header.
    #[error("the {0} must be printable ASCII without `\"` or `\\`")]
    InvalidText(&'static str),
}

/// What a token must be to be accepted, and where it is looked for. Cheap to clone (one
/// `Arc`); build it once with [`AuthConfig::builder`] and share it between layers.
///
/// Defaults: `Authorization: Bearer` source, `exp` required, `nbf` checked, 30 s leeway,
/// tokens up to 16 KiB, every algorithm the keys allow, system clock, no realm.
///
/// ```
/// use tower_token_auth::{AuthConfig, Keys};
/// use std::time::Duration;
///
/// let cfg = AuthConfig::builder()
///     .keys(Keys::hmac(b"0123456789abcdef0123456789abcdef"))
///     .issuer("https://login.example.com")
///     .audience("api://orders")
///     .leeway(Duration::from_secs(10))
///     .build()?;
/// # Ok::<(), tower_token_auth::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct AuthConfig {
    pub(crate) inner: Arc<ConfigInner>,
}

/// Keys and audiences for one or more issuers.
pub(crate) struct Trust {
    pub(crate) issuers: Vec<String>,
    pub(crate) keys: KeySource,
    pub(crate) audiences: Vec<String>,
}

pub(crate) struct ConfigInner {
    pub(crate) trusts: Vec<Trust>,
    /// The configuration's algorithm allow-list (all algorithms if not narrowed).
    pub(crate) allowed: AlgSet,
    pub(crate) check_issuer: bool,
    pub(crate) check_audience: bool,
    pub(crate) leeway: i64,
    pub(crate) required_type: Option<String>,
    pub(crate) required_claims: Vec<String>,
    pub(crate) checks: Vec<Check>,
    pub(crate) max_token_len: usize,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) sources: Vec<Arc<dyn TokenSource>>,
    pub(crate) realm: Option<String>,
    pub(crate) revocation: Option<Revocation>,
    pub(crate) roles_claim: Vec<String>,
    pub(crate) metadata: Option<BuiltMetadata>,
}

impl AuthConfig {
    /// Starts a configuration.
    pub fn builder() -> AuthConfigBuilder {
        AuthConfigBuilder::default()
    }

    /// Validates a token outside HTTP (websockets, gRPC interceptors, tests) and returns its
    /// claims as `T`.
    ///
    /// Runs exactly the checks the layer runs. A token whose claims do not deserialize into
    /// `T` is rejected as `invalid_claim`.
    ///
    /// # Errors
    ///
    /// The [`AuthError`] the layer would have answered with.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use tower_token_auth::{AuthConfig, Keys, Reason, StandardClaims};
    ///
    /// let cfg = AuthConfig::builder()
    ///     .keys(Keys::hmac(b"0123456789abcdef0123456789abcdef"))
    ///     .issuer("https://issuer.example")
    ///     .audience("api")
    ///     .build()
    ///     .unwrap();
    /// let err = cfg.validate::<StandardClaims>("not-a-jwt").await.unwrap_err();
    /// assert_eq!(err.reason(), Reason::Malformed);
    /// # }
    /// ```
    pub async fn validate<T: DeserializeOwned>(&self, token: &str) -> Result<T, AuthError> {
        let claims = crate::validate::validate(&self.inner, token)
            .await
            .map_err(|e| e.with_fingerprint(token))?;
        crate::validate::into_claims(claims)
    }

    /// Fetches remote keys now (feature `remote`), so the first requests need not wait.
    /// Static keys are always ready.
    ///
    /// # Errors
    ///
    /// `keys_unavailable` if a remote key set could not be fetched; requests will retry.
    pub async fn warm_up(&self) -> Result<(), AuthError> {
        #[cfg(feature = "remote")]
        for trust in &self.inner.trusts {
            if let KeySource::Remote(r) = &trust.keys {
                r.fetch(false).await;
                if !r.status().ready {
                    return Err(r.unavailable());
                }
            }
        }
        Ok(())
    }

    /// `true` when every issuer has usable keys (for readiness probes).
    pub fn is_ready(&self) -> bool {
        self.key_status().iter().all(|s| s.ready)
    }

    /// The state of each remote key source (empty with static keys only).
    pub fn key_status(&self) -> Vec<KeyStatus> {
        #[cfg(feature = "remote")]
        {
            self.inner
                .trusts
                .iter()
                .filter_map(|t| match &t.keys {
                    KeySource::Remote(r) => Some(r.status()),
                    KeySource::Static(_) => None,
                })
                .collect()
        }
        #[cfg(not(feature = "remote"))]
        {
            Vec::new()
        }
    }

    /// The realm sent in `WWW-Authenticate`, if configured.
    pub fn realm(&self) -> Option<&str> {
        self.inner.realm.as_deref()
    }

    /// The RFC 9728 metadata document, if configured (to serve it yourself).
    pub fn resource_metadata_json(&self) -> Option<&str> {
        self.inner.metadata.as_ref().map(|m| m.json.as_str())
    }

    /// The URL of the RFC 9728 metadata document, if configured.
    pub fn resource_metadata_url(&self) -> Option<&str> {
        self.inner.metadata.as_ref().map(|m| m.url.as_str())
    }

    /// The current time as the configured clock sees it (seconds since the epoch).
    pub fn now(&self) -> i64 {
        self.inner.clock.now()
    }
}

impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.inner;
        f.debug_struct("AuthConfig")
            .field(
                "issuers",
                &c.trusts
                    .iter()
                    .map(|t| (&t.issuers, &t.keys, &t.audiences))
                    .collect::<Vec<_>>(),
            )
            .field("leeway", &c.leeway)
            .field("required_type", &c.required_type)
            .field("required_claims", &c.required_claims)
            .field("max_token_len", &c.max_token_len)
            .field(
                "sources",
                &c.sources.iter().map(|s| s.name()).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// Builds an [`AuthConfig`]; every mistake is reported by [`build`](AuthConfigBuilder::build).
#[must_use]
pub struct AuthConfigBuilder {
    keys: Keys,
    trusts: Vec<Issuer>,
    issuers: Vec<String>,
    skip_issuer: bool,
    audiences: Vec<String>,
    skip_audience: bool,
    leeway: Duration,
    algorithms: Option<Vec<Algorithm>>,
    required_type: Option<String>,
    required_claims: Vec<String>,
    checks: Vec<Check>,
    max_token_len: usize,
    clock: Arc<dyn Clock>,
    sources: Vec<Arc<dyn TokenSource>>,
    realm: Option<String>,
    revocation: Option<Arc<dyn RevocationStore>>,
    revocation_policy: RevocationPolicy,
    roles_claim: String,
    metadata: Option<ResourceMetadata>,
}

impl Default for AuthConfigBuilder {
    fn default() -> Self {
        AuthConfigBuilder {
            keys: Keys::default(),
            trusts: Vec::new(),
            issuers: Vec::new(),
            skip_issuer: false,
            audiences: Vec::new(),
            skip_audience: false,
            leeway: DEFAULT_LEEWAY,
            algorithms: None,
            required_type: None,
            required_claims: Vec::new(),
            checks: Vec::new(),
            max_token_len: DEFAULT_MAX_TOKEN_LEN,
            clock: Arc::new(SystemClock),
            sources: Vec::new(),
            realm: None,
            revocation: None,
            revocation_policy: RevocationPolicy::FailClosed,
            roles_claim: "roles".to_owned(),
            metadata: None,
        }
    }
}

impl fmt::Debug for AuthConfigBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthConfigBuilder")
            .field("keys", &self.keys)
            .field("issuers", &self.issuers)
            .field("audiences", &self.audiences)
            .finish_non_exhaustive()
    }
}

impl AuthConfigBuilder {
    /// Adds verification keys (call again to add more). See [`Keys`] for how a token finds
    /// its key.
    pub fn keys(mut self, keys: Keys) -> Self {
        self.keys = std::mem::take(&mut self.keys).and(keys);
        self
    }

    /// Trusts another issuer with its own keys (and audiences, else those of
    /// [`audience`](AuthConfigBuilder::audience)). A token is routed to its issuer's keys by
    /// its `iss`; keys are looked up per issuer, never across issuers.
    ///
    /// ```
    /// use tower_token_auth::{AuthConfig, Issuer, Keys};
    ///
    /// let cfg = AuthConfig::builder()
    ///     .trust(Issuer::new("https://a.example").keys(Keys::hmac([1u8; 32])))
    ///     .trust(Issuer::new("https://b.example").keys(Keys::hmac([2u8; 32])).audience("api-b"))
    ///     .audience("api")
    ///     .build()
    ///     .unwrap();
    /// ```
    pub fn trust(mut self, issuer: Issuer) -> Self {
        self.trusts.push(issuer);
        self
    }

    /// Adds an accepted issuer for the keys given with [`keys`](AuthConfigBuilder::keys):
    /// `iss` must equal one of them exactly.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuers.push(issuer.into());
        self
    }

    /// Accepts tokens without checking `iss`. Only for tokens that carry no issuer; with
    /// several token issuers sharing keys this lets any of them in.
    pub fn skip_issuer_check(mut self) -> Self {
        self.skip_issuer = true;
        self
    }

    /// Adds an accepted audience: `aud` (a string or an array) must contain one of them.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Accepts tokens without checking `aud`. A token minted for another service of the
    /// same issuer is then accepted here too.
    pub fn skip_audience_check(mut self) -> Self {
        self.skip_audience = true;
        self
    }

    /// Clock-skew allowance for `exp` and `nbf` (default 30 s, at most 5 min).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Narrows the accepted algorithms (default: all that the keys allow). An algorithm no
    /// key can verify is a build error.
    pub fn algorithms(mut self, algs: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = Some(algs.into_iter().collect());
        self
    }

    /// Requires the header `typ` (compared case-insensitively, with an optional
    /// `application/` prefix): e.g. `"at+jwt"`.
    pub fn require_type(mut self, typ: impl Into<String>) -> Self {
        self.required_type = Some(normalize_type(&typ.into()));
        self
    }

    /// The RFC 9068 JWT access-token profile in one switch: `typ` must be `at+jwt` and
    /// `iss`, `exp`, `aud`, `sub`, `client_id`, `iat` and `jti` must be present.
    pub fn access_token_profile(mut self) -> Self {
        self.required_type = Some("at+jwt".to_owned());
        for claim in ["iss", "exp", "aud", "sub", "client_id", "iat", "jti"] {
            if !self.required_claims.iter().any(|c| c == claim) {
                self.required_claims.push(claim.to_owned());
            }
        }
        self
    }

    /// Requires a claim to be present and not `null` (reason `missing_claim` otherwise).
    pub fn require_claim(mut self, claim: impl Into<String>) -> Self {
        self.required_claims.push(claim.into());
        self
    }

    /// Adds a check run on the claims (as JSON) of every token; an error rejects the token
    /// as `missing_claim` or `invalid_claim`. It runs on every request, verified-token cache
    /// hits included, so its answer may depend on time or outside state (a maximum age from
    /// `iat`, a list of disabled tenants): keep it cheap.
    ///
    /// ```
    /// use tower_token_auth::{AuthConfig, ClaimError, Keys};
    ///
    /// let cfg = AuthConfig::builder()
    ///     .keys(Keys::hmac(b"0123456789abcdef0123456789abcdef"))
    ///     .issuer("https://issuer.example")
    ///     .audience("api")
    ///     .check(|claims| match claims.get("tenant").and_then(|t| t.as_str()) {
    ///         Some("acme") => Ok(()),
    ///         Some(_) => Err(ClaimError::invalid("tenant")),
    ///         None => Err(ClaimError::missing("tenant")),
    ///     })
    ///     .build()
    ///     .unwrap();
    /// ```
    pub fn check<F>(mut self, check: F) -> Self
    where
        F: Fn(&Map<String, Value>) -> Result<(), ClaimError> + Send + Sync + 'static,
    {
        self.checks.push(Arc::new(check));
        self
    }

    /// The longest token accepted (default 16 KiB); longer ones are `too_large` before any
    /// decoding.
    pub fn max_token_len(mut self, bytes: usize) -> Self {
        self.max_token_len = bytes;
        self
    }

    /// The clock validation reads (default: the system clock).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Adds a place to look for the token. The first call replaces the default
    /// (`Authorization: Bearer`); add it back with [`source::bearer()`](crate::source::bearer)
    /// to keep it. A token found by two sources is `invalid_request`.
    pub fn source(mut self, source: impl TokenSource) -> Self {
        self.sources.push(Arc::new(source));
        self
    }

    /// Consults `store` for every token that passed all other checks (see
    /// [`revocation`](crate::revocation)). Keep a handle (e.g. an `Arc` of the store) to revoke
    /// tokens from your logout handlers.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use std::sync::Arc;
    /// use tower_token_auth::revocation::{MemoryRevocationStore, RevocationStore};
    /// use tower_token_auth::{AuthConfig, Keys};
    ///
    /// let revoked = Arc::new(MemoryRevocationStore::new());
    /// let cfg = AuthConfig::builder()
    ///     .keys(Keys::hmac([7u8; 32]))
    ///     .issuer("https://issuer.example")
    ///     .audience("api")
    ///     .revocation(revoked.clone())
    ///     .build()
    ///     .unwrap();
    /// revoked.revoke_token("jti-of-the-token", 2_000_000_000).await.unwrap();
    /// # }
    /// ```
    pub fn revocation(mut self, store: impl RevocationStore) -> Self {
        self.revocation = Some(Arc::new(store));
        self
    }

    /// What to do when the revocation store cannot answer (default
    /// [`RevocationPolicy::FailClosed`]: 503 `revocation_unavailable`).
    pub fn revocation_policy(mut self, policy: RevocationPolicy) -> Self {
        self.revocation_policy = policy;
        self
    }

    /// Where roles are read from, as a dotted claim path (default `roles`; e.g.
    /// `realm_access.roles` for Keycloak, `groups` for Okta, `cognito:groups` for Cognito).
    /// The value may be an array of strings or a space-separated string.
    pub fn roles_claim(mut self, path: impl Into<String>) -> Self {
        self.roles_claim = path.into();
        self
    }

    /// Publishes RFC 9728 protected-resource metadata: the layer serves it at
    /// `/.well-known/oauth-protected-resource` and challenges carry `resource_metadata`.
    /// See [`metadata`](crate::metadata).
    pub fn resource_metadata(mut self, metadata: ResourceMetadata) -> Self {
        self.metadata = Some(metadata);
        self
    }

    /// The realm for `WWW-Authenticate: Bearer realm="…"` (default: none).
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.realm = Some(realm.into());
        self
    }

    /// Checks the configuration and builds it.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the fix: no keys, no issuer or audience (unless their check
    /// was skipped), an HMAC secret shorter than the hash output, a key that cannot be parsed,
    /// an allowed algorithm no key can verify, a leeway over 5 minutes, a realm that cannot be
    /// sent in a header.
    pub fn build(self) -> Result<AuthConfig, ConfigError> {
        crate::crypto::install_default_provider();
        if self.keys.is_empty() && self.trusts.is_empty() {
            return Err(ConfigError::NoKeys);
        }
        if self.leeway > MAX_LEEWAY {
            return Err(ConfigError::LeewayTooLarge(self.leeway.as_secs()));
        }
        if self.max_token_len == 0 {
            return Err(ConfigError::ZeroTokenLength);
        }
        if let Some(realm) = &self.realm {
            if !is_header_text(realm) {
                return Err(ConfigError::InvalidText("realm"));
            }
        }
        if let Some(typ) = &self.required_type {
            if !is_header_text(typ) || typ.is_empty() || typ.contains(' ') {
                return Err(ConfigError::InvalidText("required type"));
            }
        }
        for source in &self.sources {
            source.check()?;
        }
        let allowed = match &self.algorithms {
            Some(list) => AlgSet::of(list.iter().copied()),
            None => AlgSet::all(),
        };

        // The builder's own keys and issuers form the first trust; `.trust(..)` adds more.
        let mut specs: Vec<(Vec<String>, &Keys, Vec<String>)> = Vec::new();
        if !self.keys.is_empty() {
            let mut issuers = self.issuers.clone();
            if issuers.is_empty() {
                if let Some(iss) = self.keys.oidc_issuer() {
                    issuers.push(iss);
                }
            }
            specs.push((issuers, &self.keys, self.audiences.clone()));
        } else if !self.issuers.is_empty() {
            return Err(ConfigError::NoKeys);
        }
        for t in &self.trusts {
            let audiences = if t.audiences.is_empty() {
                self.audiences.clone()
            } else {
                t.audiences.clone()
            };
            specs.push((vec![t.issuer.clone()], &t.keys, audiences));
        }
        if specs.len() > 1 && self.skip_issuer {
            return Err(ConfigError::SkipIssuerWithSeveral);
        }
        let mut seen = std::collections::HashSet::new();
        let mut trusts = Vec::with_capacity(specs.len());
        let mut verifiable = AlgSet::default();
        for (issuers, keys, audiences) in specs {
            if issuers.is_empty() && !self.skip_issuer {
                return Err(ConfigError::NoIssuer);
            }
            if audiences.is_empty() && !self.skip_audience {
                return Err(ConfigError::NoAudience);
            }
            for iss in &issuers {
                if !seen.insert(iss.clone()) {
                    return Err(ConfigError::DuplicateIssuer(iss.clone()));
                }
            }
            let keys = KeySource::build(keys, allowed, &self.clock)?;
            verifiable = verifiable.or(keys.algorithms(allowed));
            trusts.push(Trust {
                issuers,
                keys,
                audiences: if self.skip_audience {
                    Vec::new()
                } else {
                    audiences
                },
            });
        }
        if let Some(list) = &self.algorithms {
            for alg in list {
                if !verifiable.contains(*alg) {
                    return Err(ConfigError::AlgorithmWithoutKey(*alg));
                }
            }
        }
        let sources = if self.sources.is_empty() {
            vec![Arc::new(Bearer) as Arc<dyn TokenSource>]
        } else {
            self.sources
        };
        let leeway = i64::try_from(self.leeway.as_secs()).unwrap_or(300);
        let metadata = match self.metadata {
            Some(m) => {
                let mut methods: Vec<&'static str> = Vec::new();
                for s in &sources {
                    let m = match s.name() {
                        "authorization" | "header" => "header",
                        "query" => "query",
                        _ => continue,
                    };
                    if !methods.contains(&m) {
                        methods.push(m);
                    }
                }
                Some(m.build(methods)?)
            }
            None => None,
        };
        Ok(AuthConfig {
            inner: Arc::new(ConfigInner {
                check_issuer: !self.skip_issuer,
                check_audience: !self.skip_audience,
                trusts,
                allowed,
                leeway,
                required_type: self.required_type,
                required_claims: self.required_claims,
                checks: self.checks,
                max_token_len: self.max_token_len,
                clock: self.clock,
                sources,
                realm: self.realm,
                roles_claim: self.roles_claim.split('.').map(str::to_owned).collect(),
                metadata,
                revocation: self.revocation.map(|store| {
                    // A token is accepted up to a leeway past `exp`: the store must keep its
                    // revocation at least that long.
                    store.cover_leeway(self.leeway);
                    Revocation {
                        store,
                        policy: self.revocation_policy,
                        retry_after: crate::response::DEFAULT_RETRY_AFTER,
                    }
                }),
            }),
        })
    }
}

/// An issuer trusted with its own keys; see [`AuthConfigBuilder::trust`].
#[derive(Clone, Debug)]
#[must_use]
pub struct Issuer {
    issuer: String,
    keys: Keys,
    audiences: Vec<String>,
}

impl Issuer {
    /// An issuer (the exact `iss` value). Give it keys with [`keys`](Issuer::keys).
    pub fn new(issuer: impl Into<String>) -> Self {
        Issuer {
            issuer: issuer.into(),
            keys: Keys::default(),
            audiences: Vec::new(),
        }
    }

    /// An OpenID Connect issuer whose keys are found by discovery (feature `remote`).
    #[cfg(feature = "remote")]
    #[cfg_attr(docsrs, doc(cfg(feature = "remote")))]
    pub fn oidc(issuer: impl Into<String>) -> Self {
        let issuer = issuer.into();
        Issuer::new(issuer.clone()).keys(Keys::remote_oidc(issuer))
    }

    /// Adds keys of this issuer.
    pub fn keys(mut self, keys: Keys) -> Self {
        self.keys = std::mem::take(&mut self.keys).and(keys);
        self
    }

    /// Adds an audience accepted for this issuer's tokens (default: the configuration's).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }
}

/// Lower-cases a media type and strips an `application/` prefix (RFC 7515 §4.1.9). Nothing
/// is trimmed: `" at+jwt"` is another type.
pub(crate) fn normalize_type(typ: &str) -> String {
    let lower = typ.to_ascii_lowercase();
    match lower.strip_prefix("application/") {
        Some(rest) => rest.to_owned(),
        None => lower,
    }
}

/// `true` if a token's `typ` names the `required` type (already normalized): compared
/// case-insensitively, with an optional `application/` prefix and nothing else (no trimming).
pub(crate) fn type_matches(typ: &str, required: &str) -> bool {
    const PREFIX: &str = "application/";
    let typ = match typ.get(..PREFIX.len()) {
        Some(p) if p.eq_ignore_ascii_case(PREFIX) => &typ[PREFIX.len()..],
        _ => typ,
    };
    typ.eq_ignore_ascii_case(required)
}

/// `true` if the text can sit inside a quoted-string of a header without escaping.
fn is_header_text(s: &str) -> bool {
    s.bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
}
