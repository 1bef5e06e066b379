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
mod counters;
mod sign;
mod status;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use opossum_analytics::Answer;
use opossum_cache::{Entry, unix_millis};
use opossum_fleet::{Completions, Job, JobQueue, Queues, WorkerState, answer_of};
use opossum_ops::{Category, Chain, Encoding, Operation, Options, OutputFormat};
use opossum_pipeline::{ErrorKind, Provenance, SingleFlight};

use crate::counters::counters;
use tokio::sync::Semaphore;

pub use cdn::{CdnPurger, PurgeError};
pub use sign::{sign, verify};

/// Origin settings.
#[derive(Debug, Clone)]
pub struct OriginConfig {
    /// HMAC keys; when any is set, requests must be signed
    pub signing_keys: Vec<Vec<u8>>,
    /// computations (or fleet jobs) in flight at once
    pub max_computations: usize,
    /// requests allowed to wait for a computation permit; beyond that, `503`
    pub max_waiting: usize,
    /// how long a miss may take (the wait for a permit, the job's completion)
    pub timeout: Duration,
    /// longest request path accepted
    pub max_path_bytes: usize,
    /// largest response body served
    pub max_output_bytes: usize,
    /// formats offered by `Accept` negotiation, in order of preference
    pub negotiate: Vec<OutputFormat>,
}

impl OriginConfig {
    /// The configuration file's `origin:` section (empty signing keys are ignored; formats
    /// were checked when the file was read).
    pub fn from_settings(settings: &opossum_config::OriginSettings) -> OriginConfig {
        OriginConfig {
            signing_keys: settings
                .signing_keys
                .iter()
                .filter(|k| !k.is_empty())
                .map(|k| k.as_bytes().to_vec())
                .collect(),
            max_computations: settings.max_computations,
            max_waiting: settings.max_waiting,
            timeout: settings.timeout,
            max_path_bytes: settings.max_path_bytes,
            max_output_bytes: usize::try_from(settings.max_output_bytes).unwrap_or(usize::MAX),
            negotiate: settings.negotiate.clone(),
        }
    }
}

impl Default for OriginConfig {
    /// The defaults of the `origin:` section.
    fn default() -> OriginConfig {
        OriginConfig::from_settings(&opossum_config::OriginSettings::default())
    }
}

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

/// A failed request: its status and message, and the kind of failure when the request
/// reached the pipeline (the origin's own refusals, busy or unsigned, have none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// HTTP status
    pub status: StatusCode,
    /// the message (the body's `error`)
    pub message: String,
    /// what kind of failure the pipeline or the fleet reported
    pub kind: Option<ErrorKind>,
}

impl Failure {
    fn new(status: StatusCode, message: impl Into<String>) -> Failure {
        Failure {
            status,
            message: message.into(),
            kind: None,
        }
    }

    /// A failure the pipeline or a worker reported: its status from its kind, in one place.
    fn of_kind(kind: ErrorKind, message: impl Into<String>) -> Failure {
        Failure {
            status: status_of(kind),
            message: message.into(),
            kind: Some(kind),
        }
    }
}

/// The HTTP status of each kind of failure.
pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::BadImage => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorKind::Transient => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

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
        opossum_fleet::validate_image_id(image_id)
            .map_err(|e| Failure::of_kind(e.kind(), e.to_string()))?;
        let submitted = chain_text;
        let chain = self.state.presets.resolve(submitted).await.map_err(|e| {
            Failure::of_kind(
                ErrorKind::BadRequest,
                format!("invalid chain `{submitted}`: {e}"),
            )
        })?;
        let (chain, negotiated) = negotiate(chain, accept, &self.config.negotiate);
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

/// Adds the first of `offered` that `accept` names when `chain` sets no format; says whether
/// the answer depends on `Accept`.
fn negotiate(chain: Chain, accept: Option<&str>, offered: &[OutputFormat]) -> (Chain, bool) {
    if chain.is_analysis() || chain.encoding().is_some() || offered.is_empty() {
        return (chain, false);
    }
    let accept = accept.unwrap_or("").to_ascii_lowercase();
    let Some(format) = offered.iter().find(|f| accept.contains(f.mime())) else {
        return (chain, true);
    };
    let mut ops = chain.ops().to_vec();
    ops.push(Operation::Format(Encoding::default_for(*format)));
    match Chain::from_operations(ops) {
        Ok(negotiated) => (negotiated, true),
        Err(_) => (chain, true),
    }
}

struct Served {
    entry: Arc<Entry>,
    provenance: Provenance,
    etag: String,
    surrogate_key: String,
    negotiated: bool,
    chain: String,
}

fn failure_response(failure: &Failure) -> Response {
    let body = serde_json::json!({ "error": failure.message }).to_string();
    let mut response = (failure.status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if failure.status == StatusCode::SERVICE_UNAVAILABLE {
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

fn success_response(answer: &Served, request_headers: &HeaderMap) -> Response {
    let max_age = answer
        .entry
        .remaining(unix_millis())
        .map_or(0, |d| d.as_secs());
    let not_modified = request_headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|tag| tag.trim() == answer.etag || tag.trim() == "*")
        });
    let mut response = if not_modified {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut response = Response::new(Body::from(answer.entry.body.clone()));
        if let Ok(value) = HeaderValue::from_str(&answer.entry.media_type) {
            response.headers_mut().insert(header::CONTENT_TYPE, value);
        }
        response
    };
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&format!("public, max-age={max_age}")) {
        headers.insert(header::CACHE_CONTROL, value);
    }
    if let Ok(value) = HeaderValue::from_str(&answer.etag) {
        headers.insert(header::ETAG, value);
    }
    if let Ok(value) = HeaderValue::from_str(&answer.surrogate_key) {
        headers.insert("surrogate-key", value);
    }
    if answer.negotiated {
        headers.insert(header::VARY, HeaderValue::from_static("Accept"));
    }
    headers.insert(
        "x-opossum-source",
        HeaderValue::from_static(answer.provenance.name()),
    );
    response
}

type Shared = State<Arc<Origin>>;

fn check_request(origin: &Origin, uri: &Uri, query: Option<&str>) -> Result<(), Failure> {
    if uri.path().len() > origin.config.max_path_bytes {
        return Err(Failure::new(
            StatusCode::URI_TOO_LONG,
            format!(
                "the path is {} bytes, more than the limit of {}",
                uri.path().len(),
                origin.config.max_path_bytes
            ),
        ));
    }
    if origin.config.signing_keys.is_empty() {
        return Ok(());
    }
    let signature = query
        .unwrap_or("")
        .split('&')
        .find_map(|pair| pair.strip_prefix("sig="));
    match signature {
        Some(sig) if verify(&origin.config.signing_keys, uri.path(), sig) => Ok(()),
        Some(_) => Err(Failure::new(StatusCode::FORBIDDEN, "invalid signature")),
        None => Err(Failure::new(
            StatusCode::FORBIDDEN,
            "this origin requires signed URLs (?sig=)",
        )),
    }
}

async fn serve(
    origin: &Origin,
    uri: &Uri,
    query: Option<&str>,
    headers: &HeaderMap,
    chain: &str,
    image_id: &str,
) -> Response {
    let started = Instant::now();
    let result = match check_request(origin, uri, query) {
        Ok(()) => {
            let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
            origin.answer(chain, image_id, accept).await
        }
        Err(failure) => Err(failure),
    };
    let (response, status, source, served_chain) = match &result {
        Ok(answer) => {
            let response = success_response(answer, headers);
            if response.status() == StatusCode::NOT_MODIFIED {
                counters().not_modified.inc();
            }
            let status = response.status().as_u16();
            (
                response,
                status,
                answer.provenance.name(),
                answer.chain.clone(),
            )
        }
        Err(failure) => (
            failure_response(failure),
            failure.status.as_u16(),
            "error",
            chain.to_string(),
        ),
    };
    let route = if uri.path().starts_with("/v1/info/") {
        "info"
    } else {
        "img"
    };
    opossum_telemetry::metrics().http(route, status, started.elapsed().as_secs_f64());
    tracing::Span::current().record("status", status);
    origin.note(RecentRequest {
        image_id: image_id.chars().take(200).collect(),
        chain: served_chain.chars().take(200).collect(),
        status,
        source,
        ms: started.elapsed().as_secs_f64() * 1000.0,
    });
    response
}

async fn image(
    State(origin): Shared,
    Path((chain, image_id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    use tracing::Instrument;
    let span =
        tracing::debug_span!("request", route = "img", %chain, status = tracing::field::Empty);
    serve(&origin, &uri, query.as_deref(), &headers, &chain, &image_id)
        .instrument(span)
        .await
}

async fn info(
    State(origin): Shared,
    Path(image_id): Path<String>,
    RawQuery(query): RawQuery,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    serve(
        &origin,
        &uri,
        query.as_deref(),
        &headers,
        "analyze",
        &image_id,
    )
    .await
}

async fn metrics(State(origin): Shared) -> Response {
    let text = status::metrics(&origin).await;
    let mut response = Response::new(Body::from(text));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(opossum_telemetry::CONTENT_TYPE),
    );
    response
}

async fn status_page(State(origin): Shared) -> Response {
    let html = status::page(&origin).await;
    let mut response = Response::new(Body::from(html));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Serves `origin` on `listener` until `shutdown` resolves.
pub async fn serve_on(
    origin: Arc<Origin>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, origin.router())
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_adds_an_accepted_format_only_when_the_chain_has_none() {
        let offered = [OutputFormat::Webp, OutputFormat::Avif];
        let chain = |text: &str| Chain::parse(text).unwrap();
        let (c, vary) = negotiate(
            chain("thumbnail:200"),
            Some("image/avif,image/webp,*/*"),
            &offered,
        );
        assert_eq!(
            (c.to_string().as_str(), vary),
            ("thumbnail:200,format:webp:80", true)
        );
        let (c, vary) = negotiate(chain("thumbnail:200"), Some("image/avif"), &offered);
        assert_eq!(
            (c.to_string().as_str(), vary),
            ("thumbnail:200,format:avif:60", true)
        );
        let (c, vary) = negotiate(chain("thumbnail:200"), Some("image/png"), &offered);
        assert_eq!((c.to_string().as_str(), vary), ("thumbnail:200", true));
        let (c, vary) = negotiate(
            chain("thumbnail:200,format:png"),
            Some("image/webp"),
            &offered,
        );
        assert_eq!(
            (c.to_string().as_str(), vary),
            ("thumbnail:200,format:png", false)
        );
        let (_, vary) = negotiate(chain("analyze"), Some("image/webp"), &offered);
        assert!(!vary);
    }
}
