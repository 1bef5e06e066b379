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
#![cfg_attr(not(test), warn(unused_crate_dependencies))]

mod background;
mod error;
mod flight;
mod lease;
mod presets;
mod raw;
mod resources;

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opossum_cache::{Entry, Hierarchy, TierKind};
use opossum_image::{ImageError, Limits, Overlays, Picture};
use opossum_ops::{
    CacheKey, Category, Chain, Options, TtlInputs, adaptive_ttl, derive_key_with_chain,
};

pub use error::{Cause, ErrorKind, PipelineError};
pub use flight::SingleFlight;
pub use lease::Leases;
pub use presets::{PRESET_MEDIA_TYPE, PresetStore};
pub use resources::{Resources, load_watermarks};

/// Media type of cached error results.
pub const ERROR_MEDIA_TYPE: &str = "text/plain; charset=utf-8";

/// Where an answer came from (events and JSON call it `source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provenance {
    /// a cache tier
    Tier(TierKind),
    /// computed by this call
    Computed,
    /// computed by a concurrent identical request (in this process or another)
    Coalesced,
}

impl Provenance {
    /// Every provenance, tiers in read order first.
    pub const ALL: [Provenance; 5] = [
        Provenance::Tier(TierKind::Memory),
        Provenance::Tier(TierKind::Disk),
        Provenance::Tier(TierKind::Redis),
        Provenance::Computed,
        Provenance::Coalesced,
    ];

    /// `memory`, `disk`, `redis`, `computed` or `coalesced`.
    pub fn name(self) -> &'static str {
        match self {
            Provenance::Tier(tier) => tier.name(),
            Provenance::Computed => "computed",
            Provenance::Coalesced => "coalesced",
        }
    }

    /// The provenance named `name` ([`Provenance::name`]).
    pub fn from_name(name: &str) -> Option<Provenance> {
        Provenance::ALL.into_iter().find(|p| p.name() == name)
    }
}

impl serde::Serialize for Provenance {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for Provenance {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Provenance, D::Error> {
        let name = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Provenance::from_name(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown source `{name}`")))
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
    pub provenance: Provenance,
}

/// How [`Pipeline::respond`] looks the key up before computing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// a user request nobody has looked up yet: look up, counting the hit or miss
    Counted,
    /// look up without counting: a warm job (so the tiers' hit rates stay those of user
    /// requests, as the analytics count user requests only), or a job whose producer already
    /// looked the key up and counted its miss (the HTTP origin)
    Uncounted,
}

/// What a caller says once about a request: how to look the key up, how fresh a cached answer
/// must be, and at which CPU priority a miss is computed. A user request is
/// [`Mode::REQUEST`]; a warm job is [`Mode::warm`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode {
    /// how the first lookup counts
    pub lookup: Lookup,
    /// a cached answer expiring before this (Unix milliseconds) is a miss: how warming
    /// refreshes a variant that is about to expire; 0 takes any fresh answer
    pub fresh_until_ms: u64,
    /// compute on the background pool at the lowest CPU priority, so user work is served
    /// first
    pub background: bool,
}

impl Mode {
    /// A user request nobody looked up yet.
    pub const REQUEST: Mode = Mode {
        lookup: Lookup::Counted,
        fresh_until_ms: 0,
        background: false,
    };

    /// A user request whose producer already looked the key up and counted the miss.
    pub const LOOKED_UP: Mode = Mode {
        lookup: Lookup::Uncounted,
        ..Mode::REQUEST
    };

    /// Warming: uncounted, fresh until `fresh_until_ms`, at background priority.
    pub fn warm(fresh_until_ms: u64) -> Mode {
        Mode {
            lookup: Lookup::Uncounted,
            fresh_until_ms,
            background: true,
        }
    }
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
    /// how long a loaded watermark (its bytes and version) is reused before it is loaded again
    pub resource_ttl: Duration,
}

impl PipelineConfig {
    /// Settings for keys in `namespace` under `limits`, whose font set is part of the
    /// processing version ([`processing_version`]).
    pub fn new(namespace: &str, limits: Limits) -> PipelineConfig {
        PipelineConfig {
            namespace: namespace.to_string(),
            version: processing_version(&limits),
            limits,
            max_intermediate_bytes: 16 << 20,
            resource_ttl: Duration::from_secs(60),
        }
    }
}

impl Default for PipelineConfig {
    fn default() -> PipelineConfig {
        PipelineConfig::new("opossum", Limits::default())
    }
}

/// The processing version every key carries: the engine's own
/// ([`opossum_ops::PROCESSING_VERSION`]) and the identity of the font set SVG text is drawn
/// with, so processes with different fonts never share a key (they would store different
/// bytes under it). Every process derives keys with this one function.
pub fn processing_version(limits: &Limits) -> String {
    format!(
        "{}+fonts.{}",
        opossum_ops::PROCESSING_VERSION,
        limits.fonts.identity()
    )
}

type Shared = Result<(Arc<Entry>, Provenance), PipelineError>;

/// One request on its way through the miss path.
#[derive(Clone, Copy)]
struct Miss<'a> {
    key: &'a str,
    image_id: &'a str,
    chain: &'a Chain,
    watermarks: &'a [resources::Loaded],
    options: &'a Options,
    category: Category,
    fresh_until_ms: u64,
    background: bool,
}

/// Runs requests against a cache hierarchy.
pub struct Pipeline {
    hierarchy: Arc<Hierarchy>,
    config: PipelineConfig,
    leases: Option<Leases>,
    resources: Option<resources::ResourceCache>,
    in_flight: SingleFlight<Shared>,
    /// Background computations running here, by key, each with its priority: a user request
    /// that joins one raises it, so the steps left run at user priority and the user never
    /// waits on work the kernel starves on purpose (priority inversion).
    background_flights: Mutex<HashMap<String, Arc<AtomicBool>>>,
    /// how many background computations user requests raised
    raised: AtomicU64,
    /// whether user work is running or waiting (see [`Pipeline::yielding_to`])
    user_work: Option<UserWork>,
}

/// Says whether user work is running or waiting, in this process or the fleet: what a
/// background computation pauses for between its steps.
pub type UserWork = Arc<dyn Fn() -> bool + Send + Sync>;

/// Longest one step of a background computation waits for user work before it runs anyway,
/// so a steady stream of user work cannot starve warming forever.
pub const STEP_YIELD: Duration = Duration::from_secs(10);

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
            resources: None,
            in_flight: SingleFlight::default(),
            background_flights: Mutex::default(),
            raised: AtomicU64::new(0),
            user_work: None,
        }
    }

    /// The pipeline loading watermarks from `resources`, cached in its hierarchy as resource
    /// entries (without, a chain with a watermark is a bad request).
    pub fn with_resources(mut self, resources: Arc<dyn Resources>) -> Pipeline {
        let shared = resources::SharedTier {
            hierarchy: self.hierarchy.clone(),
            namespace: self.config.namespace.clone(),
            version: self.config.version.clone(),
        };
        self.resources = Some(resources::ResourceCache::new(
            resources,
            self.config.resource_ttl,
            Some(shared),
        ));
        self
    }

    /// The processing version in this pipeline's keys.
    pub fn version(&self) -> &str {
        &self.config.version
    }

    /// The hierarchy this pipeline reads and writes.
    pub fn hierarchy(&self) -> &Arc<Hierarchy> {
        &self.hierarchy
    }

    /// The chain with its watermarks' content versions pinned in (loading them if this process
    /// has not within `resource_ttl`): what a caller that derives the key itself (the origin's
    /// lookup) keys. A chain without a watermark comes back unchanged, with no I/O.
    pub async fn pin(&self, chain: &Chain) -> Result<Chain, PipelineError> {
        let (pinned, _) = resources::pin(self.resources.as_ref(), chain).await?;
        Ok(pinned.unwrap_or_else(|| chain.clone()))
    }

    /// The key of a request whose chain names no watermark (with one, the key depends on the
    /// watermark's content: [`Pipeline::respond`] pins it, and its [`Response`] carries the key).
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
            &self.config.limits.encoding,
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
        F: Future<Output = Result<Vec<u8>, PipelineError>>,
    {
        self.respond(image_id, chain, options, Mode::REQUEST, load)
            .await
    }

    /// [`Pipeline::run`] as `mode` says: the first lookup counted or not, a cached answer
    /// that expires before `mode.fresh_until_ms` treated as a miss, and a miss computed at
    /// user or background priority. On a miss: coalescing, lease, computation.
    pub async fn respond<L, F>(
        &self,
        image_id: &str,
        chain: &Chain,
        options: &Options,
        mode: Mode,
        load: L,
    ) -> Result<Response, PipelineError>
    where
        L: FnOnce() -> F,
        F: Future<Output = Result<Vec<u8>, PipelineError>>,
    {
        // Watermarks are part of the variant: their versions go into the key.
        let (pinned, watermarks) = resources::pin(self.resources.as_ref(), chain).await?;
        let chain = pinned.as_ref().unwrap_or(chain);
        let key = self.key(image_id, chain, options);
        let key_text = key.to_string();
        let Mode {
            lookup,
            fresh_until_ms,
            background,
        } = mode;
        let hit = match lookup {
            Lookup::Counted => self.hierarchy.get(&key_text, Category::of(chain)).await,
            Lookup::Uncounted => self.hierarchy.get_uncounted(&key_text).await,
        };
        if let Some(hit) = hit
            && hit.entry.expires_at_ms() >= fresh_until_ms
        {
            return answer(key, hit.entry, Provenance::Tier(hit.tier));
        }
        let category = Category::of(chain);
        let miss = Miss {
            key: &key_text,
            image_id,
            chain,
            watermarks: &watermarks,
            options,
            category,
            fresh_until_ms,
            background,
        };
        if !background {
            self.raise_priority(&key_text);
        }
        let (shared, led) = self
            .in_flight
            .run(&key_text, || self.compute_once(&miss, load))
            .await;
        let (entry, provenance) = shared?;
        let provenance = if led {
            provenance
        } else {
            Provenance::Coalesced
        };
        answer(key, entry, provenance)
    }

    /// Background computations pause before each step (decode, each operation, encode) while
    /// `user_work` says user work is running or waiting, up to [`STEP_YIELD`] a step: on a
    /// machine whose cores share execution units (hyperthreads) even a nice-19 thread slows a
    /// user's, so warm work runs only in the gaps, and a user job that arrives meanwhile waits
    /// behind one step at most, never a whole computation.
    pub fn yielding_to(mut self, user_work: UserWork) -> Pipeline {
        self.user_work = Some(user_work);
        self
    }

    /// One step of a computation: at user priority at once; at background priority after
    /// user work is done (or the step's wait is up, or a user request raised it).
    async fn step<T: Send + 'static>(
        &self,
        priority: &AtomicBool,
        work: impl FnOnce() -> Result<T, ImageError> + Send + 'static,
    ) -> Result<T, PipelineError> {
        if let Some(user_work) = &self.user_work {
            let started = Instant::now();
            while priority.load(Ordering::Relaxed) && user_work() && started.elapsed() < STEP_YIELD
            {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        blocking(priority, work).await
    }

    /// The priority a computation of `key` starts at: a background one is registered, so a
    /// user request that joins it can raise it ([`Pipeline::raise_priority`]).
    fn flight_priority(&self, key: &str, background: bool) -> Arc<AtomicBool> {
        let priority = Arc::new(AtomicBool::new(background));
        if background {
            let mut flights = self
                .background_flights
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            flights.insert(key.to_string(), priority.clone());
        }
        priority
    }

    /// A user request for `key`: a background computation of it running here finishes at user
    /// priority.
    fn raise_priority(&self, key: &str) {
        let flights = self
            .background_flights
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(priority) = flights.get(key)
            && priority.swap(false, Ordering::Relaxed)
        {
            self.raised.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// How many background (warm) computations a user request joined and raised to user
    /// priority in this process.
    pub fn raised_priorities(&self) -> u64 {
        self.raised.load(Ordering::Relaxed)
    }

    /// The leader's path: take the cross-process lease (or wait for its holder's result),
    /// then compute.
    async fn compute_once<L, F>(&self, miss: &Miss<'_>, load: L) -> Shared
    where
        L: FnOnce() -> F,
        F: Future<Output = Result<Vec<u8>, PipelineError>>,
    {
        let Miss {
            key,
            fresh_until_ms,
            ..
        } = *miss;
        // What another process finished while we waited counts only if it is fresh enough.
        let fresh = |hit: &opossum_cache::Hit| hit.entry.expires_at_ms() >= fresh_until_ms;
        let Some(leases) = &self.leases else {
            return self.compute(miss, load).await;
        };
        let started = Instant::now();
        let mut first_wait = true;
        loop {
            match leases.acquire(key, miss.background).await {
                Ok(Some(token)) => {
                    // Another process may have finished between our miss and the lease. The
                    // request's miss is already counted; re-checks are not lookups of their own.
                    if let Some(hit) = self.hierarchy.get_uncounted(key).await
                        && fresh(&hit)
                    {
                        leases.release(key, &token).await;
                        return Ok((hit.entry, Provenance::Coalesced));
                    }
                    let result = self.compute(miss, load).await;
                    leases.release(key, &token).await;
                    return result;
                }
                Ok(None) => {
                    // A warm computation in another process runs at the lowest priority: a
                    // user request computes its answer itself rather than wait on it.
                    if first_wait && !miss.background && leases.held_in_background(key).await {
                        return self.compute(miss, load).await;
                    }
                    first_wait = false;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    if let Some(hit) = self.hierarchy.get_uncounted(key).await
                        && fresh(&hit)
                    {
                        return Ok((hit.entry, Provenance::Coalesced));
                    }
                    if started.elapsed() > leases.ttl() + Duration::from_secs(1) {
                        tracing::warn!(key, "lease holder never delivered; computing");
                        return self.compute(miss, load).await;
                    }
                }
                Err(e) => {
                    tracing::warn!(key, error = %e, "lease unavailable; computing without it");
                    return self.compute(miss, load).await;
                }
            }
        }
    }

    async fn compute<L, F>(&self, miss: &Miss<'_>, load: L) -> Shared
    where
        L: FnOnce() -> F,
        F: Future<Output = Result<Vec<u8>, PipelineError>>,
    {
        let Miss {
            key,
            image_id,
            chain,
            watermarks,
            options,
            category,
            background,
            ..
        } = *miss;
        let started = Instant::now();
        let priority = self.flight_priority(key, background);
        let computed = self
            .compute_inner(image_id, chain, watermarks, options, &priority, load)
            .await;
        if background {
            let mut flights = self
                .background_flights
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if flights.get(key).is_some_and(|p| Arc::ptr_eq(p, &priority)) {
                flights.remove(key);
            }
        }
        match computed {
            Ok(output) => {
                let compute_ms = started.elapsed().as_millis() as u64;
                let inputs = TtlInputs {
                    storage_pressure: self.hierarchy.storage_pressure().await,
                    hits: 0,
                    compute_ms,
                };
                let mut entry = Entry::new(
                    output.bytes,
                    output.media_type,
                    category,
                    adaptive_ttl(category, inputs),
                    compute_ms,
                    (output.width, output.height),
                );
                entry.quality = output.quality;
                let entry = Arc::new(entry);
                self.hierarchy.put(key, entry.clone()).await;
                self.hierarchy.record_computed(category);
                Ok((entry, Provenance::Computed))
            }
            Err(Failed::Engine(error)) if error.kind() == ErrorKind::BadImage => {
                // Only the engine's verdicts on the image are remembered: a transient failure
                // (a render deadline on a loaded machine) or a bug must not answer for 5
                // minutes, and a failed load is the store's to answer again.
                let entry = Arc::new(Entry::new(
                    error.message().as_bytes().to_vec(),
                    ERROR_MEDIA_TYPE,
                    Category::Error,
                    Category::Error.default_ttl(),
                    started.elapsed().as_millis() as u64,
                    (0, 0),
                ));
                self.hierarchy.put(key, entry).await;
                self.hierarchy.record_computed(Category::Error);
                Err(error.answered_by(Provenance::Computed))
            }
            Err(Failed::Engine(error) | Failed::Load(error)) => Err(error),
        }
    }

    async fn compute_inner<L, F>(
        &self,
        image_id: &str,
        chain: &Chain,
        watermarks: &[resources::Loaded],
        options: &Options,
        priority: &AtomicBool,
        load: L,
    ) -> Result<opossum_image::Output, Failed>
    where
        L: FnOnce() -> F,
        F: Future<Output = Result<Vec<u8>, PipelineError>>,
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
        let (start, mut picture, original) = match resumed {
            Some((n, (image, original))) => (n, Picture::still(image), original),
            None => {
                let bytes = load().await.map_err(Failed::Load)?;
                let (chain, limits) = (chain.clone(), limits.clone());
                let decoded = self
                    .step(priority, move || {
                        opossum_image::decode_for(&bytes, &chain, &limits)
                    })
                    .await
                    .map_err(Failed::Engine)?;
                let (picture, original) = decoded.into_parts();
                (0, picture, original)
            }
        };
        let overlays = if watermarks.is_empty() {
            Arc::new(Overlays::none())
        } else {
            let (loaded, limits) = (watermarks.to_vec(), limits.clone());
            Arc::new(
                self.step(priority, move || {
                    let mut overlays = Overlays::none();
                    for watermark in loaded {
                        overlays.decode(watermark.id, &watermark.bytes, &limits)?;
                    }
                    Ok(overlays)
                })
                .await
                .map_err(Failed::Engine)?,
            )
        };
        for (index, op) in pixel_ops.iter().enumerate().skip(start) {
            let (op, limits, overlays) = (op.clone(), limits.clone(), overlays.clone());
            picture = self
                .step(priority, move || picture.apply(&op, &limits, &overlays))
                .await
                .map_err(Failed::Engine)?;
            let done = index + 1;
            // Intermediates are still images only: an animation's frames are many times the
            // bytes for the one step they would save.
            if done < pixel_ops.len()
                && !picture.is_animated()
                && picture.pixel_bytes() <= self.config.max_intermediate_bytes
            {
                let image = picture.first();
                let prefix_key = self.intermediate_key(image_id, &chain.prefix(done), options);
                let body = raw::encode(image, &original);
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
        self.step(priority, move || {
            opossum_image::finish(&picture, &chain, original, &limits)
        })
        .await
        .map_err(Failed::Engine)
    }
}

/// Where a computation failed: loading the original, or in the engine (whose verdicts on
/// the image are cached as error results).
enum Failed {
    Load(PipelineError),
    Engine(PipelineError),
}

/// CPU work runs on the blocking pool, never on the async threads; while `background` is
/// set (a warm computation nobody else waits for), on the low-priority background pool.
async fn blocking<T: Send + 'static>(
    background: &AtomicBool,
    work: impl FnOnce() -> Result<T, ImageError> + Send + 'static,
) -> Result<T, PipelineError> {
    if background.load(Ordering::Relaxed) {
        return match background::run(work).await {
            Ok(result) => result.map_err(PipelineError::from_image),
            Err(e) => Err(PipelineError::new(ErrorKind::Internal, e)),
        };
    }
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result.map_err(PipelineError::from_image),
        Err(e) => {
            Err(PipelineError::from_cause(ErrorKind::Internal, e).context("image task failed"))
        }
    }
}

fn answer(
    key: CacheKey,
    entry: Arc<Entry>,
    provenance: Provenance,
) -> Result<Response, PipelineError> {
    if entry.category == Category::Error {
        let message = String::from_utf8_lossy(&entry.body).into_owned();
        return Err(PipelineError::new(ErrorKind::BadImage, message).answered_by(provenance));
    }
    Ok(Response {
        key,
        entry,
        provenance,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_step_runs_on_the_pool_its_flag_says_when_it_starts() {
        let thread = || Ok(std::thread::current().name().unwrap_or("").to_string());
        let background = AtomicBool::new(true);
        let name = blocking(&background, thread).await.unwrap();
        assert!(name.starts_with("opossum-background-"), "{name}");
        // Raised (a user request joined): the next step runs on tokio's blocking pool.
        background.store(false, Ordering::Relaxed);
        let name = blocking(&background, thread).await.unwrap();
        assert!(!name.starts_with("opossum-background-"), "{name}");
    }
}
