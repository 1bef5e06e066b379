//! Counters per tier and category, kept in memory and persisted (merged) into the disk tier's
//! database so `opossum cache stats` can report what earlier processes did with this data dir.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The categories that answer requests (not intermediates or presets, which are looked up on
/// the way to an answer): what hit rates of requests count.
pub const ANSWER_CATEGORIES: [opossum_ops::Category; 4] = [
    opossum_ops::Category::Result,
    opossum_ops::Category::Thumbnail,
    opossum_ops::Category::Analysis,
    opossum_ops::Category::Error,
];

/// Counters of one tier for one category.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CategoryCounters {
    /// lookups answered by this tier
    pub hits: u64,
    /// lookups this tier could not answer
    pub misses: u64,
    /// entries written to this tier
    pub writes: u64,
    /// sum of the TTLs written, milliseconds (for the average)
    pub ttl_ms_total: u64,
}

impl CategoryCounters {
    /// hits / (hits + misses), `None` before any lookup.
    pub fn hit_rate(&self) -> Option<f64> {
        let lookups = self.hits + self.misses;
        (lookups > 0).then(|| self.hits as f64 / lookups as f64)
    }

    /// Average TTL written, seconds.
    pub fn average_ttl_secs(&self) -> Option<f64> {
        (self.writes > 0).then(|| self.ttl_ms_total as f64 / self.writes as f64 / 1000.0)
    }

    fn add(&mut self, other: &CategoryCounters) {
        self.hits += other.hits;
        self.misses += other.misses;
        self.writes += other.writes;
        self.ttl_ms_total += other.ttl_ms_total;
    }
}

/// Counters of one tier.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TierCounters {
    /// operations that failed (the tier was then skipped for a while)
    pub errors: u64,
    /// operations skipped because the tier had failed recently
    pub skipped: u64,
    /// per category name
    pub categories: BTreeMap<String, CategoryCounters>,
}

/// All counters: per tier name, then per category name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsSnapshot {
    /// per tier name
    pub tiers: BTreeMap<String, TierCounters>,
    /// results computed (cache misses everywhere), per category name
    pub computed: BTreeMap<String, u64>,
}

impl StatsSnapshot {
    pub(crate) fn category(&mut self, tier: &str, category: &str) -> &mut CategoryCounters {
        self.tiers
            .entry(tier.to_string())
            .or_default()
            .categories
            .entry(category.to_string())
            .or_default()
    }

    pub(crate) fn tier(&mut self, tier: &str) -> &mut TierCounters {
        self.tiers.entry(tier.to_string()).or_default()
    }

    /// Adds `other`'s counters to these.
    pub fn merge(&mut self, other: &StatsSnapshot) {
        for (tier, counters) in &other.tiers {
            let mine = self.tier(tier);
            mine.errors += counters.errors;
            mine.skipped += counters.skipped;
            for (category, c) in &counters.categories {
                mine.categories.entry(category.clone()).or_default().add(c);
            }
        }
        for (category, n) in &other.computed {
            *self.computed.entry(category.clone()).or_default() += n;
        }
    }

    /// The share of requests some tier answered: hits in any tier over lookups at the first
    /// tier that has any (in read order), counting only the categories that answer requests
    /// (results, thumbnails, analyses, remembered errors; not intermediates or presets, which
    /// are looked up on the way). `None` before the first lookup.
    pub fn overall_hit_rate(&self) -> Option<f64> {
        let count = |counters: &TierCounters, hits: bool| -> u64 {
            ANSWER_CATEGORIES
                .iter()
                .filter_map(|c| counters.categories.get(c.name()))
                .map(|c| if hits { c.hits } else { c.hits + c.misses })
                .sum()
        };
        let in_order = crate::TierKind::ALL
            .iter()
            .filter_map(|kind| self.tiers.get(kind.name()));
        let lookups = in_order
            .clone()
            .map(|t| count(t, false))
            .find(|&n| n > 0)
            .unwrap_or(0);
        let hits: u64 = in_order.map(|t| count(t, true)).sum();
        (lookups > 0).then(|| hits as f64 / lookups as f64)
    }

    /// Hits and misses of `tier` summed over categories.
    pub fn tier_totals(&self, tier: &str) -> CategoryCounters {
        let mut total = CategoryCounters::default();
        if let Some(counters) = self.tiers.get(tier) {
            for c in counters.categories.values() {
                total.add(c);
            }
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counters(pairs: &[(&str, &str, u64, u64)]) -> StatsSnapshot {
        let mut stats = StatsSnapshot::default();
        for (tier, category, hits, misses) in pairs {
            let c = stats.category(tier, category);
            c.hits = *hits;
            c.misses = *misses;
        }
        stats
    }

    #[test]
    fn overall_hit_rate_counts_requests_from_the_first_tier() {
        assert_eq!(StatsSnapshot::default().overall_hit_rate(), None);
        // 10 thumbnail requests: 6 from memory, 2 from disk, 1 from redis, 1 computed;
        // intermediates looked up on the way do not count.
        let stats = counters(&[
            ("memory", "thumbnail", 6, 4),
            ("memory", "intermediate", 0, 7),
            ("disk", "thumbnail", 2, 2),
            ("redis", "thumbnail", 1, 1),
        ]);
        assert_eq!(stats.overall_hit_rate(), Some(0.9));
        // Without a memory tier the disk tier is the first.
        let stats = counters(&[("disk", "result", 3, 1)]);
        assert_eq!(stats.overall_hit_rate(), Some(0.75));
    }
}
