//! [`TokenAuth`]: the `Service` the layer wraps around the inner one.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::request::Parts;
use http::{Request, Response};
use serde::de::DeserializeOwned;
use tower_service::Service;

use crate::claims::{Claims, LayerMarker};
use crate::config::AuthConfig;
use crate::error::{AuthError, Reason};
use crate::future::ResponseFuture;
use crate::layer::{Mode, TokenAuthLayer};
use crate::response::Responder;
use crate::source::find_token;

/// The service built by [`TokenAuthLayer`]; see there.
pub struct TokenAuth<S, T, R> {
    inner: S,
    config: AuthConfig,
    responder: R,
    mode: Mode,
    realm: Option<Arc<str>>,
    _claims: PhantomData<fn() -> T>,
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
            _claims: PhantomData,
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
            _claims: PhantomData,
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

enum Outcome<T> {
    Authenticated(T),
    Anonymous(Option<AuthError>),
    Rejected(AuthError),
}

impl<S, T, R> TokenAuth<S, T, R>
where
    T: DeserializeOwned,
{
    fn authenticate(&self, parts: &Parts) -> Outcome<T> {
        let cfg = &self.config.inner;
        let found = match find_token(&cfg.sources, parts) {
            Ok(found) => found,
            Err(e) => return self.invalid(e),
        };
        let Some((token, source)) = found else {
            return match self.mode {
                Mode::Required => Outcome::Rejected(AuthError::new(Reason::Missing)),
                Mode::Optional | Mode::AnonymousOnInvalid => Outcome::Anonymous(None),
            };
        };
        match self.config.validate_now::<T>(&token) {
            Ok(claims) => Outcome::Authenticated(claims),
            Err(e) => self.invalid(e.with_source_label(source)),
        }
    }

    fn invalid(&self, e: AuthError) -> Outcome<T> {
        if self.mode == Mode::AnonymousOnInvalid && !e.reason().is_unavailable() {
            log_rejection(&e, None, true);
            Outcome::Anonymous(Some(e))
        } else {
            Outcome::Rejected(e)
        }
    }
}

impl<S, T, R, ReqBody, ResBody> Service<Request<ReqBody>> for TokenAuth<S, T, R>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    T: DeserializeOwned + Clone + Send + Sync + 'static,
    R: Responder<ResBody>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let (mut parts, body) = req.into_parts();
        let marker = |authenticated| LayerMarker {
            claims_type: std::any::type_name::<T>(),
            authenticated,
            realm: self.realm.clone(),
        };
        match self.authenticate(&parts) {
            Outcome::Authenticated(claims) => {
                parts.extensions.insert(marker(true));
                parts.extensions.insert(Claims(claims));
            }
            Outcome::Anonymous(err) => {
                parts.extensions.insert(marker(false));
                if let Some(err) = err {
                    parts.extensions.insert(err);
                }
            }
            Outcome::Rejected(err) => {
                log_rejection(&err, Some(&parts), false);
                let mut response = self.responder.respond(&err, &parts);
                response.extensions_mut().insert(err);
                return ResponseFuture::rejected(response);
            }
        }
        ResponseFuture::inner(self.inner.call(Request::from_parts(parts, body)))
    }
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
