//! The operation model of Opossum: what a request asks for, in a form that can be compared,
//! hashed and cached. Pure: no I/O, no clocks, no environment, so everything here is tested
//! with plain inputs and outputs.
//!
//! - [`Chain`] is a validated, normalised list of [`Operation`]s. It is parsed from the string
//!   form (`resize:800:600:fit,grayscale,format:webp`) by [`Chain::parse`] or from JSON
//!   (`[{"op":"resize","width":800,"height":600}]`) by [`Chain::from_json`]; both go through the
//!   same argument table, so both spellings of one request normalise to the same chain.
//! - [`Chain`]'s `Display` is its canonical string; `Chain::parse(&chain.to_string())` gives the
//!   chain back unchanged (normalisation is idempotent).
//! - [`CacheKey`] is derived by [`derive_key`] from the processing version, the image id, the
//!   canonical chain (its encoding resolved with the [`EncodingDefaults`]) and the sorted [`Options`]; its layout `{namespace}:{image-hash}:{variant-hash}`
//!   lets every cache tier find all entries of one image without a scan.
//! - [`Presets`] are named, versioned chains from configuration; a chain step `preset:NAME`
//!   expands to the preset's operations before normalisation ([`Chain::parse_with`]).
//! - [`Category`] classifies a request for TTLs (result, thumbnail, intermediate, analysis, ...),
//!   and [`adaptive_ttl`] adjusts the category's default for pressure, popularity and cost.
//!
//! ```
//! use opossum_ops::{Chain, EncodingDefaults, Options, derive_key};
//! let a = Chain::parse("resize:800:600,format:jpg").unwrap();
//! let b = Chain::from_json(r#"[{"op":"resize","width":800,"height":600,"mode":"fit"},
//!                               {"op":"format","format":"jpeg","quality":80}]"#).unwrap();
//! assert_eq!(a.to_string(), "resize:800:600:fit,format:jpeg");
//! assert_eq!(b.to_string(), "resize:800:600:fit,format:jpeg:80");
//! // The key hashes the chain with its encoding resolved: the default spelled out or not.
//! let defaults = EncodingDefaults::default();
//! let key = |chain| derive_key("opossum", "1", "photos/cat.jpg", chain, &Options::default(), &defaults);
//! assert_eq!(key(&a), key(&b));
//! assert!(key(&a).to_string().starts_with("opossum:"));
//! ```
#![cfg_attr(not(test), warn(unused_crate_dependencies))]

mod args;
mod category;
mod chain;
mod encoding;
mod error;
mod key;
pub mod limits;
mod operation;
mod preset;
mod ttl;

pub use category::Category;
pub use chain::{Chain, MAX_CHAIN_LENGTH};
pub use encoding::{
    Chroma, EncodingDefaults, MAX_AVIF_SPEED, MAX_PALETTE_COLOURS, MAX_PNG_COMPRESSION,
    MAX_WEBP_EFFORT,
};
pub use error::OpsError;
pub use key::{CacheKey, Options, derive_key, derive_key_with_chain, image_hash, image_prefix};
pub use operation::{
    Colour, Encoding, Extent, FlipAxis, Gravity, Keep, MAX_DIMENSION, Milli, Operation,
    OutputFormat, Placement, ResizeMode, Rotation, Watermark,
};
pub use preset::{NoPresets, Preset, PresetLookup, PresetRef, Presets};
pub use ttl::{TtlInputs, adaptive_ttl};

/// Version of the processing algorithms, part of every cache key. Bump it when an operation's
/// output changes, and every cached entry made by the old code becomes unreachable.
pub const PROCESSING_VERSION: &str = "4";
