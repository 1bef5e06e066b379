//! Opening the cache tiers of a process: memory always, RocksDB in the data directory, Redis
//! when a URL is given. A tier that cannot be opened is reported and left out: the process
//! still works with the others.

use std::path::{Path, PathBuf};

use std::sync::Arc;
use std::time::Duration;

use opossum_cache::{
    DiskConfig, DiskTier, Hierarchy, MemoryConfig, MemoryTier, RedisConfig, RedisTier, Tier,
};
use opossum_config::CachingSettings;
use opossum_pipeline::Leases;

/// How long a computation's lease holds before another process may take over.
const LEASE_TTL: Duration = Duration::from_secs(30);

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

/// Opens the tiers `caching` enables (the configuration's `caching:` block): memory, disk in
/// `caching.disk_cache.path` or `<data_dir>/cache`, and Redis at `redis` when given; leases
/// live on `queue_redis` (the fleet's coordination server, often the same). Must run inside a
/// tokio runtime (the Redis connections live on it).
pub async fn open_tiers(
    data_dir: &Path,
    redis: Option<&str>,
    queue_redis: Option<&str>,
    caching: &CachingSettings,
) -> Tiers {
    let mut tiers: Vec<Arc<dyn Tier>> = Vec::new();
    if !caching.enabled {
        tracing::info!("caching.enabled is false: no cache tier, every request is computed");
    }
    let memory = &caching.memory_cache;
    if caching.enabled && memory.enabled {
        tiers.push(Arc::new(MemoryTier::new(MemoryConfig {
            max_bytes: memory.max_size,
            max_ttl: memory.ttl,
            ..MemoryConfig::default()
        })));
    }
    let disk_settings = &caching.disk_cache;
    let disk = if caching.enabled && disk_settings.enabled {
        let path = disk_settings
            .path
            .clone()
            .unwrap_or_else(|| data_dir.join("cache"));
        match std::fs::create_dir_all(&path)
            .map_err(|e| e.to_string())
            .and_then(|()| {
                DiskTier::open(DiskConfig {
                    path: path.clone(),
                    max_bytes: disk_settings.max_size,
                    cleanup_interval: disk_settings.cleanup_interval,
                    memory_bytes: disk_settings.memory,
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
        }
    } else {
        None
    };
    let mut leases = None;
    if let Some(url) = redis {
        let settings = &caching.redis_cache;
        let config = RedisConfig {
            max_ttl: settings.ttl,
            ..RedisConfig::new(url)
        };
        // One server for the queues and the cache: its policy is the fleet's to check (it
        // wants noeviction, this tier allkeys-lfu; the fleet's warning names the way out).
        let shared = queue_redis.is_none_or(|queue| queue == url);
        let policy = settings.redis_policy();
        match RedisTier::new(&config) {
            Ok(redis) => {
                if let Err(e) = redis
                    .check_server((!shared).then_some(policy.as_str()), settings.max_memory)
                    .await
                {
                    tracing::warn!(error = %e, "redis is not answering; continuing with local tiers until it does");
                }
                // Leases coordinate computations across the fleet whether or not Redis also
                // caches results.
                if shared {
                    leases = Some(Leases::new(redis.connection(), LEASE_TTL));
                }
                if caching.enabled && settings.enabled {
                    tiers.push(Arc::new(redis));
                }
            }
            Err(e) => tracing::warn!(error = %e, "redis tier unavailable; continuing without it"),
        }
    }
    if leases.is_none()
        && let Some(url) = queue_redis
    {
        let connection = match opossum_redis::Redis::open(url) {
            Ok(client) => crate::connect(&client).await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match connection {
            Ok(connection) => leases = Some(Leases::new(connection, LEASE_TTL)),
            Err(e) => {
                tracing::warn!(error = %e, "queue redis unavailable; computations are not coordinated across the fleet")
            }
        }
    }
    Tiers {
        hierarchy: Arc::new(Hierarchy::new(tiers, disk.clone())),
        disk,
        leases,
    }
}

/// The image engine's settings from the configuration: its `limits:`, its `fonts:` and its
/// `encoding:` defaults. With a `data_dir`, the fonts' digests are remembered there
/// (`fonts.memo`), so a process reads only the font files that changed since.
pub fn engine_limits(
    config: &opossum_config::Config,
    data_dir: Option<&Path>,
) -> opossum_image::Limits {
    let memo = data_dir.map(|dir| dir.join("fonts.memo"));
    let fonts = opossum_image::FontSet::from_dir_remembered(&config.fonts.dir, memo.as_deref());
    if fonts.is_empty() {
        tracing::warn!(
            dir = %config.fonts.dir.display(),
            "no fonts in fonts.dir: SVG text will not be drawn"
        );
    }
    let settings = &config.limits;
    opossum_image::Limits {
        fonts,
        max_pixels: settings.max_pixels,
        max_bytes: settings.max_source_size,
        max_frames: settings.max_frames,
        max_output_pixels: settings.max_output_pixels,
        max_trace_pixels: settings.max_trace_pixels,
        max_svg_depth: settings.max_svg_depth,
        max_svg_nodes: settings.max_svg_nodes,
        svg_render_timeout: settings.svg_render_timeout,
        encoding: config.encoding.defaults(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn limits_map_every_setting() {
        assert_eq!(
            super::engine_limits(&opossum_config::Config::default(), None),
            opossum_image::Limits::default()
        );
    }
}
