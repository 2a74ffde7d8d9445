//! [`TokenIssuerBuilder`]: the signing key, the issuer's identity and lifetimes, checked once
//! at `build()`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::Algorithm;

use crate::clock::{Clock, SystemClock};
use crate::revocation::RevocationStore;
use crate::{AuthConfig, ConfigError};

use super::mint::{install_default_provider, KeyInput, Signer};
use super::token_issuer::IssuerInner;
use super::{
    BuildError, MemoryRefreshStore, RefreshStore, TokenIssuer, DEFAULT_ACCESS_TTL,
    DEFAULT_REFRESH_TTL, REFRESH_TOKEN_TYPE,
};

/// Builds a [`TokenIssuer`]; see [`TokenIssuer::builder`].
///
/// Required: a signing key, [`issuer`](TokenIssuerBuilder::issuer) and
/// [`audience`](TokenIssuerBuilder::audience). Defaults: access tokens 10 minutes, refresh
/// tokens 14 days (sliding), no maximum session length, `client_id` = the issuer, the system
/// clock, a [`MemoryRefreshStore`], no revocation store.
#[must_use]
pub struct TokenIssuerBuilder {
    key: Option<KeyInput>,
    algorithm: Option<Algorithm>,
    kid: Option<String>,
    issuer: Option<String>,
    audiences: Vec<String>,
    client_id: Option<String>,
    access_ttl: Duration,
    refresh_ttl: Duration,
    max_session: Option<Duration>,
    clock: Arc<dyn Clock>,
    store: Option<Arc<dyn RefreshStore>>,
    revocation: Option<Arc<dyn RevocationStore>>,
}

impl fmt::Debug for TokenIssuerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenIssuerBuilder")
            .field("algorithm", &self.algorithm)
            .field("kid", &self.kid)
            .field("issuer", &self.issuer)
            .field("audiences", &self.audiences)
            .finish_non_exhaustive()
    }
}

impl Default for TokenIssuerBuilder {
    fn default() -> Self {
        TokenIssuerBuilder {
            key: None,
            algorithm: None,
            kid: None,
            issuer: None,
            audiences: Vec::new(),
            client_id: None,
            access_ttl: DEFAULT_ACCESS_TTL,
            refresh_ttl: DEFAULT_REFRESH_TTL,
            max_session: None,
            clock: Arc::new(SystemClock),
            store: None,
            revocation: None,
        }
    }
}

impl TokenIssuerBuilder {
    /// Signs with an HMAC secret (HS256 by default; HS384 / HS512 with
    /// [`algorithm`](TokenIssuerBuilder::algorithm) and a secret of at least 48 / 64 bytes).
    /// Use at least 32 random bytes; every verifier needs the same secret.
    pub fn hmac(mut self, secret: impl AsRef<[u8]>) -> Self {
        self.key = Some(KeyInput::Hmac(secret.as_ref().to_vec()));
        self
    }

    /// Signs with a random HMAC secret made at `build()` (HS256 by default; as long as the
    /// hash output of the chosen algorithm). Tokens do not survive a restart and other
    /// instances cannot verify them: for demos, tests and single instances whose users may
    /// log in again after a deploy.
    pub fn random_hmac(mut self) -> Self {
        self.key = Some(KeyInput::RandomHmac);
        self
    }

    /// Signs with an RSA private key in PEM (`BEGIN PRIVATE KEY` or `BEGIN RSA PRIVATE KEY`,
    /// at least 2048 bits): RS256 by default, or RS384/RS512/PS256/PS384/PS512.
    pub fn rsa_pem(mut self, pem: impl AsRef<[u8]>) -> Self {
        self.key = Some(KeyInput::RsaPem(pem.as_ref().to_vec()));
        self
    }

    /// Signs with an EC private key in PKCS#8 PEM (`BEGIN PRIVATE KEY`): ES256 for P-256,
    /// ES384 for P-384 (found from the key).
    pub fn ec_pem(mut self, pem: impl AsRef<[u8]>) -> Self {
        self.key = Some(KeyInput::EcPem(pem.as_ref().to_vec()));
        self
    }

    /// Signs with an Ed25519 private key in PKCS#8 PEM (`BEGIN PRIVATE KEY`): EdDSA.
    pub fn ed_pem(mut self, pem: impl AsRef<[u8]>) -> Self {
        self.key = Some(KeyInput::EdPem(pem.as_ref().to_vec()));
        self
    }

    /// The signing algorithm, when the key allows several (HMAC, RSA).
    pub fn algorithm(mut self, alg: Algorithm) -> Self {
        self.algorithm = Some(alg);
        self
    }

    /// The `kid` put in every token header and on the verification key.
    pub fn kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = Some(kid.into());
        self
    }

    /// The `iss` of every token (required).
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// An audience of the access tokens (required; call again to add more: `aud` becomes an
    /// array).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// The default `client_id` of access tokens (default: the issuer). A
    /// [`Login`](super::Login) can set its own.
    pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = Some(client_id.into());
        self
    }

    /// Access-token lifetime (default 10 minutes). Keep it short: an access token cannot be
    /// recalled without a revocation store.
    pub fn access_ttl(mut self, ttl: Duration) -> Self {
        self.access_ttl = ttl;
        self
    }

    /// Refresh-token lifetime (default 14 days). Sliding: each rotation issues a refresh
    /// token valid for this long again, so a session used at least this often never ends
    /// unless [`max_session`](TokenIssuerBuilder::max_session) caps it.
    pub fn refresh_ttl(mut self, ttl: Duration) -> Self {
        self.refresh_ttl = ttl;
        self
    }

    /// The longest a session may last from login (`auth_time`), whatever the refreshes: no
    /// token of the family expires later (default: no cap).
    pub fn max_session(mut self, max: Duration) -> Self {
        self.max_session = Some(max);
        self
    }

    /// The clock for `iat`, `exp` and the store (default: the system clock). The
    /// [`auth_config`](TokenIssuer::auth_config) verifies with it too.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Where refresh families are kept (default: a [`MemoryRefreshStore`]).
    pub fn refresh_store(mut self, store: impl RefreshStore) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// The revocation store the layer consults (e.g. an `Arc<MemoryRevocationStore>`): the
    /// access tokens of a revoked family are revoked in it, refresh tokens are checked
    /// against it, and [`auth_config`](TokenIssuer::auth_config) attaches it.
    pub fn revocation(mut self, store: impl RevocationStore) -> Self {
        self.revocation = Some(Arc::new(store));
        self
    }

    /// Checks the settings, parses the key and builds the issuer.
    ///
    /// # Errors
    ///
    /// A [`BuildError`] naming the fix: no key, a key that cannot be parsed or sign, an
    /// algorithm of another key type, a zero lifetime, no issuer or audience, a short HMAC
    /// secret.
    pub fn build(self) -> Result<TokenIssuer, BuildError> {
        install_default_provider();
        let key = self.key.clone().ok_or(BuildError::NoKey)?;
        let signer = Signer::new(key, self.algorithm, self.kid.clone())?;
        let issuer = self.issuer.clone().ok_or(ConfigError::NoIssuer)?;
        if self.audiences.is_empty() {
            return Err(ConfigError::NoAudience.into());
        }
        let access_ttl = secs(self.access_ttl);
        let refresh_ttl = secs(self.refresh_ttl);
        let max_session = self.max_session.map(secs);
        if access_ttl < 1 || refresh_ttl <= access_ttl || max_session.is_some_and(|m| m < 1) {
            return Err(BuildError::InvalidTtl);
        }
        signer.check()?;

        let clock = SharedClock(Arc::clone(&self.clock));
        let access_base = |revocation: bool| {
            let mut b = AuthConfig::builder()
                .keys(signer.keys.clone())
                .issuer(issuer.clone())
                .access_token_profile()
                .clock(clock.clone());
            for aud in &self.audiences {
                b = b.audience(aud.clone());
            }
            match (&self.revocation, revocation) {
                (Some(store), true) => b.revocation(Arc::clone(store)),
                _ => b,
            }
        };
        let refresh_base = |revocation: bool| {
            let b = AuthConfig::builder()
                .keys(signer.keys.clone())
                .issuer(issuer.clone())
                .audience(issuer.clone())
                .require_type(REFRESH_TOKEN_TYPE)
                .require_claim("sub")
                .require_claim("jti")
                .require_claim("fam")
                .clock(clock.clone());
            match (&self.revocation, revocation) {
                (Some(store), true) => b.revocation(Arc::clone(store)),
                _ => b,
            }
        };
        let refresh_verifier = refresh_base(true).build()?;
        let refresh_lenient = refresh_base(false).build()?;
        let access_lenient = access_base(false).build()?;

        Ok(TokenIssuer {
            inner: Arc::new(IssuerInner {
                client_id: self.client_id.unwrap_or_else(|| issuer.clone()),
                issuer,
                audiences: self.audiences,
                signer,
                access_ttl,
                refresh_ttl,
                max_session,
                clock: self.clock,
                store: self
                    .store
                    .unwrap_or_else(|| Arc::new(MemoryRefreshStore::new())),
                revocation: self.revocation,
                refresh_verifier,
                refresh_lenient,
                access_lenient,
            }),
        })
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 4)
}

/// The issuer's clock, shared with the verification configurations.
#[derive(Clone)]
pub(super) struct SharedClock(pub(super) Arc<dyn Clock>);

impl Clock for SharedClock {
    fn now(&self) -> i64 {
        self.0.now()
    }
}
