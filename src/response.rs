//! Rejection responses: the [`Responder`] trait and the RFC 6750 / RFC 9457
//! [`DefaultResponder`].
//!
//! The realm and the RFC 9728 `resource_metadata` URL of the challenge are set in one place,
//! the configuration ([`AuthConfigBuilder::realm`], [`AuthConfigBuilder::resource_metadata`]).
//! The layer hands them to every responder in the request: [`DefaultResponder`],
//! `GrpcResponder`, the default responder of
//! [`RequireScope`](crate::RequireScope), and yours, through [`ChallengeParams::from`]`(parts)`.
//!
//! [`AuthConfigBuilder::realm`]: crate::AuthConfigBuilder::realm
//! [`AuthConfigBuilder::resource_metadata`]: crate::AuthConfigBuilder::resource_metadata

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::request::Parts;
use http::Response;
use std::fmt::Write as _;

use crate::error::{AuthError, Reason};

pub use crate::error::DEFAULT_RETRY_AFTER;

/// Builds the response for a rejected request.
///
/// It sees the error and the request parts (method, URI, headers) and may build any response;
/// the layer puts a clone of the [`AuthError`] in the response extensions afterwards, whatever
/// the responder did. Closures `Fn(&AuthError, &Parts) -> Response<B>` implement it; wrap one
/// in [`responder_fn`] to have its argument types inferred.
///
/// ```
/// use axum::{body::Body, response::{IntoResponse, Response}, Json};
/// use tower_token_auth::{AuthError, TokenAuthLayer};
/// # let cfg = tower_token_auth::AuthConfig::builder()
/// #     .keys(tower_token_auth::Keys::hmac([7u8; 32])).issuer("i").audience("a").build().unwrap();
///
/// let layer = TokenAuthLayer::new(cfg).with_responder(|err: &AuthError, _parts: &http::request::Parts| -> Response<Body> {
///     let body = serde_json::json!({ "code": err.reason().code() });
///     (err.status(), Json(body)).into_response()
/// });
/// ```
pub trait Responder<B>: Clone + Send + Sync + 'static {
    /// Builds the response. The configuration's realm and `resource_metadata` URL are in
    /// `parts`: read them with [`ChallengeParams::from`]`(parts)`.
    fn respond(&self, error: &AuthError, parts: &Parts) -> Response<B>;
}

/// Turns a closure into a [`Responder`], as `tower::service_fn` does for services: the
/// closure's argument types are inferred, so `|err, parts| ..` needs no annotations.
///
/// ```
/// use axum::{body::Body, response::IntoResponse, Json};
/// use tower_token_auth::{response::responder_fn, TokenAuthLayer};
/// # let cfg = tower_token_auth::AuthConfig::builder()
/// #     .keys(tower_token_auth::Keys::hmac([7u8; 32])).issuer("i").audience("a").build().unwrap();
///
/// let layer = TokenAuthLayer::new(cfg).with_responder(responder_fn(|err, _parts| {
///     let body = serde_json::json!({ "code": err.reason().code() });
///     (err.status(), Json(body)).into_response()
/// }));
/// # let _ = layer;
/// ```
pub fn responder_fn<F, B>(f: F) -> ResponderFn<F>
where
    F: Fn(&AuthError, &Parts) -> Response<B> + Clone + Send + Sync + 'static,
{
    ResponderFn(f)
}

/// A [`Responder`] made from a closure by [`responder_fn`].
#[derive(Clone, Copy)]
pub struct ResponderFn<F>(F);

impl<F> std::fmt::Debug for ResponderFn<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponderFn").finish_non_exhaustive()
    }
}

impl<F, B> Responder<B> for ResponderFn<F>
where
    F: Fn(&AuthError, &Parts) -> Response<B> + Clone + Send + Sync + 'static,
{
    fn respond(&self, error: &AuthError, parts: &Parts) -> Response<B> {
        (self.0)(error, parts)
    }
}

impl<F, B> Responder<B> for F
where
    F: Fn(&AuthError, &Parts) -> Response<B> + Clone + Send + Sync + 'static,
{
    fn respond(&self, error: &AuthError, parts: &Parts) -> Response<B> {
        self(error, parts)
    }
}

/// The realm and RFC 9728 `resource_metadata` URL of a challenge.
///
/// [`ChallengeParams::from`]`(parts)` reads the ones of the configuration of the
/// [`TokenAuthLayer`](crate::TokenAuthLayer) that ran for the request (both `None` when no
/// layer ran): what every responder of this crate puts in its challenge, and what yours should
/// read to send the same. `Option<&str>` converts into a realm alone, so
/// `www_authenticate(err, Some("api"))` works outside any layer too.
///
/// ```
/// use axum::{body::Body, response::{IntoResponse, Response}, Json};
/// use tower_token_auth::response::{www_authenticate, ChallengeParams};
/// use tower_token_auth::{responder_fn, AuthConfig, Keys, TokenAuthLayer};
///
/// # fn main() -> Result<(), tower_token_auth::ConfigError> {
/// let cfg = AuthConfig::builder()
///     .keys(Keys::hmac([7u8; 32]))
///     .issuer("https://login.example.com")
///     .audience("api")
///     .realm("api")
///     .build()?;
/// let layer = TokenAuthLayer::new(cfg).with_responder(responder_fn(|err, parts| -> Response<Body> {
///     // Your own body, with the realm of the configuration in it...
///     let realm = ChallengeParams::from(parts).realm;
///     let body = serde_json::json!({ "code": err.reason().code(), "realm": realm });
///     let mut res = (err.status(), Json(body)).into_response();
///     // ...and the challenge the default responder would send.
///     if let Some(challenge) = www_authenticate(err, parts) {
///         res.headers_mut().insert(http::header::WWW_AUTHENTICATE, challenge);
///     }
///     res
/// }));
/// # let _ = layer; Ok(()) }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChallengeParams<'a> {
    /// `realm="…"` ([`AuthConfigBuilder::realm`](crate::AuthConfigBuilder::realm)).
    pub realm: Option<&'a str>,
    /// `resource_metadata="…"`, the URL of the RFC 9728 metadata document
    /// ([`AuthConfigBuilder::resource_metadata`](crate::AuthConfigBuilder::resource_metadata)).
    pub resource_metadata: Option<&'a str>,
    /// With DPoP ([`AuthConfigBuilder::dpop`](crate::AuthConfigBuilder::dpop)): the accepted
    /// proof algorithms, sent as a `DPoP algs="…"` challenge beside (or instead of) `Bearer`.
    pub dpop_algs: Option<&'a str>,
    /// Only DPoP is accepted: no `Bearer` challenge.
    pub dpop_required: bool,
    /// The request used `Authorization: DPoP`: the error goes on the `DPoP` challenge.
    pub dpop_request: bool,
}

impl<'a> From<&'a Parts> for ChallengeParams<'a> {
    /// The realm and metadata URL of the layer that ran for this request.
    fn from(parts: &'a Parts) -> Self {
        match parts.extensions.get::<crate::claims::LayerMarker>() {
            Some(m) => ChallengeParams {
                realm: m.layer.realm.as_deref(),
                resource_metadata: m.layer.resource_metadata.as_deref(),
                dpop_algs: m.layer.dpop_algs.as_deref(),
                dpop_required: m.layer.dpop_required,
                dpop_request: m.layer.dpop_algs.is_some()
                    && crate::binding::Scheme::of(parts, "authorization")
                        == crate::binding::Scheme::Dpop,
            },
            None => ChallengeParams::default(),
        }
    }
}

impl<'a> From<Option<&'a str>> for ChallengeParams<'a> {
    /// A realm (or none) and no metadata URL.
    fn from(realm: Option<&'a str>) -> Self {
        ChallengeParams {
            realm,
            ..ChallengeParams::default()
        }
    }
}

/// The default responder: the status of the reason, RFC 6750 `WWW-Authenticate: Bearer`
/// (with the configured realm, `error`, `error_description`, for `insufficient_scope`
/// `scope`, and the configured RFC 9728 `resource_metadata` URL), `Retry-After` on 503, and an
/// RFC 9457 `application/problem+json` body:
///
/// ```json
/// {
///   "type": "https://docs.rs/tower-token-auth/latest/tower_token_auth/enum.Reason.html#variant.Expired",
///   "title": "Token expired",
///   "status": 401,
///   "detail": "The token has expired; obtain a new one.",
///   "error": "invalid_token",
///   "reason": "expired"
/// }
/// ```
///
/// Every text comes from a fixed vocabulary: nothing from the token, nothing about keys. The
/// realm and metadata URL are those of the configuration of the layer that ran for the request
/// ([`ChallengeParams`]); it is [`problem_response`]`(error, parts)`.
///
/// ```
/// use tower_token_auth::{AuthError, DefaultResponder, Reason, Responder};
///
/// let (parts, ()) = http::Request::get("/orders").body(()).unwrap().into_parts();
/// // No layer ran for these parts: no realm.
/// let res: http::Response<axum::body::Body> =
///     DefaultResponder::new().respond(&AuthError::new(Reason::Missing), &parts);
/// assert_eq!(res.status(), 401);
/// assert_eq!(res.headers()["www-authenticate"], "Bearer");
/// ```
#[derive(Clone, Copy, Debug, Default)]
#[non_exhaustive]
pub struct DefaultResponder;

impl DefaultResponder {
    /// The default responder (what [`TokenAuthLayer::new`](crate::TokenAuthLayer::new) and
    /// [`RequireScope`](crate::RequireScope) use).
    ///
    /// ```
    /// use tower_token_auth::{DefaultResponder, RequireScope};
    ///
    /// let scope = RequireScope::all(["orders:read"]).with_responder(DefaultResponder::new());
    /// ```
    pub fn new() -> Self {
        DefaultResponder
    }
}

impl<B> Responder<B> for DefaultResponder
where
    B: From<Bytes>,
{
    fn respond(&self, error: &AuthError, parts: &Parts) -> Response<B> {
        problem_response(error, parts)
    }
}

/// The RFC 6750 `WWW-Authenticate` value for an error, e.g.
/// `Bearer realm="api", error="invalid_token", error_description="The token has expired; obtain a new one."`,
/// with `resource_metadata="…"` last when one is given.
///
/// `params` is a realm (`Option<&str>`), the request's `&Parts` (the realm and metadata URL of
/// the layer's configuration, as the responders of this crate send) or a [`ChallengeParams`].
/// `None` for reasons that carry no challenge (the 503 ones).
///
/// ```
/// use tower_token_auth::response::{www_authenticate, ChallengeParams};
/// use tower_token_auth::{AuthError, Reason};
///
/// let v = www_authenticate(&AuthError::new(Reason::Missing), Some("api")).unwrap();
/// assert_eq!(v, r#"Bearer realm="api""#);
///
/// let params = ChallengeParams {
///     realm: Some("mcp"),
///     resource_metadata: Some("https://api.example.com/.well-known/oauth-protected-resource/mcp"),
///     ..ChallengeParams::default()
/// };
/// let v = www_authenticate(&AuthError::new(Reason::Missing), params).unwrap();
/// assert_eq!(
///     v,
///     r#"Bearer realm="mcp", resource_metadata="https://api.example.com/.well-known/oauth-protected-resource/mcp""#
/// );
/// ```
pub fn www_authenticate<'a>(
    error: &AuthError,
    params: impl Into<ChallengeParams<'a>>,
) -> Option<HeaderValue> {
    let reason = error.reason();
    if reason.is_unavailable() {
        return None;
    }
    let error_scope = error.required_scopes();
    let params = params.into();
    // With DPoP, the error goes on the scheme it is about: the DPoP challenge for a proof
    // problem, for a request that used DPoP, or when only DPoP is accepted.
    let error_on_dpop = params.dpop_algs.is_some()
        && (matches!(reason, Reason::InvalidDpopProof | Reason::UseDpopNonce)
            || params.dpop_request
            || params.dpop_required);
    let mut v = String::new();
    let challenge = |v: &mut String, scheme: &str, algs: Option<&str>, error: bool| {
        if !v.is_empty() {
            v.push_str(", ");
        }
        v.push_str(scheme);
        let mut sep = " ";
        if let Some(realm) = params.realm {
            let _ = write!(v, "{sep}realm=\"{}\"", sanitize(realm));
            sep = ", ";
        }
        if let Some(algs) = algs {
            let _ = write!(v, "{sep}algs=\"{algs}\"");
            sep = ", ";
        }
        if let Some(code) = reason.bearer_error().filter(|_| error) {
            let _ = write!(
                v,
                "{sep}error=\"{code}\", error_description=\"{}\"",
                reason.description()
            );
            if reason == Reason::InsufficientScope {
                if let Some(scope) = error_scope {
                    let _ = write!(v, ", scope=\"{}\"", sanitize(scope));
                }
            }
            sep = ", ";
        }
        if let Some(url) = params.resource_metadata {
            let _ = write!(v, "{sep}resource_metadata=\"{}\"", sanitize(url));
        }
    };
    if !params.dpop_required {
        challenge(&mut v, "Bearer", None, !error_on_dpop);
    }
    if let Some(algs) = params.dpop_algs {
        challenge(&mut v, "DPoP", Some(algs), error_on_dpop);
    }
    HeaderValue::from_str(&v).ok()
}

/// The RFC 9457 problem document for an error, as JSON text.
///
/// ```
/// use tower_token_auth::{response::problem_json, AuthError, Reason};
///
/// let body: serde_json::Value = serde_json::from_str(&problem_json(&AuthError::new(Reason::Expired))).unwrap();
/// assert_eq!(body["reason"], "expired");
/// assert_eq!(body["error"], "invalid_token");
/// assert_eq!(body["status"], 401);
/// ```
pub fn problem_json(error: &AuthError) -> String {
    let reason = error.reason();
    if error.attachment().is_none() && reason != Reason::InsufficientScope {
        // The common case, written directly: every text is a fixed ASCII string without
        // quotes or backslashes, so no JSON escaping is needed (members in serde_json's
        // order).
        let error_member = match reason.bearer_error() {
            Some(code) => format!(r#""error":"{code}","#),
            None => String::new(),
        };
        return format!(
            r#"{{"detail":"{detail}",{error_member}"reason":"{code}","status":{status},"title":"{title}","type":"https://docs.rs/tower-token-auth/latest/tower_token_auth/enum.Reason.html#variant.{reason:?}"}}"#,
            detail = reason.description(),
            code = reason.code(),
            status = reason.status().as_u16(),
            title = reason.title(),
        );
    }
    let mut body = serde_json::json!({
        "type": format!(
            "https://docs.rs/tower-token-auth/latest/tower_token_auth/enum.Reason.html#variant.{reason:?}"
        ),
        "title": reason.title(),
        "status": reason.status().as_u16(),
        "detail": reason.description(),
        "reason": reason.code(),
    });
    if let Some(code) = reason.bearer_error() {
        body["error"] = code.into();
    }
    if reason == Reason::InsufficientScope {
        if let Some(scope) = error.required_scopes() {
            body["scope"] = sanitize(scope).into();
        }
    }
    #[cfg(feature = "diagnose")]
    if let Some(d) = error.diagnosis() {
        // Development option: the full diagnosis, token header and claims included.
        if let Ok(v) = serde_json::to_value(d) {
            body["diagnosis"] = v;
        }
    }
    body.to_string()
}

/// The whole default response for an error: status, [`www_authenticate`] challenge,
/// `Retry-After` on 503 and the [`problem_json`] body (`application/problem+json`). `params`
/// as for [`www_authenticate`]: a realm, the request's `&Parts`, or [`ChallengeParams`].
///
/// ```
/// use tower_token_auth::{response::problem_response, AuthError, Reason};
///
/// let res: http::Response<axum::body::Body> =
///     problem_response(&AuthError::new(Reason::Expired), Some("api"));
/// assert_eq!(res.status(), 401);
/// assert_eq!(res.headers()["content-type"], "application/problem+json");
/// assert!(res.headers()["www-authenticate"].to_str().unwrap().starts_with(r#"Bearer realm="api", error="invalid_token""#));
/// ```
pub fn problem_response<'a, B: From<Bytes>>(
    error: &AuthError,
    params: impl Into<ChallengeParams<'a>>,
) -> Response<B> {
    let mut res = Response::new(B::from(Bytes::from(problem_json(error))));
    *res.status_mut() = error.status();
    let headers = res.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    if let Some(v) = www_authenticate(error, params) {
        headers.insert(WWW_AUTHENTICATE, v);
    }
    if let Some(nonce) = error.facts().dpop_nonce.as_deref() {
        if let Ok(v) = HeaderValue::from_str(nonce) {
            headers.insert(http::HeaderName::from_static("dpop-nonce"), v);
        }
    }
    if error.reason().is_unavailable() {
        let secs = error.retry_after().unwrap_or(DEFAULT_RETRY_AFTER);
        headers.insert(RETRY_AFTER, HeaderValue::from(secs));
    }
    res
}

/// Keeps only characters that can stand in a quoted-string without escaping.
fn sanitize(s: &str) -> String {
    s.chars()
        .filter(|c| (' '..='~').contains(c) && *c != '"' && *c != '\\')
        .collect()
}

/// The axum responses of the crate's errors: built here, so that the errors (and the claims
/// module) need not know how a response is made.
#[cfg(feature = "axum")]
mod axum_responses {
    use axum_core::response::{IntoResponse, Response};
    use http::StatusCode;

    use super::problem_response;
    use crate::claims::ClaimsRejection;
    use crate::error::AuthError;

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
            let mut res = problem_response(&self, None);
            res.extensions_mut().insert(self);
            res
        }
    }

    /// A `ClaimsRejection` as an axum response: `Unauthenticated` is the default problem
    /// response with the layer's realm; a missing layer or a wrong claims type is a 500 with
    /// the message (also logged as an error).
    ///
    /// ```
    /// use axum::{body::Body, response::IntoResponse, routing::get, Router};
    /// use tower::ServiceExt;
    /// use tower_token_auth::{Claims, StandardClaims};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// async fn me(c: Claims<StandardClaims>) -> String { c.sub.clone().unwrap_or_default() }
    /// // No TokenAuthLayer: the extractor rejects with 500 and says why.
    /// let app: Router = Router::new().route("/me", get(me));
    /// let req = http::Request::get("/me").body(Body::empty()).unwrap();
    /// assert_eq!(app.oneshot(req).await.unwrap().status(), 500);
    /// # }
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
    impl IntoResponse for ClaimsRejection {
        fn into_response(self) -> Response {
            match self {
                ClaimsRejection::Unauthenticated {
                    error,
                    realm,
                    resource_metadata,
                } => problem_response(
                    &error,
                    super::ChallengeParams {
                        realm: realm.as_deref(),
                        resource_metadata: resource_metadata.as_deref(),
                        ..super::ChallengeParams::default()
                    },
                ),
                other => {
                    tracing::error!(target: "tower_token_auth", "{other}");
                    (StatusCode::INTERNAL_SERVER_ERROR, other.to_string()).into_response()
                }
            }
        }
    }
}
