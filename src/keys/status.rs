//! What a key source reports: [`KeyStatus`] for readiness checks, [`KeyInfo`] for diagnosis.

use jsonwebtoken::Algorithm;

/// The state of a remote key source, for readiness checks and dashboards.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyStatus {
    /// The JWKS URL or OIDC issuer.
    pub source: String,
    /// `true` if usable keys are loaded (fresh or stale within the bound).
    pub ready: bool,
    /// Number of keys in the current set.
    pub keys: usize,
    /// Seconds since the current set was fetched.
    pub age_secs: Option<i64>,
    /// `true` if the set is past its time to live (a refresh is failing).
    pub stale: bool,
    /// Successful fetches so far.
    pub fetch_ok: u64,
    /// Failed fetches so far.
    pub fetch_error: u64,
    /// Refetches caused by unknown `kid`s so far.
    pub unknown_kid_refetch: u64,
    /// Requests served with stale keys so far.
    pub stale_served: u64,
    /// Keys of the last fetched set that were skipped: symmetric (`oct`) keys and keys with
    /// private members (a published set must never hold them; each is logged with its `kid`),
    /// encryption keys, and keys that are invalid or too weak.
    pub skipped: usize,
}

/// A key as diagnosis shows it: never the material.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
// Read by `diagnose` only.
#[cfg_attr(not(feature = "diagnose"), allow(dead_code))]
pub(crate) struct KeyInfo {
    pub(crate) kid: Option<String>,
    pub(crate) kind: &'static str,
    pub(crate) algorithms: Vec<Algorithm>,
}
