//! Usage analytics: what was asked for, which tier answered, and how much it cost, kept in
//! Redis with memory bounded however long the fleet runs (or, in embedded mode, in the one
//! process's memory with the same bounds: [`MemoryStore`], `memory.rs`).
//!
//! - [`Access`]: one answered request (image, variant, category, source, bytes, time).
//! - [`Recorder`]: what workers and the origin call for every request. It aggregates in process
//!   and flushes once per `flush_interval` (one pipeline per flush, not a round trip per
//!   request), so recording costs a hash-map update on the request path. A crash loses at most
//!   one interval of analytics, never a job.
//! - [`Analytics`]: the queries: top images, top variants (optionally weighted by an
//!   exponential decay), per-bucket counts (the traffic profile) and hit rates per tier and
//!   category over a window.
//!
//! # Layout and bounds
//!
//! Time is cut into buckets (`bucket`, one hour by default); bucket `S` (its start in Unix
//! seconds) has three keys, each with a TTL of `retention` plus one bucket:
//!
//! - `{prefix}:stats:{S}:images`: a sorted set, image id -> requests;
//! - `{prefix}:stats:{S}:variants`: a sorted set, variant (JSON `[image, chain, key, options]`)
//!   -> requests;
//! - `{prefix}:stats:{S}:counts`: a hash: `requests`, `bytes`, `r:{category}:{source}` (count),
//!   `t:{category}:{source}` (milliseconds spent), and `s:{k}` for the 60 sub-buckets (minutes
//!   of an hour bucket) that make the fine traffic profile.
//!
//! One more key samples the request stream for miss-ratio curves (`mrc.rs`, SHARDS): the
//! stream `{prefix}:stats:sample` holds key, bytes and time of the requests whose key hashes
//! into the `sample_rate` share of the key space (the same keys on every process), trimmed to
//! about `sample_cap` entries and expiring with the buckets.
//!
//! Counters rather than a sketch: the queries need exact per-tier counts and ranked members,
//! and Redis sorted sets give both with `ZUNIONSTORE` doing the window arithmetic server side
//! (including the decay weights). The sorted sets are bounded the way heavy-hitter summaries
//! are: when one grows past twice its cap (`top_images`, `top_variants`) it is cut back to the
//! cap's highest counts, so the head is exact and a newcomer has a full cap of room to rise
//! before the next cut. Memory is therefore at most `retention / bucket` buckets of
//! `2 * (top_images + top_variants)` members plus a fixed-size hash (about 150 MB with the
//! defaults and 200-byte members; far less in practice).
#![cfg_attr(not(test), warn(unused_crate_dependencies))]

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use opossum_ops::Category;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};

mod memory;
mod mrc;
mod report;

pub use memory::MemoryStore;
pub use mrc::{MissRatioCurve, sampled};

pub use report::{BucketCounts, CategoryRates, HitRates, Report, SourceCounts, TierRate, TopImage};

/// Who answered a request, as the analytics count it: a tier, a concurrent identical
/// request, a computation, or an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Answer {
    /// the memory tier
    Memory,
    /// the disk tier
    Disk,
    /// the Redis tier
    Redis,
    /// a concurrent identical request's computation
    Coalesced,
    /// computed for this request
    Computed,
    /// the request failed (bad input)
    Error,
}

impl Answer {
    /// Every answer, in the order a request meets them.
    pub const ALL: [Answer; 6] = [
        Answer::Memory,
        Answer::Disk,
        Answer::Redis,
        Answer::Coalesced,
        Answer::Computed,
        Answer::Error,
    ];

    /// The name the stored counters and reports use.
    pub fn name(self) -> &'static str {
        match self {
            Answer::Memory => "memory",
            Answer::Disk => "disk",
            Answer::Redis => "redis",
            Answer::Coalesced => "coalesced",
            Answer::Computed => "computed",
            Answer::Error => "error",
        }
    }
}

/// Sub-buckets per bucket in the fine traffic profile.
pub const SUB_BUCKETS: u64 = 60;

/// Accesses held in process before new ones are dropped (Redis unreachable for long).
const MAX_PENDING: usize = 200_000;

/// Cuts a sorted set back to its `ARGV[1]` highest members once it holds twice that many.
const TRIM_SCRIPT: &str = r#"
local cap = tonumber(ARGV[1])
if redis.call('ZCARD', KEYS[1]) > 2 * cap then
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(cap + 1))
end
return 0
"#;

/// Failures of analytics queries.
#[derive(Debug, thiserror::Error)]
pub enum AnalyticsError {
    /// Redis failed or is unreachable.
    #[error("analytics: redis: {0}")]
    Redis(#[from] redis::RedisError),
}

/// Analytics settings.
#[derive(Debug, Clone, PartialEq)]
pub struct AnalyticsConfig {
    /// key prefix (the fleet's prefix)
    pub prefix: String,
    /// bucket length; buckets are aligned to multiples of it since the Unix epoch
    pub bucket: Duration,
    /// how long a bucket is kept
    pub retention: Duration,
    /// images kept per bucket (the cut keeps the highest counts)
    pub top_images: usize,
    /// variants kept per bucket
    pub top_variants: usize,
    /// how often a recorder writes what it aggregated
    pub flush_interval: Duration,
    /// share of the key space whose requests are kept for miss-ratio curves (SHARDS)
    pub sample_rate: f64,
    /// most sampled requests kept (the stream is trimmed to about this many)
    pub sample_cap: usize,
}

impl AnalyticsConfig {
    /// The defaults under `prefix`: hourly buckets kept 72 hours, 5,000 images and 10,000
    /// variants per bucket, flushed every second.
    pub fn new(prefix: impl Into<String>) -> AnalyticsConfig {
        AnalyticsConfig {
            prefix: prefix.into(),
            bucket: Duration::from_secs(3600),
            retention: Duration::from_secs(72 * 3600),
            top_images: 5_000,
            top_variants: 10_000,
            flush_interval: Duration::from_secs(1),
            sample_rate: 0.1,
            sample_cap: 200_000,
        }
    }

    /// The settings of the configuration file's `analytics` section, under `prefix`.
    pub fn from_settings(
        prefix: impl Into<String>,
        settings: &opossum_config::AnalyticsSettings,
    ) -> AnalyticsConfig {
        AnalyticsConfig {
            bucket: settings.bucket.max(Duration::from_secs(1)),
            retention: settings.retention,
            top_images: settings.top_images.max(1),
            top_variants: settings.top_variants.max(1),
            sample_rate: settings.sample_rate,
            sample_cap: settings.sample_cap,
            ..AnalyticsConfig::new(prefix)
        }
    }

    fn bucket_ms(&self) -> u64 {
        (self.bucket.as_millis() as u64).max(1000)
    }

    /// The start (Unix milliseconds) of the bucket holding `at_ms`.
    pub fn bucket_start(&self, at_ms: u64) -> u64 {
        at_ms - at_ms % self.bucket_ms()
    }

    /// Bucket starts covering `window` up to and including the bucket of `now_ms`, oldest first.
    pub fn buckets_in(&self, now_ms: u64, window: Duration) -> Vec<u64> {
        let step = self.bucket_ms();
        let last = self.bucket_start(now_ms);
        let count = (window.as_millis() as u64).div_ceil(step).max(1);
        (0..count)
            .rev()
            .filter_map(|back| last.checked_sub(back * step))
            .collect()
    }

    fn key(&self, start_ms: u64, what: &str) -> String {
        format!("{}:stats:{}:{what}", self.prefix, start_ms / 1000)
    }

    /// The stream of sampled requests (SHARDS).
    pub fn sample_key(&self) -> String {
        format!("{}:stats:sample", self.prefix)
    }
}

/// One variant of one image: what a warm job needs to ask for it again.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Variant {
    /// the image
    pub image_id: String,
    /// the normalised chain (presets expanded)
    pub chain: String,
    /// the cache key it had when recorded
    pub key: String,
    /// request options that took part in the key
    pub options: BTreeMap<String, String>,
}

impl Variant {
    /// The sorted-set member: compact JSON `[image, chain, key]` or `[image, chain, key, options]`.
    pub fn member(&self) -> String {
        let json = if self.options.is_empty() {
            serde_json::to_string(&(&self.image_id, &self.chain, &self.key))
        } else {
            serde_json::to_string(&(&self.image_id, &self.chain, &self.key, &self.options))
        };
        json.unwrap_or_default()
    }

    /// The variant a member names; `None` for anything else.
    pub fn from_member(member: &str) -> Option<Variant> {
        if let Ok((image_id, chain, key)) = serde_json::from_str::<(String, String, String)>(member)
        {
            return Some(Variant {
                image_id,
                chain,
                key,
                options: BTreeMap::new(),
            });
        }
        let (image_id, chain, key, options) = serde_json::from_str(member).ok()?;
        Some(Variant {
            image_id,
            chain,
            key,
            options,
        })
    }
}

/// One answered request.
#[derive(Debug, Clone, PartialEq)]
pub struct Access {
    /// the variant asked for
    pub variant: Variant,
    /// its cache category
    pub category: Category,
    /// who answered
    pub answer: Answer,
    /// bytes returned
    pub bytes: u64,
    /// time spent answering
    pub duration_ms: f64,
    /// when (Unix milliseconds)
    pub at_ms: u64,
}

/// Where analytics are kept: Redis, shared by the fleet (the layout in the crate
/// documentation), or this process's memory in embedded mode, where one process is the whole
/// fleet. Both implement one backend trait; the query scenario in `tests/analytics.rs` runs
/// against both.
#[derive(Clone)]
pub struct Store(Arc<dyn Backend>);

impl From<ConnectionManager> for Store {
    fn from(connection: ConnectionManager) -> Store {
        Store(Arc::new(RedisStore(connection)))
    }
}

impl From<MemoryStore> for Store {
    fn from(store: MemoryStore) -> Store {
        Store(Arc::new(store))
    }
}

/// What a store does: write a batch, rank members over weighted buckets, read counters and
/// the sampled stream.
#[async_trait::async_trait]
pub(crate) trait Backend: Send + Sync {
    /// Adds `pending` to the buckets, bounded and expiring per `config`.
    async fn write(
        &self,
        config: &AnalyticsConfig,
        pending: &Pending,
    ) -> Result<(), AnalyticsError>;
    /// The `n` highest members of `what` over `starts`, each bucket's counts times its weight.
    async fn top(
        &self,
        config: &AnalyticsConfig,
        what: &str,
        starts: &[u64],
        weights: &[f64],
        n: usize,
    ) -> Result<Vec<(String, f64)>, AnalyticsError>;
    /// The counter hash of each bucket in `starts`.
    async fn counts(
        &self,
        config: &AnalyticsConfig,
        starts: &[u64],
    ) -> Result<Vec<HashMap<String, f64>>, AnalyticsError>;
    /// The sampled requests (key, bytes) from `since_ms` on, oldest first.
    async fn samples(
        &self,
        config: &AnalyticsConfig,
        since_ms: u64,
    ) -> Result<Vec<(String, u64)>, AnalyticsError>;
}

/// The Redis store.
struct RedisStore(ConnectionManager);

#[async_trait::async_trait]
impl Backend for RedisStore {
    async fn write(
        &self,
        config: &AnalyticsConfig,
        pending: &Pending,
    ) -> Result<(), AnalyticsError> {
        let ttl_secs = (config.retention + config.bucket).as_secs().max(1);
        let mut pipe = redis::pipe();
        for (start, delta) in &pending.buckets {
            let images = config.key(*start, "images");
            let variants = config.key(*start, "variants");
            let counts = config.key(*start, "counts");
            for (key, members, cap) in [
                (&images, &delta.images, config.top_images),
                (&variants, &delta.variants, config.top_variants),
            ] {
                for (member, count) in members {
                    pipe.cmd("ZINCRBY")
                        .arg(key)
                        .arg(*count)
                        .arg(member)
                        .ignore();
                }
                pipe.cmd("EVAL")
                    .arg(TRIM_SCRIPT)
                    .arg(1)
                    .arg(key)
                    .arg(cap)
                    .ignore();
            }
            for (field, count) in &delta.counts {
                pipe.cmd("HINCRBY")
                    .arg(&counts)
                    .arg(field)
                    .arg(*count)
                    .ignore();
            }
            for (field, ms) in &delta.times {
                pipe.cmd("HINCRBYFLOAT")
                    .arg(&counts)
                    .arg(field)
                    .arg(*ms)
                    .ignore();
            }
            for key in [&images, &variants, &counts] {
                pipe.cmd("EXPIRE").arg(key).arg(ttl_secs).ignore();
            }
        }
        if !pending.samples.is_empty() {
            let stream = config.sample_key();
            for (key, bytes, at_ms) in &pending.samples {
                pipe.cmd("XADD")
                    .arg(&stream)
                    .arg("MAXLEN")
                    .arg("~")
                    .arg(config.sample_cap.max(1))
                    .arg("*")
                    .arg("k")
                    .arg(key)
                    .arg("b")
                    .arg(*bytes)
                    .arg("t")
                    .arg(*at_ms)
                    .ignore();
            }
            pipe.cmd("EXPIRE").arg(&stream).arg(ttl_secs).ignore();
        }
        let mut connection = self.0.clone();
        pipe.query_async::<()>(&mut connection).await?;
        Ok(())
    }

    async fn top(
        &self,
        config: &AnalyticsConfig,
        what: &str,
        starts: &[u64],
        weights: &[f64],
        n: usize,
    ) -> Result<Vec<(String, f64)>, AnalyticsError> {
        let scratch = format!("{}:stats:scratch:{:016x}", config.prefix, scratch_id());
        let mut union = redis::cmd("ZUNIONSTORE");
        union.arg(&scratch).arg(starts.len());
        for start in starts {
            union.arg(config.key(*start, what));
        }
        union.arg("WEIGHTS");
        for weight in weights {
            union.arg(*weight);
        }
        let mut connection = self.0.clone();
        let (members,): (Vec<(String, f64)>,) = redis::pipe()
            .atomic()
            .add_command(union)
            .ignore()
            .cmd("ZRANGE")
            .arg(&scratch)
            .arg(0)
            .arg(n as i64 - 1)
            .arg("REV")
            .arg("WITHSCORES")
            .cmd("DEL")
            .arg(&scratch)
            .ignore()
            .query_async(&mut connection)
            .await?;
        Ok(members)
    }

    async fn counts(
        &self,
        config: &AnalyticsConfig,
        starts: &[u64],
    ) -> Result<Vec<HashMap<String, f64>>, AnalyticsError> {
        let mut pipe = redis::pipe();
        for start in starts {
            pipe.cmd("HGETALL").arg(config.key(*start, "counts"));
        }
        Ok(pipe.query_async(&mut self.0.clone()).await?)
    }

    async fn samples(
        &self,
        config: &AnalyticsConfig,
        since_ms: u64,
    ) -> Result<Vec<(String, u64)>, AnalyticsError> {
        let mut connection = self.0.clone();
        let stream = config.sample_key();
        let mut out = Vec::new();
        let mut start = format!("{since_ms}-0");
        loop {
            let page: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
                .arg(&stream)
                .arg(&start)
                .arg("+")
                .arg("COUNT")
                .arg(10_000)
                .query_async(&mut connection)
                .await?;
            let Some((last, _)) = page.last() else { break };
            start = format!("({last}");
            let full = page.len() == 10_000;
            for (_, fields) in page {
                let field = |name: &str| {
                    fields
                        .iter()
                        .find(|(k, _)| k == name)
                        .map(|(_, v)| v.clone())
                };
                if let (Some(key), Some(bytes)) = (field("k"), field("b")) {
                    out.push((key, bytes.parse().unwrap_or(0)));
                }
            }
            if !full {
                break;
            }
        }
        Ok(out)
    }
}

#[async_trait::async_trait]
impl Backend for MemoryStore {
    async fn write(
        &self,
        config: &AnalyticsConfig,
        pending: &Pending,
    ) -> Result<(), AnalyticsError> {
        self.apply(config, pending);
        Ok(())
    }

    async fn top(
        &self,
        _config: &AnalyticsConfig,
        what: &str,
        starts: &[u64],
        weights: &[f64],
        n: usize,
    ) -> Result<Vec<(String, f64)>, AnalyticsError> {
        Ok(MemoryStore::top(self, what, starts, weights, n))
    }

    async fn counts(
        &self,
        _config: &AnalyticsConfig,
        starts: &[u64],
    ) -> Result<Vec<HashMap<String, f64>>, AnalyticsError> {
        Ok(MemoryStore::counts(self, starts))
    }

    async fn samples(
        &self,
        _config: &AnalyticsConfig,
        since_ms: u64,
    ) -> Result<Vec<(String, u64)>, AnalyticsError> {
        Ok(MemoryStore::samples(self, since_ms))
    }
}

/// A batch's map: foldhash (hashbrown's own default, seeded per process) instead of std's
/// SipHash, which was most of the cost of recording a request. Its keys come from requests,
/// but a batch is bounded (`MAX_PENDING`) and the seed is random, so collisions cannot be
/// planned.
pub(crate) type BatchMap<V> = HashMap<String, V, foldhash::fast::RandomState>;

/// Adds `by` to `map[key]`, allocating the key only when it is new.
fn bump<V: Copy + std::ops::AddAssign>(map: &mut BatchMap<V>, key: &str, by: V) {
    match map.get_mut(key) {
        Some(value) => *value += by,
        None => {
            map.insert(key.to_string(), by);
        }
    }
}

#[derive(Default)]
pub(crate) struct BucketDelta {
    pub(crate) images: BatchMap<u64>,
    /// by member
    pub(crate) variants: BatchMap<u64>,
    /// cache key -> member, so a variant's member is serialised once per batch
    members: BatchMap<String>,
    pub(crate) counts: BatchMap<i64>,
    pub(crate) times: BatchMap<f64>,
}

#[derive(Default)]
pub(crate) struct Pending {
    pub(crate) buckets: HashMap<u64, BucketDelta>,
    accesses: usize,
    /// sampled requests: key, bytes, time
    pub(crate) samples: Vec<(String, u64, u64)>,
}

struct RecorderInner {
    config: AnalyticsConfig,
    store: Store,
    pending: Mutex<Pending>,
    recorded: AtomicU64,
    dropped: AtomicU64,
    flush_lock: tokio::sync::Mutex<()>,
}

/// Records accesses; cheap to clone. See the crate documentation for what it writes.
#[derive(Clone)]
pub struct Recorder {
    inner: Arc<RecorderInner>,
}

impl Recorder {
    /// A recorder into `store` (a Redis connection or a [`MemoryStore`]) that flushes every
    /// `config.flush_interval` from a background task (which ends when the last clone is
    /// dropped). Must be called inside a tokio runtime.
    pub fn start(config: AnalyticsConfig, store: impl Into<Store>) -> Recorder {
        let interval = config.flush_interval;
        let inner = Arc::new(RecorderInner {
            config,
            store: store.into(),
            pending: Mutex::new(Pending::default()),
            recorded: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            flush_lock: tokio::sync::Mutex::new(()),
        });
        let weak: Weak<RecorderInner> = Arc::downgrade(&inner);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                let Some(inner) = weak.upgrade() else { break };
                Recorder { inner }.flush().await;
            }
        });
        Recorder { inner }
    }

    /// Adds one access to the next flush. Never blocks on I/O, and allocates only for what
    /// this batch has not seen yet (it runs on every answer the origin gives).
    pub fn record(&self, access: &Access) {
        use std::fmt::Write as _;
        let config = &self.inner.config;
        let start = config.bucket_start(access.at_ms);
        let sub = (access.at_ms - start) * SUB_BUCKETS / config.bucket_ms();
        let key = access.variant.key.as_str();
        let sample = !key.is_empty() && mrc::sampled(key, config.sample_rate);
        let mut field = String::with_capacity(64);
        let Ok(mut guard) = self.inner.pending.lock() else {
            return;
        };
        let pending = &mut *guard;
        if pending.accesses >= MAX_PENDING {
            self.inner.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        pending.accesses += 1;
        let delta = pending.buckets.entry(start).or_default();
        bump(&mut delta.images, &access.variant.image_id, 1);
        // The member (compact JSON) is a function of the cache key: made once per batch.
        match delta.members.get(key).filter(|_| !key.is_empty()) {
            Some(member) => bump(&mut delta.variants, member, 1),
            None => {
                let member = access.variant.member();
                bump(&mut delta.variants, &member, 1);
                if !key.is_empty() {
                    delta.members.insert(key.to_string(), member);
                }
            }
        }
        bump(&mut delta.counts, "requests", 1);
        bump(&mut delta.counts, "bytes", access.bytes as i64);
        let class = |field: &mut String, prefix: &str| {
            field.clear();
            let _ = write!(
                field,
                "{prefix}:{}:{}",
                access.category.name(),
                access.answer.name()
            );
        };
        class(&mut field, "r");
        bump(&mut delta.counts, &field, 1);
        class(&mut field, "t");
        bump(&mut delta.times, &field, access.duration_ms);
        field.clear();
        let _ = write!(field, "s:{sub}");
        bump(&mut delta.counts, &field, 1);
        if sample {
            pending
                .samples
                .push((key.to_string(), access.bytes, access.at_ms));
        }
    }

    /// Accesses recorded and flushed to the store so far.
    pub fn recorded(&self) -> u64 {
        self.inner.recorded.load(Ordering::Relaxed)
    }

    /// Accesses lost (Redis unreachable while too many were pending, or a failed flush).
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    /// Writes everything aggregated so far: one pipeline. A failure is logged and the batch
    /// counted as dropped; analytics never fail a request.
    pub async fn flush(&self) {
        let _one_at_a_time = self.inner.flush_lock.lock().await;
        let pending = match self.inner.pending.lock() {
            Ok(mut pending) => std::mem::take(&mut *pending),
            Err(_) => return,
        };
        if pending.accesses == 0 {
            return;
        }
        match self.inner.store.0.write(&self.inner.config, &pending).await {
            Ok(()) => {
                self.inner
                    .recorded
                    .fetch_add(pending.accesses as u64, Ordering::Relaxed);
            }
            Err(e) => {
                self.inner
                    .dropped
                    .fetch_add(pending.accesses as u64, Ordering::Relaxed);
                tracing::warn!(error = %e, accesses = pending.accesses, "analytics flush failed; batch dropped");
            }
        }
    }
}

/// Queries over recorded analytics.
#[derive(Clone)]
pub struct Analytics {
    config: AnalyticsConfig,
    store: Store,
}

impl Analytics {
    /// Queries under `config` on `store` (a Redis connection or a [`MemoryStore`]).
    pub fn new(config: AnalyticsConfig, store: impl Into<Store>) -> Analytics {
        Analytics {
            config,
            store: store.into(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &AnalyticsConfig {
        &self.config
    }

    /// Sums the `what` sorted sets of the buckets in `window` (each weighted by `weight(age)`,
    /// age in buckets, 0 for the newest) and returns the `n` highest members.
    async fn top(
        &self,
        what: &str,
        now_ms: u64,
        window: Duration,
        n: usize,
        weight: impl Fn(u64) -> f64,
    ) -> Result<Vec<(String, f64)>, AnalyticsError> {
        let starts = self.config.buckets_in(now_ms, window);
        if n == 0 || starts.is_empty() {
            return Ok(Vec::new());
        }
        let newest = starts.len() as u64 - 1;
        let weights: Vec<f64> = (0..starts.len())
            .map(|index| weight(newest - index as u64))
            .collect();
        self.store
            .0
            .top(&self.config, what, &starts, &weights, n)
            .await
    }

    /// The `n` most requested images in `window` before `now_ms`.
    pub async fn top_images(
        &self,
        now_ms: u64,
        window: Duration,
        n: usize,
    ) -> Result<Vec<(String, f64)>, AnalyticsError> {
        self.top("images", now_ms, window, n, |_| 1.0).await
    }

    /// The `n` most requested variants in `window` before `now_ms`, with request counts.
    pub async fn top_variants(
        &self,
        now_ms: u64,
        window: Duration,
        n: usize,
    ) -> Result<Vec<(Variant, f64)>, AnalyticsError> {
        let members = self.top("variants", now_ms, window, n, |_| 1.0).await?;
        Ok(parse_variants(members))
    }

    /// The `n` variants with the highest exponentially decayed request counts: a bucket
    /// `age` buckets old counts `2^(-age * bucket / half_life)`.
    pub async fn decayed_variants(
        &self,
        now_ms: u64,
        window: Duration,
        half_life: Duration,
        n: usize,
    ) -> Result<Vec<(Variant, f64)>, AnalyticsError> {
        let ratio = self.config.bucket.as_secs_f64() / half_life.as_secs_f64().max(1e-3);
        let members = self
            .top("variants", now_ms, window, n, |age| {
                (-(age as f64) * ratio).exp2()
            })
            .await?;
        Ok(parse_variants(members))
    }

    /// The counters of every bucket in `window`, oldest first (empty buckets included).
    pub async fn buckets(
        &self,
        now_ms: u64,
        window: Duration,
    ) -> Result<Vec<BucketCounts>, AnalyticsError> {
        let starts = self.config.buckets_in(now_ms, window);
        let maps = self.store.0.counts(&self.config, &starts).await?;
        Ok(starts
            .iter()
            .zip(maps)
            .map(|(start, fields)| BucketCounts::from_fields(*start, &fields))
            .collect())
    }

    /// The sampled requests (key, bytes) from `since_ms` on, oldest first, read in pages.
    pub async fn samples(&self, since_ms: u64) -> Result<Vec<(String, u64)>, AnalyticsError> {
        self.store.0.samples(&self.config, since_ms).await
    }

    /// The miss-ratio curve of the requests in `window` (whole buckets, so the SHARDS-adj
    /// correction counts the same requests the sample covers).
    pub async fn miss_ratio_curve(
        &self,
        now_ms: u64,
        window: Duration,
    ) -> Result<MissRatioCurve, AnalyticsError> {
        let buckets = self.buckets(now_ms, window).await?;
        let since_ms = buckets.first().map_or(now_ms, |b| b.start_ms);
        let requests: u64 = buckets.iter().map(|b| b.requests).sum();
        let samples = self.samples(since_ms).await?;
        Ok(MissRatioCurve::from_trace(
            samples.iter().map(|(k, b)| (k.as_str(), *b)),
            self.config.sample_rate,
            Some(requests),
        ))
    }

    /// Everything `opossum stats top` prints: the `n` top images with up to `per_image` of
    /// their top variants, the traffic profile and the hit rates over `window`.
    pub async fn report(
        &self,
        now_ms: u64,
        window: Duration,
        n: usize,
        per_image: usize,
    ) -> Result<Report, AnalyticsError> {
        let images = self.top_images(now_ms, window, n).await?;
        let variants = self
            .top_variants(now_ms, window, self.config.top_variants)
            .await?;
        let buckets = self.buckets(now_ms, window).await?;
        Ok(Report::new(
            window,
            self.config.bucket,
            images,
            variants,
            per_image,
            buckets,
        ))
    }
}

fn parse_variants(members: Vec<(String, f64)>) -> Vec<(Variant, f64)> {
    members
        .into_iter()
        .filter_map(|(member, score)| Some((Variant::from_member(&member)?, score)))
        .collect()
}

/// A name for a query's scratch key, unique across processes and calls (time, pid, counter).
fn scratch_id() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    now_ms.rotate_left(20) ^ (u64::from(std::process::id()) << 32) ^ n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_round_trip_through_members() {
        let mut variant = Variant {
            image_id: "photos/a \"b\".jpg".into(),
            chain: "thumbnail:200".into(),
            key: "opossum:abc:def".into(),
            options: BTreeMap::new(),
        };
        assert_eq!(
            Variant::from_member(&variant.member()),
            Some(variant.clone())
        );
        variant.options.insert("dpr".into(), "2".into());
        assert_eq!(Variant::from_member(&variant.member()), Some(variant));
        assert_eq!(Variant::from_member("not json"), None);
    }

    #[test]
    fn buckets_cover_the_window() {
        let config = AnalyticsConfig::new("p");
        let hour = 3_600_000;
        let now = 10 * hour + 5;
        assert_eq!(config.bucket_start(now), 10 * hour);
        assert_eq!(
            config.buckets_in(now, Duration::from_secs(3 * 3600)),
            vec![8 * hour, 9 * hour, 10 * hour]
        );
        assert_eq!(config.buckets_in(now, Duration::ZERO), vec![10 * hour]);
        assert_eq!(config.key(10 * hour, "images"), "p:stats:36000:images");
    }
}
