//! Cross-process leases in Redis, so identical misses on different workers compute once.
//! `SET {key}:lease token NX PX ttl` takes it; a script deletes it only if the token still
//! matches, so a holder whose lease expired can never release someone else's. The lease key
//! carries the entry key's hash tag, so on a cluster it lives in the image's slot.
//!
//! A warm computation's token starts with [`BACKGROUND_TOKEN`]: a user request that finds
//! one holding the lease computes the answer itself instead of waiting on work that runs at
//! the lowest CPU priority on purpose.

use std::time::Duration;

use opossum_redis::Connection;

const RELEASE_SCRIPT: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"#;

/// How the tokens of leases held by background (warm) computations begin.
const BACKGROUND_TOKEN: &str = "bg-";

/// Lease handling on one Redis.
#[derive(Clone)]
pub struct Leases {
    connection: Connection,
    ttl: Duration,
    release: std::sync::Arc<redis::Script>,
}

impl Leases {
    /// Leases lasting `ttl` (longer than the slowest computation).
    pub fn new(connection: Connection, ttl: Duration) -> Leases {
        Leases {
            connection,
            ttl,
            release: std::sync::Arc::new(redis::Script::new(RELEASE_SCRIPT)),
        }
    }

    /// How long a lease lasts.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Takes the lease on `key` for a computation at user or `background` priority:
    /// `Some(token)` when this caller holds it now.
    pub async fn acquire(
        &self,
        key: &str,
        background: bool,
    ) -> Result<Option<String>, redis::RedisError> {
        let token = format!(
            "{}{:032x}",
            if background { BACKGROUND_TOKEN } else { "" },
            rand::random::<u128>()
        );
        let mut connection = self.connection.clone();
        let reply: Option<String> = redis::cmd("SET")
            .arg(format!("{key}:lease"))
            .arg(&token)
            .arg("NX")
            .arg("PX")
            .arg(self.ttl.as_millis() as u64)
            .query_async(&mut connection)
            .await?;
        Ok(reply.map(|_| token))
    }

    /// Whether the lease on `key` is held by a background computation now. A failed read
    /// says no: the caller then waits for the holder, as it would have.
    pub async fn held_in_background(&self, key: &str) -> bool {
        let mut connection = self.connection.clone();
        let holder: Result<Option<String>, _> = redis::cmd("GET")
            .arg(format!("{key}:lease"))
            .query_async(&mut connection)
            .await;
        matches!(holder, Ok(Some(token)) if token.starts_with(BACKGROUND_TOKEN))
    }

    /// Releases the lease if `token` still holds it. Failures are logged: the lease expires on
    /// its own.
    pub async fn release(&self, key: &str, token: &str) {
        let mut connection = self.connection.clone();
        let result: Result<i64, _> = self
            .release
            .key(format!("{key}:lease"))
            .arg(token)
            .invoke_async(&mut connection)
            .await;
        if let Err(e) = result {
            tracing::warn!(key, error = %e, "lease release failed; it will expire");
        }
    }
}
