//! [`Issuer`]: one trusted issuer with its own keys and audiences.

use crate::keys::Keys;

/// An issuer trusted with its own keys; see [`AuthConfigBuilder::trust`](crate::AuthConfigBuilder::trust).
#[derive(Clone, Debug)]
#[must_use]
pub struct Issuer {
    pub(super) issuer: String,
    pub(super) keys: Keys,
    pub(super) audiences: Vec<String>,
}

impl Issuer {
    /// An issuer (the exact `iss` value). Give it keys with [`keys`](Issuer::keys).
    pub fn new(issuer: impl Into<String>) -> Self {
        Issuer {
            issuer: issuer.into(),
            keys: Keys::default(),
            audiences: Vec::new(),
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
}
