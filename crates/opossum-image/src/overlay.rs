//! Watermarks: another image composited over this one, scaled to a fraction of its width, at
//! an opacity, placed by a gravity or tiled.
//!
//! The engine does no I/O: the caller (the pipeline) loads each watermark's bytes from the
//! originals store and hands them over as [`Overlays`], decoded here under the same limits as
//! any source. Only the overlapping region is touched, so a small watermark on a large photo
//! costs its own size, not the photo's.

use std::collections::HashMap;
use std::sync::Arc;

use image::{DynamicImage, RgbaImage};
use opossum_ops::{Gravity, Operation, Placement, Watermark};

use crate::{ImageError, Limits};

/// The decoded watermark images a chain needs, by image id.
#[derive(Debug, Clone, Default)]
pub struct Overlays {
    /// RGBA, so scaling needs no conversion and keeps the watermark's alpha
    images: HashMap<Arc<str>, Arc<DynamicImage>>,
}

impl Overlays {
    /// No overlays: enough for every chain without a watermark.
    pub fn none() -> Overlays {
        Overlays::default()
    }

    /// Decodes a watermark's bytes (any source format, within `limits`) under its image id.
    pub fn decode(
        &mut self,
        id: Arc<str>,
        bytes: &[u8],
        limits: &Limits,
    ) -> Result<(), ImageError> {
        let decoded = crate::decode(bytes, limits, None)?;
        let rgba = DynamicImage::ImageRgba8(decoded.image.into_rgba8());
        self.images.insert(id, Arc::new(rgba));
        Ok(())
    }

    fn get(&self, id: &str) -> Option<&DynamicImage> {
        self.images.get(id).map(|image| &**image)
    }
}

/// `watermark:IMAGE:POSITION:OPACITY:SCALE` on `image`.
pub(crate) fn watermark(
    image: DynamicImage,
    mark: &Watermark,
    overlays: &Overlays,
    op: &Operation,
    limits: &Limits,
) -> Result<DynamicImage, ImageError> {
    let source = overlays
        .get(&mark.image)
        .ok_or_else(|| ImageError::Internal {
            message: format!("watermark `{}` was not loaded", mark.image),
        })?;
    let width =
        ((f64::from(image.width()) * f64::from(mark.scale.0) / 1000.0).round() as u32).max(1);
    let height =
        ((f64::from(source.height()) * f64::from(width) / f64::from(source.width().max(1))).round()
            as u32)
            .max(1);
    crate::canvas::check_output(op, u64::from(width), u64::from(height), limits)?;
    let scaled = scale(source, width, height)?;
    let opacity = f32::from(mark.opacity.0 as u16) / 1000.0;
    // RGB, or RGBA where the image has alpha: the layouts `blend` writes.
    let mut base = crate::canvas::widen_for(image, opossum_ops::Colour::new([0, 0, 0, 255]));
    let (base_w, base_h) = (base.width(), base.height());
    let places: Vec<(i64, i64)> = match mark.placement {
        Placement::Tile => (0..base_h)
            .step_by(height as usize)
            .flat_map(|y| {
                (0..base_w)
                    .step_by(width as usize)
                    .map(move |x| (i64::from(x), i64::from(y)))
            })
            .collect(),
        Placement::At(gravity) => {
            let (ax, ay) = gravity.anchor().unwrap_or((0.5, 0.5));
            vec![(
                Gravity::offset(f64::from(base_w), f64::from(width), ax).round() as i64,
                Gravity::offset(f64::from(base_h), f64::from(height), ay).round() as i64,
            )]
        }
    };
    match &mut base {
        DynamicImage::ImageRgb8(rgb) => {
            for at in places {
                blend::<3>(rgb, (base_w, base_h), &scaled, at, opacity);
            }
        }
        DynamicImage::ImageRgba8(rgba) => {
            for at in places {
                blend::<4>(rgba, (base_w, base_h), &scaled, at, opacity);
            }
        }
        _ => unreachable!("the base was made RGB or RGBA above"),
    }
    Ok(base)
}

/// The watermark at its placed size (Lanczos3; fast_image_resize premultiplies the alpha, so
/// the edges do not darken).
fn scale(source: &DynamicImage, width: u32, height: u32) -> Result<RgbaImage, ImageError> {
    use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};
    if (width, height) == (source.width(), source.height()) {
        return Ok(source.to_rgba8());
    }
    let mut output = DynamicImage::new_rgba8(width, height);
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3));
    Resizer::new()
        .resize(source, &mut output, &options)
        .map_err(|e| ImageError::Internal {
            message: format!("scaling the watermark to {width}x{height}: {e}"),
        })?;
    Ok(output.into_rgba8())
}

/// Porter-Duff "over" of `mark` (alpha times `opacity`) onto `base` at `at`, clipped.
fn blend<const C: usize>(
    base: &mut [u8],
    (base_w, base_h): (u32, u32),
    mark: &RgbaImage,
    (left, top): (i64, i64),
    opacity: f32,
) {
    let (mark_w, mark_h) = mark.dimensions();
    let x0 = left.max(0);
    let x1 = (left + i64::from(mark_w)).min(i64::from(base_w));
    let y0 = top.max(0);
    let y1 = (top + i64::from(mark_h)).min(i64::from(base_h));
    for y in y0..y1 {
        for x in x0..x1 {
            let m = mark.get_pixel((x - left) as u32, (y - top) as u32).0;
            let a = f32::from(m[3]) / 255.0 * opacity;
            if a <= 0.0 {
                continue;
            }
            let at = (y as usize * base_w as usize + x as usize) * C;
            let pixel = &mut base[at..at + C];
            if C == 4 {
                let under = f32::from(pixel[3]) / 255.0;
                let out = a + under * (1.0 - a);
                for c in 0..3 {
                    let mixed =
                        (f32::from(m[c]) * a + f32::from(pixel[c]) * under * (1.0 - a)) / out;
                    pixel[c] = mixed.round().clamp(0.0, 255.0) as u8;
                }
                pixel[3] = (out * 255.0).round() as u8;
            } else {
                for c in 0..3 {
                    let mixed = f32::from(pixel[c]) + (f32::from(m[c]) - f32::from(pixel[c])) * a;
                    pixel[c] = mixed.round().clamp(0.0, 255.0) as u8;
                }
            }
        }
    }
}
