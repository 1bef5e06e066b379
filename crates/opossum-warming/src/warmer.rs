//! [`Warmer`]: the I/O around the strategies: plans from the analytics, and the one funnel
//! every run goes through ([`Warmer::enqueue`]: dedupe, freshness, budget, claims, submit).

use std::collections::{BTreeMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;

use opossum_analytics::Analytics;
use opossum_cache::Hierarchy;
use opossum_config::WarmingSettings;
use opossum_fleet::{Event, Job, JobQueue, Priority, Status};
use opossum_ops::{Chain, Options, OutputFormat, Presets, derive_key};

use crate::policy::{Candidate, Predictive, TrafficLevel, background, related};
use crate::{CHECK_BATCH, Strategy, Summary, WarmError};

/// Variants read from the analytics to learn which chains users ask for, and the most chains
/// remembered from completion events between two reads.
const ASKED_VARIANTS: usize = 10_000;

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
    /// the fleet's encoding defaults, which keys are derived with
    pub encoding: opossum_ops::EncodingDefaults,
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
    pub(crate) parts: WarmerParts,
    formats: Vec<OutputFormat>,
    pub(crate) schedule: croner::Cron,
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
                let mut asked = self.asked_chains(now_ms).await?;
                self.note_asked(&events, &mut asked);
                self.related_candidates(&events, &asked, now_ms)
            }
        })
    }

    /// The chains users asked for (of any image) in the analytics window, resolved as the
    /// workers record them: what a related variant must be to be worth warming.
    pub async fn asked_chains(&self, now_ms: u64) -> Result<HashSet<String>, WarmError> {
        let variants = self
            .parts
            .analytics
            .top_variants(now_ms, self.parts.settings.window, ASKED_VARIANTS)
            .await?;
        Ok(variants
            .into_iter()
            .map(|(variant, _)| variant.chain)
            .collect())
    }

    /// Adds the chains of the user requests among `events` to `asked` (up to
    /// [`ASKED_VARIANTS`] of them; the next refresh from the analytics starts over).
    pub fn note_asked(&self, events: &[Event], asked: &mut HashSet<String>) {
        for event in events {
            if event.priority != Priority::User || asked.len() >= ASKED_VARIANTS {
                continue;
            }
            if let Ok(chain) = Chain::parse_any_with(&event.ops, &self.parts.presets) {
                asked.insert(chain.to_string());
            }
        }
    }

    /// Siblings of the successful user requests among `events` whose chain users ask for
    /// (`asked`, from [`Warmer::asked_chains`]): a sibling nobody requests, such as the JPEG
    /// of a thumbnail only ever served as WebP, would take CPU and cache for nothing.
    pub fn related_candidates(
        &self,
        events: &[Event],
        asked: &HashSet<String>,
        now_ms: u64,
    ) -> Vec<Candidate> {
        let mut out = Vec::new();
        for event in events {
            if event.status != Status::Ok || event.priority != Priority::User {
                continue;
            }
            for ops in related(&event.ops, &self.parts.presets, &self.formats) {
                let resolved = Chain::parse_any_with(&ops, &self.parts.presets);
                if !resolved.is_ok_and(|chain| asked.contains(&chain.to_string())) {
                    continue;
                }
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
                &self.parts.encoding,
            )
            .to_string(),
        )
    }

    /// `{namespace:warm:claims}:KEY`: every claim under one Redis Cluster hash tag, so the
    /// funnel's pipelined claim checks and takes run in one slot.
    fn claim_key(&self, key: &str) -> String {
        format!("{{{}:warm:claims}}:{key}", self.parts.namespace)
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
}
