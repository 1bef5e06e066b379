//! [`Node`]: the tiers, the job handler and the queue of one process, in fleet mode when the
//! queues' Redis is configured and embedded otherwise.
//!
//! In fleet mode the queue is the Redis [`Fleet`] (jobs go to `{prefix}:process`, workers
//! anywhere run them, requests are recorded in the Redis analytics). Embedded, the same
//! handler runs on an in-process queue; a service then also records its requests in memory
//! and runs the scheduler over them, whose warm jobs go to the in-process warm pool (with
//! warming off there is no reader, so nothing is recorded).

use std::sync::Arc;

use opossum_analytics::{Analytics, MemoryStore, Recorder};
use opossum_fleet::{Embedded, Fleet, JobQueue, Queues, Sources, Tiers, WorkerState};

use crate::Wiring;

/// How a node runs.
#[derive(Debug, Clone, Copy)]
pub struct NodeSettings {
    /// A long-running service (worker, origin): the disk tier's cleanup runs, requests are
    /// recorded in the analytics, the queue server's eviction policy is checked and, embedded,
    /// the scheduler runs. Otherwise a one-shot command (`opossum submit`): none of these.
    pub service: bool,
    /// user jobs at once on the embedded queue
    pub concurrency: usize,
    /// warm jobs at once on the embedded queue
    pub warm_concurrency: usize,
}

impl NodeSettings {
    /// A long-running service with the configuration's `worker:` concurrency.
    pub fn service(wiring: &Wiring) -> NodeSettings {
        NodeSettings {
            service: true,
            concurrency: wiring.config.worker.concurrency,
            warm_concurrency: wiring.config.worker.warm_concurrency,
        }
    }

    /// A one-shot command: two user jobs and one warm job at once (the CLI's runtime has two
    /// threads).
    pub fn one_shot() -> NodeSettings {
        NodeSettings {
            service: false,
            concurrency: 2,
            warm_concurrency: 1,
        }
    }
}

/// The tiers, handler and queue of one process.
pub struct Node {
    /// the cache tiers
    pub tiers: Tiers,
    /// the job handler (pipeline, originals, presets, analytics recorder)
    pub state: Arc<WorkerState>,
    /// where jobs go: the Redis fleet or the in-process queue
    pub queue: Arc<dyn JobQueue>,
    /// the Redis side, in fleet mode
    pub fleet: Option<Fleet>,
    recorder: Option<Recorder>,
}

impl Node {
    /// Opens the node `wiring` describes: fleet mode when the queues' Redis is configured,
    /// else embedded.
    pub async fn open(wiring: &Wiring, settings: NodeSettings) -> anyhow::Result<Node> {
        match &wiring.queue_redis {
            Some(_) => {
                Node::open_fleet(wiring, wiring.fleet("this process").await?, settings).await
            }
            None => Node::open_embedded(wiring, settings).await,
        }
    }

    /// Opens a fleet-mode node on `fleet` (a worker opens its fleet with queue settings of its
    /// own).
    pub async fn open_fleet(
        wiring: &Wiring,
        fleet: Fleet,
        settings: NodeSettings,
    ) -> anyhow::Result<Node> {
        let (tiers, state) = open_handler(wiring, settings).await?;
        let mut recorder = None;
        if settings.service {
            wiring.check_queue_server(&fleet).await;
            recorder = Some(Recorder::start(
                wiring.analytics_config(),
                fleet.connection.clone(),
            ));
        }
        let state = Arc::new(match &recorder {
            Some(recorder) => state.with_analytics(recorder.clone()),
            None => state,
        });
        Ok(Node {
            tiers,
            state,
            queue: Arc::new(fleet.clone()),
            fleet: Some(fleet),
            recorder,
        })
    }

    /// Opens an embedded node (the `opossum submit` of a process without Redis).
    pub async fn open_embedded(wiring: &Wiring, settings: NodeSettings) -> anyhow::Result<Node> {
        let (tiers, mut state) = open_handler(wiring, settings).await?;
        let store = (settings.service && wiring.config.warming.enabled).then(MemoryStore::new);
        let mut recorder = None;
        if let Some(store) = &store {
            let started = Recorder::start(wiring.analytics_config(), store.clone());
            state = state.with_analytics(started.clone());
            recorder = Some(started);
        }
        let state = Arc::new(state);
        let embedded = Embedded::start(
            state.clone(),
            settings.concurrency,
            settings.warm_concurrency,
        );
        if let Some(store) = store {
            let warmer = wiring.warmer(
                Analytics::new(wiring.analytics_config(), store),
                tiers.hierarchy.clone(),
                Arc::new(embedded.clone()),
            )?;
            tokio::spawn(async move {
                if let Err(e) = warmer.run(std::future::pending()).await {
                    tracing::warn!(error = %e, "the embedded scheduler stopped");
                }
            });
        }
        Ok(Node {
            tiers,
            state,
            queue: Arc::new(embedded),
            fleet: None,
            recorder,
        })
    }

    /// The fleet's queues, in fleet mode (for their depth on status pages and in metrics).
    pub fn queues(&self) -> Option<Queues> {
        self.fleet.as_ref().map(|fleet| fleet.queues.clone())
    }

    /// What this node's telemetry reads: its tiers and, in fleet mode, the queues.
    pub fn sources(&self) -> Sources {
        Sources {
            hierarchy: Some(self.tiers.hierarchy.clone()),
            queues: self.queues(),
        }
    }

    /// Flushes what is buffered: the analytics recorder's counts and the tiers' statistics.
    pub async fn finish(&self) {
        if let Some(recorder) = &self.recorder {
            recorder.flush().await;
        }
        if let Err(e) = self.tiers.hierarchy.flush_stats() {
            tracing::warn!(error = %e, "cache stats not saved");
        }
    }
}

async fn open_handler(
    wiring: &Wiring,
    settings: NodeSettings,
) -> anyhow::Result<(Tiers, WorkerState)> {
    let originals = wiring.originals()?;
    let tiers = wiring.tiers().await;
    let originals = wiring.with_source_cache(originals, &tiers);
    if settings.service
        && let Some(disk) = &tiers.disk
    {
        disk.spawn_cleanup();
    }
    let state = WorkerState::new(
        &tiers,
        &wiring.prefix,
        wiring.config.presets.clone(),
        originals,
        wiring.limits().clone(),
    );
    Ok((tiers, state))
}
