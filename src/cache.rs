//! The verified-token cache: a token seen before skips the signature check.
//!
//! The rule: a hit gives the verdict a full validation would give at that instant. So:
//!
//! - A hit requires **byte equality** with the verified token, compared in constant time.
//! - An entry is only used while the key set it was verified with is current **and usable**:
//!   when remote keys are refreshed (a new set is published), every entry of that issuer is
//!   re-verified once, so a key that left the set stops verifying cached tokens too; once
//!   remote keys are stale past `max_stale`, a cached token gets what a new token gets
//!   (`keys_unavailable`); and a hit schedules the background refresh when it is due, as a
//!   full validation does.
//! - The user's [`check`](crate::AuthConfigBuilder::check)s run again on every hit (their
//!   answer may change with time or outside state); the claims they read are kept in the entry
//!   only when checks are configured. A check that now fails sends the token through the full
//!   validation, so the rejection is exactly the one a new request would get.
//! - `exp` and `nbf` are re-checked against the configured clock (with the leeway) on every
//!   hit; revocation is still consulted.
//! - Memory is bounded: the cache is a fixed table of `capacity` slots (default 4096), each
//!   holding at most one token (a newer token whose hash lands on an occupied slot replaces
//!   the older one). An entry holds the token text, its deserialized claims and grants: about
//!   1–2 KiB for a typical access token, so the default costs at most a few MiB per layer.
//! - Slots are read lock-free (`arc-swap`).
//! - **Admission**: a verified token takes an empty slot at once, but replaces another token
//!   only on its second sighting (a doorkeeper bit set by the first; TinyLFU's idea). With more
//!   live tokens than slots (many users, each token seen once in a while), tokens that do not
//!   come back no longer evict ones that do, and a miss costs a bit test instead of an
//!   allocation, a copy and the drop of the evicted entry. The doorkeeper (8 bits per slot) is
//!   cleared as it fills, so "seen before" means recently. A resident that was hit since the last
//!   newcomer keeps its slot once more (a second chance, as in CLOCK), so two returning tokens
//!   that share a slot take turns instead of evicting each other on every request.
//!
//! On by default; [`TokenAuthLayer::cache_capacity`](crate::TokenAuthLayer::cache_capacity)
//! sizes or disables it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use subtle::ConstantTimeEq;

use crate::revocation::TokenRef;
use crate::scope::Grants;
use crate::validate::ClaimsMap;

/// Default number of slots.
pub const DEFAULT_CACHE_CAPACITY: usize = 4096;

/// A verified token.
pub(crate) struct Entry<T> {
    /// The slot hash of `token`: a miss is usually told by it, without reading the token.
    hash: u64,
    /// Set by a hit, cleared by a newcomer that was refused the slot: a resident in use gets
    /// a second chance (CLOCK), so two returning tokens sharing a slot do not evict each other
    /// forever.
    used: AtomicBool,
    token: Box<[u8]>,
    pub(crate) claims: Arc<T>,
    pub(crate) grants: Grants,
    exp: i64,
    nbf: Option<i64>,
    trust: usize,
    version: u64,
    jti: Option<Box<str>>,
    iss: Option<Box<str>>,
    sub: Option<Box<str>>,
    iat: Option<i64>,
    /// The verified claims as JSON, kept only when user checks must run again on hits.
    checked: Option<Arc<ClaimsMap>>,
    /// The token's confirmation, when it is bound: the binding step runs on every hit.
    pub(crate) cnf: Option<Arc<crate::binding::Cnf>>,
}

impl<T> Entry<T> {
    pub(crate) fn token_ref(&self) -> TokenRef<'_> {
        TokenRef {
            jti: self.jti.as_deref(),
            iss: self.iss.as_deref(),
            sub: self.sub.as_deref(),
            iat: self.iat,
            exp: Some(self.exp),
        }
    }
}

/// A random seed from the standard library's keyed hasher (randomly keyed per process).
fn random_seed() -> u64 {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_usize(0x7474_6163);
    h.finish()
}

/// Constant-time equality of two byte strings of the same length (a length mismatch returns
/// early: lengths are not secret). Eight bytes at a time, accumulated without branching on the
/// contents; the final comparison goes through `subtle`.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut acc = 0u64;
    let mut ca = a.chunks_exact(8);
    let mut cb = b.chunks_exact(8);
    for (x, y) in (&mut ca).zip(&mut cb) {
        let mut xa = [0u8; 8];
        let mut ya = [0u8; 8];
        xa.copy_from_slice(x);
        ya.copy_from_slice(y);
        acc |= u64::from_ne_bytes(xa) ^ u64::from_ne_bytes(ya);
    }
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        acc |= u64::from(x ^ y);
    }
    bool::from(acc.ct_eq(&0))
}

/// What the cache knows of a token.
pub(crate) enum Hit<T> {
    /// Verified and valid now.
    Valid(Arc<Entry<T>>),
    /// Verified earlier, expired now (its `exp`).
    Expired(i64),
    /// Not usable from the cache: validate in full.
    Miss,
}

/// Where the cache stands for one request's token.
pub(crate) struct TokenCache<T> {
    slots: Box<[ArcSwapOption<Entry<T>>]>,
    /// Tokens seen once, by hash (see the module docs: admission).
    doorkeeper: Box<[AtomicU64]>,
    /// Bits set in the doorkeeper since it was last cleared.
    marked: AtomicU64,
    seed: u64,
    hits: AtomicU64,
    misses: AtomicU64,
}

/// Counters of a layer's verified-token cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Slots in the table (0: the cache is off).
    pub capacity: usize,
    /// Requests answered from the cache.
    pub hits: u64,
    /// Requests whose token was not (usably) cached.
    pub misses: u64,
}

impl<T> TokenCache<T> {
    pub(crate) fn new(capacity: usize) -> Option<Arc<Self>> {
        if capacity == 0 {
            return None;
        }
        let slots = (0..capacity).map(|_| ArcSwapOption::empty()).collect();
        // 8 bits per slot (at least 256), in 64-bit words.
        let words = capacity.div_ceil(8).max(4);
        Some(Arc::new(TokenCache {
            slots,
            doorkeeper: (0..words).map(|_| AtomicU64::new(0)).collect(),
            marked: AtomicU64::new(0),
            seed: random_seed(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }))
    }

    fn hash(&self, token: &[u8]) -> u64 {
        // The tail of a token is its signature: random bytes that differ between tokens. A
        // multiplicative hash of the last 8 bytes and the length, keyed with a random seed,
        // spreads tokens over the slots at the cost of a few instructions. Collisions only cost
        // a miss (hits compare every byte), and without the seed nobody can aim at a slot.
        let mut tail = [0u8; 8];
        let n = token.len().min(8);
        tail[..n].copy_from_slice(&token[token.len() - n..]);
        (u64::from_le_bytes(tail) ^ self.seed ^ (token.len() as u64).rotate_left(32))
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }

    fn slot(&self, hash: u64) -> usize {
        ((hash >> 32) as usize) % self.slots.len()
    }

    /// Marks a token as seen; `true` if it was seen before (since the last clearing). A small
    /// Bloom filter: two bits per token, cleared when an eighth of the bits' worth of tokens
    /// were marked, so at most about a quarter of the bits are set and a token seen for the
    /// first time passes for a returning one in a few percent of cases at worst.
    fn seen_before(&self, hash: u64) -> bool {
        let bits = self.doorkeeper.len() as u64 * 64;
        // Remixed (a multiplicative hash's low bits are weak), two pieces of the high half.
        let h = (hash ^ (hash >> 29)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        let mut seen = true;
        for bit in [(h >> 44) % bits, ((h >> 24) & 0xF_FFFF) % bits] {
            let mask = 1u64 << (bit % 64);
            let word = &self.doorkeeper[(bit / 64) as usize];
            seen &= word.fetch_or(mask, Ordering::Relaxed) & mask != 0;
        }
        if seen {
            return true;
        }
        if self.marked.fetch_add(1, Ordering::Relaxed) + 1 >= bits / 8 {
            self.marked.store(0, Ordering::Relaxed);
            for w in self.doorkeeper.iter() {
                w.store(0, Ordering::Relaxed);
            }
        }
        false
    }

    pub(crate) fn stats(&self) -> CacheStats {
        CacheStats {
            capacity: self.slots.len(),
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
        }
    }

    /// What the cache knows of `token` at `now` (see the module docs for the rule).
    /// `usable_version(trust)` is the version of that issuer's key set if it is usable now
    /// (`None`: remote keys stale past the bound); `checks_pass` runs the user checks.
    pub(crate) fn get(
        &self,
        token: &str,
        now: i64,
        leeway: i64,
        usable_version: impl Fn(usize) -> Option<u64>,
        checks_pass: impl Fn(&ClaimsMap) -> bool,
    ) -> Hit<T> {
        let found = self.lookup(token, now, leeway, usable_version, checks_pass);
        let counter = if matches!(found, Hit::Miss) {
            &self.misses
        } else {
            &self.hits
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    fn lookup(
        &self,
        token: &str,
        now: i64,
        leeway: i64,
        usable_version: impl Fn(usize) -> Option<u64>,
        checks_pass: impl Fn(&ClaimsMap) -> bool,
    ) -> Hit<T> {
        let bytes = token.as_bytes();
        let hash = self.hash(bytes);
        // A guard, not a reference count: a miss writes nothing to the (cold, shared) entry.
        let guard = self.slots[self.slot(hash)].load();
        let Some(entry) = guard.as_ref() else {
            return Hit::Miss;
        };
        // Another token, told by the keyed hash (nothing about the token's bytes can be
        // learned from this early return: the seed is secret); the same hash is confirmed by
        // every byte, in constant time.
        if entry.hash != hash || !ct_eq(&entry.token, bytes) {
            return Hit::Miss;
        }
        // Keys first: with another key set, or none usable, the full validation decides
        // (it may reject for the key before the time).
        if usable_version(entry.trust) != Some(entry.version) {
            return Hit::Miss;
        }
        if let Some(claims) = &entry.checked {
            if !checks_pass(claims) {
                return Hit::Miss;
            }
        }
        if now >= entry.exp.saturating_add(leeway) {
            // Byte-equal to a token whose signature verified: it is simply expired now.
            return Hit::Expired(entry.exp);
        }
        if entry
            .nbf
            .is_some_and(|nbf| now.saturating_add(leeway) < nbf)
        {
            return Hit::Miss;
        }
        // Written only when it changes, so repeated hits only read the line.
        if !entry.used.load(Ordering::Relaxed) {
            entry.used.store(true, Ordering::Relaxed);
        }
        Hit::Valid(Arc::clone(entry))
    }

    /// Remembers a verified token.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn insert(&self, token: &str, claims: Arc<T>, grants: Grants, facts: CacheFacts) {
        let Some(exp) = facts.exp else {
            return;
        };
        let bytes = token.as_bytes();
        let hash = self.hash(bytes);
        let slot = &self.slots[self.slot(hash)];
        // Admission: an empty slot, the same token again (re-verified after a key refresh), or
        // a token seen before; otherwise the token is only marked as seen.
        // Every verified token is marked, so one cached in an empty slot is known when it
        // comes back after an eviction.
        let seen = self.seen_before(hash);
        let admit = match &*slot.load() {
            None => true,
            Some(old) if old.hash == hash => true,
            // A resident hit since the last newcomer keeps its slot this time.
            Some(old) => seen && !old.used.swap(false, Ordering::Relaxed),
        };
        if !admit {
            return;
        }
        let entry = Entry {
            hash,
            used: AtomicBool::new(false),
            token: bytes.into(),
            claims,
            grants,
            exp,
            nbf: facts.nbf,
            trust: facts.trust,
            version: facts.version,
            jti: facts.jti,
            iss: facts.iss,
            sub: facts.sub,
            iat: facts.iat,
            checked: facts.checked,
            cnf: facts.cnf,
        };
        slot.store(Some(Arc::new(entry)));
    }
}

/// What the validator knows about a verified token that the cache needs.
#[derive(Default)]
pub(crate) struct CacheFacts {
    pub(crate) exp: Option<i64>,
    pub(crate) nbf: Option<i64>,
    pub(crate) trust: usize,
    pub(crate) version: u64,
    pub(crate) jti: Option<Box<str>>,
    pub(crate) iss: Option<Box<str>>,
    pub(crate) sub: Option<Box<str>>,
    pub(crate) iat: Option<i64>,
    pub(crate) checked: Option<Arc<ClaimsMap>>,
    pub(crate) cnf: Option<Arc<crate::binding::Cnf>>,
}

#[cfg(test)]
mod tests {
    use super::{ct_eq, CacheFacts, Hit, TokenCache};
    use crate::grants::Grants;
    use std::sync::Arc;

    fn insert(cache: &TokenCache<()>, token: &str) {
        let facts = CacheFacts {
            exp: Some(2_000_000_000),
            ..CacheFacts::default()
        };
        cache.insert(token, Arc::new(()), Grants::default(), facts);
    }

    fn cached(cache: &TokenCache<()>, token: &str) -> bool {
        matches!(
            cache.get(token, 1_700_000_000, 0, |_| Some(0), |_| true),
            Hit::Valid(_)
        )
    }

    #[test]
    fn a_token_seen_once_does_not_evict_another() {
        let cache = TokenCache::<()>::new(1).unwrap();
        insert(&cache, "token-a");
        assert!(cached(&cache, "token-a"), "an empty slot admits at once");
        insert(&cache, "token-b");
        assert!(cached(&cache, "token-a"), "a first sighting does not evict");
        assert!(!cached(&cache, "token-b"));
        insert(&cache, "token-b");
        assert!(
            !cached(&cache, "token-b"),
            "a resident hit since the last newcomer keeps its slot once more"
        );
        insert(&cache, "token-b");
        assert!(cached(&cache, "token-b"), "then a returning token takes it");
        assert!(!cached(&cache, "token-a"));
    }

    #[test]
    fn tokens_seen_once_rarely_evict() {
        let cache = TokenCache::<()>::new(1).unwrap();
        insert(&cache, "resident");
        let mut evictions = 0;
        for i in 0..1000 {
            let token = format!("once-{i}");
            insert(&cache, &token);
            if cached(&cache, &token) {
                evictions += 1;
            }
        }
        assert!(
            evictions < 100,
            "{evictions} of 1000 first sightings evicted"
        );
    }

    #[test]
    fn the_doorkeeper_is_cleared_when_an_eighth_is_used() {
        let cache = TokenCache::<()>::new(1).unwrap();
        let bits = cache.doorkeeper.len() as u64 * 64;
        let set = |c: &TokenCache<()>| -> u32 {
            c.doorkeeper
                .iter()
                .map(|w| w.load(std::sync::atomic::Ordering::Relaxed).count_ones())
                .sum()
        };
        let mut first = 0;
        let mut i = 0u64;
        while first < bits / 8 - 1 {
            // Distinct low halves, spread over the bits.
            if !cache.seen_before(i.wrapping_mul(0x9E37_79B9) & 0xFFFF_FFFF) {
                first += 1;
            }
            i += 1;
        }
        assert!(set(&cache) > 0);
        while set(&cache) > 0 {
            cache.seen_before(i.wrapping_mul(0x9E37_79B9) & 0xFFFF_FFFF);
            i += 1;
        }
        assert_eq!(cache.marked.load(std::sync::atomic::Ordering::Relaxed), 0);
    }

    #[test]
    fn ct_eq_compares_every_byte() {
        let a: Vec<u8> = (0..=250u8).collect();
        assert!(ct_eq(&a, &a.clone()));
        for i in 0..a.len() {
            let mut b = a.clone();
            b[i] ^= 1;
            assert!(!ct_eq(&a, &b), "difference at byte {i} missed");
        }
        assert!(!ct_eq(&a, &a[..250]));
        assert!(ct_eq(b"", b""));
    }
}
