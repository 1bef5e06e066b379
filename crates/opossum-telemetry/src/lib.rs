//! Telemetry of every Opossum process: logs, OpenTelemetry traces and metrics over OTLP,
//! Prometheus `/metrics`, and the periodic one-line summary.
//!
//! - **Logs and spans** (`tracing`): jobs and HTTP requests run in `debug` spans (`job`,
//!   `request`), exported when OTLP is on and free when it is off; the fmt layer writes logs
//!   to stderr with the level from `OPOSSUM_LOG`, else the configuration's
//!   `caching.log_level`, else the binary's default.
//! - **OTLP**: when `telemetry.otlp_endpoint` (or `OTEL_EXPORTER_OTLP_ENDPOINT`) is set, spans
//!   are exported through tracing-opentelemetry and the metrics below through observable
//!   instruments, over OTLP/HTTP (protobuf or JSON). Off by default: no collector, no cost.
//! - **Prometheus** ([`metrics()`], `metrics.rs`): one registry per process with the seed's
//!   CacheAnalytics fields per tier, queue depth per queue, job and request durations and
//!   outcomes. The origin serves it on its own `/metrics`; workers and the scheduler on
//!   `telemetry.metrics_listen` ([`serve_metrics`]).
//! - **Allocator** (`allocator.rs`): jemalloc, the binaries' global allocator, and its totals
//!   in `opossum_allocator_bytes`.
//! - **Summary**: every `telemetry.summary_interval` one `info` line, `cache summary:
//!   hit_rate=... memory=...% ...`, as the seed's CacheAnalytics logs it ([`spawn_reporter`]).
//!
//! Numbers owned by other crates (tiers, queues) are pulled through [`Refresh`], implemented
//! where those live, so this crate knows nothing of caches or queues.
#![cfg_attr(not(test), warn(unused_crate_dependencies))]

mod allocator;
mod metrics;
mod otel;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use opossum_config::Config;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

pub use allocator::{Allocator, AllocatorStats, allocator_stats};
pub use metrics::{Metrics, QueueGauges, TierCounts, TierGauges, metrics};

/// Pulls numbers owned elsewhere into [`metrics()`] (called before each scrape, summary and
/// export).
#[async_trait::async_trait]
pub trait Refresh: Send + Sync {
    /// Reads the sources and sets the gauges; failures are logged, never returned.
    async fn refresh(&self, metrics: &Metrics);
}

/// No sources: only what the process records itself.
pub struct NoSources;

#[async_trait::async_trait]
impl Refresh for NoSources {
    async fn refresh(&self, _metrics: &Metrics) {}
}

/// Keeps the exporters alive; dropping it flushes them.
pub struct Telemetry {
    _otel: Option<otel::Otel>,
}

/// Starts logging and, when configured, OTLP export for `service`. Call once, before the
/// async runtime starts (the OTLP exporter's HTTP client is a blocking one on its own thread).
pub fn init(service: &str, config: &Config, default_level: &str) -> anyhow::Result<Telemetry> {
    metrics().set_service(service);
    let filter = match std::env::var("OPOSSUM_LOG") {
        Ok(directive) => tracing_subscriber::EnvFilter::try_new(&directive)
            .with_context(|| format!("OPOSSUM_LOG `{directive}` is not a log filter"))?,
        Err(_) => {
            let level = config.caching.log_level.as_deref().unwrap_or(default_level);
            tracing_subscriber::EnvFilter::try_new(level).with_context(|| {
                format!("caching.log_level `{level}` is not a log level or filter")
            })?
        }
    };
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let endpoint = config.telemetry.otlp_endpoint.clone();
    let env_endpoint = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT")
        .ok()
        .filter(|v| !v.is_empty());
    let otel = if endpoint.is_some() || env_endpoint.is_some() {
        Some(otel::start(
            service,
            &otel::OtlpTarget {
                endpoint,
                json: config.telemetry.otlp_protocol == opossum_config::OtlpProtocol::HttpJson,
                interval: config.telemetry.export_interval,
            },
        )?)
    } else {
        None
    };
    OTLP_ON.store(otel.is_some(), std::sync::atomic::Ordering::Relaxed);
    // Each output filters for itself: the log's level never hides spans from the exporter.
    // The job and request spans are `debug` spans of the fleet and the origin, so without OTLP
    // they are disabled at their call sites and the request path pays nothing for them; the
    // exporter takes them, and everything else at `info` and above.
    let logs = fmt.with_filter(filter);
    match &otel {
        Some(otel) => {
            use opentelemetry::trace::TracerProvider as _;
            let spans = tracing_opentelemetry::layer()
                .with_tracer(otel.tracer.tracer("opossum"))
                .with_filter(
                    tracing_subscriber::filter::Targets::new()
                        .with_target("opossum_fleet", tracing::Level::DEBUG)
                        .with_target("opossum_origin", tracing::Level::DEBUG)
                        .with_default(tracing::Level::INFO),
                );
            tracing_subscriber::registry()
                .with(logs)
                .with(spans)
                .try_init()
                .map_err(|e| anyhow::anyhow!("{e}"))
        }
        None => tracing_subscriber::registry()
            .with(logs)
            .try_init()
            .map_err(|e| anyhow::anyhow!("{e}")),
    }
    .context("starting the logger")?;
    Ok(Telemetry { _otel: otel })
}

/// The `main` of a long-running binary: reads the configuration (`--config`, then the
/// `OPOSSUM_*` overrides), starts telemetry, runs `run` on a multi-threaded runtime, and turns
/// an error into one `error: ...` line and exit code 1.
pub fn main<F, Fut>(
    service: &str,
    config_path: Option<&std::path::Path>,
    run: F,
) -> std::process::ExitCode
where
    F: FnOnce(Config) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let fail = |e: anyhow::Error| {
        eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
        std::process::ExitCode::from(1)
    };
    let config = match Config::resolve(config_path) {
        Ok(config) => config,
        Err(e) => return fail(e.into()),
    };
    let telemetry = match init(service, &config, "info") {
        Ok(telemetry) => telemetry,
        Err(e) => return fail(e),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return fail(anyhow::Error::new(e).context("starting the async runtime")),
    };
    let result = runtime.block_on(run(config));
    drop(runtime);
    drop(telemetry);
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

/// True once OTLP export is on in this process.
static OTLP_ON: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Refreshes `sources` for the exporters and logs the summary line: every
/// `settings.export_interval` while OTLP is on (the observable instruments read what the last
/// refresh set), the summary every `settings.summary_interval` (zero: never).
pub fn spawn_reporter(sources: Arc<dyn Refresh>, settings: &opossum_config::TelemetrySettings) {
    let summary = settings.summary_interval;
    let otlp = OTLP_ON.load(std::sync::atomic::Ordering::Relaxed);
    let tick = match (otlp, summary.is_zero()) {
        (false, true) => return,
        (false, false) => summary,
        (true, true) => settings.export_interval,
        (true, false) => settings.export_interval.min(summary),
    }
    .max(Duration::from_millis(100));
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_summary = tokio::time::Instant::now();
        loop {
            ticker.tick().await;
            sources.refresh(metrics()).await;
            if !summary.is_zero() && last_summary.elapsed() + tick / 2 >= summary {
                last_summary = tokio::time::Instant::now();
                tracing::info!("{}", metrics().summary());
            }
        }
    });
}

/// The `/metrics` text after refreshing `sources`.
pub async fn render(sources: &dyn Refresh) -> String {
    sources.refresh(metrics()).await;
    metrics().encode()
}

/// The content type of the Prometheus text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Serves `GET /metrics`, `/queues` (queue depths as JSON, for KEDA's metrics-api scaler) and
/// `/healthz` on `listen` until `shutdown`: the endpoint of the
/// worker and the scheduler. Returns the bound address; fails if it cannot bind.
pub async fn serve_metrics(
    listen: &str,
    sources: Arc<dyn Refresh>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<std::net::SocketAddr> {
    use axum::routing::get;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding the metrics endpoint to {listen}"))?;
    let address = listener.local_addr()?;
    // One line on stdout, as the origin prints its own: whoever passed port 0 (tests,
    // scripts) learns the address the process bound itself, with no port freed and reused.
    println!("metrics on http://{address}");
    let queues_sources = sources.clone();
    let app = axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let sources = sources.clone();
                async move {
                    (
                        [(axum::http::header::CONTENT_TYPE, CONTENT_TYPE)],
                        render(sources.as_ref()).await,
                    )
                }
            }),
        )
        .route(
            "/queues",
            get(move || {
                let sources = queues_sources.clone();
                async move {
                    sources.refresh(metrics()).await;
                    (
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        metrics().queues_json().to_string(),
                    )
                }
            }),
        )
        .route("/healthz", get(|| async { "ok\n" }));
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::warn!(error = %e, "metrics endpoint stopped");
        }
    });
    tracing::info!(%address, "metrics on http://{address}/metrics");
    Ok(address)
}
