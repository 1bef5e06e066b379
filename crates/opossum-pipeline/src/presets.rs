//! Presets as cached resources: the seed's "resource caching" (`preset:{name}:v{version}`, long
//! TTL), made useful for a fleet.
//!
//! Each process loads the presets of its own configuration once, at start. It publishes them to
//! the cache hierarchy as `resource` entries (24-48 h, republished before they expire), under the
//! image id `preset:{name}` with the version as an option, so `opossum cache invalidate
//! preset:avatar` drops every version. A chain naming a preset resolves from the process's own
//! configuration first; an exact version it does not have (`preset:avatar:3` submitted by a
//! producer already running a newer configuration, during a rolling deploy) is read from the
//! cache once and remembered for the life of the process, since a published version never
//! changes meaning. A version nobody has published is an unknown preset, a bad input.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opossum_cache::{Entry, Hierarchy};
use opossum_ops::{
    Category, Chain, OpsError, Options, Preset, PresetLookup, PresetRef, Presets, TtlInputs,
    adaptive_ttl, derive_key,
};

/// Media type of a published preset.
pub const PRESET_MEDIA_TYPE: &str = "application/vnd.opossum.preset+msgpack";

/// Presets are republished when their cached copy may have half its life left.
const REPUBLISH_AFTER: Duration = Duration::from_secs(12 * 3600);

/// Resolves chains that name presets, from configuration and the cache.
pub struct PresetStore {
    local: Presets,
    hierarchy: Arc<Hierarchy>,
    namespace: String,
    version: String,
    fetched: Mutex<HashMap<(String, u32), Chain>>,
    published_at: Mutex<Option<Instant>>,
}

/// The configuration's presets, then versions read from the cache.
struct Combined<'a> {
    local: &'a Presets,
    fetched: &'a HashMap<(String, u32), Chain>,
}

impl PresetLookup for Combined<'_> {
    fn lookup(&self, reference: &PresetRef) -> Option<&Chain> {
        self.local.lookup(reference).or_else(|| {
            let version = reference.version?;
            self.fetched.get(&(reference.name.clone(), version))
        })
    }
}

impl PresetStore {
    /// A store for the presets of this process's configuration. `namespace` and `version` are
    /// the pipeline's, so presets share the key space (and the processing version) of results.
    pub fn new(
        local: Presets,
        hierarchy: Arc<Hierarchy>,
        namespace: &str,
        version: &str,
    ) -> PresetStore {
        PresetStore {
            local,
            hierarchy,
            namespace: namespace.to_string(),
            version: version.to_string(),
            fetched: Mutex::new(HashMap::new()),
            published_at: Mutex::new(None),
        }
    }

    /// The presets of this process's configuration.
    pub fn local(&self) -> &Presets {
        &self.local
    }

    /// The cache key of one version of a preset.
    pub fn key(&self, name: &str, version: u32) -> String {
        let mut options = Options::new();
        let _ = options.insert("preset-version", &version.to_string());
        let image_id = format!("preset:{name}");
        derive_key(
            &self.namespace,
            &self.version,
            &image_id,
            &Chain::default(),
            &options,
            // Not an encoded variant: no encoding setting reaches it.
            &opossum_ops::EncodingDefaults::default(),
        )
        .to_string()
    }

    /// Writes every configured preset to the cache; returns how many went to at least one tier.
    pub async fn publish(&self) -> usize {
        let pressure = self.hierarchy.storage_pressure().await;
        let ttl = adaptive_ttl(
            Category::Resource,
            TtlInputs {
                storage_pressure: pressure,
                ..TtlInputs::default()
            },
        );
        let mut published = 0;
        for preset in self.local.iter() {
            let body = match rmp_serde::to_vec_named(preset) {
                Ok(body) => body,
                Err(e) => {
                    tracing::error!(preset = %preset.name, error = %e, "preset not serialisable");
                    continue;
                }
            };
            let entry = Entry::new(body, PRESET_MEDIA_TYPE, Category::Resource, ttl, 0, (0, 0));
            let key = self.key(&preset.name, preset.version);
            if self.hierarchy.put(&key, Arc::new(entry)).await > 0 {
                published += 1;
            }
        }
        *self.published_at.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        published
    }

    async fn publish_if_due(&self) {
        if self.local.is_empty() {
            return;
        }
        let due = self
            .published_at
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_none_or(|at| at.elapsed() >= REPUBLISH_AFTER);
        if due {
            self.publish().await;
        }
    }

    /// Reads one version of a preset from the cache.
    pub async fn fetch(&self, name: &str, version: u32) -> Option<Preset> {
        let hit = self
            .hierarchy
            .get(&self.key(name, version), Category::Resource)
            .await?;
        match rmp_serde::from_slice::<Preset>(&hit.entry.body) {
            Ok(preset) if preset.name == name && preset.version == version => Some(preset),
            Ok(other) => {
                tracing::warn!(
                    expected = %format!("{name}:{version}"),
                    found = %format!("{}:{}", other.name, other.version),
                    "cached preset does not match its key; ignored"
                );
                None
            }
            Err(e) => {
                tracing::warn!(preset = name, version, error = %e, "undecodable cached preset");
                None
            }
        }
    }

    /// Parses a chain in either form, expanding the presets it names.
    pub async fn resolve(&self, text: &str) -> Result<Chain, OpsError> {
        self.publish_if_due().await;
        // One parse in the common case: no presets, or only ones already known.
        match self.parse_known(text) {
            Err(OpsError::UnknownPreset { .. }) => {}
            done => return done,
        }
        // An exact version neither configured nor read yet: read what is missing, parse again.
        for reference in Chain::preset_refs(text)? {
            let Some(version) = reference.version else {
                continue;
            };
            let known = self.local.lookup(&reference).is_some()
                || self
                    .lock_fetched()
                    .contains_key(&(reference.name.clone(), version));
            if known {
                continue;
            }
            if let Some(preset) = self.fetch(&reference.name, version).await {
                self.lock_fetched()
                    .insert((preset.name, preset.version), preset.ops);
            }
        }
        self.parse_known(text)
    }

    /// Parses with the configuration's presets and the versions read so far.
    fn parse_known(&self, text: &str) -> Result<Chain, OpsError> {
        let fetched = self.lock_fetched();
        let lookup = Combined {
            local: &self.local,
            fetched: &fetched,
        };
        Chain::parse_any_with(text, &lookup)
    }

    fn lock_fetched(&self) -> std::sync::MutexGuard<'_, HashMap<(String, u32), Chain>> {
        // The map is only ever inserted into whole entries; a poisoned lock still holds a
        // consistent map.
        self.fetched.lock().unwrap_or_else(|e| e.into_inner())
    }
}
