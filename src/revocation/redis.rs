//! Revocations shared by many instances through Redis, with a local cache kept current by
//! pub/sub (feature `redis`).
//!
//! Every instance of a service builds its own [`RedisRevocationStore`] on the same Redis. A
//! revocation made on any instance is written to Redis and published; every instance applies
//! it to its local cache, so the other instances refuse the token after one pub/sub hop (about
//! a millisecond from the `revoke_*` call with Redis on the same host; the test suite measures
//! it), and most requests are answered from memory with no Redis round trip at all.
//!
//! # What is kept in Redis
//!
//! With the default prefix `tta:` (see [`prefix`](RedisRevocationStoreBuilder::prefix)):
//!
//! | key or channel | value | expires |
//! | --- | --- | --- |
//! | `tta:jti:<jti>` | the instant the entry expires | at the token's `exp` (+ [grace](RedisRevocationStoreBuilder::grace)) |
//! | `tta:sub:<subject>` | the issued-before cut-off (seconds) | at `until` (+ grace) |
//! | channel `tta:revocations` | one JSON message per revocation | |
//!
//! Entries expire with the tokens they concern (`EXPIREAT`), so Redis holds only live
//! revocations. A second "log out everywhere" for a subject keeps the later cut-off and the
//! later expiry (a small Lua script makes that atomic).
//!
//! # The local cache
//!
//! A background tokio task subscribes to the channel, then primes the cache with a `SCAN` of
//! the existing keys (at most [`max_cached`](RedisRevocationStoreBuilder::max_cached)
//! entries), then applies each published revocation as it arrives. Reads are lock-free (the
//! cache is swapped atomically, like [`MemoryRevocationStore`](super::MemoryRevocationStore)).
//!
//! [`check_local`](RevocationStore::check_local) answers:
//! - `Some(true)` when the cache knows the token is revoked (known revocations stay known even
//!   while Redis is down: they can only expire);
//! - `Some(false)` when the subscription is healthy, the cache was primed and it holds every
//!   revocation (it is complete);
//! - `None` otherwise: the layer then calls [`is_revoked`](RevocationStore::is_revoked), which
//!   asks Redis (`EXISTS` on the `jti` key, `GET` on the subject key) within the
//!   [timeout](RedisRevocationStoreBuilder::timeout) (default 200 ms).
//!
//! When the subscription breaks (Redis restarted, network lost), the store asks Redis for every
//! token whose answer it does not know, and the task reconnects with a backoff (100 ms to
//! 2 s), subscribes again and primes again before answering locally. A silent connection (no
//! messages, no error) is probed with a `PING` every
//! [heartbeat](RedisRevocationStoreBuilder::heartbeat) (default 1 s). If more revocations are
//! live than `max_cached`, the cache keeps the ones it has, answers "revoked" for them and asks
//! Redis for the others; it tries a full reload again every minute.
//!
//! A Redis restarted without persistence forgets its revocations: running instances keep
//! refusing the tokens they knew about until those expire, new instances do not. Enable
//! persistence (AOF) or replication if that matters.
//!
//! # Failure
//!
//! Commands go through redis-rs's `ConnectionManager`, which reconnects by itself. When Redis
//! cannot answer within the timeout, [`is_revoked`](RevocationStore::is_revoked) returns a
//! [`RevocationError`] and the configuration's
//! [`RevocationPolicy`](super::RevocationPolicy) decides: fail closed (503
//! `revocation_unavailable`, the default) or fail open. No request waits longer than the
//! timeout.
//!
//! # Example
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use std::time::Duration;
//! use tower_token_auth::revocation::{RedisRevocationStore, RevocationStore};
//! use tower_token_auth::{AuthConfig, Keys, TokenAuthLayer};
//!
//! let store = Arc::new(
//!     RedisRevocationStore::builder("redis://127.0.0.1:6379/")
//!         .prefix("myapp:")
//!         .timeout(Duration::from_millis(100))
//!         .connect()
//!         .await?,
//! );
//! let cfg = AuthConfig::builder()
//!     .keys(Keys::hmac(b"0123456789abcdef0123456789abcdef"))
//!     .issuer("https://issuer.example")
//!     .audience("api")
//!     .revocation(store.clone())
//!     .build()?;
//! let layer = TokenAuthLayer::new(cfg);
//!
//! // On logout, on any instance: every instance refuses the token from now on.
//! store.revoke_token("token-id", 1_900_000_000).await?;
//! // "Log out everywhere": tokens of alice issued at or before now, which live at most an hour.
//! let now = 1_800_000_000;
//! store.revoke_subject("alice", now, now + 3600).await?;
//! # drop(layer); Ok(()) }
//! ```

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig, PubSubSink, PubSubStream};
use ::redis::{Client, Msg, Value};
use arc_swap::ArcSwap;
use futures_util::{FutureExt, StreamExt};

use super::{BoxFuture, RevocationError, RevocationStore, TokenRef};
use crate::clock::{Clock, SystemClock};

/// The default prefix of keys and of the channel.
pub const DEFAULT_PREFIX: &str = "tta:";
/// The default wait for Redis on a request: 200 ms.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(200);
/// The default interval of the subscription's liveness probe: 1 s.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(1);
/// The default bound of the local cache: 100,000 revocations.
pub const DEFAULT_MAX_CACHED: usize = 100_000;
/// The default time entries outlive the token's `exp`: 5 min, the largest leeway a
/// configuration can have ([`MAX_LEEWAY`](crate::MAX_LEEWAY)), so a revocation written by any
/// process covers every reader whatever its leeway.
pub const DEFAULT_GRACE: Duration = crate::clock::MAX_LEEWAY;
/// The default bound of [`connect`](RedisRevocationStoreBuilder::connect): 5 s.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The latest instant stored (9999-12-31T23:59:59Z, the last NumericDate the crate accepts).
const MAX_INSTANT: i64 = 253_402_300_799;
/// Keys asked per `SCAN` round trip while priming.
const SCAN_COUNT: usize = 1000;
/// Messages applied in one swap of the cache, at most.
const MAX_BATCH: usize = 1024;
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// How often an incomplete cache (more revocations than `max_cached`) tries a full reload.
const RELOAD_INCOMPLETE: Duration = Duration::from_secs(60);
/// How often expired entries are dropped from the cache when nothing is written.
const PRUNE_EVERY: Duration = Duration::from_secs(10);

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

/// Options of a [`RedisRevocationStore`]; start with [`RedisRevocationStore::builder`].
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
    /// Prefix of every key and of the channel (default `tta:`). Instances that must share
    /// revocations use the same prefix; services that must not, different ones.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How long a request may wait for Redis when the local cache cannot answer (default
    /// 200 ms). Past it, [`is_revoked`](RevocationStore::is_revoked) fails and the
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
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.connect_timeout.min(io_timeout)))
            .set_min_delay(MIN_BACKOFF)
            .set_max_delay(MAX_BACKOFF)
            .set_number_of_retries(3);
        let conn = match tokio::time::timeout(
            self.connect_timeout,
            ConnectionManager::new_with_config(client.clone(), manager_config),
        )
        .await
        {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => return Err(RevocationError(format!("redis: {e}"))),
            Err(_) => {
                return Err(RevocationError(format!(
                    "redis did not answer within {:?}",
                    self.connect_timeout
                )))
            }
        };
        let shared = Arc::new(Shared {
            channel: format!("{}revocations", self.prefix),
            prefix: self.prefix,
            cache: ArcSwap::from_pointee(Cache::default()),
            synced: AtomicBool::new(false),
            max_cached: self.max_cached,
            syncs: AtomicU64::new(0),
            io_timeout,
        });
        let mut follower = Follower {
            shared: shared.clone(),
            client,
            conn: conn.clone(),
            heartbeat: self.heartbeat,
            last_load: Instant::now(),
            last_prune: Instant::now(),
        };
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

/// Revocations shared through Redis, with a local cache kept current by pub/sub; see the
/// [module docs](self).
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use tower_token_auth::revocation::{RedisRevocationStore, RevocationStore, TokenRef};
///
/// let store = RedisRevocationStore::connect("redis://127.0.0.1:6379/").await.unwrap();
/// store.revoke_token("token-id-1", 1_900_000_000).await.unwrap();
/// let t = TokenRef { jti: Some("token-id-1"), iss: None, sub: None, iat: None, exp: None };
/// assert_eq!(store.check_local(&t), Some(true)); // no round trip
/// assert!(store.is_revoked(t).await.unwrap()); // asks Redis
/// # }
/// ```
pub struct RedisRevocationStore {
    shared: Arc<Shared>,
    conn: ConnectionManager,
    timeout: Duration,
    /// Seconds entries outlive `exp`; only ever raised (see [`RevocationStore::cover_leeway`]).
    grace: AtomicI64,
    task: tokio::task::AbortHandle,
}

impl fmt::Debug for RedisRevocationStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cache = self.shared.cache.load();
        f.debug_struct("RedisRevocationStore")
            .field("prefix", &self.shared.prefix)
            .field("timeout", &self.timeout)
            .field("synced", &self.is_synced())
            .field("cached", &cache.len())
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
    /// Connects with the default options (prefix `tta:`, timeout 200 ms); see
    /// [`builder`](Self::builder) and [`RedisRevocationStoreBuilder::connect`].
    pub async fn connect(url: &str) -> Result<Self, RevocationError> {
        Self::builder(url).connect().await
    }

    /// Options, then [`connect`](RedisRevocationStoreBuilder::connect). `url` is a redis-rs
    /// connection URL: `redis://[user:password@]host:port[/db]` or `redis+unix:///path`
    /// (TLS, `rediss://`, is not built in).
    pub fn builder(url: impl Into<String>) -> RedisRevocationStoreBuilder {
        RedisRevocationStoreBuilder {
            url: url.into(),
            prefix: DEFAULT_PREFIX.to_owned(),
            timeout: DEFAULT_TIMEOUT,
            heartbeat: DEFAULT_HEARTBEAT,
            max_cached: DEFAULT_MAX_CACHED,
            grace: DEFAULT_GRACE,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        }
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
        self.shared.cache.load().live(SystemClock.now())
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.shared.prefix
    }

    /// The Redis key of a revoked `jti`.
    pub fn token_key(&self, jti: &str) -> String {
        format!("{}jti:{jti}", self.shared.prefix)
    }

    /// The Redis key of a subject's issued-before cut-off.
    pub fn subject_key(&self, subject: &str) -> String {
        format!("{}sub:{subject}", self.shared.prefix)
    }

    /// The pub/sub channel.
    pub fn channel(&self) -> &str {
        &self.shared.channel
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
        if cache.revokes(token, SystemClock.now()) {
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
            if self.shared.cache.load().revokes(&token, SystemClock.now()) {
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
                if let Some(before) = before {
                    // A token without `iat` cannot show it came after the cut-off.
                    if token.iat.is_none_or(|iat| iat <= before) {
                        return Ok(true);
                    }
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

/// One revocation, as published and cached.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Entry {
    Token {
        jti: String,
        until: i64,
    },
    Subject {
        sub: String,
        before: i64,
        until: i64,
    },
}

impl Entry {
    fn message(&self) -> String {
        match self {
            Entry::Token { jti, until } => serde_json::json!({ "jti": jti, "until": until }),
            Entry::Subject { sub, before, until } => {
                serde_json::json!({ "sub": sub, "before": before, "until": until })
            }
        }
        .to_string()
    }

    fn parse(payload: &[u8]) -> Option<Entry> {
        let v: serde_json::Value = serde_json::from_slice(payload).ok()?;
        let until = v.get("until")?.as_i64()?;
        if let Some(jti) = v.get("jti").and_then(|j| j.as_str()) {
            return Some(Entry::Token {
                jti: jti.to_owned(),
                until,
            });
        }
        let sub = v.get("sub")?.as_str()?.to_owned();
        let before = v.get("before")?.as_i64()?;
        Some(Entry::Subject { sub, before, until })
    }
}

/// The local copy of the revocations.
#[derive(Clone, Default)]
struct Cache {
    /// `jti` → kept until.
    tokens: HashMap<String, i64>,
    /// subject → (issued-before cut-off, kept until).
    subjects: HashMap<String, (i64, i64)>,
    /// Holds every live revocation of Redis (loaded, and never over `max_cached`).
    complete: bool,
}

impl Cache {
    fn len(&self) -> usize {
        self.tokens.len() + self.subjects.len()
    }

    fn revokes(&self, token: &TokenRef<'_>, now: i64) -> bool {
        if let Some(jti) = token.jti {
            if self.tokens.get(jti).is_some_and(|until| *until > now) {
                return true;
            }
        }
        if let Some(sub) = token.sub {
            if let Some((before, until)) = self.subjects.get(sub) {
                if *until > now {
                    return token.iat.is_none_or(|iat| iat <= *before);
                }
            }
        }
        false
    }

    fn prune(&mut self, now: i64) {
        self.tokens.retain(|_, until| *until > now);
        self.subjects.retain(|_, (_, until)| *until > now);
    }

    fn live(&self, now: i64) -> usize {
        self.tokens.values().filter(|until| **until > now).count()
            + self
                .subjects
                .values()
                .filter(|(_, until)| *until > now)
                .count()
    }

    fn has_expired(&self, now: i64) -> bool {
        self.tokens.values().any(|until| *until <= now)
            || self.subjects.values().any(|(_, until)| *until <= now)
    }

    /// Adds (or merges) an entry; `false` if it did not fit.
    fn insert(&mut self, entry: &Entry, now: i64, max: usize) -> bool {
        let full = self.len() >= max;
        match entry {
            Entry::Token { jti, until } => {
                if *until <= now {
                    return true;
                }
                if let Some(u) = self.tokens.get_mut(jti) {
                    *u = (*u).max(*until);
                } else if full {
                    return false;
                } else {
                    self.tokens.insert(jti.clone(), *until);
                }
            }
            Entry::Subject { sub, before, until } => {
                if *until <= now {
                    return true;
                }
                if let Some((b, u)) = self.subjects.get_mut(sub) {
                    *b = (*b).max(*before);
                    *u = (*u).max(*until);
                } else if full {
                    return false;
                } else {
                    self.subjects.insert(sub.clone(), (*before, *until));
                }
            }
        }
        true
    }
}

/// What the store and its background task share.
struct Shared {
    prefix: String,
    channel: String,
    cache: ArcSwap<Cache>,
    synced: AtomicBool,
    max_cached: usize,
    syncs: AtomicU64,
    io_timeout: Duration,
}

impl Shared {
    fn apply(&self, entries: &[Entry], now: i64) {
        self.cache.rcu(|old| {
            let mut next = Cache::clone(old);
            next.prune(now);
            for e in entries {
                if !next.insert(e, now, self.max_cached) {
                    next.complete = false;
                }
            }
            next
        });
    }

    /// The entry a key stands for, from its value and `PTTL`.
    fn entry_of(&self, key: &[u8], value: Value, pttl: Value, now: i64) -> Option<Entry> {
        let key = std::str::from_utf8(key).ok()?;
        let rest = key.strip_prefix(self.prefix.as_str())?;
        let pttl: i64 = ::redis::from_redis_value(pttl).ok()?;
        let until = match pttl {
            -1 => MAX_INSTANT,
            ms if ms > 0 => now.saturating_add((ms + 999) / 1000),
            _ => return None, // gone
        };
        if let Some(jti) = rest.strip_prefix("jti:") {
            return Some(Entry::Token {
                jti: jti.to_owned(),
                until,
            });
        }
        let sub = rest.strip_prefix("sub:")?;
        let before: Option<String> = ::redis::from_redis_value(value).ok()?;
        let before = before?.trim().parse::<i64>().ok()?;
        Some(Entry::Subject {
            sub: sub.to_owned(),
            before,
            until,
        })
    }
}

/// The background task: subscription, loading, liveness.
struct Follower {
    shared: Arc<Shared>,
    client: Client,
    conn: ConnectionManager,
    heartbeat: Duration,
    last_load: Instant,
    last_prune: Instant,
}

type Session = (PubSubSink, PubSubStream);

fn redis_error(e: ::redis::RedisError) -> RevocationError {
    RevocationError(format!("redis: {e}"))
}

impl Follower {
    async fn io<T>(
        &self,
        fut: impl std::future::Future<Output = ::redis::RedisResult<T>>,
    ) -> Result<T, RevocationError> {
        match tokio::time::timeout(self.shared.io_timeout, fut).await {
            Ok(r) => r.map_err(redis_error),
            Err(_) => Err(RevocationError(format!(
                "redis did not answer within {:?}",
                self.shared.io_timeout
            ))),
        }
    }

    /// Subscribes, then loads what Redis holds: messages published meanwhile wait in the
    /// subscription and are applied before the store answers locally.
    async fn subscribe(&mut self) -> Result<Session, RevocationError> {
        self.shared.synced.store(false, Ordering::Release);
        let pubsub = self.io(self.client.get_async_pubsub()).await?;
        let (mut sink, mut stream) = pubsub.split();
        self.io(sink.subscribe(&self.shared.channel)).await?;
        self.load().await?;
        if !self.drain(&mut stream) {
            return Err(RevocationError("subscription closed".into()));
        }
        self.shared.syncs.fetch_add(1, Ordering::Relaxed);
        self.shared.synced.store(true, Ordering::Release);
        Ok((sink, stream))
    }

    /// Loads every revocation under the prefix (at most `max_cached`).
    async fn load(&mut self) -> Result<(), RevocationError> {
        self.last_load = Instant::now();
        let pattern = format!("{}*", glob_escape(&self.shared.prefix));
        let max = self.shared.max_cached;
        let mut found = Vec::new();
        let mut truncated = false;
        let mut cursor: u64 = 0;
        loop {
            let mut scan = ::redis::cmd("SCAN");
            scan.arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(SCAN_COUNT);
            let mut conn = self.conn.clone();
            let (next, keys): (u64, Vec<Vec<u8>>) = self.io(scan.query_async(&mut conn)).await?;
            if !keys.is_empty() {
                let mut pipe = ::redis::pipe();
                for k in &keys {
                    pipe.cmd("GET").arg(k).cmd("PTTL").arg(k);
                }
                let values: Vec<Value> = self.io(pipe.query_async(&mut conn)).await?;
                let now = SystemClock.now();
                let mut values = values.into_iter();
                for k in &keys {
                    let (Some(v), Some(ttl)) = (values.next(), values.next()) else {
                        break;
                    };
                    if let Some(e) = self.shared.entry_of(k, v, ttl, now) {
                        found.push(e);
                    }
                }
            }
            if found.len() > max {
                truncated = true;
                break;
            }
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        let now = SystemClock.now();
        self.shared.cache.rcu(|old| {
            // What this instance knew, plus what Redis holds; if both do not fit, what Redis
            // holds (revocations since the subscription wait in it and are applied next).
            let mut next = Cache::clone(old);
            next.prune(now);
            next.complete = !truncated;
            if found.iter().all(|e| next.insert(e, now, max)) {
                return next;
            }
            let mut fresh = Cache {
                complete: !truncated,
                ..Cache::default()
            };
            for e in &found {
                if !fresh.insert(e, now, max) {
                    fresh.complete = false;
                }
            }
            fresh
        });
        if truncated {
            tracing::warn!(
                target: "tower_token_auth",
                max_cached = max,
                "more revocations in redis than the local cache holds; asking redis for tokens not cached"
            );
        }
        Ok(())
    }

    /// Applies the messages already received; `false` if the subscription is closed.
    fn drain(&self, stream: &mut PubSubStream) -> bool {
        loop {
            let mut batch = Vec::new();
            let mut open = true;
            while batch.len() < MAX_BATCH {
                match stream.next().now_or_never() {
                    Some(Some(msg)) => batch.push(msg),
                    Some(None) => {
                        open = false;
                        break;
                    }
                    None => break,
                }
            }
            let more = batch.len() == MAX_BATCH;
            self.apply_messages(&batch);
            if !open {
                return false;
            }
            if !more {
                return true;
            }
        }
    }

    fn apply_messages(&self, msgs: &[Msg]) {
        let entries: Vec<Entry> = msgs
            .iter()
            .filter_map(|m| {
                let e = Entry::parse(m.get_payload_bytes());
                if e.is_none() {
                    tracing::warn!(target: "tower_token_auth", channel = m.get_channel_name(), "ignored a malformed revocation message");
                }
                e
            })
            .collect();
        if !entries.is_empty() {
            self.shared.apply(&entries, SystemClock.now());
        }
    }

    /// Follows the subscription until it breaks.
    async fn listen(&mut self, session: &mut Session) {
        let (sink, stream) = session;
        loop {
            match tokio::time::timeout(self.heartbeat, stream.next()).await {
                Ok(Some(msg)) => {
                    self.apply_messages(std::slice::from_ref(&msg));
                    if !self.drain(stream) {
                        return;
                    }
                }
                Ok(None) => return,
                Err(_) => {
                    // Quiet: make sure the subscription is alive.
                    if let Err(e) = self.io(sink.ping::<Value>()).await {
                        tracing::warn!(target: "tower_token_auth", error = %e, "redis subscription does not answer");
                        return;
                    }
                }
            }
            self.housekeeping().await;
        }
    }

    async fn housekeeping(&mut self) {
        if self.last_prune.elapsed() >= PRUNE_EVERY {
            self.last_prune = Instant::now();
            let now = SystemClock.now();
            if self.shared.cache.load().has_expired(now) {
                self.shared.apply(&[], now);
            }
        }
        if !self.shared.cache.load().complete && self.last_load.elapsed() >= RELOAD_INCOMPLETE {
            if let Err(e) = self.load().await {
                tracing::warn!(target: "tower_token_auth", error = %e, "reloading revocations failed");
            }
        }
    }

    async fn run(mut self, first: Session) {
        let mut session = Some(first);
        let mut backoff = MIN_BACKOFF;
        loop {
            let mut current = match session.take() {
                Some(s) => s,
                None => match self.subscribe().await {
                    Ok(s) => {
                        tracing::info!(target: "tower_token_auth", "redis revocations: subscribed again, cache loaded");
                        backoff = MIN_BACKOFF;
                        s
                    }
                    Err(e) => {
                        tracing::debug!(target: "tower_token_auth", error = %e, "redis revocations: resubscribing failed");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        continue;
                    }
                },
            };
            self.listen(&mut current).await;
            self.shared.synced.store(false, Ordering::Release);
            tracing::warn!(target: "tower_token_auth", "redis revocations: subscription lost; asking redis until it is back");
            drop(current);
        }
    }
}

/// `s` with the glob characters of `SCAN MATCH` escaped.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\' | '^' | '-') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        for e in [
            Entry::Token {
                jti: "a b\"c".into(),
                until: 5,
            },
            Entry::Subject {
                sub: "alice".into(),
                before: 3,
                until: 9,
            },
        ] {
            assert_eq!(Entry::parse(e.message().as_bytes()), Some(e));
        }
        assert_eq!(Entry::parse(b"nonsense"), None);
    }

    #[test]
    fn the_cache_is_bounded_and_merges() {
        let mut c = Cache::default();
        let t = |j: &str| Entry::Token {
            jti: j.into(),
            until: 100,
        };
        assert!(c.insert(&t("a"), 0, 2));
        assert!(c.insert(&t("b"), 0, 2));
        assert!(!c.insert(&t("c"), 0, 2));
        assert!(c.insert(&t("a"), 0, 2)); // known: merged
        let s = |before, until| Entry::Subject {
            sub: "s".into(),
            before,
            until,
        };
        let mut c = Cache::default();
        c.insert(&s(10, 50), 0, 9);
        c.insert(&s(5, 80), 0, 9);
        assert_eq!(c.subjects["s"], (10, 80));
    }

    #[test]
    fn glob_characters_are_escaped() {
        assert_eq!(glob_escape("a*b?[c]"), "a\\*b\\?\\[c\\]");
    }
}
