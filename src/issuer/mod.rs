//! Self-issued tokens with refresh (feature `issuer`): for apps that are their own issuer.
//!
//! A [`TokenIssuer`] signs, with the same key types the layer verifies (HMAC, RSA, EC,
//! Ed25519):
//!
//! - **access tokens**: header `typ: at+jwt`, short-lived (default 10 minutes), with the
//!   RFC 9068 claims `iss`, `sub`, `aud`, `exp`, `iat`, `nbf`, `jti`, `client_id`, plus `sid`
//!   (the session: the refresh-token family), `auth_time` (the login) and your own claims
//!   (`scope`, roles, ...);
//! - **refresh tokens**: header `typ: rt+jwt`, long-lived (default 14 days), with `fam` (the
//!   family id, equal to the access tokens' `sid`), `aud` set to the issuer itself (they are
//!   only ever sent back to it) and your claims kept in `ext`, so a refresh issues the same
//!   claims again.
//!
//! [`TokenIssuer::auth_config`] is an [`AuthConfigBuilder`] preset to verify this issuer's
//! access tokens (same key, issuer, audience, the RFC 9068 profile, so `typ` must be
//! `at+jwt`): a refresh token presented as an access token is rejected as `wrong_type`.
//!
//! # Rotation and reuse detection
//!
//! [`TokenIssuer::refresh`] verifies a refresh token, then rotates: it issues a new access
//! token and a new refresh token of the same family, and the presented one becomes used.
//! Presenting a refresh token that was already rotated means two parties hold the family
//! (one of them stole it), so the **whole family is revoked**: every refresh token of it is
//! refused from then on, and the error's reason is `revoked`.
//!
//! Family state lives in a [`RefreshStore`] (default [`MemoryRefreshStore`]: one process;
//! entries expire with the family's last refresh token). The trait has three methods, so a
//! shared store (Redis, SQL) is a small implementation.
//!
//! # Revoking access tokens too
//!
//! Access tokens are self-contained: revoking a family stops refreshes, but the access
//! tokens already issued stay valid until their `exp` unless the layer consults a
//! [`RevocationStore`]. Give the issuer one with [`TokenIssuerBuilder::revocation`] (e.g. an
//! `Arc<MemoryRevocationStore>`); [`auth_config`](TokenIssuer::auth_config) attaches the same
//! store to the layer's configuration. The store of a family records the `jti` and `exp` of
//! the access tokens issued in it that can still be live; when a family is revoked (reuse
//! detected, [`logout`](TokenIssuer::logout), [`revoke_session`](TokenIssuer::revoke_session))
//! each of them is revoked by `jti`. This revokes exactly that session's tokens: revoking
//! "every token of the subject issued before now" would also end the subject's other
//! sessions (other devices). To end them all ("log out everywhere"), call
//! [`RevocationStore::revoke_subject`] yourself: refresh tokens are checked against the same
//! store, so it ends refreshes as well.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use tower_token_auth::issuer::{Login, RefreshError, TokenIssuer};
//! use tower_token_auth::revocation::MemoryRevocationStore;
//! use tower_token_auth::{Reason, StandardClaims, TokenAuthLayer};
//!
//! let revoked = Arc::new(MemoryRevocationStore::new());
//! let issuer = TokenIssuer::builder()
//!     .hmac(b"a secret of at least thirty-two bytes!!")
//!     .issuer("https://app.example")
//!     .audience("https://app.example/api")
//!     .revocation(revoked.clone())
//!     .build()?;
//!
//! // The layer verifies this issuer's access tokens.
//! let cfg = issuer.auth_config().build()?;
//! let _layer = TokenAuthLayer::new(cfg.clone());
//!
//! // Login.
//! let pair = issuer.issue(Login::new("alice").scope("orders:read")).await?;
//! let claims: StandardClaims = cfg.validate(&pair.access_token).await?;
//! assert_eq!(claims.sub.as_deref(), Some("alice"));
//!
//! // A refresh token is not an access token.
//! let err = cfg.validate::<StandardClaims>(&pair.refresh_token).await.unwrap_err();
//! assert_eq!(err.reason(), Reason::WrongType);
//!
//! // Refresh rotates; the old refresh token must not come back.
//! let next = issuer.refresh(&pair.refresh_token).await?;
//! let reused = issuer.refresh(&pair.refresh_token).await.unwrap_err();
//! assert!(matches!(reused, RefreshError::Reused));
//! assert_eq!(reused.reason(), Reason::Revoked);
//!
//! // The whole family is revoked: the newest refresh token and its access token too.
//! assert!(issuer.refresh(&next.refresh_token).await.is_err());
//! let err = cfg.validate::<StandardClaims>(&next.access_token).await.unwrap_err();
//! assert_eq!(err.reason(), Reason::Revoked);
//! # Ok(()) }
//! ```
//!
//! # Known limits
//!
//! - Two concurrent refreshes with the same refresh token (two browser tabs) count as reuse
//!   and end the session: serialize refreshes on the client.
//! - One signing key per issuer; to rotate keys, verify the old key's tokens with an extra
//!   [`Issuer`](crate::Issuer) trust until they expired.

mod mint;
mod store;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::Algorithm;
use serde_json::{Map, Value};

use crate::clock::{Clock, SystemClock};
use crate::config::{AuthConfig, AuthConfigBuilder, ConfigError};
use crate::error::{AuthError, Reason};
use crate::keys::Keys;
use crate::revocation::{RevocationError, RevocationStore};

use self::mint::{random_id, KeyInput, Signer};
pub use self::store::{Generation, IssuedToken, MemoryRefreshStore, RefreshStore, Rotation};

/// The `typ` of access tokens (RFC 9068).
pub const ACCESS_TOKEN_TYPE: &str = "at+jwt";
/// The `typ` of refresh tokens.
pub const REFRESH_TOKEN_TYPE: &str = "rt+jwt";
/// Default access-token lifetime: 10 minutes.
pub const DEFAULT_ACCESS_TTL: Duration = Duration::from_secs(10 * 60);
/// Default refresh-token lifetime: 14 days (sliding: each rotation starts a new period).
pub const DEFAULT_REFRESH_TTL: Duration = Duration::from_secs(14 * 24 * 60 * 60);

/// Claims the issuer sets itself; a [`Login`] cannot set them.
const RESERVED: [&str; 12] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "nbf",
    "jti",
    "client_id",
    "sid",
    "auth_time",
    "fam",
    "ext",
];

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

/// A mistake found by [`TokenIssuerBuilder::build`]. Each message names the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// No signing key was given.
    #[error("no signing key: call .hmac(secret), .rsa_pem(pem), .ec_pem(pem), .ed_pem(pem) or .random_hmac()")]
    NoKey,
    /// The key could not be parsed or cannot sign.
    #[error("the {0} cannot be used: give an unencrypted private key in PEM (`BEGIN PRIVATE KEY`; RSA also `BEGIN RSA PRIVATE KEY`, at least 2048 bits)")]
    InvalidKey(&'static str),
    /// The algorithm does not fit the key.
    #[error("{alg:?} cannot be signed with an {key}; choose an algorithm of the key's type")]
    AlgorithmNotForKey {
        /// The algorithm asked for.
        alg: Algorithm,
        /// The kind of key.
        key: &'static str,
    },
    /// A lifetime is zero, or refresh tokens would not outlive access tokens.
    #[error("token lifetimes must be at least 1 s and the refresh-token lifetime longer than the access-token lifetime")]
    InvalidTtl,
    /// The operating system's random generator failed (for `random_hmac`).
    #[error("no randomness available from the operating system")]
    NoRandomness,
    /// The issuer, audience or key is refused by the verification side (e.g. no issuer, a
    /// short HMAC secret).
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// The refresh store could not answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("refresh store unavailable: {0}")]
pub struct RefreshStoreError(pub String);

/// Tokens could not be issued.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IssueError {
    /// A [`Login`] tried to set a claim the issuer sets itself.
    #[error("the claim `{0}` is set by the issuer; a Login cannot set it")]
    ReservedClaim(String),
    /// The refresh store could not record the new family.
    #[error(transparent)]
    Store(#[from] RefreshStoreError),
    /// Signing or random-id generation failed.
    #[error("token signing failed: {0}")]
    Crypto(String),
}

/// A refresh or logout was refused or could not complete.
///
/// [`reason`](RefreshError::reason) and [`to_auth_error`](RefreshError::to_auth_error) give
/// the [`Reason`] and the [`AuthError`] to answer with (e.g. through
/// [`problem_response`](crate::response::problem_response)).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RefreshError {
    /// The token did not verify (expired, bad signature, `wrong_type`, ...).
    #[error("{0}")]
    Invalid(AuthError),
    /// A refresh token that had already been rotated was presented: its whole family is now
    /// revoked. Reason `revoked`.
    #[error("refresh token reused after rotation: the session was revoked")]
    Reused,
    /// The family was revoked (logout, earlier reuse) or is unknown to the store (expired,
    /// store restarted). Reason `revoked`.
    #[error("the session was revoked")]
    Revoked,
    /// The refresh store could not answer. Reason `revocation_unavailable` (503).
    #[error(transparent)]
    Store(RefreshStoreError),
    /// The revocation store could not record a revocation. Reason `revocation_unavailable`
    /// (503).
    #[error(transparent)]
    Revocation(RevocationError),
    /// The new tokens could not be signed. Reason `keys_unavailable` (503).
    #[error(transparent)]
    Issue(IssueError),
}

impl RefreshError {
    /// The reason to report.
    pub fn reason(&self) -> Reason {
        match self {
            RefreshError::Invalid(e) => e.reason(),
            RefreshError::Reused | RefreshError::Revoked => Reason::Revoked,
            RefreshError::Store(_) | RefreshError::Revocation(_) => Reason::RevocationUnavailable,
            RefreshError::Issue(_) => Reason::KeysUnavailable,
        }
    }

    /// The HTTP status of [`reason`](RefreshError::reason).
    pub fn status(&self) -> http::StatusCode {
        self.reason().status()
    }

    /// The [`AuthError`] to answer with (with `Retry-After` for the 503 reasons).
    pub fn to_auth_error(&self) -> AuthError {
        match self {
            RefreshError::Invalid(e) => e.clone(),
            other => {
                let reason = other.reason();
                let err = AuthError::new(reason);
                if reason.is_unavailable() {
                    err.with_retry_after(crate::response::DEFAULT_RETRY_AFTER)
                } else {
                    err
                }
            }
        }
    }
}

impl From<RefreshError> for AuthError {
    fn from(e: RefreshError) -> Self {
        e.to_auth_error()
    }
}

// ---------------------------------------------------------------------------------------
// Login and TokenPair
// ---------------------------------------------------------------------------------------

/// Who the tokens are for and what they carry: the subject, the `client_id` and your own
/// claims. The issuer sets the registered ones (`iss`, `sub`, `aud`, `exp`, `iat`, `nbf`,
/// `jti`, `client_id`, `sid`, `auth_time`); giving one of those with
/// [`claim`](Login::claim) makes [`TokenIssuer::issue`] fail with
/// [`IssueError::ReservedClaim`].
///
/// ```
/// use tower_token_auth::issuer::Login;
///
/// let login = Login::new("alice")
///     .scope("orders:read orders:write")
///     .claim("roles", serde_json::json!(["admin"]))
///     .claim("name", "Alice");
/// # let _ = login;
/// ```
#[derive(Clone, Debug, PartialEq)]
#[must_use]
pub struct Login {
    subject: String,
    client_id: Option<String>,
    claims: Map<String, Value>,
}

impl Login {
    /// Tokens for `subject` (the `sub` claim: a stable user id).
    pub fn new(subject: impl Into<String>) -> Self {
        Login {
            subject: subject.into(),
            client_id: None,
            claims: Map::new(),
        }
    }

    /// Sets `scope` (space-separated scopes).
    pub fn scope(self, scope: impl Into<String>) -> Self {
        self.claim("scope", scope.into())
    }

    /// Sets any other claim; kept through refreshes.
    pub fn claim(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.claims.insert(name.into(), value.into());
        self
    }

    /// Sets `client_id` (default: the issuer's, see [`TokenIssuerBuilder::client_id`]), e.g.
    /// `"web"` or `"ios"`. Kept through refreshes.
    pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = Some(client_id.into());
        self
    }

    /// The subject.
    pub fn subject(&self) -> &str {
        &self.subject
    }
}

/// An access token and a refresh token of one family.
///
/// Serializes as an OAuth 2.0 token response (RFC 6749 §5.1): `access_token`, `token_type`,
/// `expires_in`, `refresh_token`, plus `refresh_expires_in`. `Debug` does not show the
/// tokens.
#[derive(Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct TokenPair {
    /// The access token (`typ: at+jwt`).
    pub access_token: String,
    /// Always `"Bearer"`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// The refresh token (`typ: rt+jwt`).
    pub refresh_token: String,
    /// Seconds until the refresh token expires.
    pub refresh_expires_in: u64,
    /// The access token's `exp` (seconds since the epoch).
    #[serde(skip)]
    pub access_expires_at: i64,
    /// The refresh token's `exp` (seconds since the epoch).
    #[serde(skip)]
    pub refresh_expires_at: i64,
    /// The family id: the refresh token's `fam` and the access token's `sid`.
    #[serde(skip)]
    pub session_id: String,
}

impl fmt::Debug for TokenPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenPair")
            .field("access_token", &"[redacted]")
            .field("refresh_token", &"[redacted]")
            .field("expires_in", &self.expires_in)
            .field("refresh_expires_in", &self.refresh_expires_in)
            .field("session_id", &self.session_id)
            .finish()
    }
}

// ---------------------------------------------------------------------------------------
// Builder
// ---------------------------------------------------------------------------------------

/// Builds a [`TokenIssuer`]; see [`TokenIssuer::builder`].
///
/// Required: a signing key, [`issuer`](TokenIssuerBuilder::issuer) and
/// [`audience`](TokenIssuerBuilder::audience). Defaults: access tokens 10 minutes, refresh
/// tokens 14 days (sliding), no maximum session length, `client_id` = the issuer, the system
/// clock, a [`MemoryRefreshStore`], no revocation store.
#[must_use]
pub struct TokenIssuerBuilder {
    key: Option<KeyInput>,
    algorithm: Option<Algorithm>,
    kid: Option<String>,
    issuer: Option<String>,
    audiences: Vec<String>,
    client_id: Option<String>,
    access_ttl: Duration,
    refresh_ttl: Duration,
    max_session: Option<Duration>,
    clock: Arc<dyn Clock>,
    store: Option<Arc<dyn RefreshStore>>,
    revocation: Option<Arc<dyn RevocationStore>>,
}

impl fmt::Debug for TokenIssuerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenIssuerBuilder")
            .field("algorithm", &self.algorithm)
            .field("kid", &self.kid)
            .field("issuer", &self.issuer)
            .field("audiences", &self.audiences)
            .finish_non_exhaustive()
    }
}

impl Default for TokenIssuerBuilder {
    fn default() -> Self {
        TokenIssuerBuilder {
            key: None,
            algorithm: None,
            kid: None,
            issuer: None,
            audiences: Vec::new(),
            client_id: None,
            access_ttl: DEFAULT_ACCESS_TTL,
            refresh_ttl: DEFAULT_REFRESH_TTL,
            max_session: None,
            clock: Arc::new(SystemClock),
            store: None,
            revocation: None,
        }
    }
}

impl TokenIssuerBuilder {
    /// Signs with an HMAC secret (HS256 by default; HS384 / HS512 with
    /// [`algorithm`](TokenIssuerBuilder::algorithm) and a secret of at least 48 / 64 bytes).
    /// Use at least 32 random bytes; every verifier needs the same secret.
    pub fn hmac(mut self, secret: impl AsRef<[u8]>) -> Self {
        self.key = Some(KeyInput::Hmac(secret.as_ref().to_vec()));
        self
    }

    /// Signs with a random HMAC secret made at `build()` (HS256 by default; as long as the
    /// hash output of the chosen algorithm). Tokens do not survive a restart and other
    /// instances cannot verify them: for demos, tests and single instances whose users may
    /// log in again after a deploy.
    pub fn random_hmac(mut self) -> Self {
        self.key = Some(KeyInput::RandomHmac);
        self
    }

    /// Signs with an RSA private key in PEM (`BEGIN PRIVATE KEY` or `BEGIN RSA PRIVATE KEY`,
    /// at least 2048 bits): RS256 by default, or RS384/RS512/PS256/PS384/PS512.
    pub fn rsa_pem(mut self, pem: impl AsRef<[u8]>) -> Self {
        self.key = Some(KeyInput::RsaPem(pem.as_ref().to_vec()));
        self
    }

    /// Signs with an EC private key in PKCS#8 PEM (`BEGIN PRIVATE KEY`): ES256 for P-256,
    /// ES384 for P-384 (found from the key).
    pub fn ec_pem(mut self, pem: impl AsRef<[u8]>) -> Self {
        self.key = Some(KeyInput::EcPem(pem.as_ref().to_vec()));
        self
    }

    /// Signs with an Ed25519 private key in PKCS#8 PEM (`BEGIN PRIVATE KEY`): EdDSA.
    pub fn ed_pem(mut self, pem: impl AsRef<[u8]>) -> Self {
        self.key = Some(KeyInput::EdPem(pem.as_ref().to_vec()));
        self
    }

    /// The signing algorithm, when the key allows several (HMAC, RSA).
    pub fn algorithm(mut self, alg: Algorithm) -> Self {
        self.algorithm = Some(alg);
        self
    }

    /// The `kid` put in every token header and on the verification key.
    pub fn kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = Some(kid.into());
        self
    }

    /// The `iss` of every token (required).
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// An audience of the access tokens (required; call again to add more: `aud` becomes an
    /// array).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// The default `client_id` of access tokens (default: the issuer). A [`Login`] can set
    /// its own.
    pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = Some(client_id.into());
        self
    }

    /// Access-token lifetime (default 10 minutes). Keep it short: an access token cannot be
    /// recalled without a revocation store.
    pub fn access_ttl(mut self, ttl: Duration) -> Self {
        self.access_ttl = ttl;
        self
    }

    /// Refresh-token lifetime (default 14 days). Sliding: each rotation issues a refresh
    /// token valid for this long again, so a session used at least this often never ends
    /// unless [`max_session`](TokenIssuerBuilder::max_session) caps it.
    pub fn refresh_ttl(mut self, ttl: Duration) -> Self {
        self.refresh_ttl = ttl;
        self
    }

    /// The longest a session may last from login (`auth_time`), whatever the refreshes: no
    /// token of the family expires later (default: no cap).
    pub fn max_session(mut self, max: Duration) -> Self {
        self.max_session = Some(max);
        self
    }

    /// The clock for `iat`, `exp` and the store (default: the system clock). The
    /// [`auth_config`](TokenIssuer::auth_config) verifies with it too.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Where refresh families are kept (default: a [`MemoryRefreshStore`]).
    pub fn refresh_store(mut self, store: impl RefreshStore) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// The revocation store the layer consults (e.g. an `Arc<MemoryRevocationStore>`): the
    /// access tokens of a revoked family are revoked in it, refresh tokens are checked
    /// against it, and [`auth_config`](TokenIssuer::auth_config) attaches it.
    pub fn revocation(mut self, store: impl RevocationStore) -> Self {
        self.revocation = Some(Arc::new(store));
        self
    }

    /// Checks the settings, parses the key and builds the issuer.
    ///
    /// # Errors
    ///
    /// A [`BuildError`] naming the fix: no key, a key that cannot be parsed or sign, an
    /// algorithm of another key type, a zero lifetime, no issuer or audience, a short HMAC
    /// secret.
    pub fn build(self) -> Result<TokenIssuer, BuildError> {
        crate::crypto::install_default_provider();
        let key = self.key.clone().ok_or(BuildError::NoKey)?;
        let signer = Signer::new(key, self.algorithm, self.kid.clone())?;
        let issuer = self.issuer.clone().ok_or(ConfigError::NoIssuer)?;
        if self.audiences.is_empty() {
            return Err(ConfigError::NoAudience.into());
        }
        let access_ttl = secs(self.access_ttl);
        let refresh_ttl = secs(self.refresh_ttl);
        let max_session = self.max_session.map(secs);
        if access_ttl < 1 || refresh_ttl <= access_ttl || max_session.is_some_and(|m| m < 1) {
            return Err(BuildError::InvalidTtl);
        }
        // The signing key must be able to sign with its algorithm.
        crate::crypto::sign(signer.alg, &signer.encoding, b"probe")
            .map_err(|_| BuildError::InvalidKey(signer.label))?;

        let clock = SharedClock(Arc::clone(&self.clock));
        let access_base = |revocation: bool| {
            let mut b = AuthConfig::builder()
                .keys(signer.keys.clone())
                .issuer(issuer.clone())
                .access_token_profile()
                .clock(clock.clone());
            for aud in &self.audiences {
                b = b.audience(aud.clone());
            }
            match (&self.revocation, revocation) {
                (Some(store), true) => b.revocation(Arc::clone(store)),
                _ => b,
            }
        };
        let refresh_base = |revocation: bool| {
            let b = AuthConfig::builder()
                .keys(signer.keys.clone())
                .issuer(issuer.clone())
                .audience(issuer.clone())
                .require_type(REFRESH_TOKEN_TYPE)
                .require_claim("sub")
                .require_claim("jti")
                .require_claim("fam")
                .clock(clock.clone());
            match (&self.revocation, revocation) {
                (Some(store), true) => b.revocation(Arc::clone(store)),
                _ => b,
            }
        };
        let refresh_verifier = refresh_base(true).build()?;
        let refresh_lenient = refresh_base(false).build()?;
        let access_lenient = access_base(false).build()?;

        Ok(TokenIssuer {
            inner: Arc::new(IssuerInner {
                client_id: self.client_id.unwrap_or_else(|| issuer.clone()),
                issuer,
                audiences: self.audiences,
                signer,
                access_ttl,
                refresh_ttl,
                max_session,
                clock: self.clock,
                store: self
                    .store
                    .unwrap_or_else(|| Arc::new(MemoryRefreshStore::new())),
                revocation: self.revocation,
                refresh_verifier,
                refresh_lenient,
                access_lenient,
            }),
        })
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 4)
}

/// The issuer's clock, shared with the verification configurations.
#[derive(Clone)]
struct SharedClock(Arc<dyn Clock>);

impl Clock for SharedClock {
    fn now(&self) -> i64 {
        self.0.now()
    }
}

// ---------------------------------------------------------------------------------------
// The issuer
// ---------------------------------------------------------------------------------------

/// Mints access and refresh tokens, rotates refresh tokens and revokes sessions; see the
/// [module docs](self). Cheap to clone (one `Arc`).
///
/// ```no_run
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use tower_token_auth::issuer::TokenIssuer;
///
/// let issuer = TokenIssuer::builder()
///     .ec_pem(std::fs::read("ec-private.pem")?)
///     .kid("2025-01")
///     .issuer("https://app.example")
///     .audience("https://app.example/api")
///     .access_ttl(Duration::from_secs(5 * 60))
///     .refresh_ttl(Duration::from_secs(30 * 24 * 3600))
///     .build()?;
/// // Other services verify with the public key:
/// let jwks: String = issuer.jwks().expect("asymmetric key");
/// # let _ = jwks;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct TokenIssuer {
    inner: Arc<IssuerInner>,
}

struct IssuerInner {
    issuer: String,
    audiences: Vec<String>,
    client_id: String,
    signer: Signer,
    access_ttl: i64,
    refresh_ttl: i64,
    max_session: Option<i64>,
    clock: Arc<dyn Clock>,
    store: Arc<dyn RefreshStore>,
    revocation: Option<Arc<dyn RevocationStore>>,
    /// Refresh tokens, for `refresh` (consults the revocation store).
    refresh_verifier: AuthConfig,
    /// Refresh tokens, for `logout` (expiry tolerated, no revocation store).
    refresh_lenient: AuthConfig,
    /// Access tokens, for `logout` (expiry tolerated, no revocation store).
    access_lenient: AuthConfig,
}

impl fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("TokenIssuer")
            .field("issuer", &i.issuer)
            .field("audiences", &i.audiences)
            .field("alg", &i.signer.alg)
            .field("kid", &i.signer.kid)
            .field("access_ttl", &i.access_ttl)
            .field("refresh_ttl", &i.refresh_ttl)
            .finish_non_exhaustive()
    }
}

/// What a new generation carries over from the previous one.
struct Session<'a> {
    subject: &'a str,
    client_id: &'a str,
    auth_time: i64,
    extra: &'a Map<String, Value>,
    family: &'a str,
}

/// A generation ready to be recorded, then signed.
struct Planned {
    generation: Generation,
    access: Map<String, Value>,
    refresh: Map<String, Value>,
    now: i64,
}

impl TokenIssuer {
    /// Starts an issuer.
    pub fn builder() -> TokenIssuerBuilder {
        TokenIssuerBuilder::default()
    }

    /// An [`AuthConfigBuilder`] preset to verify this issuer's access tokens: the key (pinned
    /// to its algorithm), the issuer, the audiences, the RFC 9068 profile
    /// ([`access_token_profile`](AuthConfigBuilder::access_token_profile): `typ` must be
    /// `at+jwt`, so a refresh token is `wrong_type`), the issuer's clock and its revocation
    /// store, if any. Add sources, a realm and other checks, then `build()`.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use tower_token_auth::issuer::TokenIssuer;
    /// use tower_token_auth::{source, TokenAuthLayer};
    ///
    /// let issuer = TokenIssuer::builder()
    ///     .random_hmac()
    ///     .issuer("https://app.example")
    ///     .audience("https://app.example/api")
    ///     .build()?;
    /// let cfg = issuer
    ///     .auth_config()
    ///     .source(source::cookie("access_token"))
    ///     .source(source::bearer())
    ///     .realm("app")
    ///     .build()?;
    /// let layer = TokenAuthLayer::new(cfg);
    /// # let _ = layer;
    /// # Ok(()) }
    /// ```
    pub fn auth_config(&self) -> AuthConfigBuilder {
        let i = &self.inner;
        let mut b = AuthConfig::builder()
            .keys(i.signer.keys.clone())
            .issuer(i.issuer.clone())
            .access_token_profile()
            .clock(SharedClock(Arc::clone(&i.clock)));
        for aud in &i.audiences {
            b = b.audience(aud.clone());
        }
        if let Some(store) = &i.revocation {
            b = b.revocation(Arc::clone(store));
        }
        b
    }

    /// The verification key (pinned to the signing algorithm, with the `kid`), e.g. for
    /// [`Issuer::keys`](crate::Issuer::keys) in a configuration that trusts several issuers.
    pub fn verification_keys(&self) -> Keys {
        self.inner.signer.keys.clone()
    }

    /// The public key as a JWK set (`{"keys": [...]}`, with `kid`, `alg`, `use: sig`) for
    /// other services ([`Keys::jwks_json`] or a `/.well-known/jwks.json` route); `None` for
    /// an HMAC secret, which must never be published.
    pub fn jwks(&self) -> Option<String> {
        self.inner
            .signer
            .jwk
            .as_ref()
            .map(|jwk| serde_json::json!({ "keys": [jwk] }).to_string())
    }

    /// The `iss` of the tokens.
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// The signing algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.inner.signer.alg
    }

    /// Starts a session: a new family with its first access token and refresh token. Call it
    /// once the user is authenticated.
    ///
    /// # Errors
    ///
    /// [`IssueError::ReservedClaim`] if the login sets a registered claim;
    /// [`IssueError::Store`] if the refresh store cannot record the family.
    pub async fn issue(&self, login: Login) -> Result<TokenPair, IssueError> {
        check_reserved(&login)?;
        let now = self.inner.clock.now();
        let family = random_id()?;
        let client_id = login.client_id.as_deref().unwrap_or(&self.inner.client_id);
        let planned = self.plan(
            &Session {
                subject: &login.subject,
                client_id,
                auth_time: now,
                extra: &login.claims,
                family: &family,
            },
            now,
        )?;
        self.inner
            .store
            .start(&family, &planned.generation, now)
            .await?;
        self.sign_pair(planned, family)
    }

    /// An access token alone, outside any session (no refresh token, no `sid`): e.g. for a
    /// service account or a test.
    ///
    /// # Errors
    ///
    /// [`IssueError::ReservedClaim`] if the login sets a registered claim.
    pub fn access_token(&self, login: &Login) -> Result<String, IssueError> {
        check_reserved(login)?;
        let now = self.inner.clock.now();
        let client_id = login.client_id.as_deref().unwrap_or(&self.inner.client_id);
        let (claims, _) = self.access_claims(
            &login.subject,
            client_id,
            now,
            now.saturating_add(self.inner.access_ttl),
            &login.claims,
            None,
        )?;
        self.inner.signer.sign(ACCESS_TOKEN_TYPE, &claims)
    }

    /// Verifies a refresh token (its own `typ`, `rt+jwt`), then rotates: a new access token
    /// and a new refresh token of the same family, with the same subject, `client_id`,
    /// `auth_time` and claims; the presented refresh token is used up.
    ///
    /// # Errors
    ///
    /// - [`RefreshError::Invalid`]: the token does not verify (e.g. `expired`, `wrong_type`
    ///   for an access token, `revoked` by a subject-wide revocation);
    /// - [`RefreshError::Reused`]: it was already rotated; the whole family is revoked now
    ///   (with its live access tokens, if a revocation store is attached);
    /// - [`RefreshError::Revoked`]: the family was revoked earlier or is unknown;
    /// - [`RefreshError::Store`], [`RefreshError::Issue`]: the store or the key failed.
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenPair, RefreshError> {
        let i = &self.inner;
        let claims: Map<String, Value> = i
            .refresh_verifier
            .validate(refresh_token)
            .await
            .map_err(RefreshError::Invalid)?;
        let text = |name: &str| claims.get(name).and_then(Value::as_str);
        let (Some(family), Some(jti), Some(subject)) = (text("fam"), text("jti"), text("sub"))
        else {
            return Err(RefreshError::Invalid(AuthError::new(Reason::InvalidClaim)));
        };
        let now = i.clock.now();
        let auth_time = claims
            .get("auth_time")
            .and_then(Value::as_i64)
            .unwrap_or(now);
        if let Some(max) = i.max_session {
            if auth_time.saturating_add(max) <= now {
                self.revoke_family(family, now).await?;
                return Err(RefreshError::Invalid(AuthError::new(Reason::Expired)));
            }
        }
        let empty = Map::new();
        let extra = claims
            .get("ext")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let client_id = text("client_id").unwrap_or(&i.client_id);
        let planned = self
            .plan(
                &Session {
                    subject,
                    client_id,
                    auth_time,
                    extra,
                    family,
                },
                now,
            )
            .map_err(RefreshError::Issue)?;
        match i
            .store
            .rotate(family, jti, &planned.generation, now)
            .await
            .map_err(RefreshError::Store)?
        {
            Rotation::Rotated => self
                .sign_pair(planned, family.to_owned())
                .map_err(RefreshError::Issue),
            Rotation::Reused(access) => {
                tracing::warn!(
                    target: "tower_token_auth",
                    session = family,
                    subject,
                    "refresh token reused after rotation: session revoked"
                );
                if let Err(e) = self.revoke_access(&access).await {
                    tracing::error!(
                        target: "tower_token_auth",
                        session = family,
                        error = %e,
                        "could not revoke the access tokens of a reused session"
                    );
                }
                Err(RefreshError::Reused)
            }
            Rotation::Revoked => Err(RefreshError::Revoked),
        }
    }

    /// Logs out the session of `token`, an access token or a refresh token of this issuer:
    /// revokes its family (no refresh token of it is accepted any more) and, with a
    /// revocation store, the access token itself and the family's other live access tokens.
    ///
    /// The token must verify (signature, issuer, audience, type) but may have expired: an
    /// expired access token still names a live session.
    ///
    /// # Errors
    ///
    /// [`RefreshError::Invalid`] if the token does not verify; [`RefreshError::Store`] or
    /// [`RefreshError::Revocation`] if a store could not record the revocation.
    pub async fn logout(&self, token: &str) -> Result<(), RefreshError> {
        let i = &self.inner;
        let now = i.clock.now();
        match lenient(&i.access_lenient, token).await {
            Ok(claims) => {
                let jti = claims.get("jti").and_then(Value::as_str);
                let exp = claims.get("exp").and_then(Value::as_i64);
                if let (Some(jti), Some(exp)) = (jti, exp) {
                    self.revoke_access(&[IssuedToken::new(jti, exp)]).await?;
                }
                if let Some(sid) = claims.get("sid").and_then(Value::as_str) {
                    self.revoke_family(sid, now).await?;
                }
                Ok(())
            }
            Err(e) if e.reason() == Reason::WrongType => {
                let claims = lenient(&i.refresh_lenient, token)
                    .await
                    .map_err(RefreshError::Invalid)?;
                if let Some(fam) = claims.get("fam").and_then(Value::as_str) {
                    self.revoke_family(fam, now).await?;
                }
                Ok(())
            }
            Err(e) => Err(RefreshError::Invalid(e)),
        }
    }

    /// Revokes a session by id (the access tokens' `sid`, [`TokenPair::session_id`]), e.g.
    /// from a "log out this device" page. With a revocation store, its live access tokens are
    /// revoked too.
    ///
    /// # Errors
    ///
    /// [`RefreshError::Store`] or [`RefreshError::Revocation`] if a store could not record
    /// the revocation.
    pub async fn revoke_session(&self, session_id: &str) -> Result<(), RefreshError> {
        self.revoke_family(session_id, self.inner.clock.now()).await
    }

    async fn revoke_family(&self, family: &str, now: i64) -> Result<(), RefreshError> {
        let access = self
            .inner
            .store
            .revoke(family, now)
            .await
            .map_err(RefreshError::Store)?;
        self.revoke_access(&access).await
    }

    async fn revoke_access(&self, tokens: &[IssuedToken]) -> Result<(), RefreshError> {
        if let Some(store) = &self.inner.revocation {
            for t in tokens {
                store
                    .revoke_token(&t.jti, t.expires_at)
                    .await
                    .map_err(RefreshError::Revocation)?;
            }
        }
        Ok(())
    }
}

fn check_reserved(login: &Login) -> Result<(), IssueError> {
    match login.claims.keys().find(|k| RESERVED.contains(&k.as_str())) {
        Some(name) => Err(IssueError::ReservedClaim(name.clone())),
        None => Ok(()),
    }
}

/// Validates `token`, tolerating expiry only: every other check must pass.
async fn lenient(cfg: &AuthConfig, token: &str) -> Result<Map<String, Value>, AuthError> {
    match cfg.validate::<Map<String, Value>>(token).await {
        Ok(claims) => Ok(claims),
        Err(e)
            if !e.problems().is_empty()
                && e.problems().iter().all(|p| p.reason() == Reason::Expired) =>
        {
            // The signature and every other claim verified: read the payload.
            token
                .split('.')
                .nth(1)
                .and_then(|p| URL_SAFE_NO_PAD.decode(p).ok())
                .and_then(|json| serde_json::from_slice(&json).ok())
                .ok_or(e)
        }
        Err(e) => Err(e),
    }
}
