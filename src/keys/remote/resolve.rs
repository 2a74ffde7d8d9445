//! The one call the validation makes to remote keys: [`RemoteKeys::resolve`]. Whether to
//! fetch, join a running fetch or answer now stays here, behind it.

use std::sync::Arc;

use jsonwebtoken::Algorithm;

use super::state::{RemoteKeys, Snapshot};
use crate::keys::{AlgSet, Lookup, Pending, Unresolved};

impl RemoteKeys {
    /// Runs `verify` with the key for `kid`/`alg` in the current set (or why there is none),
    /// unless the set must be fetched first: then the shared fetch to wait for (only with
    /// `may_fetch`), or `keys_unavailable`.
    ///
    /// `allowed` is the configuration's allow-list: an unknown `kid` whose algorithm it allows
    /// is an unknown key (it may trigger a refetch), not a disallowed algorithm (the provider
    /// may have rotated to a key of another algorithm).
    pub(crate) fn resolve<R>(
        self: &Arc<Self>,
        kid: Option<&str>,
        alg: Algorithm,
        allowed: AlgSet,
        may_fetch: bool,
        verify: impl FnOnce(Lookup<'_>, u64) -> R,
    ) -> Result<R, Unresolved> {
        let (set, version) = match self.snapshot() {
            Snapshot::Keys(set, version) => (set, version),
            Snapshot::Unavailable => {
                if may_fetch {
                    if let Some(flight) = self.fetch_for_unavailable() {
                        return Err(Unresolved::Wait(Pending(flight)));
                    }
                }
                return Err(Unresolved::Unavailable(self.unavailable()));
            }
        };
        let mut lookup = set.lookup(kid, alg);
        if matches!(lookup, Lookup::AlgNotAllowed)
            && allowed.contains(alg)
            && kid.is_some_and(|k| !set.has_kid(k))
        {
            lookup = Lookup::UnknownKey;
        }
        // An unknown `kid`: refetch once per cool-down, join a running fetch, or check again
        // if the set changed since it was read; otherwise `unknown_key` at once.
        if matches!(lookup, Lookup::UnknownKey) && may_fetch && kid.is_some() {
            if let Some(flight) = self.fetch_for_unknown_kid(version) {
                return Err(Unresolved::Wait(Pending(flight)));
            }
        }
        Ok(verify(lookup, version))
    }
}
