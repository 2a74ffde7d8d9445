//! Token validation: shape, header, key, signature and every claim check, in one pass.
//!
//! The order is cheap-first and nothing is decoded twice: the length cap, then the segment
//! shape and alphabet (so a token of a million dots costs one scan), then the header (parsed
//! once, strictly: duplicate members and unknown `crit` are refused), the key and the
//! signature, then the claims, parsed once. Every check runs and every failure is kept, so the
//! response can name the most decisive one and a diagnosis can list them all.

use std::borrow::Cow;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::Algorithm;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::config::{normalize_type, ConfigInner};
use crate::crypto::{self, VerifyError};
use crate::error::{cap, AuthError, Problem, Reason, TokenFacts};
use crate::keys::Lookup;

/// The JOSE header, read strictly. `jku`, `x5u`, `jwk` and `x5c` are read only to be ignored:
/// keys never come from the token.
#[derive(Deserialize)]
struct RawHeader<'a> {
    #[serde(borrow)]
    alg: Cow<'a, str>,
    #[serde(borrow, default)]
    kid: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    typ: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    cty: Option<Cow<'a, str>>,
    #[serde(default)]
    crit: Option<Vec<Value>>,
}

/// Verified claims, as JSON.
pub(crate) type ClaimsMap = Map<String, Value>;

/// Deserializes verified claims into `T`; a shape mismatch is `invalid_claim`.
pub(crate) fn into_claims<T: DeserializeOwned>(claims: ClaimsMap) -> Result<T, AuthError> {
    T::deserialize(Value::Object(claims)).map_err(|e| {
        AuthError::from_problems(
            vec![Problem::about(
                Reason::InvalidClaim,
                "claims do not match the expected type",
            )],
            TokenFacts::default(),
        )
        .with_source(e)
    })
}

fn is_b64url(seg: &[u8]) -> bool {
    seg.iter()
        .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
}

/// Validates `token` against the configuration and returns its claims.
pub(crate) fn validate(cfg: &ConfigInner, token: &str) -> Result<ClaimsMap, AuthError> {
    if token.len() > cfg.max_token_len {
        return Err(AuthError::new(Reason::TooLarge));
    }
    let bytes = token.as_bytes();
    // Three segments, found with at most three scans for '.', whatever the token holds.
    let Some(d1) = memchr(b'.', bytes, 0) else {
        return Err(AuthError::malformed("not a JWT: no '.' separated segments"));
    };
    let Some(d2) = memchr(b'.', bytes, d1 + 1) else {
        return Err(AuthError::malformed(
            "not a JWT: two segments, expected three",
        ));
    };
    if let Some(d3) = memchr(b'.', bytes, d2 + 1) {
        let jwe =
            memchr(b'.', bytes, d3 + 1).is_some_and(|d4| memchr(b'.', bytes, d4 + 1).is_none());
        return Err(AuthError::malformed(if jwe {
            "encrypted tokens (JWE) are not supported"
        } else {
            "too many segments"
        }));
    }
    let (h64, p64, s64) = (&bytes[..d1], &bytes[d1 + 1..d2], &bytes[d2 + 1..]);
    if h64.is_empty() || p64.is_empty() {
        return Err(AuthError::malformed("empty header or payload segment"));
    }
    if !is_b64url(h64) || !is_b64url(p64) || !is_b64url(s64) {
        return Err(AuthError::malformed("segments must be unpadded base64url"));
    }
    let Ok(header_json) = URL_SAFE_NO_PAD.decode(h64) else {
        return Err(AuthError::malformed("header is not base64url"));
    };
    // RFC 7515 §4: the header is a JSON object (serde would also fill the struct from an array).
    if header_json.trim_ascii_start().first() != Some(&b'{') {
        return Err(AuthError::malformed("header is not a JSON object"));
    }
    let header: RawHeader<'_> = match serde_json::from_slice(&header_json) {
        Ok(h) => h,
        Err(_) => return Err(AuthError::malformed("header is not a JSON object with alg")),
    };

    let mut problems: Vec<Problem> = Vec::new();

    if header
        .cty
        .as_deref()
        .is_some_and(|c| c.eq_ignore_ascii_case("jwt"))
    {
        problems.push(Problem::about(
            Reason::Malformed,
            "nested tokens are not supported",
        ));
    }
    if header.crit.is_some() {
        // No extension is understood, so any critical one must be refused (RFC 7515 §4.1.11).
        problems.push(Problem::about(
            Reason::Malformed,
            "unsupported critical header parameter",
        ));
    }

    let alg: Option<Algorithm> = header.alg.parse().ok();
    if alg.is_none() {
        problems.push(Problem::about(Reason::AlgNotAllowed, "alg"));
    }

    if let Some(required) = &cfg.required_type {
        match header.typ.as_deref() {
            Some(typ) if normalize_type(typ) == *required => {}
            _ => problems.push(Problem::about(Reason::WrongType, "typ")),
        }
    }

    // Key and signature.
    if let Some(alg) = alg {
        match cfg.keys.lookup(header.kid.as_deref(), alg) {
            Lookup::AlgNotAllowed => problems.push(Problem::about(Reason::AlgNotAllowed, "alg")),
            Lookup::UnknownKey => problems.push(Problem::about(Reason::UnknownKey, "kid")),
            Lookup::Found(key) => match URL_SAFE_NO_PAD.decode(s64) {
                Ok(sig) if !sig.is_empty() => {
                    let message = &bytes[..d2];
                    match crypto::verify(alg, &key.key, message, &sig) {
                        Ok(()) => {}
                        Err(VerifyError::Signature) => {
                            problems.push(Problem::new(Reason::BadSignature))
                        }
                        Err(VerifyError::Key) => {
                            tracing::warn!(
                                target: "tower_token_auth",
                                kid = ?key.kid,
                                ?alg,
                                "configured key could not verify: check the key material"
                            );
                            problems.push(Problem::new(Reason::BadSignature));
                        }
                    }
                }
                _ => problems.push(Problem::new(Reason::BadSignature)),
            },
        }
    }

    // Claims.
    let now = cfg.clock.now();
    let claims: Option<ClaimsMap> = match URL_SAFE_NO_PAD.decode(p64) {
        Ok(json) => serde_json::from_slice::<ClaimsMap>(&json).ok(),
        Err(_) => None,
    };
    let Some(claims) = claims else {
        problems.push(Problem::about(
            Reason::Malformed,
            "payload is not a JSON object",
        ));
        return Err(reject(problems, &header, None, cfg, now));
    };
    check_claims(cfg, &claims, now, &mut problems);

    if problems.is_empty() {
        Ok(claims)
    } else {
        Err(reject(problems, &header, Some(&claims), cfg, now))
    }
}

fn memchr(needle: u8, hay: &[u8], from: usize) -> Option<usize> {
    hay.get(from..)?
        .iter()
        .position(|b| *b == needle)
        .map(|i| i + from)
}

/// The NumericDates accepted: years 1 to 9999. Anything outside is a claim error, not a date
/// (`exp: 1e300` must not mean "never expires").
const DATE_RANGE: std::ops::RangeInclusive<i64> = -62_135_596_800..=253_402_300_799;

/// A NumericDate (RFC 7519 §2): a JSON number, possibly with a fraction, within [`DATE_RANGE`].
pub(crate) fn numeric_date(v: &Value) -> Option<i64> {
    let n = v.as_number()?;
    let secs = match n.as_i64() {
        Some(i) => i,
        None => {
            let f = n.as_f64()?.floor();
            // Checked against the range before the cast, so the cast never saturates.
            if !(f >= *DATE_RANGE.start() as f64 && f <= *DATE_RANGE.end() as f64) {
                return None;
            }
            f as i64
        }
    };
    DATE_RANGE.contains(&secs).then_some(secs)
}

fn check_claims(cfg: &ConfigInner, claims: &ClaimsMap, now: i64, problems: &mut Vec<Problem>) {
    match claims.get("exp") {
        None | Some(Value::Null) => problems.push(Problem::about(Reason::MissingClaim, "exp")),
        Some(v) => match numeric_date(v) {
            None => problems.push(Problem::about(Reason::InvalidClaim, "exp")),
            Some(exp) if now >= exp.saturating_add(cfg.leeway) => {
                problems.push(Problem::about(Reason::Expired, "exp"));
            }
            Some(_) => {}
        },
    }
    match claims.get("nbf") {
        None | Some(Value::Null) => {}
        Some(v) => match numeric_date(v) {
            None => problems.push(Problem::about(Reason::InvalidClaim, "nbf")),
            Some(nbf) if now.saturating_add(cfg.leeway) < nbf => {
                problems.push(Problem::about(Reason::NotYetValid, "nbf"));
            }
            Some(_) => {}
        },
    }
    if let Some(v) = claims.get("iat") {
        if !v.is_null() && numeric_date(v).is_none() {
            problems.push(Problem::about(Reason::InvalidClaim, "iat"));
        }
    }
    if cfg.check_issuer {
        match claims.get("iss") {
            None | Some(Value::Null) => problems.push(Problem::about(Reason::MissingClaim, "iss")),
            Some(Value::String(iss)) => {
                if !cfg.issuers.iter().any(|i| i == iss) {
                    problems.push(Problem::about(Reason::WrongIssuer, "iss"));
                }
            }
            Some(_) => problems.push(Problem::about(Reason::InvalidClaim, "iss")),
        }
    }
    if cfg.check_audience {
        match claims.get("aud") {
            None | Some(Value::Null) => problems.push(Problem::about(Reason::MissingClaim, "aud")),
            Some(Value::String(aud)) => {
                if !cfg.audiences.iter().any(|a| a == aud) {
                    problems.push(Problem::about(Reason::WrongAudience, "aud"));
                }
            }
            Some(Value::Array(list)) => {
                if !list.iter().all(Value::is_string) {
                    problems.push(Problem::about(Reason::InvalidClaim, "aud"));
                } else if !list
                    .iter()
                    .filter_map(Value::as_str)
                    .any(|aud| cfg.audiences.iter().any(|a| a == aud))
                {
                    problems.push(Problem::about(Reason::WrongAudience, "aud"));
                }
            }
            Some(_) => problems.push(Problem::about(Reason::InvalidClaim, "aud")),
        }
    }
    for claim in &cfg.required_claims {
        if claims.get(claim).is_none_or(Value::is_null) {
            // The standard ones were reported above already.
            let already = problems.iter().any(|p| p.subject() == Some(claim.as_str()));
            if !already {
                problems.push(Problem::about(Reason::MissingClaim, claim.clone()));
            }
        }
    }
    for check in &cfg.checks {
        if let Err(e) = check(claims) {
            let reason = if e.missing {
                Reason::MissingClaim
            } else {
                Reason::InvalidClaim
            };
            problems.push(Problem::about(reason, e.claim));
        }
    }
}

/// Builds the error, with the facts operators need. Only runs on the rejection path.
fn reject(
    problems: Vec<Problem>,
    header: &RawHeader<'_>,
    claims: Option<&ClaimsMap>,
    cfg: &ConfigInner,
    now: i64,
) -> AuthError {
    let mut facts = TokenFacts {
        alg: Some(cap(&header.alg)),
        kid: header.kid.as_deref().map(cap),
        typ: header.typ.as_deref().map(cap),
        checked_at: Some(now),
        expected_issuers: cfg.issuers.clone(),
        expected_audiences: cfg.audiences.clone(),
        ..TokenFacts::default()
    };
    if let Some(claims) = claims {
        facts.issuer = claims.get("iss").and_then(Value::as_str).map(cap);
        facts.audience = match claims.get("aud") {
            Some(Value::String(s)) => vec![cap(s)],
            Some(Value::Array(list)) => list
                .iter()
                .filter_map(Value::as_str)
                .take(16)
                .map(cap)
                .collect(),
            _ => Vec::new(),
        };
        facts.expires_at = claims.get("exp").and_then(numeric_date);
        facts.not_before = claims.get("nbf").and_then(numeric_date);
    }
    AuthError::from_problems(problems, facts)
}
