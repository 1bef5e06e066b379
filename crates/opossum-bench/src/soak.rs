//! `opossum-bench soak`: memory over a long run. The most repeated complaint about image
//! servers is memory that grows and never returns, so this drives a real process with many
//! requests over many distinct variants of images of mixed sizes, and samples its resident
//! set (`VmRSS`) every second:
//!
//! - `serve`: an embedded `opossum serve` (memory and disk tiers, no Redis), asked over HTTP
//!   by `--clients` keep-alive clients;
//! - `worker`: an `opossum-worker` on `--redis`, fed user jobs `--clients` at a time (a new
//!   job as each completion event arrives).
//!
//! Both get the same requests: image by Zipf popularity, then one of the image's variants
//! (thumbnails of 100 to 700 px in WebP, JPEG or PNG) by Zipf again, so popular variants are
//! hits and the tail keeps computing. The figures: where RSS settles (the median of the second
//! half), its peak, and how much it grew over the second half (the mean of its last tenth
//! against the mean of the tenth around the midpoint). The goal: settled at or below the
//! memory tier's size plus 150 MiB, and no growth over the second half (at most 1%, the
//! sampling's noise).
//!
//! `--env NAME=VALUE` sets variables of the measured process, such as `LD_PRELOAD` of another
//! allocator or glibc's `MALLOC_ARENA_MAX`, so allocators are compared on the same binary.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rand::SeedableRng;
use rand_distr::Distribution;
use serde::Serialize;

#[derive(clap::Args, Clone)]
pub(crate) struct SoakArgs {
    /// What to measure: `serve`, `worker` (needs --redis) or `both`
    #[arg(long, default_value = "both")]
    target: String,
    /// The Redis a measured worker runs on (a scratch server: its prefix is removed after)
    #[arg(long, env = "OPOSSUM_REDIS_URL")]
    redis: Option<String>,
    /// Requests in all
    #[arg(long, default_value_t = 200_000)]
    requests: usize,
    /// Distinct images
    #[arg(long, default_value_t = 200)]
    images: usize,
    /// Distinct variants in all (spread evenly over the images)
    #[arg(long, default_value_t = 20_000)]
    variants: usize,
    /// Requests in flight at once
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// The memory tier's size in MiB (`caching.memory_cache.max_size`)
    #[arg(long, default_value_t = 64)]
    memory_cache_mib: u64,
    /// Variables for the measured process (repeatable): NAME=VALUE
    #[arg(long = "env", value_parser = parse_env)]
    env: Vec<(String, String)>,
    /// Write every RSS sample here as CSV (target,second,rss_mib)
    #[arg(long)]
    csv: Option<PathBuf>,
    /// Seed of the requests
    #[arg(long, default_value_t = 11)]
    seed: u64,
    /// Print the results as JSON
    #[arg(long)]
    json: bool,
}

fn parse_env(text: &str) -> Result<(String, String), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not NAME=VALUE"))?;
    Ok((name.to_string(), value.to_string()))
}

/// One request: an image and a chain.
#[derive(Clone)]
struct Request {
    image: String,
    chain: String,
}

/// The chain of variant `index` of an image (0 <= index < variants per image).
fn variant_chain(index: usize) -> String {
    let size = 100 + (index * 6) % 601;
    let format = ["webp", "jpeg", "png"][index % 3];
    format!("thumbnail:{size},format:{format}")
}

fn image_name(index: usize) -> String {
    if index % 5 == 4 {
        format!("soak-{index:04}.png")
    } else {
        format!("soak-{index:04}.jpg")
    }
}

fn requests(args: &SoakArgs) -> anyhow::Result<Vec<Request>> {
    let per_image = (args.variants / args.images.max(1)).max(1);
    let mut rng = rand::rngs::StdRng::seed_from_u64(args.seed);
    let images = rand_distr::Zipf::new(args.images.max(1) as f64, 1.0)?;
    let variants = rand_distr::Zipf::new(per_image as f64, 0.8)?;
    // Zipf ranks start at 1; a fixed shuffle of ranks keeps popularity independent of size.
    Ok((0..args.requests)
        .map(|_| {
            let image = (images.sample(&mut rng) as usize - 1) * 7919 % args.images.max(1);
            let variant = (variants.sample(&mut rng) as usize - 1) * 104_729 % per_image;
            Request {
                image: image_name(image),
                chain: variant_chain(variant),
            }
        })
        .collect())
}

/// Writes the images: sizes from 400x300 to 2400x1800, four in five JPEG, one PNG.
fn write_images(dir: &Path, count: usize) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let widths = [400u32, 800, 1200, 1600, 2000, 2400];
    let pattern = image::DynamicImage::ImageRgb8(image::RgbImage::from_fn(64, 48, |x, y| {
        image::Rgb([(x * 4) as u8, (y * 5) as u8, ((x ^ y) * 8) as u8])
    }));
    // 30 distinct pictures (five of each size, JPEG and PNG); the rest are copies.
    let mut made: Vec<Option<PathBuf>> = vec![None; 30];
    for index in 0..count {
        let slot = index % 30;
        let target = dir.join(image_name(index));
        if let Some(first) = &made[slot] {
            std::fs::copy(first, &target)?;
            continue;
        }
        let width = widths[slot % widths.len()];
        let picture = opossum_bench::noisy_image(&pattern, width, width * 3 / 4, slot as u64, 6.0)?;
        if target.extension().is_some_and(|e| e == "png") {
            picture.save(&target)?;
        } else {
            std::fs::write(&target, opossum_bench::jpeg(&picture, 85)?)?;
        }
        made[slot] = Some(target);
    }
    Ok(())
}

/// A measured process, killed when dropped.
struct Measured(Child);

impl Drop for Measured {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The resident set of `pid` in MiB, from `/proc/PID/status`.
fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

#[derive(Serialize, Debug)]
struct SoakFigures {
    target: String,
    requests: usize,
    errors: usize,
    seconds: f64,
    requests_per_second: f64,
    memory_cache_mib: f64,
    rss_idle_mib: f64,
    rss_settled_mib: f64,
    rss_peak_mib: f64,
    rss_last_mib: f64,
    second_half_growth_percent: f64,
    within_goal: bool,
    breakdown: Option<Breakdown>,
    samples: Vec<f64>,
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len().max(1) as f64
}

fn figures(
    target: &str,
    requests: usize,
    errors: usize,
    elapsed: Duration,
    cap_mib: f64,
    samples: Vec<f64>,
) -> SoakFigures {
    let n = samples.len();
    let second_half = &samples[n / 2..];
    let mut sorted = second_half.to_vec();
    sorted.sort_by(f64::total_cmp);
    let settled = sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN);
    let tenth = (n / 10).max(1);
    let middle = &samples[(n / 2).saturating_sub(tenth / 2)..(n / 2 + tenth / 2 + 1).min(n)];
    let last = &samples[n.saturating_sub(tenth)..];
    let growth = (mean(last) / mean(middle) - 1.0) * 100.0;
    SoakFigures {
        target: target.to_string(),
        requests,
        errors,
        seconds: elapsed.as_secs_f64(),
        requests_per_second: requests as f64 / elapsed.as_secs_f64(),
        memory_cache_mib: cap_mib,
        rss_idle_mib: f64::NAN,
        rss_settled_mib: settled,
        rss_peak_mib: samples.iter().copied().fold(0.0, f64::max),
        rss_last_mib: samples.last().copied().unwrap_or(f64::NAN),
        second_half_growth_percent: growth,
        within_goal: settled <= cap_mib + 150.0 && growth <= 1.0,
        breakdown: None,
        samples,
    }
}

pub(crate) fn run(args: SoakArgs) -> anyhow::Result<()> {
    let cap_mib = args.memory_cache_mib as f64;
    let targets: Vec<&str> = match args.target.as_str() {
        "both" => vec!["serve", "worker"],
        "serve" => vec!["serve"],
        "worker" => vec!["worker"],
        other => bail!("--target `{other}`: expected serve, worker or both"),
    };
    if targets.contains(&"worker") && args.redis.is_none() {
        bail!("--target worker needs --redis URL (a scratch Redis)");
    }
    let scratch = std::env::temp_dir().join(format!("opossum-soak-{}", std::process::id()));
    let originals = scratch.join("originals");
    write_images(&originals, args.images)?;
    let config = scratch.join("opossum.yaml");
    std::fs::write(
        &config,
        format!(
            "caching:\n  memory_cache:\n    max_size: {}MiB\n  disk_cache:\n    max_size: 4GiB\n",
            args.memory_cache_mib
        ),
    )?;
    let requests = requests(&args)?;
    let result = crate::runtime()?.block_on(async {
        let mut all = Vec::new();
        for target in targets {
            let data = scratch.join(format!("data-{target}"));
            let run = match target {
                "serve" => soak_serve(&args, &config, &originals, &data, &requests).await,
                _ => soak_worker(&args, &config, &originals, &data, &requests).await,
            };
            let soaked = run.with_context(|| format!("soaking {target}"))?;
            let mut figures = figures(
                target,
                requests.len(),
                soaked.errors,
                soaked.elapsed,
                cap_mib,
                soaked.samples,
            );
            figures.rss_idle_mib = soaked.idle_mib;
            figures.breakdown = soaked.breakdown;
            all.push(figures);
        }
        anyhow::Ok(all)
    });
    let _ = std::fs::remove_dir_all(&scratch);
    let all = result?;
    if let Some(csv) = &args.csv {
        let mut out = String::from("target,second,rss_mib\n");
        for f in &all {
            for (second, rss) in f.samples.iter().enumerate() {
                out.push_str(&format!("{},{second},{rss:.1}\n", f.target));
            }
        }
        std::fs::write(csv, out).with_context(|| format!("writing {}", csv.display()))?;
    }
    if args.json {
        println!("{}", serde_json::to_string(&all)?);
        return Ok(());
    }
    let env: Vec<String> = args.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!(
        "| target | env | requests/s | errors | RSS settled | peak | last | 2nd-half growth | goal (<= {:.0} MiB, no growth) |",
        cap_mib + 150.0
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for f in &all {
        println!(
            "| {} | {} | {:.0} | {} | {:.0} MiB | {:.0} MiB | {:.0} MiB | {:+.1}% | {} |",
            f.target,
            if env.is_empty() {
                "-".to_string()
            } else {
                env.join(" ")
            },
            f.requests_per_second,
            f.errors,
            f.rss_settled_mib,
            f.rss_peak_mib,
            f.rss_last_mib,
            f.second_half_growth_percent,
            if f.within_goal { "met" } else { "missed" }
        );
    }
    println!(
        "\nwhere the memory was at the end (MiB; jemalloc is every `malloc`, so its allocated bytes include the memory tier and RocksDB):"
    );
    println!(
        "| target | RSS idle | RSS last | jemalloc resident | allocated | of it the memory tier | of it RocksDB | kept by jemalloc | rest (code, stacks, mappings) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for f in &all {
        match &f.breakdown {
            Some(b) => println!(
                "| {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} |",
                f.target,
                f.rss_idle_mib,
                f.rss_last_mib,
                b.allocator_resident,
                b.allocated,
                b.memory_tier,
                b.rocksdb,
                b.allocator_resident - b.allocated,
                f.rss_last_mib - b.allocator_resident
            ),
            None => println!(
                "| {} | {:.0} | {:.0} | (no allocator figures in its /metrics) |||||",
                f.target, f.rss_idle_mib, f.rss_last_mib
            ),
        }
    }
    println!(
        "\n{} requests over {} variants of {} images, {} clients, memory tier {} MiB",
        args.requests, args.variants, args.images, args.clients, args.memory_cache_mib
    );
    Ok(())
}

/// Samples the RSS of a process every second, from [`Sampler::start`] to [`Sampler::finish`].
struct Sampler {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<Vec<f64>>,
}

impl Sampler {
    fn start(pid: u32) -> Sampler {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut interval = tokio::time::interval(Duration::from_secs(1));
            while !stopped.load(std::sync::atomic::Ordering::SeqCst) {
                interval.tick().await;
                if let Some(rss) = rss_mib(pid) {
                    samples.push(rss);
                }
            }
            samples
        });
        Sampler { stop, task }
    }

    /// Stops sampling; the samples, oldest first.
    async fn finish(self) -> anyhow::Result<Vec<f64>> {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        Ok(self.task.await?)
    }
}

fn spawn(
    args: &SoakArgs,
    binary: &str,
    config: &Path,
    originals: &Path,
    data: &Path,
    extra: &[String],
    envs: &[(String, String)],
) -> anyhow::Result<Measured> {
    let binary = std::env::current_exe()?.with_file_name(binary);
    let child = std::process::Command::new(&binary)
        .arg("--config")
        .arg(config)
        .arg("--originals")
        .arg(originals)
        .arg("--data-dir")
        .arg(data)
        .args(extra)
        .envs(args.env.iter().cloned())
        .envs(envs.iter().cloned())
        .env("OPOSSUM_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    Ok(Measured(child))
}

/// What one soaked process did: errors, time, RSS samples, and where its memory was.
struct Soaked {
    errors: usize,
    elapsed: Duration,
    samples: Vec<f64>,
    /// RSS once the process answered, before the first request
    idle_mib: f64,
    /// the process's own figures at the end, from its `/metrics`
    breakdown: Option<Breakdown>,
}

/// Where a process's memory was at the end of the run, from its `/metrics` (MiB).
#[derive(Serialize, Debug, Clone, Copy)]
struct Breakdown {
    /// the memory tier's entries
    memory_tier: f64,
    /// what RocksDB holds (block cache, memtables, index blocks)
    rocksdb: f64,
    /// what the process holds through jemalloc, its every `malloc` (the memory tier and RocksDB included)
    allocated: f64,
    /// pages jemalloc holds, allocated or kept for reuse
    allocator_resident: f64,
}

/// Reads the breakdown from a Prometheus text exposition.
fn breakdown(metrics: &str) -> Option<Breakdown> {
    let sample = |name: &str| -> Option<f64> {
        metrics.lines().find_map(|line| {
            let value = line.strip_prefix(name)?.strip_prefix(' ')?;
            value
                .trim()
                .parse::<f64>()
                .ok()
                .map(|v| v / (1024.0 * 1024.0))
        })
    };
    Some(Breakdown {
        memory_tier: sample("opossum_cache_memory_bytes{tier=\"memory\"}")?,
        rocksdb: sample("opossum_cache_memory_bytes{tier=\"disk\"}")?,
        allocated: sample("opossum_allocator_bytes{state=\"allocated\"}")?,
        allocator_resident: sample("opossum_allocator_bytes{state=\"resident\"}")?,
    })
}

/// The process's `/metrics`, if it answers.
async fn scrape(client: &reqwest::Client, url: &str) -> Option<Breakdown> {
    let text = client.get(url).send().await.ok()?.text().await.ok()?;
    breakdown(&text)
}

async fn soak_serve(
    args: &SoakArgs,
    config: &Path,
    originals: &Path,
    data: &Path,
    requests: &[Request],
) -> anyhow::Result<Soaked> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let listen = format!("127.0.0.1:{port}");
    let process = spawn(
        args,
        "opossum",
        config,
        originals,
        data,
        &["serve".into(), "--listen".into(), listen.clone()],
        &[],
    )?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()?;
    let base = format!("http://{listen}");
    let ready = Instant::now();
    while client.get(format!("{base}/healthz")).send().await.is_err() {
        if ready.elapsed() > Duration::from_secs(30) {
            bail!("opossum serve did not answer /healthz within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let idle_mib = rss_mib(process.0.id()).unwrap_or(f64::NAN);
    let sampler = Sampler::start(process.0.id());
    let started = Instant::now();
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let requests = std::sync::Arc::new(requests.to_vec());
    let mut clients = Vec::new();
    for _ in 0..args.clients.max(1) {
        let (client, base, next, requests) =
            (client.clone(), base.clone(), next.clone(), requests.clone());
        clients.push(tokio::spawn(async move {
            let mut errors = 0usize;
            loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(request) = requests.get(n) else {
                    return errors;
                };
                let url = format!("{base}/v1/img/{}/{}", request.chain, request.image);
                let ok = match client.get(&url).send().await {
                    Ok(response) => {
                        let ok = response.status().is_success();
                        ok && response.bytes().await.is_ok()
                    }
                    Err(_) => false,
                };
                if !ok {
                    errors += 1;
                }
            }
        }));
    }
    let mut errors = 0;
    for client in clients {
        errors += client.await?;
    }
    let elapsed = started.elapsed();
    let samples = sampler.finish().await?;
    let breakdown = scrape(&client, &format!("{base}/metrics")).await;
    drop(process);
    Ok(Soaked {
        errors,
        elapsed,
        samples,
        idle_mib,
        breakdown,
    })
}

async fn soak_worker(
    args: &SoakArgs,
    config: &Path,
    originals: &Path,
    data: &Path,
    requests: &[Request],
) -> anyhow::Result<Soaked> {
    let url = args.redis.clone().context("--redis")?;
    let client = opossum_redis::Redis::open(url.as_str()).context("invalid --redis URL")?;
    let prefix = format!("soak{}", opossum_fleet::new_job_id());
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let metrics = format!("127.0.0.1:{metrics_port}");
    let process = spawn(
        args,
        "opossum-worker",
        config,
        originals,
        data,
        &[
            "--redis".into(),
            url.clone(),
            "--prefix".into(),
            prefix.clone(),
            "--concurrency".into(),
            args.clients.to_string(),
        ],
        &[("OPOSSUM_TELEMETRY__METRICS_LISTEN".into(), metrics.clone())],
    )?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let metrics_url = format!("http://{metrics}/metrics");
    let ready = Instant::now();
    while http.get(&metrics_url).send().await.is_err() {
        if ready.elapsed() > Duration::from_secs(30) {
            bail!("opossum-worker did not answer {metrics_url} within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let idle_mib = rss_mib(process.0.id()).unwrap_or(f64::NAN);
    let fed = feed_worker(args, &client, &prefix, process.0.id(), requests).await;
    let breakdown = scrape(&http, &metrics_url).await;
    drop(process);
    if let Err(e) = crate::queue::remove_prefix(&client, &prefix).await {
        eprintln!("warning: the soak's keys under {prefix}: were not all removed: {e}");
    }
    let (errors, elapsed, samples) = fed?;
    Ok(Soaked {
        errors,
        elapsed,
        samples,
        idle_mib,
        breakdown,
    })
}

/// Keeps `--clients` jobs in flight: a new one as each completion event arrives.
async fn feed_worker(
    args: &SoakArgs,
    client: &opossum_redis::Redis,
    prefix: &str,
    pid: u32,
    requests: &[Request],
) -> anyhow::Result<(usize, Duration, Vec<f64>)> {
    let opossum_fleet::Fleet { queues, events, .. } =
        opossum_fleet::Fleet::connect(client, prefix).await?;
    let mut reader = events.reader(Duration::from_millis(200)).await?;
    let mut after = events.last_id().await?;
    let sampler = Sampler::start(pid);
    let started = Instant::now();
    let mut in_flight: HashSet<String> = HashSet::new();
    let mut next = 0;
    let mut errors = 0;
    let mut quiet_since = Instant::now();
    while next < requests.len() || !in_flight.is_empty() {
        let mut batch = Vec::new();
        while in_flight.len() + batch.len() < args.clients.max(1) && next < requests.len() {
            let request = &requests[next];
            next += 1;
            batch.push(opossum_fleet::Job::new(
                &request.image,
                request.chain.clone(),
                opossum_fleet::Priority::User,
            ));
        }
        in_flight.extend(batch.iter().map(|job| job.job_id.clone()));
        if !batch.is_empty() {
            queues.submit(batch).await?;
        }
        let entries = reader.next(&after, 1000).await?;
        if let Some((id, _)) = entries.last() {
            after = id.clone();
            quiet_since = Instant::now();
        } else if quiet_since.elapsed() > Duration::from_secs(120) {
            bail!(
                "no completion event for 120 s ({} jobs in flight)",
                in_flight.len()
            );
        }
        for (_, event) in entries {
            if in_flight.remove(&event.job_id) && event.status != opossum_fleet::Status::Ok {
                errors += 1;
            }
        }
    }
    let elapsed = started.elapsed();
    Ok((errors, elapsed, sampler.finish().await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_requests_cover_many_variants_and_repeat_popular_ones() {
        let args = SoakArgs {
            target: "serve".into(),
            redis: None,
            requests: 20_000,
            images: 200,
            variants: 20_000,
            clients: 4,
            memory_cache_mib: 64,
            env: Vec::new(),
            csv: None,
            seed: 11,
            json: false,
        };
        let requests = requests(&args).unwrap();
        let distinct: HashSet<(String, String)> = requests
            .iter()
            .map(|r| (r.image.clone(), r.chain.clone()))
            .collect();
        // Misses and hits both: many distinct variants, far fewer than the requests.
        assert!(distinct.len() > 4_000, "{} distinct", distinct.len());
        assert!(distinct.len() < 15_000, "{} distinct", distinct.len());
        let chains: HashSet<&str> = requests.iter().map(|r| r.chain.as_str()).collect();
        assert!(chains.len() > 90, "{} chains", chains.len());
        assert!(chains.iter().all(|c| opossum_ops::Chain::parse(c).is_ok()));
    }

    #[test]
    fn the_breakdown_is_read_from_the_exposition() {
        let mib = 1024.0 * 1024.0;
        let text = format!(
            "# HELP x y\nopossum_cache_memory_bytes{{tier=\"memory\"}} {}\n\
             opossum_cache_memory_bytes{{tier=\"disk\"}} {}\n\
             opossum_allocator_bytes{{state=\"allocated\"}} {}\n\
             opossum_allocator_bytes{{state=\"resident\"}} {}\n",
            64.0 * mib,
            20.0 * mib,
            90.0 * mib,
            120.0 * mib
        );
        let b = breakdown(&text).unwrap();
        assert_eq!(
            (b.memory_tier, b.rocksdb, b.allocated, b.allocator_resident),
            (64.0, 20.0, 90.0, 120.0)
        );
        // A process without the allocator's figures (not on jemalloc) gives none.
        assert!(breakdown("opossum_cache_memory_bytes{tier=\"memory\"} 1\n").is_none());
    }

    #[test]
    fn growth_compares_the_last_tenth_with_the_middle() {
        let flat = figures("t", 1, 0, Duration::from_secs(1), 64.0, vec![100.0; 100]);
        assert!(flat.second_half_growth_percent.abs() < 1e-9);
        assert!(flat.within_goal);
        let rising: Vec<f64> = (0..100).map(|i| 100.0 + i as f64).collect();
        let grew = figures("t", 1, 0, Duration::from_secs(1), 64.0, rising);
        assert!(grew.second_half_growth_percent > 20.0);
        assert!(!grew.within_goal);
    }
}
