//! The pipeline: a request (image id, chain, options) from cache lookup to cached result.
//!
//! [`Pipeline::run`] derives the key and asks the [`Hierarchy`]. On a miss it computes, making
//! sure identical concurrent misses compute once: per key within the process (the first caller
//! computes, the others await its result), and across processes through a short Redis lease
//! (`SET NX PX` with a random token, released by compare-and-delete), whose losers wait for the
//! winner's result to appear in the cache instead of computing.
//!
//! Computing resumes from the longest cached prefix of the chain: the output of each proper
//! prefix of the pixel operations is cached as an intermediate (raw pixels, 1 h), so
//! `resize,grayscale,blur` after `resize,grayscale,sharpen` starts from the cached
//! `resize,grayscale` without loading or decoding the original. (The seed's loop keeps applying
//! earlier steps after a cached one; here a hit replaces every step before it.)
//!
//! A request that fails on bad input is cached as an error result (5 min): the same clear error
//! comes back without reprocessing.
//!
//! [`PresetStore`] resolves chains that name presets, from configuration and, for versions
//! this process does not have, from the cache where other processes published them.

mod background;
mod lease;
mod presets;
mod raw;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opossum_cache::{Entry, Hierarchy, TierKind};
use opossum_image::{ImageError, Limits, SourceInfo};
use opossum_ops::{
    CacheKey, Category, Chain, Options, TtlInputs, adaptive_ttl, derive_key_with_chain,
};
use tokio::sync::OnceCell;

pub use background::in_background;
pub use lease::Leases;
pub use presets::{PRESET_MEDIA_TYPE, PresetStore};

/// Media type of cached error results.
pub const ERROR_MEDIA_TYPE: &str = "text/plain; charset=utf-8";

/// Where an answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// a cache tier
    Tier(TierKind),
    /// computed by this call
    Computed,
    /// computed by a concurrent identical request (in this process or another)
    Coalesced,
}

impl Source {
    /// `memory`, `disk`, `redis`, `computed` or `coalesced`.
    pub fn name(self) -> &'static str {
        match self {
            Source::Tier(tier) => tier.name(),
            Source::Computed => "computed",
            Source::Coalesced => "coalesced",
        }
    }
}

/// A successful answer.
#[derive(Debug, Clone)]
pub struct Response {
    /// the request's key
    pub key: CacheKey,
    /// the cached or computed entry
    pub entry: Arc<Entry>,
    /// where it came from
    pub source: Source,
}

/// How [`Pipeline::respond`] looks the key up before computing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// a user request: look up, counting the hit or miss
    Request,
    /// not a request (a warm job): look up without counting, so the tiers' hit rates stay
    /// those of user requests (as the analytics count user requests only)
    Warm,
    /// the caller has looked the key up and missed (the miss is counted already)
    Missed,
}

/// Why a request failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PipelineError {
    /// The input (image or chain) is bad; retrying cannot help. `origin` says whether the
    /// error came from the cache (an error result) or was just found.
    #[error("{message}")]
    BadInput {
        /// the error, as first reported
        message: String,
        /// where the answer came from
        origin: Source,
    },
    /// The original could not be loaded.
    #[error("loading {image_id}: {message}")]
    Load {
        /// the image id
        image_id: String,
        /// what failed
        message: String,
        /// true when retrying cannot help (no such image)
        permanent: bool,
        /// true when the original does not exist (an HTTP origin answers 404)
        missing: bool,
    },
    /// A bug or an environmental failure inside the engine.
    #[error("internal error: {0}")]
    Internal(String),
}

impl PipelineError {
    /// True when retrying the same request cannot succeed.
    pub fn is_permanent(&self) -> bool {
        match self {
            PipelineError::BadInput { .. } => true,
            PipelineError::Load { permanent, .. } => *permanent,
            PipelineError::Internal(_) => false,
        }
    }
}

/// Why an original could not be loaded, from the caller's loader.
#[derive(Debug, Clone)]
pub struct LoadError {
    /// what failed
    pub message: String,
    /// true when retrying cannot help
    pub permanent: bool,
    /// true when the original does not exist
    pub missing: bool,
}

/// Pipeline settings.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// key namespace (the Redis prefix)
    pub namespace: String,
    /// processing version in every key
    pub version: String,
    /// input limits
    pub limits: Limits,
    /// intermediates larger than this (raw pixels) are not cached
    pub max_intermediate_bytes: usize,
}

impl Default for PipelineConfig {
    fn default() -> PipelineConfig {
        PipelineConfig {
            namespace: "opossum".into(),
            version: opossum_ops::PROCESSING_VERSION.into(),
            limits: Limits::default(),
            max_intermediate_bytes: 16 << 20,
        }
    }
}

type Shared = Result<(Arc<Entry>, Source), PipelineError>;

/// One request on its way through the miss path.
#[derive(Clone, Copy)]
struct Job<'a> {
    key: &'a str,
    image_id: &'a str,
    chain: &'a Chain,
    options: &'a Options,
    category: Category,
    fresh_until_ms: u64,
}

/// Runs requests against a cache hierarchy.
pub struct Pipeline {
    hierarchy: Arc<Hierarchy>,
    config: PipelineConfig,
    leases: Option<Leases>,
    in_flight: Mutex<HashMap<String, Arc<OnceCell<Shared>>>>,
}

impl Pipeline {
    /// A pipeline over `hierarchy`; with `leases`, misses are coordinated across processes.
    pub fn new(
        hierarchy: Arc<Hierarchy>,
        config: PipelineConfig,
        leases: Option<Leases>,
    ) -> Pipeline {
        Pipeline {
            hierarchy,
            config,
            leases,
            in_flight: Mutex::new(HashMap::new()),
        }
    }

    /// The hierarchy this pipeline reads and writes.
    pub fn hierarchy(&self) -> &Arc<Hierarchy> {
        &self.hierarchy
    }

    /// The key of a request.
    pub fn key(&self, image_id: &str, chain: &Chain, options: &Options) -> CacheKey {
        self.key_with_chain(image_id, chain, options).0
    }

    /// The key of a request and the canonical chain text it hashed.
    pub fn key_with_chain(
        &self,
        image_id: &str,
        chain: &Chain,
        options: &Options,
    ) -> (CacheKey, String) {
        derive_key_with_chain(
            &self.config.namespace,
            &self.config.version,
            image_id,
            chain,
            options,
        )
    }

    fn intermediate_key(&self, image_id: &str, prefix: &Chain, options: &Options) -> String {
        // A distinct option keeps an intermediate from ever sharing a key with a final result
        // of the same chain (`thumbnail:200` the result versus its raw pixels).
        let mut options = options.clone();
        let _ = options.insert("stage", "intermediate");
        self.key(image_id, prefix, &options).to_string()
    }

    /// Answers a request from the cache, or computes it with the original from `load`.
    /// `load` is only called when nothing cached can be used.
    pub async fn run<L, F>(
        &self,
        image_id: &str,
        chain: &Chain,
        options: &Options,
        load: L,
    ) -> Result<Response, PipelineError>
    where
        L: FnOnce() -> F,
        F: Future<Output = Result<Vec<u8>, LoadError>>,
    {
        self.respond(image_id, chain, options, 0, Lookup::Request, load)
            .await
    }

    /// [`Pipeline::run`] with the first lookup chosen by `lookup`, treating a cached answer
    /// that expires before `fresh_until_ms` (Unix milliseconds) as a miss: how a warm job
    /// refreshes a variant that is about to expire. On a miss: coalescing, lease, computation.
    pub async fn respond<L, F>(
        &self,
        image_id: &str,
        chain: &Chain,
        options: &Options,
        fresh_until_ms: u64,
        lookup: Lookup,
        load: L,
    ) -> Result<Response, PipelineError>
    where
        L: FnOnce() -> F,
        F: Future<Output = Result<Vec<u8>, LoadError>>,
    {
        let key = self.key(image_id, chain, options);
        let key_text = key.to_string();
        let hit = match lookup {
            Lookup::Request => self.hierarchy.get(&key_text, Category::of(chain)).await,
            Lookup::Warm => self.hierarchy.get_uncounted(&key_text).await,
            Lookup::Missed => None,
        };
        if let Some(hit) = hit
            && hit.entry.expires_at_ms() >= fresh_until_ms
        {
            return answer(key, hit.entry, Source::Tier(hit.tier));
        }
        let category = Category::of(chain);
        let (cell, leader_cell) = {
            let mut in_flight = self
                .in_flight
                .lock()
                .map_err(|_| PipelineError::Internal("in-flight map poisoned".into()))?;
            let cell = in_flight.entry(key_text.clone()).or_default().clone();
            (cell.clone(), cell)
        };
        let mut led = false;
        let shared = cell
            .get_or_init(|| {
                led = true;
                let job = Job {
                    key: &key_text,
                    image_id,
                    chain,
                    options,
                    category,
                    fresh_until_ms,
                };
                async move { self.compute_once(&job, load).await }
            })
            .await
            .clone();
        // The finished cell leaves the map, so a later miss (after an eviction) computes anew.
        if let Ok(mut in_flight) = self.in_flight.lock()
            && in_flight
                .get(&key_text)
                .is_some_and(|c| Arc::ptr_eq(c, &leader_cell))
        {
            in_flight.remove(&key_text);
        }
        let (entry, source) = shared?;
        let source = if led { source } else { Source::Coalesced };
        answer(key, entry, source)
    }

    /// The leader's path: take the cross-process lease (or wait for its holder's result),
    /// then compute.
    async fn compute_once<L, F>(&self, job: &Job<'_>, load: L) -> Shared
    where
        L: FnOnce() -> F,
        F: Future<Output = Result<Vec<u8>, LoadError>>,
    {
        let Job {
            key,
            fresh_until_ms,
            ..
        } = *job;
        // What another process finished while we waited counts only if it is fresh enough.
        let fresh = |hit: &opossum_cache::Hit| hit.entry.expires_at_ms() >= fresh_until_ms;
        let Some(leases) = &self.leases else {
            return self.compute(job, load).await;
        };
        let started = Instant::now();
        loop {
            match leases.acquire(key).await {
                Ok(Some(token)) => {
                    // Another process may have finished between our miss and the lease. The
                    // request's miss is already counted; re-checks are not lookups of their own.
                    if let Some(hit) = self.hierarchy.get_uncounted(key).await
                        && fresh(&hit)
                    {
                        leases.release(key, &token).await;
                        return Ok((hit.entry, Source::Coalesced));
                    }
                    let result = self.compute(job, load).await;
                    leases.release(key, &token).await;
                    return result;
                }
                Ok(None) => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    if let Some(hit) = self.hierarchy.get_uncounted(key).await
                        && fresh(&hit)
                    {
                        return Ok((hit.entry, Source::Coalesced));
                    }
                    if started.elapsed() > leases.ttl() + Duration::from_secs(1) {
                        tracing::warn!(key, "lease holder never delivered; computing");
                        return self.compute(job, load).await;
                    }
                }
                Err(e) => {
                    tracing::warn!(key, error = %e, "lease unavailable; computing without it");
                    return self.compute(job, load).await;
                }
            }
        }
    }

    async fn compute<L, F>(&self, job: &Job<'_>, load: L) -> Shared
    where
        L: FnOnce() -> F,
        F: Future<Output = Result<Vec<u8>, LoadError>>,
    {
        let Job {
            key,
            image_id,
            chain,
            options,
            category,
            ..
        } = *job;
        let started = Instant::now();
        match self.compute_inner(image_id, chain, options, load).await {
            Ok(output) => {
                let compute_ms = started.elapsed().as_millis() as u64;
                let inputs = TtlInputs {
                    storage_pressure: self.hierarchy.storage_pressure().await,
                    hits: 0,
                    compute_ms,
                };
                let entry = Arc::new(Entry::new(
                    output.bytes,
                    output.media_type,
                    category,
                    adaptive_ttl(category, inputs),
                    compute_ms,
                    (output.width, output.height),
                ));
                self.hierarchy.put(key, entry.clone()).await;
                self.hierarchy.record_computed(category);
                Ok((entry, Source::Computed))
            }
            Err(Failure::Image(error)) if error.is_permanent() => {
                let message = error.to_string();
                let entry = Arc::new(Entry::new(
                    message.clone().into_bytes(),
                    ERROR_MEDIA_TYPE,
                    Category::Error,
                    Category::Error.default_ttl(),
                    started.elapsed().as_millis() as u64,
                    (0, 0),
                ));
                self.hierarchy.put(key, entry).await;
                self.hierarchy.record_computed(Category::Error);
                Err(PipelineError::BadInput {
                    message,
                    origin: Source::Computed,
                })
            }
            Err(Failure::Image(error)) => Err(PipelineError::Internal(error.to_string())),
            Err(Failure::Pipeline(error)) => Err(error),
        }
    }

    async fn compute_inner<L, F>(
        &self,
        image_id: &str,
        chain: &Chain,
        options: &Options,
        load: L,
    ) -> Result<opossum_image::Output, Failure>
    where
        L: FnOnce() -> F,
        F: Future<Output = Result<Vec<u8>, LoadError>>,
    {
        let limits = self.config.limits.clone();
        let pixel_ops = chain.pixel_ops().to_vec();

        // Resume from the longest cached proper prefix of the pixel operations.
        let mut resumed = None;
        for n in (1..pixel_ops.len()).rev() {
            let prefix_key = self.intermediate_key(image_id, &chain.prefix(n), options);
            if let Some(hit) = self
                .hierarchy
                .get(&prefix_key, Category::Intermediate)
                .await
            {
                match raw::decode(&hit.entry.body) {
                    Ok(state) => {
                        tracing::debug!(
                            image_id,
                            resumed_after = n,
                            "resuming from a cached intermediate"
                        );
                        resumed = Some((n, state));
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(key = prefix_key, error = %e, "unreadable intermediate ignored")
                    }
                }
            }
        }
        let (start, mut image, source) = match resumed {
            Some((n, (image, source))) => (n, image, source),
            None => {
                let bytes = load().await.map_err(|e| {
                    Failure::Pipeline(PipelineError::Load {
                        image_id: image_id.to_string(),
                        message: e.message,
                        permanent: e.permanent,
                        missing: e.missing,
                    })
                })?;
                let hint = opossum_image::decode_hint(chain);
                let limits = limits.clone();
                let decoded =
                    blocking(move || opossum_image::decode(&bytes, &limits, hint)).await?;
                let source = SourceInfo::from(&decoded);
                (0, decoded.image, source)
            }
        };
        for (index, op) in pixel_ops.iter().enumerate().skip(start) {
            let (op, limits) = (*op, limits.clone());
            image = blocking(move || opossum_image::apply(image, &op, &limits)).await?;
            let done = index + 1;
            if done < pixel_ops.len() && raw::size(&image) <= self.config.max_intermediate_bytes {
                let prefix_key = self.intermediate_key(image_id, &chain.prefix(done), options);
                let body = raw::encode(&image, source);
                let entry = Entry::new(
                    body,
                    raw::MEDIA_TYPE,
                    Category::Intermediate,
                    Category::Intermediate.default_ttl(),
                    0,
                    (image.width(), image.height()),
                );
                self.hierarchy.put(&prefix_key, Arc::new(entry)).await;
            }
        }
        let chain = chain.clone();
        blocking(move || opossum_image::finish(&image, &chain, source, &limits)).await
    }
}

enum Failure {
    Image(ImageError),
    Pipeline(PipelineError),
}

/// CPU work runs on the blocking pool, never on the async threads; inside
/// [`in_background`], on the low-priority background pool.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ImageError> + Send + 'static,
) -> Result<T, Failure> {
    if background::is_background() {
        return match background::run(work).await {
            Ok(result) => result.map_err(Failure::Image),
            Err(e) => Err(Failure::Pipeline(PipelineError::Internal(e))),
        };
    }
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result.map_err(Failure::Image),
        Err(e) => Err(Failure::Pipeline(PipelineError::Internal(format!(
            "image task failed: {e}"
        )))),
    }
}

fn answer(key: CacheKey, entry: Arc<Entry>, source: Source) -> Result<Response, PipelineError> {
    if entry.category == Category::Error {
        return Err(PipelineError::BadInput {
            message: String::from_utf8_lossy(&entry.body).into_owned(),
            origin: source,
        });
    }
    Ok(Response { key, entry, source })
}
