//! L1: the in-process memory tier, on moka.
//!
//! moka is weighted by bytes, expires each entry at its own deadline (the [`Expiry`] below
//! reads it from the entry), and offers the seed's LRU as well as TinyLFU, whose admission
//! filter keeps one-off requests from flushing popular items (W-TinyLFU beats LRU widely on
//! real traces; see `opossum cache simulate`). Items larger than `max_item_bytes` are not
//! admitted: one big image would displace hundreds of thumbnails.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use moka::notification::RemovalCause;
use moka::policy::EvictionPolicy as MokaPolicy;

use crate::{Entry, Tier, TierError, TierKind, TierUsage, unix_millis};

/// Memory tier eviction policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EvictionPolicy {
    /// least recently used, as the seed asks
    Lru,
    /// TinyLFU admission with LRU eviction (moka's default)
    #[default]
    TinyLfu,
}

impl EvictionPolicy {
    /// Parses `lru` or `tinylfu`.
    pub fn from_name(name: &str) -> Option<EvictionPolicy> {
        match name.to_ascii_lowercase().as_str() {
            "lru" => Some(EvictionPolicy::Lru),
            "tinylfu" | "tiny_lfu" | "lfu" => Some(EvictionPolicy::TinyLfu),
            _ => None,
        }
    }

    pub(crate) fn to_moka(self) -> MokaPolicy {
        match self {
            EvictionPolicy::Lru => MokaPolicy::lru(),
            EvictionPolicy::TinyLfu => MokaPolicy::tiny_lfu(),
        }
    }
}

/// Memory tier settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryConfig {
    /// total bytes of entries held
    pub max_bytes: u64,
    /// larger entries are not admitted
    pub max_item_bytes: u64,
    /// eviction policy
    pub policy: EvictionPolicy,
    /// longest an entry stays, whatever its own TTL (`caching.memory_cache.ttl`)
    pub max_ttl: Option<Duration>,
}

impl Default for MemoryConfig {
    fn default() -> MemoryConfig {
        MemoryConfig {
            max_bytes: 512 << 20,
            max_item_bytes: 4 << 20,
            policy: EvictionPolicy::TinyLfu,
            max_ttl: None,
        }
    }
}

struct EntryExpiry {
    max_ttl: Option<Duration>,
}

impl EntryExpiry {
    fn lifetime(&self, entry: &Entry) -> Duration {
        let remaining = entry.remaining(unix_millis()).unwrap_or(Duration::ZERO);
        self.max_ttl.map_or(remaining, |cap| remaining.min(cap))
    }
}

impl moka::Expiry<String, Arc<Entry>> for EntryExpiry {
    fn expire_after_create(
        &self,
        _key: &String,
        entry: &Arc<Entry>,
        _now: Instant,
    ) -> Option<Duration> {
        Some(self.lifetime(entry))
    }

    fn expire_after_update(
        &self,
        _key: &String,
        entry: &Arc<Entry>,
        _now: Instant,
        _current: Option<Duration>,
    ) -> Option<Duration> {
        Some(self.lifetime(entry))
    }
}

/// The memory tier.
pub struct MemoryTier {
    cache: moka::sync::Cache<String, Arc<Entry>>,
    config: MemoryConfig,
    evictions: Arc<AtomicU64>,
}

impl MemoryTier {
    /// A memory tier with `config`.
    pub fn new(config: MemoryConfig) -> MemoryTier {
        let evictions = Arc::new(AtomicU64::new(0));
        let counter = evictions.clone();
        let cache = moka::sync::Cache::builder()
            .max_capacity(config.max_bytes)
            .weigher(|_key: &String, entry: &Arc<Entry>| {
                entry.weight().try_into().unwrap_or(u32::MAX)
            })
            .eviction_policy(config.policy.to_moka())
            .expire_after(EntryExpiry {
                max_ttl: config.max_ttl,
            })
            .support_invalidation_closures()
            .eviction_listener(move |_key, _value, cause| {
                if cause == RemovalCause::Size {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            })
            .build();
        MemoryTier {
            cache,
            config,
            evictions,
        }
    }
}

#[async_trait::async_trait]
impl Tier for MemoryTier {
    fn kind(&self) -> TierKind {
        TierKind::Memory
    }

    async fn get(&self, key: &str) -> Result<Option<Arc<Entry>>, TierError> {
        // moka expires lazily within its timer wheel's resolution; re-check the deadline.
        Ok(self
            .cache
            .get(key)
            .filter(|entry| entry.remaining(unix_millis()).is_some()))
    }

    async fn put(&self, key: &str, entry: Arc<Entry>) -> Result<bool, TierError> {
        if entry.weight() as u64 > self.config.max_item_bytes
            || entry.remaining(unix_millis()).is_none()
        {
            return Ok(false);
        }
        self.cache.insert(key.to_string(), entry);
        Ok(true)
    }

    async fn remove(&self, key: &str) -> Result<(), TierError> {
        self.cache.invalidate(key);
        Ok(())
    }

    async fn invalidate_image(&self, image_prefix: &str) -> Result<u64, TierError> {
        let prefix = image_prefix.to_string();
        // moka's entry count is maintained lazily; count the matching keys directly.
        let matching = self
            .cache
            .iter()
            .filter(|(key, _)| key.starts_with(&prefix))
            .count() as u64;
        self.cache
            .invalidate_entries_if(move |key, _| key.starts_with(&prefix))
            .map_err(|e| TierError::new(TierKind::Memory, e))?;
        self.cache.run_pending_tasks();
        Ok(matching)
    }

    async fn usage(&self) -> Result<TierUsage, TierError> {
        self.cache.run_pending_tasks();
        Ok(TierUsage {
            items: self.cache.entry_count(),
            bytes: self.cache.weighted_size(),
            capacity: self.config.max_bytes,
            evictions: Some(self.evictions.load(Ordering::Relaxed)),
            corrupt: 0,
            memory: Some(self.cache.weighted_size()),
        })
    }
}
