//! [`AuthConfig`]: what a token must be to be accepted, built once and shared.

use std::fmt;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::clock::Clock;
use crate::error::AuthError;
use crate::error::ClaimError;
use crate::keys::KeyStatus;
use crate::keys::{AlgSet, KeySource};
use crate::metadata::{BuiltMetadata, MetadataService};
use crate::revocation::Revocation;
use crate::source::TokenSource;

mod builder;
mod issuer;
mod trust;

pub use builder::AuthConfigBuilder;
pub use issuer::Issuer;

/// Default maximum token length: 16 KiB.
pub const DEFAULT_MAX_TOKEN_LEN: usize = 16 * 1024;

type Check = Arc<dyn Fn(&Map<String, Value>) -> Result<(), ClaimError> + Send + Sync>;

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
    pub(crate) roles_claim: Arc<[String]>,
    pub(crate) metadata: Option<BuiltMetadata>,
    /// The last token header parsed, for the next token with the same one.
    pub(crate) last_header: crate::jws::LastHeader,
    /// DPoP (RFC 9449), when accepted.
    pub(crate) dpop: Option<crate::binding::DpopChecker>,
    /// The one introspecting issuer: its trust's index and its introspector.
    #[cfg(feature = "remote")]
    pub(crate) introspection: Option<(usize, Arc<crate::introspection::Introspector>)>,
}

impl AuthConfig {
    /// Starts a configuration.
    pub fn builder() -> AuthConfigBuilder {
        AuthConfigBuilder::default()
    }

    /// Fetches remote keys now (feature `remote`), so the first requests need not wait, and
    /// finds the introspection endpoint by discovery when it is found that way. Static keys
    /// are always ready.
    ///
    /// # Errors
    ///
    /// `keys_unavailable` if a remote key set could not be fetched, `introspection_unavailable`
    /// if the introspection endpoint could not be discovered; requests will retry.
    pub async fn warm_up(&self) -> Result<(), AuthError> {
        #[cfg(feature = "remote")]
        if let Some((_, introspector)) = &self.inner.introspection {
            if let Err(e) = introspector.warm_up().await {
                return Err(
                    AuthError::new(crate::error::Reason::IntrospectionUnavailable)
                        .with_retry_after(e.retry_after()),
                );
            }
        }
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

    /// The realm sent in `WWW-Authenticate`, if configured (responders read it from the
    /// request: [`ChallengeParams`](crate::response::ChallengeParams)).
    pub(crate) fn realm(&self) -> Option<&str> {
        self.inner.realm.as_deref()
    }

    /// The URL of the RFC 9728 metadata document, if configured: challenges carry it as
    /// `resource_metadata="…"`.
    pub(crate) fn resource_metadata_url(&self) -> Option<&str> {
        self.inner.metadata.as_ref().map(|m| m.url.as_str())
    }

    /// The path of the RFC 9728 metadata document, if configured: where to mount
    /// [`resource_metadata_service`](AuthConfig::resource_metadata_service). The layer lets a
    /// `GET` of this path through without a token.
    ///
    /// ```
    /// use tower_token_auth::{metadata::ResourceMetadata, AuthConfig, Keys};
    ///
    /// let cfg = AuthConfig::builder()
    ///     .keys(Keys::hmac([7u8; 32]))
    ///     .issuer("https://login.example.com")
    ///     .audience("https://api.example.com/mcp")
    ///     .resource_metadata(ResourceMetadata::new("https://api.example.com/mcp"))
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(cfg.resource_metadata_path(), Some("/.well-known/oauth-protected-resource/mcp"));
    /// ```
    pub fn resource_metadata_path(&self) -> Option<&str> {
        self.inner.metadata.as_ref().map(|m| m.path.as_str())
    }

    /// The tower `Service` that serves the RFC 9728 metadata document, if configured: mount it
    /// at [`resource_metadata_path`](AuthConfig::resource_metadata_path) (with axum,
    /// `Router::route_service(path, service)`). See [`metadata`](crate::metadata).
    ///
    /// ```
    /// use axum::{routing::get, Router};
    /// use tower_token_auth::{metadata::ResourceMetadata, AuthConfig, Keys, TokenAuthLayer};
    ///
    /// let cfg = AuthConfig::builder()
    ///     .keys(Keys::hmac([7u8; 32]))
    ///     .issuer("https://login.example.com")
    ///     .audience("https://api.example.com/mcp")
    ///     .resource_metadata(ResourceMetadata::new("https://api.example.com/mcp"))
    ///     .build()
    ///     .unwrap();
    /// let app: Router = Router::new()
    ///     .route("/mcp", get(|| async { "tools" }))
    ///     .route_service(cfg.resource_metadata_path().unwrap(), cfg.resource_metadata_service().unwrap())
    ///     .layer(TokenAuthLayer::new(cfg));
    /// ```
    pub fn resource_metadata_service(&self) -> Option<MetadataService> {
        self.inner.metadata.as_ref().map(MetadataService::new)
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
