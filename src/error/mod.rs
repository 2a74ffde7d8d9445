//! Why a request was rejected: [`AuthError`] and its [`Reason`].

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use http::StatusCode;

mod config;
mod reason;
pub use config::{ClaimError, ConfigError};
pub use reason::Reason;

/// Seconds a client is told to wait (`Retry-After`) on a 503 when the error does not say.
pub const DEFAULT_RETRY_AFTER: u64 = 5;

/// One problem found in a token: its reason and, where it concerns a claim or header, which.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    reason: Reason,
    subject: Option<Cow<'static, str>>,
}

impl Problem {
    pub(crate) fn new(reason: Reason) -> Self {
        Problem {
            reason,
            subject: None,
        }
    }

    pub(crate) fn about(reason: Reason, subject: impl Into<Cow<'static, str>>) -> Self {
        Problem {
            reason,
            subject: Some(subject.into()),
        }
    }

    /// The reason of this problem.
    pub fn reason(&self) -> Reason {
        self.reason
    }

    /// The claim or header parameter concerned (e.g. `"exp"`, `"typ"`), or the fixed description
    /// of a malformed or invalid request, if any.
    pub fn subject(&self) -> Option<&str> {
        self.subject.as_deref()
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.subject {
            Some(s) => write!(f, "{} ({s})", self.reason),
            None => write!(f, "{}", self.reason),
        }
    }
}

/// Facts about the rejected token, for operators (logs) and developers (diagnosis).
///
/// Values that come from the token (issuer, audience, key id) are capped in length; they are
/// never put in a response body by the default responder.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenFacts {
    /// The header `alg`, as sent (capped).
    pub alg: Option<String>,
    /// The header `kid`, as sent (capped).
    pub kid: Option<String>,
    /// The header `typ`, as sent (capped).
    pub typ: Option<String>,
    /// The `iss` claim, as sent (capped).
    pub issuer: Option<String>,
    /// The `aud` claim values, as sent (capped).
    pub audience: Vec<String>,
    /// The `exp` claim (seconds since the epoch).
    pub expires_at: Option<i64>,
    /// The `nbf` claim (seconds since the epoch).
    pub not_before: Option<i64>,
    /// The instant the token was checked against (seconds since the epoch).
    pub checked_at: Option<i64>,
    /// The configured issuers.
    pub expected_issuers: Vec<String>,
    /// The configured audiences.
    pub expected_audiences: Vec<String>,
    /// The name of the source the token came from (e.g. `"authorization"`, `"cookie"`).
    pub source: Option<&'static str>,
    /// A short, non-reversible fingerprint of the token (the first 16 hex digits of its
    /// SHA-256), to correlate log lines about the same token without logging it. Computed
    /// when rejection events of the `tower_token_auth` target are enabled in `tracing`.
    pub fingerprint: Option<String>,
    /// The DPoP nonce to send in `DPoP-Nonce` (with `use_dpop_nonce`, RFC 9449 §9).
    pub dpop_nonce: Option<String>,
}

/// Why a request or token was rejected.
///
/// Cheap to clone (one `Arc`). [`reason`](AuthError::reason) is the most decisive problem, the
/// one the response reports; [`problems`](AuthError::problems) lists every problem found, since
/// the validator does not stop at the first. [`facts`](AuthError::facts) holds what operators
/// need to see (expected vs actual issuer and audience, `kid`, `alg`).
///
/// The default responder puts a clone of the error in the rejection response's extensions, so
/// outer middleware can read it:
///
/// ```
/// use tower_token_auth::{AuthError, Reason};
/// # let response: http::Response<()> = {
/// #     let mut r = http::Response::new(());
/// #     r.extensions_mut().insert(AuthError::new(Reason::Expired));
/// #     r
/// # };
/// if let Some(err) = response.extensions().get::<AuthError>() {
///     assert_eq!(err.reason(), Reason::Expired);
/// }
/// ```
#[derive(Clone)]
pub struct AuthError {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    reason: Reason,
    problems: Vec<Problem>,
    facts: TokenFacts,
    required_scopes: Option<String>,
    retry_after: Option<u64>,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
    /// A diagnosis attached by the layer (see `diagnose`, which owns its type).
    diagnosis: Option<Box<dyn std::any::Any + Send + Sync>>,
}

impl AuthError {
    /// An error with this reason and nothing else known.
    pub fn new(reason: Reason) -> Self {
        AuthError::from_problems(vec![Problem::new(reason)], TokenFacts::default())
    }

    /// An `invalid_request` error with a fixed description (for [`TokenSource`] implementations:
    /// the text must not come from the request).
    ///
    /// [`TokenSource`]: crate::source::TokenSource
    pub fn invalid_request(description: &'static str) -> Self {
        AuthError::from_problems(
            vec![Problem::about(Reason::InvalidRequest, description)],
            TokenFacts::default(),
        )
    }

    /// A `malformed` error with a fixed description.
    pub fn malformed(description: &'static str) -> Self {
        AuthError::from_problems(
            vec![Problem::about(Reason::Malformed, description)],
            TokenFacts::default(),
        )
    }

    /// An `insufficient_scope` error naming the scopes the resource requires (space-separated,
    /// as in the RFC 6750 `scope` attribute).
    pub fn insufficient_scope(required: impl Into<String>) -> Self {
        let mut err = AuthError::new(Reason::InsufficientScope);
        if let Some(inner) = Arc::get_mut(&mut err.inner) {
            inner.required_scopes = Some(required.into());
        }
        err
    }

    /// `expired`, for a token known to be otherwise valid (from the verified-token cache).
    pub(crate) fn expired_at(exp: i64, now: i64) -> Self {
        AuthError::from_problems(
            vec![Problem::about(Reason::Expired, "exp")],
            TokenFacts {
                expires_at: Some(exp),
                checked_at: Some(now),
                ..TokenFacts::default()
            },
        )
    }

    pub(crate) fn from_problems(mut problems: Vec<Problem>, facts: TokenFacts) -> Self {
        problems.sort_by_key(|p| p.reason.precedence());
        problems.dedup();
        let reason = problems
            .first()
            .map(|p| p.reason)
            .unwrap_or(Reason::Malformed);
        AuthError {
            inner: Arc::new(Inner {
                reason,
                problems,
                facts,
                required_scopes: None,
                retry_after: None,
                source: None,
                diagnosis: None,
            }),
        }
    }

    pub(crate) fn with_source(
        mut self,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.source = Some(Box::new(source));
        }
        self
    }

    /// Sets the fingerprint, when rejections are logged (it exists to correlate log lines;
    /// hashing the token costs about as much as building the response).
    pub(crate) fn with_fingerprint(mut self, token: &str) -> Self {
        if !tracing::enabled!(target: "tower_token_auth", tracing::Level::WARN) {
            return self;
        }
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.facts.fingerprint = Some(fingerprint(token));
        }
        self
    }

    /// Sets the DPoP nonce the response carries (`use_dpop_nonce`).
    pub(crate) fn set_dpop_nonce(&mut self, nonce: String) {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.facts.dpop_nonce = Some(nonce);
        }
    }

    pub(crate) fn with_source_label(mut self, label: &'static str) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.facts.source = Some(label);
        }
        self
    }

    /// Sets the `Retry-After` seconds for a 503 rejection.
    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.retry_after = Some(seconds);
        }
        self
    }

    /// Attaches a diagnosis (the development option of the layer; `diagnose` owns the type).
    #[cfg_attr(not(feature = "diagnose"), allow(dead_code))]
    pub(crate) fn with_attachment(self, diagnosis: Box<dyn std::any::Any + Send + Sync>) -> Self {
        let mut inner = match Arc::try_unwrap(self.inner) {
            Ok(inner) => inner,
            Err(shared) => {
                return AuthError { inner: shared };
            }
        };
        inner.diagnosis = Some(diagnosis);
        AuthError {
            inner: Arc::new(inner),
        }
    }

    /// The attached diagnosis, read back by `diagnose`.
    pub(crate) fn attachment(&self) -> Option<&(dyn std::any::Any + Send + Sync)> {
        self.inner.diagnosis.as_deref()
    }

    /// The most decisive reason: the one the response reports.
    pub fn reason(&self) -> Reason {
        self.inner.reason
    }

    /// Every problem found, most decisive first.
    pub fn problems(&self) -> &[Problem] {
        &self.inner.problems
    }

    /// `true` if any problem has this reason.
    pub fn has(&self, reason: Reason) -> bool {
        self.inner.problems.iter().any(|p| p.reason == reason)
    }

    /// Facts about the token for logs and diagnosis.
    pub fn facts(&self) -> &TokenFacts {
        &self.inner.facts
    }

    /// The HTTP status for this error (see [`Reason::status`]).
    pub fn status(&self) -> StatusCode {
        self.inner.reason.status()
    }

    /// The scopes required, for `insufficient_scope`.
    pub fn required_scopes(&self) -> Option<&str> {
        self.inner.required_scopes.as_deref()
    }

    /// Seconds the client should wait before retrying, for 503 reasons.
    pub fn retry_after(&self) -> Option<u64> {
        self.inner.retry_after
    }

    /// `true` if no token was sent.
    pub fn is_missing(&self) -> bool {
        self.inner.reason == Reason::Missing
    }

    /// `true` if the token is past its `exp`.
    pub fn is_expired(&self) -> bool {
        self.has(Reason::Expired)
    }
}

impl fmt::Debug for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthError")
            .field("reason", &self.inner.reason)
            .field("problems", &self.inner.problems)
            .field("facts", &self.inner.facts)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "token rejected ({}): ", self.inner.reason)?;
        f.write_str(self.inner.reason.description())?;
        if self.inner.problems.len() > 1 {
            f.write_str(" Also: ")?;
            for (i, p) in self.inner.problems.iter().skip(1).enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{p}")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for AuthError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.inner
            .source
            .as_ref()
            .map(|e| e.as_ref() as &(dyn std::error::Error + 'static))
    }
}

/// The first 16 hex digits of the token's SHA-256.
pub(crate) fn fingerprint(token: &str) -> String {
    let digest = (crate::crypto::provider().key_utils.compute_digest)(
        token.as_bytes(),
        jsonwebtoken::jwk::ThumbprintHash::SHA256,
    )
    .unwrap_or_default();
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(16);
    for b in digest.iter().take(8) {
        out.push(HEX[usize::from(b >> 4)] as char);
        out.push(HEX[usize::from(b & 15)] as char);
    }
    out
}

/// Caps a token-controlled string for logs and facts (256 chars).
pub(crate) fn cap(s: &str) -> String {
    const MAX: usize = 256;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}
