//! Presets: named, versioned operation chains from configuration.
//!
//! A chain may name a preset as one of its steps, `preset:avatar` (the configured version) or
//! `preset:avatar:3` (exactly version 3); in JSON `{"op":"preset","name":"avatar","version":3}`.
//! The step is replaced by the preset's operations before normalisation, so the canonical
//! chain, and therefore the cache key, is the expanded one: two presets with the same
//! operations share cached variants, and changing a preset's operations gives new keys without
//! anyone having to purge. The version exists so that processes running different
//! configurations (a rolling deploy) agree on what `preset:avatar:3` means: a process publishes
//! its presets to the cache as `resource` entries, and one that does not have a version in its
//! own configuration looks it up there (see `opossum_pipeline::PresetStore`).
//!
//! A preset cannot name another preset: its operations are parsed without any presets.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{Chain, OpsError};

/// Longest preset or family name.
const MAX_NAME_LEN: usize = 64;

/// A chain step naming a preset.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PresetRef {
    /// the preset's name
    pub name: String,
    /// the exact version asked for; `None` means the configured one
    pub version: Option<u32>,
}

impl fmt::Display for PresetRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.version {
            Some(v) => write!(f, "preset:{}:{v}", self.name),
            None => write!(f, "preset:{}", self.name),
        }
    }
}

impl PresetRef {
    /// Reads the arguments of a `preset` step: a name and an optional version (`3` or `v3`).
    pub(crate) fn new(
        position: usize,
        name: Option<&str>,
        version: Option<&str>,
    ) -> Result<PresetRef, OpsError> {
        let bad = |value: &str, reason: &str| OpsError::BadArgument {
            position,
            op: "preset",
            arg: "name",
            value: value.to_string(),
            reason: reason.to_string(),
        };
        let name = name.map(str::trim).unwrap_or_default();
        if name.is_empty() {
            return Err(OpsError::MissingArgument {
                position,
                op: "preset",
                arg: "name",
            });
        }
        check_name(name).map_err(|reason| bad(name, reason))?;
        let version = match version.map(str::trim).filter(|v| !v.is_empty()) {
            None => None,
            Some(text) => {
                let digits = text.strip_prefix(['v', 'V']).unwrap_or(text);
                match digits.parse::<u32>() {
                    Ok(v) if v >= 1 => Some(v),
                    _ => {
                        return Err(OpsError::BadArgument {
                            position,
                            op: "preset",
                            arg: "version",
                            value: text.to_string(),
                            reason: "expected a version number such as `3` or `v3`".into(),
                        });
                    }
                }
            }
        };
        Ok(PresetRef {
            name: name.to_string(),
            version,
        })
    }
}

fn check_name(name: &str) -> Result<(), &'static str> {
    if name.len() > MAX_NAME_LEN {
        return Err("names are at most 64 characters");
    }
    let ok = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if !ok {
        return Err("names use lowercase letters, digits, `-` and `_`");
    }
    Ok(())
}

/// Where a chain's preset steps are looked up.
pub trait PresetLookup {
    /// The operations of the preset `reference` names, or `None` when it is unknown.
    fn lookup(&self, reference: &PresetRef) -> Option<&Chain>;
}

/// No presets at all: every preset step is an unknown preset.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoPresets;

impl PresetLookup for NoPresets {
    fn lookup(&self, _: &PresetRef) -> Option<&Chain> {
        None
    }
}

/// One preset: a name, a version and the operations it stands for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preset {
    /// its name, as chains write it
    pub name: String,
    /// its version; bump it when the operations change
    pub version: u32,
    /// the operations, normalised
    pub ops: Chain,
    /// the family of related presets (other sizes of the same use), for related-variant warming
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
}

/// How a preset is written in configuration, under `presets:` keyed by its name.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PresetSpec {
    #[serde(default = "first_version")]
    version: u32,
    ops: serde_json::Value,
    #[serde(default)]
    family: Option<String>,
}

fn first_version() -> u32 {
    1
}

/// The presets of one configuration, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Presets {
    by_name: BTreeMap<String, Preset>,
}

impl Presets {
    /// Builds the table from configuration's `presets:` section, given as a JSON value (YAML
    /// and JSON configuration both deserialise to one): a map from name to `{version, ops,
    /// family}`, where `ops` is a chain in either form. Errors name the preset.
    pub fn from_config(value: &serde_json::Value) -> Result<Presets, OpsError> {
        let object = match value {
            serde_json::Value::Null => return Ok(Presets::default()),
            serde_json::Value::Object(object) => object,
            _ => return Err(OpsError::PresetsNotAMap),
        };
        let mut by_name = BTreeMap::new();
        for (name, spec) in object {
            let fail = |reason: String| OpsError::BadPreset {
                name: name.clone(),
                reason,
            };
            check_name(name).map_err(|r| fail(r.to_string()))?;
            let spec: PresetSpec =
                serde_json::from_value(spec.clone()).map_err(|e| fail(e.to_string()))?;
            if spec.version == 0 {
                return Err(fail("version must be 1 or more".into()));
            }
            if let Some(family) = &spec.family {
                check_name(family).map_err(|r| fail(format!("family: {r}")))?;
            }
            let ops = match &spec.ops {
                serde_json::Value::String(text) => Chain::parse(text),
                other => Chain::from_json_value(other),
            }
            .map_err(|e| fail(e.to_string()))?;
            by_name.insert(
                name.clone(),
                Preset {
                    name: name.clone(),
                    version: spec.version,
                    ops,
                    family: spec.family,
                },
            );
        }
        Ok(Presets { by_name })
    }

    /// Adds or replaces a preset.
    pub fn insert(&mut self, preset: Preset) {
        self.by_name.insert(preset.name.clone(), preset);
    }

    /// The preset of this name.
    pub fn get(&self, name: &str) -> Option<&Preset> {
        self.by_name.get(name)
    }

    /// All presets, by name.
    pub fn iter(&self) -> impl Iterator<Item = &Preset> {
        self.by_name.values()
    }

    /// Number of presets.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// The other presets of `name`'s family (for related-variant warming).
    pub fn siblings(&self, name: &str) -> Vec<&Preset> {
        let Some(family) = self.get(name).and_then(|p| p.family.as_deref()) else {
            return Vec::new();
        };
        self.iter()
            .filter(|p| p.name != name && p.family.as_deref() == Some(family))
            .collect()
    }
}

impl PresetLookup for Presets {
    fn lookup(&self, reference: &PresetRef) -> Option<&Chain> {
        let preset = self.by_name.get(&reference.name)?;
        match reference.version {
            Some(v) if v != preset.version => None,
            _ => Some(&preset.ops),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn presets() -> Presets {
        let config = serde_json::json!({
            "avatar": {"version": 2, "ops": "thumbnail:128,format:webp", "family": "avatar"},
            "avatar-large": {"ops": [{"op": "thumbnail", "size": 512}], "family": "avatar"},
            "mono": {"ops": "grayscale"},
            "print": {"ops": "keep:icc,resize:2000,max-bytes:500000,format:jpeg:90"},
        });
        Presets::from_config(&config).unwrap()
    }

    #[test]
    fn chains_expand_presets_and_key_on_the_expansion() {
        let p = presets();
        let chain = Chain::parse_with("preset:avatar", &p).unwrap();
        assert_eq!(chain.to_string(), "thumbnail:128,format:webp");
        let versioned = Chain::parse_with("preset:avatar:v2", &p).unwrap();
        assert_eq!(chain, versioned);
        let json = Chain::parse_any_with(r#"[{"op":"preset","name":"avatar","version":2}]"#, &p);
        assert_eq!(json.unwrap(), chain);
        let mixed = Chain::parse_with("preset:mono,blur:2,preset:avatar", &p).unwrap();
        assert_eq!(
            mixed.to_string(),
            "grayscale,blur:2,thumbnail:128,format:webp"
        );
    }

    #[test]
    fn a_preset_brings_its_budget_and_what_it_keeps() {
        let p = presets();
        let chain = Chain::parse_with("preset:print", &p).unwrap();
        assert_eq!(
            chain.to_string(),
            "keep:icc,resize:2000:0:fit,max-bytes:500000,format:jpeg:90"
        );
        // A budget written in the chain overrides the preset's; what is kept adds up.
        let chain = Chain::parse_with("keep:copyright,preset:print,max-bytes:9000", &p).unwrap();
        assert_eq!(
            chain.to_string(),
            "keep:icc:copyright,resize:2000:0:fit,max-bytes:9000,format:jpeg:90"
        );
    }

    #[test]
    fn unknown_presets_and_versions_are_named() {
        let p = presets();
        let err = Chain::parse_with("blur:1,preset:nope", &p).unwrap_err();
        assert_eq!(err.to_string(), "operation 2: unknown preset `preset:nope`");
        let err = Chain::parse_with("preset:avatar:7", &p).unwrap_err();
        assert_eq!(
            err.to_string(),
            "operation 1: unknown preset `preset:avatar:7`"
        );
        let err = Chain::parse("preset:avatar").unwrap_err();
        assert_eq!(
            err.to_string(),
            "operation 1: unknown preset `preset:avatar`"
        );
        let err = Chain::parse_with("preset:avatar,grayscale", &p).unwrap_err();
        assert!(
            err.to_string().contains("must be the last operation"),
            "{err}"
        );
        let err = Chain::parse_with("preset:Bad!", &p).unwrap_err();
        assert!(err.to_string().contains("lowercase letters"), "{err}");
        let err = Chain::parse_with("preset:avatar:x", &p).unwrap_err();
        assert!(err.to_string().contains("bad version `x`"), "{err}");
    }

    #[test]
    fn references_are_listed_without_resolving() {
        let refs = Chain::preset_refs("preset:a:3,blur:1,preset:b").unwrap();
        let names: Vec<String> = refs.iter().map(ToString::to_string).collect();
        assert_eq!(names, ["preset:a:3", "preset:b"]);
        assert!(Chain::preset_refs("blur:1").unwrap().is_empty());
    }

    #[test]
    fn bad_configuration_names_the_preset() {
        let bad = |value: serde_json::Value| Presets::from_config(&value).unwrap_err().to_string();
        let err = bad(serde_json::json!({"thumb": {"ops": "resize:abc"}}));
        assert!(
            err.starts_with("preset `thumb`: operation 1 `resize`"),
            "{err}"
        );
        let err = bad(serde_json::json!({"nested": {"ops": "preset:thumb"}}));
        assert!(err.contains("unknown preset"), "{err}");
        let err = bad(serde_json::json!({"x": {"ops": "blur:1", "colour": "red"}}));
        assert!(err.contains("unknown field `colour`"), "{err}");
        let err = bad(serde_json::json!({"x": {"ops": "blur:1", "version": 0}}));
        assert!(err.contains("version must be 1 or more"), "{err}");
    }

    #[test]
    fn siblings_share_a_family() {
        let p = presets();
        let names: Vec<&str> = p
            .siblings("avatar")
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(names, ["avatar-large"]);
        assert!(p.siblings("mono").is_empty());
    }

    #[test]
    fn a_preset_round_trips_through_serde() {
        let p = presets();
        let preset = p.get("avatar").unwrap();
        let json = serde_json::to_string(preset).unwrap();
        let back: Preset = serde_json::from_str(&json).unwrap();
        assert_eq!(&back, preset);
    }
}
