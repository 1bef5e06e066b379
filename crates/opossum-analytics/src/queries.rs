//! [`Analytics`]: the queries over what was recorded (top images and variants, bucket counts,
//! hit rates, the sampled stream).

use std::time::Duration;

use crate::store::Store;
use crate::{AnalyticsConfig, AnalyticsError, BucketCounts, MissRatioCurve, Report, Variant};

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
