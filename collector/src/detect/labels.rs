//! Label sets as the engine keeps them: one interned copy of each name and
//! value ([`Strings`]), one shared key per series ([`Key`]), and entries found
//! by label set ([`ByLabels`]) in constant time however many a host reports.
//!
//! A source or a rule usually has a handful of entries (one per disk,
//! filesystem, database…): those are a vector scanned in place, which costs
//! far less memory than a map's nodes. Past [`INDEX_FROM`] entries a hash index
//! joins the vector, so a report of 20,000 series costs 20,000 lookups, not
//! 20,000 scans of everything the host ever sent (which made evaluation grow
//! with the square of the report's size).

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::Arc;

pub(super) type Labels = BTreeMap<String, String>;

/// A series' labels, stored once and shared by its rule states.
pub(super) type Key = Arc<[(Arc<str>, Arc<str>)]>;

/// Entries of a [`ByLabels`] from which lookups go through a hash index.
const INDEX_FROM: usize = 16;

/// Entries by label set: a vector, indexed by hash once it is long.
#[derive(Debug)]
pub(super) struct ByLabels<V> {
    entries: Vec<(Key, V)>,
    index: Option<Box<Index>>,
}

/// Position of an entry by the hash of its labels. Hashes are keyed per index
/// (label values come from agents: no chosen collisions). Two label sets with
/// the same hash keep the first in the index; the other is found by a scan,
/// which the lookup falls back to whenever the indexed entry is not the one.
#[derive(Debug)]
struct Index {
    state: RandomState,
    at: HashMap<u64, u32>,
}

impl Index {
    fn hash<'a>(&self, pairs: impl Iterator<Item = (&'a str, &'a str)>) -> u64 {
        let mut h = self.state.build_hasher();
        for (k, v) in pairs {
            k.hash(&mut h);
            v.hash(&mut h);
        }
        h.finish()
    }

    fn of_key(&self, key: &Key) -> u64 {
        self.hash(key.iter().map(|(k, v)| (k.as_ref(), v.as_ref())))
    }

    fn of_labels(&self, labels: &Labels) -> u64 {
        self.hash(labels.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }
}

impl<V> Default for ByLabels<V> {
    fn default() -> Self {
        ByLabels {
            entries: Vec::new(),
            index: None,
        }
    }
}

fn same(k: &Key, labels: &Labels) -> bool {
    k.len() == labels.len() && k.iter().zip(labels).all(|((a, b), (c, d))| **a == **c && **b == **d)
}

impl<V> ByLabels<V> {
    /// Where the entry for `labels` is; `work` counts the label sets compared.
    pub(super) fn find(&self, labels: &Labels, work: &mut u64) -> Option<usize> {
        let scan = |work: &mut u64| {
            let at = self.entries.iter().position(|(k, _)| same(k, labels));
            *work += at.map_or(self.entries.len(), |i| i + 1) as u64;
            at
        };
        let Some(index) = &self.index else {
            return scan(work);
        };
        let i = *index.at.get(&index.of_labels(labels))? as usize;
        *work += 1;
        match self.entries.get(i) {
            Some((k, _)) if same(k, labels) => Some(i),
            // A collision: the indexed entry is another label set.
            _ => scan(work),
        }
    }

    /// Adds an entry (its labels must not be there yet); returns its position.
    pub(super) fn insert(&mut self, key: Key, value: V) -> usize {
        let i = self.entries.len();
        if let Some(index) = &mut self.index {
            let h = index.of_key(&key);
            index.at.entry(h).or_insert(i as u32);
        }
        self.entries.push((key, value));
        if self.index.is_none() && self.entries.len() > INDEX_FROM {
            self.reindex();
        }
        i
    }

    #[cfg(test)]
    fn get(&self, i: usize) -> Option<(&Key, &V)> {
        self.entries.get(i).map(|(k, v)| (k, v))
    }

    pub(super) fn get_mut(&mut self, i: usize) -> Option<(&Key, &mut V)> {
        self.entries.get_mut(i).map(|(k, v)| (&*k, v))
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Every entry with its labels, in insertion order.
    pub(super) fn entries(&self) -> impl Iterator<Item = (&Key, &V)> {
        self.entries.iter().map(|(k, v)| (k, v))
    }

    pub(super) fn values(&self) -> impl Iterator<Item = &V> {
        self.entries.iter().map(|(_, v)| v)
    }

    pub(super) fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.entries.iter_mut().map(|(_, v)| v)
    }

    /// Keeps the entries `f` says to keep (it may change them).
    pub(super) fn retain_mut(&mut self, f: impl FnMut(&mut (Key, V)) -> bool) {
        let before = self.entries.len();
        self.entries.retain_mut(f);
        if self.entries.len() != before {
            self.reindex();
        }
    }

    /// Rebuilds the index after entries moved (none while the vector is short).
    fn reindex(&mut self) {
        if self.entries.len() <= INDEX_FROM {
            self.index = None;
            if self.entries.capacity() > 2 * INDEX_FROM {
                self.entries.shrink_to(INDEX_FROM);
            }
            return;
        }
        let mut index = self.index.take().unwrap_or_else(|| {
            Box::new(Index {
                state: RandomState::new(),
                at: HashMap::new(),
            })
        });
        index.at.clear();
        for (i, (k, _)) in self.entries.iter().enumerate() {
            let h = index.of_key(k);
            index.at.entry(h).or_insert(i as u32);
        }
        self.index = Some(index);
    }
}

/// Label names and values, one copy each across the fleet: the same
/// `device`, `mountpoint`, `/var` or `sda` recur on every host. A string no
/// series holds any more is let go (label values that change every report
/// would otherwise pile up for ever), checked whenever the set has doubled
/// since the last check, so the cost stays constant per string added.
#[derive(Debug, Default)]
pub(super) struct Strings {
    set: HashSet<Arc<str>>,
    /// Size of the set after the last sweep.
    swept_at: usize,
}

impl Strings {
    /// The shared copy of `s`.
    pub(super) fn intern(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.set.get(s) {
            return a.clone();
        }
        if self.set.len() >= (2 * self.swept_at).max(1024) {
            // Held by the set alone: no series uses it.
            self.set.retain(|a| Arc::strong_count(a) > 1);
            self.swept_at = self.set.len();
        }
        let a: Arc<str> = Arc::from(s);
        self.set.insert(a.clone());
        a
    }

    /// A series' labels as one shared key, each string interned.
    pub(super) fn key(&mut self, labels: &Labels) -> Key {
        labels.iter().map(|(k, v)| (self.intern(k), self.intern(v))).collect()
    }

    pub(super) fn len(&self) -> usize {
        self.set.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(i: usize) -> Labels {
        BTreeMap::from([
            ("unit".to_string(), format!("u{i}")),
            ("x".to_string(), "y".to_string()),
        ])
    }

    #[test]
    fn finds_every_entry_before_and_after_indexing_and_removal() {
        let mut strings = Strings::default();
        let mut by: ByLabels<usize> = ByLabels::default();
        let mut work = 0;
        for i in 0..100 {
            assert_eq!(by.find(&labels(i), &mut work), None);
            let key = strings.key(&labels(i));
            by.insert(key, i);
            for j in 0..=i {
                let at = by.find(&labels(j), &mut work);
                assert_eq!(at.and_then(|a| by.get(a)).map(|(_, v)| *v), Some(j));
            }
        }
        by.retain_mut(|(_, v)| *v % 3 == 0);
        for i in 0..100 {
            let found = by.find(&labels(i), &mut work).and_then(|a| by.get(a)).map(|(_, v)| *v);
            assert_eq!(found, (i % 3 == 0).then_some(i), "{i}");
        }
        by.retain_mut(|(_, v)| *v < 12);
        assert_eq!(by.len(), 4);
        assert!(by.index.is_none());
        assert_eq!(
            by.find(&labels(9), &mut work).and_then(|a| by.get(a)).map(|(_, v)| *v),
            Some(9)
        );
    }

    #[test]
    fn a_lookup_in_a_long_list_compares_one_label_set() {
        let mut strings = Strings::default();
        let mut by: ByLabels<()> = ByLabels::default();
        for i in 0..10_000 {
            by.insert(strings.key(&labels(i)), ());
        }
        let mut work = 0;
        assert!(by.find(&labels(7_777), &mut work).is_some());
        assert_eq!(work, 1);
    }

    #[test]
    fn strings_no_series_holds_are_let_go() {
        let mut strings = Strings::default();
        for round in 0..100 {
            let kept: Vec<Key> = (0..100).map(|i| strings.key(&labels(round * 100 + i))).collect();
            drop(kept);
        }
        // 10,000 distinct values went through; only a bounded few are kept.
        assert!(strings.len() <= 2 * 1024 + 2, "{}", strings.len());
    }
}
