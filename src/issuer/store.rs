//! Refresh store: where refresh-token families are kept ([`RefreshStore`]) and the default
//! in-process store ([`MemoryRefreshStore`]).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use crate::revocation::BoxFuture;

use super::RefreshStoreError;

/// Access tokens of one family tracked for revocation, at most (the oldest are dropped
/// beyond; with the default lifetimes a family holds one or two).
const MAX_TRACKED_ACCESS: usize = 64;

/// The memory store sweeps expired families at most this often (seconds).
const SWEEP_EVERY: i64 = 60;

/// One issued token as the refresh store tracks it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedToken {
    /// Its `jti`.
    pub jti: String,
    /// Its `exp` (seconds since the epoch).
    pub expires_at: i64,
}

impl IssuedToken {
    /// A token id and its expiry.
    pub fn new(jti: impl Into<String>, expires_at: i64) -> Self {
        IssuedToken {
            jti: jti.into(),
            expires_at,
        }
    }
}

/// The tokens one login or one rotation issues in a family.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Generation {
    /// The refresh token: it becomes the family's current one, and the family lives until
    /// its `expires_at`.
    pub refresh: IssuedToken,
    /// The access token, to revoke if the family is revoked.
    pub access: IssuedToken,
}

impl Generation {
    /// A refresh token and an access token.
    pub fn new(refresh: IssuedToken, access: IssuedToken) -> Self {
        Generation { refresh, access }
    }
}

/// What [`RefreshStore::rotate`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rotation {
    /// The presented token was the family's current one; the new generation is current now.
    Rotated,
    /// The presented token was an earlier one: the store has revoked the family and returns
    /// its access tokens that may still be live, to revoke them.
    Reused(Vec<IssuedToken>),
    /// The family is revoked or unknown (expired or never recorded).
    Revoked,
}

/// Where refresh-token families are kept. Keep it small: three operations, each atomic.
/// The futures are `BoxFuture`s (see [`crate::revocation::BoxFuture`]), as for revocation stores.
///
/// `now` is the issuer's clock (seconds since the epoch); a family may be forgotten once
/// `now` passes its current refresh token's expiry (the token cannot verify any more), and a
/// revoked family must be remembered until then.
///
/// A shared implementation (e.g. Redis: one hash per family, the rotation as a Lua script,
/// `PEXPIREAT` at the refresh token's expiry) lets several instances issue and refresh.
pub trait RefreshStore: Send + Sync + 'static {
    /// Records a new family whose first generation is `first`.
    fn start<'a>(
        &'a self,
        family: &'a str,
        first: &'a Generation,
        now: i64,
    ) -> BoxFuture<'a, Result<(), RefreshStoreError>>;

    /// Atomically: if `presented_jti` is the family's current refresh token, makes `next`
    /// current ([`Rotation::Rotated`]); if it is another token of a live family, revokes the
    /// family ([`Rotation::Reused`]); if the family is revoked or unknown,
    /// [`Rotation::Revoked`].
    fn rotate<'a>(
        &'a self,
        family: &'a str,
        presented_jti: &'a str,
        next: &'a Generation,
        now: i64,
    ) -> BoxFuture<'a, Result<Rotation, RefreshStoreError>>;

    /// Revokes the family (logout) and returns its access tokens that may still be live.
    /// Unknown or already revoked families return an empty list.
    fn revoke<'a>(
        &'a self,
        family: &'a str,
        now: i64,
    ) -> BoxFuture<'a, Result<Vec<IssuedToken>, RefreshStoreError>>;
}

impl<S: RefreshStore + ?Sized> RefreshStore for Arc<S> {
    fn start<'a>(
        &'a self,
        family: &'a str,
        first: &'a Generation,
        now: i64,
    ) -> BoxFuture<'a, Result<(), RefreshStoreError>> {
        (**self).start(family, first, now)
    }
    fn rotate<'a>(
        &'a self,
        family: &'a str,
        presented_jti: &'a str,
        next: &'a Generation,
        now: i64,
    ) -> BoxFuture<'a, Result<Rotation, RefreshStoreError>> {
        (**self).rotate(family, presented_jti, next, now)
    }
    fn revoke<'a>(
        &'a self,
        family: &'a str,
        now: i64,
    ) -> BoxFuture<'a, Result<Vec<IssuedToken>, RefreshStoreError>> {
        (**self).revoke(family, now)
    }
}

struct Family {
    current: String,
    expires_at: i64,
    revoked: bool,
    access: Vec<IssuedToken>,
}

#[derive(Default)]
struct MemoryState {
    families: HashMap<String, Family>,
    next_sweep: i64,
}

impl MemoryState {
    /// Drops expired families, at most once a minute (on writes).
    fn maybe_sweep(&mut self, now: i64) {
        if now >= self.next_sweep {
            self.families.retain(|_, f| f.expires_at > now);
            self.next_sweep = now.saturating_add(SWEEP_EVERY);
        }
    }
}

/// Refresh families kept in this process (the default store of a
/// [`TokenIssuer`](super::TokenIssuer)).
///
/// Memory is bounded by the live families: a family is dropped once its current refresh
/// token has expired (expired families are swept at most once a minute, on writes, and
/// [`remove_expired`](MemoryRefreshStore::remove_expired) does it now). A revoked family is
/// kept, without its access tokens, until then, so its tokens keep answering `revoked`.
/// State is lost on restart: every refresh token then answers `revoked` (users log in
/// again). Several instances need a shared store.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use tower_token_auth::issuer::{Generation, IssuedToken, MemoryRefreshStore, RefreshStore, Rotation};
///
/// let store = MemoryRefreshStore::new();
/// let first = Generation::new(IssuedToken::new("r1", 2000), IssuedToken::new("a1", 1100));
/// store.start("fam", &first, 1000).await.unwrap();
/// let next = Generation::new(IssuedToken::new("r2", 2100), IssuedToken::new("a2", 1200));
/// assert_eq!(store.rotate("fam", "r1", &next, 1100).await.unwrap(), Rotation::Rotated);
/// // r1 again: reuse, the family is revoked.
/// assert!(matches!(store.rotate("fam", "r1", &next, 1101).await.unwrap(), Rotation::Reused(_)));
/// assert_eq!(store.rotate("fam", "r2", &next, 1102).await.unwrap(), Rotation::Revoked);
/// # }
/// ```
#[derive(Default)]
pub struct MemoryRefreshStore {
    state: Mutex<MemoryState>,
}

impl fmt::Debug for MemoryRefreshStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryRefreshStore")
            .field("families", &self.len())
            .finish()
    }
}

impl MemoryRefreshStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryRefreshStore::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Families kept, revoked ones included (expired ones until the next sweep).
    pub fn len(&self) -> usize {
        self.lock().families.len()
    }

    /// `true` if no family is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops the families whose refresh token has expired by `now`.
    pub fn remove_expired(&self, now: i64) {
        let mut state = self.lock();
        state.families.retain(|_, f| f.expires_at > now);
        state.next_sweep = now.saturating_add(SWEEP_EVERY);
    }

    fn start_now(&self, family: &str, first: &Generation, now: i64) {
        let mut state = self.lock();
        state.maybe_sweep(now);
        state.families.insert(
            family.to_owned(),
            Family {
                current: first.refresh.jti.clone(),
                expires_at: first.refresh.expires_at,
                revoked: false,
                access: vec![first.access.clone()],
            },
        );
    }

    fn rotate_now(&self, family: &str, presented: &str, next: &Generation, now: i64) -> Rotation {
        let mut state = self.lock();
        state.maybe_sweep(now);
        let Some(f) = state.families.get_mut(family) else {
            return Rotation::Revoked;
        };
        if f.expires_at <= now || f.revoked {
            return Rotation::Revoked;
        }
        f.access.retain(|a| a.expires_at > now);
        if f.current != presented {
            f.revoked = true;
            return Rotation::Reused(std::mem::take(&mut f.access));
        }
        f.current = next.refresh.jti.clone();
        f.expires_at = next.refresh.expires_at;
        if f.access.len() >= MAX_TRACKED_ACCESS {
            f.access.remove(0);
        }
        f.access.push(next.access.clone());
        Rotation::Rotated
    }

    fn revoke_now(&self, family: &str, now: i64) -> Vec<IssuedToken> {
        let mut state = self.lock();
        state.maybe_sweep(now);
        match state.families.get_mut(family) {
            Some(f) if f.expires_at > now => {
                f.revoked = true;
                let mut access = std::mem::take(&mut f.access);
                access.retain(|a| a.expires_at > now);
                access
            }
            _ => Vec::new(),
        }
    }
}

impl RefreshStore for MemoryRefreshStore {
    fn start<'a>(
        &'a self,
        family: &'a str,
        first: &'a Generation,
        now: i64,
    ) -> BoxFuture<'a, Result<(), RefreshStoreError>> {
        self.start_now(family, first, now);
        Box::pin(async { Ok(()) })
    }

    fn rotate<'a>(
        &'a self,
        family: &'a str,
        presented_jti: &'a str,
        next: &'a Generation,
        now: i64,
    ) -> BoxFuture<'a, Result<Rotation, RefreshStoreError>> {
        let r = self.rotate_now(family, presented_jti, next, now);
        Box::pin(async move { Ok(r) })
    }

    fn revoke<'a>(
        &'a self,
        family: &'a str,
        now: i64,
    ) -> BoxFuture<'a, Result<Vec<IssuedToken>, RefreshStoreError>> {
        let r = self.revoke_now(family, now);
        Box::pin(async move { Ok(r) })
    }
}
