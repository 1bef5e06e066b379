//! `opossum cache stats|invalidate|simulate`.

use std::path::PathBuf;

use anyhow::Context;
use opossum_cache::EvictionPolicy;
use opossum_cache::simulate::{Trace, belady_hit_rate, lru_hit_rate, moka_hit_rate};
use opossum_ops::{Category, image_hash};
use serde::Serialize;
use serde_json::json;

use crate::tiers::TierArgs;
use crate::{namespace, runtime};

#[derive(clap::Subcommand)]
pub(crate) enum CacheCommand {
    /// Hits, misses, hit rate, writes and average TTL per tier and category, and each tier's size
    Stats {
        /// Print JSON instead of tables
        #[arg(long)]
        json: bool,
    },
    /// Remove every variant and intermediate of an image from every tier
    Invalidate {
        /// The image id (for a file, its path exactly as given to `opossum process`)
        image_id: String,
        /// A CDN endpoint to send `PURGE` with the image's `Surrogate-Key` to; repeatable
        #[arg(long = "purge", env = "OPOSSUM_CDN_PURGE", value_delimiter = ',')]
        purge: Vec<String>,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Replay a key trace through the memory tier's policy, beside LRU and Belady's optimal
    Simulate {
        /// One key per line, or ARC format lines `start count ignore ignore`
        #[arg(long)]
        trace: PathBuf,
        /// Cache capacity in entries
        #[arg(long)]
        capacity: u64,
        /// Memory tier policy: lru or tinylfu
        #[arg(long, default_value = "tinylfu")]
        policy: String,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

pub(crate) fn run(command: CacheCommand, tiers: &TierArgs) -> anyhow::Result<()> {
    match command {
        CacheCommand::Stats { json } => stats(tiers, json),
        CacheCommand::Invalidate {
            image_id,
            purge,
            json,
        } => invalidate(tiers, &image_id, &purge, json),
        CacheCommand::Simulate {
            trace,
            capacity,
            policy,
            json,
        } => simulate(&trace, capacity, &policy, json),
    }
}

fn rate(value: Option<f64>) -> String {
    value.map_or("-".into(), |r| format!("{:.1}%", r * 100.0))
}

fn stats(tiers: &TierArgs, as_json: bool) -> anyhow::Result<()> {
    runtime()?.block_on(async {
        let opened = tiers.open().await;
        let stats = opened.hierarchy.cumulative_stats();
        let usage = opened.hierarchy.usage().await;
        if as_json {
            let mut out = serde_json::Map::new();
            for (tier, result) in &usage {
                let counters = stats.tiers.get(tier.name()).cloned().unwrap_or_default();
                let categories: serde_json::Map<String, serde_json::Value> = counters
                    .categories
                    .iter()
                    .map(|(name, c)| {
                        (
                            name.clone(),
                            json!({
                                "hits": c.hits, "misses": c.misses, "hit_rate": c.hit_rate(),
                                "writes": c.writes, "average_ttl_secs": c.average_ttl_secs(),
                            }),
                        )
                    })
                    .collect();
                let usage = match result {
                    Ok(u) => serde_json::to_value(u)?,
                    Err(e) => json!({ "error": e.to_string() }),
                };
                out.insert(
                    tier.name().into(),
                    json!({
                        "usage": usage, "errors": counters.errors, "skipped": counters.skipped,
                        "categories": categories,
                    }),
                );
            }
            println!("{}", json!({ "tiers": out, "computed": stats.computed }));
            return Ok(());
        }
        println!(
            "{:<8} {:<13} {:>9} {:>9} {:>9} {:>9} {:>12}",
            "tier", "category", "hits", "misses", "hit rate", "writes", "average ttl"
        );
        for (tier, _) in &usage {
            let counters = stats.tiers.get(tier.name()).cloned().unwrap_or_default();
            for category in Category::ALL {
                let c = counters
                    .categories
                    .get(category.name())
                    .copied()
                    .unwrap_or_default();
                if c == Default::default() {
                    continue;
                }
                let ttl = c
                    .average_ttl_secs()
                    .map_or("-".into(), |s| format!("{s:.0} s"));
                println!(
                    "{:<8} {:<13} {:>9} {:>9} {:>9} {:>9} {:>12}",
                    tier.name(),
                    category.name(),
                    c.hits,
                    c.misses,
                    rate(c.hit_rate()),
                    c.writes,
                    ttl
                );
            }
            let total = stats.tier_totals(tier.name());
            println!(
                "{:<8} {:<13} {:>9} {:>9} {:>9} {:>9}",
                tier.name(),
                "(all)",
                total.hits,
                total.misses,
                rate(total.hit_rate()),
                total.writes
            );
        }
        println!();
        println!(
            "{:<8} {:>10} {:>14} {:>14} {:>10} {:>8} {:>8}",
            "tier", "items", "bytes", "capacity", "evictions", "errors", "corrupt"
        );
        for (tier, result) in &usage {
            let counters = stats.tiers.get(tier.name()).cloned().unwrap_or_default();
            match result {
                Ok(u) => println!(
                    "{:<8} {:>10} {:>14} {:>14} {:>10} {:>8} {:>8}",
                    tier.name(),
                    u.items,
                    u.bytes,
                    u.capacity,
                    u.evictions.map_or("-".into(), |e| e.to_string()),
                    counters.errors,
                    u.corrupt
                ),
                Err(e) => println!("{:<8} unavailable: {e}", tier.name()),
            }
        }
        let computed: u64 = stats.computed.values().sum();
        println!("\ncomputed: {computed}");
        Ok(())
    })
}

/// Sends `PURGE` with `Surrogate-Key: surrogate_key` to `endpoint`; the CDN's status code.
async fn purge(endpoint: &str, surrogate_key: &str) -> anyhow::Result<u16> {
    let method = reqwest::Method::from_bytes(b"PURGE").context("purge method")?;
    let response = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .context("http client")?
        .request(method, endpoint)
        .header("Surrogate-Key", surrogate_key)
        .send()
        .await
        .with_context(|| format!("purging {endpoint}"))?;
    let status = response.status();
    anyhow::ensure!(
        status.is_success(),
        "purging {endpoint}: the CDN answered {status}"
    );
    Ok(status.as_u16())
}

fn invalidate(
    tiers: &TierArgs,
    image_id: &str,
    purge_endpoints: &[String],
    as_json: bool,
) -> anyhow::Result<()> {
    let prefix = format!("{}:{}:", namespace(), image_hash(image_id));
    runtime()?.block_on(async {
        let opened = tiers.open().await;
        let results = opened.hierarchy.invalidate_image(&prefix).await;
        let mut failed = Vec::new();
        let mut report = serde_json::Map::new();
        for (tier, result) in &results {
            match result {
                Ok(n) => {
                    report.insert(tier.name().into(), json!({ "removed": n }));
                    if !as_json {
                        println!("{:<8} removed {n}", tier.name());
                    }
                }
                Err(e) => {
                    report.insert(tier.name().into(), json!({ "error": e.to_string() }));
                    failed.push(format!("{e}"));
                }
            }
        }
        // Long-running processes (workers) hold their own memory and disk tiers: tell them.
        let mut notified = None;
        if let Some(url) = &tiers.redis {
            let announced = async {
                let client = redis::Client::open(url.as_str())?;
                let mut connection = opossum_fleet::connect(&client).await?;
                opossum_fleet::announce_invalidation(&mut connection, namespace(), &prefix).await
            };
            match announced.await {
                Ok(n) => notified = Some(n),
                Err(e) => failed.push(format!("announcing to the fleet: {e}")),
            }
        }
        // The CDN tier: one purge per endpoint drops every variant of the image.
        let surrogate_key = image_hash(image_id);
        let mut purged = Vec::new();
        for endpoint in purge_endpoints.iter().filter(|e| !e.is_empty()) {
            match purge(endpoint, &surrogate_key).await {
                Ok(status) => purged.push(json!({ "endpoint": endpoint, "status": status })),
                Err(e) => failed.push(format!("{e:#}")),
            }
        }
        if as_json {
            println!(
                "{}",
                json!({ "image_id": image_id, "prefix": prefix, "tiers": report, "processes_notified": notified, "cdn_purged": purged })
            );
        } else {
            if let Some(n) = notified {
                println!("notified {n} running process(es)");
            }
            for p in &purged {
                println!("purged {}", p["endpoint"].as_str().unwrap_or_default());
            }
        }
        if failed.is_empty() {
            Ok(())
        } else {
            anyhow::bail!("invalidation incomplete: {}", failed.join("; "))
        }
    })
}

#[derive(Serialize)]
struct SimulationReport {
    requests: usize,
    distinct_keys: usize,
    capacity: u64,
    policy: &'static str,
    policy_hit_rate: f64,
    lru_hit_rate: f64,
    optimal_hit_rate: f64,
}

fn simulate(
    trace_path: &PathBuf,
    capacity: u64,
    policy_name: &str,
    as_json: bool,
) -> anyhow::Result<()> {
    let policy = EvictionPolicy::from_name(policy_name)
        .with_context(|| format!("unknown --policy `{policy_name}`: expected lru or tinylfu"))?;
    let text = std::fs::read_to_string(trace_path)
        .with_context(|| format!("cannot read {}", trace_path.display()))?;
    let trace =
        Trace::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", trace_path.display()))?;
    anyhow::ensure!(
        !trace.requests.is_empty(),
        "{} has no keys",
        trace_path.display()
    );
    let report = SimulationReport {
        requests: trace.requests.len(),
        distinct_keys: trace.distinct,
        capacity,
        policy: match policy {
            EvictionPolicy::Lru => "lru",
            EvictionPolicy::TinyLfu => "tinylfu",
        },
        policy_hit_rate: moka_hit_rate(&trace, capacity, policy),
        lru_hit_rate: lru_hit_rate(&trace, capacity as usize),
        optimal_hit_rate: belady_hit_rate(&trace, capacity as usize),
    };
    if as_json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "{} requests, {} distinct keys, capacity {}",
            report.requests, report.distinct_keys, capacity
        );
        println!("{:<22} {:>9}", "policy", "hit rate");
        println!(
            "{:<22} {:>9}",
            format!("memory tier ({})", report.policy),
            rate(Some(report.policy_hit_rate))
        );
        println!(
            "{:<22} {:>9}",
            "lru (exact)",
            rate(Some(report.lru_hit_rate))
        );
        println!(
            "{:<22} {:>9}",
            "belady optimal",
            rate(Some(report.optimal_hit_rate))
        );
    }
    Ok(())
}
