//! [`RedisRevocationStore`]: what a request reads (the local cache, else Redis within the
//! timeout) and the writes of `revoke_token` / `revoke_subject`.

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ::redis::aio::ConnectionManager;
use ::redis::Value;

use super::{Entry, RedisRevocationStoreBuilder, Shared, MAX_INSTANT};
use crate::clock::{Clock, SystemClock};
use crate::revocation::set::subject_revokes;
use crate::revocation::{BoxFuture, RevocationError, RevocationStore, TokenRef};

/// `max(subject cut-off)`, `max(expiry)`, atomically. KEYS[1] = subject key;
/// ARGV = issued_before, until, now (seconds).
const REVOKE_SUBJECT_LUA: &str = r"
local before = tonumber(ARGV[1])
local untl = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local cur = redis.call('GET', KEYS[1])
if cur then
  cur = tonumber(cur)
  if cur and cur > before then before = cur end
end
local ttl = redis.call('TTL', KEYS[1])
if ttl > 0 and now + ttl > untl then untl = now + ttl end
redis.call('SET', KEYS[1], string.format('%d', before))
redis.call('EXPIREAT', KEYS[1], string.format('%d', untl))
return untl
";

/// Revocations shared through Redis, with a local cache kept current by pub/sub; see the
/// [module docs](super).
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use tower_token_auth::revocation::{RedisRevocationStore, RevocationStore, TokenRef};
///
/// let store = RedisRevocationStore::builder("redis://127.0.0.1:6379/").connect().await.unwrap();
/// store.revoke_token("token-id-1", 1_900_000_000).await.unwrap();
/// let t = TokenRef { jti: Some("token-id-1"), iss: None, sub: None, iat: None, exp: None };
/// assert_eq!(store.check_local(&t), Some(true)); // no round trip
/// assert!(store.is_revoked(t).await.unwrap()); // asks Redis
/// # }
/// ```
pub struct RedisRevocationStore {
    pub(super) shared: Arc<Shared>,
    pub(super) conn: ConnectionManager,
    /// The wait for Redis on a request.
    pub(super) timeout: Duration,
    /// Seconds entries outlive `exp`; only ever raised (see [`RevocationStore::cover_leeway`]).
    pub(super) grace: AtomicI64,
    /// The follower, stopped when the store is dropped.
    pub(super) task: tokio::task::AbortHandle,
}

impl fmt::Debug for RedisRevocationStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cache = self.shared.cache.load();
        f.debug_struct("RedisRevocationStore")
            .field("prefix", &self.shared.prefix)
            .field("timeout", &self.timeout)
            .field("synced", &self.is_synced())
            .field("cached", &cache.set.len())
            .field("complete", &cache.complete)
            .finish_non_exhaustive()
    }
}

impl Drop for RedisRevocationStore {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RedisRevocationStore {
    /// Options, then [`connect`](RedisRevocationStoreBuilder::connect). `url` is a redis-rs
    /// connection URL: `redis://[user:password@]host:port[/db]` or `redis+unix:///path`
    /// (TLS, `rediss://`, is not built in).
    pub fn builder(url: impl Into<String>) -> RedisRevocationStoreBuilder {
        RedisRevocationStoreBuilder::new(url.into())
    }

    /// `true` while the subscription is healthy and the cache was loaded: the store then
    /// answers from memory. `false` while it reconnects (requests ask Redis).
    pub fn is_synced(&self) -> bool {
        self.shared.synced.load(Ordering::Acquire)
    }

    /// How many times the store subscribed and loaded the cache (1 after `connect`; each
    /// reconnection adds one).
    pub fn syncs(&self) -> u64 {
        self.shared.syncs.load(Ordering::Relaxed)
    }

    /// Live revocations in the local cache.
    pub fn cached(&self) -> usize {
        self.shared.cache.load().set.live(SystemClock.now())
    }

    /// The Redis key of a revoked `jti`.
    pub fn token_key(&self, jti: &str) -> String {
        format!("{}jti:{jti}", self.shared.prefix)
    }

    /// The Redis key of a subject's issued-before cut-off.
    pub fn subject_key(&self, subject: &str) -> String {
        format!("{}sub:{subject}", self.shared.prefix)
    }

    /// The store's command connection (a clone of its redis-rs `ConnectionManager`: one
    /// multiplexed connection that reconnects by itself), to share it with other stores of
    /// the process, e.g. `issuer::RedisRefreshStore::from_manager`. The subscription has a
    /// connection of its own.
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use tower_token_auth::revocation::RedisRevocationStore;
    ///
    /// let store = RedisRevocationStore::builder("redis://127.0.0.1:6379/").connect().await.unwrap();
    /// let conn = store.connection_manager();
    /// # let _ = conn;
    /// # }
    /// ```
    pub fn connection_manager(&self) -> ConnectionManager {
        self.conn.clone()
    }

    fn write_timeout(&self) -> Duration {
        self.shared.io_timeout
    }

    async fn write(&self, pipe: ::redis::Pipeline) -> Result<(), RevocationError> {
        let mut conn = self.conn.clone();
        let limit = self.write_timeout();
        match tokio::time::timeout(limit, pipe.query_async::<Value>(&mut conn)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(RevocationError(format!(
                "redis: {e} (revocation applied on this instance only)"
            ))),
            Err(_) => Err(RevocationError(format!(
                "redis did not answer within {limit:?} (revocation applied on this instance only)"
            ))),
        }
    }
}

impl RevocationStore for RedisRevocationStore {
    fn cover_leeway(&self, leeway: Duration) {
        let secs = i64::try_from(leeway.as_secs()).unwrap_or(i64::MAX);
        self.grace.fetch_max(secs, Ordering::Relaxed);
    }

    fn check_local(&self, token: &TokenRef<'_>) -> Option<bool> {
        if token.jti.is_none() && token.sub.is_none() {
            return Some(false);
        }
        let cache = self.shared.cache.load();
        if cache.set.revokes(token, SystemClock.now()) {
            return Some(true);
        }
        (cache.complete && self.is_synced()).then_some(false)
    }

    fn is_revoked<'a>(
        &'a self,
        token: TokenRef<'a>,
    ) -> BoxFuture<'a, Result<bool, RevocationError>> {
        Box::pin(async move {
            if token.jti.is_none() && token.sub.is_none() {
                return Ok(false);
            }
            if self
                .shared
                .cache
                .load()
                .set
                .revokes(&token, SystemClock.now())
            {
                return Ok(true);
            }
            let mut pipe = ::redis::pipe();
            if let Some(jti) = token.jti {
                pipe.cmd("EXISTS").arg(self.token_key(jti));
            }
            if let Some(sub) = token.sub {
                pipe.cmd("GET").arg(self.subject_key(sub));
            }
            let mut conn = self.conn.clone();
            let values =
                match tokio::time::timeout(self.timeout, pipe.query_async::<Vec<Value>>(&mut conn))
                    .await
                {
                    Ok(Ok(values)) => values,
                    Ok(Err(e)) => return Err(RevocationError(format!("redis: {e}"))),
                    Err(_) => {
                        return Err(RevocationError(format!(
                            "redis did not answer within {:?}",
                            self.timeout
                        )))
                    }
                };
            let mut values = values.into_iter();
            let bad = |e: ::redis::ParsingError| RevocationError(format!("redis answer: {e}"));
            if token.jti.is_some() {
                let n: i64 =
                    ::redis::from_redis_value(values.next().unwrap_or(Value::Nil)).map_err(bad)?;
                if n > 0 {
                    return Ok(true);
                }
            }
            if token.sub.is_some() {
                let before: Option<i64> =
                    ::redis::from_redis_value(values.next().unwrap_or(Value::Nil)).map_err(bad)?;
                if before.is_some_and(|before| subject_revokes(before, token.iat)) {
                    return Ok(true);
                }
            }
            Ok(false)
        })
    }

    fn revoke_token<'a>(
        &'a self,
        jti: &'a str,
        expires_at: i64,
    ) -> BoxFuture<'a, Result<(), RevocationError>> {
        Box::pin(async move {
            let now = SystemClock.now();
            let until = expires_at
                .saturating_add(self.grace.load(Ordering::Relaxed))
                .min(MAX_INSTANT);
            if until <= now {
                return Ok(()); // the token is refused as expired anyway
            }
            let entry = Entry::Token {
                jti: jti.to_owned(),
                until,
            };
            self.shared.apply(std::slice::from_ref(&entry), now);
            let key = self.token_key(jti);
            let mut pipe = ::redis::pipe();
            pipe.atomic()
                .cmd("SET")
                .arg(&key)
                .arg(until)
                .ignore()
                .cmd("EXPIREAT")
                .arg(&key)
                .arg(until)
                .ignore()
                .cmd("PUBLISH")
                .arg(&self.shared.channel)
                .arg(entry.message())
                .ignore();
            self.write(pipe).await
        })
    }

    fn revoke_subject<'a>(
        &'a self,
        subject: &'a str,
        issued_before: i64,
        until: i64,
    ) -> BoxFuture<'a, Result<(), RevocationError>> {
        Box::pin(async move {
            let now = SystemClock.now();
            let until = until
                .saturating_add(self.grace.load(Ordering::Relaxed))
                .min(MAX_INSTANT);
            if until <= now {
                return Ok(());
            }
            let before = issued_before.clamp(-MAX_INSTANT, MAX_INSTANT);
            let entry = Entry::Subject {
                sub: subject.to_owned(),
                before,
                until,
            };
            self.shared.apply(std::slice::from_ref(&entry), now);
            let mut pipe = ::redis::pipe();
            pipe.atomic()
                .cmd("EVAL")
                .arg(REVOKE_SUBJECT_LUA)
                .arg(1)
                .arg(self.subject_key(subject))
                .arg(before)
                .arg(until)
                .arg(now)
                .ignore()
                .cmd("PUBLISH")
                .arg(&self.shared.channel)
                .arg(entry.message())
                .ignore();
            self.write(pipe).await
        })
    }
}
