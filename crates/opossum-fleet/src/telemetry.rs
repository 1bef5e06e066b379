//! The numbers a process's metrics pull from the fleet: each tier's usage and counters and
//! each queue's depth ([`Sources`], the [`Refresh`] of workers, the scheduler and the origin).

use std::sync::Arc;

use opossum_cache::Hierarchy;
use opossum_telemetry::{Metrics, Refresh, TierCounts, TierGauges};

use crate::{Priority, Queues};

/// Where a process's pulled metrics come from.
#[derive(Default)]
pub struct Sources {
    /// the process's cache tiers
    pub hierarchy: Option<Arc<Hierarchy>>,
    /// the queues whose depth is exported
    pub queues: Option<Queues>,
}

#[async_trait::async_trait]
impl Refresh for Sources {
    async fn refresh(&self, metrics: &Metrics) {
        if let Some(hierarchy) = &self.hierarchy {
            for (kind, usage) in hierarchy.usage().await {
                match usage {
                    Ok(usage) => metrics.set_tier(
                        kind.name(),
                        &TierGauges {
                            bytes: usage.bytes,
                            capacity: usage.capacity,
                            items: usage.items,
                            memory: usage.memory,
                            evictions: usage.evictions,
                        },
                    ),
                    Err(e) => {
                        tracing::debug!(tier = kind.name(), error = %e, "tier usage unavailable")
                    }
                }
            }
            let stats = hierarchy.stats();
            for (tier, counters) in &stats.tiers {
                let categories: Vec<(&str, TierCounts)> = counters
                    .categories
                    .iter()
                    .map(|(category, c)| {
                        (
                            category.as_str(),
                            TierCounts {
                                hits: c.hits,
                                misses: c.misses,
                                writes: c.writes,
                                ttl_ms_total: c.ttl_ms_total,
                            },
                        )
                    })
                    .collect();
                metrics.set_tier_counts(tier, &categories, counters.errors);
            }
            for (category, n) in &stats.computed {
                metrics.set_computed(category, *n);
            }
            metrics.set_overall_hit_ratio(stats.overall_hit_rate());
        }
        if let Some(queues) = &self.queues {
            for priority in [Priority::User, Priority::Warm] {
                match queues.depth(priority).await {
                    Ok(depth) => metrics.set_queue(priority.queue_suffix(), &depth),
                    Err(e) => tracing::debug!(error = %e, "queue depth unavailable"),
                }
            }
        }
    }
}
