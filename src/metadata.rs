//! RFC 9728 OAuth 2.0 Protected Resource Metadata, as MCP servers and OAuth clients expect.
//!
//! Give the configuration a [`ResourceMetadata`] with
//! [`AuthConfigBuilder::resource_metadata`](crate::AuthConfigBuilder::resource_metadata) and:
//!
//! - the layer answers `GET /.well-known/oauth-protected-resource` (with the resource's path
//!   appended, RFC 9728 §3.1) itself, unauthenticated, with the metadata document (when the
//!   default responder is used; otherwise serve [`AuthConfig::resource_metadata_json`]
//!   yourself);
//! - every `WWW-Authenticate` challenge of the default responder carries
//!   `resource_metadata="<that URL>"` (RFC 9728 §5.1), so a client that gets a 401 can find
//!   the authorization server.
//!
//! ```
//! use tower_token_auth::metadata::ResourceMetadata;
//! use tower_token_auth::{AuthConfig, Keys};
//!
//! let cfg = AuthConfig::builder()
//!     .keys(Keys::hmac([7u8; 32]))
//!     .issuer("https://login.example.com")
//!     .audience("https://api.example.com/mcp")
//!     .resource_metadata(
//!         ResourceMetadata::new("https://api.example.com/mcp")
//!             .authorization_server("https://login.example.com")
//!             .scopes(["mcp:tools", "mcp:resources"]),
//!     )
//!     .build()
//!     .unwrap();
//! assert_eq!(
//!     cfg.resource_metadata_url(),
//!     Some("https://api.example.com/.well-known/oauth-protected-resource/mcp")
//! );
//! ```
//!
//! [`AuthConfig::resource_metadata_json`]: crate::AuthConfig::resource_metadata_json

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
    ) -> Result<BuiltMetadata, ConfigError> {
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
            json,
        })
    }
}

/// The metadata as served.
#[derive(Clone, Debug)]
pub(crate) struct BuiltMetadata {
    pub(crate) path: String,
    pub(crate) url: String,
    pub(crate) json: String,
}
