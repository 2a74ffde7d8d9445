//! Token validation: shape, header, key, signature and every claim check, in one pass.
//!
//! The order is cheap-first and nothing is decoded twice: the length cap, then the segment
//! shape and alphabet (so a token of a million dots costs one scan), then the header (parsed
//! once, strictly: duplicate members and unknown `crit` are refused), the key and the
//! signature, then the claims, parsed once. Every check runs and every failure is kept, so the
//! response can name the most decisive one and a diagnosis can list them all.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::Algorithm;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::clock::numeric_date;
use crate::config::{type_matches, ConfigInner, Trust};
use crate::crypto::{self, VerifyError};
use crate::error::{cap, AuthError, Problem, Reason, TokenFacts};
use crate::jws::{self, Header};
use crate::keys::{Lookup, Pending, Unresolved};

/// Verified claims, as JSON.
pub(crate) type ClaimsMap = Map<String, Value>;

/// A claims object whose top-level names are unique: `{"iss":"a","iss":"b"}` is refused (as
/// duplicate header members are) instead of letting the last value win, which other parsers
/// may read differently.
struct UniqueClaims(ClaimsMap);

impl<'de> Deserialize<'de> for UniqueClaims {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = UniqueClaims;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<UniqueClaims, A::Error> {
                let mut map = ClaimsMap::new();
                while let Some(key) = m.next_key::<String>()? {
                    let value: Value = m.next_value()?;
                    if map.insert(key, value).is_some() {
                        return Err(serde::de::Error::custom("duplicate claim"));
                    }
                }
                Ok(UniqueClaims(map))
            }
        }
        d.deserialize_map(V)
    }
}

/// What the revocation store is asked about a verified token.
pub(crate) fn token_ref(claims: &ClaimsMap) -> crate::revocation::TokenRef<'_> {
    use serde_json::Value;
    crate::revocation::TokenRef {
        jti: claims.get("jti").and_then(Value::as_str),
        iss: claims.get("iss").and_then(Value::as_str),
        sub: claims.get("sub").and_then(Value::as_str),
        iat: claims.get("iat").and_then(crate::clock::numeric_date),
        exp: claims.get("exp").and_then(crate::clock::numeric_date),
    }
}

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

/// A verified token: its claims, the index of its issuer's trust and the version of the key
/// set that verified it.
pub(crate) struct Accepted {
    pub(crate) claims: ClaimsMap,
    pub(crate) trust: usize,
    pub(crate) version: u64,
}

/// The outcome of one synchronous validation pass.
pub(crate) enum Step {
    Done(Result<Accepted, AuthError>),
    /// Keys must be fetched first; run the pending work, then validate again with
    /// `may_fetch: false`.
    Wait(Pending),
}

/// One synchronous pass. With `may_fetch`, a pass that needs remote keys returns
/// [`Step::Wait`] instead of failing.
pub(crate) fn validate_step(cfg: &ConfigInner, token: &str, may_fetch: bool) -> Step {
    match validate_inner(cfg, token, may_fetch) {
        Ok(v) => Step::Done(Ok(v)),
        Err(Flow::Reject(e)) => Step::Done(Err(e)),
        Err(Flow::Wait(p)) => Step::Wait(p),
    }
}

enum Flow {
    Reject(AuthError),
    #[cfg_attr(not(feature = "remote"), allow(dead_code))]
    Wait(Pending),
}

impl From<AuthError> for Flow {
    fn from(e: AuthError) -> Self {
        Flow::Reject(e)
    }
}

fn validate_inner(cfg: &ConfigInner, token: &str, may_fetch: bool) -> Result<Accepted, Flow> {
    if token.len() > cfg.max_token_len {
        return Err(AuthError::new(Reason::TooLarge).into());
    }
    let jws = jws::split(token)?;
    let header_json = jws::decode_header(jws.header)?;
    let header = jws::parse_header(&header_json)?;

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
    let alg = algorithm(&header.alg);
    if alg.is_none() {
        problems.push(Problem::about(Reason::AlgNotAllowed, "alg"));
    }
    if let Some(required) = &cfg.required_type {
        match header.typ.as_deref() {
            Some(typ) if type_matches(typ, required) => {}
            _ => problems.push(Problem::about(Reason::WrongType, "typ")),
        }
    }

    // Claims, parsed once: `iss` routes the token to its issuer's keys.
    let now = cfg.clock.now();
    let claims: Option<ClaimsMap> = match URL_SAFE_NO_PAD.decode(jws.payload) {
        Ok(json) => serde_json::from_slice::<UniqueClaims>(&json)
            .ok()
            .map(|c| c.0),
        Err(_) => None,
    };
    let iss = claims
        .as_ref()
        .and_then(|c| c.get("iss"))
        .and_then(Value::as_str);
    let routed = cfg.trust_for(iss);
    let trust = routed.map(|(_, trust)| trust);
    let mut version = 0;

    // Key and signature.
    if let (Some(alg), Some(trust)) = (alg, trust) {
        let kid = header.kid.as_deref();
        let checked = trust
            .keys
            .resolve(kid, alg, cfg.allowed, may_fetch, |lookup, v| {
                version = v;
                check_signature(lookup, alg, &jws)
            });
        match checked {
            Ok(None) => {}
            Ok(Some(problem)) => problems.push(problem),
            Err(Unresolved::Wait(pending)) => return Err(Flow::Wait(pending)),
            Err(Unresolved::Unavailable(e)) => return Err(Flow::Reject(e)),
        }
    }

    let Some(claims) = claims else {
        problems.push(Problem::about(
            Reason::Malformed,
            "payload is not a JSON object",
        ));
        return Err(reject(problems, &header, None, cfg, trust, now).into());
    };
    check_claims(cfg, trust, &claims, now, &mut problems);

    if problems.is_empty() {
        Ok(Accepted {
            claims,
            trust: routed.map_or(0, |(index, _)| index),
            version,
        })
    } else {
        Err(reject(problems, &header, Some(&claims), cfg, trust, now).into())
    }
}

/// The algorithm a header's `alg` names, if supported. `Ed25519` is the fully-specified name
/// of EdDSA over Ed25519 (RFC 9864).
pub(crate) fn algorithm(alg: &str) -> Option<Algorithm> {
    match alg {
        "Ed25519" => Some(Algorithm::EdDSA),
        other => other.parse().ok(),
    }
}

/// The signature step: the key found for the token verifies its signature, or the problem.
fn check_signature(lookup: Lookup<'_>, alg: Algorithm, jws: &jws::Segments<'_>) -> Option<Problem> {
    let key = match lookup {
        Lookup::AlgNotAllowed => return Some(Problem::about(Reason::AlgNotAllowed, "alg")),
        Lookup::UnknownKey => return Some(Problem::about(Reason::UnknownKey, "kid")),
        Lookup::Found(key) => key,
    };
    let sig = match URL_SAFE_NO_PAD.decode(jws.signature) {
        Ok(sig) if !sig.is_empty() => sig,
        Ok(_) => return Some(Problem::new(Reason::BadSignature)),
        Err(_) => {
            return Some(Problem::about(
                Reason::Malformed,
                "signature is not unpadded base64url",
            ))
        }
    };
    match crypto::verify(alg, &key.key, key.prepared(alg), jws.signing_input, &sig) {
        Ok(()) => None,
        Err(VerifyError::Signature) => Some(Problem::new(Reason::BadSignature)),
        Err(VerifyError::Key) => {
            tracing::warn!(
                target: "tower_token_auth",
                kid = ?key.kid,
                ?alg,
                "configured key could not verify: check the key material"
            );
            Some(Problem::new(Reason::BadSignature))
        }
    }
}

fn check_claims(
    cfg: &ConfigInner,
    trust: Option<&Trust>,
    claims: &ClaimsMap,
    now: i64,
    problems: &mut Vec<Problem>,
) {
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
    // A claim that is present must have its type: `"nbf": null` is not an absent `nbf`.
    match claims.get("nbf") {
        None => {}
        Some(v) => match numeric_date(v) {
            None => problems.push(Problem::about(Reason::InvalidClaim, "nbf")),
            Some(nbf) if now.saturating_add(cfg.leeway) < nbf => {
                problems.push(Problem::about(Reason::NotYetValid, "nbf"));
            }
            Some(_) => {}
        },
    }
    if let Some(v) = claims.get("iat") {
        if numeric_date(v).is_none() {
            problems.push(Problem::about(Reason::InvalidClaim, "iat"));
        }
    }
    if cfg.check_issuer {
        match claims.get("iss") {
            None | Some(Value::Null) => problems.push(Problem::about(Reason::MissingClaim, "iss")),
            Some(Value::String(iss)) => {
                if !trust.is_some_and(|t| t.issuers.iter().any(|i| i == iss)) {
                    problems.push(Problem::about(Reason::WrongIssuer, "iss"));
                }
            }
            Some(_) => problems.push(Problem::about(Reason::InvalidClaim, "iss")),
        }
    }
    let audiences: &[String] = trust.map(|t| t.audiences.as_slice()).unwrap_or(&[]);
    if cfg.check_audience && trust.is_some() {
        match claims.get("aud") {
            None | Some(Value::Null) => problems.push(Problem::about(Reason::MissingClaim, "aud")),
            Some(Value::String(aud)) => {
                if !audiences.iter().any(|a| a == aud) {
                    problems.push(Problem::about(Reason::WrongAudience, "aud"));
                }
            }
            Some(Value::Array(list)) => {
                if !list.iter().all(Value::is_string) {
                    problems.push(Problem::about(Reason::InvalidClaim, "aud"));
                } else if !list
                    .iter()
                    .filter_map(Value::as_str)
                    .any(|aud| audiences.iter().any(|a| a == aud))
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
    header: &Header<'_>,
    claims: Option<&ClaimsMap>,
    cfg: &ConfigInner,
    trust: Option<&Trust>,
    now: i64,
) -> AuthError {
    let mut facts = TokenFacts {
        alg: Some(cap(&header.alg)),
        kid: header.kid.as_deref().map(cap),
        typ: header.typ.as_deref().map(cap),
        checked_at: Some(now),
        expected_issuers: cfg
            .trusts
            .iter()
            .flat_map(|t| t.issuers.iter().cloned())
            .collect(),
        expected_audiences: trust.map(|t| t.audiences.clone()).unwrap_or_default(),
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
