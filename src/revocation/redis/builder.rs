//! [`RedisRevocationStoreBuilder`]: the options of a [`RedisRevocationStore`], and `connect`,
//! which subscribes, primes the cache and starts the follower (`follower.rs`).

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64};
use std::sync::Arc;
use std::time::Duration;

use ::redis::Client;
use arc_swap::ArcSwap;

use super::follower::Follower;
use super::{
    Cache, RedisRevocationStore, Shared, DEFAULT_CONNECT_TIMEOUT, DEFAULT_GRACE, DEFAULT_HEARTBEAT,
    DEFAULT_MAX_CACHED, DEFAULT_PREFIX, DEFAULT_TIMEOUT,
};
use crate::revocation::RevocationError;

/// Options of a [`RedisRevocationStore`]; start with [`RedisRevocationStore::builder`].
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use tower_token_auth::revocation::RedisRevocationStore;
///
/// let store = RedisRevocationStore::builder("redis://127.0.0.1:6379/")
///     .prefix("orders:")
///     .timeout(Duration::from_millis(100))
///     .max_cached(10_000)
///     .connect()
///     .await?;
/// assert!(store.is_synced());
/// # Ok(()) }
/// ```
#[derive(Clone)]
#[must_use = "call .connect().await"]
pub struct RedisRevocationStoreBuilder {
    url: String,
    prefix: String,
    timeout: Duration,
    heartbeat: Duration,
    max_cached: usize,
    grace: Duration,
    connect_timeout: Duration,
}

impl fmt::Debug for RedisRevocationStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may hold a password: not shown.
        f.debug_struct("RedisRevocationStoreBuilder")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("heartbeat", &self.heartbeat)
            .field("max_cached", &self.max_cached)
            .field("grace", &self.grace)
            .field("connect_timeout", &self.connect_timeout)
            .finish_non_exhaustive()
    }
}

impl RedisRevocationStoreBuilder {
    /// The defaults, for [`RedisRevocationStore::builder`].
    pub(super) fn new(url: String) -> Self {
        RedisRevocationStoreBuilder {
            url,
            prefix: DEFAULT_PREFIX.to_owned(),
            timeout: DEFAULT_TIMEOUT,
            heartbeat: DEFAULT_HEARTBEAT,
            max_cached: DEFAULT_MAX_CACHED,
            grace: DEFAULT_GRACE,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        }
    }

    /// Prefix of every key and of the channel (default `tta:`). Instances that must share
    /// revocations use the same prefix; services that must not, different ones.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How long a request may wait for Redis when the local cache cannot answer (default
    /// 200 ms). Past it, [`is_revoked`](crate::revocation::RevocationStore::is_revoked) fails and the
    /// configuration's policy decides. Revocations and the priming scan wait at most
    /// `max(timeout, 1 s)` per round trip.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How often a quiet subscription is probed with `PING` (default 1 s). A subscription that
    /// does not answer within `max(timeout, 1 s)` is dropped and made again; meanwhile requests
    /// ask Redis.
    pub fn heartbeat(mut self, every: Duration) -> Self {
        self.heartbeat = every.max(Duration::from_millis(10));
        self
    }

    /// The most revocations kept in the local cache (default 100,000). Past it, the cache still
    /// answers "revoked" for those it holds and asks Redis for other tokens.
    pub fn max_cached(mut self, n: usize) -> Self {
        self.max_cached = n;
        self
    }

    /// How long an entry outlives the token's `exp` (or the subject's `until`), default 5 min
    /// ([`DEFAULT_GRACE`]): a token is still accepted a leeway after `exp`, and must stay
    /// revoked until then. A configuration built with this store raises the grace of the
    /// store to its leeway automatically; lower it only if every process that reads the
    /// revocations (with its own leeway) is covered.
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// The longest [`connect`](Self::connect) waits for Redis (default 5 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Connects, subscribes and loads the revocations already in Redis; then keeps the cache
    /// current in a background task (needs a tokio runtime) until the store is dropped.
    ///
    /// Fails if the URL is invalid or Redis cannot be reached within the connect timeout.
    pub async fn connect(self) -> Result<RedisRevocationStore, RevocationError> {
        let client = Client::open(self.url.as_str())
            .map_err(|e| RevocationError(format!("invalid redis URL: {e}")))?;
        let io_timeout = self.timeout.max(Duration::from_secs(1));
        let conn = super::connect_manager(&client, self.connect_timeout, io_timeout)
            .await
            .map_err(RevocationError)?;
        let shared = Arc::new(Shared {
            channel: format!("{}revocations", self.prefix),
            prefix: self.prefix,
            cache: ArcSwap::from_pointee(Cache::default()),
            synced: AtomicBool::new(false),
            max_cached: self.max_cached,
            syncs: AtomicU64::new(0),
            io_timeout,
        });
        let mut follower = Follower::new(shared.clone(), client, conn.clone(), self.heartbeat);
        let session = match tokio::time::timeout(self.connect_timeout, follower.subscribe()).await {
            Ok(Ok(session)) => session,
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                return Err(RevocationError(format!(
                    "redis did not answer within {:?}",
                    self.connect_timeout
                )))
            }
        };
        let task = tokio::spawn(follower.run(session)).abort_handle();
        Ok(RedisRevocationStore {
            shared,
            conn,
            timeout: self.timeout,
            grace: AtomicI64::new(i64::try_from(self.grace.as_secs()).unwrap_or(i64::MAX)),
            task,
        })
    }
}
