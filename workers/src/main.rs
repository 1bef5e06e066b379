//! `opossum-worker`: one worker process of the fleet. It pulls jobs from `{prefix}:process`
//! and `{prefix}:warm` (separate pools), answers each from the cache hierarchy or computes it
//! from the originals store, and publishes a completion event per job to `{prefix}:events`.
//!
//! SIGTERM or SIGINT starts a graceful stop: no new jobs are fetched, jobs in flight get the
//! grace period to finish, fetched jobs that have not started go back to their queue. A job
//! interrupted harder (SIGKILL, a crash) is re-run by another worker once this one's
//! heartbeats stop (five missed 3 s heartbeats, about 15 s): at-least-once, and the rerun is a
//! cache hit.
#![cfg_attr(not(test), warn(unused_crate_dependencies))]

use std::time::Duration;

use clap::Parser;
use opossum_fleet::{QueueConfig, WorkerConfig};
use opossum_wiring::{CommonArgs, Node, NodeSettings, Wiring};

#[derive(Parser)]
#[command(name = "opossum-worker", version, about = "An Opossum worker process")]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
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
    /// This worker's name [default: host-pid-random, unique per start]
    #[arg(long)]
    name: Option<String>,
}

#[global_allocator]
static ALLOCATOR: opossum_wiring::Allocator = opossum_wiring::Allocator;

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    opossum_wiring::main("opossum-worker", &args.common, |wiring| run(&args, wiring))
}

async fn run(args: &Args, wiring: Wiring) -> anyhow::Result<()> {
    let settings = &wiring.config.worker;
    let queue_config = QueueConfig {
        batch_size: args.batch_size.unwrap_or(settings.batch_size),
        ..wiring.queue_config()
    };
    let fleet = wiring.fleet_with("the worker", queue_config).await?;
    let node = Node::open_fleet(&wiring, fleet.clone(), NodeSettings::service(&wiring)).await?;
    let worker = WorkerConfig {
        name: args
            .name
            .clone()
            .unwrap_or_else(opossum_fleet::unique_worker_name),
        concurrency: args.concurrency.unwrap_or(settings.concurrency),
        warm_concurrency: args.warm_concurrency.unwrap_or(settings.warm_concurrency),
        grace_period: args.grace_period.unwrap_or(settings.grace_period),
        ..WorkerConfig::default()
    };
    wiring.serve_telemetry(node.sources()).await?;
    tracing::info!(worker = %worker.name, originals = %node.state.originals.location(), "worker started");
    let result = opossum_fleet::run_worker(
        node.state.clone(),
        fleet.queues,
        fleet.events,
        fleet.client,
        worker,
        opossum_fleet::shutdown_signal(),
    )
    .await;
    node.finish().await;
    tracing::info!("worker stopped");
    Ok(result?)
}
