//! Where analytics are kept: one [`Backend`] trait, implemented by Redis (shared by the fleet)
//! and by [`MemoryStore`] (embedded mode), behind the [`Store`] handle.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use opossum_redis::Connection;

use crate::{AnalyticsConfig, AnalyticsError, MemoryStore, Pending};

/// Cuts a sorted set back to its `ARGV[1]` highest members once it holds twice that many.
const TRIM_SCRIPT: &str = r#"
local cap = tonumber(ARGV[1])
if redis.call('ZCARD', KEYS[1]) > 2 * cap then
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(cap + 1))
end
return 0
"#;

/// Where analytics are kept: Redis, shared by the fleet (the layout in the crate
/// documentation), or this process's memory in embedded mode, where one process is the whole
/// fleet. Both implement one backend trait; the query scenario in `tests/analytics.rs` runs
/// against both.
#[derive(Clone)]
pub struct Store(pub(crate) Arc<dyn Backend>);

impl From<Connection> for Store {
    fn from(connection: Connection) -> Store {
        Store(Arc::new(RedisStore(connection)))
    }
}

impl From<MemoryStore> for Store {
    fn from(store: MemoryStore) -> Store {
        Store(Arc::new(store))
    }
}

/// What a store does: write a batch, rank members over weighted buckets, read counters and
/// the sampled stream.
#[async_trait::async_trait]
pub(crate) trait Backend: Send + Sync {
    /// Adds `pending` to the buckets, bounded and expiring per `config`.
    async fn write(
        &self,
        config: &AnalyticsConfig,
        pending: &Pending,
    ) -> Result<(), AnalyticsError>;
    /// The `n` highest members of `what` over `starts`, each bucket's counts times its weight.
    async fn top(
        &self,
        config: &AnalyticsConfig,
        what: &str,
        starts: &[u64],
        weights: &[f64],
        n: usize,
    ) -> Result<Vec<(String, f64)>, AnalyticsError>;
    /// The counter hash of each bucket in `starts`.
    async fn counts(
        &self,
        config: &AnalyticsConfig,
        starts: &[u64],
    ) -> Result<Vec<HashMap<String, f64>>, AnalyticsError>;
    /// The sampled requests (key, bytes) from `since_ms` on, oldest first.
    async fn samples(
        &self,
        config: &AnalyticsConfig,
        since_ms: u64,
    ) -> Result<Vec<(String, u64)>, AnalyticsError>;
}

/// The Redis store.
struct RedisStore(Connection);

#[async_trait::async_trait]
impl Backend for RedisStore {
    async fn write(
        &self,
        config: &AnalyticsConfig,
        pending: &Pending,
    ) -> Result<(), AnalyticsError> {
        let mut connection = self.0.clone();
        write_pipeline(config, pending)
            .query_async::<()>(&mut connection)
            .await?;
        Ok(())
    }

    async fn top(
        &self,
        config: &AnalyticsConfig,
        what: &str,
        starts: &[u64],
        weights: &[f64],
        n: usize,
    ) -> Result<Vec<(String, f64)>, AnalyticsError> {
        let mut connection = self.0.clone();
        let (members,): (Vec<(String, f64)>,) = top_transaction(config, what, starts, weights, n)
            .query_async(&mut connection)
            .await?;
        Ok(members)
    }

    async fn counts(
        &self,
        config: &AnalyticsConfig,
        starts: &[u64],
    ) -> Result<Vec<HashMap<String, f64>>, AnalyticsError> {
        let mut pipe = redis::pipe();
        for start in starts {
            pipe.cmd("HGETALL").arg(config.key(*start, "counts"));
        }
        Ok(pipe.query_async(&mut self.0.clone()).await?)
    }

    async fn samples(
        &self,
        config: &AnalyticsConfig,
        since_ms: u64,
    ) -> Result<Vec<(String, u64)>, AnalyticsError> {
        let mut connection = self.0.clone();
        let stream = config.sample_key();
        let mut out = Vec::new();
        let mut start = format!("{since_ms}-0");
        loop {
            let page: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
                .arg(&stream)
                .arg(&start)
                .arg("+")
                .arg("COUNT")
                .arg(10_000)
                .query_async(&mut connection)
                .await?;
            let Some((last, _)) = page.last() else { break };
            start = format!("({last}");
            let full = page.len() == 10_000;
            for (_, fields) in page {
                let field = |name: &str| {
                    fields
                        .iter()
                        .find(|(k, _)| k == name)
                        .map(|(_, v)| v.clone())
                };
                if let (Some(key), Some(bytes)) = (field("k"), field("b")) {
                    out.push((key, bytes.parse().unwrap_or(0)));
                }
            }
            if !full {
                break;
            }
        }
        Ok(out)
    }
}

#[async_trait::async_trait]
impl Backend for MemoryStore {
    async fn write(
        &self,
        config: &AnalyticsConfig,
        pending: &Pending,
    ) -> Result<(), AnalyticsError> {
        self.apply(config, pending);
        Ok(())
    }

    async fn top(
        &self,
        _config: &AnalyticsConfig,
        what: &str,
        starts: &[u64],
        weights: &[f64],
        n: usize,
    ) -> Result<Vec<(String, f64)>, AnalyticsError> {
        Ok(MemoryStore::top(self, what, starts, weights, n))
    }

    async fn counts(
        &self,
        _config: &AnalyticsConfig,
        starts: &[u64],
    ) -> Result<Vec<HashMap<String, f64>>, AnalyticsError> {
        Ok(MemoryStore::counts(self, starts))
    }

    async fn samples(
        &self,
        _config: &AnalyticsConfig,
        since_ms: u64,
    ) -> Result<Vec<(String, u64)>, AnalyticsError> {
        Ok(MemoryStore::samples(self, since_ms))
    }
}

/// The weighted union of `what` over `starts` into a scratch key, its head, and the scratch
/// key's removal, in one transaction (one slot, as [`write_pipeline`]).
fn top_transaction(
    config: &AnalyticsConfig,
    what: &str,
    starts: &[u64],
    weights: &[f64],
    n: usize,
) -> redis::Pipeline {
    let scratch = format!("{}:scratch:{:016x}", config.stats_tag(), scratch_id());
    let mut union = redis::cmd("ZUNIONSTORE");
    union.arg(&scratch).arg(starts.len());
    for start in starts {
        union.arg(config.key(*start, what));
    }
    union.arg("WEIGHTS");
    for weight in weights {
        union.arg(*weight);
    }
    let mut pipe = redis::pipe();
    pipe.atomic()
        .add_command(union)
        .ignore()
        .cmd("ZRANGE")
        .arg(&scratch)
        .arg(0)
        .arg(n as i64 - 1)
        .arg("REV")
        .arg("WITHSCORES")
        .cmd("DEL")
        .arg(&scratch)
        .ignore();
    pipe
}

/// One flush: every bucket's increments, trims and expiries, and the samples, in one pipeline
/// (one slot: every analytics key carries the `{prefix:stats}` tag).
fn write_pipeline(config: &AnalyticsConfig, pending: &Pending) -> redis::Pipeline {
    let ttl_secs = (config.retention + config.bucket).as_secs().max(1);
    let mut pipe = redis::pipe();
    for (start, delta) in &pending.buckets {
        let images = config.key(*start, "images");
        let variants = config.key(*start, "variants");
        let counts = config.key(*start, "counts");
        for (key, members, cap) in [
            (&images, &delta.images, config.top_images),
            (&variants, &delta.variants, config.top_variants),
        ] {
            for (member, count) in members {
                pipe.cmd("ZINCRBY")
                    .arg(key)
                    .arg(*count)
                    .arg(member)
                    .ignore();
            }
            pipe.cmd("EVAL")
                .arg(TRIM_SCRIPT)
                .arg(1)
                .arg(key)
                .arg(cap)
                .ignore();
        }
        for (field, count) in &delta.counts {
            pipe.cmd("HINCRBY")
                .arg(&counts)
                .arg(field)
                .arg(*count)
                .ignore();
        }
        for (field, ms) in &delta.times {
            pipe.cmd("HINCRBYFLOAT")
                .arg(&counts)
                .arg(field)
                .arg(*ms)
                .ignore();
        }
        for key in [&images, &variants, &counts] {
            pipe.cmd("EXPIRE").arg(key).arg(ttl_secs).ignore();
        }
    }
    if !pending.samples.is_empty() {
        let stream = config.sample_key();
        for (key, bytes, at_ms) in &pending.samples {
            pipe.cmd("XADD")
                .arg(&stream)
                .arg("MAXLEN")
                .arg("~")
                .arg(config.sample_cap.max(1))
                .arg("*")
                .arg("k")
                .arg(key)
                .arg("b")
                .arg(*bytes)
                .arg("t")
                .arg(*at_ms)
                .ignore();
        }
        pipe.cmd("EXPIRE").arg(&stream).arg(ttl_secs).ignore();
    }
    pipe
}

/// A name for a query's scratch key, unique across processes and calls (time, pid, counter).
fn scratch_id() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    now_ms.rotate_left(20) ^ (u64::from(std::process::id()) << 32) ^ n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Access, Answer, Variant};

    /// The check a cluster makes, with no server: a flush over two buckets with samples, and
    /// a ranked query over three buckets, each keep to one slot.
    #[test]
    fn flushes_and_queries_keep_to_one_slot() {
        let config = AnalyticsConfig {
            sample_rate: 1.0,
            ..AnalyticsConfig::new("opossum")
        };
        let mut pending = Pending::default();
        for (i, at_ms) in [(0, 1_000u64), (1, 7_201_000)] {
            pending.add(
                &config,
                &Access {
                    variant: Variant {
                        image_id: format!("photos/{i}.jpg"),
                        chain: "thumbnail:64".into(),
                        key: format!("opossum:{{{i:016x}}}:00"),
                        options: Default::default(),
                    },
                    category: opossum_ops::Category::Thumbnail,
                    answer: Answer::Computed,
                    bytes: 10,
                    duration_ms: 1.0,
                    at_ms,
                },
            );
        }
        assert_eq!(pending.buckets.len(), 2);
        assert_eq!(pending.samples.len(), 2);
        opossum_redis::check_one_slot(&write_pipeline(&config, &pending)).unwrap();
        let starts = [0, 3_600_000, 7_200_000];
        opossum_redis::check_one_slot(&top_transaction(
            &config,
            "images",
            &starts,
            &[1.0, 1.0, 1.0],
            10,
        ))
        .unwrap();
    }
}
