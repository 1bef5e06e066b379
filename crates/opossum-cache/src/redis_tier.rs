//! L2: the Redis tier, shared by the fleet.
//!
//! Layout, for an entry key `K` = `namespace:{image-hash}:variant-hash` (the braces are a
//! Redis Cluster hash tag: every key below of one image is in one slot, so the transaction and
//! the scripts are legal on a cluster and stay atomic):
//! - `K`: the MessagePack entry, with the entry's TTL (`PX`);
//! - `K:meta`: the seed's RedisCacheManager hash (`created_at, size_bytes, ttl, access_count,
//!   last_access`), same TTL;
//! - `namespace:{image-hash}:index`: a set of the image's keys, whose TTL only ever grows to
//!   the longest member's, so invalidation reads one set instead of running `KEYS`.
//!
//! A write is one `MULTI` transaction; a read is one pipeline of a plain `GET` and a small script
//! that bumps the metadata only when the metadata hash exists (so a read never creates a key
//! without a TTL): one round trip, and the value never passes through Lua.
//! The server is one Redis or a Redis Cluster ([`opossum_redis`]); reads of many keys at once
//! (`expiries`) are split by slot. The connection reconnects on its own (on a cluster, it
//! follows a failover to the promoted replica); a failed command is a [`TierError`] and the
//! hierarchy skips this tier for a while. Usage and the server checks read every primary.

use std::sync::Arc;
use std::time::Duration;

use opossum_redis::{Connection, NodeReply, Redis, Settings};
use redis::AsyncCommands;

use crate::{Entry, Tier, TierError, TierKind, TierUsage, unix_millis};

/// Bumps the access metadata of an entry, only when its hash exists: the hash has the value's
/// TTL, so a read never creates a key that lives forever. The value itself is read by a plain
/// `GET` in the same pipeline; passing it through Lua would copy it twice more.
const TOUCH_SCRIPT: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HINCRBY', KEYS[1], 'access_count', 1)
  redis.call('HSET', KEYS[1], 'last_access', ARGV[1])
end
return 0
"#;

const INVALIDATE_SCRIPT: &str = r#"
local keys = redis.call('SMEMBERS', KEYS[1])
for _, key in ipairs(keys) do
  redis.call('DEL', key, key .. ':meta')
end
redis.call('DEL', KEYS[1])
return #keys
"#;

/// Redis tier settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// `redis://host:port/db`, or `redis+cluster://host:port,host:port` for a cluster
    pub url: String,
    /// how long one command may take before the tier counts as failed
    pub response_timeout: Duration,
    /// longest an entry stays, whatever its own TTL (`caching.redis_cache.ttl`)
    pub max_ttl: Option<Duration>,
}

impl RedisConfig {
    /// Settings for `url` with the default timeout.
    pub fn new(url: impl Into<String>) -> RedisConfig {
        RedisConfig {
            url: url.into(),
            response_timeout: Duration::from_millis(1000),
            max_ttl: None,
        }
    }
}

/// The Redis tier.
pub struct RedisTier {
    connection: Connection,
    touch_script: redis::Script,
    invalidate_script: redis::Script,
    max_ttl: Option<Duration>,
}

impl RedisTier {
    /// A tier for `config`. Connects lazily: a Redis that is down now makes the first commands
    /// fail (and the hierarchy skip the tier), not the start-up.
    pub fn new(config: &RedisConfig) -> Result<RedisTier, TierError> {
        let fail = |e: redis::RedisError| TierError::new(TierKind::Redis, e);
        let settings = Settings {
            response_timeout: Some(config.response_timeout),
            connection_timeout: config.response_timeout,
            retries: 1,
            max_delay: Duration::from_millis(200),
        };
        let connection = Redis::open(&config.url)
            .and_then(|redis| redis.connect_lazy(&settings))
            .map_err(fail)?;
        Ok(RedisTier {
            connection,
            touch_script: redis::Script::new(TOUCH_SCRIPT),
            invalidate_script: redis::Script::new(INVALIDATE_SCRIPT),
            max_ttl: config.max_ttl,
        })
    }

    fn fail(e: redis::RedisError) -> TierError {
        TierError::new(TierKind::Redis, e)
    }

    /// Compares the server's `maxmemory-policy` (when `policy` is given) and `maxmemory` (when
    /// `max_memory` is) with the configured ones and warns on a mismatch: Redis is configured
    /// on the server, and the design relies on it evicting the least frequently used entries
    /// when it fills. A server the queues share is checked by the fleet instead, which gives
    /// the advice that fits both (`opossum_fleet::check_queue_server`). On a cluster every
    /// primary is checked and a warning names the node. Returns the policy (the first
    /// primary's).
    pub async fn check_server(
        &self,
        policy: Option<&str>,
        max_memory: Option<u64>,
    ) -> Result<String, TierError> {
        let mut connection = self.connection.clone();
        let replies = connection
            .on_each_primary(redis::cmd("CONFIG").arg("GET").arg("maxmemory*"))
            .await
            .map_err(Self::fail)?;
        // `max_memory` is the whole tier's: on a cluster each primary holds its share.
        let per_node = max_memory.map(|total| total / replies.len().max(1) as u64);
        let mut first_policy = None;
        for NodeReply { node, value } in replies {
            let reply: Vec<String> =
                redis::from_redis_value(value).map_err(|e| Self::fail(e.into()))?;
            let (server_policy, server_memory) = Self::memory_settings(&reply);
            Self::warn_on_mismatch(&node, &server_policy, server_memory, policy, per_node);
            first_policy.get_or_insert(server_policy);
        }
        Ok(first_policy.unwrap_or_default())
    }

    /// `maxmemory-policy` and `maxmemory` from a `CONFIG GET maxmemory*` reply.
    fn memory_settings(reply: &[String]) -> (String, u64) {
        let setting = |name: &str| {
            reply
                .chunks(2)
                .find(|pair| pair[0] == name)
                .and_then(|pair| pair.get(1).cloned())
                .unwrap_or_default()
        };
        (
            setting("maxmemory-policy"),
            setting("maxmemory").parse().unwrap_or(0),
        )
    }

    fn warn_on_mismatch(
        node: &str,
        server_policy: &str,
        server_memory: u64,
        policy: Option<&str>,
        max_memory: Option<u64>,
    ) {
        if let Some(policy) = policy
            && server_policy != policy
        {
            tracing::warn!(
                tier = "redis",
                node,
                maxmemory_policy = %server_policy,
                expected = %policy,
                "redis maxmemory-policy differs from caching.redis_cache.eviction_policy; set it on the server (allkeys-lfu evicts rarely used entries when the cache fills)"
            );
        }
        if let Some(expected) = max_memory
            && server_memory != expected
        {
            tracing::warn!(
                tier = "redis",
                node,
                maxmemory = server_memory,
                expected,
                "redis maxmemory differs from caching.redis_cache.max_memory (0 is unbounded; on a cluster each primary is expected to hold an equal share of it); set it on the server"
            );
        }
    }

    /// A connection for callers that need Redis directly (leases, events).
    pub fn connection(&self) -> Connection {
        self.connection.clone()
    }

    /// The usage of each primary (one entry on a single server): what `opossum cache size`
    /// reports per shard.
    pub async fn usage_per_node(&self) -> Result<Vec<(String, TierUsage)>, TierError> {
        let mut connection = self.connection.clone();
        // The node list is read once, so each node's figures come from that node (a topology
        // change between per-command node lists could pair one node's size with another's
        // memory). `INFO` takes several sections at once (Redis 7).
        let nodes = connection.primaries().await.map_err(Self::fail)?;
        let mut out = Vec::with_capacity(nodes.len());
        for node in nodes {
            let items = connection
                .on_node(&node, &redis::cmd("DBSIZE"))
                .await
                .map_err(Self::fail)?;
            let info = connection
                .on_node(&node, redis::cmd("INFO").arg("memory").arg("stats"))
                .await
                .map_err(Self::fail)?;
            let items: u64 = redis::from_redis_value(items).map_err(|e| Self::fail(e.into()))?;
            let info: String = redis::from_redis_value(info).map_err(|e| Self::fail(e.into()))?;
            out.push((
                node,
                TierUsage {
                    items,
                    bytes: info_field(&info, "used_memory"),
                    capacity: info_field(&info, "maxmemory"),
                    evictions: Some(info_field(&info, "evicted_keys")),
                    corrupt: 0,
                    memory: Some(info_field(&info, "used_memory")),
                },
            ));
        }
        Ok(out)
    }
}

/// A numeric field of an `INFO` reply (0 when absent).
fn info_field(info: &str, name: &str) -> u64 {
    info.lines()
        .find_map(|line| {
            line.strip_prefix(name)?
                .strip_prefix(':')?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// The write of one entry: one transaction over the value, its metadata and the image's index
/// (one slot: they share the image's hash tag).
fn write_transaction(
    key: &str,
    body: &[u8],
    created_at_s: u64,
    ttl_ms: u64,
    now_s: u64,
) -> redis::Pipeline {
    let meta = format!("{key}:meta");
    let index = index_key(key);
    let mut pipe = redis::pipe();
    pipe.atomic()
        .cmd("SET")
        .arg(key)
        .arg(body)
        .arg("PX")
        .arg(ttl_ms)
        .ignore()
        .cmd("HSET")
        .arg(&meta)
        .arg("created_at")
        .arg(created_at_s)
        .arg("size_bytes")
        .arg(body.len())
        .arg("ttl")
        .arg(ttl_ms / 1000)
        .arg("access_count")
        .arg(0)
        .arg("last_access")
        .arg(now_s)
        .ignore()
        .cmd("PEXPIRE")
        .arg(&meta)
        .arg(ttl_ms)
        .ignore()
        .cmd("SADD")
        .arg(&index)
        .arg(key)
        .ignore()
        .cmd("PEXPIRE")
        .arg(&index)
        .arg(ttl_ms)
        .arg("NX")
        .ignore()
        .cmd("PEXPIRE")
        .arg(&index)
        .arg(ttl_ms)
        .arg("GT")
        .ignore();
    pipe
}

/// The removal of one entry: its value and metadata, and its place in the image's index.
fn remove_transaction(key: &str) -> redis::Pipeline {
    let mut pipe = redis::pipe();
    pipe.atomic()
        .cmd("DEL")
        .arg(key)
        .arg(format!("{key}:meta"))
        .ignore()
        .cmd("SREM")
        .arg(index_key(key))
        .arg(key)
        .ignore();
    pipe
}

/// The read of one entry: a plain `GET` and the metadata bump, in one round trip.
fn read_pipeline(script: &redis::Script, key: &str, now_s: u64) -> redis::Pipeline {
    let mut pipe = redis::pipe();
    pipe.get(key)
        .invoke_script(script.key(format!("{key}:meta")).arg(now_s))
        .ignore();
    pipe
}

fn index_key(key: &str) -> String {
    // `namespace:{image-hash}:` is everything up to the last colon.
    let prefix = key.rsplit_once(':').map_or(key, |(p, _)| p);
    format!("{prefix}:index")
}

#[async_trait::async_trait]
impl Tier for RedisTier {
    fn kind(&self) -> TierKind {
        TierKind::Redis
    }

    async fn get(&self, key: &str) -> Result<Option<Arc<Entry>>, TierError> {
        let mut connection = self.connection.clone();
        let now = unix_millis() / 1000;
        let read = |script: &redis::Script| read_pipeline(script, key, now);
        let value: (Option<Vec<u8>>,) = match read(&self.touch_script)
            .query_async(&mut connection)
            .await
        {
            // The server has not seen the script yet (first read, or after a restart).
            Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                self.touch_script
                    .prepare_invoke()
                    .load_async(&mut connection)
                    .await
                    .map_err(Self::fail)?;
                read(&self.touch_script)
                    .query_async(&mut connection)
                    .await
                    .map_err(Self::fail)?
            }
            other => other.map_err(Self::fail)?,
        };
        let (value,) = value;
        let Some(bytes) = value else { return Ok(None) };
        match Entry::from_msgpack(&bytes) {
            Ok(entry) if entry.remaining(unix_millis()).is_some() => Ok(Some(Arc::new(entry))),
            Ok(_expired) => Ok(None),
            Err(e) => {
                tracing::warn!(tier = "redis", key, error = %e, "undecodable entry dropped");
                let _: () = connection.del(key).await.map_err(Self::fail)?;
                Ok(None)
            }
        }
    }

    async fn put(&self, key: &str, entry: Arc<Entry>) -> Result<bool, TierError> {
        let Some(remaining) = entry.remaining(unix_millis()) else {
            return Ok(false);
        };
        let remaining = self.max_ttl.map_or(remaining, |cap| remaining.min(cap));
        let ttl_ms = remaining.as_millis().max(1) as u64;
        let body = entry.to_msgpack();
        let now = unix_millis() / 1000;
        let mut connection = self.connection.clone();
        // Through a migration of the image's slot too (resharding while the fleet runs).
        connection
            .transaction(&write_transaction(
                key,
                &body,
                entry.created_at_ms / 1000,
                ttl_ms,
                now,
            ))
            .await
            .map_err(Self::fail)?;
        Ok(true)
    }

    async fn remove(&self, key: &str) -> Result<(), TierError> {
        let mut connection = self.connection.clone();
        connection
            .transaction(&remove_transaction(key))
            .await
            .map_err(Self::fail)
    }

    async fn invalidate_image(&self, image_prefix: &str) -> Result<u64, TierError> {
        let index = format!("{image_prefix}index");
        let mut connection = self.connection.clone();
        let removed: u64 = self
            .invalidate_script
            .key(index)
            .invoke_async(&mut connection)
            .await
            .map_err(Self::fail)?;
        Ok(removed)
    }

    async fn expiries(&self, keys: &[String]) -> Result<Vec<Option<u64>>, TierError> {
        let now = unix_millis();
        let ttls: Vec<i64> = self
            .connection
            .query_by_slot(keys, |pipe, key| {
                pipe.cmd("PTTL").arg(key);
            })
            .await
            .map_err(Self::fail)?;
        // -2: no such key; -1: no TTL (never written by this tier).
        Ok(ttls
            .into_iter()
            .map(|ttl| (ttl >= 0).then(|| now + ttl as u64))
            .collect())
    }

    async fn usage(&self) -> Result<TierUsage, TierError> {
        let mut total = TierUsage {
            evictions: Some(0),
            ..TierUsage::default()
        };
        let nodes = self.usage_per_node().await?;
        // One unbounded node makes the whole unbounded (0).
        let bounded = nodes.iter().all(|(_, node)| node.capacity > 0);
        for (_, node) in nodes {
            total.items += node.items;
            total.bytes += node.bytes;
            total.capacity += if bounded { node.capacity } else { 0 };
            total.evictions = Some(total.evictions.unwrap_or(0) + node.evictions.unwrap_or(0));
            total.memory = Some(total.memory.unwrap_or(0) + node.memory.unwrap_or(0));
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The check a cluster makes, with no server: every transaction, pipeline and script of
    /// the tier keeps to one slot for a key in the product's layout.
    #[test]
    fn every_command_of_the_tier_keeps_to_one_slot() {
        let key = "opossum:{0123456789abcdef}:ffee";
        for pipe in [
            write_transaction(key, b"body", 1, 1000, 2),
            remove_transaction(key),
            read_pipeline(&redis::Script::new(TOUCH_SCRIPT), key, 2),
        ] {
            opossum_redis::check_one_slot(&pipe).unwrap();
        }
        // The invalidation script declares the index alone; the keys it reads from the index
        // are the image's, in its slot (the index holds only keys with its tag).
        assert_eq!(
            opossum_redis::slot(index_key(key).as_bytes()),
            opossum_redis::slot(key.as_bytes())
        );
        // A key without the tag would not: the check is not vacuous.
        assert!(opossum_redis::check_one_slot(&write_transaction("a:b:c", b"", 1, 1, 1)).is_err());
    }

    #[test]
    fn index_key_shares_the_image_prefix() {
        assert_eq!(
            index_key("opossum:{0123abcd}:ffff"),
            "opossum:{0123abcd}:index"
        );
    }
}
