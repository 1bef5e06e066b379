//! Opening the cache tiers of a process: memory always, RocksDB in the data directory, Redis
//! when a URL is given. A tier that cannot be opened is reported and left out: the process
//! still works with the others.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use opossum_cache::{
    DiskConfig, DiskTier, Hierarchy, MemoryConfig, MemoryTier, RedisConfig, RedisTier, Tier,
};
use opossum_pipeline::Leases;

/// Default size of the disk tier.
pub const DISK_MAX_BYTES: u64 = 20 << 30;

/// The opened tiers.
pub struct Tiers {
    /// the hierarchy over them
    pub hierarchy: Arc<Hierarchy>,
    /// the disk tier, when it opened (for its cleanup task)
    pub disk: Option<Arc<DiskTier>>,
    /// cross-process leases, when Redis is configured
    pub leases: Option<Leases>,
}

/// `$XDG_CACHE_HOME/opossum`, or `~/.cache/opossum`.
pub fn default_data_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("opossum")
}

/// Opens the tiers. Must run inside a tokio runtime (the Redis connection lives on it).
pub async fn open_tiers(data_dir: &Path, redis: Option<&str>) -> Tiers {
    let mut tiers: Vec<Arc<dyn Tier>> = vec![Arc::new(MemoryTier::new(MemoryConfig::default()))];
    let path = data_dir.join("cache");
    let disk = match std::fs::create_dir_all(&path)
        .map_err(|e| e.to_string())
        .and_then(|()| {
            DiskTier::open(DiskConfig {
                path: path.clone(),
                max_bytes: DISK_MAX_BYTES,
                cleanup_interval: Duration::from_secs(3600),
            })
            .map_err(|e| e.to_string())
        }) {
        Ok(disk) => {
            let disk = Arc::new(disk);
            tiers.push(disk.clone());
            Some(disk)
        }
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "disk tier unavailable; continuing without it");
            None
        }
    };
    let mut leases = None;
    if let Some(url) = redis {
        match RedisTier::new(&RedisConfig::new(url)) {
            Ok(redis) => {
                if let Err(e) = redis.check_eviction_policy().await {
                    tracing::warn!(error = %e, "redis is not answering; continuing with local tiers until it does");
                }
                leases = Some(Leases::new(redis.connection(), Duration::from_secs(30)));
                tiers.push(Arc::new(redis));
            }
            Err(e) => tracing::warn!(error = %e, "redis tier unavailable; continuing without it"),
        }
    }
    Tiers {
        hierarchy: Arc::new(Hierarchy::new(tiers, disk.clone())),
        disk,
        leases,
    }
}
