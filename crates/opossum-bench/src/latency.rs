//! Hit latency per tier: the same 64 KiB value read `lookups` times from each tier, and from
//! Redis with a plain GET (the baseline the Redis tier is judged against), in one run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use opossum_cache::{
    DiskConfig, DiskTier, Entry, MemoryConfig, MemoryTier, RedisConfig, RedisTier, Tier,
};
use opossum_ops::Category;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn report(name: &str, mut samples: Vec<Duration>, baseline: Option<Duration>) -> Duration {
    samples.sort();
    let (p50, p99) = (percentile(&samples, 0.5), percentile(&samples, 0.99));
    let ratio = baseline.map_or(String::new(), |b| {
        format!("{:.2}x", p50.as_secs_f64() / b.as_secs_f64())
    });
    println!(
        "| {name} | {:.1} us | {:.1} us | {ratio} |",
        p50.as_secs_f64() * 1e6,
        p99.as_secs_f64() * 1e6
    );
    p50
}

async fn time_tier(tier: &dyn Tier, key: &str, lookups: usize) -> anyhow::Result<Vec<Duration>> {
    let mut samples = Vec::with_capacity(lookups);
    for _ in 0..lookups {
        let start = Instant::now();
        let hit = tier.get(key).await?;
        samples.push(start.elapsed());
        anyhow::ensure!(hit.is_some(), "{} tier missed", tier.kind().name());
    }
    Ok(samples)
}

pub(crate) fn run(redis_url: &str, size: usize, lookups: usize) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let body: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
        let entry = Arc::new(Entry::new(
            body.clone(),
            "image/webp",
            Category::Result,
            Duration::from_secs(3600),
            10,
            (256, 256),
        ));
        let key = "bench:{0123456789abcdef}:latency";
        let dir = std::env::temp_dir().join(format!("opossum-latency-{}", std::process::id()));
        let memory = MemoryTier::new(MemoryConfig::default());
        let disk = DiskTier::open(DiskConfig {
            path: dir.clone(),
            max_bytes: 1 << 30,
            cleanup_interval: Duration::from_secs(3600),
            memory_bytes: DiskConfig::DEFAULT_MEMORY_BYTES,
        })?;
        let redis = RedisTier::new(&RedisConfig::new(redis_url))?;
        for tier in [&memory as &dyn Tier, &disk, &redis] {
            tier.put(key, entry.clone()).await?;
        }
        // Plain GET of the same bytes over one multiplexed connection: the baseline.
        let mut connection = opossum_redis::Redis::open(redis_url)?
            .connect(&opossum_redis::Settings::default())
            .await?;
        let _: () = redis::cmd("SET")
            .arg("bench:plain")
            .arg(&body)
            .query_async(&mut connection)
            .await?;
        let mut plain = Vec::with_capacity(lookups);
        for _ in 0..lookups {
            let start = Instant::now();
            let value: Vec<u8> = redis::cmd("GET")
                .arg("bench:plain")
                .query_async(&mut connection)
                .await?;
            plain.push(start.elapsed());
            anyhow::ensure!(
                value.len() == size,
                "plain GET returned {} bytes",
                value.len()
            );
        }
        let memory_samples = time_tier(&memory, key, lookups).await?;
        let disk_samples = time_tier(&disk, key, lookups).await?;
        let redis_samples = time_tier(&redis, key, lookups).await?;
        println!("{size}-byte value, {lookups} lookups each");
        println!("| path | p50 | p99 | p50 vs plain GET |");
        println!("|---|---|---|---|");
        let baseline = report("redis plain GET (baseline)", plain, None);
        report("memory tier", memory_samples, None);
        report("disk tier (RocksDB)", disk_samples, None);
        report(
            "redis tier (pipelined GET + metadata script)",
            redis_samples,
            Some(baseline),
        );
        drop(disk);
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    })
}
