//! The worker process's run loop: [`run_worker`] runs one apalis worker per queue, each with
//! its own concurrency, under a monitor that restarts a worker whose backend failed (a Redis
//! restart ends the stream with "broken pipe"), plus a ticker that promotes parked jobs and
//! removes completed jobs' data. Idle workers wake on the promote script's pub/sub message,
//! with a slow poll as a fallback.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use apalis::prelude::{
    Attempt, BackendExt, BoxDynError, Data, Monitor, WorkerBuilder, WorkerBuilderExt,
};
use futures::StreamExt;

use crate::events::{EventWriter, Events};
use crate::queue::Queues;
use crate::{Job, Priority};

use crate::handler::WorkerState;
use crate::invalidation::{follow_invalidations, invalidation_channel};

/// Settings of the worker process.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// this process's unique name (a restart gets a new one: re-registering a name within
    /// one heartbeat is fatal to apalis)
    pub name: String,
    /// user jobs run at once
    pub concurrency: usize,
    /// warming jobs run at once (a separate pool, so warming never takes user slots)
    pub warm_concurrency: usize,
    /// how long in-flight jobs may take to finish after SIGTERM
    pub grace_period: Duration,
    /// how often parked jobs are promoted and completed jobs cleaned
    pub tick: Duration,
    /// the fallback poll of an idle worker, when no wake-up arrives
    pub idle_poll: Duration,
}

impl Default for WorkerConfig {
    fn default() -> WorkerConfig {
        WorkerConfig {
            name: unique_worker_name(),
            concurrency: 32,
            warm_concurrency: 4,
            grace_period: Duration::from_secs(30),
            tick: Duration::from_millis(50),
            idle_poll: Duration::from_millis(500),
        }
    }
}

/// `{host}-{pid}-{random}`: unique per process start.
pub fn unique_worker_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "worker".into());
    format!(
        "{host}-{}-{:06x}",
        std::process::id(),
        rand::random::<u32>() & 0xff_ffff
    )
}

/// A stream that yields whenever the queue's wake channel gets a message, and every
/// `fallback` in any case (for retries coming due, orphans re-enqueued, a lost message).
fn wake_stream(
    client: opossum_redis::Redis,
    channel: String,
    fallback: Duration,
) -> impl futures::Stream<Item = ()> + Unpin + Send + 'static {
    let (sender, receiver) = futures::channel::mpsc::channel::<()>(1);
    let mut on_message = sender.clone();
    tokio::spawn(async move {
        loop {
            let subscribed = async {
                let mut messages = client.subscribe(&channel).await?;
                while messages.next().await.is_some() {
                    // A full channel means a wake-up is already pending.
                    let _ = on_message.try_send(());
                }
                Ok::<(), redis::RedisError>(())
            };
            if let Err(e) = subscribed.await {
                tracing::debug!(error = %e, "wake-up subscription lost; resubscribing");
            }
            if on_message.is_closed() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let ticks = futures::stream::unfold(tokio::time::interval(fallback), |mut interval| async {
        interval.tick().await;
        Some(((), interval))
    });
    drop(sender);
    Box::pin(futures::stream::select(receiver, ticks))
}

/// Runs the worker process until `shutdown` resolves (SIGTERM), then lets in-flight jobs finish
/// within the grace period; fetched jobs not yet started go back to their queue.
pub async fn run_worker(
    state: Arc<WorkerState>,
    queues: Queues,
    events: Events,
    client: opossum_redis::Redis,
    config: WorkerConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), crate::FleetError> {
    let ticker = {
        let queues = queues.clone();
        let state = state.clone();
        let tick = config.tick;
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(tick);
            let mut cleaned_at = Instant::now();
            loop {
                interval.tick().await;
                for priority in Priority::ALL {
                    match queues.promote(priority).await {
                        Ok((_, due)) if priority == Priority::User => {
                            state.user_due.store(due, Ordering::Relaxed);
                        }
                        Ok(_) => {}
                        Err(e) => tracing::debug!(error = %e, "promote failed"),
                    }
                }
                if cleaned_at.elapsed() >= Duration::from_secs(1) {
                    cleaned_at = Instant::now();
                    for priority in Priority::ALL {
                        let _ = queues.clean_done(priority, 2000).await;
                    }
                }
            }
        })
    };
    let invalidations = tokio::spawn(follow_invalidations(
        client.clone(),
        invalidation_channel(&queues.config().prefix),
        state.pipeline.hierarchy().clone(),
    ));
    // One writer for both queues' events: the more jobs finish at once, the more events
    // each round trip carries.
    let events = EventWriter::spawn(events);
    let mut monitor = Monitor::new();
    for priority in Priority::ALL {
        let state = state.clone();
        let queues = queues.clone();
        let events = events.clone();
        let client = client.clone();
        let concurrency = match priority {
            Priority::User => config.concurrency,
            Priority::Warm => config.warm_concurrency,
        };
        let base = format!("{}-{}", config.name, priority.queue_suffix());
        let idle_poll = config.idle_poll;
        monitor = monitor.register(move |restarts| {
            let wake = wake_stream(
                client.clone(),
                queues.config().wake_channel(priority),
                idle_poll,
            );
            let backend = queues.storage(priority).poll_with_stream(wake);
            // A restarted worker registers under a new name: re-registering one within a
            // heartbeat is fatal.
            let name = if restarts == 0 {
                base.clone()
            } else {
                format!("{base}-r{restarts}")
            };
            WorkerBuilder::new(name)
                .backend(backend)
                .concurrency(concurrency.max(1))
                .data(state.clone())
                .data(events.clone())
                .build(handle_job)
        });
    }
    let grace = config.grace_period;
    let result = monitor
        .should_restart(|ctx, error| {
            tracing::warn!(worker = %ctx.name(), %error, "worker stopped on an error; restarting");
            true
        })
        .shutdown_timeout(grace)
        .run_with_signal(async move {
            shutdown.await;
            Ok(())
        })
        .await;
    ticker.abort();
    invalidations.abort();
    result.map_err(|e| crate::FleetError::Queue(e.to_string()))
}

async fn handle_job(
    job: Job,
    attempt: Attempt,
    state: Data<Arc<WorkerState>>,
    events: Data<EventWriter>,
) -> Result<(), BoxDynError> {
    state.handle(&job, attempt.current(), &events).await
}

/// Resolves on SIGTERM or SIGINT: the graceful stop of every long-running process (worker,
/// scheduler, origin). Without signal handlers it never resolves, and says so once.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut interrupt)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; SIGTERM will not stop gracefully");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: stopping gracefully"),
        _ = interrupt.recv() => tracing::info!("SIGINT: stopping gracefully"),
    }
}
