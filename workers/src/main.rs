//! `opossum-worker`: one worker process of the fleet. It pulls jobs from `{prefix}:process`
//! and `{prefix}:warm` (separate pools), answers each from the cache hierarchy or computes it
//! from the originals store, and publishes a completion event per job to `{prefix}:events`.
//!
//! SIGTERM or SIGINT starts a graceful stop: no new jobs are fetched, jobs in flight get the
//! grace period to finish, fetched jobs that have not started go back to their queue. A job
//! interrupted harder (SIGKILL, a crash) is re-run by another worker once this one's
//! heartbeats stop (two missed 2 s heartbeats): at-least-once, and the rerun is a cache hit.
#![cfg_attr(not(test), warn(unused_crate_dependencies))]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use opossum_analytics::{AnalyticsConfig, Recorder};
use opossum_config::Config;
use opossum_fleet::{
    EVENTS_MAX_LEN, Events, Originals, QueueConfig, Queues, Sources, WorkerConfig, WorkerState,
};

#[derive(Parser)]
#[command(name = "opossum-worker", version, about = "An Opossum worker process")]
struct Args {
    /// Redis URL of the queues and the shared cache tier [default: caching.redis_cache]
    #[arg(long, env = "OPOSSUM_REDIS_URL")]
    redis: Option<String>,
    /// The originals store: a directory, or s3://bucket/prefix [default: `originals`, else .]
    #[arg(long, env = "OPOSSUM_ORIGINALS")]
    originals: Option<String>,
    /// Directory of the local disk tier [default: ~/.cache/opossum]
    #[arg(long, env = "OPOSSUM_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Configuration file (YAML; deploy/opossum.example.yaml shows every key)
    #[arg(long, env = "OPOSSUM_CONFIG")]
    config: Option<PathBuf>,
    /// Prefix of the queues, events and cache keys [default: `prefix`, else opossum]
    #[arg(long, env = "OPOSSUM_PREFIX")]
    prefix: Option<String>,
    /// User jobs run at once [default: worker.concurrency, 32]
    #[arg(long)]
    concurrency: Option<usize>,
    /// Warming jobs run at once, a separate pool [default: worker.warm_concurrency, 4]
    #[arg(long)]
    warm_concurrency: Option<usize>,
    /// Time in-flight jobs get to finish after SIGTERM [default: worker.grace_period, 30s]
    #[arg(long, value_parser = humantime::parse_duration)]
    grace_period: Option<Duration>,
    /// Jobs fetched per round trip [default: worker.batch_size, 50]
    #[arg(long)]
    batch_size: Option<usize>,
    /// Serve Prometheus /metrics here, e.g. 0.0.0.0:9464 [default: telemetry.metrics_listen]
    #[arg(long, env = "OPOSSUM_METRICS_LISTEN")]
    metrics_listen: Option<String>,
    /// This worker's name [default: host-pid-random, unique per start]
    #[arg(long)]
    name: Option<String>,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let config_path = args.config.clone();
    opossum_telemetry::main("opossum-worker", config_path.as_deref(), |config| {
        run(args, config)
    })
}

async fn run(args: Args, config: Config) -> anyhow::Result<()> {
    let prefix = config.prefix_or(args.prefix.as_deref());
    let redis_url = config.queue_redis_url(args.redis.as_deref())?.context(
        "the worker needs Redis (its queues): pass --redis URL, set OPOSSUM_REDIS_URL, caching.redis_cache.host or queues.redis_url",
    )?;
    let cache_url = config.redis_url(args.redis.as_deref())?;
    let originals = Originals::open(config.originals_or(args.originals.as_deref()))?;
    let data_dir = args
        .data_dir
        .unwrap_or_else(opossum_fleet::default_data_dir);
    let tiers = opossum_fleet::open_tiers(
        &data_dir,
        cache_url.as_deref(),
        Some(&redis_url),
        &config.caching,
    )
    .await;
    if let Some(disk) = &tiers.disk {
        disk.spawn_cleanup();
    }
    let client = redis::Client::open(redis_url.as_str()).context("invalid Redis URL")?;
    let connection = opossum_fleet::connect(&client)
        .await
        .with_context(|| format!("connecting to {}", opossum_fleet::redact(&redis_url)))?;
    let shared = cache_url.as_deref() == Some(redis_url.as_str());
    opossum_fleet::check_queue_server(&connection, shared).await;
    let recorder = Recorder::start(
        AnalyticsConfig::from_settings(&prefix, &config.analytics),
        connection.clone(),
    );
    let state = Arc::new(
        WorkerState::new(
            &tiers,
            &prefix,
            config.presets.clone(),
            originals,
            opossum_fleet::engine_limits(&config),
        )
        .with_analytics(recorder.clone()),
    );
    let queue_config = QueueConfig {
        prefix: prefix.clone(),
        batch_size: args.batch_size.unwrap_or(config.worker.batch_size),
        ..QueueConfig::default()
    };
    let queues = Queues::new(queue_config, connection.clone());
    let events = Events::new(client.clone(), connection.clone(), &prefix, EVENTS_MAX_LEN);
    let worker = WorkerConfig {
        name: args.name.unwrap_or_else(opossum_fleet::unique_worker_name),
        concurrency: args.concurrency.unwrap_or(config.worker.concurrency),
        warm_concurrency: args
            .warm_concurrency
            .unwrap_or(config.worker.warm_concurrency),
        grace_period: args.grace_period.unwrap_or(config.worker.grace_period),
        ..WorkerConfig::default()
    };
    let sources: Arc<dyn opossum_telemetry::Refresh> = Arc::new(Sources {
        hierarchy: Some(tiers.hierarchy.clone()),
        queues: Some(queues.clone()),
    });
    if let Some(listen) = args
        .metrics_listen
        .as_deref()
        .or(config.telemetry.metrics_listen.as_deref())
    {
        opossum_telemetry::serve_metrics(listen, sources.clone(), opossum_fleet::shutdown_signal())
            .await?;
    }
    opossum_telemetry::spawn_reporter(sources, &config.telemetry);
    tracing::info!(worker = %worker.name, originals = %state.originals.location(), "worker started");
    let hierarchy = tiers.hierarchy.clone();
    let result = opossum_fleet::run(
        state,
        queues,
        events,
        client,
        worker,
        opossum_fleet::shutdown_signal(),
    )
    .await;
    recorder.flush().await;
    if let Err(e) = hierarchy.flush_stats() {
        tracing::warn!(error = %e, "cache stats not saved");
    }
    tracing::info!("worker stopped");
    Ok(result?)
}
