//! The origin's settings, from the configuration file's `origin:` section.

use std::time::Duration;

use opossum_ops::OutputFormat;

/// Origin settings.
#[derive(Debug, Clone)]
pub struct OriginConfig {
    /// HMAC keys; when any is set, requests must be signed
    pub signing_keys: Vec<Vec<u8>>,
    /// computations (or fleet jobs) in flight at once
    pub max_computations: usize,
    /// requests allowed to wait for a computation permit; beyond that, `503`
    pub max_waiting: usize,
    /// how long a miss may take (the wait for a permit, the job's completion)
    pub timeout: Duration,
    /// longest request path accepted
    pub max_path_bytes: usize,
    /// largest response body served
    pub max_output_bytes: usize,
    /// formats offered by `Accept` negotiation, in order of preference
    pub negotiate: Vec<OutputFormat>,
}

impl OriginConfig {
    /// The configuration file's `origin:` section (empty signing keys are ignored; formats
    /// were checked when the file was read).
    pub fn from_settings(settings: &opossum_config::OriginSettings) -> OriginConfig {
        OriginConfig {
            signing_keys: settings
                .signing_keys
                .iter()
                .filter(|k| !k.is_empty())
                .map(|k| k.as_bytes().to_vec())
                .collect(),
            max_computations: settings.max_computations,
            max_waiting: settings.max_waiting,
            timeout: settings.timeout,
            max_path_bytes: settings.max_path_bytes,
            max_output_bytes: usize::try_from(settings.max_output_bytes).unwrap_or(usize::MAX),
            negotiate: settings.negotiate.clone(),
        }
    }
}

impl Default for OriginConfig {
    /// The defaults of the `origin:` section.
    fn default() -> OriginConfig {
        OriginConfig::from_settings(&opossum_config::OriginSettings::default())
    }
}
