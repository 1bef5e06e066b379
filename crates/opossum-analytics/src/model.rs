//! What the analytics count: who answered ([`Answer`]), one request ([`Access`]) of one
//! [`Variant`], and the settings that lay the buckets out ([`AnalyticsConfig`]).

use std::collections::BTreeMap;
use std::time::Duration;

use opossum_ops::Category;
use serde::{Deserialize, Serialize};

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

    pub(crate) fn bucket_ms(&self) -> u64 {
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

    /// `{prefix:stats}`: every analytics key carries this one Redis Cluster hash tag, so the
    /// flush pipeline and the weighted `ZUNIONSTORE` over buckets run in one slot (analytics are
    /// a few megabytes; one shard holds them).
    pub(crate) fn stats_tag(&self) -> String {
        format!("{{{}:stats}}", self.prefix)
    }

    pub(crate) fn key(&self, start_ms: u64, what: &str) -> String {
        format!("{}:{}:{what}", self.stats_tag(), start_ms / 1000)
    }

    /// The stream of sampled requests (SHARDS).
    pub fn sample_key(&self) -> String {
        format!("{}:sample", self.stats_tag())
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
