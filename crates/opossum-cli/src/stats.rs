//! `opossum stats top`: the fleet's usage analytics (top images and their variants, the
//! traffic profile, hit rates per tier and category) from Redis.

use std::time::Duration;

use anyhow::Context;
use clap::Subcommand;
use opossum_analytics::{Analytics, AnalyticsConfig};
use opossum_config::Config;

use crate::tiers::TierArgs;

#[derive(Subcommand)]
pub(crate) enum StatsCommand {
    /// Top images with their top variants, traffic per bucket, hit rates per tier and category
    Top(TopArgs),
}

#[derive(clap::Args)]
pub(crate) struct TopArgs {
    /// How far back to look
    #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
    window: Duration,
    /// Images to list
    #[arg(long, default_value_t = 10)]
    count: usize,
    /// Variants listed per image
    #[arg(long, default_value_t = 5)]
    variants: usize,
    /// Print the report as JSON
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(command: StatsCommand, tiers: &TierArgs, config: &Config) -> anyhow::Result<()> {
    let StatsCommand::Top(args) = command;
    let url = tiers
        .queue_redis
        .as_deref()
        .context("analytics live in Redis: pass --redis URL or set OPOSSUM_REDIS_URL")?;
    crate::runtime()?.block_on(async {
        let client = redis::Client::open(url).context("invalid --redis URL")?;
        let connection = opossum_fleet::connect(&client)
            .await
            .with_context(|| format!("connecting to {url}"))?;
        let analytics = Analytics::new(
            AnalyticsConfig::from_settings(&tiers.prefix, &config.analytics),
            connection,
        );
        let report = analytics
            .report(
                opossum_cache::unix_millis(),
                args.window,
                args.count,
                args.variants,
            )
            .await?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print!("{}", report.to_text());
        }
        Ok(())
    })
}
