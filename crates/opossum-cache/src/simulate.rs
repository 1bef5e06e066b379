//! Sizing from real traffic: replay a key trace through the memory tier's eviction policy and
//! compare it with an exact LRU and with Belady's optimal on the same trace.
//!
//! Items count one unit each (the question is "how many entries"), as in the published hit-rate
//! tables this is compared against (ARC traces, Caffeine's simulator).

use std::collections::{BTreeSet, HashMap};
use std::num::NonZeroUsize;

use crate::EvictionPolicy;

/// A trace with keys interned to dense ids.
#[derive(Debug, Clone, Default)]
pub struct Trace {
    /// one id per request
    pub requests: Vec<u32>,
    /// distinct keys
    pub distinct: usize,
}

impl Trace {
    /// Parses a trace: one key per line, or the ARC format `start count ignore ignore` (four
    /// integers), where a line stands for `count` consecutive keys from `start`. Blank lines,
    /// `#` comments and the LIRS traces' `*` checkpoints are skipped.
    pub fn parse(text: &str) -> Result<Trace, String> {
        let mut ids: HashMap<String, u32> = HashMap::new();
        let mut numeric: HashMap<u64, u32> = HashMap::new();
        let mut requests = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            // `*` is a checkpoint mark in the LIRS traces, not a key.
            if line.is_empty() || line.starts_with('#') || line == "*" {
                continue;
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            let arc = (fields.len() == 4)
                .then(|| {
                    fields
                        .iter()
                        .map(|f| f.parse::<u64>())
                        .collect::<Result<Vec<_>, _>>()
                        .ok()
                })
                .flatten();
            match arc {
                Some(values) => {
                    let (start, count) = (values[0], values[1]);
                    if count > 1_000_000 {
                        return Err(format!(
                            "line {}: count {count} is implausibly large",
                            number + 1
                        ));
                    }
                    for key in start..start + count {
                        let next = (ids.len() + numeric.len()) as u32;
                        requests.push(*numeric.entry(key).or_insert(next));
                    }
                }
                None => {
                    let next = (ids.len() + numeric.len()) as u32;
                    requests.push(*ids.entry(line.to_string()).or_insert(next));
                }
            }
        }
        Ok(Trace {
            distinct: ids.len() + numeric.len(),
            requests,
        })
    }

    /// A trace from ids directly.
    pub fn from_ids(requests: Vec<u32>) -> Trace {
        let distinct = requests
            .iter()
            .collect::<std::collections::HashSet<_>>()
            .len();
        Trace { requests, distinct }
    }
}

/// Hit rate of the memory tier's moka cache with `policy` and room for `capacity` entries.
pub fn moka_hit_rate(trace: &Trace, capacity: u64, policy: EvictionPolicy) -> f64 {
    let cache: moka::sync::Cache<u32, ()> = moka::sync::Cache::builder()
        .max_capacity(capacity)
        .eviction_policy(policy.to_moka())
        .build();
    let mut hits = 0u64;
    for &key in &trace.requests {
        if cache.get(&key).is_some() {
            hits += 1;
        } else {
            cache.insert(key, ());
        }
    }
    ratio(hits, trace.requests.len())
}

/// Hit rate of an exact least-recently-used cache of `capacity` entries.
pub fn lru_hit_rate(trace: &Trace, capacity: usize) -> f64 {
    let Some(capacity) = NonZeroUsize::new(capacity) else {
        return 0.0;
    };
    let mut cache = lru::LruCache::new(capacity);
    let mut hits = 0u64;
    for &key in &trace.requests {
        if cache.get(&key).is_some() {
            hits += 1;
        } else {
            cache.put(key, ());
        }
    }
    ratio(hits, trace.requests.len())
}

/// Hit rate of ARC (Megiddo and Modha, "ARC: A Self-Tuning, Low Overhead Replacement Cache",
/// FAST 2003) with room for `capacity` entries: the reference the memory tier's policy is held
/// to on the ARC paper's own traces. Here only, as a yardstick; nothing serves from it.
///
/// The paper's four lists: `t1` (seen once recently) and `t2` (seen at least twice) hold the
/// cache, `b1` and `b2` remember what each evicted (keys only), and the target size `p` of `t1`
/// moves towards whichever ghost list is being hit.
pub fn arc_hit_rate(trace: &Trace, capacity: usize) -> f64 {
    if capacity == 0 {
        return 0.0;
    }
    let c = capacity;
    let list = || lru::LruCache::<u32, ()>::unbounded();
    let (mut t1, mut t2, mut b1, mut b2) = (list(), list(), list(), list());
    let mut p = 0usize;
    // The paper's REPLACE: demote t1's or t2's least recent entry to its ghost list.
    let replace = |t1: &mut lru::LruCache<u32, ()>,
                   t2: &mut lru::LruCache<u32, ()>,
                   b1: &mut lru::LruCache<u32, ()>,
                   b2: &mut lru::LruCache<u32, ()>,
                   in_b2: bool,
                   p: usize| {
        if !t1.is_empty() && (t1.len() > p || (in_b2 && t1.len() == p)) {
            if let Some((key, ())) = t1.pop_lru() {
                b1.put(key, ());
            }
        } else if let Some((key, ())) = t2.pop_lru() {
            b2.put(key, ());
        }
    };
    let mut hits = 0u64;
    for &key in &trace.requests {
        if t1.pop(&key).is_some() || t2.contains(&key) {
            hits += 1;
            t2.put(key, ());
        } else if b1.contains(&key) {
            let delta = (b2.len() / b1.len()).max(1);
            p = (p + delta).min(c);
            replace(&mut t1, &mut t2, &mut b1, &mut b2, false, p);
            b1.pop(&key);
            t2.put(key, ());
        } else if b2.contains(&key) {
            let delta = (b1.len() / b2.len()).max(1);
            p = p.saturating_sub(delta);
            replace(&mut t1, &mut t2, &mut b1, &mut b2, true, p);
            b2.pop(&key);
            t2.put(key, ());
        } else {
            let l1 = t1.len() + b1.len();
            let total = l1 + t2.len() + b2.len();
            if l1 == c {
                if t1.len() < c {
                    b1.pop_lru();
                    replace(&mut t1, &mut t2, &mut b1, &mut b2, false, p);
                } else {
                    t1.pop_lru();
                }
            } else if total >= c {
                if total == 2 * c {
                    b2.pop_lru();
                }
                replace(&mut t1, &mut t2, &mut b1, &mut b2, false, p);
            }
            t1.put(key, ());
        }
    }
    ratio(hits, trace.requests.len())
}

/// Hit rate of Belady's optimal policy (evict what is next used furthest in the future, and do
/// not admit an item used later than everything cached): the ceiling for any real policy.
pub fn belady_hit_rate(trace: &Trace, capacity: usize) -> f64 {
    if capacity == 0 {
        return 0.0;
    }
    let n = trace.requests.len();
    // next[i]: the next position after i that requests the same key (n = never).
    let mut next = vec![n; n];
    let mut last_seen: HashMap<u32, usize> = HashMap::new();
    for i in (0..n).rev() {
        let key = trace.requests[i];
        if let Some(&j) = last_seen.get(&key) {
            next[i] = j;
        }
        last_seen.insert(key, i);
    }
    // Cached keys ordered by their next use; `position` maps a cached key to that next use.
    let mut by_next_use: BTreeSet<(usize, u32)> = BTreeSet::new();
    let mut position: HashMap<u32, usize> = HashMap::new();
    let mut hits = 0u64;
    for (&key, &next_use) in trace.requests.iter().zip(&next) {
        if let Some(old) = position.remove(&key) {
            hits += 1;
            by_next_use.remove(&(old, key));
        } else if by_next_use.len() >= capacity {
            let furthest = *by_next_use.last().expect("cache is full");
            if furthest.0 <= next_use {
                continue; // bypass: the new item is needed later than anything cached
            }
            by_next_use.remove(&furthest);
            position.remove(&furthest.1);
        }
        if next_use < n {
            by_next_use.insert((next_use, key));
            position.insert(key, next_use);
        }
    }
    ratio(hits, n)
}

fn ratio(hits: u64, total: usize) -> f64 {
    if total == 0 {
        0.0
    } else {
        hits as f64 / total as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_trace_formats() {
        let t = Trace::parse("a\nb\n\n# comment\na\n").unwrap();
        assert_eq!(t.requests, vec![0, 1, 0]);
        assert_eq!(t.distinct, 2);
        let arc = Trace::parse("10 3 0 0\n11 1 0 0\n").unwrap();
        assert_eq!(arc.requests, vec![0, 1, 2, 1]);
        assert_eq!(arc.distinct, 3);
    }

    #[test]
    fn a_loop_one_larger_than_the_cache_defeats_lru_but_not_belady() {
        // Keys 0..5 repeated, capacity 4: LRU always evicts the key needed next.
        let trace = Trace::from_ids((0..100).map(|i| i % 5).collect());
        assert_eq!(lru_hit_rate(&trace, 4), 0.0);
        let opt = belady_hit_rate(&trace, 4);
        assert!(opt > 0.7, "{opt}");
    }

    #[test]
    fn belady_and_lru_are_exact_on_a_small_case() {
        // a b c a d a b with room for 2. Optimal keeps a and b and bypasses c and d: hits on
        // a, a, b. LRU evicts a for c and b for a: only the third a hits.
        let trace = Trace::parse("a\nb\nc\na\nd\na\nb\n").unwrap();
        assert!((belady_hit_rate(&trace, 2) - 3.0 / 7.0).abs() < 1e-9);
        assert!((lru_hit_rate(&trace, 2) - 1.0 / 7.0).abs() < 1e-9);
        // With room for everything, every repeat hits under both.
        assert!((belady_hit_rate(&trace, 10) - 3.0 / 7.0).abs() < 1e-9);
        assert!((lru_hit_rate(&trace, 10) - 3.0 / 7.0).abs() < 1e-9);
    }

    #[test]
    fn arc_keeps_its_invariants_and_resists_a_scan_that_flushes_lru() {
        // A hot set of 40 keys seen twice each round, then a scan of 80 new keys: LRU with
        // room for 60 loses the hot set to every scan; ARC keeps it in t2 and hits it.
        let mut ids = Vec::new();
        let mut cold = 1_000u32;
        for _ in 0..200 {
            for _ in 0..2 {
                ids.extend(0..40u32);
            }
            for _ in 0..80 {
                ids.push(cold);
                cold += 1;
            }
        }
        let trace = Trace::from_ids(ids);
        let (lru, arc, opt) = (
            lru_hit_rate(&trace, 60),
            arc_hit_rate(&trace, 60),
            belady_hit_rate(&trace, 60),
        );
        assert!(arc > lru + 0.1, "arc {arc} lru {lru}");
        assert!(opt >= arc, "optimal {opt} below arc {arc}");
        // With room for everything ARC is every repeat, like any policy.
        let small = Trace::parse("a\nb\nc\na\nd\na\nb\n").unwrap();
        assert!((arc_hit_rate(&small, 10) - 3.0 / 7.0).abs() < 1e-9);
        assert_eq!(arc_hit_rate(&small, 0), 0.0);
    }

    #[test]
    fn lirs_checkpoints_are_not_keys() {
        let t = Trace::parse("1\n*\n2\n1\n").unwrap();
        assert_eq!(t.requests, vec![0, 1, 0]);
    }

    #[test]
    fn tinylfu_beats_lru_on_a_skewed_trace_with_scans() {
        // Hot keys 0..50 interleaved with a scan of never-repeated keys.
        let mut ids = Vec::new();
        let mut cold = 1_000u32;
        for round in 0..2_000u32 {
            ids.push(round % 50);
            for _ in 0..3 {
                ids.push(cold);
                cold += 1;
            }
        }
        let trace = Trace::from_ids(ids);
        let lru = lru_hit_rate(&trace, 60);
        let tiny = moka_hit_rate(&trace, 60, EvictionPolicy::TinyLfu);
        let opt = belady_hit_rate(&trace, 60);
        assert!(tiny > lru, "tinylfu {tiny} lru {lru}");
        assert!(opt >= tiny, "optimal {opt} below tinylfu {tiny}");
    }
}
