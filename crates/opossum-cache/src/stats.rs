//! Counters per tier and category, kept in memory and persisted (merged) into the disk tier's
//! database so `opossum cache stats` can report what earlier processes did with this data dir.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

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
