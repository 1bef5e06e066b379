//! The image engine: safe decoding, the operations of a [`Chain`], encoders, SVG rendering and
//! tracing, and image analysis. No caching, no queues, no network: bytes in, bytes out.
//!
//! Main types and functions:
//! - [`Limits`]: what input is accepted (pixels, bytes, SVG complexity, render time). Every limit is
//!   checked from the header, before a large allocation, because a hostile 1 KB file can claim to
//!   be 100,000 x 100,000 pixels.
//! - [`decode`]: bytes to an 8-bit sRGB [`image::DynamicImage`], upright (EXIF orientation applied),
//!   with JPEG shrink-on-load (DCT-domain scaling) when a [`DecodeHint`] says how small the result
//!   will be; [`decode_for`] as a chain needs it (its hint, and `keep:icc`).
//! - [`apply`]: one [`opossum_ops::Operation`] on an image; [`apply_with`] given the decoded
//!   watermarks ([`Overlays`]) a chain names, which the caller loads (the engine does no I/O).
//! - [`encode`]: an image to JPEG, PNG, WebP, AVIF or traced SVG.
//! - [`analyze()`]: the analysis JSON (dimensions, histogram, colours, BlurHash, perceptual hash).
//! - [`process`]: all of the above for one request.
//!
//! ```no_run
//! use opossum_image::{process, Limits};
//! use opossum_ops::Chain;
//! let input = std::fs::read("photo.jpg").unwrap();
//! let chain = Chain::parse("thumbnail:200,format:webp").unwrap();
//! let output = process(&input, &chain, &Limits::default()).unwrap();
//! assert_eq!(output.media_type, "image/webp");
//! ```
//!
//! Every error is an [`ImageError`]; all of them describe bad input except
//! [`ImageError::Internal`] (a bug) and [`ImageError::SvgTimeout`] (a deadline, which the
//! machine's load decides as much as the document). The pipeline classifies them
//! (`opossum_pipeline::ErrorKind::of_image`).
#![cfg_attr(not(test), warn(unused_crate_dependencies))]

mod analyze;
mod animation;
mod budget;
mod canvas;
mod decode;
mod embed;
mod encode;
mod error;
mod filters;
mod fonts;
mod heif;
mod jxl;
mod metadata;
mod ops;
mod overlay;
mod smart;
mod svg;

use std::time::Duration;

pub use analyze::{Analysis, analyze};
pub use animation::{Picture, Timing};
pub use decode::{DecodeHint, Decoded, SourceFormat, decode, decode_for, decode_hint};
pub use encode::{default_encoding, encode};
pub use error::ImageError;
pub use fonts::{DEFAULT_FONTS_DIR, FontSet};
pub use image::DynamicImage;
pub use metadata::{ExifSummary, SourceMetadata};
pub use ops::{apply, apply_with};
pub use overlay::Overlays;

// Named only to pin its 1.14 line, whose bindings accept Debian's libheif 1.15 (see Cargo.toml).
use libheif_sys as _;

/// The top-left corner of the `width` x `height` window that `smart` gravity keeps (libvips's
/// attention strategy), for tools that compare it with other implementations.
pub fn smart_window(
    image: &DynamicImage,
    width: u32,
    height: u32,
) -> Result<(u32, u32), ImageError> {
    let (left, top) = smart::attention(image, f64::from(width), f64::from(height))?;
    Ok((left as u32, top as u32))
}

use opossum_ops::{Chain, Encoding, OutputFormat};

/// What input the engine accepts. The defaults are the design's: 50 megapixels, 50 MB.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Largest source, in pixels (width x height, every animation frame counted).
    pub max_pixels: u64,
    /// Largest source file, in bytes.
    pub max_bytes: u64,
    /// Most frames of an animated source.
    pub max_frames: u32,
    /// Largest output, in pixels; also bounds every intermediate image.
    pub max_output_pixels: u64,
    /// Largest image that `format:svg` will trace; tracing is slow and its output grows with it.
    pub max_trace_pixels: u64,
    /// Deepest SVG element nesting, counted after `<use>` references are expanded.
    pub max_svg_depth: usize,
    /// Most SVG elements, counted after `<use>` references are expanded.
    pub max_svg_nodes: u64,
    /// Longest an SVG may take to render.
    pub svg_render_timeout: Duration,
    /// The fonts SVG text is drawn with (not a bound, but what every render is given: the
    /// engine never reads the machine's own fonts).
    pub fonts: FontSet,
    /// The encoder settings a request leaves out (not a bound either: the configuration's
    /// `encoding:` section, which every encode is given).
    pub encoding: opossum_ops::EncodingDefaults,
}

impl Default for Limits {
    fn default() -> Limits {
        use opossum_ops::limits;
        Limits {
            max_pixels: limits::MAX_PIXELS,
            max_bytes: limits::MAX_SOURCE_BYTES,
            max_frames: limits::MAX_FRAMES,
            max_output_pixels: limits::MAX_OUTPUT_PIXELS,
            max_trace_pixels: limits::MAX_TRACE_PIXELS,
            max_svg_depth: limits::MAX_SVG_DEPTH,
            max_svg_nodes: limits::MAX_SVG_NODES,
            svg_render_timeout: limits::SVG_RENDER_TIMEOUT,
            fonts: FontSet::default(),
            encoding: opossum_ops::EncodingDefaults::default(),
        }
    }
}

/// The result of [`process`].
#[derive(Debug, Clone)]
pub struct Output {
    /// the encoded image, or the analysis JSON
    pub bytes: Vec<u8>,
    /// MIME type of `bytes`
    pub media_type: &'static str,
    /// short format name: `jpeg`, `png`, `webp`, `avif`, `svg` or `json`
    pub format: &'static str,
    /// width of the produced image (of the analysed image for `analyze`)
    pub width: u32,
    /// height of the produced image (of the analysed image for `analyze`)
    pub height: u32,
    /// frames written: more than 1 for an animation, 1 otherwise (and for `analyze`)
    pub frames: u32,
    /// the quality encoded at (JPEG, lossy WebP, AVIF): the one `max-bytes` chose, if the
    /// chain has it; `None` for formats without one
    pub quality: Option<u8>,
}

/// What the final step needs to know about the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceInfo {
    /// the source's format (decides the default output format)
    pub format: SourceFormat,
    /// full source width, upright
    pub width: u32,
    /// full source height, upright
    pub height: u32,
    /// its raw ICC profile and EXIF, which `analyze` summarises and `keep:` carries over
    pub metadata: SourceMetadata,
}

impl Decoded {
    /// The pixels to work on, and what the final step needs to know about the source.
    pub fn into_parts(mut self) -> (Picture, SourceInfo) {
        let source = SourceInfo {
            format: self.format,
            width: self.source_width,
            height: self.source_height,
            metadata: std::mem::take(&mut self.metadata),
        };
        (self.into_picture(), source)
    }
}

/// Runs a whole request: decode (shrinking on load where the chain allows), every pixel
/// operation, then [`finish`]. A chain with a watermark needs [`process_with`].
pub fn process(input: &[u8], chain: &Chain, limits: &Limits) -> Result<Output, ImageError> {
    process_with(input, chain, limits, &Overlays::none())
}

/// [`process`] with the watermark images the chain names.
pub fn process_with(
    input: &[u8],
    chain: &Chain,
    limits: &Limits,
    overlays: &Overlays,
) -> Result<Output, ImageError> {
    let (mut picture, source) = decode_for(input, chain, limits)?.into_parts();
    for op in chain.pixel_ops() {
        picture = picture.apply(op, limits, overlays)?;
    }
    finish(&picture, chain, source, limits)
}

/// The last step of a request: encode the processed image as the chain says (or in the
/// source's default format: an animation keeps its own), or analyse it.
pub fn finish(
    picture: &Picture,
    chain: &Chain,
    source: SourceInfo,
    limits: &Limits,
) -> Result<Output, ImageError> {
    let image = picture.first();
    let frames = picture.frames().len() as u32;
    if chain.is_analysis() {
        // A bare analysis ran on a reduced decode; it describes the source.
        let (width, height) = if chain.pixel_ops().is_empty() {
            (source.width, source.height)
        } else {
            (image.width(), image.height())
        };
        let mut analysis = analyze(image, source.format);
        (analysis.width, analysis.height) = (width, height);
        analysis.icc_profile = source.metadata.icc_description();
        analysis.exif = source.metadata.exif_summary();
        if let Some(timing) = picture.timing() {
            analysis.frames = frames;
            analysis.loop_count = Some(timing.loops);
            analysis.duration_ms = Some(timing.duration_ms());
        }
        let bytes = serde_json::to_vec(&analysis).map_err(|e| ImageError::Internal {
            message: format!("serialising analysis: {e}"),
        })?;
        return Ok(Output {
            bytes,
            media_type: "application/json",
            format: "json",
            width,
            height,
            frames: 1,
            quality: None,
        });
    }
    let encoding = chain
        .encoding()
        .unwrap_or_else(|| {
            match animation::default_format(source.format).filter(|_| picture.is_animated()) {
                Some(format) => opossum_ops::Encoding::default_for(format),
                None => default_encoding(source.format),
            }
        })
        .resolved(&limits.encoding);
    let plan = embed::Plan::new(chain.keep(), &source.metadata, encoding.format, image);
    let converted;
    let picture = match plan.convert_from {
        Some(icc) => {
            converted = picture.converted_to_srgb(icc);
            &converted
        }
        None => picture,
    };
    let write = |picture: &Picture, encoding: Encoding| -> Result<(Vec<u8>, u32), ImageError> {
        let animated = picture
            .timing()
            .and_then(|timing| animation::encode(picture.frames(), timing, encoding));
        match animated {
            Some(bytes) => Ok((
                plan.embed.write_into(bytes?, encoding.format)?,
                picture.frames().len() as u32,
            )),
            // A format without animation takes the first frame, as imgproxy does.
            None => Ok((
                encode::encode_with(picture.first(), encoding, limits, &plan.embed)?,
                1,
            )),
        }
    };
    // Resolved, the encoding has a quality exactly where the format has one (not lossless WebP).
    let (bytes, frames, quality, width, height) = match chain.max_bytes() {
        None => {
            let (bytes, frames) = write(picture, encoding)?;
            let (width, height) = (image.width(), image.height());
            (bytes, frames, encoding.quality, width, height)
        }
        Some(_) if encoding.format == OutputFormat::Svg => {
            return Err(ImageError::Unsupported {
                format: "svg",
                message: "max-bytes applies to raster formats, not traced svg".into(),
            });
        }
        Some(budget) => {
            let fitted = budget::fit(picture, encoding, budget, limits, write)?;
            (
                fitted.bytes,
                fitted.frames,
                fitted.quality,
                fitted.width,
                fitted.height,
            )
        }
    };
    Ok(Output {
        bytes,
        media_type: encoding.format.mime(),
        format: encoding.format.name(),
        width,
        height,
        frames,
        quality,
    })
}
