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

use crate::config::{type_matches, ConfigInner, Trust};
use crate::crypto::{self, VerifyError};
use crate::error::{cap, AuthError, Problem, Reason, TokenFacts};
use crate::jws::{self, Header};
use crate::keys::{Lookup, Pending, Unresolved};

mod registered;

pub(crate) use registered::{claims_map, ClaimsMap};
use registered::{Aud, Date, Registered, Text};

/// What later steps need of a verified token's claims, read by the claims step: the dates,
/// and `jti`, `iss`, `sub` when a revocation store will be asked.
#[derive(Debug, Default)]
pub(crate) struct Facts {
    pub(crate) exp: Option<i64>,
    pub(crate) nbf: Option<i64>,
    pub(crate) iat: Option<i64>,
    pub(crate) jti: Option<Box<str>>,
    pub(crate) iss: Option<Box<str>>,
    pub(crate) sub: Option<Box<str>>,
    /// The token's confirmation (`cnf`), when it is bound to a key or certificate.
    pub(crate) cnf: Option<std::sync::Arc<crate::binding::Cnf>>,
}

impl Facts {
    /// What the revocation store is asked about the token.
    pub(crate) fn token_ref(&self) -> crate::revocation::TokenRef<'_> {
        crate::revocation::TokenRef {
            jti: self.jti.as_deref(),
            iss: self.iss.as_deref(),
            sub: self.sub.as_deref(),
            iat: self.iat,
            exp: self.exp,
        }
    }
}

/// Deserializes verified claims (the payload JSON) into `T`; a shape mismatch is
/// `invalid_claim`.
pub(crate) fn into_claims<T: DeserializeOwned>(payload: &str) -> Result<T, AuthError> {
    serde_json::from_str::<T>(payload).map_err(|e| {
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

/// A verified token: its claims (the payload JSON, and the facts later steps need), the
/// index of its issuer's trust and the version of the key set that verified it.
pub(crate) struct Accepted {
    /// The claims JSON (checked UTF-8 once, so later parses skip that check per string).
    pub(crate) payload: String,
    pub(crate) facts: Facts,
    /// The claims as a map, when user checks read them (kept for the cache's hits).
    pub(crate) checked: Option<std::sync::Arc<ClaimsMap>>,
    pub(crate) trust: usize,
    pub(crate) version: u64,
    /// Claims from an introspection answer: cached by the introspection cache (whose bounds
    /// hold), never by the verified-token cache.
    pub(crate) introspected: bool,
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
    let last = cfg.last_header.get(jws.header)?;
    let header: &Header<'_> = &last.1;

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
    let payload = URL_SAFE_NO_PAD
        .decode(jws.payload)
        .ok()
        .and_then(|json| String::from_utf8(json).ok());
    let claims = payload.as_deref().and_then(Registered::parse);
    let routed = cfg.trust_for(claims.as_ref().and_then(|c| c.iss.as_str()));
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

    let (Some(claims), Some(json)) = (claims, payload.as_deref()) else {
        problems.push(Problem::about(
            Reason::Malformed,
            "payload is not a JSON object",
        ));
        return Err(reject(problems, Some(header), None, cfg, trust, now).into());
    };
    let (facts, checked) = claims_step(cfg, trust, &claims, json, now, problems)
        .map_err(|problems| reject(problems, Some(header), Some(&claims), cfg, trust, now))?;
    drop(claims);
    Ok(Accepted {
        payload: payload.unwrap_or_default(),
        facts,
        checked,
        trust: routed.map_or(0, |(i, _)| i),
        version,
        introspected: false,
    })
}

/// The claims step, for a verified JWT and an introspection answer alike: the registered
/// claims, then the user checks; the facts later steps need, or every problem found.
fn claims_step(
    cfg: &ConfigInner,
    trust: Option<&Trust>,
    claims: &Registered<'_>,
    json: &str,
    now: i64,
    mut problems: Vec<Problem>,
) -> Result<(Facts, Option<std::sync::Arc<ClaimsMap>>), Vec<Problem>> {
    check_claims(cfg, trust, claims, now, &mut problems);
    // A bound token's confirmation, read only when there is one (a second look at the
    // claims, for bound tokens only).
    let cnf = if claims.has("cnf") {
        match crate::binding::Cnf::of_claims(json) {
            Ok(cnf) => cnf,
            Err(problem) => {
                problems.push(problem);
                None
            }
        }
    } else {
        None
    };
    // User checks read the claims by name: a map, built only when there are checks.
    let checked = if cfg.checks.is_empty() {
        None
    } else {
        let map = claims_map(json).unwrap_or_default();
        run_checks(cfg, &map, &mut problems);
        Some(std::sync::Arc::new(map))
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    let ids = cfg.revocation.is_some();
    let text = |t: &Text<'_>| if ids { t.as_str().map(Box::from) } else { None };
    let facts = Facts {
        exp: claims.exp.at(),
        nbf: claims.nbf.at(),
        iat: claims.iat.at(),
        jti: text(&claims.jti),
        iss: text(&claims.iss),
        sub: text(&claims.sub),
        cnf,
    };
    Ok((facts, checked))
}

/// An introspection answer, checked like a JWT's claims (the answer's issuer is the trust at
/// `index`): accepted, or the reason.
#[cfg(feature = "remote")]
pub(crate) fn check_introspected(
    cfg: &ConfigInner,
    index: usize,
    answer: Result<crate::introspection::Answer, crate::introspection::CallError>,
) -> Result<Accepted, AuthError> {
    use crate::introspection::Answer;
    let now = cfg.clock.now();
    let claims = match answer {
        Ok(Answer::Active { claims, .. }) => claims,
        Ok(Answer::Inactive) => {
            let facts = TokenFacts {
                checked_at: Some(now),
                ..TokenFacts::default()
            };
            return Err(AuthError::from_problems(
                vec![Problem::about(Reason::Inactive, "active")],
                facts,
            ));
        }
        Err(e) => {
            return Err(
                AuthError::new(Reason::IntrospectionUnavailable).with_retry_after(e.retry_after())
            )
        }
    };
    let trust = cfg.trusts.get(index);
    let Some(registered) = Registered::parse(&claims) else {
        let problems = vec![Problem::about(
            Reason::Malformed,
            "introspection answer is not a JSON object",
        )];
        return Err(reject(problems, None, None, cfg, trust, now));
    };
    let (facts, checked) = claims_step(cfg, trust, &registered, &claims, now, Vec::new())
        .map_err(|problems| reject(problems, None, Some(&registered), cfg, trust, now))?;
    drop(registered);
    Ok(Accepted {
        payload: String::from(&*claims),
        facts,
        checked,
        trust: index,
        version: 0,
        introspected: true,
    })
}

pub(crate) use crate::keys::algorithm;

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
    claims: &Registered<'_>,
    now: i64,
    problems: &mut Vec<Problem>,
) {
    match claims.exp {
        Date::Absent | Date::Null => problems.push(Problem::about(Reason::MissingClaim, "exp")),
        Date::Invalid => problems.push(Problem::about(Reason::InvalidClaim, "exp")),
        Date::At(exp) if now >= exp.saturating_add(cfg.leeway) => {
            problems.push(Problem::about(Reason::Expired, "exp"));
        }
        Date::At(_) => {}
    }
    // A claim that is present must have its type: `"nbf": null` is not an absent `nbf`.
    match claims.nbf {
        Date::Absent => {}
        Date::Null | Date::Invalid => problems.push(Problem::about(Reason::InvalidClaim, "nbf")),
        Date::At(nbf) if now.saturating_add(cfg.leeway) < nbf => {
            problems.push(Problem::about(Reason::NotYetValid, "nbf"));
        }
        Date::At(_) => {}
    }
    if matches!(claims.iat, Date::Null | Date::Invalid) {
        problems.push(Problem::about(Reason::InvalidClaim, "iat"));
    }
    if cfg.check_issuer {
        match &claims.iss {
            Text::Absent | Text::Null => problems.push(Problem::about(Reason::MissingClaim, "iss")),
            Text::Str(iss) => {
                if !trust.is_some_and(|t| t.issuers.iter().any(|i| i == iss)) {
                    problems.push(Problem::about(Reason::WrongIssuer, "iss"));
                }
            }
            Text::Other => problems.push(Problem::about(Reason::InvalidClaim, "iss")),
        }
    }
    let audiences: &[String] = trust.map(|t| t.audiences.as_slice()).unwrap_or(&[]);
    if cfg.check_audience && trust.is_some() {
        let wanted = |aud: &str| audiences.iter().any(|a| a == aud);
        match &claims.aud {
            Aud::Absent | Aud::Null => problems.push(Problem::about(Reason::MissingClaim, "aud")),
            Aud::One(aud) => {
                if !wanted(aud) {
                    problems.push(Problem::about(Reason::WrongAudience, "aud"));
                }
            }
            Aud::Many(list) => {
                if !list.iter().any(|aud| wanted(aud)) {
                    problems.push(Problem::about(Reason::WrongAudience, "aud"));
                }
            }
            Aud::Invalid => problems.push(Problem::about(Reason::InvalidClaim, "aud")),
        }
    }
    for claim in &cfg.required_claims {
        if !claims.has(claim) {
            // The standard ones were reported above already.
            let already = problems.iter().any(|p| p.subject() == Some(claim.as_str()));
            if !already {
                problems.push(Problem::about(Reason::MissingClaim, claim.clone()));
            }
        }
    }
}

/// The user checks, in order, on the claims as a map.
fn run_checks(cfg: &ConfigInner, claims: &ClaimsMap, problems: &mut Vec<Problem>) {
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
    header: Option<&Header<'_>>,
    claims: Option<&Registered<'_>>,
    cfg: &ConfigInner,
    trust: Option<&Trust>,
    now: i64,
) -> AuthError {
    let mut facts = TokenFacts {
        alg: header.map(|h| cap(&h.alg)),
        kid: header.and_then(|h| h.kid.as_deref()).map(cap),
        typ: header.and_then(|h| h.typ.as_deref()).map(cap),
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
        facts.issuer = claims.iss.as_str().map(cap);
        facts.audience = match &claims.aud {
            Aud::One(s) => vec![cap(s)],
            Aud::Many(list) => list.iter().take(16).map(|a| cap(a)).collect(),
            _ => Vec::new(),
        };
        facts.expires_at = claims.exp.at();
        facts.not_before = claims.nbf.at();
    }
    AuthError::from_problems(problems, facts)
}
