//! `opossum serve`: the HTTP origin (the opossum-origin crate) with this process's tiers. With
//! `--redis` it joins the fleet (misses become jobs on `{prefix}:process`, the shared tier is
//! on, requests it answers are recorded in the Redis analytics); without, it is the whole
//! fleet in one process (embedded mode): it computes misses itself with the memory and disk
//! tiers, records requests in in-memory analytics, and runs the scheduler, whose warm jobs go
//! to an in-process pool of `worker.warm_concurrency` that yields to user work.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use opossum_origin::{Origin, OriginConfig};
use opossum_wiring::{Node, NodeSettings, Wiring};

#[derive(clap::Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on [default: origin.listen, 127.0.0.1:8080]
    #[arg(long, env = "OPOSSUM_LISTEN")]
    listen: Option<SocketAddr>,
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

pub(crate) fn run(args: ServeArgs, wiring: &Wiring) -> anyhow::Result<()> {
    let settings = &wiring.config.origin;
    let listen: SocketAddr = match args.listen {
        Some(listen) => listen,
        None => settings
            .listen
            .parse()
            .with_context(|| format!("origin.listen `{}` is not an address", settings.listen))?,
    };
    let origin_config = OriginConfig::from_settings(&opossum_config::OriginSettings {
        signing_keys: if args.signing_keys.is_empty() {
            settings.signing_keys.clone()
        } else {
            args.signing_keys.clone()
        },
        max_computations: args.max_computations.unwrap_or(settings.max_computations),
        max_waiting: args.max_waiting.unwrap_or(settings.max_waiting),
        timeout: args.timeout.unwrap_or(settings.timeout),
        ..settings.clone()
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let node = Node::open(wiring, NodeSettings::service(wiring)).await?;
        let origin = Origin::start(
            node.state.clone(),
            node.queue.clone(),
            node.queues(),
            origin_config,
        )
        .await?;
        wiring.report_telemetry(node.sources());
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let bound = listener.local_addr()?;
        // One line on stdout, so scripts and tests that pass port 0 learn the address.
        println!("listening on http://{bound}");
        let mode = if node.fleet.is_some() {
            "fleet"
        } else {
            "embedded"
        };
        tracing::info!(address = %bound, mode, "origin started");
        opossum_origin::serve_on(origin, listener, opossum_fleet::shutdown_signal()).await?;
        node.finish().await;
        Ok(())
    })
}
