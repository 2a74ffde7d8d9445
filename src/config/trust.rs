//! The trusts of a configuration: which one a token's issuer is routed to (one rule, for the
//! pipeline and for diagnosis), and the same trusts without keys (diagnosis without a key).

use super::{ConfigInner, Trust};

impl ConfigInner {
    /// The trust that governs a token whose `iss` is `iss`, with its index: the trust naming
    /// that issuer, or the first one when the issuer check is off. With a single trust, an
    /// unknown or absent `iss` still routes to it, so a forged token is checked against its
    /// keys and reported as such; with several, there is no key to check against.
    pub(crate) fn trust_for(&self, iss: Option<&str>) -> Option<(usize, &Trust)> {
        let index = match (self.check_issuer, iss) {
            (false, _) => Some(0),
            (true, Some(iss)) => self
                .trusts
                .iter()
                .position(|t| t.issuers.iter().any(|i| i == iss)),
            (true, None) => None,
        };
        let index = index.or(if self.trusts.len() == 1 {
            Some(0)
        } else {
            None
        });
        index.and_then(|i| Some((i, self.trusts.get(i)?)))
    }

    /// A copy with the same checks and empty key sets, so a validation consults no key (and
    /// fetches no remote key set). The revocation store is left out: only a verified token is
    /// looked up there. Built here, next to the fields it copies, not by its user.
    #[cfg(feature = "diagnose")]
    pub(crate) fn without_keys(&self) -> ConfigInner {
        use std::sync::Arc;

        use crate::keys::{KeySet, KeySource};

        ConfigInner {
            trusts: self
                .trusts
                .iter()
                .map(|t| Trust {
                    issuers: t.issuers.clone(),
                    keys: KeySource::Static(Arc::new(KeySet::default())),
                    audiences: t.audiences.clone(),
                })
                .collect(),
            allowed: self.allowed,
            check_issuer: self.check_issuer,
            check_audience: self.check_audience,
            leeway: self.leeway,
            required_type: self.required_type.clone(),
            required_claims: self.required_claims.clone(),
            checks: self.checks.clone(),
            max_token_len: self.max_token_len,
            clock: Arc::clone(&self.clock),
            sources: self.sources.clone(),
            realm: self.realm.clone(),
            revocation: None,
            roles_claim: self.roles_claim.clone(),
            metadata: None,
            last_header: Default::default(),
            dpop: None,
            #[cfg(feature = "remote")]
            introspection: self.introspection.clone(),
        }
    }
}
