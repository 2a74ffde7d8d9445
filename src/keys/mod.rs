//! Verification keys: [`Keys`] describes them, the configuration builds them into a key set.
//!
//! # Which key verifies a token
//!
//! Each key pins the algorithms it may verify: an HMAC secret the HS algorithms its length
//! allows (at least as many bytes as the hash output: 32 for HS256, 48 for HS384, 64 for
//! HS512), an RSA key RS256–RS512 and PS256–PS512, an EC key the one ES algorithm of its
//! curve, an Ed25519 key EdDSA, a JWK its `alg` when it names one. The configuration's
//! allow-list ([`AuthConfigBuilder::algorithms`](crate::AuthConfigBuilder::algorithms)) can
//! only narrow this. `none` cannot be expressed at all, and the `jku`, `x5u` and `jwk` header
//! parameters are never read: keys come only from the configuration.
//!
//! A token is matched to a key by its `kid`:
//!
//! 1. with a `kid`: the key with that `kid`; if none has it, the single key configured without
//!    a `kid` that accepts the token's `alg` (a kid-less key is a wildcard); otherwise
//!    `unknown_key`;
//! 2. without a `kid`: the single key that accepts the token's `alg`. If several keys would,
//!    the token is rejected as `unknown_key` rather than tried against each (trying every key
//!    multiplies the cost of a forged token and hides which key a token was meant for): give
//!    your keys and tokens a `kid`.
//!
//! If the token's `alg` is accepted by no key at all, or the chosen key does not accept it
//! (the RS256/HS256 confusion attack), the reason is `alg_not_allowed`.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};

use crate::error::ConfigError;

/// At most this many keys are read from one JWK set.
pub(crate) const MAX_JWKS_KEYS: usize = 1000;

/// A description of verification keys, turned into usable keys by
/// [`AuthConfigBuilder::build`](crate::AuthConfigBuilder::build), which reports any key that
/// cannot be used.
///
/// Constructors take the material as given and never fail; combine several with
/// [`and`](Keys::and), name the last added key with [`kid`](Keys::kid) and narrow its
/// algorithms with [`algorithms`](Keys::algorithms).
///
/// ```
/// use tower_token_auth::{Algorithm, Keys};
///
/// let keys = Keys::hmac(b"a secret of at least thirty-two bytes!!")
///     .kid("hmac-2024")
///     .and(Keys::jwks_json(r#"{"keys": []}"#));
/// # let _ = keys;
/// let rsa_only_rs256 = Keys::rsa_pem(std::fs::read("key.pem").unwrap_or_default())
///     .kid("rsa-1")
///     .algorithms([Algorithm::RS256]);
/// # let _ = rsa_only_rs256;
/// ```
#[derive(Clone, Default)]
pub struct Keys {
    specs: Vec<KeySpec>,
}

#[derive(Clone)]
struct KeySpec {
    material: Material,
    kid: Option<String>,
    algorithms: Option<Vec<Algorithm>>,
}

#[derive(Clone)]
enum Material {
    Hmac(Vec<u8>),
    RsaPem(Vec<u8>),
    RsaDer(Vec<u8>),
    EcPem(Vec<u8>),
    EcDer(Vec<u8>),
    EdPem(Vec<u8>),
    EdDer(Vec<u8>),
    Jwk(String),
    JwkSet(String),
    #[cfg(feature = "remote")]
    Remote(Box<remote::Remote>),
}

impl Material {
    fn label(&self) -> &'static str {
        match self {
            Material::Hmac(_) => "HMAC secret",
            Material::RsaPem(_) => "RSA PEM key",
            Material::RsaDer(_) => "RSA DER key",
            Material::EcPem(_) => "EC PEM key",
            Material::EcDer(_) => "EC DER key",
            Material::EdPem(_) => "Ed25519 PEM key",
            Material::EdDer(_) => "Ed25519 DER key",
            Material::Jwk(_) => "JWK",
            Material::JwkSet(_) => "JWK set",
            #[cfg(feature = "remote")]
            Material::Remote(_) => "remote key set",
        }
    }
}

impl Keys {
    fn one(material: Material) -> Self {
        Keys {
            specs: vec![KeySpec {
                material,
                kid: None,
                algorithms: None,
            }],
        }
    }

    /// An HMAC secret (HS256, and HS384 / HS512 if it is at least 48 / 64 bytes long).
    ///
    /// A secret shorter than 32 bytes is refused at `build()`: use random bytes, at least as
    /// many as the hash output.
    pub fn hmac(secret: impl AsRef<[u8]>) -> Self {
        Keys::one(Material::Hmac(secret.as_ref().to_vec()))
    }

    /// An RSA public key in PEM (`BEGIN PUBLIC KEY` or `BEGIN RSA PUBLIC KEY`), for RS256–RS512
    /// and PS256–PS512.
    pub fn rsa_pem(pem: impl AsRef<[u8]>) -> Self {
        Keys::one(Material::RsaPem(pem.as_ref().to_vec()))
    }

    /// An RSA public key as PKCS#1 `RSAPublicKey` DER.
    pub fn rsa_der(der: impl AsRef<[u8]>) -> Self {
        Keys::one(Material::RsaDer(der.as_ref().to_vec()))
    }

    /// An EC public key (P-256 for ES256, P-384 for ES384) in PEM (`BEGIN PUBLIC KEY`).
    pub fn ec_pem(pem: impl AsRef<[u8]>) -> Self {
        Keys::one(Material::EcPem(pem.as_ref().to_vec()))
    }

    /// An EC public key as the uncompressed point (`0x04 || x || y`).
    pub fn ec_der(der: impl AsRef<[u8]>) -> Self {
        Keys::one(Material::EcDer(der.as_ref().to_vec()))
    }

    /// An Ed25519 public key in PEM (`BEGIN PUBLIC KEY`), for EdDSA.
    pub fn ed_pem(pem: impl AsRef<[u8]>) -> Self {
        Keys::one(Material::EdPem(pem.as_ref().to_vec()))
    }

    /// An Ed25519 public key as its raw 32 bytes.
    pub fn ed_der(der: impl AsRef<[u8]>) -> Self {
        Keys::one(Material::EdDer(der.as_ref().to_vec()))
    }

    /// One JSON Web Key (RFC 7517) as JSON text. Its `kid` and `alg` are used; a key marked
    /// `"use": "enc"` is refused.
    pub fn jwk(json: impl Into<String>) -> Self {
        Keys::one(Material::Jwk(json.into()))
    }

    /// A JWK set (`{"keys": [...]}`) as JSON text, indexed by `kid`. Keys of unsupported types
    /// or meant for encryption are skipped (with a `tracing` warning); a set with no usable key,
    /// two keys with the same `kid` or more than 1000 keys is refused.
    pub fn jwks_json(json: impl Into<String>) -> Self {
        Keys::one(Material::JwkSet(json.into()))
    }

    /// Keys fetched from a JWKS URL (feature `remote`), with the default options of
    /// [`Remote`](remote::Remote): https only, 5 s fetch timeout, 10 min TTL, refetch on
    /// unknown `kid` at most every 30 s, stale keys served up to 1 h while the provider is
    /// down.
    #[cfg(feature = "remote")]
    #[cfg_attr(docsrs, doc(cfg(feature = "remote")))]
    pub fn jwks_url(url: impl Into<String>) -> Self {
        Keys::remote(remote::Remote::jwks_url(url))
    }

    /// Keys of an OpenID Connect issuer, found by discovery (feature `remote`). When the
    /// configuration names no issuer, this one is used for `iss`.
    #[cfg(feature = "remote")]
    #[cfg_attr(docsrs, doc(cfg(feature = "remote")))]
    pub fn remote_oidc(issuer: impl Into<String>) -> Self {
        Keys::remote(remote::Remote::oidc(issuer))
    }

    /// Remote keys with chosen options (feature `remote`); see [`Remote`](remote::Remote).
    /// Remote keys cannot be combined with other keys for the same issuer.
    #[cfg(feature = "remote")]
    #[cfg_attr(docsrs, doc(cfg(feature = "remote")))]
    pub fn remote(remote: remote::Remote) -> Self {
        Keys::one(Material::Remote(Box::new(remote)))
    }

    /// The OIDC issuer, if these keys are exactly one discovery source.
    pub(crate) fn oidc_issuer(&self) -> Option<String> {
        match self.specs.as_slice() {
            #[cfg(feature = "remote")]
            [KeySpec {
                material: Material::Remote(r),
                ..
            }] => r.oidc_issuer().map(str::to_owned),
            _ => None,
        }
    }

    /// Adds the keys of `other`.
    #[must_use]
    pub fn and(mut self, other: Keys) -> Self {
        self.specs.extend(other.specs);
        self
    }

    /// Sets the key id of the last added key (for a JWK or JWK set, the key's own `kid` wins).
    #[must_use]
    pub fn kid(mut self, kid: impl Into<String>) -> Self {
        if let Some(last) = self.specs.last_mut() {
            last.kid = Some(kid.into());
        }
        self
    }

    /// Narrows the algorithms of the last added key. An algorithm of another family is
    /// refused at `build()`.
    #[must_use]
    pub fn algorithms(mut self, algs: impl IntoIterator<Item = Algorithm>) -> Self {
        if let Some(last) = self.specs.last_mut() {
            last.algorithms = Some(algs.into_iter().collect());
        }
        self
    }

    /// `true` if no key was given.
    pub fn is_empty(&self) -> bool {
        self.specs.is_empty()
    }
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut list = f.debug_list();
        for spec in &self.specs {
            list.entry(&format_args!(
                "{} (kid: {:?}) [redacted]",
                spec.material.label(),
                spec.kid
            ));
        }
        list.finish()
    }
}

#[cfg(feature = "remote")]
#[cfg_attr(docsrs, doc(cfg(feature = "remote")))]
pub mod remote;

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
pub(crate) struct KeyInfo {
    pub(crate) kid: Option<String>,
    pub(crate) kind: &'static str,
    pub(crate) algorithms: Vec<Algorithm>,
}

/// Where a trust's keys come from.
#[derive(Debug)]
pub(crate) enum KeySource {
    Static(Arc<KeySet>),
    #[cfg(feature = "remote")]
    Remote(Arc<remote::RemoteKeys>),
}

impl KeySource {
    pub(crate) fn build(
        keys: &Keys,
        allowed: AlgSet,
        clock: &Arc<dyn crate::clock::Clock>,
    ) -> Result<KeySource, ConfigError> {
        #[cfg(feature = "remote")]
        {
            let remotes = keys
                .specs
                .iter()
                .filter(|s| matches!(s.material, Material::Remote(_)))
                .count();
            if remotes > 0 {
                if keys.specs.len() > 1 {
                    return Err(ConfigError::RemoteMixed);
                }
                if let Material::Remote(r) = &keys.specs[0].material {
                    return Ok(KeySource::Remote(r.build(allowed, Arc::clone(clock))?));
                }
            }
        }
        let _ = clock;
        let set = KeySet::build(keys, allowed)?;
        if set.len() == 0 {
            return Err(ConfigError::NoUsableKey);
        }
        Ok(KeySource::Static(Arc::new(set)))
    }

    /// The keys currently usable, for diagnosis (remote: the current set, if loaded).
    pub(crate) fn describe(&self) -> Vec<KeyInfo> {
        match self {
            KeySource::Static(set) => set.describe(),
            #[cfg(feature = "remote")]
            KeySource::Remote(r) => r.describe(),
        }
    }

    /// The version of the key set if it is usable now, for a cache hit: static keys always
    /// are; remote keys by the same rule as a full validation (`None` once stale past the
    /// bound), which also schedules the background refresh when it is due.
    pub(crate) fn usable_version(&self) -> Option<u64> {
        match self {
            KeySource::Static(_) => Some(0),
            #[cfg(feature = "remote")]
            KeySource::Remote(r) => r.usable_version(),
        }
    }

    /// `true` for remote sources (whose set can change).
    pub(crate) fn is_remote(&self) -> bool {
        match self {
            KeySource::Static(_) => false,
            #[cfg(feature = "remote")]
            KeySource::Remote(_) => true,
        }
    }

    /// Algorithms the source can verify (all allowed ones for remote sources).
    pub(crate) fn algorithms(&self, allowed: AlgSet) -> AlgSet {
        let _ = allowed;
        match self {
            KeySource::Static(set) => set.algorithms(),
            #[cfg(feature = "remote")]
            KeySource::Remote(_) => allowed,
        }
    }
}

/// A set of algorithms as a bit mask (12 algorithms).
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct AlgSet(u16);

pub(crate) const ALL_ALGORITHMS: [Algorithm; 12] = [
    Algorithm::HS256,
    Algorithm::HS384,
    Algorithm::HS512,
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

fn alg_bit(alg: Algorithm) -> u16 {
    let i = ALL_ALGORITHMS.iter().position(|a| *a == alg).unwrap_or(15);
    1 << i
}

impl AlgSet {
    pub(crate) fn of(algs: impl IntoIterator<Item = Algorithm>) -> Self {
        AlgSet(algs.into_iter().fold(0, |m, a| m | alg_bit(a)))
    }
    pub(crate) fn all() -> Self {
        AlgSet::of(ALL_ALGORITHMS)
    }
    pub(crate) fn contains(self, alg: Algorithm) -> bool {
        self.0 & alg_bit(alg) != 0
    }
    pub(crate) fn and(self, other: AlgSet) -> Self {
        AlgSet(self.0 & other.0)
    }
    pub(crate) fn or(self, other: AlgSet) -> Self {
        AlgSet(self.0 | other.0)
    }
    pub(crate) fn is_empty(self) -> bool {
        self.0 == 0
    }
    pub(crate) fn iter(self) -> impl Iterator<Item = Algorithm> {
        ALL_ALGORITHMS
            .into_iter()
            .filter(move |a| self.contains(*a))
    }
}

impl fmt::Debug for AlgSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

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

    /// `true` if a key has this `kid`.
    pub(crate) fn has_kid(&self, kid: &str) -> bool {
        self.by_kid.contains_key(kid)
    }

    /// Finds the key for a token (see the module docs for the rule).
    pub(crate) fn lookup(&self, kid: Option<&str>, alg: Algorithm) -> Lookup<'_> {
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
    let hs = [
        (Algorithm::HS256, 32),
        (Algorithm::HS384, 48),
        (Algorithm::HS512, 64),
    ];
    if !had.contains(Algorithm::HS256) {
        return None;
    }
    let len = key.key.try_get_as_bytes().map(<[u8]>::len).unwrap_or(0);
    hs.iter()
        .find(|(alg, need)| allowed.contains(*alg) && len < *need)
        .map(|(alg, need)| ConfigError::WeakSecret {
            alg: *alg,
            len,
            need: *need,
        })
}

fn family_algs(
    family: &[Algorithm],
    narrowed: &Option<Vec<Algorithm>>,
    label: &'static str,
) -> Result<AlgSet, ConfigError> {
    let base = AlgSet::of(family.iter().copied());
    match narrowed {
        None => Ok(base),
        Some(list) => {
            for alg in list {
                if !base.contains(*alg) {
                    return Err(ConfigError::AlgorithmNotForKey {
                        alg: *alg,
                        key: label,
                    });
                }
            }
            Ok(AlgSet::of(list.iter().copied()))
        }
    }
}

/// The algorithms an RSA key may verify (and the issuer may sign with).
pub(crate) const RSA_ALGS: [Algorithm; 6] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];

fn hmac_algs(len: usize) -> Vec<Algorithm> {
    let mut v = Vec::new();
    if len >= 32 {
        v.push(Algorithm::HS256);
    }
    if len >= 48 {
        v.push(Algorithm::HS384);
    }
    if len >= 64 {
        v.push(Algorithm::HS512);
    }
    v
}

fn ec_alg(point: &[u8], label: &'static str) -> Result<Algorithm, ConfigError> {
    match (point.first(), point.len()) {
        (Some(4), 65) => Ok(Algorithm::ES256),
        (Some(4), 97) => Ok(Algorithm::ES384),
        _ => Err(ConfigError::InvalidKey {
            key: label,
            fix: "give an uncompressed P-256 or P-384 public key (SubjectPublicKeyInfo PEM, or 0x04||x||y)",
        }),
    }
}

fn resolve(spec: &KeySpec, out: &mut Vec<VerifyingKey>) -> Result<(), ConfigError> {
    let label = spec.material.label();
    let invalid = |fix: &'static str| ConfigError::InvalidKey { key: label, fix };
    let (key, family): (DecodingKey, Vec<Algorithm>) = match &spec.material {
        Material::Hmac(secret) => {
            let algs = hmac_algs(secret.len());
            if let Some(list) = &spec.algorithms {
                for alg in list {
                    let need = match alg {
                        Algorithm::HS256 => 32,
                        Algorithm::HS384 => 48,
                        Algorithm::HS512 => 64,
                        other => {
                            return Err(ConfigError::AlgorithmNotForKey {
                                alg: *other,
                                key: label,
                            })
                        }
                    };
                    if secret.len() < need {
                        return Err(ConfigError::WeakSecret {
                            alg: *alg,
                            len: secret.len(),
                            need,
                        });
                    }
                }
            }
            if algs.is_empty() {
                return Err(ConfigError::WeakSecret {
                    alg: Algorithm::HS256,
                    len: secret.len(),
                    need: 32,
                });
            }
            (DecodingKey::from_secret(secret), algs)
        }
        Material::RsaPem(pem) => {
            const FIX: &str = "give an RSA public key PEM (BEGIN PUBLIC KEY or BEGIN RSA PUBLIC KEY) of 2048 bits or more, not a private key or certificate";
            if !is_public_pem(pem) {
                return Err(invalid(FIX));
            }
            let key = DecodingKey::from_rsa_pem(pem).map_err(|_| invalid(FIX))?;
            check_rsa_der(key.try_get_as_bytes().unwrap_or_default()).map_err(|_| invalid(FIX))?;
            (key, RSA_ALGS.to_vec())
        }
        Material::RsaDer(der) => {
            check_rsa_der(der).map_err(|_| {
                invalid("give the PKCS#1 RSAPublicKey DER of a 2048-bit or larger key")
            })?;
            (DecodingKey::from_rsa_der(der), RSA_ALGS.to_vec())
        }
        Material::EcPem(pem) => {
            if !is_public_pem(pem) {
                return Err(invalid(
                    "give an EC public key PEM (BEGIN PUBLIC KEY), not a private key",
                ));
            }
            let key = DecodingKey::from_ec_pem(pem).map_err(|_| {
                invalid("give an EC public key PEM (BEGIN PUBLIC KEY) on P-256 or P-384")
            })?;
            let alg = ec_alg(key.try_get_as_bytes().unwrap_or_default(), label)?;
            (key, vec![alg])
        }
        Material::EcDer(der) => {
            let alg = ec_alg(der, label)?;
            (DecodingKey::from_ec_der(der), vec![alg])
        }
        Material::EdPem(pem) => {
            if !is_public_pem(pem) {
                return Err(invalid(
                    "give an Ed25519 public key PEM (BEGIN PUBLIC KEY), not a private key",
                ));
            }
            let key = DecodingKey::from_ed_pem(pem)
                .map_err(|_| invalid("give an Ed25519 public key PEM (BEGIN PUBLIC KEY)"))?;
            if key.try_get_as_bytes().map(<[u8]>::len).unwrap_or(0) != 32 {
                return Err(invalid(
                    "give an Ed25519 public key (32 bytes); Ed448 is not supported",
                ));
            }
            (key, vec![Algorithm::EdDSA])
        }
        Material::EdDer(der) => {
            if der.len() != 32 {
                return Err(invalid("give the raw 32-byte Ed25519 public key"));
            }
            (DecodingKey::from_ed_der(der), vec![Algorithm::EdDSA])
        }
        Material::Jwk(json) => {
            const FIX: &str = "give one JWK as JSON with kty, and n/e, crv/x/y or k";
            let mut value: serde_json::Value =
                serde_json::from_str(json).map_err(|_| invalid(FIX))?;
            normalize_jwk_alg(&mut value);
            let jwk: Jwk = serde_json::from_value(value).map_err(|_| invalid(FIX))?;
            match jwk_key(&jwk) {
                Ok(Some(mut key)) => {
                    if key.kid.is_none() {
                        key.kid.clone_from(&spec.kid);
                    }
                    narrow(&mut key, &spec.algorithms)?;
                    out.push(key);
                    return Ok(());
                }
                Ok(None) => return Err(invalid("this JWK is for encryption (use: enc) or of an unsupported type; give a signature key")),
                Err(fix) => return Err(invalid(fix)),
            }
        }
        #[cfg(feature = "remote")]
        Material::Remote(_) => return Err(ConfigError::RemoteMixed),
        Material::JwkSet(json) => {
            let parsed = parse_jwks(json.as_bytes(), JwksOrigin::Local).map_err(|e| match e {
                JwksError::NotJson => invalid("give a JWK set as JSON: {\"keys\": [...]}"),
                JwksError::TooMany => invalid("the JWK set has more than 1000 keys"),
                JwksError::Empty => invalid("the JWK set has no usable signature key"),
                JwksError::DuplicateKid => invalid("the JWK set has two keys with the same kid"),
            })?;
            for mut key in parsed.keys {
                narrow(&mut key, &spec.algorithms)?;
                out.push(key);
            }
            return Ok(());
        }
    };
    let algorithms = family_algs(&family, &spec.algorithms, label)?;
    out.push(VerifyingKey {
        kid: spec.kid.clone(),
        key,
        algorithms,
        label,
        prepared: Vec::new(),
    });
    Ok(())
}

/// `true` if the PEM text is a public key (not a private key or a certificate).
fn is_public_pem(pem: &[u8]) -> bool {
    let text = String::from_utf8_lossy(pem);
    let text = text.trim_start();
    text.starts_with("-----BEGIN PUBLIC KEY-----")
        || text.starts_with("-----BEGIN RSA PUBLIC KEY-----")
}

/// Parses a PKCS#1 RSAPublicKey with the crypto backend and checks the modulus is at least
/// [`MIN_RSA_BITS`] (RFC 7518 §3.3).
fn check_rsa_der(der: &[u8]) -> Result<(), ()> {
    let (n, _e) = (crate::crypto::provider()
        .key_utils
        .rsa_pub_components_from_public_key)(der)
    .map_err(|_| ())?;
    if modulus_bits(&n) < MIN_RSA_BITS {
        return Err(());
    }
    Ok(())
}

/// The smallest RSA modulus accepted, from PEM, DER and JWKs alike, on both crypto backends.
const MIN_RSA_BITS: usize = 2048;

/// The exact bit length of a big-endian unsigned integer (leading zero bytes and bits ignored).
fn modulus_bits(n: &[u8]) -> usize {
    match n.iter().position(|b| *b != 0) {
        Some(i) => (n.len() - i) * 8 - n[i].leading_zeros() as usize,
        None => 0,
    }
}

fn narrow(key: &mut VerifyingKey, list: &Option<Vec<Algorithm>>) -> Result<(), ConfigError> {
    if let Some(list) = list {
        let wanted = AlgSet::of(list.iter().copied());
        let narrowed = key.algorithms.and(wanted);
        if narrowed.is_empty() {
            return Err(ConfigError::AlgorithmNotForKey {
                alg: list[0],
                key: key.label,
            });
        }
        key.algorithms = narrowed;
    }
    Ok(())
}

/// Why a JWK set could not be used.
#[derive(Debug)]
pub(crate) enum JwksError {
    NotJson,
    TooMany,
    Empty,
    DuplicateKid,
}

/// Where a JWK set comes from, which decides what it may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum JwksOrigin {
    /// Given by the user (`Keys::jwks_json`): may hold the user's own `oct` secret.
    Local,
    /// Fetched from a URL. A published key set is public by design: a symmetric key in it
    /// would let anyone who downloads it sign tokens, so `oct` keys and keys with private
    /// members are skipped.
    Remote,
}

/// The usable keys of a JWK set, and how many of its keys were skipped.
pub(crate) struct ParsedJwks {
    pub(crate) keys: Vec<VerifyingKey>,
    /// Reported by remote sets (`KeyStatus::skipped`); local sets log each skipped key.
    #[cfg_attr(not(feature = "remote"), allow(dead_code))]
    pub(crate) skipped: usize,
}

/// Private members of RSA, EC and OKP JWKs (RFC 7518 §6.2.2, §6.3.2; RFC 8037 §2).
const PRIVATE_MEMBERS: [&str; 7] = ["d", "p", "q", "dp", "dq", "qi", "oth"];

/// Parses a JWK set, skipping keys that cannot verify signatures (and, from a remote set,
/// keys that must never come from one).
pub(crate) fn parse_jwks(bytes: &[u8], origin: JwksOrigin) -> Result<ParsedJwks, JwksError> {
    #[derive(serde::Deserialize)]
    struct Set {
        keys: Vec<serde_json::Value>,
    }
    let set: Set = serde_json::from_slice(bytes).map_err(|_| JwksError::NotJson)?;
    if set.keys.len() > MAX_JWKS_KEYS {
        return Err(JwksError::TooMany);
    }
    let mut out: Vec<VerifyingKey> = Vec::with_capacity(set.keys.len());
    let mut skipped = 0;
    let mut seen = std::collections::HashSet::new();
    for mut value in set.keys {
        if origin == JwksOrigin::Remote {
            if let Some(why) = refused_in_public_set(&value) {
                let kid = value.get("kid").and_then(serde_json::Value::as_str);
                tracing::warn!(
                    target: "tower_token_auth::keys",
                    kid = kid.map(crate::error::cap).as_deref(),
                    why,
                    "JWK skipped: a published key set must hold public keys only"
                );
                skipped += 1;
                continue;
            }
        }
        normalize_jwk_alg(&mut value);
        let Ok(jwk) = serde_json::from_value::<Jwk>(value) else {
            tracing::warn!("JWK skipped: not a valid JWK");
            skipped += 1;
            continue;
        };
        match jwk_key(&jwk) {
            Ok(Some(key)) => {
                if let Some(kid) = &key.kid {
                    if !seen.insert(kid.clone()) {
                        return Err(JwksError::DuplicateKid);
                    }
                }
                out.push(key);
            }
            Ok(None) => {
                tracing::debug!(kid = ?jwk.common.key_id, "JWK skipped: not a signature key");
                skipped += 1;
            }
            Err(why) => {
                tracing::warn!(kid = ?jwk.common.key_id, why, "JWK skipped");
                skipped += 1;
            }
        }
    }
    if out.is_empty() {
        return Err(JwksError::Empty);
    }
    Ok(ParsedJwks { keys: out, skipped })
}

/// Why a key of a published set is refused: a symmetric key, or private key material.
fn refused_in_public_set(jwk: &serde_json::Value) -> Option<&'static str> {
    if jwk.get("kty").and_then(serde_json::Value::as_str) == Some("oct") || jwk.get("k").is_some() {
        return Some("symmetric (oct) key in a public key set");
    }
    if PRIVATE_MEMBERS.iter().any(|m| jwk.get(m).is_some()) {
        return Some("private key members in a public key set");
    }
    None
}

/// RFC 9864 names the Ed25519 algorithm `Ed25519`; jsonwebtoken knows it as `EdDSA`.
fn normalize_jwk_alg(value: &mut serde_json::Value) {
    if value.get("alg").and_then(serde_json::Value::as_str) == Some("Ed25519") {
        value["alg"] = "EdDSA".into();
    }
}

/// Turns a JWK into a verifying key; `Ok(None)` for keys that are not for signatures.
fn jwk_key(jwk: &Jwk) -> Result<Option<VerifyingKey>, &'static str> {
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return Ok(None);
    }
    let pinned: Option<Algorithm> = match jwk.common.key_algorithm {
        None => None,
        Some(KeyAlgorithm::RSA1_5 | KeyAlgorithm::RSA_OAEP | KeyAlgorithm::RSA_OAEP_256) => {
            return Ok(None)
        }
        Some(KeyAlgorithm::UNKNOWN_ALGORITHM) => return Ok(None),
        Some(other) => match Algorithm::try_from(other) {
            Ok(a) => Some(a),
            Err(_) => return Ok(None),
        },
    };
    let (key, family, label): (DecodingKey, Vec<Algorithm>, &'static str) = match &jwk.algorithm {
        AlgorithmParameters::RSA(p) => {
            // The same minimum as PEM and DER keys: the rust-crypto backend would verify with
            // a 1024-bit key.
            let n = URL_SAFE_NO_PAD
                .decode(&p.n)
                .map_err(|_| "RSA JWK n is not base64url")?;
            if modulus_bits(&n) < MIN_RSA_BITS {
                return Err("RSA JWK modulus is shorter than 2048 bits");
            }
            (
                DecodingKey::from_rsa_components(&p.n, &p.e)
                    .map_err(|_| "RSA JWK n/e are not base64url")?,
                RSA_ALGS.to_vec(),
                "RSA JWK",
            )
        }
        AlgorithmParameters::EllipticCurve(p) => {
            let alg = match p.curve {
                EllipticCurve::P256 => Algorithm::ES256,
                EllipticCurve::P384 => Algorithm::ES384,
                _ => return Err("EC JWK curve must be P-256 or P-384"),
            };
            let key = DecodingKey::from_ec_components(&p.x, &p.y)
                .map_err(|_| "EC JWK x/y are not base64url")?;
            let want = if alg == Algorithm::ES256 { 65 } else { 97 };
            if key.try_get_as_bytes().map(<[u8]>::len).unwrap_or(0) != want {
                return Err("EC JWK x/y have the wrong length for the curve");
            }
            (key, vec![alg], "EC JWK")
        }
        AlgorithmParameters::OctetKeyPair(p) => {
            if p.curve != EllipticCurve::Ed25519 {
                return Err("OKP JWK curve must be Ed25519");
            }
            let key =
                DecodingKey::from_ed_components(&p.x).map_err(|_| "OKP JWK x is not base64url")?;
            if key.try_get_as_bytes().map(<[u8]>::len).unwrap_or(0) != 32 {
                return Err("OKP JWK x must be 32 bytes");
            }
            (key, vec![Algorithm::EdDSA], "Ed25519 JWK")
        }
        AlgorithmParameters::OctetKey(_) => {
            let key = DecodingKey::from_jwk(jwk).map_err(|_| "oct JWK k is not base64url")?;
            let len = key.try_get_as_bytes().map(<[u8]>::len).unwrap_or(0);
            let algs = hmac_algs(len);
            if algs.is_empty() {
                return Err("oct JWK secret is shorter than 32 bytes");
            }
            (key, algs, "oct JWK")
        }
        _ => return Ok(None),
    };
    let family_set = AlgSet::of(family);
    let algorithms = match pinned {
        Some(alg) if family_set.contains(alg) => AlgSet::of([alg]),
        Some(_) => return Err("JWK alg does not match its key type"),
        None => family_set,
    };
    Ok(Some(VerifyingKey {
        kid: jwk.common.key_id.clone(),
        key,
        algorithms,
        label,
        prepared: Vec::new(),
    }))
}
