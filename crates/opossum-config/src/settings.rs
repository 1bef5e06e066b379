//! The operations sections: the seed's `caching:` block (global switch, log level, and the
//! memory, Redis and disk tiers) and the project's own `worker`, `origin`, `cdn`, `limits` and
//! `telemetry` sections.
//!
//! Every section refuses unknown keys and has a default for every key, so an empty file is a
//! working configuration and a typo is an error, never a silently ignored setting.

use std::path::PathBuf;
use std::time::Duration;

use opossum_ops::OutputFormat;
use serde::{Deserialize, Deserializer};

use crate::Invalid;
use crate::sections::duration;

/// A byte size: a number of bytes, or text such as `2GB`, `512MiB` or `1.5 GiB`. `GB` is
/// 10^9 and `GiB` 2^30, as in the seed's example and in bytesize.
pub(crate) fn size<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Bytes(u64),
        Text(String),
    }
    match Raw::deserialize(deserializer)? {
        Raw::Bytes(bytes) => Ok(bytes),
        Raw::Text(text) => text
            .trim()
            .parse::<bytesize::ByteSize>()
            .map(|size| size.as_u64())
            .map_err(|e| {
                serde::de::Error::custom(format!(
                    "`{text}` is not a size ({e}); try `512MiB`, `2GB` or a number of bytes"
                ))
            }),
    }
}

/// `caching:`, the seed's block. `enabled: false` turns every tier off (each request is
/// computed); a tier's `enabled: false` leaves that tier out.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CachingSettings {
    /// the global switch (default true)
    pub enabled: bool,
    /// the log filter, `info` or an `EnvFilter` directive such as `opossum=debug,info`
    /// (default: each binary's own; `OPOSSUM_LOG` overrides it)
    pub log_level: Option<String>,
    /// L1, in each process
    pub memory_cache: MemoryCacheSettings,
    /// L2, shared by the fleet
    pub redis_cache: RedisCacheSettings,
    /// L3, on each machine's disk
    pub disk_cache: DiskCacheSettings,
}

impl Default for CachingSettings {
    fn default() -> CachingSettings {
        CachingSettings {
            enabled: true,
            log_level: None,
            memory_cache: MemoryCacheSettings::default(),
            redis_cache: RedisCacheSettings::default(),
            disk_cache: DiskCacheSettings::default(),
        }
    }
}

/// `caching.memory_cache:`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MemoryCacheSettings {
    /// (default true)
    pub enabled: bool,
    /// bytes of entries held (default 512MiB)
    #[serde(deserialize_with = "size")]
    pub max_size: u64,
    /// longest an entry stays in memory; entries also expire with their own TTL, whichever
    /// comes first (default: no cap beyond the entry's TTL)
    #[serde(deserialize_with = "optional_duration")]
    pub ttl: Option<Duration>,
}

impl Default for MemoryCacheSettings {
    fn default() -> MemoryCacheSettings {
        MemoryCacheSettings {
            enabled: true,
            max_size: 512 << 20,
            ttl: None,
        }
    }
}

/// `caching.redis_cache:`: the shared tier, and the connection the queues, events and
/// analytics use too (`enabled: false` leaves only the cache tier out).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisCacheSettings {
    /// the shared cache tier (default true; it needs a Redis address)
    pub enabled: bool,
    /// a full URL, `redis://host:port/db` or `rediss://` for TLS; wins over host/port/db
    pub url: Option<String>,
    /// host (no Redis unless this or `url` is set)
    pub host: Option<String>,
    /// (default 6379)
    pub port: u16,
    /// database number (default 0)
    pub db: u32,
    /// ACL user name
    pub username: Option<String>,
    /// password (`requirepass` or the ACL user's); prefer `OPOSSUM_CACHING__REDIS_CACHE__PASSWORD`
    pub password: Option<String>,
    /// connect with TLS (`rediss://`)
    pub tls: bool,
    /// longest an entry stays in Redis; entries also expire with their own TTL (default: no cap)
    #[serde(deserialize_with = "optional_duration")]
    pub ttl: Option<Duration>,
    /// the server's expected `maxmemory` (Redis is configured on the server; a mismatch is
    /// logged at start, and sizing reports use it)
    #[serde(deserialize_with = "optional_size")]
    pub max_memory: Option<u64>,
    /// the server's expected eviction policy: `lfu` (allkeys-lfu, the default), `lru`
    /// (allkeys-lru), or a Redis policy name
    pub eviction_policy: String,
}

impl Default for RedisCacheSettings {
    fn default() -> RedisCacheSettings {
        RedisCacheSettings {
            enabled: true,
            url: None,
            host: None,
            port: 6379,
            db: 0,
            username: None,
            password: None,
            tls: false,
            ttl: None,
            max_memory: None,
            eviction_policy: "lfu".into(),
        }
    }
}

/// Why `url` is not a Redis URL, if it is not (read as the connection reads it).
pub(crate) fn check_redis_url(url: &str) -> Result<(), String> {
    opossum_redis::parse_url(url).map(drop)
}

impl CachingSettings {
    /// Checks the shared tier's connection settings.
    pub(crate) fn validate(&self) -> Result<(), Invalid> {
        self.redis_cache
            .connection_url()
            .map(drop)
            .map_err(|message| Invalid::new("redis_cache.url", message))
    }
}

impl RedisCacheSettings {
    /// The connection URL these settings describe, `None` when no Redis is configured.
    /// Credentials and TLS apply to a given `url` too.
    pub fn connection_url(&self) -> Result<Option<String>, String> {
        let base = match (&self.url, &self.host) {
            (Some(url), _) => url.clone(),
            (None, Some(host)) => format!("redis://{host}:{}/{}", self.port, self.db),
            (None, None) => return Ok(None),
        };
        Ok(Some(self.apply_to(&base)?))
    }

    /// `url` with this section's username, password and TLS applied.
    pub fn apply_to(&self, url: &str) -> Result<String, String> {
        opossum_redis::with_credentials(
            url,
            self.tls,
            self.username.as_deref(),
            self.password.as_deref(),
        )
    }

    /// The Redis `maxmemory-policy` expected: `lfu` is `allkeys-lfu`, `lru` `allkeys-lru`.
    pub fn redis_policy(&self) -> String {
        match self.eviction_policy.as_str() {
            "lfu" => "allkeys-lfu".into(),
            "lru" => "allkeys-lru".into(),
            other => other.into(),
        }
    }
}

/// `caching.disk_cache:`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiskCacheSettings {
    /// (default true)
    pub enabled: bool,
    /// the directory (default `<data dir>/cache`, the data dir being `--data-dir`,
    /// `OPOSSUM_DATA_DIR` or `~/.cache/opossum`)
    pub path: Option<PathBuf>,
    /// bytes on disk (default 20GiB)
    #[serde(deserialize_with = "size")]
    pub max_size: u64,
    /// how often expired entries are removed (default 1h)
    #[serde(deserialize_with = "duration")]
    pub cleanup_interval: Duration,
    /// memory RocksDB may hold: block cache, index blocks and memtables together
    /// (default 32MiB)
    #[serde(deserialize_with = "size")]
    pub memory: u64,
}

impl Default for DiskCacheSettings {
    fn default() -> DiskCacheSettings {
        DiskCacheSettings {
            enabled: true,
            path: None,
            max_size: 20 << 30,
            cleanup_interval: Duration::from_secs(3600),
            memory: 32 << 20,
        }
    }
}

/// `worker:`: how each worker process takes jobs from the queues.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerSettings {
    /// user jobs run at once (default 32)
    pub concurrency: usize,
    /// warm jobs run at once, a separate pool (default 4)
    pub warm_concurrency: usize,
    /// time in-flight jobs get to finish after SIGTERM (default 30s)
    #[serde(deserialize_with = "duration")]
    pub grace_period: Duration,
    /// jobs fetched per round trip (default 50)
    pub batch_size: usize,
}

impl WorkerSettings {
    /// Checks the pool and batch sizes are not zero.
    pub(crate) fn validate(&self) -> Result<(), Invalid> {
        not_zero("concurrency", self.concurrency)?;
        not_zero("batch_size", self.batch_size)
    }
}

/// Refuses a zero `value` of `key`.
fn not_zero(key: &str, value: usize) -> Result<(), Invalid> {
    if value == 0 {
        return Err(Invalid::new(key, "must be more than zero"));
    }
    Ok(())
}

impl Default for WorkerSettings {
    fn default() -> WorkerSettings {
        WorkerSettings {
            concurrency: 32,
            warm_concurrency: 4,
            grace_period: Duration::from_secs(30),
            batch_size: 50,
        }
    }
}

/// `origin:`: `opossum serve`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OriginSettings {
    /// address to listen on (default 127.0.0.1:8080)
    pub listen: String,
    /// HMAC-SHA256 keys of signed URLs; any one verifies (rotation). Empty: URLs are unsigned.
    pub signing_keys: Vec<String>,
    /// computations at once (default 4)
    pub max_computations: usize,
    /// requests waiting for a computation slot before 503 (default 64)
    pub max_waiting: usize,
    /// longest a request waits for its variant (default 30s)
    #[serde(deserialize_with = "duration")]
    pub timeout: Duration,
    /// longest request path (default 2048 bytes)
    pub max_path_bytes: usize,
    /// largest variant served (default 64MiB)
    #[serde(deserialize_with = "size")]
    pub max_output_bytes: u64,
    /// formats offered by `Accept` negotiation, in order (default webp, avif)
    pub negotiate: Vec<OutputFormat>,
}

impl OriginSettings {
    /// Checks the negotiated formats can be negotiated and computations can run.
    pub(crate) fn validate(&self) -> Result<(), Invalid> {
        for (index, format) in self.negotiate.iter().enumerate() {
            if !matches!(format, OutputFormat::Webp | OutputFormat::Avif) {
                return Err(Invalid::new(
                    format!("negotiate[{index}]"),
                    format!("`{}` cannot be negotiated (webp, avif)", format.name()),
                ));
            }
        }
        not_zero("max_computations", self.max_computations)
    }
}

impl Default for OriginSettings {
    fn default() -> OriginSettings {
        OriginSettings {
            listen: "127.0.0.1:8080".into(),
            signing_keys: Vec::new(),
            max_computations: 4,
            max_waiting: 64,
            timeout: Duration::from_secs(30),
            max_path_bytes: 2048,
            max_output_bytes: 64 << 20,
            negotiate: vec![OutputFormat::Webp, OutputFormat::Avif],
        }
    }
}

/// `cdn:`: the CDN in front of the origin.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CdnSettings {
    /// URLs that receive `PURGE` with a `Surrogate-Key` on `opossum cache invalidate`
    pub purge: Vec<String>,
}

/// `limits:`: bounds on input, checked before work is done (the image engine's limits).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsSettings {
    /// largest source in pixels, animation frames counted (default 50,000,000)
    pub max_pixels: u64,
    /// largest source file (default 50MB)
    #[serde(deserialize_with = "size")]
    pub max_source_size: u64,
    /// most frames of an animated source (default 500)
    pub max_frames: u32,
    /// largest output and intermediate image in pixels (default 50,000,000)
    pub max_output_pixels: u64,
    /// largest image `format:svg` traces (default 1,000,000 pixels)
    pub max_trace_pixels: u64,
    /// deepest SVG nesting (default 128)
    pub max_svg_depth: usize,
    /// most SVG elements (default 100,000)
    pub max_svg_nodes: u64,
    /// longest an SVG may take to render (default 10s)
    #[serde(deserialize_with = "duration")]
    pub svg_render_timeout: Duration,
}

impl Default for LimitsSettings {
    fn default() -> LimitsSettings {
        use opossum_ops::limits;
        LimitsSettings {
            max_pixels: limits::MAX_PIXELS,
            max_source_size: limits::MAX_SOURCE_BYTES,
            max_frames: limits::MAX_FRAMES,
            max_output_pixels: limits::MAX_OUTPUT_PIXELS,
            max_trace_pixels: limits::MAX_TRACE_PIXELS,
            max_svg_depth: limits::MAX_SVG_DEPTH,
            max_svg_nodes: limits::MAX_SVG_NODES,
            svg_render_timeout: limits::SVG_RENDER_TIMEOUT,
        }
    }
}

/// How OTLP is sent: protobuf (the default) or JSON, both over HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum OtlpProtocol {
    /// `http/protobuf`
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
    /// `http/json`
    #[serde(rename = "http/json")]
    HttpJson,
}

/// `telemetry:`: metrics, traces and the summary line.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetrySettings {
    /// OTLP/HTTP collector base URL, e.g. `http://otel-collector:4318`; traces and metrics are
    /// exported when set (`OTEL_EXPORTER_OTLP_ENDPOINT` is read too)
    pub otlp_endpoint: Option<String>,
    /// `http/protobuf` (default) or `http/json`
    pub otlp_protocol: OtlpProtocol,
    /// how often metrics are exported over OTLP (default 60s)
    #[serde(deserialize_with = "duration")]
    pub export_interval: Duration,
    /// where the worker and the scheduler serve Prometheus `/metrics` (the origin serves it on
    /// its own address); default: not served
    pub metrics_listen: Option<String>,
    /// how often the one-line summary is logged (default 60s; 0 turns it off)
    #[serde(deserialize_with = "duration")]
    pub summary_interval: Duration,
}

impl Default for TelemetrySettings {
    fn default() -> TelemetrySettings {
        TelemetrySettings {
            otlp_endpoint: None,
            otlp_protocol: OtlpProtocol::HttpProtobuf,
            export_interval: Duration::from_secs(60),
            metrics_listen: None,
            summary_interval: Duration::from_secs(60),
        }
    }
}

fn optional_duration<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Duration>, D::Error> {
    #[derive(Deserialize)]
    struct Wrapped(#[serde(deserialize_with = "duration")] Duration);
    Option::<Wrapped>::deserialize(deserializer).map(|w| w.map(|Wrapped(d)| d))
}

fn optional_size<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    struct Wrapped(#[serde(deserialize_with = "size")] u64);
    Option::<Wrapped>::deserialize(deserializer).map(|w| w.map(|Wrapped(s)| s))
}
