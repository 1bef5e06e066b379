//! Embedded mode: the same job handler behind an in-process queue (apalis's `MemoryStorage`),
//! for `opossum serve` and the CLI when no Redis is configured. Events go to an in-process
//! broadcast channel instead of the Redis stream. Nothing survives the process: the one
//! process is the whole fleet.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::{
    BackendExt, BoxDynError, Data, MemorySink, MemoryStorage, MemoryStorageError, Task,
    TaskBuilder, WorkerBuilder, WorkerBuilderExt,
};
use futures::{Sink, SinkExt, StreamExt};
use tokio::sync::broadcast;

use crate::events::Event;
use crate::worker::{MAX_ATTEMPTS, Outcome, WorkerState};
use crate::{FleetError, Job};

type JobSink = Box<dyn Sink<Task<Job>, Error = MemoryStorageError> + Send + Sync + Unpin>;

/// A running in-process fleet: submit jobs, subscribe to their events.
#[derive(Clone)]
pub struct Embedded {
    sink: MemorySink<Job>,
    events: broadcast::Sender<Event>,
}

impl Embedded {
    /// Starts one worker with `concurrency` slots on the current runtime.
    pub fn start(state: Arc<WorkerState>, concurrency: usize) -> Embedded {
        let (sender, receiver) = futures::channel::mpsc::unbounded::<Task<Job>>();
        let sender: JobSink =
            Box::new(sender.sink_map_err(|e| MemoryStorageError::Other(e.into())));
        let sink = MemorySink::new(Arc::new(futures::lock::Mutex::new(sender)));
        let receiver: Pin<Box<dyn futures::Stream<Item = Task<Job>> + Send>> = receiver.boxed();
        let storage = MemoryStorage::new_with(sink.clone(), receiver);
        let (events, _) = broadcast::channel(4096);
        let worker = WorkerBuilder::new(format!("embedded-{}", std::process::id()))
            // The in-memory backend does not always wake an idle worker on a push (seen with
            // apalis 1.0: a job pushed after the worker's first poll waited forever); a 5 ms
            // poll costs nothing measurable and bounds the pickup delay.
            .backend(storage.poll_with_interval(Duration::from_millis(5)))
            .concurrency(concurrency.max(1))
            .data(state)
            .data(events.clone())
            .build(handle_embedded);
        tokio::spawn(async move {
            if let Err(e) = worker.run().await {
                tracing::error!(error = %e, "embedded worker stopped");
            }
        });
        Embedded { sink, events }
    }

    /// Events of jobs finishing from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Queues a job.
    pub async fn submit(&self, job: Job) -> Result<(), FleetError> {
        let mut sink = self.sink.clone();
        sink.send(TaskBuilder::new(job).build())
            .await
            .map_err(|e| FleetError::Queue(e.to_string()))
    }
}

async fn handle_embedded(
    job: Job,
    state: Data<Arc<WorkerState>>,
    events: Data<broadcast::Sender<Event>>,
) -> Result<(), BoxDynError> {
    // No backend to reschedule: transient failures are retried here, with the same budget
    // and linear backoff as the Redis backend.
    for attempt in 1..=MAX_ATTEMPTS {
        match state.run(&job).await {
            Outcome::Done(event) => {
                let _ = events.send(event);
                return Ok(());
            }
            Outcome::Retry(message) if attempt < MAX_ATTEMPTS => {
                tracing::warn!(job_id = %job.job_id, attempt, error = %message, "transient failure; will retry");
                tokio::time::sleep(Duration::from_secs(attempt as u64)).await;
            }
            Outcome::Retry(message) => {
                let _ = events.send(Event {
                    job_id: job.job_id.clone(),
                    image_id: job.image_id.clone(),
                    key: String::new(),
                    status: crate::events::Status::Error,
                    source: "retries".into(),
                    bytes: 0,
                    duration_ms: 0.0,
                    error: format!("gave up after {MAX_ATTEMPTS} attempts: {message}"),
                });
            }
        }
    }
    Ok(())
}
