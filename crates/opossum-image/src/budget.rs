//! `max-bytes:N`: the output brought within a byte budget by the smallest change that does it.
//!
//! Quality first, for the encoders that have one (JPEG, lossy WebP, AVIF): the requested
//! quality, then [`QUALITY_FLOOR`], then a bisection between the two, at most
//! [`MAX_QUALITY_ENCODES`] encodes in all, keeping the highest quality that fits. When even the
//! floor is too large, or the format has no quality (PNG, GIF, lossless WebP), the image (every
//! frame of an animation) is scaled down by the square root of budget over size, with a margin,
//! and encoded again at the floor; at most [`MAX_SCALE_STEPS`] times, the last at
//! [`MIN_EDGE`] pixels on the shorter edge. Every loop is bounded, so a budget nothing can meet ends in
//! [`ImageError::OverBudget`] after at most 14 encodes.
//!
//! imgproxy's `max_bytes` lowers quality only; sharp and libvips leave this to the caller.

use opossum_ops::{Encoding, Operation, ResizeMode};

use crate::animation::Picture;
use crate::{ImageError, Limits, Overlays};

/// The lowest quality the bisection tries: below it JPEG and WebP fall apart into blocks, and
/// a smaller image at this quality looks better than a larger one below it.
pub(crate) const QUALITY_FLOOR: u8 = 10;
/// Most encodes spent on quality.
pub(crate) const MAX_QUALITY_ENCODES: usize = 6;
/// Most size reductions after quality is exhausted.
pub(crate) const MAX_SCALE_STEPS: usize = 8;
/// The shortest edge a reduction may leave.
pub(crate) const MIN_EDGE: u32 = 16;

/// What fitted: the bytes and frames written, at which quality and size.
pub(crate) struct Fitted {
    pub(crate) bytes: Vec<u8>,
    pub(crate) frames: u32,
    pub(crate) quality: Option<u8>,
    pub(crate) width: u32,
    pub(crate) height: u32,
}

/// Encodes `picture` as `encoding` (resolved) says, within `budget` bytes. `encode` writes a
/// picture at an encoding and returns its bytes and the frames written.
pub(crate) fn fit(
    picture: &Picture,
    encoding: Encoding,
    budget: u64,
    limits: &Limits,
    encode: impl Fn(&Picture, Encoding) -> Result<(Vec<u8>, u32), ImageError>,
) -> Result<Fitted, ImageError> {
    let fits = |bytes: &[u8]| bytes.len() as u64 <= budget;
    let fitted = |(bytes, frames): (Vec<u8>, u32), quality, picture: &Picture| Fitted {
        bytes,
        frames,
        quality,
        width: picture.width(),
        height: picture.height(),
    };
    let at = |quality: Option<u8>| Encoding {
        quality,
        ..encoding
    };
    let first = encode(picture, encoding)?;
    if fits(&first.0) {
        return Ok(fitted(first, encoding.quality, picture));
    }
    let mut smallest = first.0.len() as u64;
    // Quality: the floor first, so an unreachable budget costs one encode, not six.
    let mut floor = encoding.quality;
    if let Some(requested) = encoding.quality.filter(|q| *q > QUALITY_FLOOR) {
        let at_floor = encode(picture, at(Some(QUALITY_FLOOR)))?;
        smallest = smallest.min(at_floor.0.len() as u64);
        floor = Some(QUALITY_FLOOR);
        if fits(&at_floor.0) {
            // Bisect for the highest quality that fits, in the encodes that remain.
            let (mut low, mut high) = (QUALITY_FLOOR, requested - 1);
            let mut best = (at_floor, QUALITY_FLOOR);
            for _ in 2..MAX_QUALITY_ENCODES {
                if low >= high {
                    break;
                }
                let middle = low + (high - low).div_ceil(2);
                let encoded = encode(picture, at(Some(middle)))?;
                if fits(&encoded.0) {
                    best = (encoded, middle);
                    low = middle;
                } else {
                    high = middle - 1;
                }
            }
            let (encoded, quality) = best;
            return Ok(fitted(encoded, Some(quality), picture));
        }
    }
    // Size: scale down at the floor until it fits.
    let mut current = picture.clone();
    let mut size = smallest;
    for _ in 0..MAX_SCALE_STEPS {
        let short = current.width().min(current.height());
        if short <= MIN_EDGE {
            break;
        }
        // The step the sizes suggest, at least a tenth off, and never below the shortest edge.
        let scale = ((budget as f64 / size as f64).sqrt() * 0.95)
            .min(0.9)
            .max(f64::from(MIN_EDGE) / f64::from(short));
        let width = ((f64::from(current.width()) * scale).round() as u32).max(1);
        let height = ((f64::from(current.height()) * scale).round() as u32).max(1);
        let resize = Operation::Resize {
            width,
            height,
            mode: ResizeMode::Force,
            gravity: opossum_ops::Gravity::Centre,
            enlarge: false,
        };
        current = current.apply(&resize, limits, &Overlays::none())?;
        let encoded = encode(&current, at(floor))?;
        size = encoded.0.len() as u64;
        smallest = smallest.min(size);
        if fits(&encoded.0) {
            return Ok(fitted(encoded, floor, &current));
        }
    }
    Err(ImageError::OverBudget {
        budget,
        smallest,
        width: current.width(),
        height: current.height(),
    })
}
