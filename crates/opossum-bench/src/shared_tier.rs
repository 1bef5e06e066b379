//! The shared tier under concurrent reads, on each Redis given, in one run: `images` entries of
//! `size` bytes written through `RedisTier` (keys laid out as the product lays them out, one
//! hash tag per image), then `reads` random `RedisTier::get`s from `concurrency` tasks, beside
//! plain `GET`s of the same keys on the same connection (the baseline), and the keys and bytes
//! each primary holds afterwards. Run it against scratch servers: it writes, and the
//! per-shard figures count every key on a node.

use std::sync::Arc;
use std::time::{Duration, Instant};

use opossum_cache::{Entry, RedisConfig, RedisTier, Tier};
use opossum_ops::Category;
use rand::Rng;

/// What one target measured.
struct Figures {
    ops_per_sec: f64,
    p50: Duration,
    p99: Duration,
}

fn figures(mut samples: Vec<Duration>, elapsed: Duration) -> Figures {
    samples.sort();
    let at = |p: f64| samples[((samples.len() - 1) as f64 * p).round() as usize];
    Figures {
        ops_per_sec: samples.len() as f64 / elapsed.as_secs_f64(),
        p50: at(0.5),
        p99: at(0.99),
    }
}

fn row(target: &str, path: &str, f: &Figures, baseline: Option<&Figures>) {
    let ratio = baseline.map_or("-".to_string(), |b| {
        format!("{:.2}", f.ops_per_sec / b.ops_per_sec)
    });
    println!(
        "| {target} | {path} | {:.0} | {:.0} us | {:.0} us | {ratio} |",
        f.ops_per_sec,
        f.p50.as_secs_f64() * 1e6,
        f.p99.as_secs_f64() * 1e6,
    );
}

/// Runs `reads` reads over `keys` from `concurrency` tasks; `read` reads one key.
async fn load<F, Fut>(
    keys: &Arc<Vec<String>>,
    reads: usize,
    concurrency: usize,
    read: F,
) -> anyhow::Result<Figures>
where
    F: Fn(String) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let per_task = reads.div_ceil(concurrency.max(1));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (keys, read) = (keys.clone(), read.clone());
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::with_capacity(per_task);
            for _ in 0..per_task {
                let key = keys[rand::rng().random_range(0..keys.len())].clone();
                let began = Instant::now();
                read(key).await?;
                samples.push(began.elapsed());
            }
            Ok::<_, anyhow::Error>(samples)
        }));
    }
    let mut samples = Vec::with_capacity(reads);
    for task in tasks {
        samples.extend(task.await??);
    }
    Ok(figures(samples, start.elapsed()))
}

pub(crate) fn run(
    targets: &[String],
    images: usize,
    size: usize,
    reads: usize,
    concurrency: usize,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        println!(
            "{images} images of {size} bytes; {reads} random reads from {concurrency} tasks per path"
        );
        println!("| target | path | ops/s | p50 | p99 | ops/s vs plain GET |");
        println!("|---|---|---|---|---|---|");
        let mut balances = Vec::new();
        for url in targets {
            let target = opossum_redis::redact(url);
            let tier = Arc::new(RedisTier::new(&RedisConfig {
                response_timeout: Duration::from_secs(5),
                ..RedisConfig::new(url)
            })?);
            let prefix = format!("bench-shared-{:08x}", rand::random::<u32>());
            let body: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
            let entry = Arc::new(Entry::new(
                body,
                "image/webp",
                Category::Result,
                Duration::from_secs(3600),
                10,
                (256, 256),
            ));
            let keys: Vec<String> = (0..images)
                .map(|i| {
                    let image = opossum_ops::image_prefix(&prefix, &format!("photos/{i}.jpg"));
                    format!("{image}{:064x}", i)
                })
                .collect();
            let keys = Arc::new(keys);
            // Written 64 at a time, as a fleet's workers would.
            for chunk in keys.chunks(64) {
                let writes = chunk.iter().map(|key| tier.put(key, entry.clone()));
                for written in futures::future::join_all(writes).await {
                    anyhow::ensure!(written?, "the tier refused an entry");
                }
            }
            let plain = {
                let connection = tier.connection();
                load(&keys, reads, concurrency, move |key| {
                    let mut connection = connection.clone();
                    async move {
                        let value: Option<Vec<u8>> = redis::cmd("GET")
                            .arg(&key)
                            .query_async(&mut connection)
                            .await?;
                        anyhow::ensure!(value.is_some(), "plain GET missed {key}");
                        Ok(())
                    }
                })
                .await?
            };
            let through_tier = {
                let tier = tier.clone();
                load(&keys, reads, concurrency, move |key| {
                    let tier = tier.clone();
                    async move {
                        anyhow::ensure!(tier.get(&key).await?.is_some(), "tier missed {key}");
                        Ok(())
                    }
                })
                .await?
            };
            row(&target, "plain GET (baseline)", &plain, None);
            row(&target, "RedisTier::get", &through_tier, Some(&plain));
            balances.push((target, tier.usage_per_node().await?));
        }
        println!();
        println!("| target | node | keys | used memory |");
        println!("|---|---|---|---|");
        for (target, nodes) in &balances {
            for (node, usage) in nodes {
                println!(
                    "| {target} | {node} | {} | {:.1} MiB |",
                    usage.items,
                    usage.bytes as f64 / (1 << 20) as f64
                );
            }
            if nodes.len() > 1 {
                let keys: Vec<f64> = nodes.iter().map(|(_, u)| u.items as f64).collect();
                let mean = keys.iter().sum::<f64>() / keys.len() as f64;
                let spread = keys.iter().map(|k| (k - mean).abs()).fold(0.0, f64::max);
                println!(
                    "{target}: largest deviation of a shard's keys from the mean: {:.1}%",
                    spread / mean * 100.0
                );
            }
        }
        Ok(())
    })
}
