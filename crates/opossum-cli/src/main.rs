//! `opossum`: the command line of the image engine, the cache, the queues and the HTTP origin.
//! Thin: parse arguments, resolve them into an `opossum_wiring::Wiring`, call the libraries,
//! print results.
//!
//! Exit codes: 0 success; 1 the request failed (bad image, bad chain, unreadable file), with one
//! line `error: ...` on stderr; 2 a usage error (from clap). A panic is a bug: it is reported
//! on one line too and exits 101, never by a signal.
#![cfg_attr(not(test), warn(unused_crate_dependencies))]

mod cache;
mod config;
mod fleet;
mod process;
mod serve;
mod stats;

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use opossum_config::Config;
use opossum_ops::{Category, Chain, Options, Presets};
use opossum_wiring::{CommonArgs, Wiring};
use serde::Serialize;

/// Pipeline settings with this run's namespace and the configuration's limits.
pub(crate) fn pipeline_config(wiring: &Wiring) -> opossum_pipeline::PipelineConfig {
    opossum_pipeline::PipelineConfig::new(&wiring.prefix, wiring.limits().clone())
}

/// A runtime for the commands that talk to the tiers.
pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

#[derive(Parser)]
#[command(
    name = "opossum",
    version,
    about = "Image processing with a multi-tier cache"
)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Process an image file with an operation chain
    Process(process::ProcessArgs),
    /// Print the cache key of a request
    Key(KeyArgs),
    /// Inspect and manage the cache tiers
    #[command(subcommand)]
    Cache(cache::CacheCommand),
    /// Queue jobs for the worker fleet (or run them here, without --redis)
    Submit(fleet::SubmitArgs),
    /// Print completion events as JSON lines
    Events(fleet::EventsArgs),
    /// Inspect the job queues
    #[command(subcommand)]
    Queue(fleet::QueueCommand),
    /// The HTTP origin: variants over HTTP with CDN headers
    Serve(serve::ServeArgs),
    /// Usage analytics of the fleet
    #[command(subcommand)]
    Stats(stats::StatsCommand),
    /// Check configuration files
    #[command(subcommand)]
    Config(config::ConfigCommand),
}

#[derive(clap::Args)]
struct KeyArgs {
    /// The image id (for a file, its path exactly as given to `opossum process`)
    image_id: String,
    /// Operation chain, string or JSON form
    #[arg(long)]
    ops: String,
    /// Print the key's parts, category and default TTL as JSON
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct KeyReport {
    key: String,
    namespace: String,
    image_hash: String,
    variant_hash: String,
    chain: String,
    category: &'static str,
    ttl_seconds: u64,
}

#[global_allocator]
static ALLOCATOR: opossum_wiring::Allocator = opossum_wiring::Allocator;

fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        let location = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!(
            "error: internal error{location}: {}",
            message.replace('\n', " ")
        );
    }));
    let cli = Cli::parse();
    if let Command::Config(command) = cli.command {
        // `config check` reads only the file it is given.
        return match config::run(command) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&e),
        };
    }
    let config = match Config::resolve(cli.common.config.as_deref()) {
        Ok(config) => config,
        Err(e) => return fail(&e.into()),
    };
    // Commands print their results; only the origin is a service that logs by default.
    let default_level = if matches!(cli.command, Command::Serve(_)) {
        "info"
    } else {
        "warn"
    };
    let _telemetry = match opossum_telemetry::init("opossum", &config, default_level) {
        Ok(telemetry) => telemetry,
        Err(e) => return fail(&e),
    };
    let result = Wiring::new(&cli.common, config)
        .map_err(anyhow::Error::from)
        .and_then(|wiring| match cli.command {
            Command::Process(args) => process::run(args, &wiring),
            Command::Key(args) => key(args, &wiring),
            Command::Cache(command) => cache::run(command, &wiring),
            Command::Submit(args) => fleet::submit(args, &wiring),
            Command::Events(args) => fleet::events(args, &wiring),
            Command::Queue(command) => fleet::queue(command, &wiring),
            Command::Serve(args) => serve::run(args, &wiring),
            Command::Stats(command) => stats::run(command, &wiring),
            Command::Config(command) => config::run(command),
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

/// One `error: ...` line (`{:#}` joins the context chain: "processing x.jpg: corrupt jpeg
/// ..."), exit code 1.
fn fail(e: &anyhow::Error) -> ExitCode {
    eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
    ExitCode::from(1)
}

/// Parses `--ops`, expanding presets from the configuration only (no cache is open).
pub(crate) fn parse_chain(text: &str, presets: &Presets) -> anyhow::Result<Chain> {
    Chain::parse_any_with(text, presets).with_context(|| format!("invalid --ops `{text}`"))
}

/// A chain with its watermarks' versions pinned from the originals store, as the pipeline keys
/// it, and the watermarks decoded; a chain without one comes back as it is, with no I/O.
pub(crate) fn pinned_watermarks(
    chain: Chain,
    wiring: &Wiring,
    limits: &opossum_image::Limits,
) -> anyhow::Result<(Chain, opossum_image::Overlays)> {
    if chain.watermarks().next().is_none() {
        return Ok((chain, opossum_image::Overlays::none()));
    }
    let store = wiring
        .originals()
        .context("a watermark is loaded from the originals store")?;
    let source = store.as_resources(limits.max_bytes);
    runtime()?
        .block_on(opossum_pipeline::load_watermarks(source, &chain, limits))
        .map_err(|e| anyhow::anyhow!("{}", e.message()))
}

fn key(args: KeyArgs, wiring: &Wiring) -> anyhow::Result<()> {
    let chain = parse_chain(&args.ops, &wiring.config.presets)?;
    let settings = pipeline_config(wiring);
    let (chain, _) = pinned_watermarks(chain, wiring, &settings.limits)?;
    // The chain as hashed: its encoding resolved with the configured defaults.
    let (key, canonical) = opossum_ops::derive_key_with_chain(
        &wiring.prefix,
        &settings.version,
        &args.image_id,
        &chain,
        &Options::new(),
        &settings.limits.encoding,
    );
    if args.json {
        let category = Category::of(&chain);
        let report = KeyReport {
            key: key.to_string(),
            namespace: key.namespace().to_string(),
            image_hash: key.image_hash().to_string(),
            variant_hash: key.variant_hash().to_string(),
            chain: canonical,
            category: category.name(),
            ttl_seconds: category.default_ttl().as_secs(),
        };
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("{key}");
    }
    Ok(())
}

/// Reads a file, refusing before reading when it is larger than `limit`.
pub(crate) fn read_limited(path: &Path, limit: u64) -> anyhow::Result<Vec<u8>> {
    let shown = path.display();
    let metadata = std::fs::metadata(path).with_context(|| format!("cannot read {shown}"))?;
    if !metadata.is_file() {
        bail!("{shown} is not a file");
    }
    if metadata.len() > limit {
        bail!(
            "{shown} is {} bytes, more than the limit of {limit} bytes",
            metadata.len()
        );
    }
    std::fs::read(path).with_context(|| format!("cannot read {shown}"))
}

/// Writes through a temporary file in the same directory and renames it into place, so a
/// reader never sees half an image.
pub(crate) fn write_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let shown = path.display();
    let file_name = path
        .file_name()
        .with_context(|| format!("--out {shown} names no file"))?;
    let mut temporary = path.to_path_buf();
    temporary.set_file_name(format!(
        ".{}.{}.tmp",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    std::fs::write(&temporary, bytes).with_context(|| format!("cannot write {shown}"))?;
    std::fs::rename(&temporary, path).with_context(|| format!("cannot write {shown}"))?;
    Ok(())
}

pub(crate) fn write_stdout(bytes: &[u8]) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(bytes).context("cannot write to stdout")?;
    stdout.flush().context("cannot write to stdout")
}
