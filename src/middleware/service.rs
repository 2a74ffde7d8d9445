//! [`TokenAuth`]: the `Service` the layer wraps around the inner one.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::request::Parts;
use http::{Request, Response};
use serde::de::DeserializeOwned;
use tower_service::Service;

use super::future::{CheckFuture, ResponseFuture};
use super::layer::{Mode, TokenAuthLayer};
use crate::cache::{CacheFacts, Entry, Hit, TokenCache};
use crate::claims::{LayerMarker, VerifiedClaims};
use crate::config::{AuthConfig, ConfigInner};
use crate::error::{AuthError, Reason};
use crate::response::Responder;
use crate::revocation::Local;
use crate::scope::Grants;
use crate::source::find_token;
use crate::validate::{into_claims, token_ref, validate_step, Accepted, Pending, Step};

/// The service built by [`TokenAuthLayer`]; see there.
pub struct TokenAuth<S, T, R> {
    inner: S,
    config: AuthConfig,
    responder: R,
    mode: Mode,
    realm: Option<Arc<str>>,
    cache: Option<Arc<TokenCache<T>>>,
    diagnose: bool,
}

impl<S, T, R> TokenAuth<S, T, R> {
    pub(crate) fn new(inner: S, layer: TokenAuthLayer<T, R>) -> Self {
        let realm = layer.config.realm().map(Arc::from);
        TokenAuth {
            inner,
            config: layer.config,
            responder: layer.responder,
            mode: layer.mode,
            realm,
            cache: layer.cache,
            diagnose: layer.diagnose,
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: Clone, T, R: Clone> Clone for TokenAuth<S, T, R> {
    fn clone(&self) -> Self {
        TokenAuth {
            inner: self.inner.clone(),
            config: self.config.clone(),
            responder: self.responder.clone(),
            mode: self.mode,
            realm: self.realm.clone(),
            cache: self.cache.clone(),
            diagnose: self.diagnose,
        }
    }
}

impl<S: fmt::Debug, T, R: fmt::Debug> fmt::Debug for TokenAuth<S, T, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenAuth")
            .field("inner", &self.inner)
            .field("config", &self.config)
            .field("responder", &self.responder)
            .field("mode", &self.mode)
            .finish()
    }
}

/// What the request holds until the check is done.
pub(crate) struct Held<ReqBody, T, R> {
    parts: Parts,
    body: ReqBody,
    responder: R,
    mode: Mode,
    realm: Option<Arc<str>>,
    source: &'static str,
    timer: crate::metrics::Timer,
    cache: Option<Arc<TokenCache<T>>>,
    /// A revocation store is configured (cache entries then keep `jti`, `iss`, `sub`).
    has_revocation: bool,
    /// User checks are configured (cache entries then keep the claims to run them on hits).
    has_checks: bool,
}

/// The result of looking for and validating the token.
pub(crate) enum Checked<T> {
    /// No token was found, or the sources refused the request.
    NoToken(Result<(), AuthError>),
    /// A token was validated (the token text is kept to be cached when accepted).
    Validated(Result<Accepted, AuthError>, Option<Box<str>>),
    /// A token found in the verified-token cache.
    Cached(Arc<Entry<T>>),
}

/// Turns the check into either the inner service's future (claims inserted) or a rejection.
pub(crate) fn finish<S, ReqBody, ResBody, T, R>(
    checked: Checked<T>,
    held: Held<ReqBody, T, R>,
    inner: &mut S,
    roles_claim: &[String],
) -> Result<S::Future, Response<ResBody>>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    T: DeserializeOwned + Clone + Send + Sync + 'static,
    R: Responder<ResBody>,
{
    let Held {
        mut parts,
        body,
        responder,
        mode,
        realm,
        source,
        timer,
        cache,
        has_revocation,
        has_checks,
    } = held;
    let result: Result<Option<(Arc<T>, Grants)>, AuthError> = match checked {
        Checked::NoToken(Ok(())) => match mode {
            Mode::Required => Err(AuthError::new(Reason::Missing)),
            Mode::Optional | Mode::AnonymousOnInvalid => Ok(None),
        },
        Checked::NoToken(Err(e)) => Err(e),
        Checked::Cached(entry) => Ok(Some((Arc::clone(&entry.claims), entry.grants.clone()))),
        Checked::Validated(r, token) => r
            .and_then(|accepted| {
                let grants = Grants::from_claims(&accepted.claims, roles_claim);
                let facts = cache.as_ref().map(|_| {
                    CacheFacts::from_claims(
                        &accepted.claims,
                        accepted.trust,
                        accepted.version,
                        has_revocation,
                        has_checks,
                    )
                });
                let claims = Arc::new(into_claims::<T>(accepted.claims)?);
                if let (Some(cache), Some(token), Some(facts)) = (&cache, token, facts) {
                    cache.insert(&token, Arc::clone(&claims), grants.clone(), facts);
                }
                Ok(Some((claims, grants)))
            })
            .map_err(|e| e.with_source_label(source)),
    };
    let marker = |authenticated| LayerMarker {
        claims_type: std::any::type_name::<T>(),
        authenticated,
        realm: realm.clone(),
    };
    match result {
        Ok(Some((claims, grants))) => {
            crate::metrics::request("accepted", "none", timer.seconds());
            parts.extensions.insert(marker(true));
            parts.extensions.insert(VerifiedClaims(claims));
            parts.extensions.insert(grants);
        }
        Ok(None) => {
            crate::metrics::request("anonymous", "missing", timer.seconds());
            parts.extensions.insert(marker(false));
        }
        Err(err)
            if mode == Mode::AnonymousOnInvalid
                && !err.is_missing()
                && !err.reason().is_unavailable() =>
        {
            crate::metrics::request("anonymous", err.reason().code(), timer.seconds());
            log_rejection(&err, Some(&parts), true);
            parts.extensions.insert(marker(false));
            parts.extensions.insert(err);
        }
        Err(err) => {
            crate::metrics::request("rejected", err.reason().code(), timer.seconds());
            log_rejection(&err, Some(&parts), false);
            // Responders may read the layer's realm from the marker.
            parts.extensions.insert(marker(false));
            let mut response = responder.respond(&err, &parts);
            response.extensions_mut().insert(err);
            return Err(response);
        }
    }
    Ok(inner.call(Request::from_parts(parts, body)))
}

impl<S, T, R, ReqBody, ResBody> Service<Request<ReqBody>> for TokenAuth<S, T, R>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    T: DeserializeOwned + Clone + Send + Sync + 'static,
    R: Responder<ResBody>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody, T, R>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let timer = crate::metrics::Timer::start();
        let cfg = &self.config.inner;
        if let Some(meta) = &cfg.metadata {
            if req.method() == http::Method::GET && req.uri().path() == meta.path {
                if let Some(res) = self.responder.metadata(&meta.json) {
                    return ResponseFuture::rejected(res);
                }
            }
        }
        let (parts, body) = req.into_parts();
        let (checked, source, slow) = match find_token(&cfg.sources, &parts) {
            Err(e) => (Checked::NoToken(Err(e)), "", None),
            Ok(None) => (Checked::NoToken(Ok(())), "", None),
            Ok(Some((token, source))) => {
                match self.cache.as_ref().and_then(|c| cached(c, cfg, &token)) {
                    Some(Ok(entry)) => (Checked::Cached(entry), source, None),
                    Some(Err(e)) => (
                        Checked::Validated(Err(e.with_fingerprint(&token)), None),
                        source,
                        None,
                    ),
                    None => {
                        let (checked, slow) = check(cfg, token, self.cache.is_some());
                        match (checked, slow) {
                            (Checked::Validated(Err(e), _), None) if self.diagnose => {
                                // Development option: diagnose the rejected token first.
                                let token = find_token(&cfg.sources, &parts)
                                    .ok()
                                    .flatten()
                                    .map(|(t, _)| t.into_owned())
                                    .unwrap_or_default();
                                (
                                    Checked::NoToken(Ok(())),
                                    source,
                                    Some(Slow::Diagnose(e, token)),
                                )
                            }
                            (checked, slow) => (checked, source, slow),
                        }
                    }
                }
            }
        };
        let held = Held {
            parts,
            body,
            responder: self.responder.clone(),
            mode: self.mode,
            realm: self.realm.clone(),
            source,
            timer,
            cache: self.cache.clone(),
            has_revocation: cfg.revocation.is_some(),
            has_checks: !cfg.checks.is_empty(),
        };
        if let Some(slow) = slow {
            // The service that was polled ready is the one that must be called: keep it and
            // leave a clone in its place (tower's "be careful when cloning inner services").
            // Only this slow path clones.
            let clone = self.inner.clone();
            let inner = std::mem::replace(&mut self.inner, clone);
            let check: CheckFuture = Box::pin(slow.run(self.config.clone()));
            return ResponseFuture::checking(check, inner, held, self.config.clone());
        }
        match finish(checked, held, &mut self.inner, &cfg.roles_claim) {
            Ok(fut) => ResponseFuture::inner(fut),
            Err(response) => ResponseFuture::rejected(response),
        }
    }
}

/// A cache hit: the entry (revocation consulted), a revocation rejection, or `None` to
/// validate in full (miss, or a store that must be asked asynchronously).
fn cached<T>(
    cache: &TokenCache<T>,
    cfg: &ConfigInner,
    token: &str,
) -> Option<Result<Arc<Entry<T>>, AuthError>> {
    let now = cfg.clock.now();
    let usable_version = |trust: usize| cfg.trusts.get(trust)?.keys.usable_version();
    let checks_pass =
        |claims: &crate::validate::ClaimsMap| cfg.checks.iter().all(|c| c(claims).is_ok());
    let entry = match cache.get(token, now, cfg.leeway, usable_version, checks_pass) {
        Hit::Valid(entry) => entry,
        Hit::Expired(exp) => return Some(Err(AuthError::expired_at(exp, now))),
        Hit::Miss => return None,
    };
    match cfg.revocation.as_ref().map(|r| r.local(&entry.token_ref())) {
        None | Some(Local::Pass) => Some(Ok(entry)),
        Some(Local::Reject(e)) => Some(Err(e)),
        Some(Local::Ask) => None,
    }
}

/// Full validation of a token: done now, or the part that must wait.
fn check<T>(cfg: &ConfigInner, token: Cow<'_, str>, keep: bool) -> (Checked<T>, Option<Slow>) {
    let keep_token = |t: &str| keep.then(|| Box::<str>::from(t));
    match validate_step(cfg, &token, true) {
        Step::Done(Ok(accepted)) => {
            let local = cfg
                .revocation
                .as_ref()
                .map(|r| r.local(&token_ref(&accepted.claims)));
            match local {
                None | Some(Local::Pass) => {
                    let t = keep_token(&token);
                    (Checked::Validated(Ok(accepted), t), None)
                }
                Some(Local::Reject(e)) => (
                    Checked::Validated(Err(e.with_fingerprint(&token)), None),
                    None,
                ),
                Some(Local::Ask) => (
                    Checked::NoToken(Ok(())),
                    Some(Slow::Revocation(accepted, token.into_owned(), keep)),
                ),
            }
        }
        Step::Done(Err(e)) => (
            Checked::Validated(Err(e.with_fingerprint(&token)), None),
            None,
        ),
        Step::Wait(pending) => (
            Checked::NoToken(Ok(())),
            Some(Slow::Keys(pending, token.into_owned(), keep)),
        ),
    }
}

/// The part of a check that must wait: remote keys, or a revocation store.
pub(crate) enum Slow {
    Keys(Pending, String, bool),
    Revocation(Accepted, String, bool),
    Diagnose(AuthError, String),
}

impl Slow {
    async fn run(self, config: AuthConfig) -> SlowOutput {
        let cfg = &config.inner;
        let (accepted, token, keep) = match self {
            Slow::Keys(pending, token, keep) => {
                pending.run().await;
                match validate_step(cfg, &token, false) {
                    Step::Done(Ok(accepted)) => (accepted, token, keep),
                    Step::Done(Err(e)) => return (Err(e.with_fingerprint(&token)), None),
                    Step::Wait(_) => return (Err(AuthError::new(Reason::KeysUnavailable)), None),
                }
            }
            Slow::Revocation(accepted, token, keep) => (accepted, token, keep),
            Slow::Diagnose(err, token) => {
                let d = crate::diagnose::diagnose(&token, &config).await;
                return (Err(err.with_diagnosis(d)), None);
            }
        };
        if let Some(rev) = &cfg.revocation {
            if let Err(e) = rev.ask(token_ref(&accepted.claims)).await {
                return (Err(e.with_fingerprint(&token)), None);
            }
        }
        (Ok(accepted), keep.then(|| token.into_boxed_str()))
    }
}

/// What a slow check produces: the validation result and, to cache it, the token.
pub(crate) type SlowOutput = (Result<Accepted, AuthError>, Option<Box<str>>);

/// One `tracing` event per rejection, with what an operator needs and never the token.
pub(crate) fn log_rejection(err: &AuthError, parts: Option<&Parts>, let_through: bool) {
    let f = err.facts();
    let problems = ProblemList(err);
    let method = parts.map(|p| p.method.as_str()).unwrap_or("");
    let path = parts.map(|p| p.uri.path()).unwrap_or("");
    macro_rules! event {
        ($level:ident) => {
            tracing::$level!(
                target: "tower_token_auth",
                reason = err.reason().code(),
                status = err.status().as_u16(),
                let_through,
                %problems,
                source = f.source,
                token_fingerprint = f.fingerprint.as_deref(),
                alg = f.alg.as_deref(),
                kid = f.kid.as_deref(),
                iss = f.issuer.as_deref(),
                expected_iss = ?f.expected_issuers,
                aud = ?f.audience,
                expected_aud = ?f.expected_audiences,
                exp = f.expires_at,
                nbf = f.not_before,
                now = f.checked_at,
                method,
                path,
                "token rejected"
            )
        };
    }
    match err.reason() {
        Reason::Missing => event!(debug),
        r if r.is_unavailable() => event!(warn),
        _ => event!(info),
    }
}

struct ProblemList<'a>(&'a AuthError);

impl fmt::Display for ProblemList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.problems().iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}
