//! What the queries return, and the arithmetic on it (no I/O): per-bucket counters, hit rates
//! per tier and category, and the report `opossum stats top` prints.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use crate::{SUB_BUCKETS, Variant};

/// Requests and time spent for one (category, source) pair.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct SourceCounts {
    /// requests
    pub requests: u64,
    /// milliseconds spent answering them
    pub ms: f64,
}

/// The counters of one bucket.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BucketCounts {
    /// the bucket's start (Unix milliseconds)
    pub start_ms: u64,
    /// requests answered
    pub requests: u64,
    /// bytes returned
    pub bytes: u64,
    /// per category, then per source
    pub by_category: BTreeMap<String, BTreeMap<String, SourceCounts>>,
    /// requests per sub-bucket (a minute of an hour bucket)
    pub sub: Vec<u64>,
}

impl BucketCounts {
    pub(crate) fn from_fields(start_ms: u64, fields: &HashMap<String, f64>) -> BucketCounts {
        let mut bucket = BucketCounts {
            start_ms,
            sub: vec![0; SUB_BUCKETS as usize],
            ..BucketCounts::default()
        };
        for (field, value) in fields {
            match field.split_once(':') {
                None if field == "requests" => bucket.requests = *value as u64,
                None if field == "bytes" => bucket.bytes = *value as u64,
                Some(("s", index)) => {
                    if let Some(slot) = index
                        .parse::<usize>()
                        .ok()
                        .and_then(|i| bucket.sub.get_mut(i))
                    {
                        *slot = *value as u64;
                    }
                }
                Some((kind @ ("r" | "t"), class)) => {
                    let Some((category, source)) = class.split_once(':') else {
                        continue;
                    };
                    let counts = bucket
                        .by_category
                        .entry(category.to_string())
                        .or_default()
                        .entry(source.to_string())
                        .or_default();
                    if kind == "r" {
                        counts.requests = *value as u64;
                    } else {
                        counts.ms = *value;
                    }
                }
                _ => {}
            }
        }
        bucket
    }
}

/// One tier's share of the lookups that reached it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct TierRate {
    /// lookups that reached this tier (missed every faster one)
    pub lookups: u64,
    /// of those, answered here
    pub hits: u64,
    /// hits / lookups (0 with no lookups)
    pub hit_rate: f64,
}

/// Hit rates over a window, per category and over all of them.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HitRates {
    /// per category: requests, share answered by any cache tier, and each tier's rate
    pub categories: BTreeMap<String, CategoryRates>,
    /// every category together
    pub all: CategoryRates,
}

/// The rates of one category (or of all).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CategoryRates {
    /// requests answered without error
    pub requests: u64,
    /// requests that failed (bad input)
    pub errors: u64,
    /// share of `requests` answered by a cache tier (memory, disk or Redis)
    pub hit_rate: f64,
    /// per tier, in read order
    pub tiers: BTreeMap<String, TierRate>,
    /// requests per source
    pub sources: BTreeMap<String, u64>,
}

impl CategoryRates {
    fn from_sources(sources: &BTreeMap<String, u64>) -> CategoryRates {
        let count = |s: &str| sources.get(s).copied().unwrap_or(0);
        let errors = count("error");
        let requests = sources.values().sum::<u64>() - errors;
        let mut remaining = requests;
        let mut tiers = BTreeMap::new();
        let mut hits_total = 0;
        for tier in ["memory", "disk", "redis"] {
            let hits = count(tier);
            tiers.insert(
                tier.to_string(),
                TierRate {
                    lookups: remaining,
                    hits,
                    hit_rate: ratio(hits, remaining),
                },
            );
            hits_total += hits;
            remaining = remaining.saturating_sub(hits);
        }
        CategoryRates {
            requests,
            errors,
            hit_rate: ratio(hits_total, requests),
            tiers,
            sources: sources.clone(),
        }
    }
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

impl HitRates {
    /// The rates over `buckets`.
    pub fn over(buckets: &[BucketCounts]) -> HitRates {
        let mut per_category: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        let mut all: BTreeMap<String, u64> = BTreeMap::new();
        for bucket in buckets {
            for (category, sources) in &bucket.by_category {
                for (source, counts) in sources {
                    *per_category
                        .entry(category.clone())
                        .or_default()
                        .entry(source.clone())
                        .or_default() += counts.requests;
                    *all.entry(source.clone()).or_default() += counts.requests;
                }
            }
        }
        HitRates {
            categories: per_category
                .iter()
                .map(|(c, s)| (c.clone(), CategoryRates::from_sources(s)))
                .collect(),
            all: CategoryRates::from_sources(&all),
        }
    }
}

/// An image and its top variants.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TopImage {
    /// the image
    pub image_id: String,
    /// its requests in the window
    pub requests: u64,
    /// its most requested variants: (chain, key, requests)
    pub variants: Vec<(String, String, u64)>,
}

/// What `opossum stats top` prints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// the window, in seconds
    pub window_secs: u64,
    /// the bucket length, in seconds
    pub bucket_secs: u64,
    /// requests in the window
    pub requests: u64,
    /// the top images, each with its top variants
    pub top_images: Vec<TopImage>,
    /// requests per bucket, oldest first: (bucket start in Unix milliseconds, requests)
    pub traffic: Vec<(u64, u64)>,
    /// hit rates per tier and category
    pub hit_rates: HitRates,
}

impl Report {
    pub(crate) fn new(
        window: Duration,
        bucket: Duration,
        images: Vec<(String, f64)>,
        variants: Vec<(Variant, f64)>,
        per_image: usize,
        buckets: Vec<BucketCounts>,
    ) -> Report {
        let top_images = images
            .into_iter()
            .map(|(image_id, requests)| TopImage {
                variants: variants
                    .iter()
                    .filter(|(v, _)| v.image_id == image_id)
                    .take(per_image)
                    .map(|(v, n)| (v.chain.clone(), v.key.clone(), *n as u64))
                    .collect(),
                image_id,
                requests: requests as u64,
            })
            .collect();
        Report {
            window_secs: window.as_secs(),
            bucket_secs: bucket.as_secs(),
            requests: buckets.iter().map(|b| b.requests).sum(),
            top_images,
            traffic: buckets.iter().map(|b| (b.start_ms, b.requests)).collect(),
            hit_rates: HitRates::over(&buckets),
        }
    }

    /// The report as text for a terminal.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "requests in the last {}: {}",
            human_secs(self.window_secs),
            self.requests
        );
        let _ = writeln!(out, "\ntop images:");
        if self.top_images.is_empty() {
            let _ = writeln!(out, "  (none recorded)");
        }
        for (rank, image) in self.top_images.iter().enumerate() {
            let _ = writeln!(
                out,
                "  {:>3}. {}  {} requests",
                rank + 1,
                image.image_id,
                image.requests
            );
            for (chain, _key, requests) in &image.variants {
                let _ = writeln!(out, "         {requests:>8}  {chain}");
            }
        }
        let _ = writeln!(out, "\nhit rate by category (answered by a cache tier):");
        let mut rows: Vec<(&str, &CategoryRates)> = self
            .hit_rates
            .categories
            .iter()
            .map(|(c, r)| (c.as_str(), r))
            .collect();
        rows.push(("all", &self.hit_rates.all));
        let _ = writeln!(
            out,
            "  {:<12} {:>9} {:>7} {:>8} {:>8} {:>8} {:>7}",
            "category", "requests", "hit", "memory", "disk", "redis", "errors"
        );
        for (category, rates) in rows {
            let tier = |name: &str| rates.tiers.get(name).map_or(0.0, |t| t.hit_rate * 100.0);
            let _ = writeln!(
                out,
                "  {:<12} {:>9} {:>6.1}% {:>7.1}% {:>7.1}% {:>7.1}% {:>7}",
                category,
                rates.requests,
                rates.hit_rate * 100.0,
                tier("memory"),
                tier("disk"),
                tier("redis"),
                rates.errors
            );
        }
        let _ = writeln!(
            out,
            "\ntraffic per {} (oldest first):",
            human_secs(self.bucket_secs)
        );
        let peak = self.traffic.iter().map(|(_, n)| *n).max().unwrap_or(0);
        for (start_ms, requests) in &self.traffic {
            let bar = if peak == 0 {
                0
            } else {
                (*requests * 40).div_ceil(peak) as usize
            };
            let _ = writeln!(
                out,
                "  {:>12} {:>9} {}",
                start_ms / 1000,
                requests,
                "#".repeat(bar)
            );
        }
        out
    }
}

fn human_secs(secs: u64) -> String {
    match secs {
        s if s % 86_400 == 0 && s > 0 => format!("{}d", s / 86_400),
        s if s % 3_600 == 0 && s > 0 => format!("{}h", s / 3_600),
        s if s % 60 == 0 && s > 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(fields: &[(&str, f64)]) -> BucketCounts {
        let map = fields.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        BucketCounts::from_fields(0, &map)
    }

    #[test]
    fn tier_rates_follow_the_read_order() {
        // 100 thumbnail requests: 50 memory, 20 disk, 10 redis, 20 computed, plus 3 errors.
        let b = bucket(&[
            ("requests", 103.0),
            ("r:thumbnail:memory", 50.0),
            ("r:thumbnail:disk", 20.0),
            ("r:thumbnail:redis", 10.0),
            ("r:thumbnail:computed", 20.0),
            ("r:thumbnail:error", 3.0),
            ("t:thumbnail:computed", 400.0),
            ("s:7", 5.0),
        ]);
        assert_eq!(b.requests, 103);
        assert_eq!(b.sub[7], 5);
        assert_eq!(b.by_category["thumbnail"]["computed"].ms, 400.0);
        let rates = HitRates::over(&[b.clone(), b]);
        let thumbs = &rates.categories["thumbnail"];
        assert_eq!(thumbs.requests, 200);
        assert_eq!(thumbs.errors, 6);
        assert!((thumbs.hit_rate - 0.8).abs() < 1e-9);
        assert_eq!(thumbs.tiers["memory"].lookups, 200);
        assert!((thumbs.tiers["memory"].hit_rate - 0.5).abs() < 1e-9);
        assert_eq!(thumbs.tiers["disk"].lookups, 100);
        assert!((thumbs.tiers["disk"].hit_rate - 0.4).abs() < 1e-9);
        assert_eq!(thumbs.tiers["redis"].lookups, 60);
        assert_eq!(rates.all, *thumbs);
    }

    #[test]
    fn empty_windows_report_zero_not_nan() {
        let rates = HitRates::over(&[]);
        assert_eq!(rates.all.hit_rate, 0.0);
        let report = Report::new(
            Duration::from_secs(86_400),
            Duration::from_secs(3600),
            vec![],
            vec![],
            3,
            vec![],
        );
        assert!(report.to_text().contains("requests in the last 1d: 0"));
        assert!(report.to_text().contains("(none recorded)"));
    }
}
