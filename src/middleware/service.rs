//! [`TokenAuth`]: the `Service` the layer wraps around the inner one.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::request::Parts;
use http::{Request, Response};
use serde::de::DeserializeOwned;
use tower_service::Service;

use super::future::{CheckFuture, ResponseFuture};
use super::layer::{Mode, TokenAuthLayer};
use crate::binding::Presented;
use crate::cache::TokenCache;
use crate::claims::{LayerInfo, LayerMarker};
use crate::config::AuthConfig;
use crate::error::{AuthError, Reason};
use crate::grants::Grants;
use crate::pipeline::{Pipeline, Progress, Rest};
use crate::response::Responder;
use crate::source::find_token;

/// The service built by [`TokenAuthLayer`]; see there.
pub struct TokenAuth<S, T, R> {
    inner: S,
    config: AuthConfig,
    responder: R,
    mode: Mode,
    /// What the request extensions carry of this layer (see `LayerMarker`).
    info: Arc<LayerInfo>,
    cache: Option<Arc<TokenCache<T>>>,
    diagnose: bool,
}

impl<S, T: 'static, R> TokenAuth<S, T, R> {
    pub(crate) fn new(inner: S, layer: TokenAuthLayer<T, R>) -> Self {
        let info = Arc::new(LayerInfo {
            claims_id: std::any::TypeId::of::<T>(),
            claims_type: std::any::type_name::<T>(),
            realm: layer.config.realm().map(Arc::from),
            resource_metadata: layer.config.resource_metadata_url().map(Arc::from),
            dpop_algs: layer
                .config
                .inner
                .dpop
                .as_ref()
                .map(|d| Arc::from(d.algs.as_str())),
            dpop_required: layer
                .config
                .inner
                .dpop
                .as_ref()
                .is_some_and(|d| d.options.required),
        });
        TokenAuth {
            inner,
            config: layer.config,
            responder: layer.responder,
            mode: layer.mode,
            info,
            cache: layer.cache,
            diagnose: layer.diagnose,
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, consuming the middleware.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, T, R: Clone> Clone for TokenAuth<S, T, R> {
    fn clone(&self) -> Self {
        TokenAuth {
            inner: self.inner.clone(),
            config: self.config.clone(),
            responder: self.responder.clone(),
            mode: self.mode,
            info: Arc::clone(&self.info),
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
pub(crate) struct Held<ReqBody, R> {
    parts: Parts,
    body: ReqBody,
    responder: R,
    mode: Mode,
    info: Arc<LayerInfo>,
    timer: crate::metrics::Timer,
}

/// The outcome of a check, as handlers will see it: claims and grants, or no token (allowed by
/// the mode), or why the request is refused.
pub(crate) type Admitted<T> = Result<Option<(Arc<T>, Grants)>, AuthError>;

/// Turns the outcome into either the inner service's future (claims inserted) or a rejection.
pub(crate) fn finish<S, ReqBody, ResBody, T, R>(
    admitted: Admitted<T>,
    held: Held<ReqBody, R>,
    inner: &mut S,
) -> Result<S::Future, Response<ResBody>>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    T: Send + Sync + 'static,
    R: Responder<ResBody>,
{
    let Held {
        mut parts,
        body,
        responder,
        mode,
        info,
        timer,
    } = held;
    // One insert per request: the layer, and the verified token if there is one.
    let marker = move |verified| LayerMarker {
        layer: info,
        verified,
    };
    match admitted {
        Ok(Some((claims, grants))) => {
            crate::metrics::request("accepted", "none", timer.seconds());
            let claims: Arc<dyn std::any::Any + Send + Sync> = claims;
            parts.extensions.insert(marker(Some((claims, grants))));
        }
        Ok(None) => {
            crate::metrics::request("anonymous", "missing", timer.seconds());
            parts.extensions.insert(marker(None));
        }
        Err(err)
            if mode == Mode::AnonymousOnInvalid
                && !err.is_missing()
                && !err.reason().is_unavailable() =>
        {
            crate::metrics::request("anonymous", err.reason().code(), timer.seconds());
            log_rejection(&err, Some(&parts), true);
            parts.extensions.insert(marker(None));
            parts.extensions.insert(err);
        }
        Err(err) => {
            crate::metrics::request("rejected", err.reason().code(), timer.seconds());
            log_rejection(&err, Some(&parts), false);
            // Responders may read the layer's realm from the marker.
            parts.extensions.insert(marker(None));
            let mut response = responder.respond(&err, &parts);
            response.extensions_mut().insert(err);
            return Err(response);
        }
    }
    Ok(inner.call(Request::from_parts(parts, body)))
}

/// What is left to do once the request's synchronous part is over.
enum Next<T> {
    Now(Admitted<T>),
    Later(CheckFuture<T>),
}

impl<S, T, R, ReqBody, ResBody> Service<Request<ReqBody>> for TokenAuth<S, T, R>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    T: DeserializeOwned + Send + Sync + 'static,
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
        let (parts, body) = req.into_parts();
        if let Some(meta) = &cfg.metadata {
            if parts.method == http::Method::GET && parts.uri.path() == meta.path {
                // RFC 9728 metadata is public: its GET goes through without a token check, to
                // the `MetadataService` mounted there (see `metadata`).
                return self.pass_metadata_request(parts, body);
            }
        }
        // Sources, then the pipeline; the token is read once.
        let next = match find_token(&cfg.sources, &parts) {
            Err(e) => Next::Now(Err(e)),
            Ok(None) => Next::Now(match self.mode {
                Mode::Required => Err(AuthError::new(Reason::Missing)),
                Mode::Optional | Mode::AnonymousOnInvalid => Ok(None),
            }),
            Ok(Some((token, source))) => {
                let presented = Presented::of(&parts, source, cfg.dpop.as_ref());
                self.check(&token, source, presented)
            }
        };
        let held = Held {
            parts,
            body,
            responder: self.responder.clone(),
            mode: self.mode,
            info: Arc::clone(&self.info),
            timer,
        };
        match next {
            Next::Now(admitted) => match finish(admitted, held, &mut self.inner) {
                Ok(fut) => ResponseFuture::inner(fut),
                Err(response) => ResponseFuture::rejected(response),
            },
            Next::Later(check) => {
                // The service that was polled ready is the one that must be called: keep it
                // and leave a clone in its place (tower's "be careful when cloning inner
                // services"). Only this slow path clones.
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                ResponseFuture::checking(check, inner, held)
            }
        }
    }
}

impl<S, T, R> TokenAuth<S, T, R>
where
    T: DeserializeOwned + Send + Sync + 'static,
{
    /// Lets a `GET` of the metadata path through as anonymous (no claims, the token not
    /// read), as `.optional()` lets a request without token through.
    fn pass_metadata_request<ReqBody, ResBody>(
        &mut self,
        mut parts: Parts,
        body: ReqBody,
    ) -> ResponseFuture<S, ReqBody, T, R>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    {
        parts.extensions.insert(LayerMarker {
            layer: Arc::clone(&self.info),
            verified: None,
        });
        ResponseFuture::inner(self.inner.call(Request::from_parts(parts, body)))
    }

    /// The pipeline for a found token: done now, or a future for what must wait (remote
    /// keys, the revocation store, or the development option's diagnosis).
    fn check(&self, token: &str, source: &'static str, presented: Presented) -> Next<T> {
        let cfg = &self.config.inner;
        let pipeline = Pipeline::new(cfg, self.cache.as_deref());
        let rest = match pipeline.start(token, presented) {
            Progress::Done(Ok(verified)) => {
                let admitted = pipeline.admit(token, verified, &cfg.roles_claim);
                return Next::Now(admitted.map(Some).map_err(|e| e.with_source_label(source)));
            }
            Progress::Done(Err(e)) if !self.diagnose => {
                return Next::Now(Err(e.with_source_label(source)));
            }
            Progress::Done(Err(e)) => Later::Rejected(e, token.to_owned()),
            Progress::Wait(rest) => Later::Rest(Box::new(rest)),
        };
        let (config, cache, diagnose) = (self.config.clone(), self.cache.clone(), self.diagnose);
        #[cfg(not(feature = "diagnose"))]
        let _ = diagnose;
        Next::Later(Box::pin(async move {
            let cfg = &config.inner;
            let (result, token) = match rest {
                Later::Rest(rest) => {
                    let token = rest.token().to_owned();
                    (rest.run(cfg).await, token)
                }
                Later::Rejected(e, token) => (Err(e), token),
            };
            let admitted = match result {
                Ok(verified) => Pipeline::new(cfg, cache.as_deref())
                    .admit(&token, verified, &cfg.roles_claim)
                    .map(Some),
                #[cfg(feature = "diagnose")]
                Err(e) if diagnose => {
                    // Development option: the full diagnosis of the rejected token.
                    let d = crate::diagnose::diagnose(&token, &config).await;
                    Err(e.with_diagnosis(d))
                }
                Err(e) => Err(e),
            };
            admitted.map_err(|e| e.with_source_label(source))
        }))
    }
}

/// The part of a check that runs in the response future.
enum Later<T> {
    Rest(Box<Rest<T>>),
    Rejected(AuthError, String),
}

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
