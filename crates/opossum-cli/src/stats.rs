//! `opossum stats top`: the fleet's usage analytics (top images and their variants, the
//! traffic profile, hit rates per tier and category) from Redis.

use std::time::Duration;

use clap::Subcommand;
use opossum_analytics::Analytics;

use opossum_wiring::Wiring;

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

pub(crate) fn run(command: StatsCommand, wiring: &Wiring) -> anyhow::Result<()> {
    let StatsCommand::Top(args) = command;
    crate::runtime()?.block_on(async {
        let fleet = wiring
            .fleet("`opossum stats` (the analytics live in Redis)")
            .await?;
        let analytics = Analytics::new(wiring.analytics_config(), fleet.connection);
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
