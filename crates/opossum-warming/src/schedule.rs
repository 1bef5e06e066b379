//! The long-running scheduler ([`Warmer::run`]): predictive every `interval`, background on the
//! cron schedule and in low traffic, related-variant from completion events (siblings of a
//! request, among the chains users ask for).

use crate::{Strategy, Summary, WarmError, Warmer};

/// The first time after `after_ms` (Unix milliseconds, UTC) that `schedule` fires.
pub fn next_occurrence(schedule: &croner::Cron, after_ms: u64) -> Option<u64> {
    let after = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(after_ms as i64)?;
    let next = schedule.find_next_occurrence(&after, false).ok()?;
    u64::try_from(next.timestamp_millis()).ok()
}

impl Warmer {
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
        let mut asked = std::collections::HashSet::new();
        let mut shutdown = std::pin::pin!(shutdown);
        tracing::info!(schedule = %s.schedule, interval = ?s.interval, "scheduler started");
        loop {
            let now = opossum_cache::unix_millis();
            if now >= next_predictive {
                next_predictive = now + s.interval.as_millis() as u64;
                self.logged(Strategy::Predictive, "interval").await;
                match self.asked_chains(now).await {
                    Ok(chains) => asked = chains,
                    Err(e) => tracing::warn!(error = %e, "chains asked for unavailable"),
                }
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
            // What users ask for: the analytics window (refreshed with each predictive run)
            // and every user request seen since.
            self.note_asked(&events, &mut asked);
            let candidates = self.related_candidates(&events, &asked, opossum_cache::unix_millis());
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
