//! Typed sections of the configuration file, each read with unknown keys refused.

use std::time::Duration;

use opossum_ops::{Chain, OutputFormat, Presets};

use crate::Invalid;
use serde::{Deserialize, Deserializer};

/// A duration: seconds as a number, or text such as `90s`, `5m`, `24h`, `7d`.
pub(crate) fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Seconds(f64),
        Text(String),
    }
    match Raw::deserialize(deserializer)? {
        Raw::Seconds(s) if s.is_finite() && s >= 0.0 => Ok(Duration::from_secs_f64(s)),
        Raw::Seconds(s) => Err(serde::de::Error::custom(format!(
            "{s} is not a duration (seconds must be zero or more)"
        ))),
        Raw::Text(text) => humantime::parse_duration(text.trim()).map_err(|e| {
            serde::de::Error::custom(format!(
                "`{text}` is not a duration ({e}); try `30s`, `5m` or `24h`"
            ))
        }),
    }
}

/// `queues:`: where the fleet's own state lives. Jobs, completion events, leases and analytics
/// must never be evicted, so they belong on a Redis with `maxmemory-policy noeviction`, while
/// the cache tier wants an evicting one (`allkeys-lfu`); `redis_url` names that second server.
/// Unset, both live on the one Redis of `--redis` / `caching.redis_cache` (fine while it does
/// not fill up; the processes warn at start when its policy can evict jobs).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueuesSettings {
    /// the queue Redis (`redis://host:port/db`, credentials in the URL); default: the cache's
    pub redis_url: Option<String>,
    /// replicas that must hold a submitted job and a completion event before either counts
    /// as written (`WAIT`): Redis replicates asynchronously, so a primary that dies right after
    /// acknowledging a write can lose it in a failover. 0 (default) waits for none; 1 for a
    /// Redis (or a cluster) with a replica per primary.
    pub wait_replicas: usize,
}

/// `fonts:`: the font set SVG text is drawn with. Every process of a fleet must draw with the
/// same fonts, or two workers store different bytes under one key: the set is configured, never
/// the machine's whole font list, and its identity is part of every key's processing version.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FontsSettings {
    /// directory of font files (searched recursively); default the DejaVu fonts the Docker
    /// image ships, `/usr/share/fonts/truetype/dejavu`. A missing directory is an empty set
    /// (SVG text is not drawn), with a warning at start.
    pub dir: std::path::PathBuf,
}

impl QueuesSettings {
    /// Checks the URL's scheme.
    pub(crate) fn validate(&self) -> Result<(), Invalid> {
        match &self.redis_url {
            Some(url) => crate::settings::check_redis_url(url)
                .map_err(|message| Invalid::new("redis_url", message)),
            None => Ok(()),
        }
    }
}

impl Default for FontsSettings {
    fn default() -> FontsSettings {
        FontsSettings {
            dir: "/usr/share/fonts/truetype/dejavu".into(),
        }
    }
}

/// `analytics:`: how usage is recorded (see the opossum-analytics crate).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnalyticsSettings {
    /// bucket length (default 1h)
    #[serde(deserialize_with = "duration")]
    pub bucket: Duration,
    /// how long buckets are kept (default 72h)
    #[serde(deserialize_with = "duration")]
    pub retention: Duration,
    /// images kept per bucket (default 5,000)
    pub top_images: usize,
    /// variants kept per bucket (default 10,000)
    pub top_variants: usize,
    /// share of the key space whose requests are sampled for `opossum cache size` (SHARDS;
    /// default 0.1)
    pub sample_rate: f64,
    /// most sampled requests kept (default 200,000, about 20 MB in Redis)
    pub sample_cap: usize,
}

impl AnalyticsSettings {
    /// Checks the sample rate is a fraction.
    pub(crate) fn validate(&self) -> Result<(), Invalid> {
        if !(0.0..=1.0).contains(&self.sample_rate) {
            return Err(Invalid::new(
                "sample_rate",
                format!("{} is not between 0 and 1", self.sample_rate),
            ));
        }
        Ok(())
    }
}

impl Default for AnalyticsSettings {
    fn default() -> AnalyticsSettings {
        AnalyticsSettings {
            bucket: Duration::from_secs(3600),
            retention: Duration::from_secs(72 * 3600),
            top_images: 5_000,
            top_variants: 10_000,
            sample_rate: 0.1,
            sample_cap: 200_000,
        }
    }
}

/// `warming:`: what the scheduler warms and how much it may enqueue.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WarmingSettings {
    /// run the strategies: the scheduler's `run`, and the scheduler inside `opossum serve` in
    /// embedded mode (default true)
    pub enabled: bool,
    /// operations the background strategy applies to the top images (the seed's list)
    pub common_operations: Vec<String>,
    /// output formats related-variant warming offers as siblings of a variant with a format
    pub related_formats: Vec<OutputFormat>,
    /// images the background strategy covers
    pub top_images: usize,
    /// most warm jobs one run of one strategy enqueues
    pub jobs_per_run: usize,
    /// no warm jobs are enqueued while the warm queue holds this many
    pub backlog_cap: u64,
    /// cron schedule of the background strategy (default nightly, `0 3 * * *`, UTC)
    pub schedule: String,
    /// how often the predictive strategy runs and low traffic is checked (default 5m)
    #[serde(deserialize_with = "duration")]
    pub interval: Duration,
    /// analytics window the strategies read (default 24h)
    #[serde(deserialize_with = "duration")]
    pub window: Duration,
    /// half-life of the decayed request rates of the predictive strategy (default 6h)
    #[serde(deserialize_with = "duration")]
    pub half_life: Duration,
    /// the "next window" predictive warming prepares for (default 1h)
    #[serde(deserialize_with = "duration")]
    pub horizon: Duration,
    /// predicted requests in the horizon that make a variant worth warming (default 1)
    pub min_expected_requests: f64,
    /// traffic below this share of the average counts as low (default 0.5)
    pub low_traffic_fraction: f64,
    /// how long a variant enqueued for warming is not enqueued again (default 10m)
    #[serde(deserialize_with = "duration")]
    pub claim_ttl: Duration,
}

impl Default for WarmingSettings {
    fn default() -> WarmingSettings {
        WarmingSettings {
            enabled: true,
            common_operations: vec![
                "resize:800:600".into(),
                "thumbnail:200".into(),
                "grayscale".into(),
            ],
            related_formats: vec![OutputFormat::Jpeg, OutputFormat::Webp, OutputFormat::Avif],
            top_images: 100,
            jobs_per_run: 1_000,
            backlog_cap: 5_000,
            schedule: "0 3 * * *".into(),
            interval: Duration::from_secs(300),
            window: Duration::from_secs(24 * 3600),
            half_life: Duration::from_secs(6 * 3600),
            horizon: Duration::from_secs(3600),
            min_expected_requests: 1.0,
            low_traffic_fraction: 0.5,
            claim_ttl: Duration::from_secs(600),
        }
    }
}

impl WarmingSettings {
    /// Checks values serde cannot: chains parse (presets included), formats exist, numbers are
    /// in range. The error is (key, message).
    pub(crate) fn validate(&self, presets: &Presets) -> Result<(), Invalid> {
        for (index, ops) in self.common_operations.iter().enumerate() {
            Chain::parse_any_with(ops, presets).map_err(|e| {
                Invalid::new(
                    format!("common_operations[{index}]"),
                    format!("`{ops}`: {e}"),
                )
            })?;
        }
        if !(0.0..=1.0).contains(&self.low_traffic_fraction) {
            return Err(Invalid::new(
                "low_traffic_fraction",
                format!("{} is not between 0 and 1", self.low_traffic_fraction),
            ));
        }
        if !(self.min_expected_requests.is_finite() && self.min_expected_requests >= 0.0) {
            return Err(Invalid::new(
                "min_expected_requests",
                format!("{} is not a number of requests", self.min_expected_requests),
            ));
        }
        for (key, value) in [("half_life", self.half_life), ("interval", self.interval)] {
            if value.is_zero() {
                return Err(Invalid::new(key, "must be more than zero"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::{Config, ConfigError};

    #[test]
    fn reads_warming_and_analytics() {
        let config = Config::parse(
            "warming:\n  common_operations: [thumbnail:100]\n  interval: 90s\n  half_life: 7200\nanalytics:\n  bucket: 10m\n",
            "w.yaml",
        )
        .unwrap();
        assert_eq!(config.warming.common_operations, vec!["thumbnail:100"]);
        assert_eq!(config.warming.interval.as_secs(), 90);
        assert_eq!(config.warming.half_life.as_secs(), 7200);
        assert_eq!(config.warming.jobs_per_run, 1_000);
        assert_eq!(config.analytics.bucket.as_secs(), 600);
        assert_eq!(config.analytics.retention.as_secs(), 72 * 3600);
    }

    #[test]
    fn bad_settings_name_their_key() {
        let check = |yaml: &str, expected: &str| {
            let err: ConfigError = Config::parse(yaml, "w.yaml").unwrap_err();
            assert!(err.to_string().contains(expected), "{err}");
        };
        check(
            "warming:\n  jobs_per_runs: 3\n",
            "warming.jobs_per_runs: unknown field `jobs_per_runs`",
        );
        check("warming:\n  interval: soon\n", "`soon` is not a duration");
        check(
            "warming:\n  common_operations: [\"blur:x\"]\n",
            "warming.common_operations[0]: `blur:x`",
        );
        check(
            "warming:\n  related_formats: [webp, tiff]\n",
            "warming.related_formats[1]: unknown format `tiff`",
        );
        check(
            "warming:\n  low_traffic_fraction: 2\n",
            "warming.low_traffic_fraction: 2 is not between 0 and 1",
        );
        check(
            "analytics:\n  buckets: 1h\n",
            "analytics.buckets: unknown field `buckets`",
        );
    }
}

/// `encoding:`: the encoder settings a request leaves out, per format (`format:jpeg` takes its
/// quality from `encoding.jpeg.quality`). A request's own setting always wins. A default that
/// differs from the built-in one is part of the key of every variant it changes, so changing it
/// never serves bytes made under the old one.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EncodingSettings {
    /// `encoding.jpeg`
    pub jpeg: JpegSettings,
    /// `encoding.png`
    pub png: PngSettings,
    /// `encoding.webp`
    pub webp: WebpSettings,
    /// `encoding.avif`
    pub avif: AvifSettings,
}

/// `encoding.jpeg`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JpegSettings {
    /// 1-100 (default 80)
    pub quality: u8,
    /// progressive scans (default false)
    pub progressive: bool,
    /// chroma subsampling, `420` (default) or `444`
    pub chroma: opossum_ops::Chroma,
}

/// `encoding.png`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PngSettings {
    /// how hard the lossless optimiser works, 0-6 (default 1)
    pub compression: u8,
}

/// `encoding.webp`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebpSettings {
    /// 1-100 (default 80)
    pub quality: u8,
    /// 0-6 (default 4): higher is smaller and slower
    pub effort: u8,
}

/// `encoding.avif`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AvifSettings {
    /// 1-100 (default 60)
    pub quality: u8,
    /// 0-10 (default 8): lower is smaller and slower
    pub speed: u8,
}

impl Default for JpegSettings {
    fn default() -> JpegSettings {
        let d = opossum_ops::EncodingDefaults::default();
        JpegSettings {
            quality: d.jpeg_quality,
            progressive: d.jpeg_progressive,
            chroma: d.jpeg_chroma,
        }
    }
}

impl Default for PngSettings {
    fn default() -> PngSettings {
        PngSettings {
            compression: opossum_ops::EncodingDefaults::default().png_compression,
        }
    }
}

impl Default for WebpSettings {
    fn default() -> WebpSettings {
        let d = opossum_ops::EncodingDefaults::default();
        WebpSettings {
            quality: d.webp_quality,
            effort: d.webp_effort,
        }
    }
}

impl Default for AvifSettings {
    fn default() -> AvifSettings {
        let d = opossum_ops::EncodingDefaults::default();
        AvifSettings {
            quality: d.avif_quality,
            speed: d.avif_speed,
        }
    }
}

impl EncodingSettings {
    /// The engine's form.
    pub fn defaults(&self) -> opossum_ops::EncodingDefaults {
        opossum_ops::EncodingDefaults {
            jpeg_quality: self.jpeg.quality,
            jpeg_progressive: self.jpeg.progressive,
            jpeg_chroma: self.jpeg.chroma,
            png_compression: self.png.compression,
            webp_quality: self.webp.quality,
            webp_effort: self.webp.effort,
            avif_quality: self.avif.quality,
            avif_speed: self.avif.speed,
        }
    }

    /// Checks each value's range.
    pub(crate) fn validate(&self) -> Result<(), Invalid> {
        let check = |key: &str, value: u8, min: u8, max: u8| {
            if (min..=max).contains(&value) {
                Ok(())
            } else {
                Err(Invalid::new(
                    key,
                    format!("{value} is out of range: must be between {min} and {max}"),
                ))
            }
        };
        check("jpeg.quality", self.jpeg.quality, 1, 100)?;
        check(
            "png.compression",
            self.png.compression,
            0,
            opossum_ops::MAX_PNG_COMPRESSION,
        )?;
        check("webp.quality", self.webp.quality, 1, 100)?;
        check(
            "webp.effort",
            self.webp.effort,
            0,
            opossum_ops::MAX_WEBP_EFFORT,
        )?;
        check("avif.quality", self.avif.quality, 1, 100)?;
        check(
            "avif.speed",
            self.avif.speed,
            0,
            opossum_ops::MAX_AVIF_SPEED,
        )
    }
}

/// `sources:`: how originals are fetched over HTTP(S), from the `originals: https://…/` base
/// and, when `url_ids` is on, from image ids that are URLs. Such ids are user input, so the
/// defaults refuse everything a URL could be turned against: no host is allowed until listed,
/// only ports 80 and 443, only public addresses.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SourcesSettings {
    /// image ids that are full `http://` or `https://` URLs are fetched (default false)
    pub url_ids: bool,
    /// hosts URL ids may name: exact names or addresses, and `*.example.com` for every name
    /// below `example.com`; empty (the default) allows none
    pub allowed_hosts: Vec<String>,
    /// ports URL ids may name (default 80 and 443)
    pub allowed_ports: Vec<u16>,
    /// let URL ids and redirects reach loopback, private, link-local and other non-public
    /// addresses (default false; for development only)
    pub allow_private: bool,
    /// non-public networks allowed all the same, as CIDR (`10.20.0.0/16`: an internal image
    /// server's subnet); default none
    pub allowed_networks: Vec<String>,
    /// longest wait for a connection (default 5s)
    #[serde(deserialize_with = "duration")]
    pub connect_timeout: Duration,
    /// longest a whole fetch may take, redirects and body included (default 30s)
    #[serde(deserialize_with = "duration")]
    pub timeout: Duration,
    /// slowest body accepted once `rate_grace` has passed, per second (default 32KiB); 0 turns
    /// the check off
    #[serde(deserialize_with = "crate::settings::size")]
    pub min_rate: u64,
    /// how long a body may take before `min_rate` applies (default 2s)
    #[serde(deserialize_with = "duration")]
    pub rate_grace: Duration,
    /// redirects followed at most (default 3)
    pub max_redirects: usize,
    /// fetched originals are kept in the local disk tier for the origin's `Cache-Control`
    /// max-age, but never less than this (default 1m) ...
    #[serde(deserialize_with = "duration")]
    pub cache_min_ttl: Duration,
    /// ... nor more than this (default 7d)
    #[serde(deserialize_with = "duration")]
    pub cache_max_ttl: Duration,
    /// how long an original without a max-age is kept before it is revalidated (default 1h)
    #[serde(deserialize_with = "duration")]
    pub cache_default_ttl: Duration,
}

impl Default for SourcesSettings {
    fn default() -> SourcesSettings {
        SourcesSettings {
            url_ids: false,
            allowed_hosts: Vec::new(),
            allowed_ports: vec![80, 443],
            allow_private: false,
            allowed_networks: Vec::new(),
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(30),
            min_rate: 32 * 1024,
            rate_grace: Duration::from_secs(2),
            max_redirects: 3,
            cache_min_ttl: Duration::from_secs(60),
            cache_max_ttl: Duration::from_secs(7 * 24 * 3600),
            cache_default_ttl: Duration::from_secs(3600),
        }
    }
}

impl SourcesSettings {
    /// The host patterns, parsed.
    pub fn host_patterns(&self) -> Result<Vec<opossum_fetch::HostPattern>, String> {
        self.allowed_hosts
            .iter()
            .map(|pattern| opossum_fetch::HostPattern::parse(pattern))
            .collect()
    }

    /// The allowed networks, parsed.
    pub fn networks(&self) -> Result<Vec<opossum_fetch::IpNet>, String> {
        self.allowed_networks
            .iter()
            .map(|net| {
                net.trim()
                    .parse()
                    .map_err(|_| format!("`{net}` is not a network in CIDR form (`10.20.0.0/16`)"))
            })
            .collect()
    }

    /// Checks the patterns, networks, ports and bounds.
    pub(crate) fn validate(&self) -> Result<(), Invalid> {
        self.host_patterns()
            .map_err(|message| Invalid::new("allowed_hosts", message))?;
        self.networks()
            .map_err(|message| Invalid::new("allowed_networks", message))?;
        if self.allowed_ports.contains(&0) {
            return Err(Invalid::new("allowed_ports", "0 is not a port"));
        }
        if self.timeout.is_zero() {
            return Err(Invalid::new("timeout", "must be more than zero"));
        }
        if self.cache_min_ttl > self.cache_max_ttl {
            return Err(Invalid::new(
                "cache_min_ttl",
                "is longer than sources.cache_max_ttl",
            ));
        }
        Ok(())
    }
}
