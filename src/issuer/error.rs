//! The issuer's errors: building it, issuing tokens, refreshing and logging out.

use jsonwebtoken::Algorithm;

use crate::revocation::RevocationError;
use crate::{AuthError, ConfigError, Reason};

/// A mistake found by [`TokenIssuerBuilder::build`](super::TokenIssuerBuilder::build). Each
/// message names the fix.
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
    /// A [`Login`](super::Login) tried to set a claim the issuer sets itself.
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
/// [`reason`](RefreshError::reason) and `AuthError::from` give
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
}

/// The [`AuthError`] to answer with (with `Retry-After` for the 503 reasons).
///
/// ```
/// use tower_token_auth::{issuer::RefreshError, AuthError, Reason};
///
/// let err = AuthError::from(RefreshError::Reused);
/// assert_eq!(err.reason(), Reason::Revoked);
/// ```
impl From<RefreshError> for AuthError {
    fn from(e: RefreshError) -> Self {
        match e {
            RefreshError::Invalid(e) => e,
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
