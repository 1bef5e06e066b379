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
//! seconds) has three keys, each with a TTL of `retention` plus one bucket. Every key carries
//! the hash tag `{prefix:stats}`, so on a Redis Cluster they share one slot and the flush
//! pipeline and `ZUNIONSTORE` stay legal:
//!
//! - `{prefix:stats}:S:images`: a sorted set, image id -> requests;
//! - `{prefix:stats}:S:variants`: a sorted set, variant (JSON `[image, chain, key, options]`)
//!   -> requests;
//! - `{prefix:stats}:S:counts`: a hash: `requests`, `bytes`, `r:{category}:{source}` (count),
//!   `t:{category}:{source}` (milliseconds spent), and `s:{k}` for the 60 sub-buckets (minutes
//!   of an hour bucket) that make the fine traffic profile.
//!
//! One more key samples the request stream for miss-ratio curves (`mrc.rs`, SHARDS): the
//! stream `{prefix:stats}:sample` holds key, bytes and time of the requests whose key hashes
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

mod memory;
mod model;
mod mrc;
mod queries;
mod recorder;
mod report;
mod sizing;
mod store;

pub use memory::MemoryStore;
pub use model::{Access, AnalyticsConfig, Answer, SUB_BUCKETS, Variant};
pub use mrc::{MissRatioCurve, sampled};
pub use queries::Analytics;
pub use recorder::Recorder;
pub use report::{BucketCounts, CategoryRates, HitRates, Report, SourceCounts, TierRate, TopImage};
pub use sizing::Sizing;
pub use store::Store;

pub(crate) use recorder::Pending;

/// Failures of analytics queries.
#[derive(Debug, thiserror::Error)]
pub enum AnalyticsError {
    /// Redis failed or is unreachable.
    #[error("analytics: redis: {0}")]
    Redis(#[from] redis::RedisError),
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

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
        assert_eq!(config.key(10 * hour, "images"), "{p:stats}:36000:images");
    }
}
