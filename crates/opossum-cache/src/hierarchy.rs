//! The hierarchy: memory, then disk, then Redis.
//!
//! Local tiers come first because they are faster than the network. A hit back-fills every
//! faster tier (keeping the entry's original expiry). A write goes to every tier that admits
//! the entry. A tier that fails is skipped for a backoff period (1 s, doubling to 30 s, reset by
//! the next success) so a dead Redis costs one timeout per period, not one per request; each
//! failure and each skip is counted.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opossum_ops::Category;

use crate::stats::StatsSnapshot;
use crate::{DiskTier, Entry, Tier, TierError, TierKind, TierUsage};

const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// A cache hit and where it came from.
#[derive(Debug, Clone)]
pub struct Hit {
    /// the entry
    pub entry: Arc<Entry>,
    /// the tier that answered
    pub tier: TierKind,
}

struct Health {
    down_until: Option<Instant>,
    backoff: Duration,
}

struct Slot {
    tier: Arc<dyn Tier>,
    health: Mutex<Health>,
}

/// The cache hierarchy.
pub struct Hierarchy {
    slots: Vec<Slot>,
    disk: Option<Arc<DiskTier>>,
    stats: Mutex<StatsSnapshot>,
}

impl Hierarchy {
    /// A hierarchy over `tiers`, read in [`TierKind`] order (memory, disk, Redis). `disk`, when
    /// given, also keeps the persisted stats.
    pub fn new(mut tiers: Vec<Arc<dyn Tier>>, disk: Option<Arc<DiskTier>>) -> Hierarchy {
        tiers.sort_by_key(|t| t.kind());
        Hierarchy {
            slots: tiers
                .into_iter()
                .map(|tier| Slot {
                    tier,
                    health: Mutex::new(Health {
                        down_until: None,
                        backoff: FIRST_BACKOFF,
                    }),
                })
                .collect(),
            disk,
            stats: Mutex::new(StatsSnapshot::default()),
        }
    }

    /// The enabled tiers, in read order.
    pub fn tiers(&self) -> Vec<TierKind> {
        self.slots.iter().map(|s| s.tier.kind()).collect()
    }

    fn record(&self, f: impl FnOnce(&mut StatsSnapshot)) {
        if let Ok(mut stats) = self.stats.lock() {
            f(&mut stats);
        }
    }

    /// False (and counted as skipped) while the tier is backing off after a failure.
    fn usable(&self, slot: &Slot) -> bool {
        let down = slot
            .health
            .lock()
            .map(|h| h.down_until.is_some_and(|until| Instant::now() < until))
            .unwrap_or(false);
        if down {
            self.record(|s| s.tier(slot.tier.kind().name()).skipped += 1);
        }
        !down
    }

    fn succeeded(&self, slot: &Slot) {
        if let Ok(mut health) = slot.health.lock() {
            if health.down_until.is_some() {
                tracing::info!(tier = slot.tier.kind().name(), "tier is back");
            }
            health.down_until = None;
            health.backoff = FIRST_BACKOFF;
        }
    }

    fn failed(&self, slot: &Slot, error: &TierError) {
        let name = slot.tier.kind().name();
        self.record(|s| s.tier(name).errors += 1);
        if let Ok(mut health) = slot.health.lock() {
            tracing::warn!(tier = name, error = %error, retry_in_ms = health.backoff.as_millis() as u64, "tier failed; skipping it");
            health.down_until = Some(Instant::now() + health.backoff);
            health.backoff = (health.backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Looks `key` up tier by tier; on a hit, back-fills the faster tiers. Counted under
    /// `category`.
    pub async fn get(&self, key: &str, category: Category) -> Option<Hit> {
        self.lookup(key, Some(category)).await
    }

    /// [`Hierarchy::get`] without counting hits or misses: a second look at a key whose
    /// request was already counted (the origin reading what a worker just computed).
    pub async fn get_uncounted(&self, key: &str) -> Option<Hit> {
        self.lookup(key, None).await
    }

    async fn lookup(&self, key: &str, counted: Option<Category>) -> Option<Hit> {
        for (index, slot) in self.slots.iter().enumerate() {
            if !self.usable(slot) {
                continue;
            }
            let tier = slot.tier.kind();
            match slot.tier.get(key).await {
                Ok(Some(entry)) => {
                    self.succeeded(slot);
                    if let Some(category) = counted {
                        self.record(|s| s.category(tier.name(), category.name()).hits += 1);
                    }
                    for faster in &self.slots[..index] {
                        self.put_into(faster, key, &entry).await;
                    }
                    return Some(Hit { entry, tier });
                }
                Ok(None) => {
                    self.succeeded(slot);
                    if let Some(category) = counted {
                        self.record(|s| s.category(tier.name(), category.name()).misses += 1);
                    }
                }
                Err(e) => self.failed(slot, &e),
            }
        }
        None
    }

    async fn put_into(&self, slot: &Slot, key: &str, entry: &Arc<Entry>) -> bool {
        if !self.usable(slot) {
            return false;
        }
        match slot.tier.put(key, entry.clone()).await {
            Ok(admitted) => {
                self.succeeded(slot);
                if admitted {
                    let tier = slot.tier.kind().name();
                    self.record(|s| {
                        let c = s.category(tier, entry.category.name());
                        c.writes += 1;
                        c.ttl_ms_total += entry.ttl_ms;
                    });
                }
                admitted
            }
            Err(e) => {
                self.failed(slot, &e);
                false
            }
        }
    }

    /// Writes `entry` to every tier that admits it; returns how many did.
    pub async fn put(&self, key: &str, entry: Arc<Entry>) -> usize {
        let mut admitted = 0;
        for slot in &self.slots {
            if self.put_into(slot, key, &entry).await {
                admitted += 1;
            }
        }
        admitted
    }

    /// Counts a result that had to be computed.
    pub fn record_computed(&self, category: Category) {
        self.record(|s| *s.computed.entry(category.name().to_string()).or_default() += 1);
    }

    /// Removes every entry of one image (`{namespace}:{image-hash}:`) from every tier.
    pub async fn invalidate_image(
        &self,
        image_prefix: &str,
    ) -> Vec<(TierKind, Result<u64, TierError>)> {
        self.invalidate_in(image_prefix, |_| true).await
    }

    /// Like [`Hierarchy::invalidate_image`], in this process's own tiers only (memory and
    /// disk): what a long-running process does when another one announces an invalidation it
    /// has already applied to the shared tier.
    pub async fn invalidate_image_locally(
        &self,
        image_prefix: &str,
    ) -> Vec<(TierKind, Result<u64, TierError>)> {
        self.invalidate_in(image_prefix, |kind| kind != TierKind::Redis)
            .await
    }

    async fn invalidate_in(
        &self,
        image_prefix: &str,
        include: impl Fn(TierKind) -> bool,
    ) -> Vec<(TierKind, Result<u64, TierError>)> {
        let mut results = Vec::new();
        for slot in self.slots.iter().filter(|s| include(s.tier.kind())) {
            let result = slot.tier.invalidate_image(image_prefix).await;
            match &result {
                Ok(_) => self.succeeded(slot),
                Err(e) => self.failed(slot, e),
            }
            results.push((slot.tier.kind(), result));
        }
        results
    }

    /// When each of `keys` expires in the tier that keeps it longest (Unix milliseconds),
    /// `None` where no tier has it. A failing tier is skipped, as on reads.
    pub async fn expiries(&self, keys: &[String]) -> Vec<Option<u64>> {
        let mut latest = vec![None; keys.len()];
        for slot in &self.slots {
            if !self.usable(slot) {
                continue;
            }
            match slot.tier.expiries(keys).await {
                Ok(expiries) => {
                    self.succeeded(slot);
                    for (best, expiry) in latest.iter_mut().zip(expiries) {
                        *best = (*best).max(expiry);
                    }
                }
                Err(e) => self.failed(slot, &e),
            }
        }
        latest
    }

    /// Size and counters of every tier.
    pub async fn usage(&self) -> Vec<(TierKind, Result<TierUsage, TierError>)> {
        let mut results = Vec::new();
        for slot in &self.slots {
            results.push((slot.tier.kind(), slot.tier.usage().await));
        }
        results
    }

    /// The fullest tier's used / capacity, for adaptive TTLs.
    pub async fn storage_pressure(&self) -> f64 {
        let mut pressure: f64 = 0.0;
        for slot in &self.slots {
            if slot.tier.kind() == TierKind::Redis || !self.usable(slot) {
                // Redis's own maxmemory policy handles its pressure; asking costs a round trip.
                continue;
            }
            if let Ok(usage) = slot.tier.usage().await {
                pressure = pressure.max(usage.pressure());
            }
        }
        pressure
    }

    /// Counters since this hierarchy was created (or last flushed).
    pub fn stats(&self) -> StatsSnapshot {
        self.stats.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Persisted counters of this data dir plus the unflushed ones.
    pub fn cumulative_stats(&self) -> StatsSnapshot {
        let mut total = self.persisted_stats();
        total.merge(&self.stats());
        total
    }

    fn persisted_stats(&self) -> StatsSnapshot {
        self.disk
            .as_ref()
            .and_then(|disk| disk.load_stats().ok().flatten())
            .and_then(|bytes| rmp_serde::from_slice(&bytes).ok())
            .unwrap_or_default()
    }

    /// Merges the counters into the disk tier's persisted record and resets them.
    pub fn flush_stats(&self) -> Result<(), TierError> {
        let Some(disk) = &self.disk else {
            return Ok(());
        };
        let delta = match self.stats.lock() {
            Ok(mut stats) => std::mem::take(&mut *stats),
            Err(_) => return Ok(()),
        };
        let mut total = self.persisted_stats();
        total.merge(&delta);
        let bytes = rmp_serde::to_vec_named(&total).unwrap_or_default();
        disk.save_stats(&bytes)
    }
}
