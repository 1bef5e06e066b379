//! The HTTP origin (`opossum serve`): variants over HTTP with the headers a CDN needs.
//!
//! - `GET /v1/img/{chain}/{image_id...}`: the variant. `GET /v1/info/{image_id...}`: the analysis
//!   JSON. `/healthz`, `/metrics` (Prometheus text), `/` (the status page, `status.rs`).
//! - Headers: `Cache-Control: public, max-age=<the entry's remaining TTL>`, a strong `ETag` from
//!   the key (`304` on `If-None-Match`), `Surrogate-Key: <image hash>` so one purge drops every
//!   variant of an image, and `Vary: Accept` when the chain names no format and the format is
//!   negotiated from `Accept` (WebP, then AVIF, only when the client accepts it). Errors carry
//!   `Cache-Control: no-store`.
//! - Misses: identical concurrent misses are merged here first (one leader per key), so 100
//!   requests for one uncached variant are one computation. The leader takes one of
//!   `max_computations` permits; at most `max_waiting` requests queue for one, the rest get
//!   `503` with `Retry-After`. The leader submits a user job through the [`JobQueue`] seam,
//!   the same way in both modes (to `{prefix}:process` in a fleet, to the embedded queue in
//!   this process without Redis), waits for its completion event, then reads the variant from
//!   the tiers. The job says the key was looked up and carries the chain as the user wrote it
//!   and as resolved: the worker neither counts a second miss nor resolves it again.
//! - Security: with signing keys set, every image and info request needs `?sig=` (see
//!   `sign.rs`), else `403`. Image ids are validated before any I/O (`..`, absolute paths,
//!   backslashes and control characters, also percent-encoded: `400`); request paths are
//!   bounded (`414`) and outputs too (`422`).
#![cfg_attr(not(test), warn(unused_crate_dependencies))]

mod cdn;
mod config;
mod counters;
mod failure;
mod negotiate;
mod routes;
mod sign;
mod status;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use opossum_analytics::Answer;
use opossum_cache::{Entry, unix_millis};
use opossum_fleet::{Completions, Job, JobQueue, Queues, WorkerState, answer_of};
use opossum_ops::{Category, Chain, Options};
use opossum_pipeline::{ErrorKind, Provenance, SingleFlight};

use crate::counters::counters;
use tokio::sync::Semaphore;

pub use cdn::{CdnPurger, PurgeError};
pub use config::OriginConfig;
pub use failure::{Failure, status_of};
pub use routes::serve_on;
pub use sign::{sign, verify};

use crate::negotiate::negotiate;
use crate::routes::{Served, image, image_by_url, info, metrics, status_page};

/// How an origin request ended, for the counters and the status page.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RecentRequest {
    /// the image
    pub image_id: String,
    /// the chain as served (format negotiated)
    pub chain: String,
    /// HTTP status
    pub status: u16,
    /// `memory`, `disk`, `redis`, `computed`, `coalesced` or `error`
    pub source: &'static str,
    /// time to answer
    pub ms: f64,
}

type Answered = Result<(Arc<Entry>, Provenance), Failure>;

/// The origin: shared state of every request.
pub struct Origin {
    state: Arc<WorkerState>,
    /// where misses go: the fleet's queues, or the embedded queue in this process
    queue: Arc<dyn JobQueue>,
    /// the fleet's queues, for their depths on the status page and in /metrics
    fleet_queues: Option<Queues>,
    /// `queue`'s completion events, followed once for every waiting miss
    completions: Completions,
    config: OriginConfig,
    permits: Semaphore,
    waiting: AtomicUsize,
    flights: SingleFlight<Answered>,
    recent: Mutex<VecDeque<RecentRequest>>,
    history: Mutex<VecDeque<(u64, f64)>>,
    started: Instant,
}

impl Origin {
    /// An origin over `state` (tiers, presets, originals) whose misses become user jobs on
    /// `queue` (the fleet's, or the embedded queue running `state` in this process);
    /// `fleet_queues` are the fleet's queues when there is a fleet, for the status page. This
    /// starts the task that follows `queue`'s completion events; call it inside a tokio
    /// runtime.
    pub async fn start(
        state: Arc<WorkerState>,
        queue: Arc<dyn JobQueue>,
        fleet_queues: Option<Queues>,
        config: OriginConfig,
    ) -> Result<Arc<Origin>, opossum_fleet::FleetError> {
        let completions = Completions::follow(queue.as_ref()).await?;
        let origin = Arc::new(Origin {
            permits: Semaphore::new(config.max_computations.max(1)),
            state,
            queue,
            fleet_queues,
            completions,
            config,
            waiting: AtomicUsize::new(0),
            flights: SingleFlight::default(),
            recent: Mutex::default(),
            history: Mutex::default(),
            started: Instant::now(),
        });
        let sampler = Arc::downgrade(&origin);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                let Some(origin) = sampler.upgrade() else {
                    break;
                };
                origin.sample_hit_rate();
            }
        });
        Ok(origin)
    }

    /// The router with every route.
    pub fn router(self: &Arc<Origin>) -> Router {
        Router::new()
            .route("/v1/img/{chain}/{*image_id}", get(image))
            .route("/v1/url/{chain}/{encoded}", get(image_by_url))
            .route("/v1/info/{*image_id}", get(info))
            .route("/healthz", get(|| async { "ok\n" }))
            .route("/metrics", get(metrics))
            .route("/", get(status_page))
            .with_state(self.clone())
    }

    /// Computations this origin started (embedded) or jobs it submitted (fleet).
    pub fn computations(&self) -> u64 {
        counters().computations.get()
    }

    fn note(&self, request: RecentRequest) {
        let counters = counters();
        counters.requests.inc();
        if request.status >= 400 {
            counters.errors.inc();
        }
        counters.answers.with_label_values(&[request.source]).inc();
        if let Ok(mut recent) = self.recent.lock() {
            if recent.len() == 20 {
                recent.pop_back();
            }
            recent.push_front(request);
        }
    }

    fn sample_hit_rate(&self) {
        let rate = self.state.pipeline.hierarchy().stats().overall_hit_rate();
        if let Ok(mut history) = self.history.lock() {
            if history.len() == 120 {
                history.pop_front();
            }
            history.push_back((unix_millis(), rate.unwrap_or(0.0)));
        }
    }

    /// Answers a request for `chain_text` of `image_id`: the whole path of the module docs.
    async fn answer(
        &self,
        chain_text: &str,
        image_id: &str,
        accept: Option<&str>,
    ) -> Result<Served, Failure> {
        let started = Instant::now();
        // Whether a URL id may be fetched is the fetcher's call (`sources:`).
        opossum_fleet::parse_image_id(image_id)
            .map_err(|e| Failure::of_kind(e.kind(), e.to_string()))?;
        let submitted = chain_text;
        let chain = self.state.presets.resolve(submitted).await.map_err(|e| {
            Failure::of_kind(
                ErrorKind::BadRequest,
                format!("invalid chain `{submitted}`: {e}"),
            )
        })?;
        let (chain, negotiated) = negotiate(chain, accept, &self.config.negotiate);
        // A watermark's content is part of the key: pinned before the lookup.
        let chain = self
            .state
            .pipeline
            .pin(&chain)
            .await
            .map_err(|e| Failure::of_kind(e.kind(), e.message().to_string()))?;
        let options = Options::new();
        let (key, chain_text) = self
            .state
            .pipeline
            .key_with_chain(image_id, &chain, &options);
        let key_text = key.to_string();
        let category = Category::of(&chain);
        let (looked_up, led) = if let Some(hit) = self
            .state
            .pipeline
            .hierarchy()
            .get(&key_text, category)
            .await
        {
            (Ok((hit.entry, Provenance::Tier(hit.tier))), false)
        } else {
            self.miss(&key_text, image_id, submitted, &chain).await
        };
        // A miss this request led ran as a job: the worker that ran it recorded it.
        if !led {
            self.record(
                image_id,
                &chain_text,
                &key_text,
                category,
                &looked_up,
                started,
            );
        }
        let (entry, provenance) = looked_up?;
        if entry.category == Category::Error {
            return Err(Failure::of_kind(
                ErrorKind::BadImage,
                String::from_utf8_lossy(&entry.body).into_owned(),
            ));
        }
        if entry.body.len() > self.config.max_output_bytes {
            return Err(Failure::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!(
                    "the output is {} bytes, more than the limit of {}",
                    entry.body.len(),
                    self.config.max_output_bytes
                ),
            ));
        }
        Ok(Served {
            entry,
            provenance,
            etag: key.etag(),
            surrogate_key: key.image_hash().to_string(),
            negotiated,
            chain: chain_text,
        })
    }

    /// Records an answered request in the analytics the scheduler reads (not the misses it
    /// submitted as jobs: the worker that ran them records those). Requests refused before
    /// they had a key, or for being busy, are not answers and are not recorded.
    fn record(
        &self,
        image_id: &str,
        chain: &str,
        key: &str,
        category: Category,
        result: &Answered,
        started: Instant,
    ) {
        let Some(recorder) = &self.state.analytics else {
            return;
        };
        let (answer, bytes) = match result {
            Ok((entry, _)) if entry.category == Category::Error => (Answer::Error, 0),
            Ok((entry, provenance)) => (answer_of(*provenance), entry.body.len() as u64),
            // The input's own faults are answers; being busy or timing out is not.
            Err(Failure {
                kind: Some(ErrorKind::NotFound | ErrorKind::BadImage),
                ..
            }) => (Answer::Error, 0),
            Err(_) => return,
        };
        recorder.record(&opossum_analytics::Access {
            variant: opossum_analytics::Variant {
                image_id: image_id.to_string(),
                chain: chain.to_string(),
                key: key.to_string(),
                options: Default::default(),
            },
            category,
            answer,
            bytes,
            duration_ms: started.elapsed().as_secs_f64() * 1000.0,
            at_ms: unix_millis(),
        });
    }

    /// The miss path: one leader per key computes (or submits a job); the others wait for it.
    /// Also says whether this request led.
    async fn miss(
        &self,
        key: &str,
        image_id: &str,
        submitted: &str,
        chain: &Chain,
    ) -> (Answered, bool) {
        let (result, led) = self
            .flights
            .run(key, || self.lead(key, image_id, submitted, chain))
            .await;
        let answer = result.map(|(entry, provenance)| {
            let provenance = if led {
                provenance
            } else {
                Provenance::Coalesced
            };
            (entry, provenance)
        });
        (answer, led)
    }

    /// The leader of a miss: takes a computation permit, then computes here (embedded) or
    /// submits a job that says the key was looked up (fleet). The job and the event carry
    /// the chain as `submitted`, preset names kept, and the resolved `chain` to compute.
    async fn lead(&self, key: &str, image_id: &str, submitted: &str, chain: &Chain) -> Answered {
        let busy = || {
            Failure::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many computations in progress; retry shortly",
            )
        };
        if self.permits.available_permits() == 0
            && self.waiting.load(Ordering::SeqCst) >= self.config.max_waiting
        {
            counters().rejected.inc();
            return Err(busy());
        }
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let permit = tokio::time::timeout(self.config.timeout, self.permits.acquire()).await;
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        let Ok(Ok(_permit)) = permit else {
            counters().rejected.inc();
            return Err(busy());
        };
        counters().computations.inc();
        let job = Job::looked_up(image_id, submitted, chain.clone());
        let expected = self.completions.expect(&job.job_id);
        if let Err(e) = self.queue.submit(vec![job]).await {
            return Err(Failure::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()));
        }
        let Some(event) = expected.wait(self.config.timeout).await else {
            return Err(Failure::new(
                StatusCode::GATEWAY_TIMEOUT,
                format!("the fleet did not answer within {:?}", self.config.timeout),
            ));
        };
        if let Some(error) = event.error {
            return Err(Failure::of_kind(error.kind, error.message));
        }
        match self.state.pipeline.hierarchy().get_uncounted(key).await {
            Some(hit) => Ok((hit.entry, Provenance::Computed)),
            None => Err(Failure::new(
                StatusCode::BAD_GATEWAY,
                "the fleet computed the variant but it is not in the shared cache",
            )),
        }
    }
}
