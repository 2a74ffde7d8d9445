//! Diagnosis without keys ([`DiagnoseOptions::skip_signature_check`]): the configuration's
//! checks run against a copy of it whose key sets are empty, so no key is consulted (and no
//! remote key set is fetched); the problems only a key can decide are then left out.
//!
//! [`DiagnoseOptions::skip_signature_check`]: super::DiagnoseOptions::skip_signature_check

use std::sync::Arc;

use jsonwebtoken::Algorithm;
use serde_json::Value;

use crate::config::{ConfigInner, Trust};
use crate::error::{AuthError, Problem, Reason};
use crate::keys::{KeySet, KeySource};

use super::input::decode_parts;

/// A copy of `cfg` with the same checks and no keys. The revocation store is left out: only
/// a verified token is looked up there.
pub(super) fn without_keys(cfg: &ConfigInner) -> ConfigInner {
    ConfigInner {
        trusts: cfg
            .trusts
            .iter()
            .map(|t| Trust {
                issuers: t.issuers.clone(),
                keys: KeySource::Static(Arc::new(KeySet::default())),
                audiences: t.audiences.clone(),
            })
            .collect(),
        allowed: cfg.allowed,
        check_issuer: cfg.check_issuer,
        check_audience: cfg.check_audience,
        leeway: cfg.leeway,
        required_type: cfg.required_type.clone(),
        required_claims: cfg.required_claims.clone(),
        checks: cfg.checks.clone(),
        max_token_len: cfg.max_token_len,
        clock: Arc::clone(&cfg.clock),
        sources: cfg.sources.clone(),
        realm: cfg.realm.clone(),
        revocation: None,
        roles_claim: cfg.roles_claim.clone(),
        metadata: None,
    }
}

/// The error of validating `text` against [`without_keys`], without the problems a key
/// decides: `unknown_key`, `bad_signature`, `keys_unavailable`, and `alg_not_allowed` when
/// the algorithm is a known one the configuration allows (an empty key set allows none).
/// `None` if nothing else is wrong.
pub(super) fn key_problems_removed(
    cfg: &ConfigInner,
    text: &str,
    result: Result<(), AuthError>,
) -> Option<AuthError> {
    let err = result.err()?;
    let alg_allowed = decode_parts(text)
        .0
        .as_ref()
        .and_then(|h| h.get("alg"))
        .and_then(Value::as_str)
        .and_then(|alg| match alg {
            "Ed25519" => Some(Algorithm::EdDSA),
            other => other.parse().ok(),
        })
        .is_some_and(|alg| cfg.allowed.contains(alg));
    let needs_key = |p: &Problem| match p.reason() {
        Reason::UnknownKey | Reason::BadSignature | Reason::KeysUnavailable => true,
        Reason::AlgNotAllowed => alg_allowed,
        _ => false,
    };
    if !err.problems().iter().any(needs_key) {
        return Some(err);
    }
    let kept: Vec<Problem> = err
        .problems()
        .iter()
        .filter(|p| !needs_key(p))
        .cloned()
        .collect();
    (!kept.is_empty()).then(|| AuthError::from_problems(kept, err.facts().clone()))
}
