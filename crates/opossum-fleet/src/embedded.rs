//! Embedded mode: the same job handler ([`WorkerState::run`]) behind an in-process queue, for
//! `opossum serve` and the CLI when no Redis is configured. Events go to an in-process
//! broadcast channel instead of the Redis stream. Nothing survives the process: the one
//! process is the whole fleet.
//!
//! As in the fleet, user and warm jobs have separate pools (`concurrency` and the smaller
//! `warm_concurrency`), and warm jobs also yield to user work ([`WorkerState::run`]), so the
//! embedded scheduler's warming never delays a user. The backlog of each (queued plus
//! running) is what the scheduler's budget reads, and the latest events are kept for its
//! related-variant strategy, as the Redis stream keeps them.
//!
//! The queue is a tokio channel and a semaphore, not apalis's `MemoryStorage`: with apalis 1.0
//! an idle in-memory worker sometimes missed the wake-up of a job pushed while it was polling
//! (the job waited forever, about one run in three of `tests/e2e/queue_cli.rs` under load), and
//! a channel with a bounded pool of tasks is all this mode needs.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{Semaphore, broadcast, mpsc};

use crate::events::Event;
use crate::handler::{Outcome, Retry, WorkerState, job_outcome};
use crate::seam::MemoryClaims;
use crate::{FleetError, Job, Priority};

/// Latest events kept for [`Embedded::latest`].
const RECENT_EVENTS: usize = 1000;

/// A running in-process fleet: submit jobs, subscribe to their events.
#[derive(Clone)]
pub struct Embedded {
    user: mpsc::UnboundedSender<Job>,
    warm: mpsc::UnboundedSender<Job>,
    shared: Arc<Shared>,
}

/// What the dispatchers share with the handles. Not the job senders: when the last handle is
/// dropped the channels close and the dispatchers end.
struct Shared {
    events: broadcast::Sender<Event>,
    recent: Mutex<VecDeque<Event>>,
    /// jobs submitted and not finished: user, warm
    backlog: [AtomicU64; 2],
    claims: MemoryClaims,
}

impl Shared {
    fn publish(&self, event: Event) {
        if let Ok(mut recent) = self.recent.lock() {
            if recent.len() == RECENT_EVENTS {
                recent.pop_front();
            }
            recent.push_back(event.clone());
        }
        let _ = self.events.send(event);
    }
}

fn slot(priority: Priority) -> usize {
    match priority {
        Priority::User => 0,
        Priority::Warm => 1,
    }
}

impl Embedded {
    /// Starts dispatchers on the current runtime running up to `concurrency` user jobs and
    /// `warm_concurrency` warm jobs at once.
    pub fn start(state: Arc<WorkerState>, concurrency: usize, warm_concurrency: usize) -> Embedded {
        let (user, user_jobs) = mpsc::unbounded_channel::<Job>();
        let (warm, warm_jobs) = mpsc::unbounded_channel::<Job>();
        let (events, _) = broadcast::channel(4096);
        let shared = Arc::new(Shared {
            events,
            recent: Mutex::default(),
            backlog: [AtomicU64::new(0), AtomicU64::new(0)],
            claims: MemoryClaims::default(),
        });
        dispatch(shared.clone(), state.clone(), user_jobs, concurrency);
        dispatch(shared.clone(), state, warm_jobs, warm_concurrency);
        Embedded { user, warm, shared }
    }

    /// Events of jobs finishing from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.shared.events.subscribe()
    }

    /// Up to `count` of the latest events, oldest first.
    pub fn latest(&self, count: usize) -> Vec<Event> {
        let Ok(recent) = self.shared.recent.lock() else {
            return Vec::new();
        };
        recent
            .iter()
            .skip(recent.len().saturating_sub(count))
            .cloned()
            .collect()
    }

    /// Jobs of `priority` submitted and not yet finished (waiting or running).
    pub fn backlog_of(&self, priority: Priority) -> u64 {
        self.shared.backlog[slot(priority)].load(Ordering::SeqCst)
    }

    /// Warming claims, kept in memory.
    pub(crate) fn claims(&self) -> &MemoryClaims {
        &self.shared.claims
    }

    /// Queues a job on its priority's pool.
    pub fn submit_one(&self, job: Job) -> Result<(), FleetError> {
        let priority = job.priority;
        let sender = match priority {
            Priority::User => &self.user,
            Priority::Warm => &self.warm,
        };
        let backlog = &self.shared.backlog[slot(priority)];
        backlog.fetch_add(1, Ordering::SeqCst);
        sender.send(job).map_err(|_| {
            backlog.fetch_sub(1, Ordering::SeqCst);
            FleetError::Queue("the embedded worker has stopped".into())
        })
    }
}

/// Runs the jobs of one channel, `concurrency` at once, until every handle is dropped.
fn dispatch(
    shared: Arc<Shared>,
    state: Arc<WorkerState>,
    mut jobs: mpsc::UnboundedReceiver<Job>,
    concurrency: usize,
) {
    let slots = Arc::new(Semaphore::new(concurrency.max(1)));
    tokio::spawn(async move {
        while let Some(job) = jobs.recv().await {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return;
            };
            let state = state.clone();
            let shared = shared.clone();
            tokio::spawn(async move {
                let event = run_with_retries(&state, &job).await;
                shared.backlog[slot(job.priority)].fetch_sub(1, Ordering::SeqCst);
                shared.publish(event);
                drop(permit);
            });
        }
    });
}

/// No backend to reschedule: transient failures are retried here, by the same policy as the
/// Redis backend ([`Retry::after_attempt`]). Each attempt is counted in the job metrics as a
/// fleet worker counts it.
async fn run_with_retries(state: &WorkerState, job: &Job) -> Event {
    let mut attempt = 1;
    loop {
        let started = std::time::Instant::now();
        let finish = |outcome: &str| {
            let seconds = started.elapsed().as_secs_f64();
            opossum_telemetry::metrics().job(job.priority.queue_suffix(), outcome, seconds);
        };
        match state.execute(job).await {
            Outcome::Done(event) => {
                finish(job_outcome(&event));
                return event;
            }
            Outcome::Retry(error) => match Retry::after_attempt(attempt) {
                Retry::After(delay) => {
                    tracing::warn!(job_id = %job.job_id, attempt, %error, "transient failure; will retry");
                    finish("retry");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                Retry::GiveUp => {
                    finish("gave_up");
                    return Event::gave_up(job, attempt, &error);
                }
            },
        }
    }
}
