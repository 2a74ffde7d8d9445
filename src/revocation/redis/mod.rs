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
//! [`check_local`](super::RevocationStore::check_local) answers:
//! - `Some(true)` when the cache knows the token is revoked (known revocations stay known even
//!   while Redis is down: they can only expire);
//! - `Some(false)` when the subscription is healthy, the cache was primed and it holds every
//!   revocation (it is complete);
//! - `None` otherwise: the layer then calls [`is_revoked`](super::RevocationStore::is_revoked), which
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
//! cannot answer within the timeout, [`is_revoked`](super::RevocationStore::is_revoked) returns a
//! [`RevocationError`](super::RevocationError) and the configuration's
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

// Where the code is:
// - builder.rs: `RedisRevocationStoreBuilder` and `connect`;
// - store.rs: `RedisRevocationStore`, the request-path reads and the writes;
// - follower.rs: the background task (subscription, priming, reconnection);
// - this file: the defaults, the published message and the local cache, which is a
//   `RevocationSet` (shared with the memory store, see ../set.rs) plus a completeness flag.

use std::sync::atomic::{AtomicBool, AtomicU64};
use std::time::Duration;

use arc_swap::ArcSwap;

use super::set::RevocationSet;

mod builder;
mod follower;
mod store;

pub use self::builder::RedisRevocationStoreBuilder;
pub use self::store::RedisRevocationStore;

/// A reconnecting Redis connection, as every Redis store of the crate opens it: the connect
/// bounded by `connect_timeout` (each later reconnection attempt too, within the I/O
/// timeout), then retried with a backoff by redis-rs. The error is a sentence for logs.
pub(crate) async fn connect_manager(
    client: &::redis::Client,
    connect_timeout: Duration,
    io_timeout: Duration,
) -> Result<::redis::aio::ConnectionManager, String> {
    let config = ::redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(
            connect_timeout.min(io_timeout.max(Duration::from_secs(1))),
        ))
        .set_min_delay(MIN_BACKOFF)
        .set_max_delay(MAX_BACKOFF)
        .set_number_of_retries(3);
    match tokio::time::timeout(
        connect_timeout,
        ::redis::aio::ConnectionManager::new_with_config(client.clone(), config),
    )
    .await
    {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(format!("redis: {e}")),
        Err(_) => Err(format!("redis did not answer within {connect_timeout:?}")),
    }
}

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
/// The shortest wait before reconnecting (commands and subscription).
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// The longest wait before reconnecting (commands and subscription).
const MAX_BACKOFF: Duration = Duration::from_secs(2);

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
    /// Each entry kept until `exp` (or `until`) + grace, as in Redis.
    set: RevocationSet,
    /// Holds every live revocation of Redis (loaded, and never over `max_cached`).
    complete: bool,
}

impl Cache {
    /// Adds (or merges) an entry; `false` if it did not fit. An entry no longer live is
    /// ignored.
    fn insert(&mut self, entry: &Entry, now: i64, max: usize) -> bool {
        let full = self.set.len() >= max;
        match entry {
            Entry::Token { jti, until } => {
                if *until <= now {
                    return true;
                }
                if full && !self.set.has_token(jti) {
                    return false;
                }
                self.set.revoke_token(jti, *until);
            }
            Entry::Subject { sub, before, until } => {
                if *until <= now {
                    return true;
                }
                if full && !self.set.has_subject(sub) {
                    return false;
                }
                self.set.revoke_subject(sub, *before, *until);
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
            next.set.prune(now);
            for e in entries {
                if !next.insert(e, now, self.max_cached) {
                    next.complete = false;
                }
            }
            next
        });
    }
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
        assert_eq!(c.set.subject("s"), Some((10, 80)));
    }

    #[test]
    fn entries_no_longer_live_are_ignored() {
        let mut c = Cache::default();
        let t = Entry::Token {
            jti: "a".into(),
            until: 10,
        };
        assert!(c.insert(&t, 10, 0)); // not live: ignored, even when full
        assert_eq!(c.set.len(), 0);
    }
}
