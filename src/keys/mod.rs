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

use std::fmt;
use std::sync::Arc;

use jsonwebtoken::Algorithm;

use crate::error::{AuthError, ConfigError};

mod algs;
mod jwk;
mod material;
mod set;
mod status;

pub(crate) use algs::AlgSet;
pub(crate) use jwk::client_jwk;
#[cfg(feature = "diagnose")]
pub(crate) use jwk::thumbprint as jwk_thumbprint;
pub(crate) use set::{KeySet, Lookup};
pub(crate) use status::KeyInfo;
pub use status::KeyStatus;

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
    EcPoint(Vec<u8>),
    EdPem(Vec<u8>),
    EdRaw(Vec<u8>),
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
            Material::EcPoint(_) => "raw EC point key",
            Material::EdPem(_) => "Ed25519 PEM key",
            Material::EdRaw(_) => "raw Ed25519 key",
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

    /// An EC public key as its uncompressed SEC1 point (`0x04 || x || y`: 65 bytes for P-256,
    /// 97 for P-384), as in an X.509 `subjectPublicKey` bit string. It is checked at `build()`.
    ///
    /// ```
    /// use tower_token_auth::Keys;
    ///
    /// let point: &[u8] = &[0x04; 65]; // your key's bytes
    /// let keys = Keys::ec_point(point).kid("p256-1");
    /// # assert!(!keys.is_empty());
    /// ```
    pub fn ec_point(point: impl AsRef<[u8]>) -> Self {
        Keys::one(Material::EcPoint(point.as_ref().to_vec()))
    }

    /// An Ed25519 public key in PEM (`BEGIN PUBLIC KEY`), for EdDSA.
    pub fn ed_pem(pem: impl AsRef<[u8]>) -> Self {
        Keys::one(Material::EdPem(pem.as_ref().to_vec()))
    }

    /// An Ed25519 public key as its raw 32 bytes (RFC 8032), for EdDSA. The length is
    /// checked at `build()`.
    ///
    /// ```
    /// use tower_token_auth::Keys;
    ///
    /// let raw = [0u8; 32]; // your key's bytes
    /// let keys = Keys::ed_raw(raw).kid("ed-1");
    /// # assert!(!keys.is_empty());
    /// ```
    pub fn ed_raw(raw: impl AsRef<[u8]>) -> Self {
        Keys::one(Material::EdRaw(raw.as_ref().to_vec()))
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

/// Why [`KeySource::resolve`] could not answer now.
pub(crate) enum Unresolved {
    /// Remote keys are being fetched: wait, then resolve again.
    #[cfg_attr(not(feature = "remote"), allow(dead_code))]
    Wait(Pending),
    /// No usable keys (`keys_unavailable`).
    #[cfg_attr(not(feature = "remote"), allow(dead_code))]
    Unavailable(AuthError),
}

/// A remote key fetch a validation must wait for. The fetch runs on its own (see
/// [`Flight`](remote::Flight)): dropping this never cancels it.
#[cfg(feature = "remote")]
pub(crate) struct Pending(pub(crate) remote::Flight);

/// Without remote keys, validation never waits.
#[cfg(not(feature = "remote"))]
pub(crate) enum Pending {}

impl Pending {
    /// Waits for the fetch.
    pub(crate) async fn run(self) {
        #[cfg(feature = "remote")]
        self.0.wait().await;
    }
}

/// The algorithm a header's `alg` names, if supported. `Ed25519` is the fully-specified name
/// of EdDSA over Ed25519 (RFC 9864).
pub(crate) fn algorithm(alg: &str) -> Option<Algorithm> {
    match alg {
        "Ed25519" => Some(Algorithm::EdDSA),
        other => other.parse().ok(),
    }
}

/// Where a trust's keys come from (cheap to clone: shared).
#[derive(Clone, Debug)]
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
    // Read by `diagnose` only.
    #[cfg_attr(not(feature = "diagnose"), allow(dead_code))]
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

    /// Runs `verify` with the key for a token's `kid` and `alg` (or why there is none) while
    /// the key set is held, with the set's version. Static keys always answer now; remote keys
    /// may first need a fetch: `Unresolved::Wait` (only with `may_fetch`) is the shared fetch
    /// to wait for before resolving again, `Unresolved::Unavailable` the `keys_unavailable`
    /// error. `allowed` is the configuration's algorithm allow-list.
    pub(crate) fn resolve<R>(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
        allowed: AlgSet,
        may_fetch: bool,
        verify: impl FnOnce(Lookup<'_>, u64) -> R,
    ) -> Result<R, Unresolved> {
        match self {
            KeySource::Static(set) => {
                let _ = (allowed, may_fetch);
                Ok(verify(set.lookup(kid, alg), 0))
            }
            #[cfg(feature = "remote")]
            KeySource::Remote(r) => r.resolve(kid, alg, allowed, may_fetch, verify),
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
