//! DPoP (RFC 9449): the options, the proof checks and the replay cache.
//!
//! Every check of a proof has its own stable subject in the `invalid_dpop_proof` problem
//! (`dpop` header count, `typ`, `alg`, `jwk`, `signature`, `htm`, `htu`, `iat`, `ath`, `jkt`,
//! `jti`, `cnf`, `nonce`), so a client report, a log line and a diagnosis name the same check.
//!
//! The proof is attacker-controlled input: it is size-capped, parsed strictly, its key must be
//! public (private members and `oct` keys are refused), its algorithm asymmetric and in the
//! allow-list, and it is checked completely before its `jti` is remembered, so invalid proofs
//! cannot fill the replay cache.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::Algorithm;
use serde_json::Value;

use super::htu::{forwarded_origin, Htu};
use crate::error::{AuthError, Problem, Reason};

/// The proof algorithms accepted by default: asymmetric only.
pub const DEFAULT_DPOP_ALGORITHMS: [Algorithm; 6] = [
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::RS256,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::EdDSA,
];

/// The largest proof read (a proof carries its public key: an RSA-4096 JWK is under 1 KiB).
const MAX_PROOF_LEN: usize = 8 * 1024;

/// DPoP (RFC 9449) at this resource server; give it to
/// [`AuthConfigBuilder::dpop`](crate::AuthConfigBuilder::dpop).
///
/// - [`Dpop::allowed`]: `Authorization: DPoP` with a proof, and `Bearer`, are both accepted; a
///   DPoP-bound token (`cnf.jkt`) is accepted only with its proof.
/// - [`Dpop::required`]: only `Authorization: DPoP` (a `Bearer` request has no token).
///
/// The URL a proof must name (`htu`) is the request's, without query and fragment: from
/// [`base_url`](Dpop::base_url) and the request path when set (behind a proxy), else from the
/// `Forwarded` / `X-Forwarded-Proto` / `X-Forwarded-Host` headers when
/// [`trust_forwarded_headers`](Dpop::trust_forwarded_headers) is on, else `https://` and the
/// `Host` header.
///
/// ```
/// use std::time::Duration;
/// use tower_token_auth::{binding::Dpop, AuthConfig, Keys};
///
/// let cfg = AuthConfig::builder()
///     .keys(Keys::hmac([7u8; 32]))
///     .issuer("https://login.example.com")
///     .audience("api")
///     .dpop(Dpop::allowed().base_url("https://api.example.com").max_age(Duration::from_secs(60)))
///     .build()?;
/// # let _ = cfg;
/// # Ok::<(), tower_token_auth::ConfigError>(())
/// ```
#[derive(Clone)]
#[must_use]
pub struct Dpop {
    pub(crate) required: bool,
    pub(crate) algorithms: Vec<Algorithm>,
    pub(crate) max_age: Duration,
    pub(crate) base_url: Option<String>,
    pub(crate) forwarded: bool,
    pub(crate) replay_capacity: usize,
    pub(crate) accept_unbound: bool,
    pub(crate) nonce: Option<Duration>,
    pub(crate) nonce_secret: Option<[u8; 32]>,
    pub(crate) store: Option<(std::sync::Arc<dyn super::ReplayStore>, Duration)>,
}

impl std::fmt::Debug for Dpop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dpop")
            .field("required", &self.required)
            .field("algorithms", &self.algorithms)
            .field("max_age", &self.max_age)
            .field("base_url", &self.base_url)
            .field("forwarded", &self.forwarded)
            .field("replay_capacity", &self.replay_capacity)
            .field("shared_replay_store", &self.store.is_some())
            .finish_non_exhaustive()
    }
}

impl Dpop {
    fn new(required: bool) -> Self {
        Dpop {
            required,
            algorithms: DEFAULT_DPOP_ALGORITHMS.to_vec(),
            max_age: Duration::from_secs(60),
            base_url: None,
            forwarded: false,
            replay_capacity: 100_000,
            accept_unbound: false,
            nonce: None,
            nonce_secret: None,
            store: None,
        }
    }

    /// DPoP and bearer tokens are both accepted.
    pub fn allowed() -> Self {
        Dpop::new(false)
    }

    /// Only DPoP: every request must use `Authorization: DPoP` with a proof.
    pub fn required() -> Self {
        Dpop::new(true)
    }

    /// The proof algorithms accepted (default [`DEFAULT_DPOP_ALGORITHMS`]); symmetric ones
    /// (`HS*`) are refused at `build()`.
    pub fn algorithms(mut self, algs: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = algs.into_iter().collect();
        self
    }

    /// How old a proof may be (its `iat`; default 60 s), plus the configuration's leeway; a
    /// proof from the future beyond the leeway is refused too. Proofs are remembered (replay)
    /// for this long.
    pub fn max_age(mut self, age: Duration) -> Self {
        self.max_age = age;
        self
    }

    /// The external origin of this API (`https://api.example.com`, optionally with a path
    /// prefix), for `htu`: what clients see, behind a proxy or load balancer.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }

    /// Reads the scheme and host for `htu` from `Forwarded` (RFC 7239) or
    /// `X-Forwarded-Proto` / `X-Forwarded-Host`. Only behind a proxy that sets them and strips
    /// the client's own: a client could otherwise choose the URL its proofs are checked for.
    pub fn trust_forwarded_headers(mut self) -> Self {
        self.forwarded = true;
        self
    }

    /// The most proofs remembered for replay detection (default 100,000: about 7 MB at most).
    /// When it is full of proofs still within their age, new proofs are refused (`jti`)
    /// rather than forgetting one that could then be replayed.
    pub fn replay_capacity(mut self, proofs: usize) -> Self {
        self.replay_capacity = proofs;
        self
    }

    /// Accepts the DPoP scheme with a token that is not bound (no `cnf.jkt`), checking the
    /// proof alone. By default such a request is refused (`invalid_dpop_proof`, `cnf`): a
    /// proof cannot bind a token that was not issued bound.
    pub fn accept_unbound_tokens(mut self) -> Self {
        self.accept_unbound = true;
        self
    }

    /// Remembers proofs in `store`, shared by every instance of the service (e.g.
    /// [`RedisReplayStore`](super::RedisReplayStore)), instead of this process's memory: a proof
    /// accepted by one instance is a replay on every other. A store that does not answer
    /// within `timeout` fails closed: `replay_unavailable` (503 with `Retry-After`).
    pub fn replay_store(mut self, store: impl super::ReplayStore) -> Self {
        self.store = Some((std::sync::Arc::new(store), Duration::from_millis(200)));
        self
    }

    /// The bound on one question to the shared replay store (default 200 ms).
    pub fn replay_timeout(mut self, timeout: Duration) -> Self {
        if let Some((_, t)) = &mut self.store {
            *t = timeout;
        }
        self
    }

    /// Requires server-provided nonces (RFC 9449 §9): a proof must carry the current nonce,
    /// else the request gets `use_dpop_nonce` (401) with the nonce in `DPoP-Nonce`. Nonces are
    /// stateless (a keyed hash of the time slot), change every `rotation`, and the previous
    /// one is still accepted, so a nonce lives between one and two rotations.
    pub fn use_nonce(mut self, rotation: Duration) -> Self {
        self.nonce = Some(rotation);
        self
    }

    /// The secret nonces are made with (default: random per process). Give every instance
    /// of a service the same secret, or a nonce issued by one instance is refused by the
    /// others.
    pub fn nonce_secret(mut self, secret: [u8; 32]) -> Self {
        self.nonce_secret = Some(secret);
        self
    }

    pub(crate) fn build(&self) -> Result<DpopChecker, crate::error::ConfigError> {
        use crate::error::ConfigError;
        if self.algorithms.is_empty()
            || self
                .algorithms
                .iter()
                .any(|a| matches!(a, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512))
        {
            return Err(ConfigError::InvalidDpop(
                "the proof algorithms must be asymmetric (no HS256/384/512) and not empty",
            ));
        }
        if self.max_age.is_zero()
            || self.replay_capacity == 0
            || self.nonce.is_some_and(|r| r.as_secs() == 0)
        {
            return Err(ConfigError::InvalidDpop(
                "max_age, replay_capacity and the nonce rotation (whole seconds) must be above zero",
            ));
        }
        let base = match &self.base_url {
            None => None,
            Some(url) => Some(
                Htu::parse(url)
                    .filter(|b| b.path_and_more.is_empty() || b.path_and_more.starts_with('/'))
                    .ok_or(ConfigError::InvalidDpop(
                        "base_url must be an absolute http(s) URL, e.g. \"https://api.example.com\"",
                    ))?,
            ),
        };
        let algs = self
            .algorithms
            .iter()
            .map(|a| format!("{a:?}"))
            .collect::<Vec<_>>()
            .join(" ");
        let mut nonce_key = self.nonce_secret.unwrap_or_default();
        if self.nonce.is_some()
            && self.nonce_secret.is_none()
            && getrandom::fill(&mut nonce_key).is_err()
        {
            return Err(ConfigError::InvalidDpop("no randomness for the nonce key"));
        }
        Ok(DpopChecker {
            options: self.clone(),
            base,
            algs,
            replay: Mutex::new(HashMap::new()),
            nonce_key,
            last_sweep: std::sync::atomic::AtomicI64::new(i64::MIN),
        })
    }
}

/// The runtime side of [`Dpop`]: the options and the replay cache.
pub(crate) struct DpopChecker {
    pub(crate) options: Dpop,
    base: Option<Htu>,
    /// The accepted algorithms, space-separated, for the `algs` challenge parameter.
    pub(crate) algs: String,
    /// Proofs seen: SHA-256 of (`jkt`, `jti`) → until when they are remembered.
    replay: Mutex<HashMap<[u8; 32], i64>>,
    /// The secret of the stateless nonces, drawn at start-up.
    nonce_key: [u8; 32],
    /// When the full replay cache was last swept of expired proofs.
    last_sweep: std::sync::atomic::AtomicI64,
}

/// The scheme the token came with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Scheme {
    /// `Authorization: Bearer`, or any other source.
    #[default]
    Bearer,
    /// `Authorization: DPoP`.
    Dpop,
}

impl Scheme {
    pub(crate) fn of(parts: &http::request::Parts, source: &str) -> Scheme {
        if source != "authorization" {
            return Scheme::Bearer;
        }
        match parts.headers.get(http::header::AUTHORIZATION) {
            Some(v)
                if v.as_bytes()
                    .get(..5)
                    .is_some_and(|s| s.eq_ignore_ascii_case(b"dpop ")) =>
            {
                Scheme::Dpop
            }
            _ => Scheme::Bearer,
        }
    }
}

/// What a DPoP check needs of the request, owned.
#[derive(Debug)]
pub(crate) struct Request {
    /// The `DPoP` header values (an error when there are none or several).
    proof: Result<String, &'static str>,
    method: http::Method,
    /// The request's URL as a proof must name it, normalized.
    htu: Option<Htu>,
}

impl DpopChecker {
    /// What the check needs of the request, when the request takes part in DPoP.
    pub(super) fn request(&self, parts: &http::request::Parts, scheme: Scheme) -> Option<Request> {
        let mut values = parts.headers.get_all("dpop").iter();
        let first = values.next();
        if first.is_none() && scheme != Scheme::Dpop {
            return None;
        }
        let proof = match (first, values.next()) {
            (None, _) => Err("dpop"),
            (Some(_), Some(_)) => Err("dpop"),
            (Some(v), None) => match v.to_str() {
                Ok(s) if s.len() <= MAX_PROOF_LEN && !s.is_empty() => Ok(s.to_owned()),
                _ => Err("dpop"),
            },
        };
        Some(Request {
            proof,
            method: parts.method.clone(),
            htu: self.request_htu(parts),
        })
    }

    fn request_htu(&self, parts: &http::request::Parts) -> Option<Htu> {
        let path = parts.uri.path();
        if self.options.forwarded {
            if let Some(htu) = forwarded_origin(&parts.headers) {
                return Htu::parse(&format!("{htu}{path}"));
            }
        }
        if let Some(base) = &self.base {
            let prefix = base.path_and_more.trim_end_matches('/');
            return Some(Htu {
                scheme: base.scheme.clone(),
                authority: base.authority.clone(),
                path_and_more: format!("{prefix}{path}"),
            });
        }
        let host = parts
            .uri
            .authority()
            .map(|a| a.as_str().to_owned())
            .or_else(|| {
                parts
                    .headers
                    .get(http::header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .map(str::to_owned)
            })?;
        let scheme = parts.uri.scheme_str().unwrap_or("https");
        Htu::parse(&format!("{scheme}://{host}{path}"))
    }

    /// Checks the request's proof for `token` (bound to `jkt`, if it is).
    pub(super) fn check(
        &self,
        token: &str,
        jkt: Option<&str>,
        request: Option<&Request>,
        now: i64,
        leeway: i64,
    ) -> Result<Option<super::ReplayAsk>, AuthError> {
        let fail = |subject: &'static str| {
            AuthError::from_problems(
                vec![Problem::about(Reason::InvalidDpopProof, subject)],
                Default::default(),
            )
        };
        if jkt.is_none() && !self.options.accept_unbound {
            return Err(fail("cnf"));
        }
        let Some(request) = request else {
            return Err(fail("dpop"));
        };
        let proof = request.proof.as_deref().map_err(|s| fail(s))?;
        let checked = self
            .verify(proof, token, request, now, leeway)
            .map_err(fail)?;
        if let Some(rotation) = self.options.nonce {
            let slot = now / i64::try_from(rotation.as_secs()).unwrap_or(i64::MAX).max(1);
            let fresh = [slot, slot - 1].map(|s| self.nonce_for(s));
            if !checked.nonce.as_ref().is_some_and(|n| fresh.contains(n)) {
                let mut err = AuthError::from_problems(
                    vec![Problem::about(Reason::UseDpopNonce, "nonce")],
                    Default::default(),
                );
                err.set_dpop_nonce(fresh[0].clone());
                return Err(err);
            }
        }
        if let Some(jkt) = jkt {
            // Both are base64url of a SHA-256: public values, compared exactly.
            if checked.thumbprint != jkt {
                return Err(fail("jkt"));
            }
        }
        let (id, until) = self.replay_id(&checked, leeway).map_err(fail)?;
        match &self.options.store {
            Some((store, timeout)) => Ok(Some(super::ReplayAsk {
                store: std::sync::Arc::clone(store),
                timeout: *timeout,
                id,
                until,
            })),
            None => self.remember(id, until, now).map(|()| None).map_err(fail),
        }
    }

    /// The proof's replay id (SHA-256 of its key's thumbprint and `jti`) and until when it
    /// must be remembered (past that, its `iat` is too old anyway).
    fn replay_id(&self, checked: &Checked, leeway: i64) -> Result<([u8; 32], i64), &'static str> {
        let mut id = Vec::with_capacity(checked.thumbprint.len() + 1 + checked.jti.len());
        id.extend_from_slice(checked.thumbprint.as_bytes());
        id.push(b' ');
        id.extend_from_slice(checked.jti.as_bytes());
        let digest: [u8; 32] = crate::crypto::sha256(&id).try_into().map_err(|_| "jti")?;
        let max_age = i64::try_from(self.options.max_age.as_secs()).unwrap_or(i64::MAX);
        let until = checked
            .iat
            .saturating_add(max_age)
            .saturating_add(leeway.saturating_mul(2));
        Ok((digest, until))
    }

    /// The nonce of a time slot: base64url of a keyed SHA-256 (the key is secret; the input
    /// has a fixed length).
    fn nonce_for(&self, slot: i64) -> String {
        let mut input = Vec::with_capacity(40);
        input.extend_from_slice(&self.nonce_key);
        input.extend_from_slice(&slot.to_be_bytes());
        URL_SAFE_NO_PAD.encode(&crate::crypto::sha256(&input)[..16])
    }

    /// Every check of the proof but replay.
    fn verify(
        &self,
        proof: &str,
        token: &str,
        request: &Request,
        now: i64,
        leeway: i64,
    ) -> Result<Checked, &'static str> {
        let jws = crate::jws::split(proof).map_err(|_| "dpop")?;
        let header_json = crate::jws::decode_header(jws.header).map_err(|_| "dpop")?;
        // Strict first (duplicate members, types), then the `jwk` member it ignores.
        let header = crate::jws::parse_header(&header_json).map_err(|_| "dpop")?;
        if header.crit.is_some() {
            return Err("dpop");
        }
        if header.typ.as_deref() != Some("dpop+jwt") {
            return Err("typ");
        }
        let alg = crate::keys::algorithm(&header.alg).ok_or("alg")?;
        if !self.options.algorithms.contains(&alg) {
            return Err("alg");
        }
        #[derive(serde::Deserialize)]
        struct JwkHeader {
            jwk: Option<Value>,
        }
        let jwk = serde_json::from_slice::<JwkHeader>(&header_json)
            .ok()
            .and_then(|h| h.jwk)
            .ok_or("jwk")?;
        let (key, thumbprint) = crate::keys::client_jwk(&jwk).map_err(|_| "jwk")?;
        if !key.algorithms.contains(alg) {
            return Err("alg");
        }
        let sig = URL_SAFE_NO_PAD
            .decode(jws.signature)
            .map_err(|_| "signature")?;
        crate::crypto::verify(alg, &key.key, None, jws.signing_input, &sig)
            .map_err(|_| "signature")?;

        #[derive(serde::Deserialize)]
        struct Claims {
            jti: Option<Value>,
            htm: Option<Value>,
            htu: Option<Value>,
            iat: Option<Value>,
            ath: Option<Value>,
            nonce: Option<Value>,
        }
        let payload = URL_SAFE_NO_PAD.decode(jws.payload).map_err(|_| "dpop")?;
        // RFC 7519: the claims are a JSON object (serde would also fill the struct from an
        // array; found by the dpop fuzz target).
        if payload.trim_ascii_start().first() != Some(&b'{') {
            return Err("dpop");
        }
        let claims: Claims = serde_json::from_slice(&payload).map_err(|_| "dpop")?;
        let text = |v: &Option<Value>| match v {
            Some(Value::String(s)) => Some(s.clone()),
            _ => None,
        };
        let jti = text(&claims.jti)
            .filter(|j| !j.is_empty() && j.len() <= 256)
            .ok_or("jti")?;
        if text(&claims.htm).as_deref() != Some(request.method.as_str()) {
            return Err("htm");
        }
        let named = text(&claims.htu)
            .and_then(|u| Htu::parse(&u))
            .ok_or("htu")?;
        if request.htu.as_ref() != Some(&named.without_query()) {
            return Err("htu");
        }
        let iat = match &claims.iat {
            Some(Value::Number(n)) => n.as_i64().ok_or("iat")?,
            _ => return Err("iat"),
        };
        let max_age = i64::try_from(self.options.max_age.as_secs()).unwrap_or(i64::MAX);
        if iat > now.saturating_add(leeway)
            || iat < now.saturating_sub(max_age).saturating_sub(leeway)
        {
            return Err("iat");
        }
        let ath = URL_SAFE_NO_PAD.encode(crate::crypto::sha256(token.as_bytes()));
        if text(&claims.ath).as_deref() != Some(ath.as_str()) {
            return Err("ath");
        }
        Ok(Checked {
            thumbprint,
            jti,
            iat,
            nonce: text(&claims.nonce),
        })
    }

    /// Remembers the proof in this process; `Err` if it was seen before (or the cache is full).
    fn remember(&self, digest: [u8; 32], until: i64, now: i64) -> Result<(), &'static str> {
        let mut seen = self
            .replay
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if seen.get(&digest).is_some_and(|t| *t >= now) {
            return Err("jti");
        }
        if seen.len() >= self.options.replay_capacity {
            // Swept at most once per second: while full of live proofs, each refusal must
            // not cost a full scan (nor a log line).
            if self
                .last_sweep
                .swap(now, std::sync::atomic::Ordering::Relaxed)
                == now
            {
                return Err("jti");
            }
            seen.retain(|_, t| *t >= now);
            if seen.len() >= self.options.replay_capacity {
                tracing::warn!(
                    target: "tower_token_auth",
                    capacity = self.options.replay_capacity,
                    "DPoP replay cache full of live proofs: new proofs are refused (raise Dpop::replay_capacity)"
                );
                return Err("jti");
            }
        }
        seen.insert(digest, until);
        Ok(())
    }
}

/// What a valid proof says.
struct Checked {
    thumbprint: String,
    jti: String,
    iat: i64,
    nonce: Option<String>,
}
