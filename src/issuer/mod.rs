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
//! # What it is built on
//!
//! The issuer verifies refresh tokens with an ordinary [`AuthConfig`](crate::AuthConfig) (the
//! public API, as any user would) and revokes through the public [`RevocationStore`] trait.
//! Signing is its one internal dependency: the crate's token writer (`jws::encode`, shared
//! with the `testing` helpers) and the selected crypto provider (`crypto`: sign, derive a
//! public JWK from a private key). Nothing else of the crate's inside is used, so the issuer
//! could become a crate of its own on top of those two.
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
//!
//! [`AuthConfigBuilder`]: crate::AuthConfigBuilder
//! [`RevocationStore`]: crate::revocation::RevocationStore
//! [`RevocationStore::revoke_subject`]: crate::revocation::RevocationStore::revoke_subject

// One file per seam: errors, what goes in and out (`Login`, `TokenPair`), the builder, the
// issuer's operations (issue, refresh with rotation and reuse detection, logout), minting
// (keys, claims, signing) and the refresh store. The issuer uses the crate through its public
// API only, except the crypto backend in `mint.rs`, so it can become its own crate (issue 11).
mod builder;
mod error;
mod login;
mod mint;
#[cfg(feature = "redis")]
mod redis_store;
mod store;
mod token_issuer;

use std::time::Duration;

pub use self::builder::TokenIssuerBuilder;
pub use self::error::{BuildError, IssueError, RefreshError, RefreshStoreError};
pub use self::login::{Login, TokenPair};
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use self::redis_store::{RedisRefreshStore, RedisRefreshStoreBuilder};
pub use self::store::{Generation, IssuedToken, MemoryRefreshStore, RefreshStore, Rotation};
pub use self::token_issuer::TokenIssuer;

/// The `typ` of access tokens (RFC 9068).
pub const ACCESS_TOKEN_TYPE: &str = "at+jwt";
/// The `typ` of refresh tokens.
pub const REFRESH_TOKEN_TYPE: &str = "rt+jwt";
/// Default access-token lifetime: 10 minutes.
pub const DEFAULT_ACCESS_TTL: Duration = Duration::from_secs(10 * 60);
/// Default refresh-token lifetime: 14 days (sliding: each rotation starts a new period).
pub const DEFAULT_REFRESH_TTL: Duration = Duration::from_secs(14 * 24 * 60 * 60);
