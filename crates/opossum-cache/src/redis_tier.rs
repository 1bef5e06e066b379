//! L2: the Redis tier, shared by the fleet.
//!
//! Layout, for an entry key `K` = `{namespace}:{image-hash}:{variant-hash}`:
//! - `K`: the MessagePack entry, with the entry's TTL (`PX`);
//! - `K:meta`: the seed's RedisCacheManager hash (`created_at, size_bytes, ttl, access_count,
//!   last_access`), same TTL;
//! - `{namespace}:{image-hash}:index`: a set of the image's keys, whose TTL only ever grows to
//!   the longest member's, so invalidation reads one set instead of running `KEYS`.
//!
//! A write is one `MULTI` transaction; a read is one pipeline of a plain `GET` and a small script
//! that bumps the metadata only when the metadata hash exists (so a read never creates a key
//! without a TTL): one round trip, and the value never passes through Lua.
//! The connection manager reconnects on its own; a failed command is a [`TierError`] and the
//! hierarchy skips this tier for a while.

use std::sync::Arc;
use std::time::Duration;

use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

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
    /// `redis://host:port/db`
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
    connection: ConnectionManager,
    touch_script: redis::Script,
    invalidate_script: redis::Script,
    max_ttl: Option<Duration>,
}

impl RedisTier {
    /// A tier for `config`. Connects lazily: a Redis that is down now makes the first commands
    /// fail (and the hierarchy skip the tier), not the start-up.
    pub fn new(config: &RedisConfig) -> Result<RedisTier, TierError> {
        let fail = |e: redis::RedisError| TierError::new(TierKind::Redis, e);
        let client = redis::Client::open(config.url.as_str()).map_err(fail)?;
        let manager_config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(config.response_timeout))
            .set_connection_timeout(Some(config.response_timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(200));
        let connection =
            ConnectionManager::new_lazy_with_config(client, manager_config).map_err(fail)?;
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
    /// the advice that fits both (`opossum_fleet::check_queue_server`). Returns the server's
    /// policy.
    pub async fn check_server(
        &self,
        policy: Option<&str>,
        max_memory: Option<u64>,
    ) -> Result<String, TierError> {
        let mut connection = self.connection.clone();
        let reply: Vec<String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("maxmemory*")
            .query_async(&mut connection)
            .await
            .map_err(Self::fail)?;
        let setting = |name: &str| {
            reply
                .chunks(2)
                .find(|pair| pair[0] == name)
                .and_then(|pair| pair.get(1).cloned())
                .unwrap_or_default()
        };
        let server_policy = setting("maxmemory-policy");
        if let Some(policy) = policy
            && server_policy != policy
        {
            tracing::warn!(
                tier = "redis",
                maxmemory_policy = %server_policy,
                expected = %policy,
                "redis maxmemory-policy differs from caching.redis_cache.eviction_policy; set it on the server (allkeys-lfu evicts rarely used entries when the cache fills)"
            );
        }
        if let Some(expected) = max_memory {
            let server: u64 = setting("maxmemory").parse().unwrap_or(0);
            if server != expected {
                tracing::warn!(
                    tier = "redis",
                    maxmemory = server,
                    expected,
                    "redis maxmemory differs from caching.redis_cache.max_memory (0 is unbounded); set it on the server"
                );
            }
        }
        Ok(server_policy)
    }

    /// A connection for callers that need Redis directly (leases, events).
    pub fn connection(&self) -> ConnectionManager {
        self.connection.clone()
    }
}

fn index_key(key: &str) -> String {
    // `{namespace}:{image-hash}:` is everything up to the last colon.
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
        let meta = format!("{key}:meta");
        let now = unix_millis() / 1000;
        let read = |script: &redis::Script| {
            let mut pipe = redis::pipe();
            pipe.get(key)
                .invoke_script(script.key(&meta).arg(now))
                .ignore();
            pipe
        };
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
        let meta = format!("{key}:meta");
        let index = index_key(key);
        let now = unix_millis() / 1000;
        let mut connection = self.connection.clone();
        redis::pipe()
            .atomic()
            .cmd("SET")
            .arg(key)
            .arg(&body)
            .arg("PX")
            .arg(ttl_ms)
            .ignore()
            .cmd("HSET")
            .arg(&meta)
            .arg("created_at")
            .arg(entry.created_at_ms / 1000)
            .arg("size_bytes")
            .arg(body.len())
            .arg("ttl")
            .arg(ttl_ms / 1000)
            .arg("access_count")
            .arg(0)
            .arg("last_access")
            .arg(now)
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
            .ignore()
            .query_async::<()>(&mut connection)
            .await
            .map_err(Self::fail)?;
        Ok(true)
    }

    async fn remove(&self, key: &str) -> Result<(), TierError> {
        let mut connection = self.connection.clone();
        redis::pipe()
            .atomic()
            .cmd("DEL")
            .arg(key)
            .arg(format!("{key}:meta"))
            .ignore()
            .cmd("SREM")
            .arg(index_key(key))
            .arg(key)
            .ignore()
            .query_async::<()>(&mut connection)
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
        let mut pipe = redis::pipe();
        for key in keys {
            pipe.cmd("PTTL").arg(key);
        }
        let mut connection = self.connection.clone();
        let now = unix_millis();
        let ttls: Vec<i64> = pipe
            .query_async(&mut connection)
            .await
            .map_err(Self::fail)?;
        // -2: no such key; -1: no TTL (never written by this tier).
        Ok(ttls
            .into_iter()
            .map(|ttl| (ttl >= 0).then(|| now + ttl as u64))
            .collect())
    }

    async fn usage(&self) -> Result<TierUsage, TierError> {
        let mut connection = self.connection.clone();
        let items: u64 = redis::cmd("DBSIZE")
            .query_async(&mut connection)
            .await
            .map_err(Self::fail)?;
        let info: String = redis::cmd("INFO")
            .arg("memory")
            .query_async(&mut connection)
            .await
            .map_err(Self::fail)?;
        let field = |name: &str| -> u64 {
            info.lines()
                .find_map(|line| {
                    line.strip_prefix(name)?
                        .strip_prefix(':')?
                        .trim()
                        .parse()
                        .ok()
                })
                .unwrap_or(0)
        };
        let stats: String = redis::cmd("INFO")
            .arg("stats")
            .query_async(&mut connection)
            .await
            .map_err(Self::fail)?;
        let evicted = stats
            .lines()
            .find_map(|line| line.strip_prefix("evicted_keys:")?.trim().parse().ok())
            .unwrap_or(0);
        Ok(TierUsage {
            items,
            bytes: field("used_memory"),
            capacity: field("maxmemory"),
            evictions: Some(evicted),
            corrupt: 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_key_shares_the_image_prefix() {
        assert_eq!(index_key("opossum:0123abcd:ffff"), "opossum:0123abcd:index");
    }
}
