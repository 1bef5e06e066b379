//! `opossum-bench policies`: which eviction policy should the memory tier run? Each candidate
//! from a well-kept crate is replayed over the same traces at the same capacities as exact LRU,
//! ARC and Belady's optimal (`opossum_cache::simulate`), one unit per entry as the published
//! tables count. ARC is the bar (issue 19): a policy meets it at a point when its hit rate is
//! at least ARC's there.
//!
//! Single-threaded and single-sharded on purpose: sharding splits the capacity, which measures
//! the hash rather than the policy.

use std::path::PathBuf;

use anyhow::Context;
use opossum_cache::simulate::{Trace, arc_hit_rate, belady_hit_rate, lru_hit_rate};

/// A candidate: its name and how it replays a trace at a capacity.
type Candidate = (&'static str, fn(&Trace, usize) -> f64);

const CANDIDATES: &[Candidate] = &[
    ("moka tinylfu (today)", |t, c| moka(t, c, false)),
    ("moka lru", |t, c| moka(t, c, true)),
    ("foyer w-tinylfu", |t, c| {
        foyer(t, c, foyer_memory::EvictionConfig::Lfu(Default::default()))
    }),
    ("foyer w-tinylfu w=20%", |t, c| {
        let config = foyer_memory::LfuConfig {
            window_capacity_ratio: 0.2,
            protected_capacity_ratio: 0.6,
            ..Default::default()
        };
        foyer(t, c, foyer_memory::EvictionConfig::Lfu(config))
    }),
    ("foyer s3-fifo", |t, c| {
        foyer(
            t,
            c,
            foyer_memory::EvictionConfig::S3Fifo(Default::default()),
        )
    }),
    ("quick_cache", |t, c| quick(t, c, 0.97, 0.5)),
    ("quick_cache hot=90%", |t, c| quick(t, c, 0.9, 0.5)),
    ("quick_cache hot=90% ghost=100%", |t, c| {
        quick(t, c, 0.9, 1.0)
    }),
    ("quick_cache hot=75% ghost=100%", |t, c| {
        quick(t, c, 0.75, 1.0)
    }),
];

/// Counts the hits over `trace` of asking (`get`) and, on a miss, inserting.
fn replay(trace: &Trace, get: impl Fn(u32) -> bool, insert: impl Fn(u32)) -> f64 {
    let hits = trace
        .requests
        .iter()
        .filter(|&&key| {
            let hit = get(key);
            if !hit {
                insert(key);
            }
            hit
        })
        .count();
    hits as f64 / trace.requests.len().max(1) as f64
}

fn moka(trace: &Trace, capacity: usize, lru: bool) -> f64 {
    let policy = if lru {
        moka::policy::EvictionPolicy::lru()
    } else {
        moka::policy::EvictionPolicy::tiny_lfu()
    };
    let cache: moka::sync::Cache<u32, ()> = moka::sync::Cache::builder()
        .max_capacity(capacity as u64)
        .eviction_policy(policy)
        .build();
    replay(
        trace,
        |key| cache.get(&key).is_some(),
        |key| cache.insert(key, ()),
    )
}

fn foyer(trace: &Trace, capacity: usize, config: foyer_memory::EvictionConfig) -> f64 {
    let cache: foyer_memory::Cache<u32, ()> = foyer_memory::CacheBuilder::new(capacity)
        .with_shards(1)
        .with_eviction_config(config)
        .build();
    replay(
        trace,
        |key| cache.get(&key).is_some(),
        |key| {
            cache.insert(key, ());
        },
    )
}

/// quick_cache with `hot` of its capacity for hot entries (the rest is its probation queue)
/// and ghost keys for `ghost` of the capacity (its defaults: 97% and 50%).
fn quick(trace: &Trace, capacity: usize, hot: f64, ghost: f64) -> f64 {
    // The single-threaded cache: one shard, so the whole capacity is one policy's.
    let options = quick_cache::OptionsBuilder::new()
        .estimated_items_capacity(capacity)
        .weight_capacity(capacity as u64)
        .hot_allocation(hot)
        .ghost_allocation(ghost)
        .build();
    let Ok(options) = options else {
        return f64::NAN;
    };
    let cache: quick_cache::unsync::Cache<u32, ()> = quick_cache::unsync::Cache::with_options(
        options,
        quick_cache::UnitWeighter,
        Default::default(),
        Default::default(),
    );
    let cache = std::cell::RefCell::new(cache);
    replay(
        trace,
        |key| cache.borrow_mut().get(&key).is_some(),
        |key| cache.borrow_mut().insert(key, ()),
    )
}

pub(crate) fn run(traces: &[PathBuf], capacities: &[usize]) -> anyhow::Result<()> {
    anyhow::ensure!(
        capacities.iter().all(|&c| c > 0),
        "capacities must be at least 1"
    );
    // Per candidate: points at or above ARC, and the sum of (candidate - ARC) in points.
    let mut met = vec![0usize; CANDIDATES.len()];
    let mut margin = vec![0.0f64; CANDIDATES.len()];
    let mut worst = vec![f64::INFINITY; CANDIDATES.len()];
    let mut points = 0usize;
    print!(
        "{:<10} {:>8} {:>7} {:>7} {:>7}",
        "trace", "capacity", "lru", "arc", "optimal"
    );
    for (name, _) in CANDIDATES {
        print!(" {name:>22}");
    }
    println!();
    for path in traces {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let trace = Trace::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        anyhow::ensure!(!trace.requests.is_empty(), "{} has no keys", path.display());
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let name = name.split('.').next().unwrap_or_default();
        for &capacity in capacities {
            let arc = arc_hit_rate(&trace, capacity);
            print!(
                "{name:<10} {capacity:>8} {:>7.2} {:>7.2} {:>7.2}",
                100.0 * lru_hit_rate(&trace, capacity),
                100.0 * arc,
                100.0 * belady_hit_rate(&trace, capacity)
            );
            for (i, (_, replay)) in CANDIDATES.iter().enumerate() {
                let rate = replay(&trace, capacity);
                let delta = 100.0 * (rate - arc);
                met[i] += usize::from(rate >= arc);
                margin[i] += delta;
                worst[i] = worst[i].min(delta);
                print!(" {:>22}", format!("{:.2} ({delta:+.2})", 100.0 * rate));
            }
            println!();
            points += 1;
        }
    }
    println!();
    println!("against ARC over {points} points (trace x capacity); hit rates in percent");
    println!(
        "{:<22} {:>12} {:>14} {:>14}",
        "policy", "at or above", "mean vs ARC", "worst vs ARC"
    );
    for (i, (name, _)) in CANDIDATES.iter().enumerate() {
        println!(
            "{name:<22} {:>12} {:>14} {:>14}",
            format!("{}/{points}", met[i]),
            format!("{:+.2}", margin[i] / points.max(1) as f64),
            format!("{:+.2}", worst[i])
        );
    }
    Ok(())
}
