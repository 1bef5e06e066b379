//! The configuration: one YAML document that every binary accepts with `--config FILE` (or
//! `OPOSSUM_CONFIG`), then `OPOSSUM_*` environment overrides, then each binary's flags.
//!
//! The file has the seed's keys exactly (`caching.enabled`, `caching.log_level`,
//! `caching.memory_cache.*`, `caching.redis_cache.*`, `caching.disk_cache.*`, as in the seed's
//! "Configuration Options" example, which passes `opossum config check` unchanged) and the
//! project's own sections: `prefix`, `originals`, `worker`, `origin`, `cdn`, `limits`,
//! `telemetry`, `presets`, `analytics`, `warming` and `queues`. `deploy/opossum.example.yaml` shows every
//! key with its default.
//!
//! Environment overrides name a key path with `__` between levels:
//! `OPOSSUM_CACHING__MEMORY_CACHE__MAX_SIZE=1GiB` sets `caching.memory_cache.max_size`. Values
//! are YAML scalars (`true`, `600`, `2GB`, `[a, b]`); quote a value that must stay text. The
//! single-word variables (`OPOSSUM_REDIS_URL`, `OPOSSUM_PREFIX`, ...) are the flags' own and
//! beat both. Precedence is the usual one (file < environment < flags), as in Docker and
//! Kubernetes deployments where the file is baked in and secrets arrive as variables.
//!
//! Every section refuses unknown keys, and every error names the full key path (with
//! serde_path_to_error) and where the value came from, so a file is never half-applied in
//! silence. YAML is read with serde-saphyr: a pure-Rust parser that never panics on malformed
//! input and bounds alias expansion, where the once-standard serde_yaml is archived.
#![cfg_attr(not(test), warn(unused_crate_dependencies))]

use std::path::Path;

use opossum_ops::{OpsError, Presets};
use serde::Deserialize;

mod env;
mod sections;
mod settings;

pub use env::ENV_PREFIX;
use env::apply_env;

pub use sections::{
    AnalyticsSettings, AvifSettings, EncodingSettings, FontsSettings, JpegSettings, PngSettings,
    QueuesSettings, SourcesSettings, WarmingSettings, WebpSettings,
};
pub use settings::{
    CachingSettings, CdnSettings, DiskCacheSettings, LimitsSettings, MemoryCacheSettings,
    OriginSettings, OtlpProtocol, RedisCacheSettings, TelemetrySettings, WorkerSettings,
};

/// Largest configuration file read.
const MAX_BYTES: u64 = 4 << 20;

/// A value a section's `validate` refuses: the key within the section and what is wrong.
#[derive(Debug)]
pub(crate) struct Invalid {
    key: String,
    message: String,
}

impl Invalid {
    pub(crate) fn new(key: impl Into<String>, message: impl Into<String>) -> Invalid {
        Invalid {
            key: key.into(),
            message: message.into(),
        }
    }

    /// The same error, its key prefixed with the section's.
    fn within(self, section: &str) -> Invalid {
        Invalid {
            key: format!("{section}.{}", self.key),
            ..self
        }
    }
}

/// What is wrong with a configuration. Messages name the source and the key path.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read configuration {path}: {message}")]
    Read {
        /// the file
        path: String,
        /// why
        message: String,
    },
    /// The file is not valid YAML.
    #[error("configuration {path}: {message}")]
    Syntax {
        /// the file
        path: String,
        /// the parser's message, with its location
        message: String,
    },
    /// A setting has a bad value or is not a known key.
    #[error("configuration {path}: {section}: {message}")]
    Setting {
        /// the file, or the environment variable that set the key
        path: String,
        /// the key path, such as `caching.memory_cache.max_size`
        section: String,
        /// what is wrong
        message: String,
    },
    /// A preset is malformed.
    #[error("configuration {path}: presets: {source}")]
    Preset {
        /// the file
        path: String,
        /// the preset's error
        source: OpsError,
    },
}

/// A loaded configuration: the file's shape (every top-level key; unknown ones refused).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// the seed's `caching:` block: the tiers
    pub caching: CachingSettings,
    /// prefix of keys, queues and events (flag `--prefix`; default `opossum`)
    pub prefix: Option<String>,
    /// the originals store: a directory, `s3://bucket/prefix` or `https://host/base/` (flag
    /// `--originals`)
    pub originals: Option<String>,
    /// worker processes
    pub worker: WorkerSettings,
    /// the HTTP origin
    pub origin: OriginSettings,
    /// the CDN in front of the origin
    pub cdn: CdnSettings,
    /// bounds on input
    pub limits: LimitsSettings,
    /// metrics, traces, the summary line
    pub telemetry: TelemetrySettings,
    /// named, versioned operation chains (parsed apart from the rest, so that a preset's
    /// error keeps its type)
    #[serde(skip)]
    pub presets: Presets,
    /// usage analytics
    pub analytics: AnalyticsSettings,
    /// cache warming
    pub warming: WarmingSettings,
    /// the queue Redis, when it is not the cache's
    pub queues: QueuesSettings,
    /// the font set of SVG text
    pub fonts: FontsSettings,
    /// encoder settings a request leaves out
    pub encoding: EncodingSettings,
    /// how originals are fetched over HTTP(S), and whether image ids may be URLs
    pub sources: SourcesSettings,
}

impl Config {
    /// The configuration of this process: `path` (when given), then the `OPOSSUM_*`
    /// environment overrides.
    pub fn resolve(path: Option<&Path>) -> Result<Config, ConfigError> {
        let (text, origin) = match path {
            Some(path) => (read(path)?, path.display().to_string()),
            None => (String::new(), "(no file)".to_string()),
        };
        Config::parse_with_env(&text, &origin, std::env::vars())
    }

    /// Reads and validates `path`, without environment overrides (`opossum config check`).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Config::parse(&read(path)?, &path.display().to_string())
    }

    /// Parses the YAML `text`; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        Config::parse_with_env(text, origin, std::iter::empty())
    }

    /// Parses `text`, then applies the overrides among `vars` (`OPOSSUM_A__B=value`).
    pub fn parse_with_env(
        text: &str,
        origin: &str,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut value: serde_json::Value = if text.trim().is_empty() {
            serde_json::Value::Null
        } else {
            serde_saphyr::from_str(text).map_err(|e| ConfigError::Syntax {
                path: origin.to_string(),
                message: e.to_string(),
            })?
        };
        if value.is_null() {
            value = serde_json::Value::Object(serde_json::Map::new());
        }
        if !value.is_object() {
            return Err(ConfigError::Syntax {
                path: origin.to_string(),
                message: "expected a map of settings at the top level".into(),
            });
        }
        let overrides = apply_env(&mut value, vars)?;
        // Errors name the variable that set the key, when one did.
        let source_of = |key: &str| {
            overrides
                .iter()
                .find(|(path, _)| {
                    key == path
                        || key.starts_with(&format!("{path}."))
                        || path.starts_with(&format!("{key}."))
                })
                .map_or_else(
                    || origin.to_string(),
                    |(_, variable)| format!("environment {variable}"),
                )
        };
        let setting_error = |key: &str, message: String| ConfigError::Setting {
            path: source_of(key),
            section: key.to_string(),
            message,
        };
        let presets = value
            .as_object_mut()
            .and_then(|map| map.remove("presets"))
            .unwrap_or(serde_json::Value::Null);
        let mut config: Config = serde_path_to_error::deserialize(&value).map_err(|e| {
            let key = e.path().to_string();
            let message = e.inner().to_string();
            if key == "." {
                setting_error("(top level)", message)
            } else {
                setting_error(&key, message)
            }
        })?;
        config.presets = Presets::from_config(&presets).map_err(|source| ConfigError::Preset {
            path: source_of("presets"),
            source,
        })?;
        config
            .validate()
            .map_err(|Invalid { key, message }| setting_error(&key, message))?;
        Ok(config)
    }

    /// Checks what serde cannot, section by section (each section's `validate` beside it).
    fn validate(&self) -> Result<(), Invalid> {
        self.caching.validate().map_err(|e| e.within("caching"))?;
        self.worker.validate().map_err(|e| e.within("worker"))?;
        self.origin.validate().map_err(|e| e.within("origin"))?;
        self.analytics
            .validate()
            .map_err(|e| e.within("analytics"))?;
        self.warming
            .validate(&self.presets)
            .map_err(|e| e.within("warming"))?;
        self.queues.validate().map_err(|e| e.within("queues"))?;
        self.sources.validate().map_err(|e| e.within("sources"))?;
        self.encoding.validate().map_err(|e| e.within("encoding"))
    }

    /// The key and queue prefix: `flag` (`--prefix`, `OPOSSUM_PREFIX`), else the file's, else
    /// `opossum`.
    pub fn prefix_or(&self, flag: Option<&str>) -> String {
        flag.or(self.prefix.as_deref())
            .unwrap_or("opossum")
            .to_string()
    }

    /// The originals store: `flag` (`--originals`, `OPOSSUM_ORIGINALS`), else the file's, else
    /// the current directory.
    pub fn originals_or<'a>(&'a self, flag: Option<&'a str>) -> &'a str {
        flag.or(self.originals.as_deref()).unwrap_or(".")
    }

    /// The cache's Redis URL: `flag` (a `--redis` flag or `OPOSSUM_REDIS_URL`) with this
    /// file's credentials and TLS applied, else the file's own address; `None` when neither is
    /// set. It is the queue Redis too unless `queues.redis_url` names another.
    pub fn redis_url(&self, flag: Option<&str>) -> Result<Option<String>, ConfigError> {
        let redis = &self.caching.redis_cache;
        let setting_error = |message| ConfigError::Setting {
            path: "--redis".into(),
            section: "caching.redis_cache".into(),
            message,
        };
        match flag {
            Some(url) => redis.apply_to(url).map(Some).map_err(setting_error),
            None => redis.connection_url().map_err(setting_error),
        }
    }

    /// The queue Redis (queues, completion events, leases, analytics): `queues.redis_url`
    /// when set, else the one Redis of [`Config::redis_url`], which then also caches.
    pub fn queue_redis_url(&self, flag: Option<&str>) -> Result<Option<String>, ConfigError> {
        match &self.queues.redis_url {
            Some(url) => Ok(Some(url.clone())),
            None => self.redis_url(flag),
        }
    }
}

fn read(path: &Path) -> Result<String, ConfigError> {
    let shown = path.display().to_string();
    let read_error = |message: String| ConfigError::Read {
        path: shown.clone(),
        message,
    };
    let size = std::fs::metadata(path)
        .map_err(|e| read_error(e.to_string()))?
        .len();
    if size > MAX_BYTES {
        return Err(read_error(format!(
            "{size} bytes, more than the limit of {MAX_BYTES}"
        )));
    }
    std::fs::read_to_string(path).map_err(|e| read_error(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn reads_presets() {
        let config = Config::parse(
            "presets:\n  avatar:\n    version: 2\n    ops: thumbnail:128,format:webp\n    family: avatar\n",
            "test.yaml",
        )
        .unwrap();
        let avatar = config.presets.get("avatar").unwrap();
        assert_eq!(avatar.version, 2);
        assert_eq!(avatar.ops.to_string(), "thumbnail:128,format:webp");
    }

    #[test]
    fn empty_is_default() {
        assert_eq!(Config::parse("", "x").unwrap(), Config::default());
        assert_eq!(
            Config::parse("# nothing\n", "x").unwrap(),
            Config::default()
        );
    }

    #[test]
    fn errors_name_the_key() {
        let err = Config::parse("presetz: {}\n", "a.yaml").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("configuration a.yaml: presetz: unknown field `presetz`"),
            "{err}"
        );
        let err = Config::parse("presets:\n  x:\n    ops: blur:abc\n", "a.yaml").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("configuration a.yaml: presets: preset `x`: operation 1 `blur`"),
            "{err}"
        );
        let err = Config::parse("presets: [\n", "a.yaml").unwrap_err();
        assert!(
            err.to_string().starts_with("configuration a.yaml: "),
            "{err}"
        );
    }

    /// The seed's "Configuration Options" example, read from the seed itself.
    fn seed_example() -> String {
        let seed = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/seed/caching-strategy.md");
        let text = std::fs::read_to_string(&seed).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (../shared must be beside the checkout)",
                seed.display()
            )
        });
        let section = &text[text.find("## Configuration Options").expect("section")..];
        let start = section.find("```yaml").expect("yaml block") + "```yaml".len();
        let end = start + section[start..].find("```").expect("block end");
        section[start..end].to_string()
    }

    #[test]
    fn the_seed_example_passes_with_its_values() {
        let config = Config::parse(&seed_example(), "seed.yaml").unwrap();
        let caching = &config.caching;
        assert!(caching.enabled);
        assert_eq!(caching.log_level.as_deref(), Some("info"));
        assert_eq!(caching.memory_cache.max_size, 2_000_000_000);
        assert_eq!(caching.memory_cache.ttl, Some(Duration::from_secs(600)));
        let redis = &caching.redis_cache;
        assert_eq!(redis.host.as_deref(), Some("redis.example.com"));
        assert_eq!((redis.port, redis.db), (6379, 0));
        assert_eq!(redis.ttl, Some(Duration::from_secs(86_400)));
        assert_eq!(redis.max_memory, Some(50_000_000_000));
        assert_eq!(redis.redis_policy(), "allkeys-lfu");
        assert_eq!(
            config.redis_url(None).unwrap().as_deref(),
            Some("redis://redis.example.com:6379/0")
        );
        let disk = &caching.disk_cache;
        assert_eq!(
            disk.path.as_deref(),
            Some(std::path::Path::new("/var/cache/opossum_images"))
        );
        assert_eq!(disk.max_size, 200_000_000_000);
        assert_eq!(disk.cleanup_interval, Duration::from_secs(3600));
    }

    #[test]
    fn the_shipped_example_is_the_defaults() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../deploy/opossum.example.yaml");
        let config = Config::load(&path).unwrap();
        assert_eq!(config, Config::default());
    }

    #[test]
    fn sizes_take_units() {
        let size = |text: &str| {
            Config::parse(
                &format!("caching:\n  memory_cache:\n    max_size: {text}\n"),
                "s.yaml",
            )
            .map(|c| c.caching.memory_cache.max_size)
        };
        assert_eq!(size("\"2GB\"").unwrap(), 2_000_000_000);
        assert_eq!(size("512MiB").unwrap(), 512 << 20);
        assert_eq!(size("1.5 GiB").unwrap(), 3 << 29);
        assert_eq!(size("4096").unwrap(), 4096);
        let disk_memory = Config::parse("caching:\n  disk_cache:\n    memory: 16MiB\n", "s.yaml");
        assert_eq!(disk_memory.unwrap().caching.disk_cache.memory, 16 << 20);
        let err = size("lots").unwrap_err().to_string();
        assert!(
            err.starts_with(
                "configuration s.yaml: caching.memory_cache.max_size: `lots` is not a size"
            ),
            "{err}"
        );
    }

    #[test]
    fn nested_errors_name_the_full_path() {
        let check = |yaml: &str, expected: &str| {
            let err = Config::parse(yaml, "n.yaml").unwrap_err().to_string();
            assert!(err.starts_with(expected), "{err}\nexpected: {expected}");
        };
        check(
            "caching:\n  disk_cache:\n    max_sise: 1GB\n",
            "configuration n.yaml: caching.disk_cache.max_sise: unknown field `max_sise`",
        );
        check(
            "caching:\n  redis_cache:\n    port: seventy\n",
            "configuration n.yaml: caching.redis_cache.port: invalid type",
        );
        check(
            "caching:\n  disk_cache:\n    cleanup_interval: often\n",
            "configuration n.yaml: caching.disk_cache.cleanup_interval: `often` is not a duration",
        );
        check(
            "caching:\n  redis_cache:\n    url: http://x\n",
            "configuration n.yaml: caching.redis_cache.url: `http://x` is not a Redis URL",
        );
        check(
            "telemetry:\n  otlp_protocol: grpc\n",
            "configuration n.yaml: telemetry.otlp_protocol: unknown variant `grpc`, expected `http/protobuf` or `http/json`",
        );
        check(
            "origin:\n  negotiate: [webp, png]\n",
            "configuration n.yaml: origin.negotiate[1]: `png` cannot be negotiated",
        );
        check(
            "origin:\n  negotiate: [webp, bmp]\n",
            "configuration n.yaml: origin.negotiate[1]: unknown format `bmp`",
        );
        check(
            "origin:\n  negotiate: [webp, gif]\n",
            "configuration n.yaml: origin.negotiate[1]: `gif` cannot be negotiated",
        );
        check(
            "worker:\n  concurrency: 0\n",
            "configuration n.yaml: worker.concurrency: must be more than zero",
        );
        check(
            "sources:\n  allowed_hosts: [\"images.example.com\", \"a.*.com\"]\n",
            "configuration n.yaml: sources.allowed_hosts: bad host pattern `a.*.com`",
        );
        check(
            "sources:\n  allowed_networks: [\"10.0.0.0/33\"]\n",
            "configuration n.yaml: sources.allowed_networks: `10.0.0.0/33` is not a network in CIDR form",
        );
        check(
            "sources:\n  cache_min_ttl: 2d\n  cache_max_ttl: 1d\n",
            "configuration n.yaml: sources.cache_min_ttl: is longer than sources.cache_max_ttl",
        );
        check(
            "sources:\n  allowed_ports: [443, 0]\n",
            "configuration n.yaml: sources.allowed_ports: 0 is not a port",
        );
    }

    #[test]
    fn sources_default_to_refusing_every_url_id() {
        let sources = Config::parse("", "d.yaml").unwrap().sources;
        assert!(!sources.url_ids);
        assert!(sources.allowed_hosts.is_empty());
        assert!(!sources.allow_private);
        assert_eq!(sources.allowed_ports, [80, 443]);
        let set = Config::parse(
            "sources:\n  url_ids: true\n  allowed_hosts: [\"*.example.com\"]\n  min_rate: 8KiB\n  timeout: 10s\n",
            "s.yaml",
        )
        .unwrap()
        .sources;
        assert!(set.url_ids);
        assert_eq!(set.min_rate, 8192);
        assert_eq!(set.timeout, std::time::Duration::from_secs(10));
        assert_eq!(set.host_patterns().unwrap().len(), 1);
    }

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn environment_overrides_the_file() {
        let config = Config::parse_with_env(
            "caching:\n  memory_cache:\n    max_size: 1GB\n  redis_cache:\n    host: a\n",
            "e.yaml",
            vars(&[
                ("OPOSSUM_CACHING__MEMORY_CACHE__MAX_SIZE", "64MiB"),
                ("OPOSSUM_CACHING__REDIS_CACHE__PORT", "6390"),
                ("OPOSSUM_CACHING__REDIS_CACHE__PASSWORD", "'0123'"),
                ("OPOSSUM_CACHING__REDIS_CACHE__TLS", "true"),
                ("OPOSSUM_ORIGIN__SIGNING_KEYS", "[k1, k2]"),
                ("OPOSSUM_CDN__PURGE", "[\"http://varnish:6081\"]"),
                // the flags' own variables are left to the flags
                ("OPOSSUM_REDIS_URL", "redis://elsewhere/"),
                ("HOME", "/root"),
            ]),
        )
        .unwrap();
        assert_eq!(config.caching.memory_cache.max_size, 64 << 20);
        assert_eq!(config.origin.signing_keys, vec!["k1", "k2"]);
        assert_eq!(config.cdn.purge, vec!["http://varnish:6081"]);
        assert_eq!(
            config.redis_url(None).unwrap().as_deref(),
            Some("rediss://:0123@a:6390/0")
        );
        // a flag's URL gets the file's credentials
        assert_eq!(
            config.redis_url(Some("redis://b:1/2")).unwrap().as_deref(),
            Some("rediss://:0123@b:1/2")
        );
    }

    #[test]
    fn cluster_urls_take_the_files_credentials_and_refuse_a_database() {
        let config = Config::parse_with_env(
            "caching:\n  redis_cache:\n    password: 'p@ss'\n    tls: true\n",
            "c.yaml",
            vars(&[]),
        )
        .unwrap();
        assert_eq!(
            config
                .redis_url(Some("redis+cluster://a:7000,b:7001"))
                .unwrap()
                .as_deref(),
            Some("rediss+cluster://:p%40ss@a:7000,b:7001")
        );
        let error = config
            .redis_url(Some("redis+cluster://a:7000/2"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("only database 0"), "{error}");
        let error = config
            .redis_url(Some("redis+cluster://a:x"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("`a:x`"), "{error}");
        let queues = Config::parse_with_env(
            "queues:\n  redis_url: redis+cluster://q1:7000,q2:7000/\n",
            "q.yaml",
            vars(&[]),
        )
        .unwrap();
        assert_eq!(
            queues.queue_redis_url(None).unwrap().as_deref(),
            Some("redis+cluster://q1:7000,q2:7000/")
        );
    }

    #[test]
    fn the_queues_may_have_a_redis_of_their_own() {
        let one = Config::parse("caching:\n  redis_cache:\n    host: cache\n", "q.yaml").unwrap();
        assert_eq!(
            one.queue_redis_url(None).unwrap(),
            one.redis_url(None).unwrap()
        );
        assert_eq!(
            one.queue_redis_url(Some("redis://flag:1/"))
                .unwrap()
                .as_deref(),
            Some("redis://flag:1/")
        );
        let two = Config::parse_with_env(
            "caching:\n  redis_cache:\n    host: cache\n",
            "q.yaml",
            vars(&[("OPOSSUM_QUEUES__REDIS_URL", "redis://queue:6379/1")]),
        )
        .unwrap();
        assert_eq!(
            two.queue_redis_url(Some("redis://flag:1/"))
                .unwrap()
                .as_deref(),
            Some("redis://queue:6379/1")
        );
        assert_eq!(
            two.redis_url(None).unwrap().as_deref(),
            Some("redis://cache:6379/0")
        );
        let err = Config::parse("queues:\n  redis_url: http://queue/\n", "q.yaml").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("queues.redis_url"), "{text}");
        assert!(text.contains("not a Redis URL"), "{text}");
    }

    #[test]
    fn environment_errors_name_the_variable() {
        let err = Config::parse_with_env(
            "",
            "e.yaml",
            vars(&[("OPOSSUM_CACHING__MEMORY_CACHE__MAX_SISE", "1GB")]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with(
                "configuration environment OPOSSUM_CACHING__MEMORY_CACHE__MAX_SISE: caching.memory_cache.max_sise: unknown field"
            ),
            "{err}"
        );
        let err = Config::parse_with_env(
            "",
            "e.yaml",
            vars(&[("OPOSSUM_WORKER__CONCURRENCY__X", "1")]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("configuration environment OPOSSUM_WORKER__CONCURRENCY__X: worker.concurrency: invalid type: map"),
            "{err}"
        );
    }

    #[test]
    fn caching_can_be_turned_off() {
        let config = Config::parse(
            "caching:\n  enabled: false\n  disk_cache:\n    enabled: false\n",
            "o.yaml",
        )
        .unwrap();
        assert!(!config.caching.enabled);
        assert!(!config.caching.disk_cache.enabled);
        assert!(config.caching.memory_cache.enabled);
    }
}
