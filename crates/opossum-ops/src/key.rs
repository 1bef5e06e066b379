//! Deterministic cache keys.
//!
//! The seed hashes `img:{id}:v:{version}:op:...` joined with `:`, which is ambiguous (an image id
//! containing `:op:` collides with another request) and puts the image id only inside the hash,
//! so its own "delete by pattern" can never match. Here every component is length-prefixed
//! before hashing, and the key keeps a short hash of the image id in clear:
//! `namespace:{image-hash}:variant-hash`. A tier drops one image's entries by that prefix
//! (or by a per-image index) without scanning everything.
//!
//! The braces are a Redis Cluster hash tag: every key of one image (its variants, their
//! metadata, the image's index and the computation leases) hashes to one slot, so the shared
//! tier's transactions and scripts stay atomic on a cluster, and images spread over the shards.

use std::collections::BTreeMap;
use std::fmt;

use sha2::{Digest, Sha256};

use crate::{Chain, EncodingDefaults, OpsError};

/// Hex digits of the image hash kept in the key: 64 bits, so two images share a prefix only by
/// accident, and then an invalidation of one also drops the other's entries (harmless).
const IMAGE_HASH_HEX_LEN: usize = 16;

/// Request options outside the chain that change the output (for example a negotiated format).
/// Kept sorted, so the order they were given in never changes the key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Options(BTreeMap<String, String>);

impl Options {
    /// No options.
    pub fn new() -> Options {
        Options::default()
    }

    /// Adds an option; names are lower-cased `[a-z0-9_.-]{1,64}`, values trimmed, at most 256 bytes.
    pub fn insert(&mut self, key: &str, value: &str) -> Result<(), OpsError> {
        let name = key.trim().to_ascii_lowercase();
        let valid_name = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b));
        if !valid_name {
            return Err(OpsError::BadOption {
                key: key.to_string(),
                reason: "names are 1-64 characters of a-z, 0-9, `_`, `.` and `-`",
            });
        }
        let value = value.trim();
        if value.len() > 256 {
            return Err(OpsError::BadOption {
                key: key.to_string(),
                reason: "values are at most 256 bytes",
            });
        }
        self.0.insert(name, value.to_string());
        Ok(())
    }

    /// The options in sorted order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// A cache key: `namespace:{image_hash}:variant_hash` (the braces are a Redis Cluster hash tag).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CacheKey {
    namespace: String,
    image_hash: String,
    variant_hash: String,
}

impl CacheKey {
    /// The namespace part.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The short hash of the image id, shared by all keys of one image.
    pub fn image_hash(&self) -> &str {
        &self.image_hash
    }

    /// The hash of the whole request.
    pub fn variant_hash(&self) -> &str {
        &self.variant_hash
    }

    /// `namespace:{image_hash}:`, the prefix every key of this image starts with.
    pub fn image_prefix(&self) -> String {
        prefix_of(&self.namespace, &self.image_hash)
    }

    /// A strong HTTP entity tag for the variant (the variant hash, quoted).
    pub fn etag(&self) -> String {
        format!("\"{}\"", self.variant_hash)
    }
}

impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{}",
            prefix_of(&self.namespace, &self.image_hash),
            self.variant_hash
        )
    }
}

fn prefix_of(namespace: &str, image_hash: &str) -> String {
    format!("{namespace}:{{{image_hash}}}:")
}

/// `namespace:{image-hash}:`, the prefix of every key of `image_id` (what invalidation drops).
pub fn image_prefix(namespace: &str, image_id: &str) -> String {
    prefix_of(namespace, &image_hash(image_id))
}

/// The short hash of an image id: the middle part of every key of that image.
pub fn image_hash(image_id: &str) -> String {
    let digest = Sha256::digest(image_id.as_bytes());
    const_hex::encode(&digest[..IMAGE_HASH_HEX_LEN / 2])
}

/// Derives the key of a request. Equal requests (after normalisation, and after the encoding is
/// resolved with `encoding`) give equal keys; any difference in version, image id, chain, options
/// or the encoding defaults the output depends on gives a different one.
pub fn derive_key(
    namespace: &str,
    version: &str,
    image_id: &str,
    chain: &Chain,
    options: &Options,
    encoding: &EncodingDefaults,
) -> CacheKey {
    derive_key_with_chain(namespace, version, image_id, chain, options, encoding).0
}

/// [`derive_key`], also returning the canonical chain text it hashed (what a caller that shows
/// or records the chain would otherwise print a second time).
///
/// The chain's `format` step is hashed resolved, so a default spelled out and one left out are
/// one key. A chain without one is encoded in a format chosen from the source, which the key
/// cannot know: the encoding defaults that differ from the built-in ones are hashed instead.
pub fn derive_key_with_chain(
    namespace: &str,
    version: &str,
    image_id: &str,
    chain: &Chain,
    options: &Options,
    encoding: &EncodingDefaults,
) -> (CacheKey, String) {
    let canonical = chain.resolved_text(encoding);
    let mut options = std::borrow::Cow::Borrowed(options);
    let sourced = chain.encoding().is_none() && !chain.is_analysis();
    if sourced && let Some(identity) = encoding.identity() {
        // The identity is a few short `name=value` pairs, well inside an option's limits.
        let _ = options.to_mut().insert("encoding.defaults", &identity);
    }
    let mut hasher = Sha256::new();
    let mut field = |bytes: &[u8]| {
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(bytes);
    };
    field(b"opossum-variant");
    field(version.as_bytes());
    field(image_id.as_bytes());
    field(canonical.as_bytes());
    for (name, value) in options.iter() {
        field(name.as_bytes());
        field(value.as_bytes());
    }
    let key = CacheKey {
        namespace: namespace.to_string(),
        image_hash: image_hash(image_id),
        variant_hash: const_hex::encode(hasher.finalize()),
    };
    (key, canonical)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str, chain: &str) -> String {
        let chain = Chain::parse_any(chain).unwrap();
        derive_key(
            "opossum",
            "1",
            id,
            &chain,
            &Options::new(),
            &EncodingDefaults::default(),
        )
        .to_string()
    }

    #[test]
    fn layout_is_namespace_image_variant() {
        let k = key("photos/cat.jpg", "grayscale");
        let parts: Vec<&str> = k.split(':').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0], "opossum");
        assert_eq!(parts[1], format!("{{{}}}", image_hash("photos/cat.jpg")));
        assert_eq!(parts[1].len(), 18);
        assert!(k.starts_with(&image_prefix("opossum", "photos/cat.jpg")));
        assert_eq!(parts[2].len(), 64);
        let other_variant = key("photos/cat.jpg", "blur:3");
        assert_eq!(other_variant.split(':').nth(1), Some(parts[1]));
        assert_ne!(other_variant.split(':').nth(2), Some(parts[2]));
    }

    #[test]
    fn components_cannot_run_into_each_other() {
        // With plain concatenation these two would hash the same bytes.
        assert_ne!(key("a:grayscale", "blur:1"), key("a", "grayscale,blur:1"));
        let c = Chain::parse("grayscale").unwrap();
        let v1 = derive_key(
            "n",
            "1",
            "a",
            &c,
            &Options::new(),
            &EncodingDefaults::default(),
        );
        let v2 = derive_key(
            "n",
            "2",
            "a",
            &c,
            &Options::new(),
            &EncodingDefaults::default(),
        );
        assert_ne!(v1, v2, "a version bump must change every key");
    }

    #[test]
    fn option_order_does_not_matter() {
        let c = Chain::parse("grayscale").unwrap();
        let mut a = Options::new();
        a.insert("dpr", "2").unwrap();
        a.insert("Accept", "image/webp").unwrap();
        let mut b = Options::new();
        b.insert("accept", " image/webp ").unwrap();
        b.insert("dpr", "2").unwrap();
        assert_eq!(
            derive_key("n", "1", "x", &c, &a, &EncodingDefaults::default()),
            derive_key("n", "1", "x", &c, &b, &EncodingDefaults::default())
        );
        assert_ne!(
            derive_key("n", "1", "x", &c, &a, &EncodingDefaults::default()),
            derive_key(
                "n",
                "1",
                "x",
                &c,
                &Options::new(),
                &EncodingDefaults::default()
            )
        );
        assert!(Options::new().insert("bad key", "1").is_err());
    }

    #[test]
    fn the_known_key_is_stable() {
        // Pinned so that an accidental change of the derivation (which would orphan every cached
        // entry in production) fails loudly; a deliberate one bumps PROCESSING_VERSION instead.
        assert_eq!(
            key("photos/kodim23.png", "resize:800:600,format:webp"),
            key(
                "photos/kodim23.png",
                r#"[{"op":"resize","width":800,"height":600,"mode":"fit"},{"op":"format","format":"webp","quality":80}]"#
            )
        );
        assert_eq!(
            key("photos/kodim23.png", "thumbnail:200"),
            "opossum:{8a1116f3726f2abc}:c3f8ba38c1890fa0602491e769a6e0bfad4c481abab375077ba2e4466119c8d8"
        );
    }
}
