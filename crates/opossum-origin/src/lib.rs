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
//!   `503` with `Retry-After`. Embedded (no Redis), the leader computes in this process; in a
//!   fleet it submits a user job to `{prefix}:process` and waits for its completion event, then
//!   reads the variant from the shared tier.
//! - Security: with signing keys set, every image and info request needs `?sig=` (see
//!   `sign.rs`), else `403`. Image ids are validated before any I/O (`..`, absolute paths,
//!   backslashes and control characters, also percent-encoded: `400`); request paths are
//!   bounded (`414`) and outputs too (`422`).

mod counters;
mod sign;
mod status;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use opossum_cache::{Entry, unix_millis};
use opossum_fleet::{Embedded, Event, Events, Job, Priority, Queues, Status, WorkerState};
use opossum_ops::{Category, Chain, Encoding, Operation, Options, OutputFormat};
use opossum_pipeline::PipelineError;

use crate::counters::counters;
use tokio::sync::{OnceCell, Semaphore, oneshot};

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
            negotiate: settings
                .negotiate
                .iter()
                .filter_map(|name| OutputFormat::from_name(name))
                .collect(),
        }
    }
}

impl Default for OriginConfig {
    /// The defaults of the `origin:` section.
    fn default() -> OriginConfig {
        OriginConfig::from_settings(&opossum_config::OriginSettings::default())
    }
}

/// Where misses are computed.
pub enum Compute {
    /// in this process; the completion events go to the embedded queue's subscribers (the
    /// embedded scheduler)
    Embedded(Embedded),
    /// by the worker fleet: a user job, answered through its completion event
    Fleet {
        /// the queues
        queues: Box<Queues>,
        /// the event stream
        events: Box<Events>,
    },
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

type Flight = Arc<OnceCell<Result<(Arc<Entry>, &'static str), Failure>>>;

/// A failed request: its status and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// HTTP status
    pub status: StatusCode,
    /// the message (the body's `error`)
    pub message: String,
}

impl Failure {
    fn new(status: StatusCode, message: impl Into<String>) -> Failure {
        Failure {
            status,
            message: message.into(),
        }
    }
}

/// The origin: shared state of every request.
pub struct Origin {
    state: Arc<WorkerState>,
    compute: Compute,
    config: OriginConfig,
    permits: Semaphore,
    waiting: AtomicUsize,
    flights: Mutex<HashMap<String, Flight>>,
    waiters: Arc<Mutex<HashMap<String, oneshot::Sender<Event>>>>,
    recent: Mutex<VecDeque<RecentRequest>>,
    history: Mutex<VecDeque<(u64, f64)>>,
    started: Instant,
}

impl Origin {
    /// An origin over `state` (tiers, presets, originals) that computes misses per `compute`.
    /// In fleet mode this starts the task that follows completion events; call it inside a
    /// tokio runtime.
    pub async fn start(
        state: Arc<WorkerState>,
        compute: Compute,
        config: OriginConfig,
    ) -> Result<Arc<Origin>, opossum_fleet::FleetError> {
        let waiters: Arc<Mutex<HashMap<String, oneshot::Sender<Event>>>> = Arc::default();
        if let Compute::Fleet { events, .. } = &compute {
            let mut reader = events.reader(Duration::from_secs(1)).await?;
            let mut after = events.last_id().await?;
            let waiters = waiters.clone();
            let events = events.clone();
            tokio::spawn(async move {
                loop {
                    match reader.next(&after, 1000).await {
                        Ok(entries) => {
                            for (id, event) in entries {
                                after = id;
                                let waiter = waiters
                                    .lock()
                                    .ok()
                                    .and_then(|mut w| w.remove(&event.job_id));
                                if let Some(waiter) = waiter {
                                    let _ = waiter.send(event);
                                }
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "reading completion events failed; reconnecting");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            if let Ok(fresh) = events.reader(Duration::from_secs(1)).await {
                                reader = fresh;
                            }
                        }
                    }
                }
            });
        }
        let origin = Arc::new(Origin {
            permits: Semaphore::new(config.max_computations.max(1)),
            state,
            compute,
            config,
            waiting: AtomicUsize::new(0),
            flights: Mutex::default(),
            waiters,
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
    ) -> Result<Answer, Failure> {
        let started = Instant::now();
        opossum_fleet::validate_image_id(image_id)
            .map_err(|e| Failure::new(StatusCode::BAD_REQUEST, e.to_string()))?;
        let chain = self.state.presets.resolve(chain_text).await.map_err(|e| {
            Failure::new(
                StatusCode::BAD_REQUEST,
                format!("invalid chain `{chain_text}`: {e}"),
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
            (Ok((hit.entry, hit.tier.name())), false)
        } else {
            self.miss(&key_text, image_id, &chain).await
        };
        // A miss this request led in a fleet ran as a job: the worker recorded it.
        if !(led && matches!(self.compute, Compute::Fleet { .. })) {
            self.record(
                image_id,
                &chain_text,
                &key_text,
                category,
                &looked_up,
                started,
            );
        }
        let (entry, source) = looked_up?;
        if entry.category == Category::Error {
            return Err(Failure::new(
                StatusCode::UNPROCESSABLE_ENTITY,
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
        Ok(Answer {
            entry,
            source,
            etag: key.etag(),
            surrogate_key: key.image_hash().to_string(),
            negotiated,
            chain: chain_text,
        })
    }

    /// Records an answered request in the analytics the scheduler reads (in a fleet, not the
    /// misses it submitted as jobs: the worker that ran them records those). Requests refused
    /// before they had a key, or for being busy, are not answers and are not recorded.
    fn record(
        &self,
        image_id: &str,
        chain: &str,
        key: &str,
        category: Category,
        result: &Result<(Arc<Entry>, &'static str), Failure>,
        started: Instant,
    ) {
        let Some(recorder) = &self.state.analytics else {
            return;
        };
        let fleet = matches!(self.compute, Compute::Fleet { .. });
        let (source, bytes) = match result {
            Ok((entry, _)) if entry.category == Category::Error => ("error", 0),
            Ok((entry, source)) => (*source, entry.body.len() as u64),
            Err(failure)
                if !fleet
                    && matches!(
                        failure.status,
                        StatusCode::NOT_FOUND | StatusCode::UNPROCESSABLE_ENTITY
                    ) =>
            {
                ("error", 0)
            }
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
            source: source.to_string(),
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
        chain: &Chain,
    ) -> (Result<(Arc<Entry>, &'static str), Failure>, bool) {
        let flight = match self.flights.lock() {
            Ok(mut flights) => flights.entry(key.to_string()).or_default().clone(),
            Err(_) => {
                let failure = Failure::new(StatusCode::INTERNAL_SERVER_ERROR, "lock poisoned");
                return (Err(failure), false);
            }
        };
        let mut led = false;
        let result = flight
            .get_or_init(|| {
                led = true;
                self.lead(key, image_id, chain)
            })
            .await
            .clone();
        if led && let Ok(mut flights) = self.flights.lock() {
            flights.remove(key);
        }
        let answer = result.map(|(entry, source)| (entry, if led { source } else { "coalesced" }));
        (answer, led)
    }

    async fn lead(
        &self,
        key: &str,
        image_id: &str,
        chain: &Chain,
    ) -> Result<(Arc<Entry>, &'static str), Failure> {
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
        match &self.compute {
            Compute::Embedded(embedded) => {
                // Warm jobs of the embedded scheduler yield to this computation.
                let _user = self.state.user_work();
                let started = Instant::now();
                let result = self
                    .state
                    .respond(
                        image_id,
                        chain,
                        &Options::new(),
                        0,
                        opossum_fleet::Lookup::Missed,
                    )
                    .await;
                let ok = result.as_ref().ok();
                embedded.publish(Event {
                    job_id: opossum_fleet::new_job_id(),
                    image_id: image_id.to_string(),
                    key: key.to_string(),
                    status: if ok.is_some() {
                        Status::Ok
                    } else {
                        Status::Error
                    },
                    source: ok.map_or("computed", |r| r.source.name()).to_string(),
                    bytes: ok.map_or(0, |r| r.entry.body.len() as u64),
                    duration_ms: started.elapsed().as_secs_f64() * 1000.0,
                    error: result
                        .as_ref()
                        .err()
                        .map(|e| e.to_string())
                        .unwrap_or_default(),
                    ops: chain.to_string(),
                    priority: Priority::User,
                });
                let response = result.map_err(pipeline_failure)?;
                Ok((response.entry, response.source.name()))
            }
            Compute::Fleet { queues, .. } => {
                let job = Job::new(image_id, chain.to_string(), Priority::User);
                let (sender, receiver) = oneshot::channel();
                if let Ok(mut waiters) = self.waiters.lock() {
                    waiters.insert(job.job_id.clone(), sender);
                }
                let job_id = job.job_id.clone();
                let unregister = || {
                    if let Ok(mut waiters) = self.waiters.lock() {
                        waiters.remove(&job_id);
                    }
                };
                if let Err(e) = queues.submit(vec![job]).await {
                    unregister();
                    return Err(Failure::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()));
                }
                let event = match tokio::time::timeout(self.config.timeout, receiver).await {
                    Ok(Ok(event)) => event,
                    _ => {
                        unregister();
                        return Err(Failure::new(
                            StatusCode::GATEWAY_TIMEOUT,
                            format!("the fleet did not answer within {:?}", self.config.timeout),
                        ));
                    }
                };
                if event.status == Status::Error {
                    let status = if event.source == "request" {
                        StatusCode::BAD_REQUEST
                    } else if event.error.starts_with("no image")
                        || event.error.contains(": no image")
                    {
                        StatusCode::NOT_FOUND
                    } else if event.source == "retries" {
                        StatusCode::BAD_GATEWAY
                    } else {
                        StatusCode::UNPROCESSABLE_ENTITY
                    };
                    return Err(Failure::new(status, event.error));
                }
                match self.state.pipeline.hierarchy().get_uncounted(key).await {
                    Some(hit) => Ok((hit.entry, "computed")),
                    None => Err(Failure::new(
                        StatusCode::BAD_GATEWAY,
                        "the fleet computed the variant but it is not in the shared cache",
                    )),
                }
            }
        }
    }
}

fn pipeline_failure(error: PipelineError) -> Failure {
    match &error {
        PipelineError::Load { missing: true, .. } => {
            Failure::new(StatusCode::NOT_FOUND, error.to_string())
        }
        PipelineError::Load {
            permanent: false, ..
        }
        | PipelineError::Internal(_) => {
            Failure::new(StatusCode::SERVICE_UNAVAILABLE, error.to_string())
        }
        _ => Failure::new(StatusCode::UNPROCESSABLE_ENTITY, error.to_string()),
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

struct Answer {
    entry: Arc<Entry>,
    source: &'static str,
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

fn success_response(answer: &Answer, request_headers: &HeaderMap) -> Response {
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
    headers.insert("x-opossum-source", HeaderValue::from_static(answer.source));
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
            (response, status, answer.source, answer.chain.clone())
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
