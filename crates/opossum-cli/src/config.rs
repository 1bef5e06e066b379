//! `opossum config check FILE`: validates a configuration file and prints what it sets up.

use std::path::PathBuf;

use anyhow::Context;
use opossum_config::Config;

#[derive(clap::Subcommand)]
pub(crate) enum ConfigCommand {
    /// Validate a file: unknown keys and bad values are errors naming the key path
    Check {
        /// The YAML file
        file: PathBuf,
        /// Apply the `OPOSSUM_*` environment overrides too (as the binaries do)
        #[arg(long)]
        env: bool,
    },
}

pub(crate) fn run(command: ConfigCommand) -> anyhow::Result<()> {
    match command {
        ConfigCommand::Check { file, env } => {
            let config = if env {
                Config::resolve(Some(&file))?
            } else {
                Config::load(&file)?
            };
            println!("{}: ok", file.display());
            for line in describe(&config)? {
                println!("  {line}");
            }
            Ok(())
        }
    }
}

fn size(bytes: u64) -> String {
    bytesize::ByteSize(bytes).display().iec().to_string()
}

/// What the configuration sets up, one line per part.
fn describe(config: &Config) -> anyhow::Result<Vec<String>> {
    let c = &config.caching;
    let on = |enabled: bool| if c.enabled && enabled { "on" } else { "off" };
    let mut lines = vec![format!(
        "caching: {}, log level {}",
        if c.enabled { "on" } else { "off" },
        c.log_level.as_deref().unwrap_or("(binary default)")
    )];
    let ttl = |ttl: Option<std::time::Duration>| {
        ttl.map_or("entry TTLs".to_string(), |t| {
            format!("TTL cap {}", humantime::format_duration(t))
        })
    };
    lines.push(format!(
        "memory tier: {}, {}, {}",
        on(c.memory_cache.enabled),
        size(c.memory_cache.max_size),
        ttl(c.memory_cache.ttl)
    ));
    lines.push(format!(
        "disk tier: {}, {} at {}, cleanup every {}",
        on(c.disk_cache.enabled),
        size(c.disk_cache.max_size),
        c.disk_cache
            .path
            .as_ref()
            .map_or("<data dir>/cache".to_string(), |p| p.display().to_string()),
        humantime::format_duration(c.disk_cache.cleanup_interval)
    ));
    let redis = &c.redis_cache;
    let url = config
        .redis_url(None)
        .context("caching.redis_cache")?
        .map_or(
            "none (give --redis or caching.redis_cache.host)".into(),
            |u| opossum_fleet::redact(&u),
        );
    lines.push(format!(
        "redis tier: {}, {url}, {}, expects maxmemory-policy {}{}",
        on(redis.enabled),
        ttl(redis.ttl),
        redis.redis_policy(),
        redis
            .max_memory
            .map_or(String::new(), |m| format!(" and maxmemory {}", size(m)))
    ));
    lines.push(match &config.queues.redis_url {
        Some(url) => format!(
            "queue redis: {}, expects maxmemory-policy noeviction",
            opossum_fleet::redact(url)
        ),
        None => "queue redis: the cache's (queues.redis_url gives them their own)".into(),
    });
    lines.push(format!(
        "prefix {}, originals {}",
        config.prefix.as_deref().unwrap_or("opossum"),
        config.originals.as_deref().unwrap_or(".")
    ));
    lines.push(format!(
        "origin: {}, {} signing key(s), {} computations + {} waiting, CDN purge endpoints: {}",
        config.origin.listen,
        config.origin.signing_keys.len(),
        config.origin.max_computations,
        config.origin.max_waiting,
        config.cdn.purge.len()
    ));
    lines.push(format!(
        "telemetry: OTLP {}, metrics {}, summary every {}",
        config
            .telemetry
            .otlp_endpoint
            .as_deref()
            .unwrap_or("off (or OTEL_EXPORTER_OTLP_ENDPOINT)"),
        config
            .telemetry
            .metrics_listen
            .as_deref()
            .unwrap_or("on the origin only"),
        humantime::format_duration(config.telemetry.summary_interval)
    ));
    lines.push(format!("presets: {}", config.presets.len()));
    Ok(lines)
}
