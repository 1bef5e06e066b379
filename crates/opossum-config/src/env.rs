//! Environment overrides: `OPOSSUM_A__B=value` sets key `a.b` of the file's settings before they
//! are read, so a container can change any setting without a file of its own.

use crate::ConfigError;

/// Prefix of the environment overrides.
pub const ENV_PREFIX: &str = "OPOSSUM_";

/// Sets each `OPOSSUM_A__B=value` of `vars` at key path `a.b` of `value`. Variables without
/// `__` are the flags' own and are left to them. Returns (key path, variable) per override.
pub(crate) fn apply_env(
    value: &mut serde_json::Value,
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<Vec<(String, String)>, ConfigError> {
    let mut applied = Vec::new();
    let mut vars: Vec<(String, String)> = vars
        .into_iter()
        .filter(|(name, _)| name.starts_with(ENV_PREFIX) && name.contains("__"))
        .collect();
    vars.sort();
    for (name, text) in vars {
        let path: Vec<String> = name[ENV_PREFIX.len()..]
            .split("__")
            .map(str::to_ascii_lowercase)
            .collect();
        let key = path.join(".");
        if path.iter().any(String::is_empty) {
            return Err(ConfigError::Setting {
                path: format!("environment {name}"),
                section: key,
                message: "empty key in the variable name".into(),
            });
        }
        let parsed: serde_json::Value = if text.trim().is_empty() {
            serde_json::Value::String(text.clone())
        } else {
            serde_saphyr::from_str(&text).unwrap_or(serde_json::Value::String(text.clone()))
        };
        let mut node = &mut *value;
        for (depth, segment) in path.iter().enumerate() {
            if !node.is_object() {
                return Err(ConfigError::Setting {
                    path: format!("environment {name}"),
                    section: path[..depth].join("."),
                    message: "is not a section, so it has no keys to set".into(),
                });
            }
            let map = node.as_object_mut().expect("checked to be an object");
            node = map
                .entry(segment.clone())
                .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
        }
        *node = parsed;
        applied.push((key, name));
    }
    Ok(applied)
}
