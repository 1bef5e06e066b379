//! `opossum-bench replay`: a day of traffic replayed through a real fleet twice in one run,
//! with cache warming off and then on, to measure what warming buys and what it costs.
//!
//! The workload ([`workload`]) is generated from a seed, so both phases replay the same
//! requests at the same moments:
//! - images: `--images` ids, most present from the start, `--new-images` of them arriving at
//!   random times during the day (a fresh arrival draws extra traffic for a while);
//! - popularity: Zipf (`--exponent`) over the established images, in a random rank order;
//! - variants: 70% thumbnails from one preset family (small, medium, large), 30% results
//!   (an 800x600 resize in JPEG or WebP, a greyscale JPEG);
//! - time: a daily cycle, quietest at the start and end, busiest at midday, compressed into
//!   `--day` of wall time (analytics buckets are a 24th of it, so the scheduler sees hours).
//!
//! Each phase starts `--workers` worker processes (and, with warming on, one
//! `opossum-scheduler run`) under a prefix of its own with fresh data directories, submits
//! every request as a user job at its time (open loop), and reads the completion events. A
//! request is a hit when a cache tier answered it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use opossum_fleet::{Fleet, Job, Priority};
use rand::{Rng, SeedableRng};
use rand_distr::Distribution;
use serde::Serialize;

/// Thumbnail presets of the workload's family, with their share of thumbnail requests.
const THUMBNAILS: [(&str, f64); 3] = [
    ("preset:thumb-s", 0.5),
    ("preset:thumb-m", 0.3),
    ("preset:thumb-l", 0.2),
];

/// Result chains, with their share of result requests.
const RESULTS: [(&str, f64); 3] = [
    ("resize:800:600,format:jpeg", 0.5),
    ("resize:800:600,format:webp", 0.3),
    ("grayscale,format:jpeg", 0.2),
];

/// Share of requests that are thumbnails.
const THUMBNAIL_SHARE: f64 = 0.7;

/// Share of requests that go to images that arrived within the last 24th of the day.
const FRESH_SHARE: f64 = 0.15;

#[derive(clap::Args, Clone)]
pub(crate) struct ReplayArgs {
    /// Images in the workload
    #[arg(long, default_value_t = 300)]
    images: usize,
    /// Requests over the day
    #[arg(long, default_value_t = 12_000)]
    requests: usize,
    /// Wall time of the compressed day
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    day: Duration,
    /// Share of the images that arrive during the day
    #[arg(long, default_value_t = 0.1)]
    new_images: f64,
    /// Zipf exponent of image popularity
    #[arg(long, default_value_t = 1.0)]
    exponent: f64,
    /// Worker processes
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// User jobs per worker at once
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Warm jobs per worker at once
    #[arg(long, default_value_t = 1)]
    warm_concurrency: usize,
    /// Seed of the workload
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Print the results as JSON
    #[arg(long)]
    json: bool,
}

/// One request of the workload.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Request {
    /// offset from the start of the day
    pub(crate) at: Duration,
    pub(crate) image_id: String,
    pub(crate) ops: &'static str,
    pub(crate) thumbnail: bool,
}

fn image_name(index: usize) -> String {
    format!("img-{index:04}.jpg")
}

fn pick(rng: &mut impl Rng, weighted: &[(&'static str, f64)]) -> &'static str {
    let mut x = rng.random::<f64>() * weighted.iter().map(|(_, w)| w).sum::<f64>();
    for (item, weight) in weighted {
        if x < *weight {
            return item;
        }
        x -= weight;
    }
    weighted[weighted.len() - 1].0
}

/// The day's requests, in time order (see the module documentation).
pub(crate) fn workload(args: &ReplayArgs) -> Vec<Request> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(args.seed);
    let day = args.day.as_secs_f64();
    let fresh_window = day / 24.0;
    let new_count = ((args.images as f64) * args.new_images.clamp(0.0, 1.0)).round() as usize;
    let established = args.images.saturating_sub(new_count).max(1);
    // Rank order of the established images, and arrival times of the new ones.
    let mut ranked: Vec<usize> = (0..established).collect();
    for i in (1..ranked.len()).rev() {
        ranked.swap(i, rng.random_range(0..=i));
    }
    let arrivals: Vec<(f64, usize)> = (established..args.images)
        .map(|i| (rng.random::<f64>() * day * 0.9, i))
        .collect();
    let zipf = rand_distr::Zipf::new(established as f64, args.exponent.max(0.01))
        .unwrap_or_else(|_| rand_distr::Zipf::new(established as f64, 1.0).expect("zipf"));
    let mut times: Vec<f64> = Vec::with_capacity(args.requests);
    while times.len() < args.requests {
        // Density 1 - 0.8 cos(2 pi t / day): 0.2 at midnight, 1.8 at noon.
        let t = rng.random::<f64>() * day;
        let density = 1.0 - 0.8 * (2.0 * std::f64::consts::PI * t / day).cos();
        if rng.random::<f64>() * 1.8 < density {
            times.push(t);
        }
    }
    times.sort_by(f64::total_cmp);
    times
        .into_iter()
        .map(|t| {
            let fresh: Vec<usize> = arrivals
                .iter()
                .filter(|(at, _)| *at <= t && t - *at < fresh_window)
                .map(|(_, i)| *i)
                .collect();
            let arrived: Vec<usize> = arrivals
                .iter()
                .filter(|(at, _)| *at <= t)
                .map(|(_, i)| *i)
                .collect();
            let image = if !fresh.is_empty() && rng.random::<f64>() < FRESH_SHARE {
                fresh[rng.random_range(0..fresh.len())]
            } else if !arrived.is_empty() && rng.random::<f64>() < 0.02 {
                // Older new images keep a little traffic.
                arrived[rng.random_range(0..arrived.len())]
            } else {
                let rank = (zipf.sample(&mut rng) as usize).clamp(1, established) - 1;
                ranked[rank]
            };
            let thumbnail = rng.random::<f64>() < THUMBNAIL_SHARE;
            Request {
                at: Duration::from_secs_f64(t),
                image_id: image_name(image),
                ops: if thumbnail {
                    pick(&mut rng, &THUMBNAILS)
                } else {
                    pick(&mut rng, &RESULTS)
                },
                thumbnail,
            }
        })
        .collect()
}

/// The configuration both phases run with: the workload's presets, analytics buckets of a
/// 24th of the day, and warming settings scaled to the compressed day.
fn config_yaml(day: Duration) -> String {
    let bucket = (day.as_secs_f64() / 24.0).max(1.0);
    format!(
        "presets:\n\
         \x20 thumb-s: {{ops: \"thumbnail:100,format:webp\", family: thumbs}}\n\
         \x20 thumb-m: {{ops: \"thumbnail:160,format:webp\", family: thumbs}}\n\
         \x20 thumb-l: {{ops: \"thumbnail:240,format:webp\", family: thumbs}}\n\
         analytics:\n\
         \x20 bucket: {bucket:.0}\n\
         \x20 retention: {retention:.0}\n\
         warming:\n\
         \x20 common_operations: [\"preset:thumb-m\", \"resize:800:600,format:jpeg\"]\n\
         \x20 related_formats: [jpeg, webp]\n\
         \x20 top_images: 100\n\
         \x20 jobs_per_run: 500\n\
         \x20 backlog_cap: 1000\n\
         \x20 interval: {bucket:.0}\n\
         \x20 window: {window:.0}\n\
         \x20 half_life: {half_life:.0}\n\
         \x20 horizon: {bucket:.0}\n",
        retention = bucket * 48.0,
        window = bucket * 24.0,
        half_life = bucket * 6.0,
    )
}

/// A child process killed when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[derive(Serialize, Debug, Clone, Copy, Default)]
struct ClassFigures {
    requests: usize,
    hits: usize,
    hit_rate: f64,
}

#[derive(Serialize, Debug, Clone, Default)]
struct PhaseFigures {
    warming: bool,
    thumbnails: ClassFigures,
    results: ClassFigures,
    user_p50_ms: f64,
    user_p99_ms: f64,
    errors: usize,
    warm_jobs: usize,
}

#[derive(Serialize)]
struct ReplayReport {
    images: usize,
    requests: usize,
    day_seconds: f64,
    warming_off: PhaseFigures,
    warming_on: PhaseFigures,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

pub(crate) fn run(args: ReplayArgs, url: String) -> anyhow::Result<()> {
    let requests = workload(&args);
    crate::runtime()?.block_on(async {
        let client = opossum_redis::Redis::open(url.as_str()).context("invalid --redis URL")?;
        let scratch = std::env::temp_dir().join(format!("opossum-replay-{}", std::process::id()));
        let originals = scratch.join("originals");
        std::fs::create_dir_all(&originals)?;
        let source = originals.join("source.jpg");
        let picture = image::RgbImage::from_fn(1024, 768, |x, y| {
            let n = x
                .wrapping_mul(2654435761)
                .wrapping_add(y.wrapping_mul(40503));
            image::Rgb([(x / 4) as u8, (y / 3) as u8, (n >> 24) as u8])
        });
        // A JPEG, like most uploads (thumbnails can shrink on load).
        picture.save(&source).context("writing the replay image")?;
        for index in 0..args.images {
            std::os::unix::fs::symlink(&source, originals.join(image_name(index)))?;
        }
        let config = scratch.join("opossum.yaml");
        std::fs::write(&config, config_yaml(args.day))?;
        let mut phases = Vec::new();
        for warming in [false, true] {
            let figures = phase(&args, &url, &client, &scratch, &config, &requests, warming).await;
            phases.push(figures);
        }
        let _ = std::fs::remove_dir_all(&scratch);
        let warming_on = phases.pop().context("phase")??;
        let warming_off = phases.pop().context("phase")??;
        let report = ReplayReport {
            images: args.images,
            requests: requests.len(),
            day_seconds: args.day.as_secs_f64(),
            warming_off,
            warming_on,
        };
        if args.json {
            println!("{}", serde_json::to_string(&report)?);
        } else {
            print_report(&report);
        }
        Ok(())
    })
}

fn print_report(report: &ReplayReport) {
    println!(
        "| warming | thumbnail hit rate | result hit rate | user p50 | user p99 | warm jobs | errors |"
    );
    println!("|---|---|---|---|---|---|---|");
    for phase in [&report.warming_off, &report.warming_on] {
        println!(
            "| {} | {:.1}% ({}/{}) | {:.1}% ({}/{}) | {:.1} ms | {:.1} ms | {} | {} |",
            if phase.warming { "on" } else { "off" },
            phase.thumbnails.hit_rate * 100.0,
            phase.thumbnails.hits,
            phase.thumbnails.requests,
            phase.results.hit_rate * 100.0,
            phase.results.hits,
            phase.results.requests,
            phase.user_p50_ms,
            phase.user_p99_ms,
            phase.warm_jobs,
            phase.errors
        );
    }
    println!(
        "\n{} requests over {} images in a {:.0} s day; user p99 with warming on is {:.2}x off",
        report.requests,
        report.images,
        report.day_seconds,
        report.warming_on.user_p99_ms / report.warming_off.user_p99_ms
    );
}

#[allow(clippy::too_many_arguments)]
async fn phase(
    args: &ReplayArgs,
    url: &str,
    client: &opossum_redis::Redis,
    scratch: &Path,
    config: &Path,
    requests: &[Request],
    warming: bool,
) -> anyhow::Result<PhaseFigures> {
    let prefix = format!("replay{}", opossum_fleet::new_job_id());
    let binaries = std::env::current_exe()?;
    let spawn = |name: &str, extra: Vec<String>| -> anyhow::Result<Process> {
        let binary = binaries.with_file_name(name);
        let child = std::process::Command::new(&binary)
            .args(["--redis", url, "--prefix", &prefix])
            .arg("--config")
            .arg(config)
            .args(extra)
            .env("OPOSSUM_LOG", "warn")
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        Ok(Process(child))
    };
    let mut processes = Vec::new();
    for n in 0..args.workers {
        let data: PathBuf = scratch.join(format!("{prefix}-worker-{n}"));
        processes.push(spawn(
            "opossum-worker",
            vec![
                "--originals".into(),
                scratch.join("originals").to_string_lossy().into_owned(),
                "--data-dir".into(),
                data.to_string_lossy().into_owned(),
                "--concurrency".into(),
                args.concurrency.to_string(),
                "--warm-concurrency".into(),
                args.warm_concurrency.to_string(),
            ],
        )?);
    }
    if warming {
        processes.push(spawn("opossum-scheduler", vec!["run".into()])?);
    }
    let result = replay(client, &prefix, requests, warming).await;
    drop(processes);
    if let Err(e) = crate::queue::remove_prefix(client, &prefix).await {
        eprintln!("warning: the replay's keys under {prefix}: were not all removed: {e}");
    }
    result
}

async fn replay(
    client: &opossum_redis::Redis,
    prefix: &str,
    requests: &[Request],
    warming: bool,
) -> anyhow::Result<PhaseFigures> {
    let Fleet { queues, events, .. } = Fleet::connect(client, prefix).await?;
    // Give the processes a moment to connect (the scheduler reads events from its start).
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Events are read by a task of their own, so a blocking read never delays a submission.
    let mut reader = events.reader(Duration::from_millis(200)).await?;
    let mut after = events.last_id().await?;
    let (sender, mut arrivals) = tokio::sync::mpsc::unbounded_channel();
    let reading = tokio::spawn(async move {
        loop {
            match reader.next(&after, 1000).await {
                Ok(entries) => {
                    if let Some((id, _)) = entries.last() {
                        after = id.clone();
                    }
                    let now = Instant::now();
                    for (_, event) in entries {
                        if sender.send((now, event)).is_err() {
                            return;
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "reading events failed; retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    });
    let start = Instant::now();
    let mut sent: HashMap<String, (Instant, bool)> = HashMap::new();
    let mut done: HashMap<String, (Duration, bool, bool)> = HashMap::new();
    let mut warm_jobs = 0usize;
    let mut errors = 0usize;
    let mut next = 0usize;
    let last_at = requests.last().map_or(Duration::ZERO, |r| r.at);
    let deadline = tokio::time::Instant::from_std(start) + last_at + Duration::from_secs(300);
    while done.len() < requests.len() {
        let next_at = requests
            .get(next)
            .map(|r| tokio::time::Instant::from_std(start) + r.at);
        tokio::select! {
            () = tokio::time::sleep_until(next_at.unwrap_or(deadline)), if next_at.is_some() => {
                let elapsed = start.elapsed();
                let mut due = Vec::new();
                while next < requests.len() && requests[next].at <= elapsed {
                    let request = &requests[next];
                    let job = Job::new(&request.image_id, request.ops, Priority::User);
                    sent.insert(job.job_id.clone(), (Instant::now(), request.thumbnail));
                    due.push(job);
                    next += 1;
                }
                queues.submit(due).await?;
            }
            arrival = arrivals.recv() => {
                let Some((now, event)) = arrival else { bail!("the event reader stopped") };
                if event.priority == Priority::Warm {
                    warm_jobs += 1;
                    continue;
                }
                let Some((at, thumbnail)) = sent.get(&event.job_id) else { continue };
                let ok = event.status == opossum_fleet::Status::Ok;
                let hit = ok
                    && matches!(event.source, Some(opossum_fleet::Provenance::Tier(_)));
                if done.insert(event.job_id.clone(), (now - *at, *thumbnail, hit)).is_none() && !ok {
                    errors += 1;
                    tracing::warn!(error = event.error_message(), "replay request failed");
                }
            }
            () = tokio::time::sleep_until(deadline) => {
                reading.abort();
                bail!("{} of {} requests completed in time", done.len(), requests.len());
            }
        }
    }
    reading.abort();
    let mut latencies: Vec<f64> = done
        .values()
        .map(|(d, _, _)| d.as_secs_f64() * 1000.0)
        .collect();
    latencies.sort_by(f64::total_cmp);
    let class = |thumbnail: bool| {
        let requests = done.values().filter(|(_, t, _)| *t == thumbnail).count();
        let hits = done
            .values()
            .filter(|(_, t, h)| *t == thumbnail && *h)
            .count();
        ClassFigures {
            requests,
            hits,
            hit_rate: if requests == 0 {
                0.0
            } else {
                hits as f64 / requests as f64
            },
        }
    };
    Ok(PhaseFigures {
        warming,
        thumbnails: class(true),
        results: class(false),
        user_p50_ms: percentile(&latencies, 0.5),
        user_p99_ms: percentile(&latencies, 0.99),
        errors,
        warm_jobs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> ReplayArgs {
        ReplayArgs {
            images: 100,
            requests: 5_000,
            day: Duration::from_secs(240),
            new_images: 0.1,
            exponent: 1.0,
            workers: 1,
            concurrency: 1,
            warm_concurrency: 1,
            seed: 3,
            json: false,
        }
    }

    #[test]
    fn the_workload_is_repeatable_and_shaped_like_a_day() {
        let a = workload(&args());
        assert_eq!(a, workload(&args()), "same seed, same requests");
        assert_eq!(a.len(), 5_000);
        assert!(a.windows(2).all(|w| w[0].at <= w[1].at));
        // The middle half of the day carries far more than the first and last quarters.
        let quarter = Duration::from_secs(60);
        let middle = a
            .iter()
            .filter(|r| r.at >= quarter && r.at < 3 * quarter)
            .count();
        assert!(middle as f64 > 0.7 * a.len() as f64, "{middle}");
        // About 70% thumbnails.
        let thumbs = a.iter().filter(|r| r.thumbnail).count() as f64 / a.len() as f64;
        assert!((thumbs - 0.7).abs() < 0.03, "{thumbs}");
        // New images (the last 10 ids) are never asked for before they arrive, and are asked for.
        let first_new = a
            .iter()
            .position(|r| r.image_id.as_str() >= "img-0090.jpg")
            .unwrap();
        assert!(first_new > 0);
        // Popularity is skewed: the top image draws more than 5% of requests.
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for r in &a {
            *counts.entry(&r.image_id).or_default() += 1;
        }
        let top = counts.values().max().unwrap();
        assert!(*top > a.len() / 20, "{top}");
    }

    #[test]
    fn the_config_scales_to_the_day() {
        let yaml = config_yaml(Duration::from_secs(120));
        let config = opossum_config::Config::parse(&yaml, "replay").unwrap();
        assert_eq!(config.analytics.bucket, Duration::from_secs(5));
        assert_eq!(config.warming.window, Duration::from_secs(120));
        assert_eq!(config.warming.half_life, Duration::from_secs(30));
        assert_eq!(config.presets.siblings("thumb-s").len(), 2);
    }
}
