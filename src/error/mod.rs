//! Why a request was rejected: [`AuthError`] and its [`Reason`].

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use http::StatusCode;

mod config;
pub use config::{ClaimError, ConfigError};

/// Seconds a client is told to wait (`Retry-After`) on a 503 when the error does not say.
pub const DEFAULT_RETRY_AFTER: u64 = 5;

/// The cause of a rejection, with a stable snake_case [`code`](Reason::code).
///
/// The same code is used in the response body (`reason`), in the `tracing` event of every
/// rejection and in metrics, so a client report, a log line and a dashboard all name the same
/// thing. Codes never change once released; new reasons may be added, so match with a `_` arm.
///
/// | reason | status | `WWW-Authenticate: Bearer` `error` |
/// |---|---|---|
/// | [`Missing`](Reason::Missing) | 401 | none (realm only, RFC 6750 §3.1) |
/// | [`InvalidRequest`](Reason::InvalidRequest) | 400 | `invalid_request` |
/// | every token problem (`malformed` … `revoked`) | 401 | `invalid_token` |
/// | [`InsufficientScope`](Reason::InsufficientScope) | 403 | `insufficient_scope` |
/// | [`KeysUnavailable`](Reason::KeysUnavailable), [`RevocationUnavailable`](Reason::RevocationUnavailable), [`IntrospectionUnavailable`](Reason::IntrospectionUnavailable) | 503 + `Retry-After` | none |
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Reason {
    /// No token was sent (no source found one).
    Missing,
    /// The request carries the token wrongly: two tokens, two `Authorization` headers, an empty
    /// token.
    InvalidRequest,
    /// The token is longer than the configured maximum (default 16 KiB).
    TooLarge,
    /// The token is not a compact JWS: wrong number of segments, not base64url, not JSON, an
    /// encrypted token (JWE), an unsupported critical header.
    Malformed,
    /// The signature does not verify with the key the token names.
    BadSignature,
    /// The header's `alg` is not allowed for the key (or at all: `none` never is).
    AlgNotAllowed,
    /// No configured key matches the token's `kid` (or, without `kid`, no single key fits).
    UnknownKey,
    /// `exp` is in the past, beyond the leeway.
    Expired,
    /// `nbf` is in the future, beyond the leeway.
    NotYetValid,
    /// `iss` is not the configured issuer.
    WrongIssuer,
    /// `aud` names none of the configured audiences.
    WrongAudience,
    /// The header's `typ` is not the required token type.
    WrongType,
    /// A required claim is absent.
    MissingClaim,
    /// A claim has the wrong shape or a user check refused it.
    InvalidClaim,
    /// The token was revoked.
    Revoked,
    /// The token is valid but lacks a required scope or role.
    InsufficientScope,
    /// Keys could not be obtained (e.g. the identity provider is down and no usable keys are
    /// cached).
    KeysUnavailable,
    /// The revocation store could not be asked and the policy is to fail closed.
    RevocationUnavailable,
    /// The token's issuer says it is not active (RFC 7662 `active: false`): expired, revoked
    /// or unknown to the issuer (opaque tokens, see [`introspection`](crate::introspection)).
    Inactive,
    /// The introspection endpoint could not be asked or gave no usable answer (down, timeout,
    /// an error status, garbage, an answer over the size limit).
    IntrospectionUnavailable,
    /// The token is bound to a key or certificate (`cnf`) and was sent without proof of
    /// possession: a DPoP-bound token sent as `Bearer`, or a binding this crate cannot check
    /// (see [`binding`](crate::binding)).
    BoundToken,
    /// The token is bound to a client certificate (`cnf["x5t#S256"]`) and the request came
    /// without it, or with another one (RFC 8705).
    CertificateMismatch,
    /// The DPoP proof is missing, malformed or does not fit the request or token (RFC 9449);
    /// the problem's subject names the check.
    InvalidDpopProof,
}

impl Reason {
    /// Every reason, in the order of [`Reason::precedence`] (most decisive first).
    pub const ALL: [Reason; 23] = [
        Reason::KeysUnavailable,
        Reason::RevocationUnavailable,
        Reason::IntrospectionUnavailable,
        Reason::InvalidRequest,
        Reason::Missing,
        Reason::TooLarge,
        Reason::Malformed,
        Reason::AlgNotAllowed,
        Reason::UnknownKey,
        Reason::BadSignature,
        Reason::Inactive,
        Reason::WrongType,
        Reason::Expired,
        Reason::NotYetValid,
        Reason::WrongIssuer,
        Reason::WrongAudience,
        Reason::MissingClaim,
        Reason::InvalidClaim,
        Reason::Revoked,
        Reason::BoundToken,
        Reason::CertificateMismatch,
        Reason::InvalidDpopProof,
        Reason::InsufficientScope,
    ];

    /// The stable snake_case code, e.g. `"expired"`.
    pub const fn code(self) -> &'static str {
        match self {
            Reason::Missing => "missing",
            Reason::InvalidRequest => "invalid_request",
            Reason::TooLarge => "too_large",
            Reason::Malformed => "malformed",
            Reason::BadSignature => "bad_signature",
            Reason::AlgNotAllowed => "alg_not_allowed",
            Reason::UnknownKey => "unknown_key",
            Reason::Expired => "expired",
            Reason::NotYetValid => "not_yet_valid",
            Reason::WrongIssuer => "wrong_issuer",
            Reason::WrongAudience => "wrong_audience",
            Reason::WrongType => "wrong_type",
            Reason::MissingClaim => "missing_claim",
            Reason::InvalidClaim => "invalid_claim",
            Reason::Revoked => "revoked",
            Reason::InsufficientScope => "insufficient_scope",
            Reason::KeysUnavailable => "keys_unavailable",
            Reason::RevocationUnavailable => "revocation_unavailable",
            Reason::Inactive => "inactive",
            Reason::IntrospectionUnavailable => "introspection_unavailable",
            Reason::BoundToken => "bound_token",
            Reason::CertificateMismatch => "certificate_mismatch",
            Reason::InvalidDpopProof => "invalid_dpop_proof",
        }
    }

    /// Parses a code produced by [`Reason::code`].
    ///
    /// ```
    /// use tower_token_auth::Reason;
    /// assert_eq!(Reason::from_code("expired"), Some(Reason::Expired));
    /// assert_eq!(Reason::from_code("nope"), None);
    /// ```
    pub fn from_code(code: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.code() == code)
    }

    /// The HTTP status of a rejection for this reason.
    pub const fn status(self) -> StatusCode {
        match self {
            Reason::InvalidRequest => StatusCode::BAD_REQUEST,
            Reason::InsufficientScope => StatusCode::FORBIDDEN,
            Reason::KeysUnavailable
            | Reason::RevocationUnavailable
            | Reason::IntrospectionUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::UNAUTHORIZED,
        }
    }

    /// The RFC 6750 `error` code for `WWW-Authenticate: Bearer`, if the reason has one.
    ///
    /// `None` for [`Reason::Missing`] (RFC 6750 §3.1: a request without a token gets no error
    /// code) and for the 503 reasons (the token is not at fault).
    pub const fn bearer_error(self) -> Option<&'static str> {
        match self {
            Reason::Missing
            | Reason::KeysUnavailable
            | Reason::RevocationUnavailable
            | Reason::IntrospectionUnavailable => None,
            Reason::InvalidRequest => Some("invalid_request"),
            Reason::InsufficientScope => Some("insufficient_scope"),
            Reason::InvalidDpopProof => Some("invalid_dpop_proof"),
            _ => Some("invalid_token"),
        }
    }

    /// A short title, fixed per reason (used as the problem `title`).
    pub const fn title(self) -> &'static str {
        match self {
            Reason::Missing => "Authentication required",
            Reason::InvalidRequest => "Invalid authentication request",
            Reason::TooLarge => "Token too large",
            Reason::Malformed => "Malformed token",
            Reason::BadSignature => "Invalid token signature",
            Reason::AlgNotAllowed => "Token algorithm not allowed",
            Reason::UnknownKey => "Unknown signing key",
            Reason::Expired => "Token expired",
            Reason::NotYetValid => "Token not yet valid",
            Reason::WrongIssuer => "Wrong token issuer",
            Reason::WrongAudience => "Wrong token audience",
            Reason::WrongType => "Wrong token type",
            Reason::MissingClaim => "Missing claim",
            Reason::InvalidClaim => "Invalid claim",
            Reason::Revoked => "Token revoked",
            Reason::InsufficientScope => "Insufficient scope",
            Reason::KeysUnavailable => "Signing keys unavailable",
            Reason::RevocationUnavailable => "Revocation check unavailable",
            Reason::Inactive => "Token not active",
            Reason::IntrospectionUnavailable => "Token introspection unavailable",
            Reason::BoundToken => "Proof of possession required",
            Reason::CertificateMismatch => "Client certificate mismatch",
            Reason::InvalidDpopProof => "Invalid DPoP proof",
        }
    }

    /// A sentence for clients, fixed per reason: it never contains text from the token or key
    /// material. Used as the problem `detail` and the `error_description`.
    pub const fn description(self) -> &'static str {
        match self {
            Reason::Missing => "This resource requires a bearer token.",
            Reason::InvalidRequest => {
                "The token was sent more than once or in an invalid form; send exactly one bearer token."
            }
            Reason::TooLarge => "The token exceeds the maximum accepted size.",
            Reason::Malformed => "The token is not a well-formed signed JWT.",
            Reason::BadSignature => "The token signature is invalid.",
            Reason::AlgNotAllowed => "The token is signed with an algorithm that is not accepted.",
            Reason::UnknownKey => "The token is signed with a key that is not known.",
            Reason::Expired => "The token has expired; obtain a new one.",
            Reason::NotYetValid => "The token is not valid yet.",
            Reason::WrongIssuer => "The token was issued by an issuer that is not accepted.",
            Reason::WrongAudience => "The token was not issued for this audience.",
            Reason::WrongType => "The token is not of the accepted type.",
            Reason::MissingClaim => "The token lacks a required claim.",
            Reason::InvalidClaim => "The token has a claim with an invalid value.",
            Reason::Revoked => "The token has been revoked.",
            Reason::InsufficientScope => "The token lacks the scope this resource requires.",
            Reason::KeysUnavailable => "Token signing keys are temporarily unavailable; retry later.",
            Reason::RevocationUnavailable => {
                "The token revocation check is temporarily unavailable; retry later."
            }
            Reason::Inactive => {
                "The token is not active: its issuer reports it expired, revoked or unknown."
            }
            Reason::IntrospectionUnavailable => {
                "The token could not be checked with its issuer right now; retry later."
            }
            Reason::BoundToken => {
                "The token is bound to a key or certificate; send it with proof of possession (DPoP or the bound client certificate)."
            }
            Reason::CertificateMismatch => {
                "The token is bound to a client certificate that this connection did not present."
            }
            Reason::InvalidDpopProof => "The DPoP proof is missing or invalid for this request.",
        }
    }

    /// Where this reason sits when several problems are found: the response names the reason
    /// with the lowest precedence. Structural and key problems come before claim problems,
    /// because the claims of a token whose signature did not verify cannot be trusted.
    pub fn precedence(self) -> usize {
        Reason::ALL
            .iter()
            .position(|r| *r == self)
            .unwrap_or(usize::MAX)
    }

    /// `true` for the reasons that mean the service, not the token, is at fault (503).
    pub const fn is_unavailable(self) -> bool {
        matches!(
            self,
            Reason::KeysUnavailable
                | Reason::RevocationUnavailable
                | Reason::IntrospectionUnavailable
        )
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

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
