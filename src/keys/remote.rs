//! Remote keys: a JWKS URL or an OpenID Connect issuer (feature `remote`).
//!
//! # How keys stay fresh
//!
//! - The key set is immutable and swapped atomically ([`arc_swap`]): requests read it without
//!   a lock.
//! - It is fetched on first use (or by [`AuthConfig::warm_up`](crate::AuthConfig::warm_up)),
//!   then refreshed **in the background** once 80 % of its time to live has passed. The TTL is
//!   `Cache-Control: max-age` with ±10 % jitter (so a fleet does not refresh in step), then
//!   held within the configured bounds (default 1 min..24 h), so the minimum holds whatever
//!   the jitter; without `max-age` it is the default TTL (10 minutes) with the same jitter.
//!   Requests keep using the current keys while a refresh runs. Every time computation
//!   saturates: even `Duration::MAX` options cannot overflow.
//! - One fetch at a time per source (single-flight), each bounded by the fetch timeout
//!   (default 5 s) and the response size limit (default 1 MiB).
//! - A fetch decided by a request runs as a task of its own (on the current tokio runtime)
//!   that holds the fetch slot; the deciding request and every request arriving meanwhile
//!   wait for its result. A dropped request (client gone, outer timeout, HTTP/2 reset) never
//!   cancels it, so it never uses up a cool-down without a fetch. (Without a tokio runtime
//!   when the fetch is decided, it runs when the request is first polled, and a request
//!   dropped before its fetch completes gives the cool-down back.)
//! - A token with an unknown `kid` triggers at most one refetch per cool-down (default 30 s);
//!   the request waits for that fetch and is checked against the new set. Unknown kids seen
//!   during the cool-down are rejected at once as `unknown_key`, without a fetch (a request
//!   arriving while a fetch is in flight waits for it instead).
//! - When a refresh fails (provider down, hanging, 5xx, garbage, empty set), the last good
//!   keys keep serving for a bounded time (default 1 h) with a warning. Past that bound, or if
//!   keys were never fetched, requests get `keys_unavailable`: 503 with `Retry-After`, never
//!   401 or 500. `Retry-After` is the time until a request may really cause the next attempt
//!   (1 s: see below).
//! - A key removed from the published set stops verifying tokens after the next refresh.
//! - `jku`, `x5u` and embedded `jwk` headers are never followed: keys come only from the
//!   configured URL. Redirects are not followed either.
//!
//! # What a provider that is down sees
//!
//! Per instance and per source, at most:
//!
//! - one background refresh attempt per refetch cool-down (default 30 s) after a failed
//!   refresh, while the last good keys serve;
//! - one attempt per second caused by requests while no keys are usable (never fetched, or
//!   stale past the bound) — the pace `Retry-After` reflects;
//! - one unknown-`kid` refetch per cool-down.
//!
//! # OpenID Connect discovery
//!
//! With [`Remote::oidc`], the discovery document is read on the first fetch, on **every
//! scheduled (background) refresh**, and on the next attempt after **any failed fetch** (the
//! known `jwks_uri` is forgotten), so a provider that moves its key set is followed without a
//! restart. Unknown-`kid` refetches and request-triggered fetches reuse the `jwks_uri` of the
//! last good fetch. If discovery fails during a scheduled refresh, the last known `jwks_uri`
//! is fetched instead (with a warning).
//!
//! Times (TTL, staleness, cool-down) are read from the configuration's
//! [`Clock`], so tests can simulate an hour-long outage in a millisecond.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;

use super::{parse_jwks, AlgSet, JwksError, JwksOrigin, KeySet, KeyStatus};
use crate::clock::Clock;
use crate::error::ConfigError;
use crate::error::{AuthError, Reason};

/// Options and location of a remote key set; give it to [`Keys::remote`](super::Keys::remote).
///
/// ```
/// use std::time::Duration;
/// use tower_token_auth::keys::{remote::Remote, Keys};
///
/// let keys = Keys::remote(
///     Remote::oidc("https://login.example.com/tenant/v2.0")
///         .fetch_timeout(Duration::from_secs(3))
///         .max_stale(Duration::from_secs(2 * 3600)),
/// );
/// # let _ = keys;
/// ```
#[derive(Clone)]
#[must_use]
pub struct Remote {
    pub(crate) location: Location,
    pub(crate) fetch_timeout: Duration,
    pub(crate) default_ttl: Duration,
    pub(crate) min_ttl: Duration,
    pub(crate) max_ttl: Duration,
    pub(crate) refetch_cooldown: Duration,
    pub(crate) max_stale: Duration,
    pub(crate) max_response_bytes: usize,
    pub(crate) allow_http: bool,
    pub(crate) client: Option<reqwest::Client>,
}

#[derive(Clone, Debug)]
pub(crate) enum Location {
    Jwks(String),
    Oidc(String),
}

impl fmt::Debug for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Remote")
            .field("location", &self.location)
            .field("fetch_timeout", &self.fetch_timeout)
            .field("default_ttl", &self.default_ttl)
            .field("refetch_cooldown", &self.refetch_cooldown)
            .field("max_stale", &self.max_stale)
            .finish_non_exhaustive()
    }
}

impl Remote {
    fn new(location: Location) -> Self {
        Remote {
            location,
            fetch_timeout: Duration::from_secs(5),
            default_ttl: Duration::from_secs(600),
            min_ttl: Duration::from_secs(60),
            max_ttl: Duration::from_secs(24 * 3600),
            refetch_cooldown: Duration::from_secs(30),
            max_stale: Duration::from_secs(3600),
            max_response_bytes: 1024 * 1024,
            allow_http: false,
            client: None,
        }
    }

    /// A JWK set at `url` (https required unless [`allow_http`](Remote::allow_http)).
    pub fn jwks_url(url: impl Into<String>) -> Self {
        Remote::new(Location::Jwks(url.into()))
    }

    /// An OpenID Connect issuer: its `/.well-known/openid-configuration` must name exactly
    /// this `issuer`, and its `jwks_uri` is fetched.
    pub fn oidc(issuer: impl Into<String>) -> Self {
        Remote::new(Location::Oidc(issuer.into()))
    }

    /// Longest wait for one fetch (default 5 s).
    pub fn fetch_timeout(mut self, timeout: Duration) -> Self {
        self.fetch_timeout = timeout;
        self
    }

    /// Time to live when the response has no `Cache-Control: max-age` (default 10 min).
    pub fn default_ttl(mut self, ttl: Duration) -> Self {
        self.default_ttl = ttl;
        self
    }

    /// Bounds for a `max-age` sent by the provider (default 1 min to 24 h), applied after the
    /// ±10 % jitter: the TTL of a set with `max-age` is never outside them.
    pub fn ttl_bounds(mut self, min: Duration, max: Duration) -> Self {
        self.min_ttl = min;
        self.max_ttl = max;
        self
    }

    /// Least time between two refetches caused by unknown `kid`s (default 30 s); also the
    /// time between background refresh attempts after a failed refresh.
    pub fn refetch_cooldown(mut self, cooldown: Duration) -> Self {
        self.refetch_cooldown = cooldown;
        self
    }

    /// How long past their time to live the last good keys keep serving while refreshes fail
    /// (default 1 h).
    pub fn max_stale(mut self, max_stale: Duration) -> Self {
        self.max_stale = max_stale;
        self
    }

    /// Largest response accepted (default 1 MiB).
    pub fn max_response_bytes(mut self, bytes: usize) -> Self {
        self.max_response_bytes = bytes;
        self
    }

    /// Accepts `http://` URLs (for tests on loopback). Never in production: keys fetched
    /// over plain HTTP can be replaced by anyone on the path.
    pub fn allow_http(mut self) -> Self {
        self.allow_http = true;
        self
    }

    /// Uses this HTTP client (proxies, extra root certificates). Its own timeouts apply in
    /// addition to the fetch timeout; redirects should stay disabled.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.client = Some(client);
        self
    }

    /// The configured OIDC issuer, if this is discovery.
    pub(crate) fn oidc_issuer(&self) -> Option<&str> {
        match &self.location {
            Location::Oidc(iss) => Some(iss),
            Location::Jwks(_) => None,
        }
    }

    fn check_url(&self, url: &str, what: &'static str) -> Result<(), ConfigError> {
        let ok = url.starts_with("https://") || (self.allow_http && url.starts_with("http://"));
        if !ok {
            return Err(ConfigError::InsecureUrl(what));
        }
        if reqwest::Url::parse(url).is_err() {
            return Err(ConfigError::InvalidUrl(what));
        }
        Ok(())
    }

    pub(crate) fn build(
        &self,
        allowed: AlgSet,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<RemoteKeys>, ConfigError> {
        match &self.location {
            Location::Jwks(url) => self.check_url(url, "JWKS URL")?,
            Location::Oidc(iss) => self.check_url(iss, "OIDC issuer URL")?,
        }
        if self.fetch_timeout.is_zero() || self.min_ttl > self.max_ttl {
            return Err(ConfigError::InvalidRemoteOption);
        }
        let client = match &self.client {
            Some(c) => c.clone(),
            None => reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(self.fetch_timeout)
                .build()
                .map_err(|_| ConfigError::InvalidRemoteOption)?,
        };
        Ok(Arc::new(RemoteKeys {
            options: self.clone(),
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
        }))
    }
}

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
struct Stats {
    fetch_ok: AtomicU64,
    fetch_error: AtomicU64,
    unknown_kid_refetch: AtomicU64,
    stale_served: AtomicU64,
    /// Keys of the last fetched set that were not used (refused or unusable).
    skipped: AtomicUsize,
}

/// A remote key set: fetched, cached, refreshed. Shared by every clone of the configuration.
pub(crate) struct RemoteKeys {
    options: Remote,
    client: reqwest::Client,
    allowed: AlgSet,
    clock: Arc<dyn Clock>,
    state: ArcSwapOption<State>,
    jwks_uri: ArcSwapOption<String>,
    fetch_lock: Arc<tokio::sync::Mutex<()>>,
    generation: AtomicU64,
    versions: AtomicU64,
    last_refetch: AtomicI64,
    last_attempt: AtomicI64,
    refreshing: AtomicBool,
    stats: Stats,
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
pub(crate) enum Snapshot {
    /// Usable keys (fresh, or stale within the bound), and their version.
    Keys(Arc<KeySet>, u64),
    /// None usable: never fetched, or stale past the bound. The caller must fetch.
    Unavailable,
}

/// Why a fetch failed (for logs and counters; never shown to clients).
#[derive(Debug)]
enum FetchError {
    Http(&'static str),
    Status(u16),
    TooLarge,
    Timeout,
    Jwks(&'static str),
    Discovery(&'static str),
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FetchError::Http(s) => write!(f, "request failed: {s}"),
            FetchError::Status(s) => write!(f, "HTTP status {s}"),
            FetchError::TooLarge => f.write_str("response larger than the limit"),
            FetchError::Timeout => f.write_str("timed out"),
            FetchError::Jwks(s) => write!(f, "bad JWK set: {s}"),
            FetchError::Discovery(s) => write!(f, "bad discovery document: {s}"),
        }
    }
}

impl FetchError {
    fn kind(&self) -> &'static str {
        match self {
            FetchError::Http(_) => "connect",
            FetchError::Status(_) => "status",
            FetchError::TooLarge => "too_large",
            FetchError::Timeout => "timeout",
            FetchError::Jwks(_) => "jwks",
            FetchError::Discovery(_) => "discovery",
        }
    }
}

impl RemoteKeys {
    fn now(&self) -> i64 {
        self.clock.now()
    }

    fn secs(d: Duration) -> i64 {
        i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 4)
    }

    /// The keys for the request path, starting a background refresh when due.
    pub(crate) fn snapshot(self: &Arc<Self>) -> Snapshot {
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

    /// For a request with no usable keys: the fetch to wait for (started now if the back-off
    /// allows one, or the one already running), or `None` if the request must get
    /// `keys_unavailable` now.
    pub(crate) fn fetch_for_unavailable(self: &Arc<Self>) -> Option<Flight> {
        // The fetch slot is taken before the back-off is consulted, so a request either
        // fetches, or sees the fetch in flight and waits for it.
        let Some(slot) = self.try_begin_fetch() else {
            return Some(self.in_flight());
        };
        if let Some(claim) = self.claim_unavailable_fetch() {
            return Some(self.start(slot, FetchKind::Demand, claim));
        }
        drop(slot);
        // A fetch that finished since the snapshot: check again.
        if !matches!(self.snapshot(), Snapshot::Unavailable) {
            return Some(self.in_flight());
        }
        None
    }

    /// For a token whose `kid` is not in the set of version `seen_version`: the refetch to wait
    /// for (started now if the cool-down allows one, or the one already running), a plain
    /// re-check if a newer set was stored since, or `None` (`unknown_key` at once).
    pub(crate) fn fetch_for_unknown_kid(self: &Arc<Self>, seen_version: u64) -> Option<Flight> {
        // Slot first, then the cool-down (see `fetch_for_unavailable`).
        let Some(slot) = self.try_begin_fetch() else {
            return Some(self.in_flight());
        };
        if let Some(claim) = self.claim_refetch() {
            return Some(self.start(slot, FetchKind::UnknownKid, claim));
        }
        drop(slot);
        // A set published since this request read it: check again.
        if self.version() != seen_version {
            return Some(self.in_flight());
        }
        None
    }

    /// Claims the unknown-`kid` refetch slot if the cool-down allows it.
    fn claim_refetch(&self) -> Option<Claim> {
        let now = self.now();
        let last = self.last_refetch.load(Ordering::Acquire);
        if now.saturating_sub(last) < Self::secs(self.options.refetch_cooldown) {
            return None;
        }
        self.last_refetch
            .compare_exchange(last, now, Ordering::AcqRel, Ordering::Acquire)
            .ok()
            .map(|prev| Claim::Refetch { prev, at: now })
    }

    /// Claims a fetch for a request that has no usable keys: at most one attempt per second
    /// (by the configured clock), so a provider that is down is not hammered.
    fn claim_unavailable_fetch(&self) -> Option<Claim> {
        let now = self.now();
        let last = self.last_attempt.load(Ordering::Acquire);
        if now.saturating_sub(last) < UNAVAILABLE_RETRY_SECS {
            return None;
        }
        self.last_attempt
            .compare_exchange(last, now, Ordering::AcqRel, Ordering::Acquire)
            .ok()
            .map(|prev| Claim::Attempt { prev, at: now })
    }

    /// Gives back a claim whose fetch never completed, so the next request may fetch.
    fn release(&self, claim: Claim) {
        let (cell, prev, at) = match claim {
            Claim::Refetch { prev, at } => (&self.last_refetch, prev, at),
            Claim::Attempt { prev, at } => (&self.last_attempt, prev, at),
        };
        // Only if nobody claimed since (they could not have: the slot was held).
        let _ = cell.compare_exchange(at, prev, Ordering::AcqRel, Ordering::Acquire);
    }

    /// Waits for a running fetch to finish, without starting one.
    async fn wait_in_flight(&self) {
        let _guard = self.fetch_lock.lock().await;
    }

    /// Takes the fetch slot now, if no fetch is running. Taking it at the moment the fetch is
    /// decided (not when the request's future is first polled) makes every later request see
    /// the fetch as in flight and wait for it.
    fn try_begin_fetch(&self) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        Arc::clone(&self.fetch_lock).try_lock_owned().ok()
    }

    /// A flight for the fetch running now (or a plain re-check if none is).
    fn in_flight(self: &Arc<Self>) -> Flight {
        Flight {
            remote: Arc::clone(self),
            job: None,
        }
    }

    /// Starts the decided fetch as a task of its own, holding the slot: it completes (and
    /// every waiter sees its result) whatever happens to the request that decided it. Without
    /// a tokio runtime at this point, the fetch runs when the flight is first awaited, and a
    /// flight dropped before its fetch completes gives the claim back.
    fn start(
        self: &Arc<Self>,
        slot: tokio::sync::OwnedMutexGuard<()>,
        kind: FetchKind,
        claim: Claim,
    ) -> Flight {
        let job = FetchJob {
            remote: Arc::clone(self),
            kind,
            claim: Some(claim),
            _slot: slot,
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(job.run());
                self.in_flight()
            }
            Err(_) => Flight {
                remote: Arc::clone(self),
                job: Some(job),
            },
        }
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
    async fn fetch_holding_slot(&self, kind: FetchKind) {
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
    fn ttl(&self, max_age: Option<i64>) -> i64 {
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

    async fn fetch_set(&self, rediscover: bool) -> Result<(KeySet, i64), FetchError> {
        let url = self.jwks_location(rediscover).await?;
        let (body, max_age) = self.get(&url).await?;
        let parsed = parse_jwks(&body, JwksOrigin::Remote).map_err(|e| {
            FetchError::Jwks(match e {
                JwksError::NotJson => "not a JSON JWK set",
                JwksError::TooMany => "more than 1000 keys",
                JwksError::Empty => "no usable signature key",
                JwksError::DuplicateKid => "duplicate kid",
            })
        })?;
        self.stats.skipped.store(parsed.skipped, Ordering::Relaxed);
        let set = KeySet::from_keys(parsed.keys, self.allowed)
            .map_err(|_| FetchError::Jwks("duplicate kid"))?;
        if set.len() == 0 {
            return Err(FetchError::Jwks("no key for an allowed algorithm"));
        }
        Ok((set, self.ttl(max_age)))
    }

    /// The URL of the JWK set. With OIDC, discovery is read when no `jwks_uri` is known (first
    /// fetch, or the last fetch failed) and on every scheduled refresh (`rediscover`); a
    /// scheduled refresh whose discovery fails falls back to the `jwks_uri` of the last good
    /// fetch.
    async fn jwks_location(&self, rediscover: bool) -> Result<String, FetchError> {
        let issuer = match &self.options.location {
            Location::Jwks(url) => return Ok(url.clone()),
            Location::Oidc(issuer) => issuer,
        };
        let known = self.jwks_uri.load_full();
        if let (Some(uri), false) = (&known, rediscover) {
            return Ok(String::clone(uri));
        }
        match self.discover(issuer).await {
            Ok(uri) => {
                if let Some(previous) = known.as_deref().filter(|k| **k != uri) {
                    tracing::info!(
                        target: "tower_token_auth::keys",
                        issuer = issuer.as_str(),
                        previous = previous.as_str(),
                        jwks_uri = uri.as_str(),
                        "OIDC discovery names a new jwks_uri"
                    );
                }
                self.jwks_uri.store(Some(Arc::new(uri.clone())));
                Ok(uri)
            }
            Err(e) => match known {
                Some(uri) => {
                    tracing::warn!(
                        target: "tower_token_auth::keys",
                        issuer = issuer.as_str(),
                        error = %e,
                        jwks_uri = uri.as_str(),
                        "OIDC discovery failed; fetching the last known jwks_uri"
                    );
                    Ok(String::clone(&uri))
                }
                None => Err(e),
            },
        }
    }

    async fn discover(&self, issuer: &str) -> Result<String, FetchError> {
        #[derive(serde::Deserialize)]
        struct Discovery {
            issuer: String,
            jwks_uri: String,
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let (body, _) = self.get(&url).await?;
        let doc: Discovery = serde_json::from_slice(&body)
            .map_err(|_| FetchError::Discovery("not JSON with issuer and jwks_uri"))?;
        if doc.issuer != issuer {
            tracing::error!(
                target: "tower_token_auth::keys",
                configured = issuer,
                discovered = %crate::error::cap(&doc.issuer),
                "OIDC discovery names another issuer; check the configured issuer URL (trailing slash?)"
            );
            return Err(FetchError::Discovery("issuer does not match"));
        }
        let ok = doc.jwks_uri.starts_with("https://")
            || (self.options.allow_http && doc.jwks_uri.starts_with("http://"));
        if !ok {
            return Err(FetchError::Discovery("jwks_uri is not https"));
        }
        Ok(doc.jwks_uri)
    }

    async fn get(&self, url: &str) -> Result<(Vec<u8>, Option<i64>), FetchError> {
        let mut resp = self
            .client
            .get(url)
            .header(http::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    FetchError::Timeout
                } else {
                    FetchError::Http("connection or protocol error")
                }
            })?;
        let status = resp.status();
        if !status.is_success() {
            return Err(FetchError::Status(status.as_u16()));
        }
        let max = self.options.max_response_bytes;
        if resp.content_length().is_some_and(|n| n > max as u64) {
            return Err(FetchError::TooLarge);
        }
        let max_age = resp
            .headers()
            .get(http::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_max_age);
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|_| FetchError::Http("body read failed"))?
        {
            if body.len() + chunk.len() > max {
                return Err(FetchError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok((body, max_age))
    }

    /// The version of the current key set (0 before the first fetch).
    pub(crate) fn version(&self) -> u64 {
        self.state.load().as_ref().map_or(0, |s| s.version)
    }

    pub(crate) fn describe(&self) -> Vec<super::KeyInfo> {
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
const UNAVAILABLE_RETRY_SECS: i64 = 1;

/// When a refresh is due: 80 % of the TTL (no overflow, whatever the TTL).
fn refresh_delay(ttl: i64) -> i64 {
    i64::try_from(i128::from(ttl) * 4 / 5).unwrap_or(ttl)
}

/// Why a fetch runs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum FetchKind {
    /// The scheduled background refresh, or its retry after a failure: re-reads OIDC
    /// discovery.
    Scheduled,
    /// A token with an unknown `kid` (counted as an unknown-`kid` refetch).
    UnknownKid,
    /// A request with no usable keys, or `warm_up`.
    Demand,
}

/// A claimed cool-down or back-off: the clock second it was taken at, and the one it replaced.
#[derive(Clone, Copy, Debug)]
enum Claim {
    Refetch { prev: i64, at: i64 },
    Attempt { prev: i64, at: i64 },
}

/// A decided fetch, holding the fetch slot. Dropped before its fetch completed (a runtime shut
/// down, or, without a runtime, a request dropped before it ran the fetch), it gives back the
/// claim, so no cool-down is used up without a fetch.
struct FetchJob {
    remote: Arc<RemoteKeys>,
    kind: FetchKind,
    claim: Option<Claim>,
    // Released after `drop` gives the claim back: waiters see both at once.
    _slot: tokio::sync::OwnedMutexGuard<()>,
}

impl FetchJob {
    async fn run(mut self) {
        let remote = Arc::clone(&self.remote);
        remote.fetch_holding_slot(self.kind).await;
        // Fetched: the claim is used.
        self.claim = None;
    }
}

impl Drop for FetchJob {
    fn drop(&mut self) {
        if let Some(claim) = self.claim.take() {
            self.remote.release(claim);
        }
    }
}

/// A fetch a request waits for before validating again: one started for it, or one already
/// running. Awaiting it never cancels the fetch, and neither does dropping it.
pub(crate) struct Flight {
    remote: Arc<RemoteKeys>,
    /// The fetch to run, when no tokio runtime was there to spawn it when it was decided.
    job: Option<FetchJob>,
}

impl Flight {
    /// Waits until the fetch is done (its result is then in the current set).
    pub(crate) async fn wait(mut self) {
        if let Some(job) = self.job.take() {
            match tokio::runtime::Handle::try_current() {
                Ok(handle) => {
                    handle.spawn(job.run());
                }
                Err(_) => {
                    job.run().await;
                    return;
                }
            }
        }
        self.remote.wait_in_flight().await;
    }
}

/// `max-age=N` from a Cache-Control value (`no-store`/`no-cache` give 0).
fn parse_max_age(v: &str) -> Option<i64> {
    let mut age = None;
    for part in v.split(',') {
        let part = part.trim();
        if part.eq_ignore_ascii_case("no-store") || part.eq_ignore_ascii_case("no-cache") {
            return Some(0);
        }
        if let Some(n) = part
            .strip_prefix("max-age=")
            .or_else(|| part.strip_prefix("s-maxage="))
        {
            age = n.trim_matches('"').parse::<i64>().ok().or(age);
        }
    }
    age
}

#[cfg(test)]
mod tests {
    use super::{parse_max_age, refresh_delay, AlgSet, Remote};
    use crate::clock::ManualClock;
    use crate::error::ConfigError;
    use std::sync::Arc;

    #[test]
    fn flight_dropped_unrun_without_a_runtime_gives_the_claim_back() -> Result<(), ConfigError> {
        // No tokio runtime here: a decided fetch cannot be spawned, so it waits for the
        // request to run it. Dropped unrun, it must give back its slot and its claim, so the
        // next request (same clock second, inside the cool-down) may fetch.
        let clock = ManualClock::at(1_700_000_000);
        let remote =
            Remote::jwks_url("https://keys.invalid/jwks").build(AlgSet::all(), Arc::new(clock))?;
        for _ in 0..3 {
            let flight = remote.fetch_for_unavailable();
            assert!(flight.as_ref().is_some_and(|f| f.job.is_some()));
            drop(flight);
        }
        for _ in 0..3 {
            let flight = remote.fetch_for_unknown_kid(0);
            assert!(flight.as_ref().is_some_and(|f| f.job.is_some()));
            drop(flight);
        }
        Ok(())
    }

    #[test]
    fn refresh_delay_is_80_percent_without_overflow() {
        assert_eq!(refresh_delay(600), 480);
        assert_eq!(refresh_delay(54), 43);
        assert_eq!(refresh_delay(i64::MAX), i64::MAX / 5 * 4 + 1);
    }

    #[test]
    fn max_age_parsing() {
        assert_eq!(parse_max_age("public, max-age=3600"), Some(3600));
        assert_eq!(parse_max_age("no-store"), Some(0));
        assert_eq!(parse_max_age("public"), None);
        assert_eq!(parse_max_age("max-age=abc"), None);
    }
}
