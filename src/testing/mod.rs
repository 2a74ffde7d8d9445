//! Helpers for tests (feature `test-util`): keys and tokens in one line, and a mock identity
//! provider.
//!
//! - [`TestKey`]: a signing key (HMAC, RSA, EC, Ed25519) with its verification [`Keys`], its
//!   public JWK, and [`TestKey::token`] to mint tokens with chosen claims and headers.
//! - [`MockIssuer`]: an OpenID Connect issuer on `127.0.0.1` (discovery and JWKS on an
//!   ephemeral port, served on the current tokio runtime) that publishes [`TestKey`]s, mints
//!   tokens with its `iss`, rotates keys and counts fetches; with the `remote` feature,
//!   `MockIssuer::keys` is the matching verifier configuration.
//!
//! The RSA, EC and Ed25519 keys here are **fixed test keys whose private halves are public**
//! (they ship in this crate's source): never accept them outside tests. HMAC test keys are
//! random per [`TestKey::hs256`] call.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use tower_token_auth::testing::TestKey;
//! use tower_token_auth::{AuthConfig, StandardClaims};
//!
//! let key = TestKey::es256().with_kid("test-1");
//! let cfg = AuthConfig::builder()
//!     .keys(key.keys())
//!     .issuer("https://issuer.test")
//!     .audience("api")
//!     .build()
//!     .unwrap();
//! let token = key.token().issuer("https://issuer.test").audience("api").subject("u1").sign();
//! let claims: StandardClaims = cfg.validate(&token).await.unwrap();
//! assert_eq!(claims.sub.as_deref(), Some("u1"));
//! # }
//! ```
//!
//! The same test against a mock identity provider (remote keys, feature `remote`):
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use tower_token_auth::testing::MockIssuer;
//! use tower_token_auth::{AuthConfig, StandardClaims};
//!
//! let idp = MockIssuer::start().await;
//! let cfg = AuthConfig::builder().keys(idp.keys()).audience("api").build().unwrap();
//! let token = idp.token().audience("api").subject("u1").sign();
//! let claims: StandardClaims = cfg.validate(&token).await.unwrap();
//! assert_eq!(claims.iss.as_deref(), Some(idp.issuer().as_str()));
//! # }
//! ```

mod mock;

pub use mock::MockIssuer;

use std::fmt;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Map, Value};

use crate::clock::{Clock, SystemClock};
use crate::keys::Keys;

const RSA_PRIVATE: &str = include_str!("rsa_private.pem");
const RSA_PUBLIC: &str = include_str!("rsa_public.pem");
const P256_PRIVATE: &str = include_str!("p256_private.pem");
const P256_PUBLIC: &str = include_str!("p256_public.pem");
const P384_PRIVATE: &str = include_str!("p384_private.pem");
const P384_PUBLIC: &str = include_str!("p384_public.pem");
const ED25519_PRIVATE: &str = include_str!("ed25519_private.pem");
const ED25519_PUBLIC: &str = include_str!("ed25519_public.pem");

/// A signing key for tests, with the matching verification [`Keys`].
#[derive(Clone)]
pub struct TestKey {
    alg: Algorithm,
    encoding: EncodingKey,
    public: PublicPart,
    kid: Option<String>,
}

#[derive(Clone)]
enum PublicPart {
    Secret(Vec<u8>),
    RsaPem,
    EcPem(&'static str),
    EdPem,
}

impl fmt::Debug for TestKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestKey")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

fn pem_key(alg: Algorithm, pem: &str) -> EncodingKey {
    let key = match alg {
        Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(pem.as_bytes()),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(pem.as_bytes()),
        _ => EncodingKey::from_rsa_pem(pem.as_bytes()),
    };
    // The PEMs are fixed, valid files shipped with the crate.
    key.unwrap_or_else(|e| panic!("bundled test key for {alg:?} does not parse: {e}"))
}

impl TestKey {
    /// A random 32-byte HMAC secret, for HS256.
    pub fn hs256() -> Self {
        let mut secret = vec![0u8; 32];
        fill_random(&mut secret);
        TestKey::hmac(Algorithm::HS256, secret)
    }

    /// An HMAC key with the given secret and algorithm (HS256, HS384 or HS512).
    pub fn hmac(alg: Algorithm, secret: impl Into<Vec<u8>>) -> Self {
        let secret = secret.into();
        TestKey {
            alg,
            encoding: EncodingKey::from_secret(&secret),
            public: PublicPart::Secret(secret),
            kid: None,
        }
    }

    /// The bundled RSA 2048 test key, signing with `alg` (RS256…RS512, PS256…PS512).
    pub fn rsa(alg: Algorithm) -> Self {
        TestKey {
            alg,
            encoding: pem_key(alg, RSA_PRIVATE),
            public: PublicPart::RsaPem,
            kid: None,
        }
    }

    /// The bundled RSA test key, RS256.
    pub fn rs256() -> Self {
        TestKey::rsa(Algorithm::RS256)
    }

    /// The bundled P-256 test key, ES256.
    pub fn es256() -> Self {
        TestKey {
            alg: Algorithm::ES256,
            encoding: pem_key(Algorithm::ES256, P256_PRIVATE),
            public: PublicPart::EcPem(P256_PUBLIC),
            kid: None,
        }
    }

    /// The bundled P-384 test key, ES384.
    pub fn es384() -> Self {
        TestKey {
            alg: Algorithm::ES384,
            encoding: pem_key(Algorithm::ES384, P384_PRIVATE),
            public: PublicPart::EcPem(P384_PUBLIC),
            kid: None,
        }
    }

    /// The bundled Ed25519 test key, EdDSA.
    pub fn ed25519() -> Self {
        TestKey {
            alg: Algorithm::EdDSA,
            encoding: pem_key(Algorithm::EdDSA, ED25519_PRIVATE),
            public: PublicPart::EdPem,
            kid: None,
        }
    }

    /// Sets the `kid` put in tokens and on the verification key.
    #[must_use]
    pub fn with_kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = Some(kid.into());
        self
    }

    /// The algorithm tokens are signed with.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// The `kid`, if any.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The verification side, for [`AuthConfigBuilder::keys`](crate::AuthConfigBuilder::keys).
    pub fn keys(&self) -> Keys {
        let keys = match &self.public {
            PublicPart::Secret(s) => Keys::hmac(s),
            PublicPart::RsaPem => Keys::rsa_pem(RSA_PUBLIC),
            PublicPart::EcPem(pem) => Keys::ec_pem(pem),
            PublicPart::EdPem => Keys::ed_pem(ED25519_PUBLIC),
        };
        match &self.kid {
            Some(kid) => keys.kid(kid.clone()),
            None => keys,
        }
    }

    /// The public key as PEM (`None` for HMAC keys).
    pub fn public_pem(&self) -> Option<&'static str> {
        match self.public {
            PublicPart::Secret(_) => None,
            PublicPart::RsaPem => Some(RSA_PUBLIC),
            PublicPart::EcPem(pem) => Some(pem),
            PublicPart::EdPem => Some(ED25519_PUBLIC),
        }
    }

    /// The public key as a JWK (with `kid`, `alg` and `use: sig`), for mock JWKS servers.
    ///
    /// For HMAC keys this is an `oct` JWK holding the secret (for local `Keys::jwk` /
    /// `Keys::jwks_json`: a remote key set never yields a symmetric key, so the layer skips it
    /// when a mock server publishes it).
    pub fn jwk(&self) -> Value {
        let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
        let mut jwk = Map::new();
        match &self.public {
            PublicPart::Secret(secret) => {
                jwk.insert("kty".into(), "oct".into());
                jwk.insert("k".into(), b64(secret).into());
            }
            PublicPart::RsaPem => {
                let der = jsonwebtoken::DecodingKey::from_rsa_pem(RSA_PUBLIC.as_bytes())
                    .ok()
                    .and_then(|k| k.try_get_as_bytes().ok().map(<[u8]>::to_vec))
                    .unwrap_or_default();
                let (n, e) = (crate::crypto::provider()
                    .key_utils
                    .rsa_pub_components_from_public_key)(&der)
                .unwrap_or_else(|err| panic!("bundled RSA test key: {err}"));
                jwk.insert("kty".into(), "RSA".into());
                jwk.insert("n".into(), b64(&n).into());
                jwk.insert("e".into(), b64(&e).into());
            }
            PublicPart::EcPem(pem) => {
                let point = jsonwebtoken::DecodingKey::from_ec_pem(pem.as_bytes())
                    .ok()
                    .and_then(|k| k.try_get_as_bytes().ok().map(<[u8]>::to_vec))
                    .unwrap_or_default();
                let half = (point.len().saturating_sub(1)) / 2;
                let crv = if half == 32 { "P-256" } else { "P-384" };
                jwk.insert("kty".into(), "EC".into());
                jwk.insert("crv".into(), crv.into());
                jwk.insert("x".into(), b64(&point[1..1 + half]).into());
                jwk.insert("y".into(), b64(&point[1 + half..]).into());
            }
            PublicPart::EdPem => {
                let raw = jsonwebtoken::DecodingKey::from_ed_pem(ED25519_PUBLIC.as_bytes())
                    .ok()
                    .and_then(|k| k.try_get_as_bytes().ok().map(<[u8]>::to_vec))
                    .unwrap_or_default();
                jwk.insert("kty".into(), "OKP".into());
                jwk.insert("crv".into(), "Ed25519".into());
                jwk.insert("x".into(), b64(&raw).into());
            }
        }
        jwk.insert("alg".into(), format!("{:?}", self.alg).into());
        jwk.insert("use".into(), "sig".into());
        if let Some(kid) = &self.kid {
            jwk.insert("kid".into(), kid.clone().into());
        }
        Value::Object(jwk)
    }

    /// A JWK set (`{"keys": [...]}`) of these keys, as JSON text.
    pub fn jwks(keys: &[&TestKey]) -> String {
        serde_json::json!({ "keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>() }).to_string()
    }

    /// Starts a token: header `alg`, `typ: JWT` and the key's `kid`; claims `iat`, `nbf`
    /// (now) and `exp` (now + 5 minutes), by the system clock.
    pub fn token(&self) -> TokenBuilder<'_> {
        self.token_at(SystemClock.now())
    }

    /// Like [`token`](TestKey::token), with "now" at `unix_seconds`.
    pub fn token_at(&self, unix_seconds: i64) -> TokenBuilder<'_> {
        let mut header = Map::new();
        header.insert("alg".into(), format!("{:?}", self.alg).into());
        header.insert("typ".into(), "JWT".into());
        if let Some(kid) = &self.kid {
            header.insert("kid".into(), kid.clone().into());
        }
        let mut claims = Map::new();
        claims.insert("iat".into(), unix_seconds.into());
        claims.insert("nbf".into(), unix_seconds.into());
        claims.insert("exp".into(), (unix_seconds + 300).into());
        TokenBuilder {
            key: self,
            now: unix_seconds,
            header,
            claims,
        }
    }
}

/// Builds and signs a test token; see [`TestKey::token`].
#[must_use]
pub struct TokenBuilder<'k> {
    key: &'k TestKey,
    now: i64,
    header: Map<String, Value>,
    claims: Map<String, Value>,
}

impl fmt::Debug for TokenBuilder<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenBuilder")
            .field("header", &self.header)
            .field("claims", &self.claims)
            .finish()
    }
}

impl TokenBuilder<'_> {
    /// Sets `iss`.
    pub fn issuer(self, iss: &str) -> Self {
        self.claim("iss", iss)
    }

    /// Sets `aud` (a string).
    pub fn audience(self, aud: &str) -> Self {
        self.claim("aud", aud)
    }

    /// Sets `sub`.
    pub fn subject(self, sub: &str) -> Self {
        self.claim("sub", sub)
    }

    /// Sets `scope`.
    pub fn scope(self, scope: &str) -> Self {
        self.claim("scope", scope)
    }

    /// Sets `exp` to now + `ttl`.
    pub fn expires_in(self, ttl: Duration) -> Self {
        let exp = self.now + i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2);
        self.claim("exp", exp)
    }

    /// Sets `exp` to `ago` before now (an expired token); `iat` and `nbf` move to 5 minutes
    /// before that, as for a token that was valid once.
    pub fn expired_for(self, ago: Duration) -> Self {
        let exp = self.now - i64::try_from(ago.as_secs()).unwrap_or(i64::MAX / 2);
        self.claim("exp", exp)
            .claim("iat", exp - 300)
            .claim("nbf", exp - 300)
    }

    /// Sets any claim.
    pub fn claim(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.claims.insert(name.to_owned(), value.into());
        self
    }

    /// Removes a claim (e.g. `exp`, to test that it is required).
    pub fn without(mut self, name: &str) -> Self {
        self.claims.remove(name);
        self
    }

    /// Sets a header parameter (e.g. `typ`, or `alg` to forge a mismatch).
    pub fn header(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.header.insert(name.to_owned(), value.into());
        self
    }

    /// Removes a header parameter.
    pub fn without_header(mut self, name: &str) -> Self {
        self.header.remove(name);
        self
    }

    /// Signs with the key's algorithm and returns the compact token.
    ///
    /// # Panics
    ///
    /// If the key cannot sign with its algorithm (a test set-up mistake).
    pub fn sign(self) -> String {
        crate::jws::encode(self.key.alg, &self.key.encoding, &self.header, &self.claims)
            .unwrap_or_else(|e| panic!("test key cannot sign {:?}: {e}", self.key.alg))
    }
}

fn fill_random(buf: &mut [u8]) {
    if getrandom::fill(buf).is_err() {
        // No OS randomness (should not happen on supported platforms): fall back to a
        // time-derived value; this is a test helper, never a production key.
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        for (i, b) in buf.iter_mut().enumerate() {
            *b = (seed >> ((i % 16) * 8)) as u8 ^ (i as u8);
        }
    }
}
