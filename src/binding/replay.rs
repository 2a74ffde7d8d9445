//! Where DPoP proofs are remembered, for replay detection: in this process (the default,
//! bounded) or in a store shared by every instance ([`ReplayStore`], e.g. Redis with the
//! `redis` feature), so a proof accepted by one replica is refused by the others.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{AuthError, Problem, Reason};

/// A boxed future, as the store's methods return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a replay store could not answer.
#[derive(Debug, Clone, thiserror::Error)]
#[error("DPoP replay store unavailable: {0}")]
pub struct ReplayError(pub String);

/// A store of DPoP proofs seen, shared by every instance of a service; give it to
/// [`Dpop::replay_store`](super::Dpop::replay_store).
///
/// `remember` must be atomic across instances: of two calls with the same `id`, exactly one
/// gets `Ok(true)` (Redis `SET NX`).
///
/// ```
/// use std::collections::HashSet;
/// use std::sync::Mutex;
/// use tower_token_auth::binding::{BoxFuture, ReplayError, ReplayStore};
///
/// #[derive(Default)]
/// struct Shared(Mutex<HashSet<[u8; 32]>>);
///
/// impl ReplayStore for Shared {
///     fn remember<'a>(&'a self, id: [u8; 32], _until: i64) -> BoxFuture<'a, Result<bool, ReplayError>> {
///         Box::pin(async move { Ok(self.0.lock().unwrap().insert(id)) })
///     }
/// }
/// ```
pub trait ReplayStore: Send + Sync + 'static {
    /// Records the proof `id` (a SHA-256 of its key's thumbprint and `jti`) until `until`
    /// (seconds since the epoch): `Ok(true)` if it was not there, `Ok(false)` if it was (a
    /// replay).
    fn remember<'a>(&'a self, id: [u8; 32], until: i64)
        -> BoxFuture<'a, Result<bool, ReplayError>>;
}

/// A proof that passed every check but replay, to be remembered in the shared store.
pub(crate) struct ReplayAsk {
    pub(super) store: Arc<dyn ReplayStore>,
    pub(super) timeout: Duration,
    pub(super) id: [u8; 32],
    pub(super) until: i64,
}

impl ReplayAsk {
    /// Asks the store: `Ok` for a new proof, `invalid_dpop_proof` (`jti`) for a replay,
    /// `replay_unavailable` (503) when the store cannot answer within the timeout (fail
    /// closed: a proof that might be a replay is not accepted).
    pub(crate) async fn run(self) -> Result<(), AuthError> {
        let asked = tokio_timeout(self.timeout, self.store.remember(self.id, self.until)).await;
        match asked {
            Some(Ok(true)) => Ok(()),
            Some(Ok(false)) => Err(AuthError::from_problems(
                vec![Problem::about(Reason::InvalidDpopProof, "jti")],
                Default::default(),
            )),
            Some(Err(e)) => {
                tracing::warn!(target: "tower_token_auth", error = %e, "DPoP replay store failed");
                Err(AuthError::new(Reason::ReplayUnavailable).with_retry_after(1))
            }
            None => {
                tracing::warn!(target: "tower_token_auth", "DPoP replay store timed out");
                Err(AuthError::new(Reason::ReplayUnavailable).with_retry_after(1))
            }
        }
    }
}

/// `fut` within `limit`, `None` past it (tokio's timer when there is one; without the
/// `tokio` dependency, no limit).
async fn tokio_timeout<F: Future>(limit: Duration, fut: F) -> Option<F::Output> {
    #[cfg(any(feature = "remote", feature = "redis", feature = "test-util"))]
    {
        tokio::time::timeout(limit, fut).await.ok()
    }
    #[cfg(not(any(feature = "remote", feature = "redis", feature = "test-util")))]
    {
        let _ = limit;
        Some(fut.await)
    }
}

#[cfg(feature = "redis")]
mod redis_store {
    use super::{BoxFuture, ReplayError, ReplayStore};

    /// DPoP proofs remembered in Redis (feature `redis`): `SET <prefix>dpop:<id> 1 NX EXAT
    /// <until>`, so every instance on the same Redis refuses a proof another one accepted,
    /// and entries leave Redis when the proof is too old to be used anyway.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// use tower_token_auth::binding::{Dpop, RedisReplayStore};
    ///
    /// let store = RedisReplayStore::connect("redis://127.0.0.1:6379").await?;
    /// let dpop = Dpop::allowed().replay_store(store);
    /// # let _ = dpop; Ok(()) }
    /// ```
    #[derive(Clone)]
    pub struct RedisReplayStore {
        conn: redis::aio::ConnectionManager,
        prefix: String,
    }

    impl std::fmt::Debug for RedisReplayStore {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("RedisReplayStore")
                .field("prefix", &self.prefix)
                .finish_non_exhaustive()
        }
    }

    impl RedisReplayStore {
        /// Connects to Redis at `url` (prefix `tta:`), waiting at most 5 s. The connection
        /// reconnects by itself.
        ///
        /// # Errors
        ///
        /// The URL is invalid or Redis cannot be reached now.
        pub async fn connect(url: &str) -> Result<RedisReplayStore, ReplayError> {
            let client = redis::Client::open(url).map_err(|e| ReplayError(e.to_string()))?;
            let conn = crate::revocation::redis::connect_manager(
                &client,
                std::time::Duration::from_secs(5),
                std::time::Duration::from_millis(200),
            )
            .await
            .map_err(ReplayError)?;
            Ok(RedisReplayStore::with_connection(conn, "tta:"))
        }

        /// On a connection the process already has (one connection for all of the crate's
        /// Redis stores), with this key prefix.
        pub fn with_connection(
            conn: redis::aio::ConnectionManager,
            prefix: impl Into<String>,
        ) -> Self {
            RedisReplayStore {
                conn,
                prefix: prefix.into(),
            }
        }

        /// The Redis key of a proof id.
        pub fn key(&self, id: &[u8; 32]) -> String {
            let mut key = format!("{}dpop:", self.prefix);
            for b in id {
                key.push_str(&format!("{b:02x}"));
            }
            key
        }
    }

    impl ReplayStore for RedisReplayStore {
        fn remember<'a>(
            &'a self,
            id: [u8; 32],
            until: i64,
        ) -> BoxFuture<'a, Result<bool, ReplayError>> {
            Box::pin(async move {
                let mut conn = self.conn.clone();
                let set: Option<String> = redis::cmd("SET")
                    .arg(self.key(&id))
                    .arg(1)
                    .arg("NX")
                    .arg("EXAT")
                    .arg(until.max(1))
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| ReplayError(e.to_string()))?;
                Ok(set.is_some())
            })
        }
    }
}

#[cfg(feature = "redis")]
pub use redis_store::RedisReplayStore;
