//! `opossum serve`: the HTTP origin (the opossum-origin crate) with this process's tiers. With
//! `--redis` it joins the fleet (misses become jobs on `{prefix}:process`, the shared tier is
//! on, requests it answers are recorded in the Redis analytics); without, it is the whole
//! fleet in one process (embedded mode): it computes misses itself with the memory and disk
//! tiers, records requests in in-memory analytics, and runs the scheduler, whose warm jobs go
//! to an in-process pool of `worker.warm_concurrency` that yields to user work.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use opossum_config::Config;
use opossum_fleet::{JobQueue, Originals, WorkerState};
use opossum_origin::{Origin, OriginConfig};
use opossum_warming::{Warmer, WarmerParts};

use crate::tiers::TierArgs;

#[derive(clap::Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on [default: origin.listen, 127.0.0.1:8080]
    #[arg(long, env = "OPOSSUM_LISTEN")]
    listen: Option<SocketAddr>,
    /// The originals store: a directory, or s3://bucket/prefix [default: `originals`, else .]
    #[arg(long, env = "OPOSSUM_ORIGINALS")]
    originals: Option<String>,
    /// HMAC key for signed URLs; repeat for rotation. With any key set, unsigned requests get
    /// 403 [default: origin.signing_keys]
    #[arg(
        long = "signing-key",
        env = "OPOSSUM_SIGNING_KEYS",
        value_delimiter = ','
    )]
    signing_keys: Vec<String>,
    /// Misses computed (or submitted to the fleet) at once [default: origin.max_computations, 4]
    #[arg(long)]
    max_computations: Option<usize>,
    /// Misses allowed to wait for a computation; beyond that, 503 with Retry-After
    /// [default: origin.max_waiting, 64]
    #[arg(long)]
    max_waiting: Option<usize>,
    /// Longest a miss may take before 503 or 504 [default: origin.timeout, 30s]
    #[arg(long, value_parser = humantime::parse_duration)]
    timeout: Option<Duration>,
}

pub(crate) fn run(args: ServeArgs, tiers: &TierArgs, config: &Config) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let settings = &config.origin;
        let listen: SocketAddr = match args.listen {
            Some(listen) => listen,
            None => settings.listen.parse().with_context(|| {
                format!("origin.listen `{}` is not an address", settings.listen)
            })?,
        };
        let originals = Originals::open(config.originals_or(args.originals.as_deref()))?;
        let opened = tiers.open().await;
        if let Some(disk) = &opened.disk {
            disk.spawn_cleanup();
        }
        let mut state = WorkerState::new(
            &opened,
            &tiers.prefix,
            config.presets.clone(),
            originals,
            opossum_fleet::engine_limits(config),
        );
        let analytics_config =
            opossum_analytics::AnalyticsConfig::from_settings(&tiers.prefix, &config.analytics);
        let (state, queue, fleet_queues) = match &tiers.queue_redis {
            None => {
                // Embedded: the analytics live here, for the scheduler that runs here too
                // (with warming off there is no reader, so nothing is recorded).
                let store = config
                    .warming
                    .enabled
                    .then(opossum_analytics::MemoryStore::new);
                if let Some(store) = &store {
                    state = state.with_analytics(opossum_analytics::Recorder::start(
                        analytics_config.clone(),
                        store.clone(),
                    ));
                }
                let state = Arc::new(state);
                let embedded = opossum_fleet::Embedded::start(
                    state.clone(),
                    config.worker.concurrency,
                    config.worker.warm_concurrency,
                );
                if let Some(store) = store {
                    let warmer = Warmer::new(WarmerParts {
                        settings: config.warming.clone(),
                        presets: config.presets.clone(),
                        namespace: tiers.prefix.clone(),
                        version: state.pipeline.version().to_string(),
                        analytics: opossum_analytics::Analytics::new(analytics_config, store),
                        freshness: opened.hierarchy.clone(),
                        target: Arc::new(embedded.clone()),
                    })?;
                    tokio::spawn(async move {
                        if let Err(e) = warmer.run(std::future::pending()).await {
                            tracing::warn!(error = %e, "the embedded scheduler stopped");
                        }
                    });
                }
                let queue: Arc<dyn JobQueue> = Arc::new(embedded);
                (state, queue, None)
            }
            Some(url) => {
                let fleet = crate::fleet::connect_fleet_with_connection(url, &tiers.prefix).await?;
                opossum_fleet::check_queue_server(
                    &fleet.connection,
                    tiers.redis == tiers.queue_redis,
                )
                .await;
                state = state.with_analytics(opossum_analytics::Recorder::start(
                    analytics_config,
                    fleet.connection.clone(),
                ));
                let queues = fleet.queues.clone();
                let queue: Arc<dyn JobQueue> = Arc::new(fleet);
                (Arc::new(state), queue, Some(queues))
            }
        };
        let origin = Origin::start(
            state,
            queue,
            fleet_queues.clone(),
            OriginConfig::from_settings(&opossum_config::OriginSettings {
                signing_keys: if args.signing_keys.is_empty() {
                    settings.signing_keys.clone()
                } else {
                    args.signing_keys.clone()
                },
                max_computations: args.max_computations.unwrap_or(settings.max_computations),
                max_waiting: args.max_waiting.unwrap_or(settings.max_waiting),
                timeout: args.timeout.unwrap_or(settings.timeout),
                ..settings.clone()
            }),
        )
        .await?;
        opossum_telemetry::spawn_reporter(
            Arc::new(opossum_fleet::Sources {
                hierarchy: Some(opened.hierarchy.clone()),
                queues: fleet_queues,
            }),
            &config.telemetry,
        );
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let bound = listener.local_addr()?;
        // One line on stdout, so scripts and tests that pass port 0 learn the address.
        println!("listening on http://{bound}");
        tracing::info!(address = %bound, mode = if tiers.queue_redis.is_some() { "fleet" } else { "embedded" }, "origin started");
        opossum_origin::serve_on(origin, listener, opossum_fleet::shutdown_signal()).await?;
        if let Err(e) = opened.hierarchy.flush_stats() {
            tracing::warn!(error = %e, "cache stats not saved");
        }
        Ok(())
    })
}
