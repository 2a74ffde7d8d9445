//! [`TokenIssuer`]: issues a session's token pair, refreshes it with rotation and reuse
//! detection, and revokes sessions (logout).

use std::fmt;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::Algorithm;
use serde_json::{Map, Value};

use crate::clock::Clock;
use crate::revocation::RevocationStore;
use crate::{AuthConfig, AuthConfigBuilder, AuthError, Keys, Reason};

use super::builder::SharedClock;
use super::login::check_reserved;
use super::mint::{random_id, Session, Signer};
use super::{
    IssueError, IssuedToken, Login, RefreshError, RefreshStore, Rotation, TokenIssuerBuilder,
    TokenPair, ACCESS_TOKEN_TYPE,
};

/// Mints access and refresh tokens, rotates refresh tokens and revokes sessions; see the
/// [module docs](crate::issuer). Cheap to clone (one `Arc`).
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
    pub(super) inner: Arc<IssuerInner>,
}

pub(super) struct IssuerInner {
    pub(super) issuer: String,
    pub(super) audiences: Vec<String>,
    pub(super) client_id: String,
    pub(super) signer: Signer,
    pub(super) access_ttl: i64,
    pub(super) refresh_ttl: i64,
    pub(super) max_session: Option<i64>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) store: Arc<dyn RefreshStore>,
    pub(super) revocation: Option<Arc<dyn RevocationStore>>,
    /// Refresh tokens, for `refresh` (consults the revocation store).
    pub(super) refresh_verifier: AuthConfig,
    /// Refresh tokens, for `logout` (expiry tolerated, no revocation store).
    pub(super) refresh_lenient: AuthConfig,
    /// Access tokens, for `logout` (expiry tolerated, no revocation store).
    pub(super) access_lenient: AuthConfig,
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
