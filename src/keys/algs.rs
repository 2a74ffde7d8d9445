//! Algorithm sets, and which algorithms each kind of key may verify.

use std::fmt;

use jsonwebtoken::Algorithm;

/// A set of algorithms as a bit mask (12 algorithms).
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct AlgSet(u16);

pub(crate) const ALL_ALGORITHMS: [Algorithm; 12] = [
    Algorithm::HS256,
    Algorithm::HS384,
    Algorithm::HS512,
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

fn alg_bit(alg: Algorithm) -> u16 {
    let i = ALL_ALGORITHMS.iter().position(|a| *a == alg).unwrap_or(15);
    1 << i
}

impl AlgSet {
    pub(crate) fn of(algs: impl IntoIterator<Item = Algorithm>) -> Self {
        AlgSet(algs.into_iter().fold(0, |m, a| m | alg_bit(a)))
    }
    pub(crate) fn all() -> Self {
        AlgSet::of(ALL_ALGORITHMS)
    }
    pub(crate) fn contains(self, alg: Algorithm) -> bool {
        self.0 & alg_bit(alg) != 0
    }
    pub(crate) fn and(self, other: AlgSet) -> Self {
        AlgSet(self.0 & other.0)
    }
    pub(crate) fn or(self, other: AlgSet) -> Self {
        AlgSet(self.0 | other.0)
    }
    pub(crate) fn is_empty(self) -> bool {
        self.0 == 0
    }
    pub(crate) fn iter(self) -> impl Iterator<Item = Algorithm> {
        ALL_ALGORITHMS
            .into_iter()
            .filter(move |a| self.contains(*a))
    }
}

impl fmt::Debug for AlgSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// The algorithms an RSA key may verify (and the issuer may sign with).
pub(crate) const RSA_ALGS: [Algorithm; 6] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];

/// The HMAC algorithms and the shortest secret (bytes) each accepts: the hash output size.
/// The one table for what an HMAC secret may verify and for the errors about short secrets.
pub(crate) const HMAC_MIN_LEN: [(Algorithm, usize); 3] = [
    (Algorithm::HS256, 32),
    (Algorithm::HS384, 48),
    (Algorithm::HS512, 64),
];

/// The shortest secret `alg` accepts, or `None` if `alg` is not an HMAC algorithm.
pub(crate) fn hmac_min_len(alg: Algorithm) -> Option<usize> {
    HMAC_MIN_LEN
        .iter()
        .find(|(a, _)| *a == alg)
        .map(|(_, need)| *need)
}

/// The HMAC algorithms a secret of `len` bytes may verify.
pub(crate) fn hmac_algs(len: usize) -> Vec<Algorithm> {
    HMAC_MIN_LEN
        .iter()
        .filter(|(_, need)| len >= *need)
        .map(|(alg, _)| *alg)
        .collect()
}
