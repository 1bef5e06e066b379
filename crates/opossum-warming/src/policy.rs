//! The three strategies as pure functions: analytics in, candidates out. No I/O here; the
//! [`crate::Warmer`] reads analytics, checks the cache and enqueues.

use std::collections::BTreeMap;
use std::time::Duration;

use opossum_analytics::{BucketCounts, SUB_BUCKETS, Variant};
use opossum_ops::{Chain, Encoding, Operation, OutputFormat, Presets};

/// A variant a strategy wants cached.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// the image
    pub image_id: String,
    /// the chain, as a warm job will carry it (may name presets)
    pub ops: String,
    /// request options
    pub options: BTreeMap<String, String>,
    /// the variant must stay cached at least until then (Unix milliseconds); a cached entry
    /// expiring sooner is refreshed, one lasting longer makes the candidate "cached"
    pub fresh_until_ms: u64,
    /// how much the strategy wants it (predicted requests, or rank); higher first
    pub score: f64,
}

/// Settings of the predictive strategy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Predictive {
    /// the analytics bucket length
    pub bucket: Duration,
    /// half-life of the decay the scores were computed with
    pub half_life: Duration,
    /// the window to prepare for
    pub horizon: Duration,
    /// predicted requests in the horizon that make a variant worth warming
    pub min_expected_requests: f64,
}

impl Predictive {
    /// Requests per millisecond implied by a decayed score. With buckets of length `b` weighted
    /// `2^(-age * b / h)`, a steady rate `r` scores `r * b / (1 - 2^(-b / h))`.
    pub fn rate_per_ms(&self, score: f64) -> f64 {
        let b = self.bucket.as_secs_f64() * 1000.0;
        let h = self.half_life.as_secs_f64() * 1000.0;
        score * (1.0 - (-b / h).exp2()) / b
    }

    /// Predicted requests in the horizon.
    pub fn expected(&self, score: f64) -> f64 {
        self.rate_per_ms(score) * self.horizon.as_secs_f64() * 1000.0
    }

    /// The variants (with decayed scores) expected to be asked for at least
    /// `min_expected_requests` times in the horizon after `now_ms`; each must stay cached
    /// until the horizon ends. Highest expectation first.
    pub fn plan(&self, decayed: &[(Variant, f64)], now_ms: u64) -> Vec<Candidate> {
        let fresh_until_ms = now_ms + self.horizon.as_millis() as u64;
        let mut out: Vec<Candidate> = decayed
            .iter()
            .filter_map(|(variant, score)| {
                let expected = self.expected(*score);
                (expected >= self.min_expected_requests).then(|| Candidate {
                    image_id: variant.image_id.clone(),
                    ops: variant.chain.clone(),
                    options: variant.options.clone(),
                    fresh_until_ms,
                    score: expected,
                })
            })
            .collect();
        out.sort_by(|a, b| b.score.total_cmp(&a.score));
        out
    }
}

/// The traffic now against the usual, from the fine profile.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrafficLevel {
    /// requests per sub-bucket over the last few sub-buckets
    pub recent: f64,
    /// average requests per sub-bucket over the complete buckets of the window
    pub typical: f64,
    /// complete buckets the typical rate is based on
    pub history_buckets: usize,
}

impl TrafficLevel {
    /// Sub-buckets that make "now" (5 minutes of an hour bucket).
    pub const RECENT: u64 = 5;

    /// Reads `buckets` (oldest first, the last one current) at `now_ms`.
    pub fn measure(buckets: &[BucketCounts], bucket: Duration, now_ms: u64) -> TrafficLevel {
        let bucket_ms = bucket.as_millis() as u64;
        let sub_ms = (bucket_ms / SUB_BUCKETS).max(1);
        // The last RECENT complete sub-buckets before now, possibly reaching into the
        // previous bucket.
        let mut recent = 0u64;
        for back in 1..=Self::RECENT {
            let Some(at) = now_ms.checked_sub(back * sub_ms) else {
                break;
            };
            let start = at - at % bucket_ms;
            let index = ((at - start) / sub_ms) as usize;
            if let Some(b) = buckets.iter().find(|b| b.start_ms == start) {
                recent += b.sub.get(index).copied().unwrap_or(0);
            }
        }
        let current = now_ms - now_ms % bucket_ms;
        let complete: Vec<&BucketCounts> =
            buckets.iter().filter(|b| b.start_ms < current).collect();
        // Leading empty buckets are before the fleet existed, not quiet hours.
        let first_busy = complete.iter().position(|b| b.requests > 0);
        let history = first_busy.map_or(&[][..], |i| &complete[i..]);
        let total: u64 = history.iter().map(|b| b.requests).sum();
        TrafficLevel {
            recent: recent as f64 / Self::RECENT as f64,
            typical: if history.is_empty() {
                0.0
            } else {
                total as f64 / (history.len() as u64 * SUB_BUCKETS) as f64
            },
            history_buckets: history.len(),
        }
    }

    /// Low when the recent rate is under `fraction` of the typical one; never without at least
    /// one complete bucket of history (no profile, no judgement).
    pub fn is_low(&self, fraction: f64) -> bool {
        self.history_buckets > 0 && self.typical > 0.0 && self.recent < fraction * self.typical
    }
}

/// The background strategy: every top image times every common operation, in rank order.
pub fn background(
    top_images: &[(String, f64)],
    common_operations: &[String],
    now_ms: u64,
) -> Vec<Candidate> {
    let mut out = Vec::with_capacity(top_images.len() * common_operations.len());
    for (rank, (image_id, _)) in top_images.iter().enumerate() {
        for ops in common_operations {
            out.push(Candidate {
                image_id: image_id.clone(),
                ops: ops.clone(),
                options: BTreeMap::new(),
                fresh_until_ms: now_ms,
                score: (top_images.len() - rank) as f64,
            });
        }
    }
    out
}

/// The related-variant strategy: the siblings of a requested variant. `ops` is the chain as
/// submitted. Siblings are the other presets of each named preset's family (only for the
/// string form, where the step can be swapped), and the chain with its output format replaced
/// by each of `formats` (when the chain sets a format).
pub fn related(ops: &str, presets: &Presets, formats: &[OutputFormat]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut push = |sibling: String| {
        if sibling != ops && !out.contains(&sibling) {
            out.push(sibling);
        }
    };
    if !ops.trim_start().starts_with('[') {
        let steps: Vec<&str> = ops.split(',').map(str::trim).collect();
        if let Ok(references) = Chain::preset_refs(ops) {
            for reference in references {
                let Some(position) = steps.iter().position(|step| {
                    step.strip_prefix("preset:")
                        .map(|rest| rest.split(':').next() == Some(reference.name.as_str()))
                        .unwrap_or(false)
                }) else {
                    continue;
                };
                for sibling in presets.siblings(&reference.name) {
                    let mut swapped: Vec<String> = steps.iter().map(|s| s.to_string()).collect();
                    swapped[position] = format!("preset:{}", sibling.name);
                    push(swapped.join(","));
                }
            }
        }
    }
    if let Ok(chain) = Chain::parse_any_with(ops, presets) {
        let current = chain
            .ops()
            .iter()
            .position(|op| matches!(op, Operation::Format(_)));
        if let Some(position) = current {
            for format in formats {
                let mut steps = chain.ops().to_vec();
                if matches!(steps[position], Operation::Format(e) if e.format == *format) {
                    continue;
                }
                steps[position] = Operation::Format(Encoding::default_for(*format));
                if let Ok(sibling) = Chain::from_operations(steps) {
                    push(sibling.to_string());
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn variant(image: &str, chain: &str) -> Variant {
        Variant {
            image_id: image.into(),
            chain: chain.into(),
            key: String::new(),
            options: BTreeMap::new(),
        }
    }

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn predictive_turns_decayed_scores_into_expected_requests() {
        let policy = Predictive {
            bucket: HOUR,
            half_life: HOUR,
            horizon: HOUR,
            min_expected_requests: 2.0,
        };
        // A steady 10 requests an hour, weighted 1, 1/2, 1/4, ...: a score of 20.
        assert!((policy.expected(20.0) - 10.0).abs() < 1e-9);
        let plan = policy.plan(
            &[
                (variant("a", "thumbnail:200"), 20.0),
                (variant("b", "thumbnail:200"), 2.0),
                (variant("c", "grayscale"), 60.0),
            ],
            1_000,
        );
        let chosen: Vec<(&str, f64)> = plan
            .iter()
            .map(|c| (c.image_id.as_str(), c.score.round()))
            .collect();
        // b expects one request an hour, under the threshold of two.
        assert_eq!(chosen, vec![("c", 30.0), ("a", 10.0)]);
        assert!(plan.iter().all(|c| c.fresh_until_ms == 1_000 + 3_600_000));
    }

    fn bucket(start_ms: u64, per_sub: u64) -> BucketCounts {
        BucketCounts {
            start_ms,
            requests: per_sub * SUB_BUCKETS,
            sub: vec![per_sub; SUB_BUCKETS as usize],
            ..BucketCounts::default()
        }
    }

    #[test]
    fn low_traffic_compares_the_last_minutes_with_the_profile() {
        let h = 3_600_000;
        let now = 10 * h + 30 * 60_000;
        let mut current = bucket(10 * h, 0);
        let busy = vec![bucket(7 * h, 100), bucket(8 * h, 100), bucket(9 * h, 100)];
        // Quiet now: 10 a minute against 100.
        for minute in 25..30 {
            current.sub[minute] = 10;
        }
        let mut buckets = busy.clone();
        buckets.push(current.clone());
        let level = TrafficLevel::measure(&buckets, HOUR, now);
        assert_eq!(level.history_buckets, 3);
        assert!((level.recent - 10.0).abs() < 1e-9, "{level:?}");
        assert!((level.typical - 100.0).abs() < 1e-9, "{level:?}");
        assert!(level.is_low(0.5));
        // Busy now: 80 a minute is not low at a half.
        for minute in 25..30 {
            current.sub[minute] = 80;
        }
        let mut buckets = busy;
        buckets.push(current);
        assert!(!TrafficLevel::measure(&buckets, HOUR, now).is_low(0.5));
        // No history: never low.
        let alone = TrafficLevel::measure(&[bucket(10 * h, 0)], HOUR, now);
        assert!(!alone.is_low(0.5));
        // Empty buckets before the first busy one are not history.
        let early = TrafficLevel::measure(&[bucket(8 * h, 0), bucket(9 * h, 6)], HOUR, now);
        assert_eq!(early.history_buckets, 1);
    }

    #[test]
    fn background_crosses_top_images_with_common_operations() {
        let plan = background(
            &[("a".into(), 9.0), ("b".into(), 3.0)],
            &["thumbnail:200".into(), "grayscale".into()],
            5,
        );
        let pairs: Vec<(&str, &str)> = plan
            .iter()
            .map(|c| (c.image_id.as_str(), c.ops.as_str()))
            .collect();
        assert_eq!(
            pairs,
            vec![
                ("a", "thumbnail:200"),
                ("a", "grayscale"),
                ("b", "thumbnail:200"),
                ("b", "grayscale")
            ]
        );
        assert!(plan[0].score > plan[3].score);
    }

    fn presets() -> Presets {
        let yaml = serde_json::json!({
            "thumb-s": {"ops": "thumbnail:100,format:webp", "family": "thumbs"},
            "thumb-m": {"ops": "thumbnail:200,format:webp", "family": "thumbs"},
            "thumb-l": {"ops": "thumbnail:400,format:webp", "family": "thumbs"},
            "mono": {"ops": "grayscale"},
        });
        Presets::from_config(&yaml).unwrap()
    }

    #[test]
    fn related_offers_the_family_and_the_other_formats() {
        let formats = [OutputFormat::Jpeg, OutputFormat::Webp, OutputFormat::Avif];
        let mut siblings = related("preset:thumb-m", &presets(), &formats);
        siblings.sort();
        assert_eq!(
            siblings,
            vec![
                "preset:thumb-l",
                "preset:thumb-s",
                "thumbnail:200,format:avif",
                "thumbnail:200,format:jpeg",
            ]
        );
        // A versioned reference inside a longer chain is swapped in place.
        let siblings = related("preset:thumb-s:1,grayscale", &presets(), &[]);
        assert_eq!(siblings.len(), 2, "{siblings:?}");
        assert!(siblings.contains(&"preset:thumb-m,grayscale".to_string()));
        // No family and no format: nothing related.
        assert!(related("preset:mono", &presets(), &formats).is_empty());
        assert!(related("grayscale,blur:2", &presets(), &formats).is_empty());
        // Plain chains get format siblings.
        let siblings = related(
            "resize:800:600,format:png",
            &presets(),
            &[OutputFormat::Webp],
        );
        assert_eq!(siblings, vec!["resize:800:600:fit,format:webp"]);
        // Garbage yields nothing rather than an error.
        assert!(related("zoom:9", &presets(), &formats).is_empty());
    }
}
