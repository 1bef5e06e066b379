//! `opossum-scheduler`: reads usage analytics and enqueues low-priority cache-warming jobs on
//! `{prefix}:warm` (the opossum-warming crate does the work; this binary wires it up).
//!
//! - `opossum-scheduler run`: the long-running scheduler (predictive every `warming.interval`,
//!   background on `warming.schedule` and in low traffic, related-variant from completion
//!   events), until SIGTERM or SIGINT.
//! - `opossum-scheduler warm --once --strategy predictive|background|related [--dry-run]`: one
//!   run of one strategy, with a progress bar on a terminal and a one-line summary.
#![cfg_attr(not(test), warn(unused_crate_dependencies))]

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use opossum_analytics::{Analytics, AnalyticsConfig};
use opossum_cache::{Hierarchy, RedisConfig, RedisTier, Tier};
use opossum_config::Config;
use opossum_fleet::{Fleet, Sources};
use opossum_warming::{Strategy, Warmer, WarmerParts};

#[derive(Parser)]
#[command(
    name = "opossum-scheduler",
    version,
    about = "Enqueues cache-warming jobs from usage analytics"
)]
struct Args {
    /// Redis URL of the queues, analytics and the shared cache tier [default: caching.redis_cache]
    #[arg(long, global = true, env = "OPOSSUM_REDIS_URL")]
    redis: Option<String>,
    /// Configuration file (YAML): presets, `analytics` and `warming` settings
    #[arg(long, global = true, env = "OPOSSUM_CONFIG")]
    config: Option<PathBuf>,
    /// Prefix of the queues, events, analytics and cache keys [default: `prefix`, else opossum]
    #[arg(long, global = true, env = "OPOSSUM_PREFIX")]
    prefix: Option<String>,
    /// Serve Prometheus /metrics here (`run` only) [default: telemetry.metrics_listen]
    #[arg(long, global = true, env = "OPOSSUM_METRICS_LISTEN")]
    metrics_listen: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the scheduler until SIGTERM or SIGINT
    Run,
    /// Run one strategy once and print a summary
    Warm {
        /// Run once and exit (the only mode of `warm`; `run` keeps the schedule)
        #[arg(long)]
        once: bool,
        /// predictive, background or related
        #[arg(long)]
        strategy: Strategy,
        /// Plan and check the cache, but enqueue nothing
        #[arg(long)]
        dry_run: bool,
        /// Print the summary as JSON
        #[arg(long)]
        json: bool,
    },
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let config_path = args.config.clone();
    opossum_telemetry::main("opossum-scheduler", config_path.as_deref(), |config| {
        run(args, config)
    })
}

async fn run(args: Args, config: Config) -> anyhow::Result<()> {
    let prefix = config.prefix_or(args.prefix.as_deref());
    let url = config.queue_redis_url(args.redis.as_deref())?.context(
        "the scheduler needs Redis (its analytics, queues and events): pass --redis URL, set OPOSSUM_REDIS_URL, caching.redis_cache.host or queues.redis_url",
    )?;
    let client = redis::Client::open(url.as_str()).context("invalid Redis URL")?;
    let fleet = Fleet::connect(&client, &prefix)
        .await
        .with_context(|| format!("connecting to {}", opossum_fleet::redact(&url)))?;
    let cache_url = config.redis_url(args.redis.as_deref())?;
    if matches!(args.command, Command::Run) {
        let shared = cache_url.as_deref() == Some(url.as_str());
        opossum_fleet::check_queue_server(&fleet.connection, shared).await;
    }
    // What is fresh is what the shared cache tier holds (none configured: nothing is).
    let mut cache: Vec<Arc<dyn Tier>> = Vec::new();
    if let Some(cache_url) = &cache_url {
        cache.push(Arc::new(RedisTier::new(&RedisConfig::new(cache_url))?));
    }
    let depth_queues = fleet.queues.clone();
    let freshness = Arc::new(Hierarchy::new(cache, None));
    let warmer = Warmer::new(WarmerParts {
        settings: config.warming.clone(),
        presets: config.presets.clone(),
        namespace: prefix.clone(),
        version: opossum_fleet::processing_version(&opossum_fleet::engine_limits(&config)),
        analytics: Analytics::new(
            AnalyticsConfig::from_settings(&prefix, &config.analytics),
            fleet.connection.clone(),
        ),
        freshness: freshness.clone(),
        target: Arc::new(fleet),
    })?;
    match args.command {
        Command::Run => {
            // The scheduler is the fleet's singleton: its /metrics carries the shared tier's
            // usage and every queue's depth, the signal autoscaling reads.
            let sources: Arc<dyn opossum_telemetry::Refresh> = Arc::new(Sources {
                hierarchy: Some(freshness),
                queues: Some(depth_queues),
            });
            if let Some(listen) = args
                .metrics_listen
                .as_deref()
                .or(config.telemetry.metrics_listen.as_deref())
            {
                opossum_telemetry::serve_metrics(
                    listen,
                    sources.clone(),
                    opossum_fleet::shutdown_signal(),
                )
                .await?;
            }
            opossum_telemetry::spawn_reporter(sources, &config.telemetry);
            Ok(warmer.run(opossum_fleet::shutdown_signal()).await?)
        }
        Command::Warm {
            once: _,
            strategy,
            dry_run,
            json,
        } => warm(&warmer, strategy, dry_run, json).await,
    }
}

async fn warm(
    warmer: &Warmer,
    strategy: Strategy,
    dry_run: bool,
    json: bool,
) -> anyhow::Result<()> {
    let candidates = warmer
        .plan(strategy, opossum_cache::unix_millis())
        .await
        .with_context(|| format!("planning {} warming", strategy.name()))?;
    // Drawn only on a terminal; hidden (and free) when stderr is a pipe or a file.
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(candidates.len() as u64),
        indicatif::ProgressDrawTarget::stderr(),
    );
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message(format!("{} warming", strategy.name()));
    let summary = warmer
        .enqueue(candidates, dry_run, &|done| bar.set_position(done))
        .await
        .with_context(|| format!("enqueueing {} warming", strategy.name()))?;
    bar.finish_and_clear();
    if json {
        let mut value = serde_json::to_value(summary)?;
        value["strategy"] = strategy.name().into();
        value["dry_run"] = dry_run.into();
        println!("{value}");
    } else {
        let dry = if dry_run {
            " (dry run: nothing enqueued)"
        } else {
            ""
        };
        println!("{}: {summary}{dry}", strategy.name());
    }
    Ok(())
}
