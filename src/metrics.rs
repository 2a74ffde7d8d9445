//! Metrics through the `metrics` facade (feature `metrics`); no-ops without it.
//!
//! | name | kind | labels |
//! |---|---|---|
//! | `tower_token_auth_requests_total` | counter | `result` (`accepted`, `rejected`, `anonymous`), `reason` (a [`Reason`](crate::Reason) code, or `none`) |
//! | `tower_token_auth_validation_seconds` | histogram | `result` |
//! | `tower_token_auth_key_fetches_total` | counter | `result` (`ok`, or an error kind: `connect`, `status`, `timeout`, `too_large`, `jwks`, `discovery`) |
//! | `tower_token_auth_unknown_kid_refetches_total` | counter | |
//! | `tower_token_auth_stale_keys_served_total` | counter | |
//! | `tower_token_auth_key_set_age_seconds` | gauge | set at each fetch attempt |
//! | `tower_token_auth_introspection_calls_total` | counter | `result` (`active`, `inactive`, or an error kind: `connect`, `timeout`, `status`, `too_large`, `garbage`, `discovery`, `busy`) |
//! | `tower_token_auth_introspection_seconds` | histogram | `result` (as above; not for `busy`) |
//! | `tower_token_auth_introspection_cache_total` | counter | `result` (`hit_active`, `hit_inactive`, `miss`, `hit_shared`: a miss answered by another instance through Redis) |
//!
//! Labels never carry token text, issuers, key ids or any other request-controlled value.

#[cfg(feature = "metrics")]
mod imp {
    pub(crate) fn request(result: &'static str, reason: &'static str, seconds: Option<f64>) {
        metrics::counter!("tower_token_auth_requests_total", "result" => result, "reason" => reason)
            .increment(1);
        if let Some(s) = seconds {
            metrics::histogram!("tower_token_auth_validation_seconds", "result" => result)
                .record(s);
        }
    }

    #[cfg(feature = "remote")]
    pub(crate) fn key_fetch(result: &'static str) {
        metrics::counter!("tower_token_auth_key_fetches_total", "result" => result).increment(1);
    }

    #[cfg(feature = "remote")]
    pub(crate) fn unknown_kid_refetch() {
        metrics::counter!("tower_token_auth_unknown_kid_refetches_total").increment(1);
    }

    #[cfg(feature = "remote")]
    pub(crate) fn stale_served() {
        metrics::counter!("tower_token_auth_stale_keys_served_total").increment(1);
    }

    #[cfg(feature = "remote")]
    pub(crate) fn key_set_age(seconds: i64) {
        metrics::gauge!("tower_token_auth_key_set_age_seconds").set(seconds as f64);
    }

    #[cfg(feature = "remote")]
    pub(crate) fn introspection_call(result: &'static str, seconds: Option<f64>) {
        metrics::counter!("tower_token_auth_introspection_calls_total", "result" => result)
            .increment(1);
        if let Some(s) = seconds {
            metrics::histogram!("tower_token_auth_introspection_seconds", "result" => result)
                .record(s);
        }
    }

    #[cfg(feature = "remote")]
    pub(crate) fn introspection_cache(result: &'static str) {
        metrics::counter!("tower_token_auth_introspection_cache_total", "result" => result)
            .increment(1);
    }
}

#[cfg(not(feature = "metrics"))]
#[allow(dead_code)]
mod imp {
    #[inline(always)]
    pub(crate) fn request(_result: &'static str, _reason: &'static str, _seconds: Option<f64>) {}
    #[inline(always)]
    pub(crate) fn key_fetch(_result: &'static str) {}
    #[inline(always)]
    pub(crate) fn unknown_kid_refetch() {}
    #[inline(always)]
    pub(crate) fn stale_served() {}
    #[inline(always)]
    pub(crate) fn key_set_age(_seconds: i64) {}
    #[inline(always)]
    pub(crate) fn introspection_call(_result: &'static str, _seconds: Option<f64>) {}
    #[inline(always)]
    pub(crate) fn introspection_cache(_result: &'static str) {}
}

#[allow(unused_imports)]
pub(crate) use imp::*;

/// A start instant when metrics are on (validation latency), nothing otherwise.
#[derive(Clone, Copy)]
pub(crate) struct Timer(#[cfg(feature = "metrics")] std::time::Instant);

impl Timer {
    #[inline(always)]
    pub(crate) fn start() -> Self {
        Timer(
            #[cfg(feature = "metrics")]
            std::time::Instant::now(),
        )
    }

    #[inline(always)]
    pub(crate) fn seconds(self) -> Option<f64> {
        #[cfg(feature = "metrics")]
        {
            Some(self.0.elapsed().as_secs_f64())
        }
        #[cfg(not(feature = "metrics"))]
        {
            None
        }
    }
}
