//! `opossum process`: one request through the cache hierarchy (or straight through the engine
//! with `--no-cache`).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use opossum_fleet::Originals;
use std::time::Instant;

use anyhow::{Context, bail};
use opossum_ops::{Options, derive_key};
use opossum_pipeline::{ErrorKind, Pipeline, PipelineError, PresetStore, Provenance};
use serde::Serialize;

use crate::{parse_chain, read_limited, runtime, write_file, write_stdout};
use opossum_wiring::Wiring;

#[derive(clap::Args)]
pub(crate) struct ProcessArgs {
    /// The image file; its path, exactly as given, is the image id used for the key. With
    /// --originals (or OPOSSUM_ORIGINALS), the name of an object in that store instead, read
    /// as the workers read it. An `http://` or `https://` URL is fetched when
    /// `sources.url_ids` allows it
    input: PathBuf,
    /// Operation chain, e.g. `resize:800:600:fit,grayscale,format:webp`, or its JSON form
    #[arg(long)]
    ops: String,
    /// Where to write the result (`-` for stdout); without it the result goes to stdout,
    /// unless stdout is a terminal or --json is given
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print one JSON object describing the result instead of the result itself
    #[arg(long)]
    json: bool,
    /// Bypass the cache tiers: compute, and neither read nor write the cache
    #[arg(long)]
    no_cache: bool,
}

#[derive(Serialize)]
struct ProcessReport<'a> {
    key: String,
    format: &'a str,
    width: u32,
    height: u32,
    /// the quality encoded at (absent for formats without one)
    #[serde(skip_serializing_if = "Option::is_none")]
    quality: Option<u8>,
    bytes: usize,
    duration_ms: f64,
    source: Provenance,
}

struct Produced {
    key: String,
    bytes: Vec<u8>,
    format: &'static str,
    width: u32,
    height: u32,
    quality: Option<u8>,
    source: Provenance,
}

pub(crate) fn run(args: ProcessArgs, wiring: &Wiring) -> anyhow::Result<()> {
    let started = Instant::now();
    let image_id = args.input.to_string_lossy().into_owned();
    let produced = if args.no_cache {
        let chain = parse_chain(&args.ops, &wiring.config.presets)?;
        let settings = crate::pipeline_config(wiring);
        let (chain, overlays) = crate::pinned_watermarks(chain, wiring, &settings.limits)?;
        let key = derive_key(
            &wiring.prefix,
            &settings.version,
            &image_id,
            &chain,
            &Options::new(),
            &settings.limits.encoding,
        );
        let limits = settings.limits;
        let source = OriginalSource::new(&args, wiring)?;
        let input = runtime()?
            .block_on(source.load(&image_id, limits.max_bytes))
            .map_err(|e| anyhow::anyhow!("{}", e.message()))?;
        let output = opossum_image::process_with(&input, &chain, &limits, &overlays)
            .with_context(|| format!("processing {image_id}"))?;
        Produced {
            key: key.to_string(),
            bytes: output.bytes,
            format: output.format,
            width: output.width,
            height: output.height,
            quality: output.quality,
            source: Provenance::Computed,
        }
    } else {
        through_cache(
            OriginalSource::new(&args, wiring)?,
            &image_id,
            &args.ops,
            wiring,
        )?
    };

    match args.out.as_deref() {
        Some(path) if path == Path::new("-") => write_stdout(&produced.bytes)?,
        Some(path) => write_file(path, &produced.bytes)?,
        None if args.json => {}
        None if std::io::stdout().is_terminal() => {
            bail!(
                "refusing to write {} data to a terminal: pass --out FILE",
                produced.format
            )
        }
        None => write_stdout(&produced.bytes)?,
    }
    if args.json {
        let report = ProcessReport {
            key: produced.key,
            format: produced.format,
            width: produced.width,
            height: produced.height,
            quality: produced.quality,
            bytes: produced.bytes.len(),
            duration_ms: (started.elapsed().as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0,
            source: produced.source,
        };
        println!("{}", serde_json::to_string(&report)?);
    }
    Ok(())
}

/// Where `process` reads its original from: a file, or an object in an originals store.
#[derive(Clone)]
enum OriginalSource {
    File(PathBuf),
    /// boxed: a store with its fetchers is much larger than a path
    Store(Box<Originals>),
}

impl OriginalSource {
    /// A store when one was named on the command line or in the environment (the
    /// configuration's `originals` is the services' default, not a reason to leave files), or
    /// when the input is a URL (fetched under `sources:`, as the workers fetch it).
    fn new(args: &ProcessArgs, wiring: &Wiring) -> anyhow::Result<OriginalSource> {
        let url = opossum_fleet::is_url_id(&args.input.to_string_lossy());
        Ok(if wiring.originals_named || url {
            OriginalSource::Store(Box::new(wiring.originals()?))
        } else {
            OriginalSource::File(args.input.clone())
        })
    }

    async fn load(&self, image_id: &str, limit: u64) -> Result<Vec<u8>, PipelineError> {
        match self {
            OriginalSource::Store(store) => Ok(store.load(image_id, limit).await?),
            OriginalSource::File(path) => {
                let path = path.clone();
                match tokio::task::spawn_blocking(move || read_limited(&path, limit)).await {
                    Ok(Ok(bytes)) => Ok(bytes),
                    Ok(Err(e)) => {
                        let missing = e.downcast_ref::<std::io::Error>().map(|e| e.kind())
                            == Some(std::io::ErrorKind::NotFound);
                        let kind = if missing {
                            ErrorKind::NotFound
                        } else {
                            ErrorKind::BadRequest
                        };
                        Err(PipelineError::new(kind, format!("{e:#}")))
                    }
                    Err(e) => Err(PipelineError::from_cause(ErrorKind::Internal, e)),
                }
            }
        }
    }
}

fn through_cache(
    source: OriginalSource,
    image_id: &str,
    ops: &str,
    wiring: &Wiring,
) -> anyhow::Result<Produced> {
    let runtime = runtime()?;
    runtime.block_on(async {
        let opened = wiring.tiers().await;
        let settings = crate::pipeline_config(wiring);
        let presets = PresetStore::new(
            wiring.config.presets.clone(),
            opened.hierarchy.clone(),
            &wiring.prefix,
            &settings.version,
        );
        let chain = presets
            .resolve(ops)
            .await
            .with_context(|| format!("invalid --ops `{ops}`"))?;
        let max_bytes = wiring.config.limits.max_source_size;
        let mut pipeline = Pipeline::new(opened.hierarchy.clone(), settings, opened.leases.clone());
        // Originals fetched over HTTP are kept in the disk tier, as the workers keep them.
        let source = match source {
            OriginalSource::Store(store) => {
                OriginalSource::Store(Box::new(wiring.with_source_cache(*store, &opened)))
            }
            file => file,
        };
        // Watermarks come from the originals store, even when the image is a file.
        let store = match &source {
            OriginalSource::Store(store) => Ok(store.as_ref().clone()),
            OriginalSource::File(_) => wiring.originals(),
        };
        match store {
            Ok(store) => pipeline = pipeline.with_resources(store.as_resources(max_bytes)),
            Err(e) => {
                tracing::debug!(error = %e, "no originals store: chains with a watermark will fail")
            }
        }
        // A failed load names the file already; an engine failure gets the image's name.
        let load_failed = std::sync::atomic::AtomicBool::new(false);
        let load = || async {
            let loaded = source.load(image_id, max_bytes).await;
            load_failed.store(loaded.is_err(), std::sync::atomic::Ordering::Relaxed);
            loaded
        };
        let result = pipeline.run(image_id, &chain, &Options::new(), load).await;
        if let Err(e) = opened.hierarchy.flush_stats() {
            tracing::warn!(error = %e, "cache stats not saved");
        }
        let response = result.map_err(|e| {
            if load_failed.load(std::sync::atomic::Ordering::Relaxed) {
                anyhow::anyhow!("{e}")
            } else {
                anyhow::anyhow!("processing {image_id}: {e}")
            }
        })?;
        Ok(Produced {
            key: response.key.to_string(),
            format: format_name(&response.entry.media_type),
            width: response.entry.width,
            height: response.entry.height,
            quality: response.entry.quality,
            source: response.provenance,
            bytes: response.entry.body.to_vec(),
        })
    })
}

/// The short format name of a media type, from the one mapping `OutputFormat` owns.
fn format_name(media_type: &str) -> &'static str {
    use opossum_ops::OutputFormat;
    OutputFormat::ALL
        .into_iter()
        .find(|format| format.mime() == media_type)
        .map_or(
            if media_type == "application/json" {
                "json"
            } else {
                "unknown"
            },
            OutputFormat::name,
        )
}
