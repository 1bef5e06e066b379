//! `opossum-bench`: makes reproducible benchmark inputs and measures output quality. The
//! timing itself is done by hyperfine and criterion in the scripts beside this crate.

mod latency;

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
