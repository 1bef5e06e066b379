//! `opossum-bench`: makes reproducible benchmark inputs, measures output quality, and runs the
//! fleet's load generators (`queue`, `replay`) against real worker processes. The timing of
//! single commands is done by hyperfine and criterion in the scripts beside this crate.

mod cpu;
mod http;
mod latency;
mod policies;
mod queue;
mod replay;
mod shared_tier;
mod soak;

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use rand::SeedableRng;
use rand_distr::Distribution;

#[derive(Parser)]
#[command(
    name = "opossum-bench",
    about = "Benchmark inputs and quality measures"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Enlarge a real photo with seeded noise and save it (JPEG or PNG by extension)
    MakeImage {
        /// the photo to enlarge
        #[arg(long)]
        source: PathBuf,
        #[arg(long)]
        width: u32,
        #[arg(long)]
        height: u32,
        /// JPEG quality when the output is a JPEG
        #[arg(long, default_value_t = 90)]
        quality: i32,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// standard deviation of the added noise, 8-bit levels
        #[arg(long, default_value_t = opossum_bench::DEFAULT_NOISE_SIGMA)]
        noise: f32,
        #[arg(long)]
        out: PathBuf,
    },
    /// Write a key trace with Zipf popularity, one key per line
    ZipfTrace {
        /// distinct keys
        #[arg(long, default_value_t = 1_000_000)]
        keys: u64,
        /// requests
        #[arg(long, default_value_t = 10_000_000)]
        requests: u64,
        /// Zipf exponent
        #[arg(long, default_value_t = 0.9)]
        exponent: f64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long)]
        out: PathBuf,
    },
    /// The shared tier under concurrent reads on each Redis given (a single server, a
    /// cluster), beside plain GETs, and the keys and bytes per primary afterwards
    SharedTier {
        /// Redis URLs to measure, in one run (scratch servers: keys are written)
        #[arg(long = "redis", required = true)]
        redis: Vec<String>,
        /// images written (one entry each)
        #[arg(long, default_value_t = 10_000)]
        images: usize,
        /// entry size in bytes
        #[arg(long, default_value_t = 20_480)]
        size: usize,
        /// reads per path
        #[arg(long, default_value_t = 50_000)]
        reads: usize,
        /// concurrent readers
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
    },
    /// Hit latency of each cache tier for one value size, beside a plain Redis GET
    TierLatency {
        /// Redis to measure against (a scratch server: keys are written)
        #[arg(long)]
        redis: String,
        /// value size in bytes
        #[arg(long, default_value_t = 65_536)]
        size: usize,
        /// lookups per tier
        #[arg(long, default_value_t = 20_000)]
        lookups: usize,
    },
    /// Miss-ratio curves of a key trace: exact (every request) beside SHARDS samples, the way
    /// `opossum cache size` builds them; sizes per key are 4-64 KiB, fixed by the key's hash
    MrcAccuracy {
        /// one key per line (`zipf-trace` writes such a file)
        #[arg(long)]
        trace: PathBuf,
        /// SHARDS sampling rates to compare with the exact curve
        #[arg(long, value_delimiter = ',', default_value = "0.1,0.01")]
        rates: Vec<f64>,
        /// hit rate whose size is compared
        #[arg(long, default_value_t = 0.8)]
        target: f64,
    },
    /// Hit rates of the eviction policies a memory tier could use (moka's, foyer's,
    /// quick_cache's) on key traces, beside exact LRU, ARC and Belady's optimal from the same
    /// run, and a summary against ARC
    Policies {
        /// traces in `opossum cache simulate`'s formats (the ARC traces, the LIRS traces)
        #[arg(long = "trace", required = true)]
        traces: Vec<PathBuf>,
        /// capacities in entries
        #[arg(long, value_delimiter = ',', required = true)]
        capacities: Vec<usize>,
    },
    /// Uncached then cached p50 latency of an HTTP origin over one keep-alive connection
    HttpLatency {
        /// URL with `{i}` standing for the variant's number, 1..=count (distinct uncached
        /// variants)
        #[arg(long)]
        url: String,
        #[arg(long, default_value_t = 15)]
        count: usize,
        /// cached requests per variant
        #[arg(long, default_value_t = 5)]
        repeat: usize,
    },
    /// Jobs/s and submit-to-event latency of the fleet, beside a no-op apalis baseline
    Queue {
        /// the Redis the fleet runs on (a scratch server: its prefix is removed afterwards)
        #[arg(long, env = "OPOSSUM_REDIS_URL")]
        redis: String,
        #[command(flatten)]
        args: queue::QueueBenchArgs,
    },
    /// A day of traffic through a real fleet, cache warming off then on
    Replay {
        /// the Redis the fleet runs on (a scratch server)
        #[arg(long, env = "OPOSSUM_REDIS_URL")]
        redis: String,
        #[command(flatten)]
        args: replay::ReplayArgs,
    },
    /// RSS of `opossum serve` and a worker, sampled every second, under many requests over
    /// many variants: where memory settles and whether it grows
    Soak {
        #[command(flatten)]
        args: soak::SoakArgs,
    },
    /// PSNR of thumbnails against a full-decode Lanczos3 reference of the same source
    Psnr {
        /// the full-size source the thumbnails were made from
        #[arg(long)]
        source: PathBuf,
        /// thumbnails to judge
        thumbnails: Vec<PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    // The load generators log their workers' troubles (OPOSSUM_LOG, default warn).
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("OPOSSUM_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    match Cli::parse().command {
        Command::MakeImage {
            source,
            width,
            height,
            quality,
            seed,
            noise,
            out,
        } => {
            let photo =
                image::open(&source).with_context(|| format!("opening {}", source.display()))?;
            let image = opossum_bench::noisy_image(&photo, width, height, seed, noise)?;
            let is_jpeg = out.extension().is_some_and(|e| e == "jpg" || e == "jpeg");
            if is_jpeg {
                std::fs::write(&out, opossum_bench::jpeg(&image, quality)?)?;
            } else {
                image.save(&out)?;
            }
            println!("{} {width}x{height}", out.display());
        }
        Command::ZipfTrace {
            keys,
            requests,
            exponent,
            seed,
            out,
        } => {
            let zipf = rand_distr::Zipf::new(keys as f64, exponent).context("zipf parameters")?;
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            // Ranks are scattered over the key space so popularity is not ordered by key.
            let scatter = |rank: u64| rank.wrapping_mul(0x9e37_79b9_7f4a_7c15) % (1 << 48);
            let mut writer = std::io::BufWriter::new(std::fs::File::create(&out)?);
            for _ in 0..requests {
                let rank = zipf.sample(&mut rng) as u64;
                writeln!(writer, "{}", scatter(rank))?;
            }
            writer.flush()?;
        }
        Command::TierLatency {
            redis,
            size,
            lookups,
        } => latency::run(&redis, size, lookups)?,
        Command::SharedTier {
            redis,
            images,
            size,
            reads,
            concurrency,
        } => shared_tier::run(&redis, images, size, reads, concurrency)?,
        Command::MrcAccuracy {
            trace,
            rates,
            target,
        } => mrc_accuracy(&trace, &rates, target)?,
        Command::Policies { traces, capacities } => policies::run(&traces, &capacities)?,
        Command::HttpLatency { url, count, repeat } => http::run(&url, count, repeat)?,
        Command::Queue { redis, args } => queue::run(args, redis)?,
        Command::Replay { redis, args } => replay::run(args, redis)?,
        Command::Soak { args } => soak::run(args)?,
        Command::Psnr { source, thumbnails } => {
            let full =
                image::open(&source).with_context(|| format!("opening {}", source.display()))?;
            for thumbnail in thumbnails {
                let test = image::open(&thumbnail)
                    .with_context(|| format!("opening {}", thumbnail.display()))?
                    .to_rgb8();
                let reference =
                    opossum_bench::reference_resize(&full, test.width(), test.height())?;
                let db = opossum_bench::psnr(&reference, &test)?;
                println!(
                    "{}\t{}x{}\t{db:.2} dB",
                    thumbnail.display(),
                    test.width(),
                    test.height()
                );
            }
        }
    }
    Ok(())
}

/// Prints exact and sampled hit rates at doubling sizes, the size each gives for `target`, and
/// how long each took (the exact curve is the baseline of the same run on the same trace).
fn mrc_accuracy(trace: &std::path::Path, rates: &[f64], target: f64) -> anyhow::Result<()> {
    use opossum_analytics::{MissRatioCurve, sampled};
    let text =
        std::fs::read_to_string(trace).with_context(|| format!("reading {}", trace.display()))?;
    let requests: Vec<(&str, u64)> = text
        .lines()
        .map(|key| {
            (
                key,
                4096 * (1 + u64::from(crc32fast::hash(key.as_bytes()) % 16)),
            )
        })
        .collect();
    let started = std::time::Instant::now();
    let exact = MissRatioCurve::from_trace(requests.iter().copied(), 1.0, None);
    let exact_time = started.elapsed();
    let mut curves = Vec::new();
    for &rate in rates {
        let started = std::time::Instant::now();
        let sample: Vec<(&str, u64)> = requests
            .iter()
            .copied()
            .filter(|(key, _)| sampled(key, rate))
            .collect();
        let n = sample.len();
        let curve = MissRatioCurve::from_trace(sample, rate, Some(requests.len() as u64));
        curves.push((rate, n, curve, started.elapsed()));
    }
    println!(
        "{} requests, working set {:.1} MiB, best hit rate {:.3}",
        requests.len(),
        exact.footprint() as f64 / 1048576.0,
        exact.ceiling()
    );
    print!("{:>12} {:>8}", "size MiB", "exact");
    for (rate, ..) in &curves {
        print!(" {:>10}", format!("r={rate}"));
    }
    println!();
    let mut size = 1u64 << 20;
    let mut errors = vec![0.0f64; curves.len()];
    let mut points = 0;
    while size <= exact.footprint().max(1 << 20) {
        let want = exact.hit_rate(size);
        print!("{:>12} {:>8.3}", size >> 20, want);
        for (i, (_, _, curve, _)) in curves.iter().enumerate() {
            let got = curve.hit_rate(size);
            errors[i] += (got - want).abs();
            print!(" {got:>10.3}");
        }
        println!();
        points += 1;
        size *= 2;
    }
    let mib = |b: Option<u64>| b.map_or("-".into(), |b| format!("{:.1}", b as f64 / 1048576.0));
    println!(
        "exact: {:.0} ms, size for {target}: {} MiB",
        exact_time.as_secs_f64() * 1000.0,
        mib(exact.size_for(target))
    );
    for (i, (rate, n, curve, time)) in curves.iter().enumerate() {
        println!(
            "rate {rate}: {n} sampled, {:.0} ms, mean absolute error {:.4}, size for {target}: {} MiB",
            time.as_secs_f64() * 1000.0,
            errors[i] / points.max(1) as f64,
            mib(curve.size_for(target))
        );
    }
    Ok(())
}

/// A runtime for the load generators.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}
