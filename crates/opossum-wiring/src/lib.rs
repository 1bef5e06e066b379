//! The wiring layer: what turns flags and a configuration file into a running Opossum process.
//!
//! Every binary (`opossum-worker`, `opossum-scheduler`, `opossum serve` and the CLI's other
//! commands) starts the same way: the common flags ([`CommonArgs`]) and the configuration are
//! resolved once into a [`Wiring`] (prefix, the two Redis URLs, data directory, originals), and
//! the parts of a process are assembled from it here, so that the binaries only say which parts
//! they run. [`Node`] is the part most of them share: the cache tiers, the job handler and the
//! queue behind the [`JobQueue`] seam, in fleet mode (Redis) or embedded (in process). This is
//! the one place that chooses between the two; everything above it holds an
//! `Arc<dyn JobQueue>`.
//!
//! Nothing here holds policy of its own: defaults live in `opossum-config`, behaviour in the
//! libraries. What lives here is the order things are opened and closed in (tiers before the
//! handler, the recorder flushed and the tier statistics saved at the end).
#![cfg_attr(not(test), warn(unused_crate_dependencies))]

mod node;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use opossum_analytics::{Analytics, AnalyticsConfig};
use opossum_cache::{Hierarchy, RedisConfig, RedisTier, Tier};
use opossum_config::Config;
use opossum_fleet::{Fleet, JobQueue, Originals, QueueConfig, Sources, Tiers};
use opossum_warming::{Warmer, WarmerParts};

pub use node::{Node, NodeSettings};
/// The allocator every binary installs (jemalloc; why in `opossum-telemetry`'s `allocator`).
pub use opossum_telemetry::Allocator;

/// The flags every Opossum binary takes, with the same names, environment variables and
/// meaning everywhere (each completed from the configuration when absent).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct CommonArgs {
    /// Configuration file (YAML; deploy/opossum.example.yaml shows every key)
    #[arg(long, global = true, env = "OPOSSUM_CONFIG")]
    pub config: Option<PathBuf>,
    /// Prefix of cache keys, queues (`{prefix}:process`, `{prefix}:warm`), events and
    /// analytics [default: the configuration's `prefix`, else opossum]
    #[arg(long, global = true, env = "OPOSSUM_PREFIX")]
    pub prefix: Option<String>,
    /// Redis URL (redis://host:port/db): the shared cache tier, and the queues, events and
    /// analytics unless `queues.redis_url` moves them [default: caching.redis_cache]
    #[arg(long, global = true, env = "OPOSSUM_REDIS_URL")]
    pub redis: Option<String>,
    /// Directory of the local disk tier [default: $XDG_CACHE_HOME/opossum or ~/.cache/opossum]
    #[arg(long, global = true, env = "OPOSSUM_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The originals store: a directory, s3://bucket/prefix or https://host/base/ [default: `originals`, else .]
    #[arg(long, global = true, env = "OPOSSUM_ORIGINALS")]
    pub originals: Option<String>,
    /// Serve Prometheus /metrics here, e.g. 0.0.0.0:9464 (worker and scheduler; the origin
    /// serves its own) [default: telemetry.metrics_listen]
    #[arg(long, global = true, env = "OPOSSUM_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,
}

/// The common flags resolved against the configuration: what every part of a process is
/// opened from. Built once at start; passed by reference, never global.
#[derive(Debug, Clone)]
pub struct Wiring {
    /// the configuration file's settings (defaults where it is silent)
    pub config: Config,
    /// the prefix of keys, queues, events and analytics
    pub prefix: String,
    /// the shared cache tier's Redis, when one is configured
    pub cache_redis: Option<String>,
    /// the queues' Redis (queues, events, leases, analytics): `queues.redis_url`, else the
    /// cache's; none means embedded mode
    pub queue_redis: Option<String>,
    /// the local disk tier's directory
    pub data_dir: PathBuf,
    /// the originals store's location, as configured
    pub originals: String,
    /// true when `--originals` (or `OPOSSUM_ORIGINALS`) named the store, rather than the
    /// configuration or the default
    pub originals_named: bool,
    /// where /metrics is served, when anywhere
    pub metrics_listen: Option<String>,
    /// the image engine's limits and font set, read on first use (the fonts directory is
    /// scanned, which commands that never touch an image skip): [`Wiring::limits`]
    limits: std::sync::OnceLock<opossum_image::Limits>,
}

impl Wiring {
    /// Resolves `args` against `config`.
    pub fn new(args: &CommonArgs, config: Config) -> Result<Wiring, opossum_config::ConfigError> {
        let cache_redis = config.redis_url(args.redis.as_deref())?;
        let queue_redis = config.queue_redis_url(args.redis.as_deref())?;
        Ok(Wiring {
            prefix: config.prefix_or(args.prefix.as_deref()),
            originals: config.originals_or(args.originals.as_deref()).to_string(),
            originals_named: args.originals.is_some(),
            data_dir: args
                .data_dir
                .clone()
                .unwrap_or_else(opossum_fleet::default_data_dir),
            metrics_listen: args
                .metrics_listen
                .clone()
                .or_else(|| config.telemetry.metrics_listen.clone()),
            limits: std::sync::OnceLock::new(),
            cache_redis,
            queue_redis,
            config,
        })
    }

    /// The queues' Redis URL, or an error saying that `who` needs one and how to give it.
    pub fn require_queue_redis(&self, who: &str) -> anyhow::Result<&str> {
        self.queue_redis.as_deref().with_context(|| {
            format!(
                "{who} needs --redis URL (or OPOSSUM_REDIS_URL, caching.redis_cache.host, queues.redis_url): the queues, events and analytics live in Redis"
            )
        })
    }

    /// Connects to the queues' Redis and opens this prefix's queues and events. `who` names
    /// the caller in the error when no Redis is configured.
    pub async fn fleet(&self, who: &str) -> anyhow::Result<Fleet> {
        self.fleet_with(who, self.queue_config()).await
    }

    /// [`Wiring::fleet`] with queue settings of the caller's own (a worker's batch size).
    pub async fn fleet_with(&self, who: &str, queue_config: QueueConfig) -> anyhow::Result<Fleet> {
        let url = self.require_queue_redis(who)?;
        let client = opossum_redis::Redis::open(url).context("invalid Redis URL")?;
        Fleet::connect_with(&client, queue_config)
            .await
            .with_context(|| format!("connecting to {}", opossum_fleet::redact(url)))
    }

    /// The image engine's limits and font set (the fonts directory is read once).
    pub fn limits(&self) -> &opossum_image::Limits {
        self.limits
            .get_or_init(|| opossum_fleet::engine_limits(&self.config, Some(&self.data_dir)))
    }

    /// The queue settings of this prefix.
    pub fn queue_config(&self) -> QueueConfig {
        QueueConfig {
            prefix: self.prefix.clone(),
            wait_replicas: self.config.queues.wait_replicas,
            ..QueueConfig::default()
        }
    }

    /// Warns when the queues' Redis can evict (what long-running processes check at start).
    pub async fn check_queue_server(&self, fleet: &Fleet) {
        let shared = self.cache_redis == self.queue_redis;
        opossum_fleet::check_queue_server(&fleet.connection, shared).await;
    }

    /// Opens this process's cache tiers (memory, disk, Redis as configured). Must run inside
    /// a tokio runtime.
    pub async fn tiers(&self) -> Tiers {
        opossum_fleet::open_tiers(
            &self.data_dir,
            self.cache_redis.as_deref(),
            self.queue_redis.as_deref(),
            &self.config.caching,
        )
        .await
    }

    /// A hierarchy over the shared Redis tier alone (none configured: an empty one), for the
    /// processes that ask what the fleet holds without caching anything themselves.
    pub fn shared_tier(&self) -> anyhow::Result<Arc<Hierarchy>> {
        let mut tiers: Vec<Arc<dyn Tier>> = Vec::new();
        if let Some(url) = &self.cache_redis {
            tiers.push(Arc::new(RedisTier::new(&RedisConfig::new(url))?));
        }
        Ok(Arc::new(Hierarchy::new(tiers, None)))
    }

    /// The originals store, with the HTTP rules of `sources:`.
    pub fn originals(&self) -> anyhow::Result<Originals> {
        Ok(Originals::open(&self.originals, &self.config.sources)?)
    }

    /// `originals` keeping what it fetches over HTTP in `tiers`' disk tier, when it opened.
    pub fn with_source_cache(&self, originals: Originals, tiers: &Tiers) -> Originals {
        match &tiers.disk {
            Some(disk) => {
                originals.with_source_cache(disk.clone(), &self.prefix, &self.config.sources)
            }
            None => originals,
        }
    }

    /// The analytics settings of this prefix.
    pub fn analytics_config(&self) -> AnalyticsConfig {
        AnalyticsConfig::from_settings(&self.prefix, &self.config.analytics)
    }

    /// The scheduler: warm jobs planned from `analytics`, checked against `freshness`, sent
    /// to `target`.
    pub fn warmer(
        &self,
        analytics: Analytics,
        freshness: Arc<Hierarchy>,
        target: Arc<dyn JobQueue>,
    ) -> anyhow::Result<Warmer> {
        Ok(Warmer::new(WarmerParts {
            settings: self.config.warming.clone(),
            presets: self.config.presets.clone(),
            namespace: self.prefix.clone(),
            version: opossum_fleet::processing_version(self.limits()),
            encoding: self.limits().encoding.clone(),
            analytics,
            freshness,
            target,
        })?)
    }

    /// Serves /metrics when an address is configured and starts the periodic summary and
    /// OTLP export, both reading `sources`.
    pub async fn serve_telemetry(&self, sources: Sources) -> anyhow::Result<()> {
        let sources: Arc<dyn opossum_telemetry::Refresh> = Arc::new(sources);
        if let Some(listen) = &self.metrics_listen {
            opossum_telemetry::serve_metrics(
                listen,
                sources.clone(),
                opossum_fleet::shutdown_signal(),
            )
            .await?;
        }
        opossum_telemetry::spawn_reporter(sources, &self.config.telemetry);
        Ok(())
    }

    /// Starts only the periodic summary and OTLP export (for a process that serves /metrics
    /// itself, as the origin does).
    pub fn report_telemetry(&self, sources: Sources) {
        opossum_telemetry::spawn_reporter(Arc::new(sources), &self.config.telemetry);
    }
}

/// The `main` of a long-running binary: reads the configuration named by `args`, starts
/// logging and export as `service`, runs `run` on a multi-threaded runtime, and turns an error
/// into one `error: ...` line and exit code 1.
pub fn main<F, Fut>(service: &str, args: &CommonArgs, run: F) -> std::process::ExitCode
where
    F: FnOnce(Wiring) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    opossum_telemetry::main(service, args.config.as_deref(), |config| async move {
        run(Wiring::new(args, config)?).await
    })
}
