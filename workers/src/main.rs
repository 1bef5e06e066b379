//! `opossum-worker`: one worker process of the fleet. It pulls jobs from `{prefix}:process`
//! and `{prefix}:warm` (separate pools), answers each from the cache hierarchy or computes it
//! from the originals store, and publishes a completion event per job to `{prefix}:events`.
//!
//! SIGTERM or SIGINT starts a graceful stop: no new jobs are fetched, jobs in flight get the
//! grace period to finish, fetched jobs that have not started go back to their queue. A job
//! interrupted harder (SIGKILL, a crash) is re-run by another worker once this one's
//! heartbeats stop (two missed 2 s heartbeats): at-least-once, and the rerun is a cache hit.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use opossum_analytics::{AnalyticsConfig, Recorder};
use opossum_config::Config;
use opossum_fleet::{
    EVENTS_MAX_LEN, Events, Originals, QueueConfig, Queues, WorkerConfig, WorkerState,
};

#[derive(Parser)]
#[command(name = "opossum-worker", version, about = "An Opossum worker process")]
struct Args {
    /// Redis URL of the queues and the shared cache tier
    #[arg(long, env = "OPOSSUM_REDIS_URL")]
    redis: String,
    /// The originals store: a directory, or s3://bucket/prefix
    #[arg(long, env = "OPOSSUM_ORIGINALS", default_value = ".")]
    originals: String,
    /// Directory of the local disk tier [default: ~/.cache/opossum]
    #[arg(long, env = "OPOSSUM_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Configuration file (YAML): presets and analytics settings
    #[arg(long, env = "OPOSSUM_CONFIG")]
    config: Option<PathBuf>,
    /// Prefix of the queues, events and cache keys
    #[arg(long, env = "OPOSSUM_PREFIX", default_value = "opossum")]
    prefix: String,
    /// User jobs run at once
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Warming jobs run at once (a separate pool)
    #[arg(long, default_value_t = 4)]
    warm_concurrency: usize,
    /// Time in-flight jobs get to finish after SIGTERM
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    grace_period: Duration,
    /// Jobs fetched per round trip
    #[arg(long, default_value_t = 50)]
    batch_size: usize,
    /// This worker's name [default: host-pid-random, unique per start]
    #[arg(long)]
    name: Option<String>,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    opossum_fleet::process_main(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    let originals = Originals::open(&args.originals)?;
    let data_dir = args
        .data_dir
        .unwrap_or_else(opossum_fleet::default_data_dir);
    let tiers = opossum_fleet::open_tiers(&data_dir, Some(&args.redis)).await;
    if let Some(disk) = &tiers.disk {
        disk.spawn_cleanup();
    }
    let client = redis::Client::open(args.redis.as_str()).context("invalid --redis URL")?;
    let connection = opossum_fleet::connect(&client)
        .await
        .with_context(|| format!("connecting to {}", args.redis))?;
    let recorder = Recorder::start(
        AnalyticsConfig::from_settings(&args.prefix, &config.analytics),
        connection.clone(),
    );
    let state = Arc::new(
        WorkerState::new(&tiers, &args.prefix, config.presets.clone(), originals)
            .with_analytics(recorder.clone()),
    );
    let queues = Queues::new(
        QueueConfig {
            prefix: args.prefix.clone(),
            batch_size: args.batch_size,
            ..QueueConfig::default()
        },
        connection.clone(),
    );
    let events = Events::new(client.clone(), connection, &args.prefix, EVENTS_MAX_LEN);
    let worker = WorkerConfig {
        name: args.name.unwrap_or_else(opossum_fleet::unique_worker_name),
        concurrency: args.concurrency,
        warm_concurrency: args.warm_concurrency,
        grace_period: args.grace_period,
        ..WorkerConfig::default()
    };
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
