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
//!   4. each job takes a claim (`{prefix}:warm:claim:{key}`, `SET NX PX claim_ttl`), so a
//!      variant already on its way is not enqueued again by this or another scheduler;
//!   5. the jobs go to the warm queue only, which workers serve with a separate, smaller pool.
//! - [`Warmer::run`]: the long-running scheduler: predictive every `interval`; background on
//!   the cron `schedule` and whenever traffic is low (at most once per analytics bucket);
//!   related-variant continuously, from the completion events of user jobs.
//! - [`WarmerParts::target`]: where the jobs go, a [`JobQueue`]: a fleet's Redis queues and
//!   event stream, or the embedded queue of `opossum serve` without Redis, where the one
//!   process is the fleet: the same strategies and funnel, with claims in this process's
//!   memory (there is one scheduler) and analytics in a [`opossum_analytics::MemoryStore`].
#![cfg_attr(not(test), warn(unused_crate_dependencies))]

mod policy;

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use opossum_analytics::Analytics;
use opossum_cache::Hierarchy;
use opossum_config::WarmingSettings;
use opossum_fleet::{Event, Job, JobQueue, Priority, Status};
use opossum_ops::{Chain, Options, OutputFormat, Presets, derive_key};

pub use policy::{Candidate, Predictive, TrafficLevel, background, related};

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

/// The first time after `after_ms` (Unix milliseconds, UTC) that `schedule` fires.
pub fn next_occurrence(schedule: &croner::Cron, after_ms: u64) -> Option<u64> {
    let after = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(after_ms as i64)?;
    let next = schedule.find_next_occurrence(&after, false).ok()?;
    u64::try_from(next.timestamp_millis()).ok()
}

/// Everything a [`Warmer`] works with.
pub struct WarmerParts {
    /// the strategies' settings
    pub settings: WarmingSettings,
    /// presets, to expand chains and find families
    pub presets: Presets,
    /// key namespace (the fleet prefix)
    pub namespace: String,
    /// processing version in keys
    pub version: String,
    /// usage analytics
    pub analytics: Analytics,
    /// the tiers shared with the fleet, asked whether a variant is cached
    pub freshness: Arc<Hierarchy>,
    /// where warm jobs go, completion events come from and claims are kept: the fleet's
    /// Redis (claims shared by every scheduler) or this process's embedded queue
    pub target: Arc<dyn JobQueue>,
}

/// The scheduler's engine; see the crate documentation.
pub struct Warmer {
    parts: WarmerParts,
    formats: Vec<OutputFormat>,
    schedule: croner::Cron,
}

impl Warmer {
    /// A warmer; fails when the schedule or a format in the settings is invalid.
    pub fn new(parts: WarmerParts) -> Result<Warmer, WarmError> {
        let schedule =
            croner::Cron::from_str(&parts.settings.schedule).map_err(|e| WarmError::Settings {
                key: "schedule",
                message: format!("`{}`: {e}", parts.settings.schedule),
            })?;
        let formats = parts.settings.related_formats.clone();
        Ok(Warmer {
            parts,
            formats,
            schedule,
        })
    }

    /// The settings.
    pub fn settings(&self) -> &WarmingSettings {
        &self.parts.settings
    }

    fn predictive(&self) -> Predictive {
        let s = &self.parts.settings;
        Predictive {
            bucket: self.parts.analytics.config().bucket,
            half_life: s.half_life,
            horizon: s.horizon,
            min_expected_requests: s.min_expected_requests,
        }
    }

    /// Candidates of `strategy` at `now_ms`. Related-variant candidates come from the latest
    /// completion events of user jobs (up to `jobs_per_run` of them).
    pub async fn plan(&self, strategy: Strategy, now_ms: u64) -> Result<Vec<Candidate>, WarmError> {
        let s = &self.parts.settings;
        let analytics = &self.parts.analytics;
        // Enough candidates to fill the budget after the cached ones are skipped.
        let fetch = s.jobs_per_run.saturating_mul(4).max(100);
        Ok(match strategy {
            Strategy::Predictive => {
                let decayed = analytics
                    .decayed_variants(now_ms, s.window, s.half_life, fetch)
                    .await?;
                self.predictive().plan(&decayed, now_ms)
            }
            Strategy::Background => {
                let top = analytics.top_images(now_ms, s.window, s.top_images).await?;
                background(&top, &s.common_operations, now_ms)
            }
            Strategy::Related => {
                let count = s.jobs_per_run.max(1);
                let events = self.parts.target.latest_events(count).await?;
                self.related_candidates(&events, now_ms)
            }
        })
    }

    /// Siblings of the successful user requests among `events`.
    pub fn related_candidates(&self, events: &[Event], now_ms: u64) -> Vec<Candidate> {
        let mut out = Vec::new();
        for event in events {
            if event.status != Status::Ok || event.priority != Priority::User {
                continue;
            }
            for ops in related(&event.ops, &self.parts.presets, &self.formats) {
                out.push(Candidate {
                    image_id: event.image_id.clone(),
                    ops,
                    options: BTreeMap::new(),
                    fresh_until_ms: now_ms,
                    score: 1.0,
                });
            }
        }
        out
    }

    /// The traffic now against the profile, from analytics.
    pub async fn traffic(&self, now_ms: u64) -> Result<TrafficLevel, WarmError> {
        let analytics = &self.parts.analytics;
        let buckets = analytics
            .buckets(now_ms, self.parts.settings.window)
            .await?;
        Ok(TrafficLevel::measure(
            &buckets,
            analytics.config().bucket,
            now_ms,
        ))
    }

    fn key_of(&self, candidate: &Candidate) -> Option<String> {
        let chain = Chain::parse_any_with(&candidate.ops, &self.parts.presets).ok()?;
        let mut options = Options::new();
        for (name, value) in &candidate.options {
            options.insert(name, value).ok()?;
        }
        Some(
            derive_key(
                &self.parts.namespace,
                &self.parts.version,
                &candidate.image_id,
                &chain,
                &options,
            )
            .to_string(),
        )
    }

    fn claim_key(&self, key: &str) -> String {
        format!("{}:warm:claim:{key}", self.parts.namespace)
    }

    /// Warm jobs waiting or running.
    async fn warm_backlog(&self) -> Result<u64, WarmError> {
        Ok(self.parts.target.backlog(Priority::Warm).await?)
    }

    /// Whether each claim is held.
    async fn claimed(&self, claims: &[String]) -> Result<Vec<bool>, WarmError> {
        Ok(self.parts.target.claimed(claims).await?)
    }

    /// Takes each claim unless it is held (another scheduler took it since [`Self::claimed`]);
    /// says which were taken.
    async fn take_claims(&self, claims: &[&String]) -> Result<Vec<bool>, WarmError> {
        let ttl = self.parts.settings.claim_ttl;
        Ok(self.parts.target.take_claims(claims, ttl).await?)
    }

    async fn submit(&self, jobs: Vec<Job>) -> Result<(), WarmError> {
        Ok(self.parts.target.submit(jobs).await?)
    }

    /// Runs `candidates` through the funnel (see the crate documentation) and enqueues what
    /// survives, unless `dry_run`. `progress` is called with the number of candidates handled
    /// so far.
    pub async fn enqueue(
        &self,
        candidates: Vec<Candidate>,
        dry_run: bool,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<Summary, WarmError> {
        let s = &self.parts.settings;
        let mut summary = Summary::default();
        let mut seen = HashSet::new();
        let mut keyed = Vec::new();
        for candidate in candidates {
            match self.key_of(&candidate) {
                Some(key) if seen.insert(key.clone()) => keyed.push((key, candidate)),
                Some(_) => {}
                None => summary.invalid += 1,
            }
        }
        summary.planned = keyed.len() as u64 + summary.invalid;
        let room = s.backlog_cap.saturating_sub(self.warm_backlog().await?);
        let mut budget = (s.jobs_per_run as u64).min(room);
        let mut handled = summary.invalid;
        for batch in keyed.chunks(CHECK_BATCH) {
            let keys: Vec<String> = batch.iter().map(|(key, _)| key.clone()).collect();
            let claims: Vec<String> = keys.iter().map(|key| self.claim_key(key)).collect();
            let expiries = self.parts.freshness.expiries(&keys).await;
            let claimed = self.claimed(&claims).await?;
            let mut wanted = Vec::new();
            for (((_, candidate), claim), (expiry, taken)) in batch
                .iter()
                .zip(&claims)
                .zip(expiries.into_iter().zip(claimed))
            {
                if expiry.is_some_and(|at| at > candidate.fresh_until_ms) {
                    summary.cached += 1;
                } else if taken {
                    summary.duplicates += 1;
                } else if budget == 0 {
                    summary.over_budget += 1;
                } else {
                    budget -= 1;
                    wanted.push((claim, candidate));
                }
            }
            if dry_run {
                summary.enqueued += wanted.len() as u64;
            } else if !wanted.is_empty() {
                // Take the claims; one taken since the check above (another scheduler) wins.
                let claims: Vec<&String> = wanted.iter().map(|(claim, _)| *claim).collect();
                let taken = self.take_claims(&claims).await?;
                let mut jobs = Vec::new();
                for ((_, candidate), taken) in wanted.iter().zip(taken) {
                    if !taken {
                        summary.duplicates += 1;
                        continue;
                    }
                    let mut job = Job::new(&candidate.image_id, &candidate.ops, Priority::Warm);
                    job.options = candidate.options.clone();
                    job.fresh_until_ms = candidate.fresh_until_ms;
                    jobs.push(job);
                }
                summary.enqueued += jobs.len() as u64;
                if !jobs.is_empty() {
                    self.submit(jobs).await?;
                }
            }
            handled += batch.len() as u64;
            progress(handled);
        }
        Ok(summary)
    }

    /// Plans and enqueues one run of `strategy` now.
    pub async fn warm_once(
        &self,
        strategy: Strategy,
        dry_run: bool,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<Summary, WarmError> {
        let candidates = self.plan(strategy, opossum_cache::unix_millis()).await?;
        let summary = self.enqueue(candidates, dry_run, progress).await?;
        if !dry_run {
            summary.record(strategy.name());
        }
        Ok(summary)
    }

    fn next_scheduled(&self, after_ms: u64) -> Option<u64> {
        next_occurrence(&self.schedule, after_ms)
    }

    /// The long-running scheduler, until `shutdown` resolves. Failures of one run are logged
    /// and the next run goes ahead.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) -> Result<(), WarmError> {
        let s = &self.parts.settings;
        if !s.enabled {
            tracing::info!("warming is disabled (warming.enabled: false)");
            shutdown.await;
            return Ok(());
        }
        let mut follower = self.parts.target.follow().await?;
        let mut next_predictive = opossum_cache::unix_millis();
        let mut next_scheduled = self.next_scheduled(opossum_cache::unix_millis());
        let bucket_ms = self.parts.analytics.config().bucket.as_millis() as u64;
        let mut last_quiet_bucket = None;
        let mut related_total = Summary::default();
        let mut shutdown = std::pin::pin!(shutdown);
        tracing::info!(schedule = %s.schedule, interval = ?s.interval, "scheduler started");
        loop {
            let now = opossum_cache::unix_millis();
            if now >= next_predictive {
                next_predictive = now + s.interval.as_millis() as u64;
                self.logged(Strategy::Predictive, "interval").await;
                match self.traffic(now).await {
                    Ok(level) if level.is_low(s.low_traffic_fraction) => {
                        let bucket = now / bucket_ms.max(1);
                        if last_quiet_bucket != Some(bucket) {
                            last_quiet_bucket = Some(bucket);
                            tracing::info!(
                                recent = level.recent,
                                typical = level.typical,
                                "low traffic"
                            );
                            self.logged(Strategy::Background, "low traffic").await;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "traffic profile unavailable"),
                }
            }
            if next_scheduled.is_some_and(|at| now >= at) {
                next_scheduled = self.next_scheduled(now);
                self.logged(Strategy::Background, "schedule").await;
            }
            // Related-variant warming: the events of the last second or so.
            let events = tokio::select! {
                events = follower.next() => events,
                () = &mut shutdown => break,
            };
            let candidates = self.related_candidates(&events, opossum_cache::unix_millis());
            if !candidates.is_empty() {
                match self.enqueue(candidates, false, &|_| {}).await {
                    Ok(summary) => {
                        summary.record(Strategy::Related.name());
                        related_total.add(summary);
                        tracing::debug!(%summary, "related-variant warming");
                    }
                    Err(e) => tracing::warn!(error = %e, "related-variant warming failed"),
                }
            }
        }
        tracing::info!(related = %related_total, "scheduler stopped");
        Ok(())
    }

    async fn logged(&self, strategy: Strategy, trigger: &str) {
        match self.warm_once(strategy, false, &|_| {}).await {
            Ok(summary) => {
                tracing::info!(strategy = strategy.name(), trigger, %summary, "warming run")
            }
            Err(e) => {
                tracing::warn!(strategy = strategy.name(), trigger, error = %e, "warming run failed")
            }
        }
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
