//! Embedded mode: the same job handler ([`WorkerState::run`]) behind an in-process queue, for
//! `opossum serve` and the CLI when no Redis is configured. Events go to an in-process
//! broadcast channel instead of the Redis stream. Nothing survives the process: the one
//! process is the whole fleet.
//!
//! The queue is a tokio channel and a semaphore, not apalis's `MemoryStorage`: with apalis 1.0
//! an idle in-memory worker sometimes missed the wake-up of a job pushed while it was polling
//! (the job waited forever, about one run in three of `workers/tests/cli.rs` under load), and
//! a channel with a bounded pool of tasks is all this mode needs.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, broadcast, mpsc};

use crate::events::Event;
use crate::worker::{MAX_ATTEMPTS, Outcome, WorkerState, gave_up};
use crate::{FleetError, Job};

/// A running in-process fleet: submit jobs, subscribe to their events.
#[derive(Clone)]
pub struct Embedded {
    sender: mpsc::UnboundedSender<Job>,
    events: broadcast::Sender<Event>,
}

impl Embedded {
    /// Starts a dispatcher running up to `concurrency` jobs at once on the current runtime.
    pub fn start(state: Arc<WorkerState>, concurrency: usize) -> Embedded {
        let (sender, mut receiver) = mpsc::unbounded_channel::<Job>();
        let (events, _) = broadcast::channel(4096);
        let slots = Arc::new(Semaphore::new(concurrency.max(1)));
        let publish = events.clone();
        tokio::spawn(async move {
            while let Some(job) = receiver.recv().await {
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    return;
                };
                let state = state.clone();
                let publish = publish.clone();
                tokio::spawn(async move {
                    let _ = publish.send(run_with_retries(&state, &job).await);
                    drop(slot);
                });
            }
        });
        Embedded { sender, events }
    }

    /// Events of jobs finishing from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Queues a job.
    pub async fn submit(&self, job: Job) -> Result<(), FleetError> {
        self.sender
            .send(job)
            .map_err(|_| FleetError::Queue("the embedded worker has stopped".into()))
    }
}

/// No backend to reschedule: transient failures are retried here, with the same budget and
/// linear backoff as the Redis backend.
async fn run_with_retries(state: &WorkerState, job: &Job) -> Event {
    let mut attempt = 1;
    loop {
        match state.run(job).await {
            Outcome::Done(event) => return event,
            Outcome::Retry(message) if attempt < MAX_ATTEMPTS => {
                tracing::warn!(job_id = %job.job_id, attempt, error = %message, "transient failure; will retry");
                tokio::time::sleep(Duration::from_secs(attempt as u64)).await;
                attempt += 1;
            }
            Outcome::Retry(message) => return gave_up(job, &message),
        }
    }
}
