//! [`Recorder`]: aggregates accesses in process and flushes them to the store once per
//! interval, so recording costs a hash-map update on the request path.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use crate::store::Store;
use crate::{Access, AnalyticsConfig, SUB_BUCKETS, mrc};

/// Accesses held in process before new ones are dropped (Redis unreachable for long).
const MAX_PENDING: usize = 200_000;

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

impl Pending {
    /// Adds one access to this batch.
    pub(crate) fn add(&mut self, config: &AnalyticsConfig, access: &Access) {
        use std::fmt::Write as _;
        let start = config.bucket_start(access.at_ms);
        let sub = (access.at_ms - start) * SUB_BUCKETS / config.bucket_ms();
        let key = access.variant.key.as_str();
        let sample = !key.is_empty() && mrc::sampled(key, config.sample_rate);
        let mut field = String::with_capacity(64);
        self.accesses += 1;
        let delta = self.buckets.entry(start).or_default();
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
            self.samples
                .push((key.to_string(), access.bytes, access.at_ms));
        }
    }
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
        let Ok(mut pending) = self.inner.pending.lock() else {
            return;
        };
        if pending.accesses >= MAX_PENDING {
            self.inner.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        pending.add(&self.inner.config, access);
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
