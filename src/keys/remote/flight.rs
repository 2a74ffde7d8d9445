//! Single flight: one fetch at a time per source. A fetch decided by a request runs as a task
//! of its own holding the fetch slot; requests wait for it through a [`Flight`], and the
//! cool-down or back-off it claimed is given back if it never completes.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::state::{RemoteKeys, Snapshot, UNAVAILABLE_RETRY_SECS};

impl RemoteKeys {
    /// For a request with no usable keys: the fetch to wait for (started now if the back-off
    /// allows one, or the one already running), or `None` if the request must get
    /// `keys_unavailable` now.
    pub(super) fn fetch_for_unavailable(self: &Arc<Self>) -> Option<Flight> {
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
    pub(super) fn fetch_for_unknown_kid(self: &Arc<Self>, seen_version: u64) -> Option<Flight> {
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
}

/// Why a fetch runs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum FetchKind {
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

#[cfg(test)]
mod tests {
    use super::super::Remote;
    use crate::clock::ManualClock;
    use crate::error::ConfigError;
    use crate::keys::AlgSet;
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
}
