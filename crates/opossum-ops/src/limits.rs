//! The design's input limits: the one place their defaults are written. The engine's
//! `opossum_image::Limits` and the configuration's `limits:` section both start from these.

use std::time::Duration;

/// Largest source, in pixels (every animation frame counted).
pub const MAX_PIXELS: u64 = 50_000_000;
/// Most frames of an animated source.
pub const MAX_FRAMES: u32 = 500;
/// Largest source file, in bytes.
pub const MAX_SOURCE_BYTES: u64 = 50_000_000;
/// Largest output and intermediate image, in pixels.
pub const MAX_OUTPUT_PIXELS: u64 = 50_000_000;
/// Largest image `format:svg` traces, in pixels.
pub const MAX_TRACE_PIXELS: u64 = 1_000_000;
/// Deepest SVG nesting, after `<use>` expansion.
pub const MAX_SVG_DEPTH: usize = 128;
/// Most SVG elements, after `<use>` expansion.
pub const MAX_SVG_NODES: u64 = 100_000;
/// Longest an SVG may take to render.
pub const SVG_RENDER_TIMEOUT: Duration = Duration::from_secs(10);
