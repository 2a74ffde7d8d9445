//! The key set a configuration verifies with, and the lookup of a token's key (the `kid`
//! rule of the [module docs](super)).

use std::collections::HashMap;
use std::fmt;

use jsonwebtoken::{Algorithm, DecodingKey};

use super::algs::{AlgSet, HMAC_MIN_LEN};
use super::material::resolve;
use super::{KeyInfo, Keys};
use crate::error::ConfigError;

/// A usable verification key.
pub(crate) struct VerifyingKey {
    pub(crate) kid: Option<String>,
    pub(crate) key: DecodingKey,
    pub(crate) algorithms: AlgSet,
    pub(crate) label: &'static str,
    /// Verifiers built once, per allowed algorithm (filled when the set is indexed).
    pub(crate) prepared: Vec<(Algorithm, crate::crypto::Prepared)>,
}

impl VerifyingKey {
    /// The prepared verifier for `alg`, if the backend built one.
    pub(crate) fn prepared(&self, alg: Algorithm) -> Option<&crate::crypto::Prepared> {
        self.prepared
            .iter()
            .find(|(a, _)| *a == alg)
            .map(|(_, p)| p)
    }
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("type", &self.label)
            .field("algorithms", &self.algorithms)
            .field("key", &"[redacted]")
            .finish()
    }
}

/// An immutable, indexed set of verification keys.
#[derive(Debug, Default)]
pub(crate) struct KeySet {
    keys: Vec<VerifyingKey>,
    by_kid: HashMap<String, usize>,
    algorithms: AlgSet,
}

/// The outcome of looking a key up for a token.
pub(crate) enum Lookup<'a> {
    Found(&'a VerifyingKey),
    AlgNotAllowed,
    UnknownKey,
}

impl KeySet {
    /// Builds the set, narrowing every key by `allowed`.
    pub(crate) fn build(keys: &Keys, allowed: AlgSet) -> Result<KeySet, ConfigError> {
        let mut out: Vec<VerifyingKey> = Vec::new();
        for spec in &keys.specs {
            resolve(spec, &mut out)?;
        }
        KeySet::from_keys(out, allowed)
    }

    /// Indexes resolved keys, narrowing every key by `allowed` and dropping those left with
    /// no algorithm.
    pub(crate) fn from_keys(
        out: Vec<VerifyingKey>,
        allowed: AlgSet,
    ) -> Result<KeySet, ConfigError> {
        let mut set = KeySet::default();
        for mut key in out {
            let before = key.algorithms;
            key.algorithms = key.algorithms.and(allowed);
            if key.algorithms.is_empty() {
                if let Some(err) = weak_for_allowed(&key, before, allowed) {
                    return Err(err);
                }
                tracing::debug!(kid = ?key.kid, "key skipped: none of its algorithms is allowed");
                continue;
            }
            key.prepared = key
                .algorithms
                .iter()
                .filter_map(|alg| crate::crypto::prepare(alg, &key.key).map(|p| (alg, p)))
                .collect();
            if let Some(kid) = &key.kid {
                if set.by_kid.contains_key(kid) {
                    return Err(ConfigError::DuplicateKid(kid.clone()));
                }
                set.by_kid.insert(kid.clone(), set.keys.len());
            }
            set.algorithms = set.algorithms.or(key.algorithms);
            set.keys.push(key);
        }
        Ok(set)
    }

    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    pub(crate) fn algorithms(&self) -> AlgSet {
        self.algorithms
    }

    /// What each key is, for diagnosis (no key material).
    // Read by `diagnose` only.
    #[cfg_attr(not(feature = "diagnose"), allow(dead_code))]
    pub(crate) fn describe(&self) -> Vec<KeyInfo> {
        self.keys
            .iter()
            .map(|k| KeyInfo {
                kid: k.kid.clone(),
                kind: k.label,
                algorithms: k.algorithms.iter().collect(),
            })
            .collect()
    }

    /// `true` if a key has this `kid` (remote sets tell an unknown `kid` from a rotated
    /// algorithm with it).
    #[cfg(feature = "remote")]
    pub(crate) fn has_kid(&self, kid: &str) -> bool {
        self.by_kid.contains_key(kid)
    }

    /// Finds the key for a token (see the module docs for the rule).
    pub(crate) fn lookup(&self, kid: Option<&str>, alg: Algorithm) -> Lookup<'_> {
        // No key at all (an issuer known only through introspection): no key is the
        // problem, not the algorithm.
        if self.keys.is_empty() {
            return Lookup::UnknownKey;
        }
        if !self.algorithms.contains(alg) {
            return Lookup::AlgNotAllowed;
        }
        if let Some(kid) = kid {
            if let Some(&i) = self.by_kid.get(kid) {
                let key = &self.keys[i];
                return if key.algorithms.contains(alg) {
                    Lookup::Found(key)
                } else {
                    Lookup::AlgNotAllowed
                };
            }
            return match self.single(|k| k.kid.is_none() && k.algorithms.contains(alg)) {
                Some(key) => Lookup::Found(key),
                None => Lookup::UnknownKey,
            };
        }
        match self.single(|k| k.algorithms.contains(alg)) {
            Some(key) => Lookup::Found(key),
            None => Lookup::UnknownKey,
        }
    }

    fn single(&self, pred: impl Fn(&VerifyingKey) -> bool) -> Option<&VerifyingKey> {
        let mut it = self.keys.iter().filter(|k| pred(k));
        match (it.next(), it.next()) {
            (Some(k), None) => Some(k),
            _ => None,
        }
    }
}

/// An HMAC key narrowed to nothing because the allowed HS algorithms need a longer secret.
fn weak_for_allowed(key: &VerifyingKey, had: AlgSet, allowed: AlgSet) -> Option<ConfigError> {
    if !had.contains(Algorithm::HS256) {
        return None;
    }
    let len = key.key.try_get_as_bytes().map(<[u8]>::len).unwrap_or(0);
    HMAC_MIN_LEN
        .iter()
        .find(|(alg, need)| allowed.contains(*alg) && len < *need)
        .map(|(alg, need)| ConfigError::WeakSecret {
            alg: *alg,
            len,
            need: *need,
        })
}
