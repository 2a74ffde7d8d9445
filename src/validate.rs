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

use crate::config::{type_matches, ConfigInner, Trust};
use crate::crypto::{self, VerifyError};
use crate::error::{cap, AuthError, Problem, Reason, TokenFacts};
use crate::keys::{KeySet, KeySource, Lookup};

/// The JOSE header, read strictly. `jku`, `x5u`, `jwk` and `x5c` are read only to be ignored:
/// keys never come from the token. A member that is present must have its type: `"kid": null`
/// or `"crit": null` is malformed, not absent.
#[derive(Deserialize)]
struct RawHeader<'a> {
    #[serde(borrow)]
    alg: Cow<'a, str>,
    #[serde(borrow, default, deserialize_with = "present")]
    kid: Option<HeaderStr<'a>>,
    #[serde(borrow, default, deserialize_with = "present")]
    typ: Option<HeaderStr<'a>>,
    #[serde(borrow, default, deserialize_with = "present")]
    cty: Option<HeaderStr<'a>>,
    #[serde(default, deserialize_with = "present")]
    crit: Option<serde::de::IgnoredAny>,
}

/// A header string member, borrowed from the decoded header when it has no escapes. Unlike
/// `Option<Cow<str>>`, a JSON `null` is an error.
struct HeaderStr<'a>(Cow<'a, str>);

impl std::ops::Deref for HeaderStr<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for HeaderStr<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Cow<'de, str>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Cow::Borrowed(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Cow::Owned(v.to_owned()))
            }
        }
        d.deserialize_str(V).map(HeaderStr)
    }
}

/// A member that is present: its value goes through `T` as is (so `null` is refused unless
/// `T` accepts it; `IgnoredAny` does, which is how `"crit": null` is seen as present).
fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

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

/// A remote key fetch the validation must wait for before it can finish. The fetch runs on
/// its own (see [`Flight`](crate::keys::remote::Flight)): dropping this never cancels it.
#[cfg(feature = "remote")]
pub(crate) struct Pending(crate::keys::remote::Flight);

/// Without remote keys, validation never waits.
#[cfg(not(feature = "remote"))]
pub(crate) enum Pending {}

impl Pending {
    /// Waits for the fetch.
    pub(crate) async fn run(self) {
        #[cfg(feature = "remote")]
        self.0.wait().await;
    }
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

/// Validates `token` against the configuration and returns its claims, fetching remote keys
/// when needed.
pub(crate) async fn validate(cfg: &ConfigInner, token: &str) -> Result<ClaimsMap, AuthError> {
    let claims = match validate_step(cfg, token, true) {
        Step::Done(r) => r?.claims,
        Step::Wait(pending) => {
            pending.run().await;
            match validate_step(cfg, token, false) {
                Step::Done(r) => r?.claims,
                Step::Wait(_) => return Err(AuthError::new(Reason::KeysUnavailable)),
            }
        }
    };
    if let Some(rev) = &cfg.revocation {
        let token = crate::revocation::token_ref(&claims);
        match rev.local(&token) {
            crate::revocation::Local::Pass => {}
            crate::revocation::Local::Reject(e) => return Err(e),
            crate::revocation::Local::Ask => rev.ask(token).await?,
        }
    }
    Ok(claims)
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
    let bytes = token.as_bytes();
    // Three segments, found with at most three scans for '.', whatever the token holds.
    let Some(d1) = memchr(b'.', bytes, 0) else {
        return Err(AuthError::malformed("not a JWT: no '.' separated segments").into());
    };
    let Some(d2) = memchr(b'.', bytes, d1 + 1) else {
        return Err(AuthError::malformed("not a JWT: two segments, expected three").into());
    };
    if let Some(d3) = memchr(b'.', bytes, d2 + 1) {
        let jwe =
            memchr(b'.', bytes, d3 + 1).is_some_and(|d4| memchr(b'.', bytes, d4 + 1).is_none());
        return Err(AuthError::malformed(if jwe {
            "encrypted tokens (JWE) are not supported"
        } else {
            "too many segments"
        })
        .into());
    }
    let (h64, p64, s64) = (&bytes[..d1], &bytes[d1 + 1..d2], &bytes[d2 + 1..]);
    if h64.is_empty() || p64.is_empty() {
        return Err(AuthError::malformed("empty header or payload segment").into());
    }
    // The alphabet (no '=', no '+' or '/') is checked by the strict base64url decoding of each
    // segment below, so the token is scanned once, not twice.
    let Ok(header_json) = URL_SAFE_NO_PAD.decode(h64) else {
        return Err(AuthError::malformed("header is not base64url").into());
    };
    // RFC 7515 §5.2: the header is UTF-8 (serde_json does not check strings it skips).
    if std::str::from_utf8(&header_json).is_err() {
        return Err(AuthError::malformed("header is not UTF-8").into());
    }
    // RFC 7515 §4: the header is a JSON object (serde would also fill the struct from an array).
    if header_json.trim_ascii_start().first() != Some(&b'{') {
        return Err(AuthError::malformed("header is not a JSON object").into());
    }
    let header: RawHeader<'_> = match serde_json::from_slice(&header_json) {
        Ok(h) => h,
        Err(_) => return Err(AuthError::malformed("header is not a JSON object with alg").into()),
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
    // `Ed25519` is the fully-specified name of EdDSA over Ed25519 (RFC 9864).
    let alg: Option<Algorithm> = match &*header.alg {
        "Ed25519" => Some(Algorithm::EdDSA),
        other => other.parse().ok(),
    };
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
    let claims: Option<ClaimsMap> = match URL_SAFE_NO_PAD.decode(p64) {
        Ok(json) => serde_json::from_slice::<UniqueClaims>(&json)
            .ok()
            .map(|c| c.0),
        Err(_) => None,
    };
    let iss = claims
        .as_ref()
        .and_then(|c| c.get("iss"))
        .and_then(Value::as_str);
    let trust_index = match (cfg.check_issuer, iss) {
        (false, _) => Some(0),
        (true, Some(iss)) => cfg
            .trusts
            .iter()
            .position(|t| t.issuers.iter().any(|i| i == iss)),
        (true, None) => None,
    };
    // With one issuer, an unknown `iss` is still checked against its keys, so a forged
    // token is reported as such; with several, there is no key to check against.
    let trust_index = trust_index.or(if cfg.trusts.len() == 1 { Some(0) } else { None });
    let trust = trust_index.and_then(|i| cfg.trusts.get(i));
    let mut version = 0;

    // Key and signature.
    if let (Some(alg), Some(trust)) = (alg, trust) {
        let set = current_set(trust, may_fetch)?;
        version = set.version();
        let mut lookup = set.lookup(header.kid.as_deref(), alg);
        // A remote set may not have the token's key yet: an unknown `kid` whose algorithm the
        // configuration allows is an unknown key (so it may trigger a refetch), not a
        // disallowed algorithm (the key rotated to another algorithm).
        if matches!(lookup, Lookup::AlgNotAllowed)
            && trust.keys.is_remote()
            && cfg.allowed.contains(alg)
            && header.kid.as_deref().is_some_and(|k| !set.has_kid(k))
        {
            lookup = Lookup::UnknownKey;
        }
        match lookup {
            Lookup::AlgNotAllowed => problems.push(Problem::about(Reason::AlgNotAllowed, "alg")),
            Lookup::UnknownKey => {
                on_unknown_kid(trust, header.kid.as_deref(), may_fetch, version)?;
                problems.push(Problem::about(Reason::UnknownKey, "kid"));
            }
            Lookup::Found(key) => match URL_SAFE_NO_PAD.decode(s64) {
                Ok(sig) if !sig.is_empty() => {
                    let message = &bytes[..d2];
                    match crypto::verify(alg, &key.key, key.prepared(alg), message, &sig) {
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
                Ok(_) => problems.push(Problem::new(Reason::BadSignature)),
                Err(_) => problems.push(Problem::about(
                    Reason::Malformed,
                    "signature is not unpadded base64url",
                )),
            },
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
            trust: trust_index.unwrap_or(0),
            version,
        })
    } else {
        Err(reject(problems, &header, Some(&claims), cfg, trust, now).into())
    }
}

/// The key set of a trust: borrowed for static keys, the current snapshot for remote ones.
enum SetRef<'a> {
    Borrowed(&'a KeySet),
    #[cfg(feature = "remote")]
    Owned(std::sync::Arc<KeySet>, u64),
}

impl SetRef<'_> {
    fn version(&self) -> u64 {
        match self {
            SetRef::Borrowed(_) => 0,
            #[cfg(feature = "remote")]
            SetRef::Owned(_, v) => *v,
        }
    }
}

impl std::ops::Deref for SetRef<'_> {
    type Target = KeySet;
    fn deref(&self) -> &KeySet {
        match self {
            SetRef::Borrowed(s) => s,
            #[cfg(feature = "remote")]
            SetRef::Owned(s, _) => s,
        }
    }
}

/// The keys to check against now, or what must be waited for first.
fn current_set(trust: &Trust, may_fetch: bool) -> Result<SetRef<'_>, Flow> {
    match &trust.keys {
        KeySource::Static(set) => {
            let _ = may_fetch;
            Ok(SetRef::Borrowed(set))
        }
        #[cfg(feature = "remote")]
        KeySource::Remote(remote) => match remote.snapshot() {
            crate::keys::remote::Snapshot::Keys(set, v) => Ok(SetRef::Owned(set, v)),
            crate::keys::remote::Snapshot::Unavailable => {
                if may_fetch {
                    if let Some(flight) = remote.fetch_for_unavailable() {
                        return Err(Flow::Wait(Pending(flight)));
                    }
                }
                Err(Flow::Reject(remote.unavailable()))
            }
        },
    }
}

/// An unknown `kid` on a remote source: refetch once per cool-down, join a running fetch, or
/// check again if the set changed since it was read; otherwise `unknown_key` at once.
fn on_unknown_kid(
    trust: &Trust,
    kid: Option<&str>,
    may_fetch: bool,
    version: u64,
) -> Result<(), Flow> {
    #[cfg(feature = "remote")]
    if let KeySource::Remote(remote) = &trust.keys {
        if may_fetch && kid.is_some() {
            if let Some(flight) = remote.fetch_for_unknown_kid(version) {
                return Err(Flow::Wait(Pending(flight)));
            }
        }
    }
    let _ = (trust, kid, may_fetch, version);
    Ok(())
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
    header: &RawHeader<'_>,
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
