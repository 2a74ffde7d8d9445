//! The runtime side of introspection: the answer cache (by keyed hash), the calls in flight
//! (one per token) and their tasks.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwapOption;
use tokio::sync::watch;

use super::call::CallError;
use super::Introspection;
use crate::clock::Clock;

/// What the provider said about a token.
#[derive(Clone, Debug)]
pub(crate) enum Answer {
    /// Active: the claims (the answer without `active`, as JSON) and its `exp`.
    Active { claims: Arc<str>, exp: Option<i64> },
    /// `active: false`.
    Inactive,
}

/// The answer for a token now, or the call to wait for.
pub(crate) enum Lookup {
    Now(Result<Answer, CallError>),
    Wait(Flight),
}

/// A call in flight, to wait for. Dropping it cancels nothing: the call runs as its own task.
pub(crate) struct Flight(Receiver);

impl Flight {
    /// The call's result.
    pub(crate) async fn wait(mut self) -> Result<Answer, CallError> {
        match self.0.wait_for(Option::is_some).await {
            Ok(done) => done.clone().unwrap_or(Err(CallError::Connect)),
            // The task ended without a result (its runtime shut down).
            Err(_) => Err(CallError::Connect),
        }
    }
}

struct Cached {
    answer: Answer,
    until: i64,
}

type Digest = [u8; 32];
type Sender = watch::Sender<Option<Result<Answer, CallError>>>;
type Receiver = watch::Receiver<Option<Result<Answer, CallError>>>;

/// One issuer's introspection: options, HTTP client, cache and flights.
pub(crate) struct Introspector {
    pub(super) options: Introspection,
    /// The issuer whose endpoint answers (for discovery, and `iss` of answers without one).
    pub(super) issuer: Option<String>,
    pub(super) http: reqwest::Client,
    /// The issuer's keys and the allowed algorithms, for signed answers (RFC 9701).
    pub(super) keys: Option<(crate::keys::KeySource, crate::keys::AlgSet)>,
    pub(super) discovered: ArcSwapOption<String>,
    clock: Arc<dyn Clock>,
    /// The key of the token hashes, drawn at start-up.
    key: crate::crypto::DigestKey,
    cache: Mutex<HashMap<Digest, Cached>>,
    /// When the full cache was last swept of expired answers.
    last_sweep: std::sync::atomic::AtomicI64,
    /// Why the last failed call failed (for diagnosis).
    last_error: Mutex<Option<CallError>>,
    flights: Mutex<HashMap<Digest, Receiver>>,
}

impl Introspector {
    pub(super) fn new(
        options: Introspection,
        issuer: Option<String>,
        keys: Option<(crate::keys::KeySource, crate::keys::AlgSet)>,
        http: reqwest::Client,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let mut key = options.hash_secret.unwrap_or_default();
        if options.hash_secret.is_none() && getrandom::fill(&mut key).is_err() {
            // Never a fixed key: without randomness, fall back to the standard library's
            // per-process random hasher keys (OS randomness as well, through another path).
            use std::hash::{BuildHasher as _, Hasher as _};
            for (i, chunk) in key.chunks_mut(8).enumerate() {
                let mut h = std::collections::hash_map::RandomState::new().build_hasher();
                h.write_usize(i);
                chunk.copy_from_slice(&h.finish().to_le_bytes());
            }
        }
        Introspector {
            options,
            issuer,
            http,
            keys,
            discovered: ArcSwapOption::empty(),
            clock,
            key: crate::crypto::DigestKey::new(&key),
            cache: Mutex::new(HashMap::new()),
            last_sweep: std::sync::atomic::AtomicI64::new(i64::MIN),
            last_error: Mutex::new(None),
            flights: Mutex::new(HashMap::new()),
        }
    }

    /// `true` if `token` goes to this introspection: every token with
    /// [`all_tokens`](Introspection::all_tokens), else every token that is not three
    /// dot-separated segments (a compact JWS).
    pub(crate) fn takes(&self, token: &str) -> bool {
        self.options.all_tokens || memchr::memchr_iter(b'.', token.as_bytes()).count() != 2
    }

    /// The endpoint in use: configured or discovered (`None` before discovery).
    pub(crate) fn endpoint_name(&self) -> Option<String> {
        match &self.options.endpoint {
            Some(url) => Some(url.clone()),
            None => self.discovered.load_full().map(|u| String::clone(&u)),
        }
    }

    pub(super) fn forget_endpoint(&self) {
        self.discovered.store(None);
    }

    /// Finds the endpoint by discovery now, if that is how it is found (for
    /// [`AuthConfig::warm_up`](crate::AuthConfig::warm_up)).
    pub(crate) async fn warm_up(&self) -> Result<(), CallError> {
        let timeout = self.options.timeout;
        match tokio::time::timeout(timeout, self.endpoint()).await {
            Ok(found) => found.map(|_| ()),
            Err(_) => Err(CallError::Timeout),
        }
    }

    /// The cached answer for `token`, else the call in flight for it (started now if none).
    pub(crate) fn lookup(self: &Arc<Self>, token: &str) -> Lookup {
        let Some(digest) = self.key.digest(token.as_bytes()) else {
            return Lookup::Now(Err(CallError::Garbage("no HMAC")));
        };
        let now = self.clock.now();
        if let Some(answer) = self.cached(&digest, now) {
            crate::metrics::introspection_cache(match answer {
                Answer::Active { .. } => "hit_active",
                Answer::Inactive => "hit_inactive",
            });
            return Lookup::Now(Ok(answer));
        }
        crate::metrics::introspection_cache("miss");
        let mut flights = self.flights.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(rx) = flights.get(&digest) {
            return Lookup::Wait(Flight(rx.clone()));
        }
        if flights.len() >= self.options.max_in_flight {
            crate::metrics::introspection_call(CallError::Busy.kind(), None);
            return Lookup::Now(Err(CallError::Busy));
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::error!(
                target: "tower_token_auth::introspection",
                "introspection needs a tokio runtime"
            );
            return Lookup::Now(Err(CallError::Connect));
        };
        let (tx, rx) = watch::channel(None);
        flights.insert(digest, rx.clone());
        drop(flights);
        // A task of its own: a request that goes away does not cancel the call, and the
        // flight's slot is freed when the call ends (the timeout bounds it).
        runtime.spawn(Arc::clone(self).run(token.to_owned(), digest, tx));
        Lookup::Wait(Flight(rx))
    }

    async fn run(self: Arc<Self>, token: String, digest: Digest, tx: Sender) {
        #[cfg(feature = "redis")]
        if let Some(shared) = &self.options.shared {
            if let Some((answer, until)) = shared.get(&digest, self.clock.now()).await {
                crate::metrics::introspection_cache("hit_shared");
                self.store(digest, Ok(answer.clone()), until, self.clock.now());
                self.flights
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&digest);
                let _ = tx.send(Some(Ok(answer)));
                return;
            }
        }
        let started = std::time::Instant::now();
        let result = self.call(&token).await;
        drop(token);
        let seconds = started.elapsed().as_secs_f64();
        match &result {
            Ok(Answer::Active { exp, .. }) => {
                crate::metrics::introspection_call("active", Some(seconds));
                let ttl = secs(self.options.active_ttl);
                let now = self.clock.now();
                let until = exp.map_or(now.saturating_add(ttl), |exp| {
                    exp.min(now.saturating_add(ttl))
                });
                if ttl > 0 {
                    self.store(digest, result.clone(), until, now);
                    self.share(&digest, &result, until).await;
                }
            }
            Ok(Answer::Inactive) => {
                crate::metrics::introspection_call("inactive", Some(seconds));
                let ttl = secs(self.options.inactive_ttl);
                let now = self.clock.now();
                if ttl > 0 {
                    self.store(digest, result.clone(), now.saturating_add(ttl), now);
                    self.share(&digest, &result, now.saturating_add(ttl)).await;
                }
            }
            Err(e) => {
                *self
                    .last_error
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(*e);
                crate::metrics::introspection_call(e.kind(), Some(seconds));
                tracing::warn!(
                    target: "tower_token_auth::introspection",
                    endpoint = self.endpoint_name().as_deref().unwrap_or("(discovery)"),
                    error = %e,
                    "token introspection failed; requests get introspection_unavailable (503)"
                );
            }
        }
        // Stored before the flight ends, so a request arriving now finds the answer.
        self.flights
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&digest);
        let _ = tx.send(Some(result));
    }

    /// Shares an answer with the other instances, when configured.
    async fn share(&self, digest: &Digest, result: &Result<Answer, CallError>, until: i64) {
        #[cfg(feature = "redis")]
        if let (Some(shared), Ok(answer)) = (&self.options.shared, result) {
            shared.put(digest, answer, until).await;
        }
        #[cfg(not(feature = "redis"))]
        let _ = (digest, result, until);
    }

    /// The cached answer for `token`, without counting a lookup (for diagnosis).
    #[cfg_attr(not(feature = "diagnose"), allow(dead_code))]
    pub(crate) fn peek(&self, token: &str) -> Option<Answer> {
        let digest = self.key.digest(token.as_bytes())?;
        self.cached(&digest, self.clock.now())
    }

    /// Why the last failed call failed, as a sentence (never a token or a secret).
    #[cfg_attr(not(feature = "diagnose"), allow(dead_code))]
    pub(crate) fn last_error(&self) -> Option<String> {
        let last = *self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        last.map(|e| match e {
            CallError::Status(401 | 403) => format!(
                "{e}: the endpoint refused the client credentials (check the client id, secret and authentication method)"
            ),
            e => e.to_string(),
        })
    }

    fn cached(&self, digest: &Digest, now: i64) -> Option<Answer> {
        let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = cache.get(digest)?;
        (now < entry.until).then(|| entry.answer.clone())
    }

    fn store(&self, digest: Digest, result: Result<Answer, CallError>, until: i64, now: i64) {
        let Ok(answer) = result else { return };
        let capacity = self.options.cache_capacity;
        if capacity == 0 || until <= now {
            return;
        }
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= capacity && !cache.contains_key(&digest) {
            // Expired answers are swept at most once per second: a full cache of live
            // answers (a flood of distinct tokens) must not cost a full scan per insert.
            if self
                .last_sweep
                .swap(now, std::sync::atomic::Ordering::Relaxed)
                != now
            {
                cache.retain(|_, e| e.until > now);
            }
            if cache.len() >= capacity {
                // Full of live answers: drop an arbitrary one (a later request for it is
                // introspected again; the bound holds).
                if let Some(k) = cache.keys().next().copied() {
                    cache.remove(&k);
                }
            }
        }
        cache.insert(digest, Cached { answer, until });
    }

    /// The number of answers cached (for tests and stats).
    #[allow(dead_code)]
    pub(crate) fn cached_len(&self) -> usize {
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

fn secs(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}
