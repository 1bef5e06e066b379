//! The worker fleet: jobs on Redis queues (apalis with apalis-redis), the job handler shared by
//! the fleet and embedded mode, the originals store, and completion events.
//!
//! - [`Job`] and [`Priority`] (`job.rs`): what a queue carries; user work and warming are
//!   separate queues (`{prefix}:process`, `{prefix}:warm`).
//! - [`Queues`] (`queue.rs`): producers' admission control (jobs are pushed parked and promoted
//!   under a due-backlog cap, because apalis-redis fails above about 8,000 due jobs), queue
//!   depth from plain Redis commands, the dead set, cleanup of completed jobs.
//! - [`WorkerState`] (`handler.rs`): the job handler and error classification.
//! - [`run_worker`] (`runner.rs`): the worker process's monitor, wake-ups and graceful
//!   shutdown; `invalidation.rs`: invalidations announced to every process.
//! - [`Events`] (`events.rs`): the `{prefix}:events` stream.
//! - [`Originals`] (`originals.rs`): object_store, local directory or S3.
//! - [`Embedded`] (`embedded.rs`): the same handler on an in-process queue.
//! - [`open_tiers`] (`tiers.rs`): the cache tiers every process opens the same way.
#![cfg_attr(not(test), warn(unused_crate_dependencies))]

mod embedded;
mod events;
mod handler;
mod invalidation;
mod job;
mod originals;
mod queue;
mod runner;
mod seam;
mod source_cache;
mod telemetry;
mod tiers;

pub use embedded::Embedded;
pub use events::{
    Event, EventReader, EventWriter, Events, JobError, Status, StreamEntry, answer_of,
};
pub use handler::{MAX_ATTEMPTS, Outcome, Retry, WARM_YIELD, WorkerState};
pub use invalidation::{announce_invalidation, invalidation_channel};
pub use job::{Job, Priority, new_job_id};
pub use opossum_cache::TierKind;
pub use opossum_pipeline::{
    ErrorKind, Lookup, Mode, PipelineError, Provenance, processing_version,
};
pub use opossum_redis::redact;
pub use originals::{
    ImageRef, MAX_IMAGE_ID_LEN, Originals, OriginalsError, is_url_id, parse_image_id,
    validate_image_id,
};
pub use queue::{
    APALIS_TAG, DeadJob, Depth, JobStorage, MAX_DUE_CAP, PARK_BASE, PROMOTE_SCRIPT, QueueConfig,
    Queues, WAIT_TIMEOUT, check_queue_server, connect,
};
pub use runner::{WorkerConfig, run_worker, shutdown_signal, unique_worker_name};
pub use seam::{Completions, EVENTS_PER_READ, EventFollower, Expected, JobQueue, submit_and_wait};
pub use telemetry::Sources;
pub use tiers::{Tiers, default_data_dir, engine_limits, open_tiers};

/// Default approximate length of the event stream.
pub const EVENTS_MAX_LEN: usize = 100_000;

/// The queues and the event stream of one prefix on one connection: what every producer and
/// reader (CLI, scheduler, origin, benchmarks) opens, and the Redis side of the [`JobQueue`]
/// seam.
#[derive(Clone)]
pub struct Fleet {
    /// the queues
    pub queues: Queues,
    /// the completion events
    pub events: Events,
    /// the shared connection (for analytics and anything else on the same server)
    pub connection: opossum_redis::Connection,
    /// the client the connection came from (pub/sub opens connections of its own)
    pub client: opossum_redis::Redis,
}

impl Fleet {
    /// Connects to `client` and opens `prefix`'s queues (default settings) and events.
    pub async fn connect(client: &opossum_redis::Redis, prefix: &str) -> Result<Fleet, FleetError> {
        Fleet::connect_with(
            client,
            QueueConfig {
                prefix: prefix.into(),
                ..QueueConfig::default()
            },
        )
        .await
    }

    /// Connects to `client` and opens the queues `queue_config` describes, and their events.
    pub async fn connect_with(
        client: &opossum_redis::Redis,
        queue_config: QueueConfig,
    ) -> Result<Fleet, FleetError> {
        let connection = connect(client).await?;
        let events = Events::new(
            client.clone(),
            connection.clone(),
            &queue_config.prefix,
            EVENTS_MAX_LEN,
        )
        .waiting_for(queue_config.wait_replicas);
        let queues = Queues::new(queue_config, connection.clone());
        Ok(Fleet {
            queues,
            events,
            connection,
            client: client.clone(),
        })
    }
}

/// Failures of queue and event operations.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// Redis failed or is unreachable.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// The round trip that carried a batch of completion events failed (one error, shared by
    /// every job in the batch).
    #[error("completion events: {0}")]
    Events(std::sync::Arc<FleetError>),
    /// The queue backend failed.
    #[error("queue: {0}")]
    Queue(String),
    /// A queue's backlog is at its cap; the producer must wait or give up.
    #[error("queue {queue} is full: {waiting} jobs waiting, the cap is {cap}; try again later")]
    QueueFull {
        /// the queue
        queue: String,
        /// jobs waiting now
        waiting: u64,
        /// the cap
        cap: u64,
    },
}
