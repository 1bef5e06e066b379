//! `opossum-bench queue`: the fleet's load generator. One run measures, against the same Redis:
//!
//! 1. a no-op apalis baseline: an in-process apalis-redis worker whose handler does nothing,
//!    draining `--jobs` jobs pushed beforehand (jobs/s), then one job at a time (latency);
//! 2. the real fleet: one `opossum-worker` process (the binary beside this one), draining
//!    `--jobs` jobs submitted through the producer (jobs/s, from the first submit to the last
//!    completion event), then one job at a time, submit to completion event (latency).
//!
//! With `--cached` every job asks for a variant computed beforehand, so the figure is the
//! queue and cache-hit path; without it each job computes a new variant of a small image.
//!
//! Both throughput runs also report their CPU per job by process (`cpu.rs`: the Redis server,
//! this load generator, the workers) and the Redis commands a job costs, because on a small
//! machine the ratio is set by all of them together.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use apalis::prelude::{BackendExt, Data, TaskSink, WorkerBuilder, WorkerBuilderExt};
use opossum_fleet::{Events, Fleet, Job, Priority, QueueConfig, Queues};
use serde::Serialize;

use crate::cpu::{CpuPerJob, Snapshot};

#[derive(clap::Args)]
pub(crate) struct QueueBenchArgs {
    /// Jobs in the throughput run
    #[arg(long, default_value_t = 20_000)]
    jobs: usize,
    /// Worker concurrency (each fleet worker's and the baseline's)
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Fleet worker processes (the baseline is one process)
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Jobs fetched per round trip, by the baseline and the worker alike
    #[arg(long, default_value_t = 50)]
    batch_size: usize,
    /// Jobs in the latency run, submitted one at a time
    #[arg(long, default_value_t = 300)]
    latency_jobs: usize,
    /// Every job is a cache hit (variants computed before the measurement)
    #[arg(long)]
    cached: bool,
    /// An image in the originals directory to use (default: a 256x256 PNG made here)
    #[arg(long)]
    image: Option<String>,
    /// Originals directory (default: a temporary one holding the generated image)
    #[arg(long)]
    originals: Option<String>,
    /// Print the results as JSON
    #[arg(long)]
    json: bool,
}

#[derive(Serialize, Debug, Clone, Copy)]
struct Figures {
    jobs_per_second: f64,
    latency_p50_ms: f64,
    latency_p99_ms: f64,
}

#[derive(Serialize)]
struct Report {
    jobs: usize,
    concurrency: usize,
    workers: usize,
    cached: bool,
    baseline_noop_apalis: Figures,
    opossum_worker: Figures,
    baseline_cpu: CpuPerJob,
    opossum_cpu: CpuPerJob,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[index]
}

fn latency_figures(mut samples: Vec<f64>, jobs_per_second: f64) -> Figures {
    samples.sort_by(f64::total_cmp);
    Figures {
        jobs_per_second,
        latency_p50_ms: percentile(&samples, 0.5),
        latency_p99_ms: percentile(&samples, 0.99),
    }
}

/// Runs the queue benchmark against the Redis at `url`.
pub(crate) fn run(args: QueueBenchArgs, url: String) -> anyhow::Result<()> {
    crate::runtime()?.block_on(queue_bench(args, url))
}

/// The no-op baseline's payload.
#[derive(serde::Serialize, serde::Deserialize, Clone)]
struct Noop {
    n: u64,
}

async fn noop_handler(
    _job: Noop,
    done: Data<Arc<AtomicUsize>>,
    notify: Data<Arc<tokio::sync::Notify>>,
) -> Result<(), apalis::prelude::BoxDynError> {
    done.fetch_add(1, Ordering::SeqCst);
    notify.notify_waiters();
    Ok(())
}

async fn baseline(
    client: &opossum_redis::Redis,
    prefix: &str,
    jobs: usize,
    latency_jobs: usize,
    concurrency: usize,
    batch_size: usize,
) -> anyhow::Result<(Figures, CpuPerJob)> {
    let connection = opossum_fleet::connect(client).await?;
    let mut meter = connection.clone();
    let queues = QueueConfig {
        prefix: prefix.into(),
        batch_size,
        ..QueueConfig::default()
    };
    let config = queues.backend_named(&queues.tagged("bench-noop"));
    let mut storage =
        apalis_redis::RedisStorage::<Noop, opossum_redis::Connection>::new(connection)
            .with_config(config)
            .with_codec(apalis_codec::msgpack::MsgPackCodec);
    let done = Arc::new(AtomicUsize::new(0));
    let notify = Arc::new(tokio::sync::Notify::new());
    let worker = WorkerBuilder::new(format!("bench-noop-{}", std::process::id()))
        .backend(storage.clone().poll_with_interval(Duration::from_millis(1)))
        .concurrency(concurrency)
        .data(done.clone())
        .data(notify.clone())
        .build(noop_handler);
    let handle = tokio::spawn(async move { worker.run().await });
    // The baseline is fed while it runs, never more than 4,000 jobs ahead: a larger due
    // backlog makes apalis-redis's fetch fail (the failure the fleet's parking avoids).
    let before = Snapshot::take(&mut meter, &[]).await?;
    let started = Instant::now();
    for start in (0..jobs).step_by(1000) {
        while start > done.load(Ordering::SeqCst) + 3000 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let batch: Vec<Noop> = (start..(start + 1000).min(jobs))
            .map(|n| Noop { n: n as u64 })
            .collect();
        storage
            .push_bulk(batch)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    while done.load(Ordering::SeqCst) < jobs {
        tokio::time::sleep(Duration::from_millis(2)).await;
        if started.elapsed() > Duration::from_secs(300) {
            bail!("the no-op baseline did not finish within 300 s");
        }
    }
    let throughput = jobs as f64 / started.elapsed().as_secs_f64();
    let cpu = before.per_job(&Snapshot::take(&mut meter, &[]).await?, jobs);
    let mut samples = Vec::with_capacity(latency_jobs);
    for n in 0..latency_jobs {
        let target = done.load(Ordering::SeqCst) + 1;
        let notified = notify.notified();
        let sent = Instant::now();
        storage
            .push(Noop { n: n as u64 })
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        tokio::time::timeout(Duration::from_secs(10), async {
            let mut notified = std::pin::pin!(notified);
            while done.load(Ordering::SeqCst) < target {
                notified.as_mut().await;
                notified.set(notify.notified());
            }
        })
        .await
        .context("a no-op job took more than 10 s")?;
        samples.push(sent.elapsed().as_secs_f64() * 1000.0);
    }
    handle.abort();
    Ok((latency_figures(samples, throughput), cpu))
}

async fn fleet_run(
    url: &str,
    client: &opossum_redis::Redis,
    prefix: &str,
    args: &QueueBenchArgs,
    image: &str,
    originals: &str,
) -> anyhow::Result<(Figures, CpuPerJob)> {
    let Fleet { queues, events, .. } = Fleet::connect(client, prefix).await?;
    let meter = opossum_fleet::connect(client).await?;
    let worker_binary = std::env::current_exe()?.with_file_name("opossum-worker");
    let mut workers = Vec::new();
    for n in 0..args.workers.max(1) {
        let data = std::env::temp_dir().join(format!("opossum-bench-{}-{n}", std::process::id()));
        let worker = std::process::Command::new(&worker_binary)
            .args(["--prefix", prefix, "--originals", originals])
            .args(["--concurrency", &args.concurrency.to_string()])
            .args(["--batch-size", &args.batch_size.to_string()])
            .args(["--redis", url])
            .arg("--data-dir")
            .arg(&data)
            .env("OPOSSUM_LOG", "warn")
            .spawn()
            .with_context(|| format!("starting {}", worker_binary.display()))?;
        workers.push((worker, data));
    }
    let pids: Vec<u32> = workers.iter().map(|(worker, _)| worker.id()).collect();
    let result = fleet_measure(&queues, &events, meter, &pids, args, image).await;
    for (mut worker, data) in workers {
        let _ = worker.kill();
        let _ = worker.wait();
        let _ = std::fs::remove_dir_all(&data);
    }
    result
}

/// The variants jobs ask for: 64 thumbnail sizes.
fn variant(n: usize, cached: bool) -> String {
    if cached {
        format!("thumbnail:{}", 32 + n % 64)
    } else {
        format!(
            "resize:{}:{},format:png",
            64 + n % 1000,
            64 + n / 1000 % 1000
        )
    }
}

async fn fleet_measure(
    queues: &Queues,
    events: &Events,
    mut meter: opossum_redis::Connection,
    workers: &[u32],
    args: &QueueBenchArgs,
    image: &str,
) -> anyhow::Result<(Figures, CpuPerJob)> {
    let mut reader = events.reader(Duration::from_secs(1)).await?;
    if args.cached {
        let warm: Vec<Job> = (0..64)
            .map(|n| Job::new(image, variant(n, true), Priority::User))
            .collect();
        let ids: Vec<String> = warm.iter().map(|j| j.job_id.clone()).collect();
        let start = events.last_id().await?;
        queues.submit(warm).await?;
        let (found, _) = reader
            .wait_for(&ids, start, Duration::from_secs(120))
            .await?;
        if found.len() < ids.len() {
            bail!("the worker did not compute the 64 warm-up variants within 120 s");
        }
    }
    let jobs: Vec<Job> = (0..args.jobs)
        .map(|n| Job::new(image, variant(n, args.cached), Priority::User))
        .collect();
    let ids: Vec<String> = jobs.iter().map(|j| j.job_id.clone()).collect();
    let start = events.last_id().await?;
    let before = Snapshot::take(&mut meter, workers).await?;
    let started = Instant::now();
    queues.submit(jobs).await?;
    let (found, _) = reader
        .wait_for(&ids, start, Duration::from_secs(600))
        .await?;
    let elapsed = started.elapsed().as_secs_f64();
    if found.len() < ids.len() {
        bail!(
            "{} of {} jobs completed within 600 s",
            found.len(),
            ids.len()
        );
    }
    let throughput = ids.len() as f64 / elapsed;
    let cpu = before.per_job(&Snapshot::take(&mut meter, workers).await?, ids.len());
    let mut samples = Vec::with_capacity(args.latency_jobs);
    for n in 0..args.latency_jobs {
        let job = Job::new(image, variant(n + args.jobs, args.cached), Priority::User);
        let id = [job.job_id.clone()];
        let start = events.last_id().await?;
        let sent = Instant::now();
        queues.submit(vec![job]).await?;
        let (found, _) = reader.wait_for(&id, start, Duration::from_secs(30)).await?;
        if found.is_empty() {
            bail!("a latency job had no event within 30 s");
        }
        samples.push(sent.elapsed().as_secs_f64() * 1000.0);
    }
    Ok((latency_figures(samples, throughput), cpu))
}

/// Deletes every key the run made (queues, job data, events, analytics, cache entries), on
/// every primary. A benchmark may scan: it owns a prefix nobody else uses, and its keys all
/// contain it (`prefix:...`, the queues' `{core:apalis:queues:list}:prefix:...`, analytics'
/// `{prefix:stats}:...`).
pub(crate) async fn remove_prefix(
    client: &opossum_redis::Redis,
    prefix: &str,
) -> anyhow::Result<()> {
    let mut connection = opossum_fleet::connect(client).await?;
    let keys = connection.scan_match(&format!("*{prefix}*")).await?;
    let _removed: Vec<u64> = connection
        .query_by_slot(&keys, |pipe, key| {
            pipe.cmd("UNLINK").arg(key);
        })
        .await?;
    Ok(())
}

async fn queue_bench(args: QueueBenchArgs, url: String) -> anyhow::Result<()> {
    let client = opossum_redis::Redis::open(url.as_str()).context("invalid --redis URL")?;
    let prefix = format!("bench{}", opossum_fleet::new_job_id());
    let temp = std::env::temp_dir().join(format!("opossum-bench-originals-{}", std::process::id()));
    let (originals, image) = match (&args.originals, &args.image) {
        (Some(dir), Some(image)) => (dir.clone(), image.clone()),
        (None, None) => {
            std::fs::create_dir_all(&temp)?;
            let picture = image::RgbImage::from_fn(256, 256, |x, y| {
                image::Rgb([x as u8, y as u8, (x ^ y) as u8])
            });
            picture
                .save(temp.join("bench.png"))
                .context("writing the benchmark image")?;
            (temp.to_string_lossy().into_owned(), "bench.png".to_string())
        }
        _ => bail!("give both --originals and --image, or neither"),
    };
    let (noop, baseline_cpu) = baseline(
        &client,
        &prefix,
        args.jobs,
        args.latency_jobs,
        args.concurrency,
        args.batch_size,
    )
    .await?;
    let ours = fleet_run(&url, &client, &prefix, &args, &image, &originals).await;
    let _ = std::fs::remove_dir_all(&temp);
    if let Err(e) = remove_prefix(&client, &prefix).await {
        eprintln!("warning: the benchmark's keys under {prefix}: were not all removed: {e}");
    }
    let (ours, opossum_cpu) = ours?;
    let report = Report {
        jobs: args.jobs,
        concurrency: args.concurrency,
        workers: args.workers.max(1),
        cached: args.cached,
        baseline_noop_apalis: noop,
        opossum_worker: ours,
        baseline_cpu,
        opossum_cpu,
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("| run | jobs/s | submit-to-done p50 | p99 |");
        println!("|---|---|---|---|");
        for (name, f) in [
            ("no-op apalis-redis worker (baseline)", noop),
            ("opossum-worker", ours),
        ] {
            println!(
                "| {name} | {:.0} | {:.2} ms | {:.2} ms |",
                f.jobs_per_second, f.latency_p50_ms, f.latency_p99_ms
            );
        }
        println!(
            "\n{} jobs, {} worker process(es), concurrency {}, batch size {}, {}; worker throughput {:.2}x the no-op baseline",
            args.jobs,
            args.workers.max(1),
            args.concurrency,
            args.batch_size,
            if args.cached {
                "every job a cache hit"
            } else {
                "every job computed"
            },
            ours.jobs_per_second / noop.jobs_per_second
        );
        println!(
            "\nCPU per job in the throughput runs (µs; {} cores here):",
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        println!("| run | Redis server | load generator | worker process(es) | total |");
        println!("|---|---|---|---|---|");
        for (name, cpu) in [
            (
                "no-op baseline (its worker is in the load generator)",
                &report.baseline_cpu,
            ),
            ("opossum-worker", &report.opossum_cpu),
        ] {
            println!(
                "| {name} | {:.1} | {:.1} | {:.1} | {:.1} |",
                cpu.redis_micros,
                cpu.generator_micros,
                cpu.workers_micros,
                cpu.total_micros()
            );
        }
        println!(
            "Redis commands per job (calls, µs inside Redis):\n  baseline: {}\n  opossum:  {}",
            report.baseline_cpu.commands_line(6),
            report.opossum_cpu.commands_line(6)
        );
    }
    Ok(())
}
