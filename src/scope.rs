//! Scopes and roles: [`RequireScope`] / [`RequireRole`] for routes and routers,
//! [`Grants`] checks for handlers.
//!
//! [`TokenAuthLayer`](crate::TokenAuthLayer) puts the [`Grants`] of every accepted token (its
//! scopes from `scope` and `scp`, its roles from the configured claim path, see
//! [`AuthConfigBuilder::roles_claim`](crate::AuthConfigBuilder::roles_claim)) into the request
//! extensions. Two ways to require them:
//!
//! - **On a route or a router**: the layers built by [`RequireScope::all`],
//!   [`RequireScope::any`], [`RequireRole::all`] and [`RequireRole::any`]. They must sit
//!   *inside* the `TokenAuthLayer` (so the token is verified first): in axum, add them to the
//!   route (`post(h).layer(RequireScope::all([..]))`) or with `route_layer` on a router, and
//!   add `TokenAuthLayer` afterwards (the last `.layer` call is the outermost).
//! - **In the handler**: extract [`Grants`] (feature `axum`) and call
//!   [`Grants::require_all`] / [`Grants::require_any`] (or the `_roles` / `_role` variants);
//!   the `AuthError` they return is an axum response.
//!
//! A token that lacks what is required is answered with 403 and reason `insufficient_scope`:
//!
//! ```text
//! HTTP/1.1 403 Forbidden
//! WWW-Authenticate: Bearer error="insufficient_scope", error_description="The token lacks the scope this resource requires.", scope="orders:write orders:admin"
//! Content-Type: application/problem+json
//!
//! {"type":"…#variant.InsufficientScope","title":"Insufficient scope","status":403,
//!  "detail":"The token lacks the scope this resource requires.","error":"insufficient_scope",
//!  "reason":"insufficient_scope","scope":"orders:write orders:admin"}
//! ```
//!
//! The `scope` attribute names every scope of the requirement (for an any-of requirement, the
//! alternatives). Missing **roles** are answered the same way but without `scope`: roles are
//! not OAuth scopes a client could ask its authorization server for, and naming them would
//! describe the authorization model to any caller. The required roles are in the log event.
//!
//! ```
//! use axum::{routing::{get, post}, Router};
//! use tower_token_auth::{AuthConfig, AuthError, Grants, Keys, RequireRole, RequireScope, TokenAuthLayer};
//!
//! # fn main() -> Result<(), tower_token_auth::ConfigError> {
//! let cfg = AuthConfig::builder()
//!     .keys(Keys::hmac(b"0123456789abcdef0123456789abcdef"))
//!     .issuer("https://issuer.example")
//!     .audience("api")
//!     .roles_claim("realm_access.roles")
//!     .build()?;
//!
//! async fn list() -> &'static str { "orders" }
//! async fn create() -> &'static str { "created" }
//! async fn refund(grants: Grants) -> Result<&'static str, AuthError> {
//!     grants.require_any(["orders:refund", "orders:admin"])?;
//!     Ok("refunded")
//! }
//!
//! let admin = Router::new()
//!     .route("/admin/stats", get(list))
//!     .route_layer(RequireRole::any(["admin", "ops"]));
//!
//! let app: Router = Router::new()
//!     .route("/orders", get(list).layer(RequireScope::all(["orders:read"])))
//!     .route("/orders/new", post(create).layer(RequireScope::all(["orders:read", "orders:write"])))
//!     .route("/orders/refund", post(refund))
//!     .merge(admin)
//!     .layer(TokenAuthLayer::new(cfg)); // outermost: runs first
//! # Ok(()) }
//! ```

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

use crate::claims::{Grants, LayerMarker};
use crate::error::{AuthError, Reason};
use crate::response::{DefaultResponder, Responder};

/// Whether a requirement names scopes or roles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Scope,
    Role,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Scope => "scope",
            Kind::Role => "role",
        }
    }
}

/// Whether every item or one of them must be granted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    All,
    Any,
}

impl Mode {
    fn label(self) -> &'static str {
        match self {
            Mode::All => "all",
            Mode::Any => "any",
        }
    }
}

/// A set of scopes or roles and how many of them must be granted.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Requirement {
    kind: Kind,
    mode: Mode,
    items: Vec<String>,
}

impl Requirement {
    /// Each item may itself hold several space-separated names; duplicates are dropped.
    fn new<I>(kind: Kind, mode: Mode, items: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let mut list: Vec<String> = Vec::new();
        for item in items {
            for name in item.as_ref().split_ascii_whitespace() {
                if !list.iter().any(|n| n == name) {
                    list.push(name.to_owned());
                }
            }
        }
        Requirement {
            kind,
            mode,
            items: list,
        }
    }

    fn granted(&self, grants: &Grants, name: &str) -> bool {
        match self.kind {
            Kind::Scope => grants.has_scope(name),
            Kind::Role => grants.has_role(name),
        }
    }

    fn present(&self, grants: &Grants) -> usize {
        match self.kind {
            Kind::Scope => grants.scopes().len(),
            Kind::Role => grants.roles().len(),
        }
    }

    fn check(&self, grants: &Grants) -> Result<(), AuthError> {
        let ok = match self.mode {
            Mode::All => self.items.iter().all(|n| self.granted(grants, n)),
            Mode::Any => self.items.iter().any(|n| self.granted(grants, n)),
        };
        if ok {
            Ok(())
        } else {
            Err(self.error())
        }
    }

    fn error(&self) -> AuthError {
        match self.kind {
            Kind::Scope if !self.items.is_empty() => {
                AuthError::insufficient_scope(self.items.join(" "))
            }
            _ => AuthError::new(Reason::InsufficientScope),
        }
    }

    /// One `tracing` event: reason, what was required, how many grants the token had. Never
    /// the token, nor the grants themselves.
    fn log(&self, present: usize, err: &AuthError, parts: &Parts) {
        tracing::info!(
            target: "tower_token_auth",
            reason = err.reason().code(),
            status = err.status().as_u16(),
            kind = self.kind.label(),
            mode = self.mode.label(),
            required = %self.items.join(" "),
            present,
            method = parts.method.as_str(),
            path = parts.uri.path(),
            "token lacks required {}", self.kind.label()
        );
    }
}

/// A layer that lets a request through only if its token grants the required scopes (or
/// roles, see [`RequireRole`]); otherwise it answers 403 `insufficient_scope`.
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
/// with the realm set by [`realm`](RequireScope::realm), none by default; see
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

    /// Sets the realm of the default responder's challenge:
    /// `WWW-Authenticate: Bearer realm="api", error="insufficient_scope", …` (printable ASCII
    /// without `"` or `\`; other characters are dropped). It is independent of the
    /// `TokenAuthLayer`'s realm: set the same one on both.
    ///
    /// ```
    /// use tower_token_auth::RequireScope;
    ///
    /// let layer = RequireScope::all(["orders:admin"]).realm("api");
    /// ```
    #[must_use]
    pub fn realm(mut self, realm: impl AsRef<str>) -> Self {
        self.responder = DefaultResponder::new().realm(realm);
        self
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
    /// use tower_token_auth::RequireRole;
    ///
    /// assert_eq!(RequireRole::any(["admin ops", "admin"]).required(), ["admin", "ops"]);
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

/// Builds [`RequireScope`] layers that require **roles** instead of scopes.
///
/// Roles are read from the claim path set with
/// [`AuthConfigBuilder::roles_claim`](crate::AuthConfigBuilder::roles_claim) (default `roles`;
/// e.g. `realm_access.roles` for Keycloak, `groups` for Okta or Entra groups); the claim may
/// be an array of strings or a space-separated string. Everything else works as for scopes,
/// except that the 403 challenge carries no `scope` attribute (see the [module docs](self)).
///
/// `RequireRole` has no values: its functions return a [`RequireScope`], so `.realm(..)` and
/// `.with_responder(..)` are available on the result. Stack a `RequireScope` and a
/// `RequireRole` to require both scopes and roles.
///
/// ```
/// use axum::{routing::get, Router};
/// use tower_token_auth::{AuthConfig, Keys, RequireRole, RequireScope, TokenAuthLayer};
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
///     .route_layer(RequireRole::any(["admin", "ops"]));
/// // Both a scope and a role:
/// let payouts = Router::new()
///     .route("/payouts", get(h))
///     .route_layer(RequireScope::all(["payouts:read"]))
///     .route_layer(RequireRole::all(["finance"]));
///
/// let app: Router = Router::new()
///     .merge(ops)
///     .merge(payouts)
///     .layer(TokenAuthLayer::new(cfg));
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub enum RequireRole {}

impl RequireRole {
    /// Requires **every** one of these roles.
    ///
    /// ```
    /// use tower_token_auth::{Grants, RequireRole};
    ///
    /// let need = RequireRole::all(["admin", "finance"]);
    /// assert!(need.check(&Grants::new(Vec::<String>::new(), ["finance", "admin"])).is_ok());
    /// assert!(need.check(&Grants::new(Vec::<String>::new(), ["admin"])).is_err());
    /// ```
    pub fn all<I>(roles: I) -> RequireScope
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        RequireScope::build(Kind::Role, Mode::All, roles)
    }

    /// Requires **at least one** of these roles.
    ///
    /// ```
    /// use tower_token_auth::{Grants, RequireRole};
    ///
    /// let need = RequireRole::any(["admin", "ops"]);
    /// let err = need.check(&Grants::new(["admin"], ["user"])).unwrap_err();
    /// assert_eq!(err.required_scopes(), None); // roles are not named in the challenge
    /// ```
    pub fn any<I>(roles: I) -> RequireScope
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        RequireScope::build(Kind::Role, Mode::Any, roles)
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
        let (err, present) = match req.extensions().get::<Grants>() {
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

/// The error for a request without [`Grants`]: the token error that `anonymous_on_invalid`
/// let through, or `missing`.
fn unauthenticated(ext: &http::Extensions) -> AuthError {
    ext.get::<AuthError>()
        .cloned()
        .unwrap_or_else(|| AuthError::new(Reason::Missing))
}

fn log_unauthenticated(err: &AuthError, parts: &Parts, requirement: &Requirement) {
    let method = parts.method.as_str();
    let path = parts.uri.path();
    let required = requirement.items.join(" ");
    if parts.extensions.get::<LayerMarker>().is_none() {
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

/// Handler-side checks. With feature `axum`, [`Grants`] is an extractor and the returned
/// [`AuthError`] is a response, so a handler can write `grants.require_all([..])?`.
impl Grants {
    /// `Ok` if the token grants **every** one of these scopes; otherwise an
    /// `insufficient_scope` error naming them (403, `scope="…"` in the challenge).
    ///
    /// ```
    /// use tower_token_auth::{AuthError, Grants};
    ///
    /// async fn create_order(grants: Grants) -> Result<&'static str, AuthError> {
    ///     grants.require_all(["orders:write"])?;
    ///     Ok("created")
    /// }
    ///
    /// let grants = Grants::new(["orders:read"], Vec::<String>::new());
    /// let err = grants.require_all(["orders:read", "orders:write"]).unwrap_err();
    /// assert_eq!(err.status(), http::StatusCode::FORBIDDEN);
    /// assert_eq!(err.required_scopes(), Some("orders:read orders:write"));
    /// ```
    ///
    /// # Errors
    ///
    /// `insufficient_scope` when a scope is missing.
    pub fn require_all<I>(&self, scopes: I) -> Result<(), AuthError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        Requirement::new(Kind::Scope, Mode::All, scopes).check(self)
    }

    /// `Ok` if the token grants **at least one** of these scopes; otherwise an
    /// `insufficient_scope` error naming them.
    ///
    /// ```
    /// use tower_token_auth::Grants;
    ///
    /// let grants = Grants::new(["orders:admin"], Vec::<String>::new());
    /// assert!(grants.require_any(["orders:write", "orders:admin"]).is_ok());
    /// assert!(grants.require_any(["billing:read"]).is_err());
    /// ```
    ///
    /// # Errors
    ///
    /// `insufficient_scope` when none is granted.
    pub fn require_any<I>(&self, scopes: I) -> Result<(), AuthError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        Requirement::new(Kind::Scope, Mode::Any, scopes).check(self)
    }

    /// `Ok` if the token has **every** one of these roles; otherwise an `insufficient_scope`
    /// error (403, without `scope` attribute).
    ///
    /// ```
    /// use tower_token_auth::Grants;
    ///
    /// let grants = Grants::new(Vec::<String>::new(), ["admin", "finance"]);
    /// assert!(grants.require_all_roles(["admin", "finance"]).is_ok());
    /// assert!(grants.require_all_roles(["admin", "ops"]).is_err());
    /// ```
    ///
    /// # Errors
    ///
    /// `insufficient_scope` when a role is missing.
    pub fn require_all_roles<I>(&self, roles: I) -> Result<(), AuthError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        Requirement::new(Kind::Role, Mode::All, roles).check(self)
    }

    /// `Ok` if the token has **at least one** of these roles; otherwise an
    /// `insufficient_scope` error (403, without `scope` attribute).
    ///
    /// ```
    /// use tower_token_auth::Grants;
    ///
    /// let grants = Grants::new(Vec::<String>::new(), ["ops"]);
    /// assert!(grants.require_any_role(["admin", "ops"]).is_ok());
    /// assert!(grants.require_any_role(["admin"]).is_err());
    /// ```
    ///
    /// # Errors
    ///
    /// `insufficient_scope` when no role matches.
    pub fn require_any_role<I>(&self, roles: I) -> Result<(), AuthError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        Requirement::new(Kind::Role, Mode::Any, roles).check(self)
    }
}

#[cfg(feature = "axum")]
mod extract {
    use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
    use axum_core::response::{IntoResponse, Response};
    use http::request::Parts;

    use super::unauthenticated;
    use crate::claims::{Grants, LayerMarker};
    use crate::error::AuthError;

    /// `Grants` as an axum extractor: the scopes and roles of the verified token.
    ///
    /// Without grants (no token behind an optional `TokenAuthLayer`, or no `TokenAuthLayer`
    /// at all) it rejects with a 401 `missing` [`AuthError`] (behind
    /// [`anonymous_on_invalid`](crate::TokenAuthLayer::anonymous_on_invalid), with the
    /// token's error). `Option<Grants>` is `None` instead.
    ///
    /// ```
    /// use axum::{routing::get, Router};
    /// use tower_token_auth::{AuthError, Grants};
    ///
    /// async fn orders(grants: Grants) -> Result<String, AuthError> {
    ///     grants.require_all(["orders:read"])?;
    ///     Ok(format!("{} scopes", grants.scopes().len()))
    /// }
    ///
    /// async fn landing(grants: Option<Grants>) -> &'static str {
    ///     match grants {
    ///         Some(g) if g.has_role("admin") => "hello admin",
    ///         Some(_) => "hello user",
    ///         None => "hello stranger",
    ///     }
    /// }
    ///
    /// let app: Router = Router::new().route("/orders", get(orders)).route("/", get(landing));
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
    impl<S: Send + Sync> FromRequestParts<S> for Grants {
        type Rejection = AuthError;

        async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, AuthError> {
            if let Some(g) = parts.extensions.get::<Grants>() {
                return Ok(g.clone());
            }
            if parts.extensions.get::<LayerMarker>().is_none() {
                tracing::error!(
                    target: "tower_token_auth",
                    "Grants was extracted but no TokenAuthLayer ran for this route: add .layer(TokenAuthLayer::new(config)) to the router or route"
                );
            }
            Err(unauthenticated(&parts.extensions))
        }
    }

    /// `Option<Grants>`: `None` when the request carries no verified token.
    #[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
    impl<S: Send + Sync> OptionalFromRequestParts<S> for Grants {
        type Rejection = std::convert::Infallible;

        async fn from_request_parts(
            parts: &mut Parts,
            _state: &S,
        ) -> Result<Option<Self>, Self::Rejection> {
            Ok(parts.extensions.get::<Grants>().cloned())
        }
    }

    /// An `AuthError` as an axum response: the default problem response
    /// ([`response::problem_response`](crate::response::problem_response), without realm)
    /// with the error in the response extensions. Lets handlers return
    /// `Result<_, AuthError>`; for another body or a realm, map the error yourself.
    ///
    /// ```
    /// use axum::response::IntoResponse;
    /// use tower_token_auth::{AuthError, Reason};
    ///
    /// let res = AuthError::insufficient_scope("orders:write").into_response();
    /// assert_eq!(res.status(), 403);
    /// assert_eq!(res.extensions().get::<AuthError>().unwrap().reason(), Reason::InsufficientScope);
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
    impl IntoResponse for AuthError {
        fn into_response(self) -> Response {
            let mut res = crate::response::problem_response(&self, None);
            res.extensions_mut().insert(self);
            res
        }
    }
}
