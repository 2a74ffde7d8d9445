//! Configuration mistakes ([`ConfigError`], found at `build()`) and claims refused by user
//! checks ([`ClaimError`]). They live beside [`AuthError`](super::AuthError) so that every
//! module that can fail at build time (keys, sources, metadata) depends on `error` only.

use std::borrow::Cow;

use jsonwebtoken::Algorithm;

/// A claim refused by a user check (see [`AuthConfigBuilder::check`](crate::AuthConfigBuilder::check)).
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

/// A configuration mistake found by [`AuthConfigBuilder::build`](crate::AuthConfigBuilder::build). Each message names the fix.
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
    /// The leeway is larger than [`MAX_LEEWAY`](crate::MAX_LEEWAY).
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
    /// An introspection URL is not https.
    #[error("the {0} must use https; for loopback tests call .allow_http() on the Introspection options")]
    InsecureIntrospection(&'static str),
    /// Introspection options that cannot work.
    #[error("introspection: {0}")]
    InvalidIntrospection(&'static str),
    /// DPoP options that cannot work.
    #[error("DPoP: {0}")]
    InvalidDpop(&'static str),
    /// Two issuers introspect.
    #[error("only one issuer may introspect tokens (an opaque token names no issuer, and would be sent to every provider): keep .introspection(..) on one issuer")]
    SeveralIntrospections,
    /// The realm or the required type contains characters that cannot be sent in a header.
    #[error("the {0} must be printable ASCII without `\"` or `\\`")]
    InvalidText(&'static str),
}
