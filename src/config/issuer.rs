//! [`Issuer`]: one trusted issuer with its own keys and audiences.

use crate::keys::Keys;

/// An issuer trusted with its own keys; see [`AuthConfigBuilder::trust`](crate::AuthConfigBuilder::trust).
#[derive(Clone, Debug)]
#[must_use]
pub struct Issuer {
    pub(super) issuer: String,
    pub(super) keys: Keys,
    pub(super) audiences: Vec<String>,
    #[cfg(feature = "remote")]
    pub(super) introspection: Option<crate::introspection::Introspection>,
}

impl Issuer {
    /// An issuer (the exact `iss` value). Give it keys with [`keys`](Issuer::keys).
    pub fn new(issuer: impl Into<String>) -> Self {
        Issuer {
            issuer: issuer.into(),
            keys: Keys::default(),
            audiences: Vec::new(),
            #[cfg(feature = "remote")]
            introspection: None,
        }
    }

    /// An OpenID Connect issuer whose keys are found by discovery (feature `remote`).
    #[cfg(feature = "remote")]
    #[cfg_attr(docsrs, doc(cfg(feature = "remote")))]
    pub fn oidc(issuer: impl Into<String>) -> Self {
        let issuer = issuer.into();
        Issuer::new(issuer.clone()).keys(Keys::remote_oidc(issuer))
    }

    /// Adds keys of this issuer.
    pub fn keys(mut self, keys: Keys) -> Self {
        self.keys = std::mem::take(&mut self.keys).and(keys);
        self
    }

    /// Adds an audience accepted for this issuer's tokens (default: the configuration's).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Asks this issuer's RFC 7662 introspection endpoint about opaque tokens (feature
    /// `remote`); see [`introspection`](crate::introspection). Only one issuer of a
    /// configuration may introspect.
    ///
    /// ```
    /// use tower_token_auth::{introspection::Introspection, AuthConfig, Issuer};
    ///
    /// let cfg = AuthConfig::builder()
    ///     .trust(
    ///         Issuer::oidc("https://login.example.com")
    ///             .introspection(Introspection::discover().client_secret_basic("api", "s3cret")),
    ///     )
    ///     .audience("api")
    ///     .build()?;
    /// # Ok::<(), tower_token_auth::ConfigError>(())
    /// ```
    #[cfg(feature = "remote")]
    #[cfg_attr(docsrs, doc(cfg(feature = "remote")))]
    pub fn introspection(mut self, introspection: crate::introspection::Introspection) -> Self {
        self.introspection = Some(introspection);
        self
    }
}
