//! `opossum cache stats|invalidate|simulate`.

use std::path::PathBuf;

use anyhow::Context;
use opossum_cache::simulate::{Trace, arc_hit_rate, belady_hit_rate, lru_hit_rate, moka_hit_rate};
use opossum_cache::{EvictionPolicy, RedisConfig, RedisTier};
use opossum_ops::{Category, image_hash};
use opossum_origin::CdnPurger;
use serde::Serialize;
use serde_json::json;

use crate::runtime;
use opossum_wiring::Wiring;

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
        /// [default: cdn.purge]
        #[arg(long = "purge", env = "OPOSSUM_CDN_PURGE", value_delimiter = ',')]
        purge: Vec<String>,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Recommend memory, Redis and disk sizes for a target hit rate from the recorded traffic
    /// (a miss-ratio curve from the analytics' SHARDS sample)
    Size {
        /// The hit rate to reach, between 0 and 1
        #[arg(long)]
        target_hit_rate: f64,
        /// The traffic to size for
        #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
        window: std::time::Duration,
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

pub(crate) fn run(command: CacheCommand, wiring: &Wiring) -> anyhow::Result<()> {
    match command {
        CacheCommand::Stats { json } => stats(wiring, json),
        CacheCommand::Invalidate {
            image_id,
            purge,
            json,
        } => {
            let purge = if purge.is_empty() {
                wiring.config.cdn.purge.clone()
            } else {
                purge
            };
            invalidate(wiring, &image_id, &purge, json)
        }
        CacheCommand::Simulate {
            trace,
            capacity,
            policy,
            json,
        } => simulate(&trace, capacity, &policy, json),
        CacheCommand::Size {
            target_hit_rate,
            window,
            json,
        } => size(wiring, target_hit_rate, window, json),
    }
}

fn bytes(n: u64) -> String {
    bytesize::ByteSize(n).display().iec().to_string()
}

/// `opossum cache size`: the sizes `opossum_analytics::Sizing` computes from the recorded
/// traffic, beside the configured ones.
fn size(
    wiring: &Wiring,
    target: f64,
    window: std::time::Duration,
    as_json: bool,
) -> anyhow::Result<()> {
    let caching = &wiring.config.caching;
    if !(target > 0.0 && target <= 1.0) {
        anyhow::bail!("--target-hit-rate {target} is not between 0 and 1");
    }
    runtime()?.block_on(async {
        let fleet = wiring.fleet("sizing (it reads the analytics in Redis)").await?;
        let settings = wiring.analytics_config();
        let rate = settings.sample_rate;
        let analytics = opossum_analytics::Analytics::new(settings, fleet.connection);
        let curve = analytics
            .miss_ratio_curve(opossum_cache::unix_millis(), window)
            .await?;
        let Some(sizing) = opossum_analytics::Sizing::from_curve(&curve, target) else {
            anyhow::bail!(
                "no sampled requests in the last {}: nothing recorded yet, or analytics.sample_rate is 0",
                humantime::format_duration(window)
            );
        };
        let (memory, shared) = (sizing.memory_bytes, sizing.shared_bytes);
        let configured_redis = caching.redis_cache.max_memory;
        // The shared tier's shards (one on a single server): keys spread over them by image,
        // so each needs its share of the recommendation, and `maxmemory` is set per node.
        let shards = match &wiring.cache_redis {
            Some(url) => RedisTier::new(&RedisConfig::new(url))?
                .usage_per_node()
                .await
                .unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "the cache Redis's shards could not be read");
                    Vec::new()
                }),
            None => Vec::new(),
        };
        let per_shard = shared.div_ceil(shards.len().max(1) as u64);
        if as_json {
            let out = json!({
                "window_seconds": window.as_secs(),
                "requests": sizing.requests.round(),
                "sample_rate": rate,
                "working_set_bytes": sizing.working_set_bytes,
                "best_hit_rate": sizing.best_hit_rate,
                "target_hit_rate": target,
                "target_reachable": sizing.target_reachable,
                "recommended": {
                    "memory_bytes_per_process": memory,
                    "redis_bytes": shared,
                    "disk_bytes_per_machine": shared,
                },
                "configured": {
                    "memory_bytes_per_process": caching.memory_cache.max_size,
                    "redis_bytes": configured_redis,
                    "disk_bytes_per_machine": caching.disk_cache.max_size,
                },
                "curve": sizing.curve.iter().map(|(s, h)| json!({"bytes": s, "hit_rate": h})).collect::<Vec<_>>(),
                "redis_shards": shards.iter().map(|(node, usage)| json!({
                    "node": node,
                    "recommended_bytes": per_shard,
                    "used_bytes": usage.bytes,
                    "maxmemory": usage.capacity,
                    "keys": usage.items,
                })).collect::<Vec<_>>(),
            });
            println!("{out}");
            return Ok(());
        }
        println!(
            "last {}: {:.0} requests (sampled at {:.0}% of keys), working set {}, best hit rate {:.1}%",
            humantime::format_duration(window),
            sizing.requests,
            rate * 100.0,
            bytes(sizing.working_set_bytes),
            sizing.best_hit_rate * 100.0
        );
        println!("{:>12}  hit rate", "LRU size");
        for (size, hit) in &sizing.curve {
            println!("{:>12}  {:.1}%", bytes(*size), hit * 100.0);
        }
        let sized_for = target.min(sizing.best_hit_rate);
        if !sizing.target_reachable {
            println!(
                "target {:.1}% is out of reach in this window: first requests always miss; sizing for {:.1}%",
                target * 100.0,
                sized_for * 100.0
            );
        }
        println!("recommended for a {:.1}% hit rate:", sized_for * 100.0);
        let configured = |value: Option<u64>, needed: u64| {
            value.map_or(String::new(), |v| {
                let verdict = if v >= needed { "enough" } else { "too small" };
                format!("  configured {}: {verdict}", bytes(v))
            })
        };
        println!(
            "  memory (per process)  {:>12}{}",
            bytes(memory),
            configured(Some(caching.memory_cache.max_size), memory)
        );
        println!(
            "  redis (shared)        {:>12}{}",
            bytes(shared),
            configured(configured_redis, shared)
        );
        println!(
            "  disk (per machine)    {:>12}{}",
            bytes(shared),
            configured(Some(caching.disk_cache.max_size), shared)
        );
        if shards.len() > 1 {
            println!("  redis per shard ({} primaries; set maxmemory on each):", shards.len());
            for (node, usage) in &shards {
                let limit = if usage.capacity == 0 {
                    "unbounded".to_string()
                } else {
                    bytes(usage.capacity)
                };
                println!(
                    "    {node:<21} {:>12}  now {} in {} keys, maxmemory {limit}",
                    bytes(per_shard),
                    bytes(usage.bytes),
                    usage.items
                );
            }
        }
        println!("sizes are of cached bytes; leave about 25% for keys, metadata and fragmentation");
        Ok(())
    })
}

fn rate(value: Option<f64>) -> String {
    value.map_or("-".into(), |r| format!("{:.1}%", r * 100.0))
}

fn stats(wiring: &Wiring, as_json: bool) -> anyhow::Result<()> {
    runtime()?.block_on(async {
        let opened = wiring.tiers().await;
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

fn invalidate(
    wiring: &Wiring,
    image_id: &str,
    purge_endpoints: &[String],
    as_json: bool,
) -> anyhow::Result<()> {
    let prefix = opossum_ops::image_prefix(&wiring.prefix, image_id);
    runtime()?.block_on(async {
        let opened = wiring.tiers().await;
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
        if let Some(url) = &wiring.queue_redis {
            let announced = async {
                let client = opossum_redis::Redis::open(url.as_str())?;
                let mut connection = opossum_fleet::connect(&client).await?;
                opossum_fleet::announce_invalidation(&mut connection, &wiring.prefix, &prefix).await
            };
            match announced.await {
                Ok(n) => notified = Some(n),
                Err(e) => failed.push(format!("announcing to the fleet: {e}")),
            }
        }
        // The CDN tier: one purge per endpoint drops every variant of the image.
        let surrogate_key = image_hash(image_id);
        let mut purged = Vec::new();
        for (endpoint, result) in CdnPurger::new(purge_endpoints)
            .purge(&surrogate_key)
            .await
        {
            match result {
                Ok(status) => purged.push(json!({ "endpoint": endpoint, "status": status })),
                Err(e) => failed.push(e.to_string()),
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
    /// ARC (Megiddo and Modha), the reference the memory tier's policy is held to
    arc_hit_rate: f64,
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
        arc_hit_rate: arc_hit_rate(&trace, capacity as usize),
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
            "arc (reference)",
            rate(Some(report.arc_hit_rate))
        );
        println!(
            "{:<22} {:>9}",
            "belady optimal",
            rate(Some(report.optimal_hit_rate))
        );
    }
    Ok(())
}
