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
//! [`Clock`](crate::clock::Clock), so tests can simulate an hour-long outage in a millisecond.

mod fetch;
mod flight;
mod options;
mod resolve;
mod state;

pub(crate) use flight::Flight;
pub use options::Remote;
pub(crate) use state::RemoteKeys;
