//! Cache sizing from the miss-ratio curve of recorded traffic (`opossum cache size`).
//!
//! Tiers are inclusive LRU-like caches, so the fleet's hit rate is about that of its largest
//! tier. The memory tier is sized to reach the target by itself (by Che's approximation a
//! process that sees a random share of the requests needs the same size as one cache seeing
//! them all); Redis, shared, and each machine's disk are sized to hold the window's reused
//! working set, the best hit rate any size reaches (first requests miss whatever the size).

use serde::Serialize;

use crate::MissRatioCurve;

/// Recommended tier sizes for a target hit rate, with the curve they come from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sizing {
    /// requests in the window (estimated from the sample)
    pub requests: f64,
    /// bytes of every distinct key in the window
    pub working_set_bytes: u64,
    /// the best hit rate any size reaches in the window
    pub best_hit_rate: f64,
    /// the hit rate asked for
    pub target_hit_rate: f64,
    /// false when the target is above `best_hit_rate` (sizes are then for the best)
    pub target_reachable: bool,
    /// memory tier size per process
    pub memory_bytes: u64,
    /// the shared tier's size, and each machine's disk tier's
    pub shared_bytes: u64,
    /// (LRU size, hit rate) from 1 MiB doubling up to `shared_bytes`
    pub curve: Vec<(u64, f64)>,
}

impl Sizing {
    /// Sizes for `target` (in (0, 1]) from `curve`; `None` when the curve saw no requests.
    pub fn from_curve(curve: &MissRatioCurve, target: f64) -> Option<Sizing> {
        if curve.requests() < 1.0 || curve.footprint() == 0 {
            return None;
        }
        let ceiling = curve.ceiling();
        let memory = curve
            .size_for(target.min(ceiling))
            .unwrap_or(curve.footprint());
        let shared = curve.size_for(ceiling).unwrap_or(curve.footprint());
        let mut points = Vec::new();
        let mut size = 1u64 << 20;
        while size < shared {
            points.push((size, curve.hit_rate(size)));
            size *= 2;
        }
        points.push((shared, curve.hit_rate(shared)));
        Some(Sizing {
            requests: curve.requests(),
            working_set_bytes: curve.footprint(),
            best_hit_rate: ceiling,
            target_hit_rate: target,
            target_reachable: target <= ceiling + 1e-12,
            memory_bytes: memory,
            shared_bytes: shared,
            curve: points,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_reach_the_target_and_the_best_rate() {
        // 1,000 requests over 100 keys of 1 MiB, each asked 10 times in rounds: the best hit
        // rate is 90% (first requests miss), reached by holding all 100 keys.
        let keys: Vec<String> = (0..100).map(|k| format!("k{k}")).collect();
        let trace: Vec<(&str, u64)> = (0..10)
            .flat_map(|_| keys.iter().map(|k| (k.as_str(), 1u64 << 20)))
            .collect();
        let curve = MissRatioCurve::from_trace(trace.iter().copied(), 1.0, None);
        let sizing = Sizing::from_curve(&curve, 0.5).expect("requests were seen");
        assert!((sizing.best_hit_rate - 0.9).abs() < 1e-9, "{sizing:?}");
        assert!(sizing.target_reachable);
        assert_eq!(sizing.shared_bytes, 100 << 20);
        assert!(curve.hit_rate(sizing.memory_bytes) >= 0.5 - 1e-9);
        assert_eq!(
            sizing.curve.last(),
            Some(&(100 << 20, curve.hit_rate(100 << 20)))
        );
        assert!(!Sizing::from_curve(&curve, 0.95).unwrap().target_reachable);
        let empty = MissRatioCurve::from_trace(std::iter::empty(), 1.0, None);
        assert_eq!(Sizing::from_curve(&empty, 0.5), None);
    }
}
