//! `opossum-scheduler`: reads usage analytics and enqueues low-priority cache-warming jobs on
//! `{prefix}:warm` (the opossum-warming crate does the work; this binary wires it up).
//!
//! - `opossum-scheduler run`: the long-running scheduler (predictive every `warming.interval`,
//!   background on `warming.schedule` and in low traffic, related-variant from completion
//!   events), until SIGTERM or SIGINT.
//! - `opossum-scheduler warm --once --strategy predictive|background|related [--dry-run]`: one
//!   run of one strategy, with a progress bar on a terminal and a one-line summary.
#![cfg_attr(not(test), warn(unused_crate_dependencies))]

use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use opossum_analytics::Analytics;
use opossum_fleet::Sources;
use opossum_warming::{Strategy, Warmer};
use opossum_wiring::{CommonArgs, Wiring};

#[derive(Parser)]
#[command(
    name = "opossum-scheduler",
    version,
    about = "Enqueues cache-warming jobs from usage analytics"
)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
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

#[global_allocator]
static ALLOCATOR: opossum_wiring::Allocator = opossum_wiring::Allocator;

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    opossum_wiring::main("opossum-scheduler", &args.common, |wiring| {
        run(args.command, wiring)
    })
}

async fn run(command: Command, wiring: Wiring) -> anyhow::Result<()> {
    let fleet = wiring.fleet("the scheduler").await?;
    // What is fresh is what the shared cache tier holds (none configured: nothing is).
    let freshness = wiring.shared_tier()?;
    let analytics = Analytics::new(wiring.analytics_config(), fleet.connection.clone());
    let queues = fleet.queues.clone();
    match command {
        Command::Run => {
            wiring.check_queue_server(&fleet).await;
            let warmer = wiring.warmer(analytics, freshness.clone(), Arc::new(fleet))?;
            // The scheduler is the fleet's singleton: its /metrics carries the shared tier's
            // usage and every queue's depth, the signal autoscaling reads.
            wiring
                .serve_telemetry(Sources {
                    hierarchy: Some(freshness),
                    queues: Some(queues),
                })
                .await?;
            Ok(warmer.run(opossum_fleet::shutdown_signal()).await?)
        }
        Command::Warm {
            once: _,
            strategy,
            dry_run,
            json,
        } => {
            let warmer = wiring.warmer(analytics, freshness, Arc::new(fleet))?;
            warm(&warmer, strategy, dry_run, json).await
        }
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
