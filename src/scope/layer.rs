//! The tower side: the [`RequireScope`] layer, its service and its response future.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::request::Parts;
use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::requirement::{Kind, Mode, Requirement};
use crate::claims::unauthenticated;
use crate::claims::LayerMarker;
use crate::error::AuthError;
use crate::grants::Grants;
use crate::response::{DefaultResponder, Responder};

/// A layer that lets a request through only if its token grants the required scopes or
/// roles; otherwise it answers 403 `insufficient_scope`.
///
/// | constructor | requires |
/// |---|---|
/// | [`RequireScope::all`] | every one of these scopes |
/// | [`RequireScope::any`] | at least one of these scopes |
/// | [`RequireScope::all_roles`] | every one of these roles |
/// | [`RequireScope::any_roles`] | at least one of these roles |
///
/// It reads the [`Grants`] that [`TokenAuthLayer`](crate::TokenAuthLayer) put in the request
/// extensions, so **it must sit inside `TokenAuthLayer`**: on a route
/// (`post(h).layer(RequireScope::all([..]))`) or a router (`.route_layer(RequireScope::..)`)
/// to which `TokenAuthLayer` is added afterwards. Scopes are read from `scope`
/// (space-separated) and `scp` (a string or an array).
///
/// | request | answer |
/// |---|---|
/// | token grants what is required | the inner service |
/// | token lacks it | 403, `WWW-Authenticate: Bearer error="insufficient_scope", error_description="…", scope="<required scopes>"` |
/// | no [`Grants`] (optional `TokenAuthLayer` and no token, or no `TokenAuthLayer` at all) | 401 `missing`, `WWW-Authenticate: Bearer` |
/// | no `Grants` behind [`anonymous_on_invalid`](crate::TokenAuthLayer::anonymous_on_invalid) with an invalid token | that token's error (e.g. 401 `expired`) |
///
/// Rejections are built by the responder (default: [`response::problem_response`](crate::response::problem_response)
/// with the realm and `resource_metadata` URL of the `TokenAuthLayer`'s configuration,
/// [`AuthConfigBuilder::realm`](crate::AuthConfigBuilder::realm); see
/// [`with_responder`](RequireScope::with_responder)); the [`AuthError`] is put in the response
/// extensions and one `tracing` event is emitted (target `tower_token_auth`: reason, required
/// scopes, number of scopes present; never the token). A `RequireScope` without a
/// `TokenAuthLayer` in front of it rejects every request and logs an error saying so.
///
/// Each name passed may hold several space-separated scopes (`"a b"` is `a` and `b`). An empty
/// all-of requirement is met by every authenticated request; an empty any-of requirement by
/// none.
///
/// ```
/// use axum::{routing::{get, post}, Router};
/// use tower_token_auth::{AuthConfig, Keys, RequireScope, TokenAuthLayer};
///
/// # fn main() -> Result<(), tower_token_auth::ConfigError> {
/// # let cfg = AuthConfig::builder().keys(Keys::hmac([7u8; 32])).issuer("i").audience("a").build()?;
/// async fn h() -> &'static str { "ok" }
///
/// let app: Router = Router::new()
///     // every one of these scopes
///     .route("/admin", post(h).layer(RequireScope::all(["orders:admin"])))
///     // at least one of these scopes
///     .route("/orders", get(h).layer(RequireScope::any(["orders:read", "orders:admin"])))
///     .layer(TokenAuthLayer::new(cfg));
/// # Ok(()) }
/// ```
///
/// # Roles
///
/// Roles are read from the claim path set with
/// [`AuthConfigBuilder::roles_claim`](crate::AuthConfigBuilder::roles_claim) (default `roles`;
/// e.g. `realm_access.roles` for Keycloak, `groups` for Okta or Entra groups); the claim may
/// be an array of strings or a space-separated string. Everything else works as for scopes,
/// except that the 403 challenge carries no `scope` attribute (see the [module docs](super)).
/// Stack two layers to require both scopes and roles.
///
/// ```
/// use axum::{routing::get, Router};
/// use tower_token_auth::{AuthConfig, Keys, RequireScope, TokenAuthLayer};
///
/// # fn main() -> Result<(), tower_token_auth::ConfigError> {
/// let cfg = AuthConfig::builder()
///     .keys(Keys::hmac([7u8; 32]))
///     .issuer("https://keycloak.example/realms/shop")
///     .audience("orders")
///     .roles_claim("realm_access.roles")
///     .build()?;
/// async fn h() -> &'static str { "ok" }
///
/// let ops = Router::new()
///     .route("/ops", get(h))
///     .route_layer(RequireScope::any_roles(["admin", "ops"]));
/// // Both a scope and a role:
/// let payouts = Router::new()
///     .route("/payouts", get(h))
///     .route_layer(RequireScope::all(["payouts:read"]))
///     .route_layer(RequireScope::all_roles(["finance"]));
///
/// let app: Router = Router::new()
///     .merge(ops)
///     .merge(payouts)
///     .layer(TokenAuthLayer::new(cfg));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RequireScope<R = DefaultResponder> {
    requirement: Arc<Requirement>,
    responder: R,
}

impl RequireScope {
    fn build<I>(kind: Kind, mode: Mode, items: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        RequireScope {
            requirement: Arc::new(Requirement::new(kind, mode, items)),
            responder: DefaultResponder::new(),
        }
    }

    /// Requires **every** one of these scopes.
    ///
    /// ```
    /// use tower_token_auth::RequireScope;
    ///
    /// let layer = RequireScope::all(["orders:read", "orders:write"]);
    /// assert_eq!(layer.required(), ["orders:read", "orders:write"]);
    /// ```
    pub fn all<I>(scopes: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        RequireScope::build(Kind::Scope, Mode::All, scopes)
    }

    /// Requires **at least one** of these scopes.
    ///
    /// ```
    /// use tower_token_auth::RequireScope;
    ///
    /// let layer = RequireScope::any(vec!["orders:read".to_string(), "orders:admin".to_string()]);
    /// assert_eq!(layer.required(), ["orders:read", "orders:admin"]);
    /// ```
    pub fn any<I>(scopes: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        RequireScope::build(Kind::Scope, Mode::Any, scopes)
    }

    /// Requires **every** one of these roles (see [Roles](RequireScope#roles)).
    ///
    /// ```
    /// use tower_token_auth::{Grants, RequireScope};
    ///
    /// let need = RequireScope::all_roles(["admin", "finance"]);
    /// assert!(need.check(&Grants::new(Vec::<String>::new(), ["finance", "admin"])).is_ok());
    /// assert!(need.check(&Grants::new(Vec::<String>::new(), ["admin"])).is_err());
    /// ```
    pub fn all_roles<I>(roles: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        RequireScope::build(Kind::Role, Mode::All, roles)
    }

    /// Requires **at least one** of these roles (see [Roles](RequireScope#roles)).
    ///
    /// ```
    /// use tower_token_auth::{Grants, RequireScope};
    ///
    /// let need = RequireScope::any_roles(["admin", "ops"]);
    /// let err = need.check(&Grants::new(["admin"], ["user"])).unwrap_err();
    /// assert_eq!(err.required_scopes(), None); // roles are not named in the challenge
    /// ```
    pub fn any_roles<I>(roles: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        RequireScope::build(Kind::Role, Mode::Any, roles)
    }
}

impl<R> RequireScope<R> {
    /// Answers rejections (403 and 401 alike) with `responder` instead: a closure
    /// `Fn(&AuthError, &Parts) -> Response<B>` or any [`Responder`], as for
    /// [`TokenAuthLayer::with_responder`](crate::TokenAuthLayer::with_responder). The
    /// [`AuthError`] is put in the response extensions whatever the responder built.
    ///
    /// ```
    /// use axum::{body::Body, response::{IntoResponse, Response}, Json};
    /// use tower_token_auth::{AuthError, RequireScope};
    ///
    /// let layer = RequireScope::all(["orders:admin"]).with_responder(
    ///     |err: &AuthError, _parts: &http::request::Parts| -> Response<Body> {
    ///         let body = serde_json::json!({
    ///             "code": err.reason().code(),
    ///             "needs": err.required_scopes(),
    ///         });
    ///         (err.status(), Json(body)).into_response()
    ///     },
    /// );
    /// ```
    pub fn with_responder<R2>(self, responder: R2) -> RequireScope<R2> {
        RequireScope {
            requirement: self.requirement,
            responder,
        }
    }

    /// The scopes (or roles) required, each once, in the order given.
    ///
    /// ```
    /// use tower_token_auth::RequireScope;
    ///
    /// assert_eq!(RequireScope::any_roles(["admin ops", "admin"]).required(), ["admin", "ops"]);
    /// ```
    pub fn required(&self) -> &[String] {
        &self.requirement.items
    }

    /// Checks grants against this requirement, as the layer does (without responding or
    /// logging).
    ///
    /// ```
    /// use tower_token_auth::{Grants, Reason, RequireScope};
    ///
    /// let need = RequireScope::any(["a", "b"]);
    /// assert!(need.check(&Grants::new(["b"], Vec::<String>::new())).is_ok());
    /// let err = need.check(&Grants::new(["c"], Vec::<String>::new())).unwrap_err();
    /// assert_eq!(err.reason(), Reason::InsufficientScope);
    /// assert_eq!(err.required_scopes(), Some("a b"));
    /// ```
    ///
    /// # Errors
    ///
    /// An `insufficient_scope` [`AuthError`] when the grants do not meet the requirement.
    pub fn check(&self, grants: &Grants) -> Result<(), AuthError> {
        self.requirement.check(grants)
    }
}

impl<R: fmt::Debug> fmt::Debug for RequireScope<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequireScope")
            .field("kind", &self.requirement.kind.label())
            .field("mode", &self.requirement.mode.label())
            .field("required", &self.requirement.items)
            .field("responder", &self.responder)
            .finish()
    }
}

impl<S, R: Clone> Layer<S> for RequireScope<R> {
    type Service = RequireScopeService<S, R>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireScopeService {
            inner,
            requirement: self.requirement.clone(),
            responder: self.responder.clone(),
        }
    }
}

/// The service built by [`RequireScope`]; see there.
///
/// ```
/// use axum::body::Body;
/// use tower::{service_fn, Layer};
/// use tower_token_auth::{scope::RequireScopeService, RequireScope};
///
/// let inner = service_fn(|_req: http::Request<Body>| async {
///     Ok::<_, std::convert::Infallible>(http::Response::new(Body::empty()))
/// });
/// let svc: RequireScopeService<_, _> = RequireScope::all(["a"]).layer(inner);
/// ```
#[derive(Clone)]
pub struct RequireScopeService<S, R = DefaultResponder> {
    inner: S,
    requirement: Arc<Requirement>,
    responder: R,
}

impl<S, R> RequireScopeService<S, R> {
    /// The inner service.
    ///
    /// ```
    /// use axum::body::Body;
    /// use tower::{service_fn, Layer};
    /// use tower_token_auth::RequireScope;
    ///
    /// let inner = service_fn(|_req: http::Request<Body>| async {
    ///     Ok::<_, std::convert::Infallible>(http::Response::new(Body::empty()))
    /// });
    /// let svc = RequireScope::all(["a"]).layer(inner);
    /// let _inner = svc.get_ref();
    /// ```
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: fmt::Debug, R: fmt::Debug> fmt::Debug for RequireScopeService<S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequireScopeService")
            .field("inner", &self.inner)
            .field("required", &self.requirement.items)
            .field("responder", &self.responder)
            .finish()
    }
}

impl<S, R, ReqBody, ResBody> Service<Request<ReqBody>> for RequireScopeService<S, R>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    R: Responder<ResBody>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = RequireScopeFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let (err, present) = match Grants::from_extensions(req.extensions()) {
            Some(grants) => match self.requirement.check(grants) {
                Ok(()) => return RequireScopeFuture::inner(self.inner.call(req)),
                Err(err) => (err, Some(self.requirement.present(grants))),
            },
            None => (unauthenticated(req.extensions()), None),
        };
        let (parts, _) = req.into_parts();
        match present {
            Some(present) => self.requirement.log(present, &err, &parts),
            None => log_unauthenticated(&err, &parts, &self.requirement),
        }
        let mut response = self.responder.respond(&err, &parts);
        response.extensions_mut().insert(err);
        RequireScopeFuture::rejected(response)
    }
}

fn log_unauthenticated(err: &AuthError, parts: &Parts, requirement: &Requirement) {
    let method = parts.method.as_str();
    let path = parts.uri.path();
    let required = requirement.items.join(" ");
    if parts.extensions.get::<LayerMarker>().is_none() {
        // The text is unchanged since `RequireRole` became `RequireScope::all_roles`/`any_roles`
        // (issue 11): log searches and alerts may match it.
        tracing::error!(
            target: "tower_token_auth",
            reason = err.reason().code(),
            status = err.status().as_u16(),
            %required,
            method,
            path,
            "RequireScope/RequireRole ran but no TokenAuthLayer before it: every request is rejected; add .layer(TokenAuthLayer::new(config)) after (outside) it"
        );
    } else if err.is_missing() {
        tracing::debug!(
            target: "tower_token_auth",
            reason = err.reason().code(),
            status = err.status().as_u16(),
            %required,
            method,
            path,
            "no token for a route that requires a {}", requirement.kind.label()
        );
    } else {
        tracing::info!(
            target: "tower_token_auth",
            reason = err.reason().code(),
            status = err.status().as_u16(),
            %required,
            method,
            path,
            "invalid token for a route that requires a {}", requirement.kind.label()
        );
    }
}

pin_project! {
    /// The response future of [`RequireScopeService`]: the inner service's future or a ready
    /// rejection.
    ///
    /// ```
    /// use axum::body::Body;
/// use tower::{service_fn, Layer, Service};
    /// use tower_token_auth::{scope::RequireScopeFuture, RequireScope};
    ///
    /// let inner = service_fn(|_req: http::Request<Body>| async {
    ///     Ok::<_, std::convert::Infallible>(http::Response::new(Body::empty()))
    /// });
    /// let mut svc = RequireScope::all(["a"]).layer(inner);
    /// let fut: RequireScopeFuture<_, Body> = svc.call(http::Request::new(Body::empty()));
    /// ```
    pub struct RequireScopeFuture<F, B> {
        #[pin]
        kind: FutureKind<F, B>,
    }
}

pin_project! {
    #[project = FutureKindProj]
    enum FutureKind<F, B> {
        Inner { #[pin] fut: F },
        Rejected { response: Option<Response<B>> },
    }
}

impl<F, B> RequireScopeFuture<F, B> {
    fn inner(fut: F) -> Self {
        RequireScopeFuture {
            kind: FutureKind::Inner { fut },
        }
    }

    fn rejected(response: Response<B>) -> Self {
        RequireScopeFuture {
            kind: FutureKind::Rejected {
                response: Some(response),
            },
        }
    }
}

impl<F, B, E> Future for RequireScopeFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            FutureKindProj::Inner { fut } => fut.poll(cx),
            FutureKindProj::Rejected { response } => match response.take() {
                Some(r) => Poll::Ready(Ok(r)),
                // Polled after completion: a contract violation by the caller; stay pending
                // rather than panic.
                None => Poll::Pending,
            },
        }
    }
}

impl<F, B> fmt::Debug for RequireScopeFuture<F, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequireScopeFuture").finish_non_exhaustive()
    }
}
