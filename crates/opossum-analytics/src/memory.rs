//! Analytics in this process's memory, for embedded mode (`opossum serve` without Redis), where
//! the one process is the whole fleet and its scheduler reads what its origin recorded.
//!
//! The same buckets and the same bounds as the Redis layout in the crate documentation: a
//! bucket's image and variant counts are cut back to their cap once they hold twice as many
//! members, buckets older than `retention` (plus one bucket) are dropped, and at most
//! `sample_cap` sampled requests are kept. Queries are the Redis ones computed here: a weighted
//! sum over the window's buckets instead of `ZUNIONSTORE`, ranked as `ZRANGE ... REV` ranks
//! (score, then member, both descending). Age is measured from the newest bucket recorded, not
//! the wall clock, so recorded times are the only clock (as the queries' `now_ms` is).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use crate::{AnalyticsConfig, Pending};

/// Analytics kept in memory; cheap to clone (clones share the data).
#[derive(Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Mutex<Data>>,
}

#[derive(Default)]
struct Data {
    buckets: BTreeMap<u64, Bucket>,
    /// sampled requests: key, bytes, time; oldest first
    samples: VecDeque<(String, u64, u64)>,
}

#[derive(Default)]
struct Bucket {
    images: HashMap<String, f64>,
    variants: HashMap<String, f64>,
    counts: HashMap<String, f64>,
}

impl Bucket {
    fn set(&self, what: &str) -> Option<&HashMap<String, f64>> {
        match what {
            "images" => Some(&self.images),
            "variants" => Some(&self.variants),
            _ => None,
        }
    }
}

/// Highest first, as `ZRANGE ... REV` orders: by score, ties by member, both descending.
fn rank(members: &mut [(String, f64)]) {
    members.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| b.0.cmp(&a.0)));
}

/// Cuts `set` back to its `cap` highest members once it holds more than twice that.
fn trim(set: &mut HashMap<String, f64>, cap: usize) {
    if set.len() <= 2 * cap {
        return;
    }
    let mut members: Vec<(String, f64)> = set.drain().collect();
    rank(&mut members);
    members.truncate(cap);
    set.extend(members);
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn data(&self) -> std::sync::MutexGuard<'_, Data> {
        // A panic while holding the lock leaves counts that are still counts: carry on.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds a recorder's batch, then applies the bounds.
    pub(crate) fn apply(&self, config: &AnalyticsConfig, pending: &Pending) {
        let mut guard = self.data();
        let data = &mut *guard;
        for (start, delta) in &pending.buckets {
            let bucket = data.buckets.entry(*start).or_default();
            for (member, count) in &delta.images {
                *bucket.images.entry(member.clone()).or_default() += *count as f64;
            }
            for (member, count) in &delta.variants {
                *bucket.variants.entry(member.clone()).or_default() += *count as f64;
            }
            for (field, count) in &delta.counts {
                *bucket.counts.entry(field.clone()).or_default() += *count as f64;
            }
            for (field, ms) in &delta.times {
                *bucket.counts.entry(field.clone()).or_default() += *ms;
            }
            trim(&mut bucket.images, config.top_images);
            trim(&mut bucket.variants, config.top_variants);
        }
        data.samples.extend(pending.samples.iter().cloned());
        let Some(newest) = data.buckets.keys().next_back().copied() else {
            return;
        };
        let keep_from =
            newest.saturating_sub((config.retention + config.bucket).as_millis() as u64);
        data.buckets = data.buckets.split_off(&keep_from);
        let cap = config.sample_cap.max(1);
        while data
            .samples
            .front()
            .is_some_and(|(_, _, at)| data.samples.len() > cap || *at < keep_from)
        {
            data.samples.pop_front();
        }
    }

    /// The `n` highest members of the `what` sets (`images` or `variants`) of the buckets
    /// starting at `starts`, each bucket's counts multiplied by its weight.
    pub(crate) fn top(
        &self,
        what: &str,
        starts: &[u64],
        weights: &[f64],
        n: usize,
    ) -> Vec<(String, f64)> {
        let data = self.data();
        let mut sums: HashMap<&str, f64> = HashMap::new();
        for (start, weight) in starts.iter().zip(weights) {
            let Some(set) = data.buckets.get(start).and_then(|b| b.set(what)) else {
                continue;
            };
            for (member, count) in set {
                *sums.entry(member).or_default() += count * weight;
            }
        }
        let mut members: Vec<(String, f64)> = sums
            .into_iter()
            .map(|(member, score)| (member.to_string(), score))
            .collect();
        rank(&mut members);
        members.truncate(n);
        members
    }

    /// The counters of the buckets starting at `starts` (empty for a bucket with none).
    pub(crate) fn counts(&self, starts: &[u64]) -> Vec<HashMap<String, f64>> {
        let data = self.data();
        starts
            .iter()
            .map(|start| {
                data.buckets
                    .get(start)
                    .map(|b| b.counts.clone())
                    .unwrap_or_default()
            })
            .collect()
    }

    /// Sampled requests (key, bytes) from `since_ms` on, oldest first.
    pub(crate) fn samples(&self, since_ms: u64) -> Vec<(String, u64)> {
        self.data()
            .samples
            .iter()
            .filter(|(_, _, at)| *at >= since_ms)
            .map(|(key, bytes, _)| (key.clone(), *bytes))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trimming_keeps_the_head() {
        let mut set: HashMap<String, f64> =
            (0..21).map(|i| (format!("m{i:02}"), i as f64)).collect();
        trim(&mut set, 10);
        assert_eq!(set.len(), 10);
        assert!(set.contains_key("m20") && set.contains_key("m11"));
        assert!(!set.contains_key("m10"));
        let mut small: HashMap<String, f64> = (0..20).map(|i| (format!("m{i}"), 1.0)).collect();
        trim(&mut small, 10);
        assert_eq!(small.len(), 20, "at most twice the cap is left alone");
    }

    #[test]
    fn ties_rank_as_redis_rev_does() {
        let mut members = vec![("a".to_string(), 1.0), ("c".into(), 1.0), ("b".into(), 2.0)];
        rank(&mut members);
        let order: Vec<&str> = members.iter().map(|(m, _)| m.as_str()).collect();
        assert_eq!(order, ["b", "c", "a"]);
    }
}
