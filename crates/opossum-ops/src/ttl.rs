//! Adaptive TTLs: the seed's per-category defaults, adjusted for storage pressure, how often
//! an item is asked for and how expensive it was to compute.
//!
//! The rule, as multipliers of the category's default TTL:
//! - storage pressure (the fullest enabled tier's used / capacity): below 70% x1; from 70% the
//!   TTL shrinks linearly to x0.25 at 100%, so a full cache turns over faster instead of
//!   evicting fresh items;
//! - popularity (hits the item has had): x(1 + log2(1 + hits) / 2), at most x4, so an item asked
//!   for 7 times lives 2.5x as long;
//! - cost (milliseconds to compute): below 50 ms x1; above, x(1 + log10(cost / 50)), at most
//!   x3, so a 5 s computation is kept 3x as long as a cheap one.
//!
//! Error results never adapt: a bad input is remembered for exactly the error TTL so a fixed
//! original is picked up promptly. Resources (presets) stay within the seed's 24-48 h. Everything
//! else is clamped to [1 minute, 30 days].

use std::time::Duration;

use crate::Category;

/// What the cache knows about an item and itself when it decides a TTL.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct TtlInputs {
    /// fullest tier's used / capacity, 0-1
    pub storage_pressure: f64,
    /// times the item was served from cache so far
    pub hits: u64,
    /// milliseconds it took to compute
    pub compute_ms: u64,
}

const MIN_TTL: Duration = Duration::from_secs(60);
const MAX_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// The TTL for an item of `category` given `inputs` (see the module documentation).
pub fn adaptive_ttl(category: Category, inputs: TtlInputs) -> Duration {
    let base = category.default_ttl();
    if category == Category::Error {
        return base;
    }
    let pressure = inputs.storage_pressure.clamp(0.0, 1.0);
    let pressure_factor = if pressure <= 0.7 {
        1.0
    } else {
        1.0 - (pressure - 0.7) / 0.3 * 0.75
    };
    let popularity_factor = (1.0 + (1.0 + inputs.hits as f64).log2() / 2.0).min(4.0);
    let cost_factor = if inputs.compute_ms <= 50 {
        1.0
    } else {
        (1.0 + (inputs.compute_ms as f64 / 50.0).log10()).min(3.0)
    };
    let seconds = base.as_secs_f64() * pressure_factor * popularity_factor * cost_factor;
    let ttl = Duration::from_secs_f64(seconds);
    if category == Category::Resource {
        return ttl.clamp(base, base * 2);
    }
    ttl.clamp(MIN_TTL, MAX_TTL)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(category: Category, pressure: f64, hits: u64, compute_ms: u64, expect_secs: u64) {
        let inputs = TtlInputs {
            storage_pressure: pressure,
            hits,
            compute_ms,
        };
        let got = adaptive_ttl(category, inputs).as_secs();
        assert_eq!(got, expect_secs, "{category:?} {inputs:?}");
    }

    #[test]
    fn defaults_when_nothing_is_known() {
        check(Category::Result, 0.0, 0, 0, 86_400);
        check(Category::Thumbnail, 0.5, 0, 10, 604_800);
        check(Category::Intermediate, 0.0, 0, 0, 3_600);
    }

    #[test]
    fn pressure_shortens() {
        check(Category::Result, 1.0, 0, 0, 21_600);
        check(Category::Result, 0.85, 0, 0, 54_000);
    }

    #[test]
    fn popularity_and_cost_lengthen_within_bounds() {
        check(Category::Result, 0.0, 7, 0, 216_000);
        check(Category::Result, 0.0, 0, 5_000, 259_200);
        check(Category::Thumbnail, 0.0, 1_000_000, 1_000_000, 2_592_000);
    }

    #[test]
    fn resources_stay_between_one_and_two_days() {
        check(Category::Resource, 1.0, 0, 0, 86_400);
        check(Category::Resource, 0.0, 1, 0, 129_600);
        check(Category::Resource, 0.0, 1000, 0, 172_800);
    }

    #[test]
    fn errors_never_adapt() {
        check(Category::Error, 1.0, 1000, 100_000, 300);
    }
}
