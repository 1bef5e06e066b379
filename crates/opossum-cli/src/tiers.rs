//! The `--data-dir` and `--redis` options every command takes, completed from the
//! configuration (`caching.redis_cache` gives the URL when `--redis` is absent, and its
//! credentials and TLS in any case; `queues.redis_url` moves queues, events, leases and
//! analytics to a Redis of their own); the tiers themselves are opened by
//! `opossum_fleet::open_tiers`, as every binary opens them.

use std::path::PathBuf;

pub(crate) use opossum_fleet::Tiers;

/// Where the tiers live.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct TierArgs {
    /// Directory of the local disk tier [default: $XDG_CACHE_HOME/opossum or ~/.cache/opossum]
    #[arg(long, global = true, env = "OPOSSUM_DATA_DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// Redis URL (redis://host:port/db); enables the shared tier, the queues and events
    #[arg(long, global = true, env = "OPOSSUM_REDIS_URL")]
    pub(crate) redis: Option<String>,
    /// the queue Redis: `queues.redis_url`, else the same as `redis` (set after the
    /// configuration is read)
    #[arg(skip)]
    pub(crate) queue_redis: Option<String>,
    /// the configuration's `caching:` block (set after the configuration is read)
    #[arg(skip)]
    pub(crate) caching: opossum_config::CachingSettings,
    /// the prefix of keys, queues and events: `--prefix`, else the configuration's (set
    /// after the configuration is read)
    #[arg(skip)]
    pub(crate) prefix: String,
}

impl TierArgs {
    pub(crate) fn data_dir(&self) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(opossum_fleet::default_data_dir)
    }

    /// Opens the tiers. Must run inside a tokio runtime (the Redis connection lives on it).
    pub(crate) async fn open(&self) -> Tiers {
        opossum_fleet::open_tiers(
            &self.data_dir(),
            self.redis.as_deref(),
            self.queue_redis.as_deref(),
            &self.caching,
        )
        .await
    }
}
