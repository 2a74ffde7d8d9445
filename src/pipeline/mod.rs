//! The one way a token is checked, whoever asks: the layer (HTTP and gRPC),
//! [`AuthConfig::validate`] and [`diagnose`](crate::diagnose()).
//!
//! ```text
//! token → cache → keys → signature → claims → user checks → revocation → binding → verified
//!         cache.rs  └──────────── validate.rs ───────────┘   revocation/  binding/
//!    └─ not a JWS → introspection → claims → user checks ─┘
//!                   introspection/   validate.rs
//! ```
//!
//! Each step lives in the module named under it and is called from here only. [`Pipeline::start`]
//! runs every step that needs no await; what must wait (remote keys being fetched, a revocation
//! store that must be asked) comes back as [`Rest`], one future for every entrance. A cache hit
//! gives the verdict a full validation would give at that instant (see `cache.rs`), and
//! `tests/suite/consistency.rs` checks it.
//!
//! `view` (feature `diagnose`) is what `diagnose` may see of a configuration and of this pipeline.

use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::binding::{Presented, ReplayAsk, Scheme};
use crate::cache::{CacheFacts, Entry, Hit, TokenCache};
use crate::config::{AuthConfig, ConfigInner};
use crate::error::{AuthError, Reason};
use crate::keys::Pending;
use crate::revocation::Local;
use crate::scope::Grants;
#[cfg(feature = "remote")]
use crate::validate::check_introspected;
use crate::validate::{into_claims, validate_step, Accepted, ClaimsMap, Step};

#[cfg(feature = "diagnose")]
pub(crate) mod view;

/// The checks of one configuration, with the layer's cache when there is one.
pub(crate) struct Pipeline<'a, T> {
    cfg: &'a ConfigInner,
    cache: Option<&'a TokenCache<T>>,
}

/// A token that passed every step.
pub(crate) enum Verified<T> {
    /// From the verified-token cache: claims already deserialized, grants computed.
    Cached(Arc<Entry<T>>),
    /// Verified now: the claims as JSON, with the issuer and key set that verified them.
    Fresh(Accepted),
}

/// Where a check stands after the steps that need no await.
pub(crate) enum Progress<T> {
    Done(Result<Verified<T>, AuthError>),
    /// The rest must wait: run it with [`Rest::run`].
    Wait(Rest<T>),
}

/// The steps of a check that must wait, owned so that the future can outlive the request's
/// borrow of the token. Dropping it cancels nothing shared: a key fetch runs on its own.
pub(crate) struct Rest<T> {
    token: String,
    waiting: Waiting<T>,
    presented: Presented,
}

enum Waiting<T> {
    /// Remote keys are being fetched; validate again once they are in.
    Keys(Pending),
    /// Verified; the revocation store must be asked.
    Revocation(Accepted),
    /// An opaque token is being introspected (by the issuer of the trust at the index).
    #[cfg(feature = "remote")]
    Introspection(usize, crate::introspection::Flight),
    /// Verified and bound; the shared DPoP replay store must be asked about the proof.
    Replay(Verified<T>, ReplayAsk),
}

impl<'a, T> Pipeline<'a, T> {
    pub(crate) fn new(cfg: &'a ConfigInner, cache: Option<&'a TokenCache<T>>) -> Self {
        Pipeline { cfg, cache }
    }

    /// Runs every step that needs no await, for a token presented as `presented` says.
    pub(crate) fn start(&self, token: &str, presented: Presented) -> Progress<T> {
        let cfg = self.cfg;
        if let Some(cache) = self.cache {
            match cached(cache, cfg, token) {
                Some(Ok(entry)) => {
                    return match binding_step(cfg, token, entry.cnf.as_deref(), &presented) {
                        Ok(None) => Progress::Done(Ok(Verified::Cached(entry))),
                        Ok(Some(ask)) => Progress::Wait(Rest::new(
                            token,
                            Waiting::Replay(Verified::Cached(entry), ask),
                            presented,
                        )),
                        Err(e) => Progress::Done(Err(e)),
                    };
                }
                Some(Err(e)) => return Progress::Done(Err(e.with_fingerprint(token))),
                None => {}
            }
        }
        #[cfg(feature = "remote")]
        let presented = match introspect(cfg, token, presented) {
            Ok(progress) => return progress,
            Err(presented) => presented,
        };
        let accepted = match validate_step(cfg, token, true) {
            Step::Done(Ok(accepted)) => accepted,
            Step::Done(Err(e)) => return Progress::Done(Err(e.with_fingerprint(token))),
            Step::Wait(pending) => {
                return Progress::Wait(Rest::new(token, Waiting::Keys(pending), presented))
            }
        };
        revocation_step(cfg, token, accepted, presented)
    }

    /// What handlers read: the claims as `T` and the grants. A fresh token is deserialized
    /// once and, with a cache, remembered under `token`.
    pub(crate) fn admit(
        &self,
        token: &str,
        verified: Verified<T>,
        roles_claim: &Arc<[String]>,
    ) -> Result<(Arc<T>, Grants), AuthError>
    where
        T: DeserializeOwned,
    {
        let accepted = match verified {
            Verified::Cached(entry) => {
                return Ok((Arc::clone(&entry.claims), entry.grants.clone()))
            }
            Verified::Fresh(accepted) => accepted,
        };
        let Accepted {
            payload,
            facts,
            checked,
            trust,
            version,
            introspected,
        } = accepted;
        let claims = Arc::new(into_claims::<T>(&payload)?);
        let grants = Grants::of_claims(payload.into_bytes(), Arc::clone(roles_claim));
        // An introspected token's answer is cached by the introspection cache, within its
        // bounds; this cache would keep it past them.
        if let Some(cache) = self.cache.filter(|_| !introspected) {
            let facts = CacheFacts {
                exp: facts.exp,
                nbf: facts.nbf,
                trust,
                version,
                jti: facts.jti,
                iss: facts.iss,
                sub: facts.sub,
                iat: facts.iat,
                checked,
                cnf: facts.cnf,
            };
            cache.insert(token, Arc::clone(&claims), grants.clone(), facts);
        }
        Ok((claims, grants))
    }
}

impl<T> Rest<T> {
    fn new(token: &str, waiting: Waiting<T>, presented: Presented) -> Self {
        Rest {
            token: token.to_owned(),
            waiting,
            presented,
        }
    }

    /// The token this check is about.
    pub(crate) fn token(&self) -> &str {
        &self.token
    }

    /// Waits for what was missing and runs the remaining steps.
    pub(crate) async fn run(self, cfg: &ConfigInner) -> Result<Verified<T>, AuthError> {
        let token = &self.token;
        let accepted = match self.waiting {
            Waiting::Replay(verified, ask) => {
                ask.run().await.map_err(|e| e.with_fingerprint(token))?;
                return Ok(verified);
            }
            Waiting::Keys(pending) => {
                pending.run().await;
                match validate_step(cfg, token, false) {
                    Step::Done(Ok(accepted)) => accepted,
                    Step::Done(Err(e)) => return Err(e.with_fingerprint(token)),
                    Step::Wait(_) => return Err(AuthError::new(Reason::KeysUnavailable)),
                }
            }
            Waiting::Revocation(accepted) => accepted,
            #[cfg(feature = "remote")]
            Waiting::Introspection(index, flight) => {
                check_introspected(cfg, index, flight.wait().await)
                    .map_err(|e| e.with_fingerprint(token))?
            }
        };
        if let Some(rev) = &cfg.revocation {
            let asked = match rev.local(&accepted.facts.token_ref()) {
                Local::Pass => Ok(()),
                Local::Reject(e) => Err(e),
                Local::Ask => rev.ask(accepted.facts.token_ref()).await,
            };
            asked.map_err(|e| e.with_fingerprint(token))?;
        }
        if let Some(ask) = binding_step(cfg, token, accepted.facts.cnf.as_deref(), &self.presented)?
        {
            ask.run().await.map_err(|e| e.with_fingerprint(token))?;
        }
        Ok(Verified::Fresh(accepted))
    }
}

/// The binding step (sender-constrained tokens): a bound token only with its proof.
fn binding_step(
    cfg: &ConfigInner,
    token: &str,
    cnf: Option<&crate::binding::Cnf>,
    presented: &Presented,
) -> Result<Option<ReplayAsk>, AuthError> {
    // The common case, checked first: an unbound token presented as bearer.
    if cnf.is_none() && presented.scheme == Scheme::Bearer {
        return Ok(None);
    }
    let now = cfg.clock.now();
    crate::binding::check(cfg.dpop.as_ref(), token, cnf, presented, now, cfg.leeway)
        .map_err(|e| e.with_fingerprint(token))
}

/// The revocation step of a verified token (the local answer, or the store to ask), then
/// the binding step.
fn revocation_step<T>(
    cfg: &ConfigInner,
    token: &str,
    accepted: Accepted,
    presented: Presented,
) -> Progress<T> {
    match cfg
        .revocation
        .as_ref()
        .map(|r| r.local(&accepted.facts.token_ref()))
    {
        None | Some(Local::Pass) => {
            match binding_step(cfg, token, accepted.facts.cnf.as_deref(), &presented) {
                Ok(None) => Progress::Done(Ok(Verified::Fresh(accepted))),
                Ok(Some(ask)) => Progress::Wait(Rest::new(
                    token,
                    Waiting::Replay(Verified::Fresh(accepted), ask),
                    presented,
                )),
                Err(e) => Progress::Done(Err(e)),
            }
        }
        Some(Local::Reject(e)) => Progress::Done(Err(e.with_fingerprint(token))),
        Some(Local::Ask) => {
            Progress::Wait(Rest::new(token, Waiting::Revocation(accepted), presented))
        }
    }
}

/// The introspection step, for a token that goes to introspection (the presentation given
/// back otherwise): the cached answer checked now, or the call to wait for.
#[cfg(feature = "remote")]
fn introspect<T>(
    cfg: &ConfigInner,
    token: &str,
    presented: Presented,
) -> Result<Progress<T>, Presented> {
    use crate::introspection::Lookup;
    let Some((index, introspector)) = cfg.introspection.as_ref() else {
        return Err(presented);
    };
    // The length cap first, as for every token (validation reports it).
    if token.len() > cfg.max_token_len || !introspector.takes(token) {
        return Err(presented);
    }
    Ok(match introspector.lookup(token) {
        Lookup::Now(answer) => match check_introspected(cfg, *index, answer) {
            Ok(accepted) => revocation_step(cfg, token, accepted, presented),
            Err(e) => Progress::Done(Err(e.with_fingerprint(token))),
        },
        Lookup::Wait(flight) => Progress::Wait(Rest::new(
            token,
            Waiting::Introspection(*index, flight),
            presented,
        )),
    })
}

/// The whole pipeline without a cache, awaited: the verified claims (the payload JSON).
async fn verify(cfg: &ConfigInner, token: &str, presented: Presented) -> Result<String, AuthError> {
    let pipeline: Pipeline<'_, std::convert::Infallible> = Pipeline::new(cfg, None);
    let accepted = match pipeline.start(token, presented) {
        Progress::Done(Ok(Verified::Fresh(accepted))) => accepted,
        // No cache, so no entry: `Infallible` claims cannot exist.
        Progress::Done(Ok(Verified::Cached(entry))) => match *entry.claims {},
        Progress::Done(Err(e)) => return Err(e),
        Progress::Wait(rest) => match rest.run(cfg).await? {
            Verified::Fresh(accepted) => accepted,
            Verified::Cached(entry) => match *entry.claims {},
        },
    };
    Ok(accepted.payload)
}

impl AuthConfig {
    /// Validates a token outside HTTP (websockets, gRPC interceptors, tests) and returns its
    /// claims as `T`.
    ///
    /// Runs exactly the checks the layer runs. A token whose claims do not deserialize into
    /// `T` is rejected as `invalid_claim`.
    ///
    /// # Errors
    ///
    /// The [`AuthError`] the layer would have answered with.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use tower_token_auth::{AuthConfig, Keys, Reason, StandardClaims};
    ///
    /// let cfg = AuthConfig::builder()
    ///     .keys(Keys::hmac(b"0123456789abcdef0123456789abcdef"))
    ///     .issuer("https://issuer.example")
    ///     .audience("api")
    ///     .build()
    ///     .unwrap();
    /// let err = cfg.validate::<StandardClaims>("not-a-jwt").await.unwrap_err();
    /// assert_eq!(err.reason(), Reason::Malformed);
    /// # }
    /// ```
    pub async fn validate<T: DeserializeOwned>(&self, token: &str) -> Result<T, AuthError> {
        into_claims(&verify(&self.inner, token, Presented::default()).await?)
    }
}

/// The cache step: the entry (revocation consulted), a rejection, or `None` to validate in
/// full (a miss, or a store that must be asked asynchronously).
fn cached<T>(
    cache: &TokenCache<T>,
    cfg: &ConfigInner,
    token: &str,
) -> Option<Result<Arc<Entry<T>>, AuthError>> {
    let now = cfg.clock.now();
    let usable_version = |trust: usize| cfg.trusts.get(trust)?.keys.usable_version();
    let checks_pass = |claims: &ClaimsMap| cfg.checks.iter().all(|c| c(claims).is_ok());
    let entry = match cache.get(token, now, cfg.leeway, usable_version, checks_pass) {
        Hit::Valid(entry) => entry,
        Hit::Expired(exp) => return Some(Err(AuthError::expired_at(exp, now))),
        Hit::Miss => return None,
    };
    match cfg.revocation.as_ref().map(|r| r.local(&entry.token_ref())) {
        None | Some(Local::Pass) => Some(Ok(entry)),
        Some(Local::Reject(e)) => Some(Err(e)),
        Some(Local::Ask) => None,
    }
}
