//! [`AuthConfigBuilder`]: every setting, its default, and the checks of `build()`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::Algorithm;
use serde_json::{Map, Value};

use super::{
    is_header_text, normalize_type, AuthConfig, Check, ConfigInner, Issuer, Trust,
    DEFAULT_MAX_TOKEN_LEN,
};
use crate::clock::{Clock, SystemClock, DEFAULT_LEEWAY, MAX_LEEWAY};
use crate::error::{ClaimError, ConfigError};
use crate::keys::{AlgSet, KeySource, Keys};
use crate::metadata::ResourceMetadata;
use crate::revocation::{Revocation, RevocationPolicy, RevocationStore};
use crate::source::{Bearer, TokenSource};

/// The introspection options of a trust (a placeholder type without the `remote` feature).
#[cfg(feature = "remote")]
type Introspecting = crate::introspection::Introspection;
#[cfg(not(feature = "remote"))]
type Introspecting = std::convert::Infallible;

/// One trust before it is built: issuers, keys, audiences, introspection.
type Spec<'a> = (
    Vec<String>,
    &'a Keys,
    Vec<String>,
    Option<&'a Introspecting>,
);

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
    #[cfg(feature = "remote")]
    introspection: Option<crate::introspection::Introspection>,
    dpop: Option<crate::binding::Dpop>,
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
            #[cfg(feature = "remote")]
            introspection: None,
            dpop: None,
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

    /// Publishes RFC 9728 protected-resource metadata: every challenge (of every responder)
    /// carries `resource_metadata="<url>"`, the layer lets `GET` of
    /// `/.well-known/oauth-protected-resource…` through without a token, and
    /// [`AuthConfig::resource_metadata_service`] serves the document there. See
    /// [`metadata`](crate::metadata).
    ///
    /// ```
    /// use tower_token_auth::{metadata::ResourceMetadata, AuthConfig, Keys};
    ///
    /// let cfg = AuthConfig::builder()
    ///     .keys(Keys::hmac([7u8; 32]))
    ///     .issuer("https://login.example.com")
    ///     .audience("https://api.example.com")
    ///     .resource_metadata(ResourceMetadata::new("https://api.example.com"))
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(
    ///     cfg.resource_metadata_path(),
    ///     Some("/.well-known/oauth-protected-resource")
    /// );
    /// ```
    pub fn resource_metadata(mut self, metadata: ResourceMetadata) -> Self {
        self.metadata = Some(metadata);
        self
    }

    /// The realm for `WWW-Authenticate: Bearer realm="…"` (default: none), the one place it is
    /// set: the layer's responder, [`RequireScope`](crate::RequireScope)'s and
    /// `GrpcResponder` all read it from the request
    /// ([`ChallengeParams`](crate::response::ChallengeParams)). Printable ASCII without `"` or
    /// `\` (else [`build`](AuthConfigBuilder::build) fails).
    ///
    /// ```
    /// use tower_token_auth::{AuthConfig, Keys};
    ///
    /// let cfg = AuthConfig::builder()
    ///     .keys(Keys::hmac([7u8; 32]))
    ///     .issuer("https://login.example.com")
    ///     .audience("api")
    ///     .realm("api")
    ///     .build()
    ///     .unwrap();
    /// # let _ = cfg;
    /// ```
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.realm = Some(realm.into());
        self
    }

    /// Asks the RFC 7662 introspection endpoint of this configuration's issuer (the one given
    /// with [`issuer`](AuthConfigBuilder::issuer) and [`keys`](AuthConfigBuilder::keys)) about
    /// opaque tokens (feature `remote`); for an issuer added with
    /// [`trust`](AuthConfigBuilder::trust), use [`Issuer::introspection`]. See
    /// [`introspection`](crate::introspection).
    ///
    /// ```
    /// use tower_token_auth::{introspection::Introspection, AuthConfig, Keys};
    ///
    /// let cfg = AuthConfig::builder()
    ///     .keys(Keys::remote_oidc("https://login.example.com"))
    ///     .introspection(Introspection::discover().client_secret_basic("api", "s3cret"))
    ///     .audience("api")
    ///     .build()?;
    /// # Ok::<(), tower_token_auth::ConfigError>(())
    /// ```
    #[cfg(feature = "remote")]
    #[cfg_attr(docsrs, doc(cfg(feature = "remote")))]
    pub fn introspection(mut self, introspection: crate::introspection::Introspection) -> Self {
        self.introspection = Some(introspection);
        self
    }

    /// Accepts DPoP (RFC 9449) sender-constrained tokens: [`Dpop::allowed`](crate::binding::Dpop::allowed)
    /// (DPoP and bearer) or [`Dpop::required`](crate::binding::Dpop::required). With the
    /// default sources, `Authorization: DPoP <token>` is then read too (only it, when
    /// required). See [`binding`](crate::binding).
    ///
    /// ```
    /// use tower_token_auth::{binding::Dpop, AuthConfig, Keys};
    ///
    /// let cfg = AuthConfig::builder()
    ///     .keys(Keys::hmac([7u8; 32]))
    ///     .issuer("https://login.example.com")
    ///     .audience("api")
    ///     .dpop(Dpop::required().base_url("https://api.example.com"))
    ///     .build()?;
    /// # let _ = cfg;
    /// # Ok::<(), tower_token_auth::ConfigError>(())
    /// ```
    pub fn dpop(mut self, dpop: crate::binding::Dpop) -> Self {
        self.dpop = Some(dpop);
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
        #[cfg(feature = "remote")]
        let introspects = self.introspection.is_some();
        #[cfg(not(feature = "remote"))]
        let introspects = false;
        if self.keys.is_empty() && self.trusts.is_empty() && !introspects {
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
        let mut specs: Vec<Spec<'_>> = Vec::new();
        #[cfg(feature = "remote")]
        let own_introspection = self.introspection.as_ref();
        #[cfg(not(feature = "remote"))]
        let own_introspection: Option<&Introspecting> = None;
        if !self.keys.is_empty() || own_introspection.is_some() {
            let mut issuers = self.issuers.clone();
            if issuers.is_empty() {
                if let Some(iss) = self.keys.oidc_issuer() {
                    issuers.push(iss);
                }
            }
            specs.push((
                issuers,
                &self.keys,
                self.audiences.clone(),
                own_introspection,
            ));
        } else if !self.issuers.is_empty() {
            return Err(ConfigError::NoKeys);
        }
        for t in &self.trusts {
            let audiences = if t.audiences.is_empty() {
                self.audiences.clone()
            } else {
                t.audiences.clone()
            };
            #[cfg(feature = "remote")]
            let introspection = t.introspection.as_ref();
            #[cfg(not(feature = "remote"))]
            let introspection: Option<&Introspecting> = None;
            specs.push((vec![t.issuer.clone()], &t.keys, audiences, introspection));
        }
        if specs.len() > 1 && self.skip_issuer {
            return Err(ConfigError::SkipIssuerWithSeveral);
        }
        let mut seen = std::collections::HashSet::new();
        let mut trusts = Vec::with_capacity(specs.len());
        let mut verifiable = AlgSet::default();
        #[cfg(feature = "remote")]
        let mut introspection = None;
        for (issuers, keys, audiences, introspecting) in specs {
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
            // An issuer known only through introspection has no keys to build.
            let has_keys = !keys.is_empty();
            let keys = if has_keys {
                let keys = KeySource::build(keys, allowed, &self.clock)?;
                verifiable = verifiable.or(keys.algorithms(allowed));
                keys
            } else {
                KeySource::Static(Arc::new(crate::keys::KeySet::default()))
            };
            #[cfg(feature = "remote")]
            if let Some(options) = introspecting {
                if introspection.is_some() {
                    return Err(ConfigError::SeveralIntrospections);
                }
                let issuer = issuers.first().map(String::as_str);
                let signing = has_keys.then(|| (keys.clone(), allowed));
                let built = options.build(issuer, signing, Arc::clone(&self.clock))?;
                introspection = Some((trusts.len(), built));
            }
            #[cfg(not(feature = "remote"))]
            let _ = introspecting;
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
        let dpop = self
            .dpop
            .as_ref()
            .map(crate::binding::Dpop::build)
            .transpose()?;
        let sources = match (self.sources.is_empty(), &self.dpop) {
            (true, None) => vec![Arc::new(Bearer) as Arc<dyn TokenSource>],
            // With DPoP, the default source reads the DPoP scheme too (only it, if required).
            (true, Some(d)) => vec![Arc::new(crate::source::Authorization {
                bearer: !d.required,
                dpop: true,
            }) as Arc<dyn TokenSource>],
            (false, _) => self.sources,
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
                Some(m.build(methods, self.dpop.as_ref())?)
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
                last_header: Default::default(),
                dpop,
                #[cfg(feature = "remote")]
                introspection,
                revocation: self.revocation.map(|store| {
                    // A token is accepted up to a leeway past `exp`: the store must keep its
                    // revocation at least that long.
                    store.cover_leeway(self.leeway);
                    Revocation {
                        store,
                        policy: self.revocation_policy,
                        retry_after: crate::error::DEFAULT_RETRY_AFTER,
                    }
                }),
            }),
        })
    }
}
