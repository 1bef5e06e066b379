//! Builds the cache hierarchy from the command line: memory always, disk in `--data-dir`,
//! Redis with `--redis`. A tier that cannot be opened is reported and left out; the command
//! still works with the others.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use opossum_cache::{
    DiskConfig, DiskTier, Hierarchy, MemoryConfig, MemoryTier, RedisConfig, RedisTier, Tier,
};
use opossum_pipeline::Leases;

/// Where the tiers live.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct TierArgs {
    /// Directory of the local disk tier [default: $XDG_CACHE_HOME/opossum or ~/.cache/opossum]
    #[arg(long, global = true, env = "OPOSSUM_DATA_DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// Redis URL (redis://host:port/db); enables the shared tier
    #[arg(long, global = true, env = "OPOSSUM_REDIS_URL")]
    pub(crate) redis: Option<String>,
}

/// Default size of the disk tier.
const DISK_MAX_BYTES: u64 = 20 << 30;

pub(crate) struct Tiers {
    pub(crate) hierarchy: Arc<Hierarchy>,
    pub(crate) leases: Option<Leases>,
}

impl TierArgs {
    pub(crate) fn data_dir(&self) -> PathBuf {
        if let Some(dir) = &self.data_dir {
            return dir.clone();
        }
        let base = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
            .unwrap_or_else(|| PathBuf::from("."));
        base.join("opossum")
    }

    /// Opens the tiers. Must run inside a tokio runtime (the Redis connection lives on it).
    pub(crate) async fn open(&self) -> Tiers {
        let mut tiers: Vec<Arc<dyn Tier>> =
            vec![Arc::new(MemoryTier::new(MemoryConfig::default()))];
        let path = self.data_dir().join("cache");
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
        if let Some(url) = &self.redis {
            match RedisTier::new(&RedisConfig::new(url)) {
                Ok(redis) => {
                    if let Err(e) = redis.check_eviction_policy().await {
                        tracing::warn!(error = %e, "redis is not answering; continuing with local tiers until it does");
                    }
                    leases = Some(Leases::new(redis.connection(), Duration::from_secs(30)));
                    tiers.push(Arc::new(redis));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "redis tier unavailable; continuing without it")
                }
            }
        }
        Tiers {
            hierarchy: Arc::new(Hierarchy::new(tiers, disk)),
            leases,
        }
    }
}
