//! Errors of the image engine.

/// Why an image could not be processed. Messages are lowercase and name the offending value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    /// The file is larger than [`crate::Limits::max_bytes`].
    #[error("input is {size} bytes, more than the limit of {limit} bytes")]
    TooManyBytes {
        /// bytes in the input
        size: u64,
        /// the limit
        limit: u64,
    },
    /// The image (by its header) has more pixels than allowed.
    #[error("image is {width}x{height} ({pixels} pixels), more than the limit of {limit} pixels")]
    TooManyPixels {
        /// width from the header
        width: u64,
        /// height from the header
        height: u64,
        /// width x height (x frames)
        pixels: u64,
        /// the limit
        limit: u64,
    },
    /// An animation has more frames than [`crate::Limits::max_frames`].
    #[error("animation has more than {limit} frames, the limit")]
    TooManyFrames {
        /// the limit
        limit: u32,
    },
    /// An animation's frames together have more pixels than allowed.
    #[error(
        "animation of {frames} frames of {width}x{height} is {pixels} pixels, more than the limit of {limit} pixels"
    )]
    AnimationTooLarge {
        /// frames counted so far
        frames: u64,
        /// canvas width
        width: u64,
        /// canvas height
        height: u64,
        /// frames x width x height
        pixels: u64,
        /// the limit
        limit: u64,
    },
    /// The bytes are not an image format the engine reads.
    #[error("unrecognised image format (first bytes {magic})")]
    UnknownFormat {
        /// the first bytes, hex
        magic: String,
    },
    /// The bytes claim a format but cannot be decoded.
    #[error("corrupt {format} image: {message}")]
    Corrupt {
        /// the format the bytes claim
        format: &'static str,
        /// what the decoder said
        message: String,
    },
    /// The image is valid but uses a feature the engine does not support.
    #[error("unsupported {format} image: {message}")]
    Unsupported {
        /// the format
        format: &'static str,
        /// what is unsupported
        message: String,
    },
    /// An SVG exceeds a structural limit (nesting, element count, canvas).
    #[error("svg rejected: {0}")]
    SvgLimit(String),
    /// An SVG took longer than [`crate::Limits::svg_render_timeout`] to render.
    #[error("svg rendering took longer than {seconds} s")]
    SvgTimeout {
        /// the limit, seconds
        seconds: u64,
    },
    /// An operation would produce an image larger than [`crate::Limits::max_output_pixels`].
    #[error("`{op}` would produce {width}x{height}, more than the output limit of {limit} pixels")]
    OutputTooLarge {
        /// the operation
        op: String,
        /// requested width
        width: u64,
        /// requested height
        height: u64,
        /// the limit
        limit: u64,
    },
    /// An operation cannot apply to this image (a crop window outside it, say).
    #[error("`{op}` cannot apply to a {width}x{height} image: {reason}")]
    BadOperation {
        /// the operation
        op: String,
        /// image width
        width: u32,
        /// image height
        height: u32,
        /// why not
        reason: String,
    },
    /// `max-bytes:N` cannot be met: even the lowest quality at the smallest size tried is over.
    #[error(
        "output cannot fit in {budget} bytes: the smallest tried ({width}x{height}) is {smallest} bytes"
    )]
    OverBudget {
        /// the budget
        budget: u64,
        /// the smallest output produced
        smallest: u64,
        /// its width
        width: u32,
        /// its height
        height: u32,
    },
    /// An encoder failed on an image it should accept: a bug, not bad input.
    #[error("internal error: {message}")]
    Internal {
        /// what failed
        message: String,
    },
}
