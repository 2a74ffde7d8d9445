//! Revocation: refuse tokens that are valid but were revoked (logout, compromise).
//!
//! A [`RevocationStore`] is consulted after the signature and every claim check passed. It
//! answers for one token (`jti`) or for every token of a subject issued at or before an instant
//! ("log out everywhere"). Entries expire when the tokens they concern would have expired, so
//! memory stays bounded by the number of live revoked tokens.
//!
//! - [`MemoryRevocationStore`]: one process. Lock-free reads (the set is swapped atomically;
//!   revocations, which are rare, copy it).
//! - `RedisRevocationStore` (feature `redis`): many instances share revocations through
//!   Redis, with a local cache kept current by pub/sub.
//!
//! When the store cannot answer, the policy decides ([`RevocationPolicy`]): fail closed by
//! default (`revocation_unavailable`, 503 with `Retry-After`), fail open by explicit choice.
//! A store must bound its own waits (the Redis store has a timeout, default 200 ms): a request
//! never waits on a slow store longer than that.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::clock::{Clock, SystemClock};

use self::set::RevocationSet;

#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod redis;
mod set;
#[cfg(feature = "redis")]
pub use self::redis::{RedisRevocationStore, RedisRevocationStoreBuilder};

/// A boxed future, as the store's methods return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The identity of a verified token, as the store needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenRef<'a> {
    /// `jti`.
    pub jti: Option<&'a str>,
    /// `iss`.
    pub iss: Option<&'a str>,
    /// `sub`.
    pub sub: Option<&'a str>,
    /// `iat` (seconds since the epoch).
    pub iat: Option<i64>,
    /// `exp` (seconds since the epoch).
    pub exp: Option<i64>,
}

/// The store could not answer (connection lost, timeout).
#[derive(Clone, Debug, thiserror::Error)]
#[error("revocation store unavailable: {0}")]
pub struct RevocationError(pub String);

/// Where revocations are kept.
///
/// Implement [`is_revoked`](RevocationStore::is_revoked); override
/// [`check_local`](RevocationStore::check_local) when most answers are known without I/O
/// (a local cache): the request then needs no await at all.
pub trait RevocationStore: Send + Sync + 'static {
    /// The answer if it is known locally, without I/O. Default: `None` (always ask).
    fn check_local(&self, token: &TokenRef<'_>) -> Option<bool> {
        let _ = token;
        None
    }

    /// `true` if the token is revoked.
    fn is_revoked<'a>(
        &'a self,
        token: TokenRef<'a>,
    ) -> BoxFuture<'a, Result<bool, RevocationError>>;

    /// Revokes one token by `jti` until `expires_at` (its `exp`).
    fn revoke_token<'a>(
        &'a self,
        jti: &'a str,
        expires_at: i64,
    ) -> BoxFuture<'a, Result<(), RevocationError>>;

    /// Revokes every token of `subject` issued at or before `issued_before` (`iat <=
    /// issued_before`: `iat` has one-second resolution, so a token issued earlier in the same
    /// second is revoked too, and so is one issued later in that second); the entry is kept
    /// until `until` (the latest `exp` such a token can have: `issued_before` + the longest
    /// token lifetime).
    fn revoke_subject<'a>(
        &'a self,
        subject: &'a str,
        issued_before: i64,
        until: i64,
    ) -> BoxFuture<'a, Result<(), RevocationError>>;

    /// Called by [`AuthConfigBuilder::build`](crate::AuthConfigBuilder::build) with the
    /// configuration's leeway: a token is accepted up to `leeway` past its `exp`, so a store
    /// that forgets revocations must keep them at least that long past the `exp` (or `until`)
    /// it was given. Default: nothing to do (a store that keeps entries longer, like
    /// [`MemoryRevocationStore`], which keeps them [`MAX_LEEWAY`](crate::MAX_LEEWAY)).
    fn cover_leeway(&self, leeway: std::time::Duration) {
        let _ = leeway;
    }
}

/// What to do when the store cannot answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum RevocationPolicy {
    /// Reject with `revocation_unavailable` (503, `Retry-After`). The default.
    #[default]
    FailClosed,
    /// Accept the token and log a warning: availability over revocation.
    FailOpen,
}

/// Revocations kept in this process; see the [module docs](self). An entry is kept until the
/// expiry it was given plus 5 minutes (the largest leeway the layer allows), so a revoked token
/// is never accepted again within the leeway.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use tower_token_auth::revocation::{MemoryRevocationStore, RevocationStore, TokenRef};
///
/// let store = MemoryRevocationStore::new();
/// store.revoke_token("token-id-1", i64::MAX / 2).await.unwrap();
/// let t = TokenRef { jti: Some("token-id-1"), iss: None, sub: None, iat: None, exp: None };
/// assert_eq!(store.check_local(&t), Some(true));
/// # }
/// ```
pub struct MemoryRevocationStore {
    /// Kept until the instant given plus `GRACE`.
    entries: ArcSwap<RevocationSet>,
    clock: Arc<dyn Clock>,
}

/// Entries are kept this long past the `exp` they were given, because the layer accepts a
/// token until `exp` + leeway (at most [`MAX_LEEWAY`](crate::MAX_LEEWAY)).
const GRACE: i64 = crate::clock::MAX_LEEWAY.as_secs() as i64;

impl fmt::Debug for MemoryRevocationStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = self.entries.load();
        f.debug_struct("MemoryRevocationStore")
            .field("tokens", &e.tokens())
            .field("subjects", &e.subjects())
            .finish()
    }
}

impl Default for MemoryRevocationStore {
    fn default() -> Self {
        MemoryRevocationStore::new()
    }
}

impl MemoryRevocationStore {
    /// An empty store on the system clock.
    pub fn new() -> Self {
        MemoryRevocationStore::with_clock(SystemClock)
    }

    /// An empty store whose expiry uses `clock` (give it the configuration's clock in tests).
    pub fn with_clock(clock: impl Clock) -> Self {
        MemoryRevocationStore {
            entries: ArcSwap::from_pointee(RevocationSet::default()),
            clock: Arc::new(clock),
        }
    }

    /// Revoked tokens and subjects currently kept (expired entries are dropped on the next
    /// write).
    pub fn len(&self) -> usize {
        self.entries.load().len()
    }

    /// `true` if nothing is revoked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lookup(&self, token: &TokenRef<'_>) -> bool {
        self.entries.load().revokes(token, self.clock.now())
    }

    /// Drops the entries no longer live, then applies `f`.
    fn update(&self, f: impl Fn(&mut RevocationSet)) {
        let now = self.clock.now();
        self.entries.rcu(|old| {
            let mut next = RevocationSet::clone(old);
            next.prune(now);
            f(&mut next);
            next
        });
    }
}

impl RevocationStore for MemoryRevocationStore {
    fn check_local(&self, token: &TokenRef<'_>) -> Option<bool> {
        Some(self.lookup(token))
    }

    fn is_revoked<'a>(
        &'a self,
        token: TokenRef<'a>,
    ) -> BoxFuture<'a, Result<bool, RevocationError>> {
        let answer = self.lookup(&token);
        Box::pin(async move { Ok(answer) })
    }

    fn revoke_token<'a>(
        &'a self,
        jti: &'a str,
        expires_at: i64,
    ) -> BoxFuture<'a, Result<(), RevocationError>> {
        // Applied now: the future only reports success.
        let until = expires_at.saturating_add(GRACE);
        self.update(|set| set.revoke_token(jti, until));
        Box::pin(async { Ok(()) })
    }

    fn revoke_subject<'a>(
        &'a self,
        subject: &'a str,
        issued_before: i64,
        until: i64,
    ) -> BoxFuture<'a, Result<(), RevocationError>> {
        // Applied now: the future only reports success.
        let until = until.saturating_add(GRACE);
        self.update(|set| set.revoke_subject(subject, issued_before, until));
        Box::pin(async { Ok(()) })
    }
}

impl<S: RevocationStore + ?Sized> RevocationStore for Arc<S> {
    fn check_local(&self, token: &TokenRef<'_>) -> Option<bool> {
        (**self).check_local(token)
    }
    fn is_revoked<'a>(
        &'a self,
        token: TokenRef<'a>,
    ) -> BoxFuture<'a, Result<bool, RevocationError>> {
        (**self).is_revoked(token)
    }
    fn revoke_token<'a>(
        &'a self,
        jti: &'a str,
        expires_at: i64,
    ) -> BoxFuture<'a, Result<(), RevocationError>> {
        (**self).revoke_token(jti, expires_at)
    }
    fn revoke_subject<'a>(
        &'a self,
        subject: &'a str,
        issued_before: i64,
        until: i64,
    ) -> BoxFuture<'a, Result<(), RevocationError>> {
        (**self).revoke_subject(subject, issued_before, until)
    }
    fn cover_leeway(&self, leeway: std::time::Duration) {
        (**self).cover_leeway(leeway)
    }
}

/// The store and policy of a configuration.
pub(crate) struct Revocation {
    pub(crate) store: Arc<dyn RevocationStore>,
    pub(crate) policy: RevocationPolicy,
    pub(crate) retry_after: u64,
}

/// The revocation answer without awaiting, if there is one.
pub(crate) enum Local {
    /// No store, or the store answered "not revoked".
    Pass,
    /// Revoked, or the store failed and the policy is fail closed.
    Reject(crate::error::AuthError),
    /// The store must be asked.
    Ask,
}

impl Revocation {
    pub(crate) fn local(&self, token: &TokenRef<'_>) -> Local {
        match self.store.check_local(token) {
            Some(false) => Local::Pass,
            Some(true) => Local::Reject(revoked()),
            None => Local::Ask,
        }
    }

    pub(crate) async fn ask(&self, token: TokenRef<'_>) -> Result<(), crate::error::AuthError> {
        match self.store.is_revoked(token).await {
            Ok(false) => Ok(()),
            Ok(true) => Err(revoked()),
            Err(e) => match self.policy {
                RevocationPolicy::FailOpen => {
                    tracing::warn!(target: "tower_token_auth", error = %e, "revocation store unavailable; failing open");
                    Ok(())
                }
                RevocationPolicy::FailClosed => {
                    tracing::warn!(target: "tower_token_auth", error = %e, "revocation store unavailable; failing closed");
                    Err(
                        crate::error::AuthError::new(crate::error::Reason::RevocationUnavailable)
                            .with_retry_after(self.retry_after),
                    )
                }
            },
        }
    }
}

fn revoked() -> crate::error::AuthError {
    crate::error::AuthError::new(crate::error::Reason::Revoked)
}
