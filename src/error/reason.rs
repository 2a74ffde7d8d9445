//! [`Reason`]: the stable code of every rejection, with its status, challenge error and
//! fixed texts.

use std::fmt;

use http::StatusCode;

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
    /// The DPoP proof lacks the server's current nonce (RFC 9449 §9): retry with the nonce of
    /// the `DPoP-Nonce` response header.
    UseDpopNonce,
    /// The shared DPoP replay store could not be asked and the proof might be a replay (fail
    /// closed).
    ReplayUnavailable,
}

impl Reason {
    /// Every reason, in the order of [`Reason::precedence`] (most decisive first).
    pub const ALL: [Reason; 25] = [
        Reason::KeysUnavailable,
        Reason::RevocationUnavailable,
        Reason::IntrospectionUnavailable,
        Reason::ReplayUnavailable,
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
        Reason::UseDpopNonce,
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
            Reason::UseDpopNonce => "use_dpop_nonce",
            Reason::ReplayUnavailable => "replay_unavailable",
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
            | Reason::IntrospectionUnavailable
            | Reason::ReplayUnavailable => StatusCode::SERVICE_UNAVAILABLE,
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
            | Reason::IntrospectionUnavailable
            | Reason::ReplayUnavailable => None,
            Reason::InvalidRequest => Some("invalid_request"),
            Reason::InsufficientScope => Some("insufficient_scope"),
            Reason::InvalidDpopProof => Some("invalid_dpop_proof"),
            Reason::UseDpopNonce => Some("use_dpop_nonce"),
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
            Reason::UseDpopNonce => "DPoP nonce required",
            Reason::ReplayUnavailable => "DPoP replay check unavailable",
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
            Reason::UseDpopNonce => {
                "The DPoP proof must carry the server's nonce; retry with the DPoP-Nonce header's value."
            }
            Reason::ReplayUnavailable => {
                "The DPoP proof could not be checked for replay right now; retry later with a new proof."
            }
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
                | Reason::ReplayUnavailable
        )
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}
