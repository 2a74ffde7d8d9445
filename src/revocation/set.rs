//! The set of revocations both stores keep in memory: the whole store for
//! [`MemoryRevocationStore`](super::MemoryRevocationStore), the local cache for the Redis store.
//!
//! An entry is kept until an instant (`until`, seconds since the epoch) and is live while
//! `until > now`. Each store decides what `until` is: the memory store adds its grace to the
//! `exp` it was given, the Redis store stores `exp` + grace already.

use std::collections::HashMap;

use super::TokenRef;

/// `true` if a subject entry with cut-off `cut_off` revokes a token issued at `iat`: tokens
/// issued at or before the cut-off are revoked (`iat` has one-second resolution), and a token
/// without `iat` cannot show it came after it.
pub(crate) fn subject_revokes(cut_off: i64, iat: Option<i64>) -> bool {
    iat.is_none_or(|iat| iat <= cut_off)
}

/// Revoked tokens (`jti` → kept until) and subjects (subject → issued-at-or-before cut-off,
/// kept until).
#[derive(Clone, Debug, Default)]
pub(crate) struct RevocationSet {
    tokens: HashMap<String, i64>,
    subjects: HashMap<String, (i64, i64)>,
}

impl RevocationSet {
    /// Entries kept, live or not yet pruned.
    pub(crate) fn len(&self) -> usize {
        self.tokens.len() + self.subjects.len()
    }

    /// Token entries kept.
    pub(crate) fn tokens(&self) -> usize {
        self.tokens.len()
    }

    /// Subject entries kept.
    pub(crate) fn subjects(&self) -> usize {
        self.subjects.len()
    }

    /// `true` if a live entry revokes `token` at `now`: its `jti`, or its subject with
    /// [`subject_revokes`].
    pub(crate) fn revokes(&self, token: &TokenRef<'_>, now: i64) -> bool {
        if let Some(jti) = token.jti {
            if self.tokens.get(jti).is_some_and(|until| *until > now) {
                return true;
            }
        }
        if let Some(sub) = token.sub {
            if let Some((cut_off, until)) = self.subjects.get(sub) {
                if *until > now {
                    return subject_revokes(*cut_off, token.iat);
                }
            }
        }
        false
    }

    /// Adds `jti` until `until`; a known `jti` keeps the later instant.
    pub(crate) fn revoke_token(&mut self, jti: &str, until: i64) {
        if let Some(u) = self.tokens.get_mut(jti) {
            *u = (*u).max(until);
        } else {
            self.tokens.insert(jti.to_owned(), until);
        }
    }

    /// Adds `subject`'s tokens issued at or before `cut_off`, until `until`; a known subject
    /// keeps the later cut-off and the later instant.
    pub(crate) fn revoke_subject(&mut self, subject: &str, cut_off: i64, until: i64) {
        if let Some((c, u)) = self.subjects.get_mut(subject) {
            *c = (*c).max(cut_off);
            *u = (*u).max(until);
        } else {
            self.subjects.insert(subject.to_owned(), (cut_off, until));
        }
    }

    /// Drops the entries that are no longer live at `now`.
    pub(crate) fn prune(&mut self, now: i64) {
        self.tokens.retain(|_, until| *until > now);
        self.subjects.retain(|_, (_, until)| *until > now);
    }
}

/// What only the Redis store's cache needs (bounded inserts, counts, housekeeping).
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
impl RevocationSet {
    /// `true` if the set holds an entry (live or not) for `jti`.
    pub(crate) fn has_token(&self, jti: &str) -> bool {
        self.tokens.contains_key(jti)
    }

    /// `true` if the set holds an entry (live or not) for `subject`.
    pub(crate) fn has_subject(&self, subject: &str) -> bool {
        self.subjects.contains_key(subject)
    }

    /// Entries live at `now`.
    pub(crate) fn live(&self, now: i64) -> usize {
        self.tokens.values().filter(|until| **until > now).count()
            + self
                .subjects
                .values()
                .filter(|(_, until)| *until > now)
                .count()
    }

    /// `true` if some entry is no longer live at `now` (a [`prune`](Self::prune) would drop it).
    pub(crate) fn has_expired(&self, now: i64) -> bool {
        self.tokens.values().any(|until| *until <= now)
            || self.subjects.values().any(|(_, until)| *until <= now)
    }

    /// The subject entry, for tests.
    #[cfg(test)]
    pub(crate) fn subject(&self, subject: &str) -> Option<(i64, i64)> {
        self.subjects.get(subject).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t<'a>(jti: Option<&'a str>, sub: Option<&'a str>, iat: Option<i64>) -> TokenRef<'a> {
        TokenRef {
            jti,
            iss: None,
            sub,
            iat,
            exp: None,
        }
    }

    #[test]
    fn a_token_entry_revokes_until_its_instant() {
        let mut s = RevocationSet::default();
        s.revoke_token("a", 100);
        assert!(s.revokes(&t(Some("a"), None, None), 99));
        assert!(!s.revokes(&t(Some("a"), None, None), 100));
        assert!(!s.revokes(&t(Some("b"), None, None), 0));
        assert!(!s.revokes(&t(None, Some("a"), None), 0));
    }

    #[test]
    fn a_subject_entry_revokes_tokens_issued_at_or_before_the_cut_off() {
        let mut s = RevocationSet::default();
        s.revoke_subject("alice", 50, 100);
        let at = |iat| t(None, Some("alice"), iat);
        assert!(s.revokes(&at(Some(49)), 0));
        assert!(s.revokes(&at(Some(50)), 0)); // the same second
        assert!(!s.revokes(&at(Some(51)), 0));
        assert!(s.revokes(&at(None), 0)); // cannot show it came after
        assert!(!s.revokes(&at(Some(10)), 100)); // kept until 100
        assert!(!s.revokes(&t(None, Some("bob"), Some(10)), 0));
        assert!(subject_revokes(5, Some(5)));
        assert!(!subject_revokes(5, Some(6)));
        assert!(subject_revokes(5, None));
    }

    #[test]
    fn either_entry_revokes() {
        let mut s = RevocationSet::default();
        s.revoke_token("j", 100);
        s.revoke_subject("alice", 50, 100);
        assert!(s.revokes(&t(Some("j"), Some("alice"), Some(60)), 0));
        assert!(s.revokes(&t(Some("k"), Some("alice"), Some(40)), 0));
        assert!(!s.revokes(&t(Some("k"), Some("alice"), Some(60)), 0));
    }

    #[test]
    fn entries_merge_to_the_later_instants() {
        let mut s = RevocationSet::default();
        s.revoke_token("a", 100);
        s.revoke_token("a", 50);
        assert!(s.revokes(&t(Some("a"), None, None), 99));
        s.revoke_subject("s", 10, 50);
        s.revoke_subject("s", 5, 80);
        assert_eq!(s.subject("s"), Some((10, 80)));
        s.revoke_subject("s", 20, 60);
        assert_eq!(s.subject("s"), Some((20, 80)));
        assert_eq!((s.tokens(), s.subjects(), s.len()), (1, 1, 2));
        assert!(s.has_token("a") && s.has_subject("s"));
        assert!(!s.has_token("s") && !s.has_subject("a"));
    }

    #[test]
    fn pruning_drops_only_what_is_no_longer_live() {
        let mut s = RevocationSet::default();
        s.revoke_token("a", 10);
        s.revoke_token("b", 20);
        s.revoke_subject("s", 0, 10);
        assert_eq!(s.live(10), 1);
        assert!(s.has_expired(10));
        assert!(!s.has_expired(9));
        assert_eq!(s.len(), 3);
        s.prune(10);
        assert_eq!(s.len(), 1);
        assert!(!s.has_expired(10));
        assert!(s.has_token("b"));
    }
}
