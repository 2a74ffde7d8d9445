//! The background task that keeps the local cache current: it subscribes to the channel,
//! primes the cache with a `SCAN` of the keys, applies each published revocation, probes a
//! quiet subscription with `PING` and, when the subscription breaks, subscribes and primes
//! again with a backoff.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ::redis::aio::{ConnectionManager, PubSubSink, PubSubStream};
use ::redis::{Client, Msg, Value};
use futures_util::{FutureExt, StreamExt};

use super::{Cache, Entry, Shared, MAX_BACKOFF, MAX_INSTANT, MIN_BACKOFF};
use crate::clock::{Clock, SystemClock};
use crate::revocation::RevocationError;

/// Keys asked per `SCAN` round trip while priming.
const SCAN_COUNT: usize = 1000;
/// Messages applied in one swap of the cache, at most.
const MAX_BATCH: usize = 1024;
/// How often an incomplete cache (more revocations than `max_cached`) tries a full reload.
const RELOAD_INCOMPLETE: Duration = Duration::from_secs(60);
/// How often expired entries are dropped from the cache when nothing is written.
const PRUNE_EVERY: Duration = Duration::from_secs(10);

/// The background task: subscription, loading, liveness.
pub(super) struct Follower {
    shared: Arc<Shared>,
    client: Client,
    conn: ConnectionManager,
    heartbeat: Duration,
    last_load: Instant,
    last_prune: Instant,
}

/// One subscription: the sink (subscribe, ping) and the stream of messages.
pub(super) type Session = (PubSubSink, PubSubStream);

fn redis_error(e: ::redis::RedisError) -> RevocationError {
    RevocationError(format!("redis: {e}"))
}

impl Follower {
    /// A follower of `shared`'s channel; nothing happens until [`subscribe`](Self::subscribe).
    pub(super) fn new(
        shared: Arc<Shared>,
        client: Client,
        conn: ConnectionManager,
        heartbeat: Duration,
    ) -> Self {
        Follower {
            shared,
            client,
            conn,
            heartbeat,
            last_load: Instant::now(),
            last_prune: Instant::now(),
        }
    }

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
    pub(super) async fn subscribe(&mut self) -> Result<Session, RevocationError> {
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
        let max = self.shared.max_cached;
        let mut found = Vec::new();
        let mut truncated = false;
        // Only this store's own keys: other stores may share the prefix (refresh families are
        // hashes, DPoP proofs other strings), and a `GET` on a hash fails the whole pipeline.
        'kinds: for kind in ["jti:", "sub:"] {
            let pattern = format!("{}{kind}*", glob_escape(&self.shared.prefix));
            let mut cursor: u64 = 0;
            loop {
                let mut scan = ::redis::cmd("SCAN");
                scan.arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(SCAN_COUNT);
                let mut conn = self.conn.clone();
                let (next, keys): (u64, Vec<Vec<u8>>) =
                    self.io(scan.query_async(&mut conn)).await?;
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
                        if let Some(e) = entry_of(&self.shared.prefix, k, v, ttl, now) {
                            found.push(e);
                        }
                    }
                }
                if found.len() > max {
                    truncated = true;
                    break 'kinds;
                }
                cursor = next;
                if cursor == 0 {
                    break;
                }
            }
        }
        let now = SystemClock.now();
        self.shared.cache.rcu(|old| {
            // What this instance knew, plus what Redis holds; if both do not fit, what Redis
            // holds (revocations since the subscription wait in it and are applied next).
            let mut next = Cache::clone(old);
            next.set.prune(now);
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
            if self.shared.cache.load().set.has_expired(now) {
                self.shared.apply(&[], now);
            }
        }
        if !self.shared.cache.load().complete && self.last_load.elapsed() >= RELOAD_INCOMPLETE {
            if let Err(e) = self.load().await {
                tracing::warn!(target: "tower_token_auth", error = %e, "reloading revocations failed");
            }
        }
    }

    pub(super) async fn run(mut self, first: Session) {
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

/// The entry a key stands for, from its value and `PTTL`.
fn entry_of(prefix: &str, key: &[u8], value: Value, pttl: Value, now: i64) -> Option<Entry> {
    let key = std::str::from_utf8(key).ok()?;
    let rest = key.strip_prefix(prefix)?;
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
    fn glob_characters_are_escaped() {
        assert_eq!(glob_escape("a*b?[c]"), "a\\*b\\?\\[c\\]");
    }

    #[test]
    fn scanned_keys_read_back_as_entries() {
        let token = |until| {
            Some(Entry::Token {
                jti: "a".into(),
                until,
            })
        };
        let ttl = |ms| Value::Int(ms);
        assert_eq!(
            entry_of("p:", b"p:jti:a", Value::Nil, ttl(1500), 1000),
            token(1002)
        );
        assert_eq!(
            entry_of("p:", b"p:jti:a", Value::Nil, ttl(-1), 1000),
            token(MAX_INSTANT)
        );
        assert_eq!(entry_of("p:", b"p:jti:a", Value::Nil, ttl(-2), 1000), None); // gone
        assert_eq!(
            entry_of("q:", b"p:jti:a", Value::Nil, ttl(1500), 1000),
            None
        );
        let cut_off = Value::BulkString(b"42".to_vec());
        assert_eq!(
            entry_of("p:", b"p:sub:alice", cut_off, ttl(1000), 1000),
            Some(Entry::Subject {
                sub: "alice".into(),
                before: 42,
                until: 1001,
            })
        );
    }
}
