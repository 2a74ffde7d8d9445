//! RFC 9728 OAuth 2.0 Protected Resource Metadata, as MCP servers and OAuth clients expect.
//!
//! Give the configuration a [`ResourceMetadata`] with
//! [`AuthConfigBuilder::resource_metadata`](crate::AuthConfigBuilder::resource_metadata), then:
//!
//! - mount [`AuthConfig::resource_metadata_service`] at [`AuthConfig::resource_metadata_path`]
//!   (`/.well-known/oauth-protected-resource` with the resource's path appended, RFC 9728
//!   §3.1): a [`MetadataService`] answering `GET` with `200`, `content-type: application/json`
//!   and the document;
//! - [`TokenAuthLayer`](crate::TokenAuthLayer) lets a `GET` of that path through without
//!   looking for a token (as anonymous, like [`optional`](crate::TokenAuthLayer::optional)
//!   with no token), so the service answers whether it is mounted inside the layer or outside;
//! - every `WWW-Authenticate` challenge (of the default responder, `GrpcResponder`,
//!   `RequireScope`, and yours through [`ChallengeParams`](crate::response::ChallengeParams))
//!   carries `resource_metadata="<that URL>"` (RFC 9728 §5.1), so a client that gets a 401
//!   can find the authorization server.
//!
//! The layer does not answer the path itself: it would have to build a body of your response
//! type, and not every response body can be made from bytes (tonic's cannot). Mounting the
//! service is one line with axum, and the service works with any tower or hyper stack:
//!
//! ```
//! use axum::{body::Body, routing::get, Router};
//! use http::Request;
//! use tower::ServiceExt;
//! use tower_token_auth::metadata::ResourceMetadata;
//! use tower_token_auth::{AuthConfig, Keys, TokenAuthLayer};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let cfg = AuthConfig::builder()
//!     .keys(Keys::hmac([7u8; 32]))
//!     .issuer("https://login.example.com")
//!     .audience("https://api.example.com/mcp")
//!     .resource_metadata(
//!         ResourceMetadata::new("https://api.example.com/mcp")
//!             .authorization_server("https://login.example.com")
//!             .scopes(["mcp:tools", "mcp:resources"]),
//!     )
//!     .build()?;
//!
//! let path = cfg.resource_metadata_path().expect("resource metadata is configured");
//! let metadata = cfg.resource_metadata_service().expect("resource metadata is configured");
//! let app = Router::new()
//!     .route("/mcp", get(|| async { "tools" }))
//!     .route_service(path, metadata)
//!     .layer(TokenAuthLayer::new(cfg.clone()));
//!
//! // No token needed for the document...
//! let req = Request::get("/.well-known/oauth-protected-resource/mcp").body(Body::empty())?;
//! let res = app.clone().oneshot(req).await?;
//! assert_eq!(res.status(), 200);
//! assert_eq!(res.headers()["content-type"], "application/json");
//! // ...and every other route points to it.
//! let res = app.oneshot(Request::get("/mcp").body(Body::empty())?).await?;
//! assert_eq!(res.status(), 401);
//! assert_eq!(
//!     res.headers()["www-authenticate"],
//!     r#"Bearer resource_metadata="https://api.example.com/.well-known/oauth-protected-resource/mcp""#
//! );
//! # Ok(()) }
//! ```
//!
//! [`AuthConfig::resource_metadata_service`]: crate::AuthConfig::resource_metadata_service
//! [`AuthConfig::resource_metadata_path`]: crate::AuthConfig::resource_metadata_path

use std::convert::Infallible;
use std::future::{ready, Ready};
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use tower_service::Service;

use serde::Serialize;

use crate::error::ConfigError;

/// The metadata of a protected resource (RFC 9728 §2).
#[derive(Clone, Debug, Serialize)]
#[must_use]
pub struct ResourceMetadata {
    resource: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    authorization_servers: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    scopes_supported: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    bearer_methods_supported: Vec<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource_documentation: Option<String>,
    /// RFC 9728 §2: set from the configuration's DPoP options.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    dpop_signing_alg_values_supported: Vec<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    dpop_bound_access_tokens_required: bool,
}

impl ResourceMetadata {
    /// Metadata for the resource identifier `resource` (an https URL, usually the audience).
    pub fn new(resource: impl Into<String>) -> Self {
        ResourceMetadata {
            resource: resource.into(),
            authorization_servers: Vec::new(),
            scopes_supported: Vec::new(),
            bearer_methods_supported: Vec::new(),
            resource_name: None,
            resource_documentation: None,
            dpop_signing_alg_values_supported: Vec::new(),
            dpop_bound_access_tokens_required: false,
        }
    }

    /// Adds an authorization server (issuer URL) that issues tokens for this resource.
    pub fn authorization_server(mut self, issuer: impl Into<String>) -> Self {
        self.authorization_servers.push(issuer.into());
        self
    }

    /// Sets the scopes the resource understands.
    pub fn scopes(mut self, scopes: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.scopes_supported = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// A human-readable name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.resource_name = Some(name.into());
        self
    }

    /// A URL of documentation for developers.
    pub fn documentation(mut self, url: impl Into<String>) -> Self {
        self.resource_documentation = Some(url.into());
        self
    }

    /// The built document, with the URL and path it is served at.
    pub(crate) fn build(
        mut self,
        bearer_methods: Vec<&'static str>,
        dpop: Option<&crate::binding::Dpop>,
    ) -> Result<BuiltMetadata, ConfigError> {
        if let Some(d) = dpop {
            self.dpop_signing_alg_values_supported =
                d.algorithms.iter().map(|a| format!("{a:?}")).collect();
            self.dpop_bound_access_tokens_required = d.required;
        }
        let Some(rest) = self.resource.strip_prefix("https://").or_else(|| {
            self.resource
                .strip_prefix("http://")
                .filter(|r| r.starts_with("127.0.0.1") || r.starts_with("localhost"))
        }) else {
            return Err(ConfigError::InvalidResource);
        };
        if self.resource.contains(['?', '#', '"', '\\', ' ']) {
            return Err(ConfigError::InvalidResource);
        }
        let scheme = if self.resource.starts_with("https://") {
            "https"
        } else {
            "http"
        };
        let (host, path) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        if host.is_empty() {
            return Err(ConfigError::InvalidResource);
        }
        let well_known = format!("/.well-known/oauth-protected-resource{path}");
        let url = format!("{scheme}://{host}{well_known}");
        self.bearer_methods_supported = bearer_methods;
        let json = serde_json::to_string(&self).map_err(|_| ConfigError::InvalidResource)?;
        Ok(BuiltMetadata {
            path: well_known,
            url,
            json: Arc::from(json),
        })
    }
}

/// The metadata as served.
#[derive(Clone, Debug)]
pub(crate) struct BuiltMetadata {
    pub(crate) path: String,
    pub(crate) url: String,
    pub(crate) json: Arc<str>,
}

/// The tower `Service` serving the RFC 9728 metadata document: `GET` (and `HEAD`) answer
/// `200`, `content-type: application/json` and the document; other methods `405` with
/// `allow: GET, HEAD`. It ignores the path (mount it at
/// [`AuthConfig::resource_metadata_path`](crate::AuthConfig::resource_metadata_path)), never
/// fails, and is cheap to clone. Made by
/// [`AuthConfig::resource_metadata_service`](crate::AuthConfig::resource_metadata_service);
/// see the [module docs](self) for axum.
///
/// ```
/// use http::Request;
/// use tower::ServiceExt;
/// use tower_token_auth::{metadata::ResourceMetadata, AuthConfig, Keys};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let cfg = AuthConfig::builder()
///     .keys(Keys::hmac([7u8; 32]))
///     .issuer("https://login.example.com")
///     .audience("https://api.example.com")
///     .resource_metadata(ResourceMetadata::new("https://api.example.com"))
///     .build()?;
/// let svc = cfg.resource_metadata_service().unwrap();
///
/// let res = svc.oneshot(Request::get("/.well-known/oauth-protected-resource").body(())?).await?;
/// assert_eq!(res.status(), 200);
/// assert_eq!(res.headers()["content-type"], "application/json");
/// assert_eq!(res.body(), r#"{"resource":"https://api.example.com","bearer_methods_supported":["header"]}"#);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct MetadataService {
    json: Arc<str>,
}

impl MetadataService {
    pub(crate) fn new(built: &BuiltMetadata) -> Self {
        MetadataService {
            json: Arc::clone(&built.json),
        }
    }
}

impl<ReqBody> Service<Request<ReqBody>> for MetadataService {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = Ready<Result<Response<String>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let mut res;
        if req.method() == Method::GET || req.method() == Method::HEAD {
            res = Response::new(String::from(&*self.json));
            res.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        } else {
            res = Response::new(String::new());
            *res.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
            res.headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        }
        ready(Ok(res))
    }
}
