//! What a worker does with one job.
//!
//! [`WorkerState::handle`] is the job handler, shared by the Redis fleet and embedded mode:
//! resolve the chain (presets included), answer from the cache hierarchy or compute (the
//! pipeline loads the original from the [`Originals`] store and runs the engine on tokio's
//! blocking pool), then publish the completion event. Errors are classified once, here:
//!
//! - bad input (a corrupt image, an invalid chain, no such image, an id that leaves the store)
//!   is permanent: no retry, an `error` event with the message, and the pipeline caches the
//!   error result for 5 minutes so a resubmission answers at once;
//! - anything else (the store or Redis timing out) is transient: the job fails and the backend
//!   retries it after `attempt` seconds; after [`MAX_ATTEMPTS`] the job is aborted into the dead
//!   set with a final `error` event, so nobody waits for it forever.
//!
//! The worker process around it is `runner.rs`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use apalis::prelude::{AbortError, BoxDynError};
use opossum_analytics::{Access, Answer, Recorder, Variant};
use opossum_image::Limits;
use opossum_ops::{Category, Chain, Options};
use opossum_pipeline::{ErrorKind, Mode, Pipeline, PipelineError, PresetStore, Response, UserWork};

use crate::events::{Event, EventWriter};
use crate::originals::Originals;
use crate::{Job, Priority};

/// Attempts before a transiently failing job is given up (and moved to the dead set).
pub const MAX_ATTEMPTS: usize = 5;

/// What to do after a transient failure: the one retry policy of every queue backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// run the job again after this delay
    After(Duration),
    /// the attempts are spent: give up with a final event (and, on Redis, the dead set)
    GiveUp,
}

impl Retry {
    /// What follows the transient failure of attempt `attempt` (1 for the first run): up to
    /// [`MAX_ATTEMPTS`] runs in all, each retry after `attempt` seconds (linear backoff).
    pub fn after_attempt(attempt: usize) -> Retry {
        if attempt < MAX_ATTEMPTS {
            Retry::After(Duration::from_secs(attempt as u64))
        } else {
            Retry::GiveUp
        }
    }
}

/// How a job ended, for the caller that publishes events or retries.
#[derive(Debug)]
pub enum Outcome {
    /// finished (successfully or with a permanent error): publish this event
    Done(Event),
    /// a transient failure: retry later, per [`Retry::after_attempt`]
    Retry(PipelineError),
}

/// Everything a worker needs to run jobs.
pub struct WorkerState {
    /// the cache and the engine
    pub pipeline: Arc<Pipeline>,
    /// preset resolution
    pub presets: Arc<PresetStore>,
    /// where originals come from
    pub originals: Originals,
    /// input limits (the byte limit applies to originals before they are read)
    pub limits: Limits,
    /// where user requests are recorded for the scheduler and `opossum stats` (warm jobs are
    /// not requests and are not recorded: warming must not feed its own popularity)
    pub analytics: Option<Recorder>,
    /// user jobs running in this process now; warm jobs wait for zero (see [`WARM_YIELD`])
    user_in_flight: Arc<AtomicUsize>,
    /// user jobs due fleet-wide (waiting for or running on any worker), as the last promote
    /// tick saw them
    pub(crate) user_due: Arc<AtomicU64>,
    /// whether either of the two counts user work now
    user_work: UserWork,
}

/// Longest a warm job waits for user work before it runs anyway. Warming yields to user work:
/// a warm job starts only when no user job is running in this process and none is waiting
/// for a worker anywhere in the fleet (the promote tick's count, 50 ms old at most), or after
/// this wait, so a steady stream of user work cannot starve warming forever.
pub const WARM_YIELD: Duration = Duration::from_secs(10);

/// Counts user work as running in this process while alive (warm jobs wait for none).
struct CountedUserWork(Arc<AtomicUsize>);

impl CountedUserWork {
    fn new(counter: &Arc<AtomicUsize>) -> CountedUserWork {
        counter.fetch_add(1, Ordering::SeqCst);
        CountedUserWork(counter.clone())
    }
}

impl Drop for CountedUserWork {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl WorkerState {
    /// A state over `tiers`, with keys in `namespace`, presets from configuration and
    /// originals from `originals` and input `limits`: how every process that runs jobs
    /// assembles one.
    pub fn new(
        tiers: &crate::Tiers,
        namespace: &str,
        presets: opossum_ops::Presets,
        originals: Originals,
        limits: Limits,
    ) -> WorkerState {
        let config = opossum_pipeline::PipelineConfig::new(namespace, limits);
        let presets = Arc::new(PresetStore::new(
            presets,
            tiers.hierarchy.clone(),
            &config.namespace,
            &config.version,
        ));
        let limits = config.limits.clone();
        let user_in_flight = Arc::new(AtomicUsize::new(0));
        let user_due = Arc::new(AtomicU64::new(0));
        // Warm computations pause between steps for the same user work warm jobs wait for.
        let user_work: UserWork = {
            let (in_flight, due) = (user_in_flight.clone(), user_due.clone());
            Arc::new(move || {
                in_flight.load(Ordering::SeqCst) > 0 || due.load(Ordering::Relaxed) > 0
            })
        };
        let pipeline = Arc::new(
            Pipeline::new(tiers.hierarchy.clone(), config, tiers.leases.clone())
                .with_resources(originals.as_resources(limits.max_bytes))
                .yielding_to(user_work.clone()),
        );
        WorkerState {
            pipeline,
            presets,
            originals,
            limits,
            analytics: None,
            user_in_flight,
            user_due,
            user_work,
        }
    }

    /// True while user work runs here or waits anywhere: what warm jobs yield to.
    fn user_work_pending(&self) -> bool {
        (self.user_work)()
    }

    /// Marks user work as running until the guard is dropped: warm jobs yield to it.
    fn user_work(&self) -> CountedUserWork {
        CountedUserWork::new(&self.user_in_flight)
    }

    /// Records user requests with `recorder`.
    pub fn with_analytics(mut self, recorder: Recorder) -> WorkerState {
        self.analytics = Some(recorder);
        self
    }

    /// Executes one job to an [`Outcome`] (no event published, no retry decided); never
    /// panics on bad input.
    pub async fn execute(&self, job: &Job) -> Outcome {
        let _counted = match job.priority {
            Priority::User => Some(self.user_work()),
            Priority::Warm => {
                let waiting = Instant::now();
                while self.user_work_pending() && waiting.elapsed() < WARM_YIELD {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                None
            }
        };
        let started = Instant::now();
        let (chain, key, result) = match self.resolve(job).await {
            Ok((chain, options)) => {
                let result = self
                    .respond(&job.image_id, &chain, &options, job.mode())
                    .await;
                // The answer's key has the watermarks' versions pinned in; a failure's is
                // the chain's as asked.
                let key = match &result {
                    Ok(response) => response.key.to_string(),
                    Err(_) => self
                        .pipeline
                        .key(&job.image_id, &chain, &options)
                        .to_string(),
                };
                (Some(chain), key, result)
            }
            Err(error) => (None, String::new(), Err(error)),
        };
        let event = match &result {
            Err(error) if !error.is_permanent() => return Outcome::Retry(error.clone()),
            result => Event::finished(job, key, result.as_ref(), started.elapsed()),
        };
        if let (Some(recorder), Some(chain), Priority::User) =
            (&self.analytics, &chain, job.priority)
        {
            recorder.record(&Access {
                variant: Variant {
                    image_id: job.image_id.clone(),
                    chain: chain.to_string(),
                    key: event.key.clone(),
                    options: job.options.clone(),
                },
                category: Category::of(chain),
                answer: match (&event.error, event.source) {
                    (None, Some(provenance)) => crate::events::answer_of(provenance),
                    _ => Answer::Error,
                },
                bytes: event.bytes,
                duration_ms: event.duration_ms,
                at_ms: opossum_cache::unix_millis(),
            });
        }
        Outcome::Done(event)
    }

    /// The chain and options `job` asks for: the producer's resolved chain, or its `ops`
    /// resolved here (presets included). Invalid ones are the request's fault.
    async fn resolve(&self, job: &Job) -> Result<(Chain, Options), PipelineError> {
        let chain = match &job.chain {
            Some(chain) => chain.clone(),
            None => self.presets.resolve(&job.ops).await.map_err(|e| {
                PipelineError::new(
                    ErrorKind::BadRequest,
                    format!("invalid ops `{}`: {e}", job.ops),
                )
            })?,
        };
        let mut options = Options::new();
        for (name, value) in &job.options {
            options
                .insert(name, value)
                .map_err(|e| PipelineError::from_cause(ErrorKind::BadRequest, e))?;
        }
        Ok((chain, options))
    }

    /// Answers one request from the cache, or computes it from the original in the originals
    /// store: the pipeline with this state's loader. What jobs and the HTTP origin both call;
    /// `lookup` says how the key is looked up first.
    pub async fn respond(
        &self,
        image_id: &str,
        chain: &Chain,
        options: &Options,
        mode: Mode,
    ) -> Result<Response, PipelineError> {
        // The origin calls this directly: its requests are user work too.
        let _counted = (!mode.background).then(|| self.user_work());
        let limit = self.limits.max_bytes;
        let originals = self.originals.clone();
        let id = image_id.to_string();
        let load = move || async move {
            originals
                .load(&id, limit)
                .await
                .map_err(|e| PipelineError::from(e).context(format_args!("loading {id}")))
        };
        self.pipeline
            .respond(image_id, chain, options, mode, load)
            .await
    }

    /// The apalis handler: runs the job, publishes its event, and tells the backend whether
    /// to retry (a plain error), give up (`AbortError`) or acknowledge (`Ok`).
    pub async fn handle(
        &self,
        job: &Job,
        attempt: usize,
        events: &EventWriter,
    ) -> Result<(), BoxDynError> {
        use tracing::Instrument;
        let queue = job.priority.queue_suffix();
        let span = tracing::debug_span!(
            "job",
            job_id = %job.job_id,
            queue,
            ops = %job.ops,
            attempt,
            outcome = tracing::field::Empty
        );
        let started = std::time::Instant::now();
        let finish = |outcome: &str| {
            tracing::Span::current().record("outcome", outcome);
            opossum_telemetry::metrics().job(queue, outcome, started.elapsed().as_secs_f64());
        };
        async {
            let event = match self.execute(job).await {
                Outcome::Done(event) => event,
                // The backend reschedules the job itself; the policy decides whether it may.
                Outcome::Retry(error) => match Retry::after_attempt(attempt) {
                    Retry::After(_) => {
                        tracing::warn!(job_id = %job.job_id, attempt, %error, "transient failure; will retry");
                        finish("retry");
                        return Err(error.into());
                    }
                    Retry::GiveUp => {
                        events.publish(Event::gave_up(job, attempt, &error)).await?;
                        finish("gave_up");
                        return Err(AbortError::new(error).into());
                    }
                },
            };
            // A failed publish fails the job: it runs again (now a cache hit) and the event is
            // written then. At-least-once, never silently dropped.
            let outcome = job_outcome(&event);
            events.publish(event).await?;
            finish(outcome);
            Ok(())
        }
        .instrument(span)
        .await
    }
}

/// The bounded outcome label of a finished job: `error`, or where the answer came from.
pub(crate) fn job_outcome(event: &Event) -> &'static str {
    match (&event.error, event.source) {
        (None, Some(provenance)) => provenance.name(),
        _ => "error",
    }
}
