//! The configuration file: one YAML document that every binary accepts with `--config FILE`
//! (or `OPOSSUM_CONFIG`).
//!
//! This version reads the `presets` section (the named operation chains of the cache's resource
//! category), `analytics` (bucket length, retention and bounds of the usage analytics) and
//! `warming` (the scheduler's strategies and budgets; [`WarmingSettings`]). The seed's cache,
//! Redis and disk keys, the environment overrides and `opossum config check` arrive with the
//! operations issue; until then any other key is an error naming it, so a file is never
//! half-applied in silence.
//!
//! YAML is read with serde-saphyr: a pure-Rust parser that never panics on malformed input and
//! bounds alias expansion, where the once-standard serde_yaml is archived and its fork
//! serde_yml was withdrawn as unsound.

use std::path::Path;

use opossum_ops::{OpsError, Presets};

mod sections;

pub use sections::{AnalyticsSettings, WarmingSettings};

/// Top-level keys this version understands.
const KNOWN_KEYS: &[&str] = &["presets", "analytics", "warming"];

/// Largest configuration file read.
const MAX_BYTES: u64 = 4 << 20;

/// What is wrong with a configuration file. Messages name the file and the key.
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
    /// A key is not known.
    #[error("configuration {path}: unknown key `{key}` (known: {known})")]
    UnknownKey {
        /// the file
        path: String,
        /// the key path
        key: String,
        /// the keys accepted there
        known: String,
    },
    /// A setting has a bad value or an unknown key.
    #[error("configuration {path}: {section}: {message}")]
    Setting {
        /// the file
        path: String,
        /// the section (and key, where known)
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

/// A loaded configuration.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    /// named, versioned operation chains
    pub presets: Presets,
    /// usage analytics
    pub analytics: AnalyticsSettings,
    /// cache warming
    pub warming: WarmingSettings,
}

impl Config {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
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
        let text = std::fs::read_to_string(path).map_err(|e| read_error(e.to_string()))?;
        Config::parse(&text, &shown)
    }

    /// Parses the YAML `text`; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let value: serde_json::Value = if text.trim().is_empty() {
            serde_json::Value::Null
        } else {
            serde_saphyr::from_str(text).map_err(|e| ConfigError::Syntax {
                path: origin.to_string(),
                message: e.to_string(),
            })?
        };
        let empty = serde_json::Map::new();
        let top = match &value {
            serde_json::Value::Null => &empty,
            serde_json::Value::Object(map) => map,
            _ => {
                return Err(ConfigError::Syntax {
                    path: origin.to_string(),
                    message: "expected a map of settings at the top level".into(),
                });
            }
        };
        if let Some(key) = top.keys().find(|k| !KNOWN_KEYS.contains(&k.as_str())) {
            return Err(ConfigError::UnknownKey {
                path: origin.to_string(),
                key: key.clone(),
                known: KNOWN_KEYS.join(", "),
            });
        }
        let presets = Presets::from_config(top.get("presets").unwrap_or(&serde_json::Value::Null))
            .map_err(|source| ConfigError::Preset {
                path: origin.to_string(),
                source,
            })?;
        let setting_error = |section: &str, message: String| ConfigError::Setting {
            path: origin.to_string(),
            section: section.to_string(),
            message,
        };
        let analytics: AnalyticsSettings = sections::section(top, "analytics")
            .map_err(|message| setting_error("analytics", message))?;
        let warming: WarmingSettings = sections::section(top, "warming")
            .map_err(|message| setting_error("warming", message))?;
        warming
            .validate(&presets)
            .map_err(|(key, message)| setting_error(&format!("warming.{key}"), message))?;
        Ok(Config {
            presets,
            analytics,
            warming,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_presets() {
        let config = Config::parse(
            "presets:\n  avatar:\n    version: 2\n    ops: thumbnail:128,format:webp\n    family: avatar\n",
            "test.yaml",
        )
        .unwrap();
        let avatar = config.presets.get("avatar").unwrap();
        assert_eq!(avatar.version, 2);
        assert_eq!(avatar.ops.to_string(), "thumbnail:128,format:webp:80");
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
        assert_eq!(
            err.to_string(),
            "configuration a.yaml: unknown key `presetz` (known: presets, analytics, warming)"
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
}
