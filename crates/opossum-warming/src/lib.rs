//! Cache warming: reads usage analytics and enqueues low-priority jobs on `{prefix}:warm`, so
//! the fleet computes what users are about to ask for while they are not asking.
//!
//! - `policy.rs`: the strategies as pure functions ([`Predictive`], [`background`],
//!   [`related`], [`TrafficLevel`]), tested with plain inputs.
//! - [`Warmer`]: the I/O around them. Every run goes through one funnel, [`Warmer::enqueue`]:
//!   1. candidates are deduplicated by cache key within the run;
//!   2. what is cached and fresh enough (expiring after the candidate's `fresh_until`) is
//!      skipped, asked of the tiers shared with the fleet (Redis; `PTTL`, no value transfer);
//!   3. the budget is applied: at most `jobs_per_run`, and nothing while the warm queue's
//!      backlog is at `backlog_cap`, so warming can never flood the fleet;
//!   4. each job takes a claim (`{prefix:warm:claims}:KEY`, `SET NX PX claim_ttl`), so a
//!      variant already on its way is not enqueued again by this or another scheduler;
//!   5. the jobs go to the warm queue only, which workers serve with a separate, smaller pool.
//! - [`Warmer::run`]: the long-running scheduler: predictive every `interval`; background on
//!   the cron `schedule` and whenever traffic is low (at most once per analytics bucket);
//!   related-variant continuously, from the completion events of user jobs: a request's
//!   siblings, but only those whose chain users ask for (of any image, in the analytics
//!   window or since the last predictive run), so nothing is warmed that nobody requests.
//! - [`WarmerParts::target`]: where the jobs go, a [`JobQueue`]: a fleet's Redis queues and
//!   event stream, or the embedded queue of `opossum serve` without Redis, where the one
//!   process is the fleet: the same strategies and funnel, with claims in this process's
//!   memory (there is one scheduler) and analytics in a [`opossum_analytics::MemoryStore`].
#![cfg_attr(not(test), warn(unused_crate_dependencies))]

mod policy;
mod schedule;
mod warmer;

use std::fmt;
use std::str::FromStr;

pub use policy::{Candidate, Predictive, TrafficLevel, background, related};
pub use schedule::next_occurrence;
pub use warmer::{Warmer, WarmerParts};

/// Candidates whose freshness is checked in one round trip.
const CHECK_BATCH: usize = 500;

/// A warming strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// variants likely to be requested in the next window, missing or about to expire
    Predictive,
    /// top images times the common operations, in quiet periods and on a schedule
    Background,
    /// siblings of requested variants (preset family, other formats)
    Related,
}

impl Strategy {
    /// `predictive`, `background` or `related`.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Predictive => "predictive",
            Strategy::Background => "background",
            Strategy::Related => "related",
        }
    }
}

impl FromStr for Strategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Strategy, String> {
        match s {
            "predictive" => Ok(Strategy::Predictive),
            "background" => Ok(Strategy::Background),
            "related" => Ok(Strategy::Related),
            other => Err(format!(
                "unknown strategy `{other}` (known: predictive, background, related)"
            )),
        }
    }
}

/// Failures of a warming run.
#[derive(Debug, thiserror::Error)]
pub enum WarmError {
    /// Reading analytics failed.
    #[error(transparent)]
    Analytics(#[from] opossum_analytics::AnalyticsError),
    /// The queue or Redis failed.
    #[error(transparent)]
    Fleet(#[from] opossum_fleet::FleetError),
    /// Redis failed (claims).
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// The settings are invalid.
    #[error("warming.{key}: {message}")]
    Settings {
        /// the key under `warming`
        key: &'static str,
        /// what is wrong
        message: String,
    },
}

/// What one run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Summary {
    /// candidates the strategy produced (after removing repeats within the run)
    pub planned: u64,
    /// skipped: cached and fresh enough
    pub cached: u64,
    /// skipped: already enqueued (a claim exists)
    pub duplicates: u64,
    /// skipped: invalid chain (for example a preset this process does not know)
    pub invalid: u64,
    /// skipped: over the run's budget or the warm queue's backlog cap
    pub over_budget: u64,
    /// enqueued (with `--dry-run`: would have been)
    pub enqueued: u64,
}

impl Summary {
    fn add(&mut self, other: Summary) {
        self.planned += other.planned;
        self.cached += other.cached;
        self.duplicates += other.duplicates;
        self.invalid += other.invalid;
        self.over_budget += other.over_budget;
        self.enqueued += other.enqueued;
    }
}

impl Summary {
    /// Adds this run to the process's `opossum_warm_jobs_total{strategy, result}`.
    pub fn record(&self, strategy: &str) {
        let metrics = opossum_telemetry::metrics();
        for (result, n) in [
            ("cached", self.cached),
            ("duplicate", self.duplicates),
            ("invalid", self.invalid),
            ("over_budget", self.over_budget),
            ("enqueued", self.enqueued),
        ] {
            metrics.warm(strategy, result, n);
        }
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} planned, {} skipped as cached, {} duplicates, {} invalid, {} over budget, {} enqueued",
            self.planned,
            self.cached,
            self.duplicates,
            self.invalid,
            self.over_budget,
            self.enqueued
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nightly_schedule_fires_at_three_utc() {
        let nightly = croner::Cron::from_str("0 3 * * *").unwrap();
        // 2026-11-25 03:30 UTC, then 02:59 the same day.
        let after = 1_795_577_400_000;
        assert_eq!(next_occurrence(&nightly, after), Some(1_795_662_000_000));
        assert_eq!(
            next_occurrence(&nightly, after - 31 * 60_000),
            Some(1_795_575_600_000)
        );
    }

    #[test]
    fn strategies_parse_by_name() {
        for strategy in [
            Strategy::Predictive,
            Strategy::Background,
            Strategy::Related,
        ] {
            assert_eq!(strategy.name().parse::<Strategy>(), Ok(strategy));
        }
        assert!(
            "nightly"
                .parse::<Strategy>()
                .unwrap_err()
                .contains("known: predictive")
        );
    }
}
