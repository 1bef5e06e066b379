//! The cache hierarchy of Opossum: one [`Tier`] trait and its implementations, and the
//! [`Hierarchy`] that reads them fastest-first and writes them all.
//!
//! - [`Entry`]: what is cached: the bytes, their media type, category, creation time, TTL and
//!   the cost of computing them. Stored as MessagePack wherever it leaves memory.
//! - [`MemoryTier`]: moka, weighted by bytes, per-entry TTL, LRU or TinyLFU, large items not
//!   admitted.
//! - [`DiskTier`]: RocksDB with FIFO compaction and a size limit; every value is checksummed
//!   and carries its expiry, both checked on every read.
//! - [`RedisTier`]: the value plus the seed's metadata hash, written in one transaction, a TTL
//!   on every key, and a per-image index so invalidation never scans.
//! - [`Hierarchy`]: memory, then disk, then Redis; hits back-fill faster tiers; a failing tier
//!   is skipped for a while and counted, never fatal.
//!
//! Every tier passes the same conformance suite (`tests/conformance.rs`) against the real
//! thing: RocksDB in a temporary directory, a redis-server started by the test.
#![cfg_attr(not(test), warn(unused_crate_dependencies))]

mod disk;
mod entry;
mod hierarchy;
mod memory;
mod redis_tier;
pub mod simulate;
mod stats;

pub use disk::{DiskConfig, DiskMemory, DiskTier};
pub use entry::{Entry, unix_millis};
pub use hierarchy::{Hierarchy, Hit};
pub use memory::{EvictionPolicy, MemoryConfig, MemoryTier};
pub use redis_tier::{RedisConfig, RedisTier};
pub use stats::{ANSWER_CATEGORIES, CategoryCounters, StatsSnapshot, TierCounters};

use std::sync::Arc;

/// Which tier. The order of the variants is the read order.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum TierKind {
    /// L1, in process
    Memory,
    /// L3, RocksDB on local disk
    Disk,
    /// L2, shared by the fleet
    Redis,
}

impl TierKind {
    /// Every tier, in read order.
    pub const ALL: [TierKind; 3] = [TierKind::Memory, TierKind::Disk, TierKind::Redis];

    /// The lowercase name used in output, events and metrics.
    pub fn name(self) -> &'static str {
        match self {
            TierKind::Memory => "memory",
            TierKind::Disk => "disk",
            TierKind::Redis => "redis",
        }
    }
}

/// A tier failed for a reason outside the request: the hierarchy skips it and carries on.
/// The underlying error is kept as the source and its text is never rewritten (it may name a
/// path, whose case matters).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{tier} tier unavailable: {message}")]
pub struct TierError {
    /// which tier
    pub tier: &'static str,
    /// what failed: the underlying error's text, after the context when there is one
    pub message: String,
    /// the underlying error
    #[source]
    pub cause: std::sync::Arc<dyn std::error::Error + Send + Sync + 'static>,
}

impl TierError {
    pub(crate) fn new(
        tier: TierKind,
        cause: impl std::error::Error + Send + Sync + 'static,
    ) -> TierError {
        TierError {
            tier: tier.name(),
            message: cause.to_string(),
            cause: std::sync::Arc::new(cause),
        }
    }

    /// A failure of `tier` while doing `context` (`opening /srv/cache`).
    pub(crate) fn context(
        tier: TierKind,
        context: impl std::fmt::Display,
        cause: impl std::error::Error + Send + Sync + 'static,
    ) -> TierError {
        TierError {
            message: format!("{context}: {cause}"),
            ..TierError::new(tier, cause)
        }
    }
}

/// What a tier holds now.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TierUsage {
    /// entries (for Redis: keys in the database, an upper bound)
    pub items: u64,
    /// bytes used
    pub bytes: u64,
    /// configured capacity in bytes (0 = unbounded or unknown)
    pub capacity: u64,
    /// entries evicted for space (memory: since this process opened the tier; Redis: since the
    /// server started; disk: unknown, FIFO compaction drops whole files without counting)
    pub evictions: Option<u64>,
    /// entries found corrupt (checksum mismatch) and dropped
    pub corrupt: u64,
    /// memory the tier holds, in bytes: the memory tier its entries, Redis its servers'
    /// `used_memory`, the disk tier what RocksDB keeps in this process's memory (block cache,
    /// memtables, index and filter blocks), which is not the bytes it holds on disk
    #[serde(default)]
    pub memory: Option<u64>,
}

impl TierUsage {
    /// used / capacity, 0 when the capacity is unknown.
    pub fn pressure(&self) -> f64 {
        if self.capacity == 0 {
            0.0
        } else {
            self.bytes as f64 / self.capacity as f64
        }
    }
}

/// One level of the cache. Implementations must be idempotent (writing an entry twice is the
/// same as once) and must never return an expired or corrupt entry.
#[async_trait::async_trait]
pub trait Tier: Send + Sync + 'static {
    /// Which tier this is.
    fn kind(&self) -> TierKind;
    /// The entry under `key`, if present and fresh.
    async fn get(&self, key: &str) -> Result<Option<Arc<Entry>>, TierError>;
    /// Stores `entry` under `key`; `Ok(false)` when the tier does not admit it (too large).
    async fn put(&self, key: &str, entry: Arc<Entry>) -> Result<bool, TierError>;
    /// Removes `key`.
    async fn remove(&self, key: &str) -> Result<(), TierError>;
    /// Removes every entry whose key starts with `image_prefix` (`{namespace}:{image-hash}:`);
    /// returns how many were removed where the tier can tell.
    async fn invalidate_image(&self, image_prefix: &str) -> Result<u64, TierError>;
    /// Current size and counters.
    async fn usage(&self) -> Result<TierUsage, TierError>;
    /// When each of `keys` expires here (Unix milliseconds), `None` where absent. Warming uses
    /// it to skip what is cached and fresh. The default reads each entry; a tier that can ask
    /// for the expiry alone (Redis: `PTTL`) does.
    async fn expiries(&self, keys: &[String]) -> Result<Vec<Option<u64>>, TierError> {
        let mut expiries = Vec::with_capacity(keys.len());
        for key in keys {
            expiries.push(self.get(key).await?.map(|entry| entry.expires_at_ms()));
        }
        Ok(expiries)
    }
}
