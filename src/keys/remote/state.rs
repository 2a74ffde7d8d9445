//! The state of a remote key set and its refresh: the current keys ([`State`], swapped
//! atomically), the counters, the scheduled background refresh, what a fetch's result does to
//! the state, and the time computations (TTL with jitter, refresh point, staleness bound).

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;

use super::fetch::FetchError;
use super::flight::FetchKind;
use super::options::{Location, Remote};
use crate::clock::Clock;
use crate::error::{AuthError, Reason};
use crate::keys::{AlgSet, KeyInfo, KeySet, KeyStatus};

/// The current keys and when they were fetched (clock seconds).
pub(crate) struct State {
    pub(crate) keys: Arc<KeySet>,
    /// Changes each time a newly fetched set is stored.
    pub(crate) version: u64,
    fetched_at: i64,
    refresh_at: i64,
    expires_at: i64,
}

#[derive(Default)]
pub(super) struct Stats {
    fetch_ok: AtomicU64,
    fetch_error: AtomicU64,
    unknown_kid_refetch: AtomicU64,
    stale_served: AtomicU64,
    /// Keys of the last fetched set that were not used (refused or unusable).
    pub(super) skipped: AtomicUsize,
}

/// A remote key set: fetched, cached, refreshed. Shared by every clone of the configuration.
pub(crate) struct RemoteKeys {
    pub(super) options: Remote,
    pub(super) client: reqwest::Client,
    pub(super) allowed: AlgSet,
    clock: Arc<dyn Clock>,
    state: ArcSwapOption<State>,
    pub(super) jwks_uri: ArcSwapOption<String>,
    pub(super) fetch_lock: Arc<tokio::sync::Mutex<()>>,
    generation: AtomicU64,
    versions: AtomicU64,
    pub(super) last_refetch: AtomicI64,
    pub(super) last_attempt: AtomicI64,
    refreshing: AtomicBool,
    pub(super) stats: Stats,
}

impl fmt::Debug for RemoteKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteKeys")
            .field("location", &self.options.location)
            .field("loaded", &self.state.load().is_some())
            .finish_non_exhaustive()
    }
}

/// What the request path can do with the remote keys right now.
pub(super) enum Snapshot {
    /// Usable keys (fresh, or stale within the bound), and their version.
    Keys(Arc<KeySet>, u64),
    /// None usable: never fetched, or stale past the bound. The caller must fetch.
    Unavailable,
}

impl RemoteKeys {
    /// A source with no keys yet: the first fetch happens on first use (or `warm_up`).
    pub(super) fn new(
        options: Remote,
        client: reqwest::Client,
        allowed: AlgSet,
        clock: Arc<dyn Clock>,
    ) -> Self {
        RemoteKeys {
            options,
            client,
            allowed,
            clock,
            state: ArcSwapOption::empty(),
            jwks_uri: ArcSwapOption::empty(),
            fetch_lock: Arc::new(tokio::sync::Mutex::new(())),
            generation: AtomicU64::new(0),
            versions: AtomicU64::new(0),
            last_refetch: AtomicI64::new(i64::MIN / 2),
            last_attempt: AtomicI64::new(i64::MIN / 2),
            refreshing: AtomicBool::new(false),
            stats: Stats::default(),
        }
    }

    pub(super) fn now(&self) -> i64 {
        self.clock.now()
    }

    pub(super) fn secs(d: Duration) -> i64 {
        i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 4)
    }

    /// The keys for the request path, starting a background refresh when due.
    pub(super) fn snapshot(self: &Arc<Self>) -> Snapshot {
        let guard = self.state.load();
        match guard.as_ref() {
            Some(state) if self.usable(state) => Snapshot::Keys(state.keys.clone(), state.version),
            _ => Snapshot::Unavailable,
        }
    }

    /// The version of the usable key set, for a cache hit: the rule of
    /// [`snapshot`](RemoteKeys::snapshot) (background refresh included) without the set.
    pub(crate) fn usable_version(self: &Arc<Self>) -> Option<u64> {
        let guard = self.state.load();
        let state = guard.as_ref()?;
        self.usable(state).then_some(state.version)
    }

    /// `true` if `state` may verify tokens now (fresh, or stale within the bound); starts a
    /// background refresh when one is due.
    fn usable(self: &Arc<Self>, state: &State) -> bool {
        let now = self.now();
        if now >= state.refresh_at {
            self.spawn_refresh();
        }
        if now < state.expires_at {
            return true;
        }
        if now
            < state
                .expires_at
                .saturating_add(Self::secs(self.options.max_stale))
        {
            self.stats.stale_served.fetch_add(1, Ordering::Relaxed);
            crate::metrics::stale_served();
            return true;
        }
        false
    }

    /// Fetches now (single-flight: joins a fetch already running). `unknown_kid` counts it as
    /// an unknown-`kid` refetch.
    pub(crate) async fn fetch(&self, unknown_kid: bool) {
        self.fetch_as(if unknown_kid {
            FetchKind::UnknownKid
        } else {
            FetchKind::Demand
        })
        .await;
    }

    async fn fetch_as(&self, kind: FetchKind) {
        let seen = self.generation.load(Ordering::Acquire);
        let _guard = self.fetch_lock.lock().await;
        if self.generation.load(Ordering::Acquire) != seen {
            // Another caller fetched while we waited: use its result.
            return;
        }
        self.fetch_holding_slot(kind).await;
    }

    /// One fetch; the caller holds the slot.
    pub(super) async fn fetch_holding_slot(&self, kind: FetchKind) {
        if kind == FetchKind::UnknownKid {
            self.stats
                .unknown_kid_refetch
                .fetch_add(1, Ordering::Relaxed);
            crate::metrics::unknown_kid_refetch();
        }
        self.fetch_locked(kind == FetchKind::Scheduled).await;
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    fn spawn_refresh(self: &Arc<Self>) {
        if self.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            self.refreshing.store(false, Ordering::Release);
            return;
        };
        let this = Arc::clone(self);
        handle.spawn(async move {
            this.fetch_as(FetchKind::Scheduled).await;
            this.refreshing.store(false, Ordering::Release);
        });
    }

    /// `rediscover`: a scheduled refresh, which re-reads OIDC discovery.
    async fn fetch_locked(&self, rediscover: bool) {
        let started = std::time::Instant::now();
        let result = match tokio::time::timeout(
            self.options.fetch_timeout,
            self.fetch_set(rediscover),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => Err(FetchError::Timeout),
        };
        let source = self.source_name();
        match result {
            Ok((keys, ttl)) => {
                let now = self.now();
                let count = keys.len();
                let version = self.versions.fetch_add(1, Ordering::AcqRel) + 1;
                self.state.store(Some(Arc::new(State {
                    keys: Arc::new(keys),
                    version,
                    fetched_at: now,
                    refresh_at: now.saturating_add(refresh_delay(ttl)),
                    expires_at: now.saturating_add(ttl),
                })));
                self.stats.fetch_ok.fetch_add(1, Ordering::Relaxed);
                crate::metrics::key_fetch("ok");
                crate::metrics::key_set_age(0);
                tracing::info!(
                    target: "tower_token_auth::keys",
                    source,
                    keys = count,
                    ttl_secs = ttl,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "key set fetched"
                );
            }
            Err(e) => {
                // The next attempt re-reads OIDC discovery: the key set may have moved.
                self.jwks_uri.store(None);
                self.stats.fetch_error.fetch_add(1, Ordering::Relaxed);
                crate::metrics::key_fetch(e.kind());
                let state = self.state.load();
                let now = self.now();
                if let Some(s) = state.as_ref() {
                    crate::metrics::key_set_age(now.saturating_sub(s.fetched_at));
                }
                match state.as_ref() {
                    Some(s) => {
                        // Try again after the cool-down, keep serving what we have (within
                        // max_stale).
                        let retry =
                            now.saturating_add(Self::secs(self.options.refetch_cooldown).max(1));
                        let keep_until = s
                            .expires_at
                            .saturating_add(Self::secs(self.options.max_stale));
                        tracing::warn!(
                            target: "tower_token_auth::keys",
                            source,
                            error = %e,
                            kind = e.kind(),
                            age_secs = now.saturating_sub(s.fetched_at),
                            serving_until = keep_until,
                            "key set refresh failed; serving the last good keys"
                        );
                        self.state.store(Some(Arc::new(State {
                            keys: s.keys.clone(),
                            version: s.version,
                            fetched_at: s.fetched_at,
                            refresh_at: retry,
                            expires_at: s.expires_at,
                        })));
                    }
                    None => tracing::warn!(
                        target: "tower_token_auth::keys",
                        source,
                        error = %e,
                        kind = e.kind(),
                        "key set fetch failed; no keys loaded"
                    ),
                }
            }
        }
    }

    fn jittered(&self, ttl: i64) -> i64 {
        // ±10 %, from the low bits of the current time: enough to spread a fleet.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0) as i64;
        let ttl = ttl.max(0);
        let spread = ttl / 10;
        if spread == 0 {
            return ttl.max(1);
        }
        // `spread` is at most a tenth of i64::MAX: `2 * spread + 1` cannot overflow.
        ttl.saturating_sub(spread)
            .saturating_add(nanos % (2 * spread + 1))
            .max(1)
    }

    /// The time to live of a fetched set, in seconds: `max-age` (jittered, then held within
    /// the bounds, so the bounds hold whatever the jitter) or the default TTL (jittered).
    pub(super) fn ttl(&self, max_age: Option<i64>) -> i64 {
        match max_age {
            Some(secs) => self.jittered(secs).clamp(
                Self::secs(self.options.min_ttl),
                Self::secs(self.options.max_ttl),
            ),
            None => self.jittered(Self::secs(self.options.default_ttl)),
        }
    }

    fn source_name(&self) -> &str {
        match &self.options.location {
            Location::Jwks(u) | Location::Oidc(u) => u,
        }
    }

    /// The version of the current key set (0 before the first fetch).
    pub(crate) fn version(&self) -> u64 {
        self.state.load().as_ref().map_or(0, |s| s.version)
    }

    // Read by `diagnose` only.
    #[cfg_attr(not(feature = "diagnose"), allow(dead_code))]
    pub(crate) fn describe(&self) -> Vec<KeyInfo> {
        match self.state.load().as_ref() {
            Some(st) => st.keys.describe(),
            None => Vec::new(),
        }
    }

    pub(crate) fn status(&self) -> KeyStatus {
        let state = self.state.load();
        let now = self.now();
        let s = &self.stats;
        let (ready, keys, age, stale) = match state.as_ref() {
            Some(st) => (
                now < st
                    .expires_at
                    .saturating_add(Self::secs(self.options.max_stale)),
                st.keys.len(),
                Some(now.saturating_sub(st.fetched_at)),
                now >= st.expires_at,
            ),
            None => (false, 0, None, false),
        };
        KeyStatus {
            source: self.source_name().to_owned(),
            ready,
            keys,
            age_secs: age,
            stale,
            fetch_ok: s.fetch_ok.load(Ordering::Relaxed),
            fetch_error: s.fetch_error.load(Ordering::Relaxed),
            unknown_kid_refetch: s.unknown_kid_refetch.load(Ordering::Relaxed),
            stale_served: s.stale_served.load(Ordering::Relaxed),
            skipped: s.skipped.load(Ordering::Relaxed),
        }
    }

    /// `keys_unavailable`, with a `Retry-After` that says when a request will really cause
    /// the next attempt: requests with no usable keys fetch at most once per
    /// [`UNAVAILABLE_RETRY_SECS`] (at least 1 s, at most 60 s).
    pub(crate) fn unavailable(&self) -> AuthError {
        let next = self
            .last_attempt
            .load(Ordering::Acquire)
            .saturating_add(UNAVAILABLE_RETRY_SECS);
        let wait = next.saturating_sub(self.now()).clamp(1, 60);
        AuthError::new(Reason::KeysUnavailable).with_retry_after(u64::try_from(wait).unwrap_or(1))
    }
}

/// Least time between two fetches caused by requests that have no usable keys (clock
/// seconds): the pace a down provider sees from one instance while keys are unavailable.
pub(super) const UNAVAILABLE_RETRY_SECS: i64 = 1;

/// When a refresh is due: 80 % of the TTL (no overflow, whatever the TTL).
fn refresh_delay(ttl: i64) -> i64 {
    i64::try_from(i128::from(ttl) * 4 / 5).unwrap_or(ttl)
}

#[cfg(test)]
mod tests {
    use super::refresh_delay;

    #[test]
    fn refresh_delay_is_80_percent_without_overflow() {
        assert_eq!(refresh_delay(600), 480);
        assert_eq!(refresh_delay(54), 43);
        assert_eq!(refresh_delay(i64::MAX), i64::MAX / 5 * 4 + 1);
    }
}
