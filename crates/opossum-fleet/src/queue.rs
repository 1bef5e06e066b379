//! The Redis queues, on apalis-redis, with the project's admission control.
//!
//! apalis-redis keeps every pushed job in `{queue}:scheduled` (a sorted set by run time), and
//! each fetch promotes *all* due jobs at once through `unpack()` in Lua, which fails with "too
//! many results to unpack" above about 8,000 due jobs, and then every worker exits
//! (reproduced with 12,000 jobs against apalis-redis 1.0). So no producer
//! ever makes a job due directly:
//!
//! - a producer pushes every job *parked*, with a run time far in the future
//!   ([`PARK_BASE`] + the submit second, so parked jobs keep their submission order);
//! - the promote script ([`PROMOTE_SCRIPT`]) moves parked jobs to "due now", atomically and
//!   only while the due backlog (due in the sorted set plus the active list) is under the cap
//!   ([`QueueConfig::due_cap`], default 4,000); it publishes a wake-up so idle workers fetch at
//!   once instead of on their next poll;
//! - producers promote after pushing, and every worker promotes on a short tick, so parked work
//!   drains as fast as the fleet takes it.
//!
//! Jobs never leave Redis on the way (a parked job is an ordinary apalis job with a late run
//! time), so a crash anywhere loses nothing. The total backlog (parked and due) has its own cap
//! ([`QueueConfig::backlog_cap`]): a producer over it gets [`FleetError::QueueFull`], a clear
//! error, instead of growing Redis without bound.
//!
//! On a Redis Cluster every script above and every apalis-redis script must find its keys in
//! one slot, and apalis's `register_worker.lua` also writes the global `core:apalis:queues:list`
//! without declaring it. So every queue is named under that key's hash tag
//! ([`APALIS_TAG`]): `{core:apalis:queues:list}:opossum:process`. Every key of every queue is
//! then in one slot, with apalis unchanged; ARCHITECTURE.md says how a fleet that outgrows one
//! shard spreads its queues.
//!
//! Completed jobs leave their data behind in apalis-redis (`{queue}:done`, `{queue}:data`,
//! `{queue}:meta:{id}`: 5,000 done jobs left 5,006 keys, and the backend's own `vacuum()` scans
//! the whole data hash); the janitor script removes them in bounded batches.

use std::time::Duration;

use apalis::prelude::{BackendExt, TaskBuilder, TaskSink};
use apalis_codec::msgpack::MsgPackCodec;
use apalis_redis::{Config as RedisQueueConfig, RedisStorage};
use opossum_redis::{Connection, NodeReply, Redis, Settings};

use crate::{FleetError, Job, Priority};

/// The hash tag of every queue name: the slot of apalis-redis's global
/// `core:apalis:queues:list`, which its worker registration writes in the queue's script.
pub const APALIS_TAG: &str = "{core:apalis:queues:list}";

/// Run time (Unix seconds) from which a job counts as parked: the year 5138.
pub const PARK_BASE: u64 = 100_000_000_000;

/// Largest due backlog the promote script allows; apalis-redis fails at about 8,000.
pub const MAX_DUE_CAP: usize = 7_000;

/// Moves parked jobs to due while the due backlog is under the cap; wakes workers.
/// KEYS: scheduled set, active list. ARGV: now (s), cap, park base, batch, wake channel.
/// Returns {promoted, due after}.
pub const PROMOTE_SCRIPT: &str = r#"
local due = redis.call('ZCOUNT', KEYS[1], '-inf', ARGV[1]) + redis.call('LLEN', KEYS[2])
local room = tonumber(ARGV[2]) - due
if room <= 0 then return {0, due} end
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[3], '+inf', 'LIMIT', 0, math.min(room, tonumber(ARGV[4])))
for _, id in ipairs(ids) do
  redis.call('ZADD', KEYS[1], 'XX', ARGV[1], id)
end
if #ids > 0 then redis.call('PUBLISH', ARGV[5], #ids) end
return {#ids, due + #ids}
"#;

/// Removes up to ARGV[2] completed jobs' data. KEYS: done set, data hash. ARGV: meta prefix, n.
const JANITOR_SCRIPT: &str = r#"
local ids = redis.call('SPOP', KEYS[1], ARGV[2])
for _, id in ipairs(ids) do
  redis.call('HDEL', KEYS[2], id)
  redis.call('DEL', ARGV[1] .. ':' .. id)
end
return #ids
"#;

/// Queue settings shared by producers and workers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueConfig {
    /// key prefix (`opossum`): queues `{prefix}:process` and `{prefix}:warm`
    pub prefix: String,
    /// most jobs due at once per queue (at most [`MAX_DUE_CAP`])
    pub due_cap: usize,
    /// most jobs waiting (parked and due) per queue before producers are refused
    pub backlog_cap: usize,
    /// jobs a worker fetches per round trip
    pub batch_size: usize,
    /// worker heartbeat; a worker silent for `heartbeat * missed_heartbeats` is dead and its
    /// jobs go back to the queue. apalis sends the heartbeat from the backend's poll, which a
    /// worker busy with a full batch of long jobs on a loaded machine can delay by seconds:
    /// too short a window declares a live worker dead, its finished but not yet acknowledged
    /// jobs run again and the worker must restart (seen at 2 s x 2 under a full test run).
    pub heartbeat: Duration,
    /// see `heartbeat`
    pub missed_heartbeats: usize,
    /// replicas that must acknowledge a submitted batch and a batch of completion events
    /// before the producer or the worker goes on (`WAIT`, at most [`WAIT_TIMEOUT`]); 0 waits
    /// for none. Redis replicates asynchronously: without it, a failover can lose the writes
    /// a dying primary acknowledged last (a submitted job, an event).
    pub wait_replicas: usize,
}

/// Longest a `WAIT` for replicas blocks; past it the write stands unreplicated (and a warning
/// says so) rather than stalling the fleet.
pub const WAIT_TIMEOUT: Duration = Duration::from_secs(1);

/// Waits until `replicas` replicas of the node serving `key` hold every write sent there so
/// far; 0 returns at once. Fewer within [`WAIT_TIMEOUT`] is an error: the write may not
/// survive a failover, so the caller treats it as not written (a producer's submit fails, a
/// worker's job fails and reruns), which keeps delivery at-least-once.
pub(crate) async fn wait_for_replicas(
    connection: &Connection,
    key: &str,
    replicas: usize,
    what: &str,
) -> Result<(), FleetError> {
    if replicas == 0 {
        return Ok(());
    }
    let acknowledged = connection
        .clone()
        .wait_for_replicas(key, replicas, WAIT_TIMEOUT)
        .await?;
    if acknowledged < replicas {
        return Err(FleetError::Queue(format!(
            "{what}: {acknowledged} of the {replicas} replicas queues.wait_replicas asks for acknowledged within {WAIT_TIMEOUT:?}"
        )));
    }
    Ok(())
}

impl Default for QueueConfig {
    fn default() -> QueueConfig {
        QueueConfig {
            prefix: "opossum".into(),
            due_cap: 4_000,
            backlog_cap: 1_000_000,
            batch_size: 50,
            heartbeat: Duration::from_secs(3),
            missed_heartbeats: 5,
            wait_replicas: 0,
        }
    }
}

impl QueueConfig {
    /// The queue of `priority` in Redis (apalis's queue name):
    /// `{core:apalis:queues:list}:{prefix}:process` or `...:warm`.
    pub fn queue_name(&self, priority: Priority) -> String {
        self.tagged(priority.queue_suffix())
    }

    /// The queue of `priority` as users see it (`queue stats`, metrics, errors):
    /// `{prefix}:process` or `{prefix}:warm`.
    pub fn display_name(&self, priority: Priority) -> String {
        format!("{}:{}", self.prefix, priority.queue_suffix())
    }

    /// `name` under the prefix, in the queues' slot (what the benchmark's no-op queue uses).
    pub fn tagged(&self, name: &str) -> String {
        format!("{APALIS_TAG}:{}:{name}", self.prefix)
    }

    /// The pub/sub channel that wakes idle workers of `priority`'s queue.
    pub fn wake_channel(&self, priority: Priority) -> String {
        format!("{}:wake", self.queue_name(priority))
    }

    /// apalis-redis's settings for `priority`'s queue.
    pub fn backend(&self, priority: Priority) -> RedisQueueConfig {
        self.backend_named(&self.queue_name(priority))
    }

    /// apalis-redis's settings for a queue of this name (the benchmark's no-op queue uses it
    /// too, so both run with the same settings).
    pub fn backend_named(&self, queue: &str) -> RedisQueueConfig {
        RedisQueueConfig::default()
            .queue(queue)
            .batch_size(self.batch_size)
            .heartbeat_interval(self.heartbeat)
            .missed_heartbeats(self.missed_heartbeats)
            // `persist_results` also switches acknowledgements on: without it apalis 1.0
            // never acks a job, which stays in flight until orphan recovery reruns it.
            .persist_results(true)
            .emit_events(false)
    }
}

/// The apalis backend of one queue: apalis-redis with MessagePack payloads.
pub type JobStorage =
    apalis_core::backend::ext::with_codec::WithCodec<RedisStorage<Job, Connection>, MsgPackCodec>;

/// Where a queue's jobs are (the metrics' own type, so a depth is exported as measured).
pub use opossum_telemetry::QueueGauges as Depth;

/// The queues of one prefix: push, promote, measure, clean.
#[derive(Clone)]
pub struct Queues {
    config: QueueConfig,
    connection: Connection,
    promote: redis::Script,
    janitor: redis::Script,
}

fn now_secs() -> u64 {
    opossum_cache::unix_millis() / 1000
}

/// A connection for queue work ([`Settings::default`]: a generous response timeout and
/// reconnection with backoff), to one server or a cluster.
pub async fn connect(redis: &Redis) -> Result<Connection, FleetError> {
    Ok(redis.connect(&Settings::default()).await?)
}

/// Reads the queue Redis's `maxmemory-policy` and warns unless it is `noeviction`, as Sidekiq
/// does: an evicting policy drops jobs, completion events, leases and analytics when the server
/// fills, and at-least-once delivery is gone. `shared` says the cache tier lives on the same
/// server (no `queues.redis_url`), where the cache wants `allkeys-lfu`: the remedy is then a
/// Redis of the queues' own. A start-up check, never fatal: a server that refuses `CONFIG`
/// (some managed services rename it) leaves the policy unknown, and a failed read is logged.
/// On a cluster every primary is checked, and a warning names the node.
pub async fn check_queue_server(connection: &Connection, shared: bool) {
    let mut connection = connection.clone();
    let replies = connection
        .on_each_primary(redis::cmd("CONFIG").arg("GET").arg("maxmemory-policy"))
        .await;
    let replies = match replies {
        Ok(replies) => replies,
        Err(e) if matches!(e.kind(), redis::ErrorKind::Server(_)) => {
            tracing::debug!(error = %e, "CONFIG GET refused; the queue Redis's eviction policy is unknown");
            return;
        }
        Err(e) => {
            tracing::warn!(error = %e, "the queue Redis's eviction policy could not be read");
            return;
        }
    };
    for NodeReply { node, value } in replies {
        let policy = redis::from_redis_value::<Vec<String>>(value)
            .ok()
            .and_then(|reply| reply.get(1).cloned())
            .unwrap_or_default();
        warn_unless_noeviction(&node, &policy, shared);
    }
}

fn warn_unless_noeviction(node: &str, policy: &str, shared: bool) {
    if policy != "noeviction" {
        if shared {
            tracing::warn!(
                node,
                maxmemory_policy = %policy,
                "the queues share the cache's Redis, whose eviction policy can drop jobs, events and leases when it fills; give them a Redis of their own with maxmemory-policy noeviction (queues.redis_url)"
            );
        } else {
            tracing::warn!(
                node,
                maxmemory_policy = %policy,
                "the queue Redis can evict jobs, events and leases when it fills; set its maxmemory-policy to noeviction (writes are then refused and reported instead)"
            );
        }
    }
}

impl Queues {
    /// The queues of `config` on `connection`.
    pub fn new(mut config: QueueConfig, connection: Connection) -> Queues {
        config.due_cap = config.due_cap.clamp(1, MAX_DUE_CAP);
        config.batch_size = config.batch_size.clamp(1, 1000);
        Queues {
            config,
            connection,
            promote: redis::Script::new(PROMOTE_SCRIPT),
            janitor: redis::Script::new(JANITOR_SCRIPT),
        }
    }

    /// The settings.
    pub fn config(&self) -> &QueueConfig {
        &self.config
    }

    /// The connection.
    pub fn connection(&self) -> Connection {
        self.connection.clone()
    }

    /// The apalis backend of `priority`'s queue.
    pub fn storage(&self, priority: Priority) -> JobStorage {
        RedisStorage::new(self.connection.clone())
            .with_config(self.config.backend(priority))
            .with_codec(MsgPackCodec)
    }

    /// Submits jobs: refused with [`FleetError::QueueFull`] when a queue's backlog would pass
    /// the cap; otherwise pushed parked, in batches of 1,000, and promoted as room allows.
    pub async fn submit(&self, jobs: Vec<Job>) -> Result<(), FleetError> {
        for priority in Priority::ALL {
            let batch: Vec<Job> = jobs
                .iter()
                .filter(|j| j.priority == priority)
                .cloned()
                .collect();
            if batch.is_empty() {
                continue;
            }
            let depth = self.depth(priority).await?;
            let waiting = depth.parked + depth.due + depth.retrying;
            if waiting + batch.len() as u64 > self.config.backlog_cap as u64 {
                return Err(FleetError::QueueFull {
                    queue: self.config.display_name(priority),
                    waiting,
                    cap: self.config.backlog_cap as u64,
                });
            }
            let mut storage = self.storage(priority);
            for chunk in batch.chunks(1000) {
                let parked_at = PARK_BASE + now_secs();
                let tasks = chunk
                    .iter()
                    .cloned()
                    .map(|job| TaskBuilder::new(job).run_at_timestamp(parked_at).build());
                storage
                    .push_all(futures::stream::iter(tasks))
                    .await
                    .map_err(|e| FleetError::Queue(e.to_string()))?;
                wait_for_replicas(
                    &self.connection,
                    &self.config.backend(priority).scheduled_jobs_set(),
                    self.config.wait_replicas,
                    "submitted jobs",
                )
                .await?;
                self.promote(priority).await?;
            }
        }
        Ok(())
    }

    /// Promotes parked jobs of `priority`'s queue while there is room; returns how many, and
    /// how many jobs of the queue are due (waiting for a worker, fleet-wide) after it.
    pub async fn promote(&self, priority: Priority) -> Result<(u64, u64), FleetError> {
        let backend = self.config.backend(priority);
        let mut connection = self.connection.clone();
        let (promoted, due): (u64, u64) = self
            .promote
            .key(backend.scheduled_jobs_set())
            .key(backend.active_jobs_list())
            .arg(now_secs())
            .arg(self.config.due_cap)
            .arg(PARK_BASE)
            .arg(self.config.due_cap)
            .arg(self.config.wake_channel(priority))
            .invoke_async(&mut connection)
            .await?;
        Ok((promoted, due))
    }

    /// Removes the data of up to `limit` completed jobs; returns how many.
    pub async fn clean_done(&self, priority: Priority, limit: usize) -> Result<u64, FleetError> {
        let backend = self.config.backend(priority);
        let mut connection = self.connection.clone();
        Ok(self
            .janitor
            .key(backend.done_jobs_set())
            .key(backend.job_data_hash())
            .arg(backend.job_meta_hash())
            .arg(limit)
            .invoke_async(&mut connection)
            .await?)
    }

    /// Where `priority`'s jobs are, measured with plain commands: the active list alone reads
    /// 0 (every push lands in the sorted set) and the backend's own metrics query fails.
    pub async fn depth(&self, priority: Priority) -> Result<Depth, FleetError> {
        let backend = self.config.backend(priority);
        let now = now_secs();
        let mut connection = self.connection.clone();
        let (due_scheduled, retrying, parked, active, dead, workers): (
            u64,
            u64,
            u64,
            u64,
            u64,
            Vec<String>,
        ) = redis::pipe()
            .cmd("ZCOUNT")
            .arg(backend.scheduled_jobs_set())
            .arg("-inf")
            .arg(now)
            .cmd("ZCOUNT")
            .arg(backend.scheduled_jobs_set())
            .arg(format!("({now}"))
            .arg(format!("({PARK_BASE}"))
            .cmd("ZCOUNT")
            .arg(backend.scheduled_jobs_set())
            .arg(PARK_BASE)
            .arg("+inf")
            .cmd("LLEN")
            .arg(backend.active_jobs_list())
            .cmd("SCARD")
            .arg(backend.dead_jobs_set())
            .cmd("ZRANGE")
            .arg(backend.workers_set())
            .arg(0)
            .arg(-1)
            .query_async(&mut connection)
            .await?;
        let mut in_flight = 0;
        if !workers.is_empty() {
            let mut pipe = redis::pipe();
            for worker in &workers {
                pipe.cmd("SCARD")
                    .arg(format!("{}:{worker}", backend.inflight_jobs_set()));
            }
            let counts: Vec<u64> = pipe.query_async(&mut connection).await?;
            in_flight = counts.iter().sum();
        }
        Ok(Depth {
            parked,
            due: due_scheduled + active,
            retrying,
            in_flight,
            dead,
            workers: workers.len() as u64,
        })
    }

    /// Up to `limit` jobs of the dead set (retries exhausted), with their last error.
    pub async fn dead(&self, priority: Priority, limit: usize) -> Result<Vec<DeadJob>, FleetError> {
        let backend = self.config.backend(priority);
        let mut connection = self.connection.clone();
        let ids: Vec<String> = redis::cmd("SRANDMEMBER")
            .arg(backend.dead_jobs_set())
            .arg(limit)
            .query_async(&mut connection)
            .await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.cmd("HGET").arg(backend.job_data_hash()).arg(id);
            pipe.cmd("HGETALL")
                .arg(format!("{}:{id}", backend.job_meta_hash()));
        }
        let replies: Vec<redis::Value> = pipe.query_async(&mut connection).await?;
        let mut out = Vec::with_capacity(ids.len());
        for (id, pair) in ids.into_iter().zip(replies.chunks(2)) {
            let data: Option<Vec<u8>> = redis::from_redis_value_ref(&pair[0]).ok().flatten();
            let meta: std::collections::HashMap<String, String> =
                redis::from_redis_value_ref(&pair[1]).unwrap_or_default();
            let job = data.and_then(|bytes| rmp_serde::from_slice::<Job>(&bytes).ok());
            out.push(DeadJob {
                task_id: id,
                job,
                attempts: meta
                    .get("attempts")
                    .and_then(|a| a.parse().ok())
                    .unwrap_or(0),
                last_error: meta.get("result").cloned().unwrap_or_default(),
            });
        }
        Ok(out)
    }
}

/// A job in the dead set.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeadJob {
    /// apalis's task id
    pub task_id: String,
    /// the job, when its payload is still readable
    pub job: Option<Job>,
    /// attempts made
    pub attempts: u32,
    /// what the last attempt reported, when the backend kept it
    pub last_error: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The check a cluster makes, with no server: every key apalis-redis and the scripts here
    /// touch for a queue is in the slot of apalis's global `core:apalis:queues:list`, which its
    /// worker registration writes undeclared.
    #[test]
    fn every_queue_key_is_in_apalis_global_slot() {
        let global = opossum_redis::slot(b"core:apalis:queues:list");
        let config = QueueConfig::default();
        for priority in Priority::ALL {
            let backend = config.backend(priority);
            for key in [
                backend.scheduled_jobs_set(),
                backend.active_jobs_list(),
                backend.dead_jobs_set(),
                backend.done_jobs_set(),
                backend.failed_jobs_set(),
                backend.workers_set(),
                backend.job_data_hash(),
                format!("{}:some-id", backend.job_meta_hash()),
                format!("{}:some-worker", backend.inflight_jobs_set()),
                backend.signal_list(),
                backend.idempotency_key_set(),
            ] {
                assert_eq!(opossum_redis::slot(key.as_bytes()), global, "{key}");
            }
            assert_eq!(
                config.display_name(priority),
                format!("opossum:{}", priority.queue_suffix())
            );
        }
    }
}
