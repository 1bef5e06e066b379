//! Smart crop: the window of an image most worth keeping, found as libvips's `attention`
//! strategy finds it (`libvips/conversion/smartcrop.c`, itself from sharp and smartcrop.js).
//!
//! The image is reduced to 32 x 32 (the precision the window is placed with), and each cell is
//! scored by three features: edges (a Laplacian on the luminance, times 5), skin tones (closeness
//! of the normalised XYZ colour to smartcrop.js's skin vector, 0-100) and saturation (Lab `a*`),
//! the last two only where the cell is not dark (Y > 5). The sum is blurred with a Gaussian as
//! wide as a tenth of the window's diagonal, and the window is centred on the maximum, clamped
//! to the image. Following libvips step for step (same colour spaces, same constants, the same
//! truncation back to image coordinates) is what makes our windows agree with its (the
//! benchmark reports the overlap).

use image::DynamicImage;

use crate::ImageError;

/// The grid the image is scored on.
const GRID: usize = 32;
/// smartcrop.js's skin colour, as a unit vector in XYZ.
const SKIN: [f32; 3] = [0.78, 0.57, 0.44];
/// Cells darker than this luminance (0-100) score no skin or saturation.
const DARK: f32 = 5.0;

/// The top-left corner of the most interesting `window_width` x `window_height` window.
pub(crate) fn attention(
    image: &DynamicImage,
    window_width: f64,
    window_height: f64,
) -> Result<(f64, f64), ImageError> {
    let (width, height) = (f64::from(image.width()), f64::from(image.height()));
    let grid = reduce(image)?;
    let (hscale, vscale) = (GRID as f64 / width, GRID as f64 / height);
    let sigma = ((window_width * hscale).powi(2) + (window_height * vscale).powi(2)).sqrt();
    let sigma = (sigma / 10.0).max(1.0);
    let score = blur(&scores(&grid), sigma as f32);
    let (mut best, mut at) = (f32::NEG_INFINITY, (0, 0));
    for y in 0..GRID {
        for x in 0..GRID {
            if score[y * GRID + x] > best {
                (best, at) = (score[y * GRID + x], (x, y));
            }
        }
    }
    // As libvips: the cell's index back in image pixels, truncated, then the window centred
    // there and kept inside the image.
    let attention_x = (at.0 as f64 / hscale).trunc();
    let attention_y = (at.1 as f64 / vscale).trunc();
    Ok((
        (attention_x - (window_width / 2.0).trunc()).clamp(0.0, (width - window_width).max(0.0)),
        (attention_y - (window_height / 2.0).trunc()).clamp(0.0, (height - window_height).max(0.0)),
    ))
}

/// The image as 32 x 32 RGB, each cell the exact mean of its pixels (libvips's shrink). Rows
/// are summed first, a band of them at a time, into one row of wide accumulators: a loop the
/// compiler vectorises, so a 12 MP photo reduces in a few milliseconds.
fn reduce(image: &DynamicImage) -> Result<image::RgbImage, ImageError> {
    let eight_bit;
    let image = match image {
        DynamicImage::ImageLuma8(_)
        | DynamicImage::ImageLumaA8(_)
        | DynamicImage::ImageRgb8(_)
        | DynamicImage::ImageRgba8(_) => image,
        other => {
            eight_bit = DynamicImage::ImageRgba8(other.to_rgba8());
            &eight_bit
        }
    };
    let channels = usize::from(image.color().channel_count());
    let (width, height) = (image.width() as usize, image.height() as usize);
    let bytes = image.as_bytes();
    if width == 0 || height == 0 || bytes.len() != width * height * channels {
        return Err(ImageError::Internal {
            message: "smart crop of an empty image".into(),
        });
    }
    // Cell `i` of `n` over `extent` pixels: at least one pixel, even in a tiny image.
    let span = |i: usize, extent: usize| {
        let start = (i * extent / GRID).min(extent - 1);
        (start, ((i + 1) * extent / GRID).max(start + 1))
    };
    let mut grid = image::RgbImage::new(GRID as u32, GRID as u32);
    let mut sums = vec![0u32; width * channels];
    for cy in 0..GRID {
        let (y0, y1) = span(cy, height);
        sums.iter_mut().for_each(|s| *s = 0);
        for row in
            bytes[y0 * width * channels..y1 * width * channels].chunks_exact(width * channels)
        {
            for (sum, &byte) in sums.iter_mut().zip(row) {
                *sum += u32::from(byte);
            }
        }
        for cx in 0..GRID {
            let (x0, x1) = span(cx, width);
            let count = ((y1 - y0) * (x1 - x0)) as u32;
            let mut cell = [0u32; 4];
            for pixel in sums[x0 * channels..x1 * channels].chunks_exact(channels) {
                for (c, &v) in cell.iter_mut().zip(pixel) {
                    *c += v;
                }
            }
            let mean = cell.map(|c| ((c + count / 2) / count) as u8);
            // Grey (and grey with alpha) is the same value on every channel; alpha is dropped.
            let rgb = if channels < 3 {
                [mean[0]; 3]
            } else {
                [mean[0], mean[1], mean[2]]
            };
            grid.put_pixel(cx as u32, cy as u32, image::Rgb(rgb));
        }
    }
    Ok(grid)
}

/// Each cell's score: edges + skin + saturation.
fn scores(grid: &image::RgbImage) -> Vec<f32> {
    let xyz: Vec<[f32; 3]> = grid.pixels().map(|p| srgb_to_xyz(p.0)).collect();
    let luminance = |x: isize, y: isize| {
        let x = x.clamp(0, GRID as isize - 1) as usize;
        let y = y.clamp(0, GRID as isize - 1) as usize;
        xyz[y * GRID + x][1]
    };
    let mut out = vec![0.0; GRID * GRID];
    for y in 0..GRID {
        for x in 0..GRID {
            let (xi, yi) = (x as isize, y as isize);
            let laplacian = 4.0 * luminance(xi, yi)
                - luminance(xi - 1, yi)
                - luminance(xi + 1, yi)
                - luminance(xi, yi - 1)
                - luminance(xi, yi + 1);
            let edge = (5.0 * laplacian).abs();
            let [cx, cy, cz] = xyz[y * GRID + x];
            let (skin, saturation) = if cy > DARK {
                let magnitude = (cx * cx + cy * cy + cz * cz).sqrt();
                let distance = [cx, cy, cz]
                    .iter()
                    .zip(SKIN)
                    .map(|(c, s)| (c / magnitude - s).powi(2))
                    .sum::<f32>()
                    .sqrt();
                (100.0 - 100.0 * distance, lab_a([cx, cy, cz]))
            } else {
                (0.0, 0.0)
            };
            out[y * GRID + x] = edge + skin + saturation;
        }
    }
    out
}

/// sRGB (8-bit) to CIE XYZ (D65), Y from 0 to 100, as libvips's XYZ.
fn srgb_to_xyz(rgb: [u8; 3]) -> [f32; 3] {
    let linear = rgb.map(|c| {
        let c = f32::from(c) / 255.0;
        if c <= 0.04045 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        }
    });
    let [r, g, b] = linear;
    [
        100.0 * (0.4124 * r + 0.3576 * g + 0.1805 * b),
        100.0 * (0.2126 * r + 0.7152 * g + 0.0722 * b),
        100.0 * (0.0193 * r + 0.1192 * g + 0.9505 * b),
    ]
}

/// CIE Lab's `a*` (green to red) of an XYZ colour, D65 white.
fn lab_a([x, y, _]: [f32; 3]) -> f32 {
    let f = |t: f32| {
        if t > 216.0 / 24389.0 {
            t.cbrt()
        } else {
            (24389.0 / 27.0 * t + 16.0) / 116.0
        }
    };
    500.0 * (f(x / 95.047) - f(y / 100.0))
}

/// A separable Gaussian blur of the grid, edges extended, the mask cut where it falls below
/// 0.2 of its peak (libvips's `gaussblur` default `min_ampl`).
fn blur(values: &[f32], sigma: f32) -> Vec<f32> {
    let mut mask = vec![1.0f32];
    for x in 1.. {
        let v = (-(x as f32).powi(2) / (2.0 * sigma * sigma)).exp();
        if v < 0.2 || x > GRID {
            break;
        }
        mask.push(v);
    }
    let total: f32 = mask[0] + 2.0 * mask[1..].iter().sum::<f32>();
    let radius = mask.len() as isize - 1;
    let at = |i: isize| mask[i.unsigned_abs()] / total;
    let pass = |input: &[f32], horizontal: bool| {
        let mut out = vec![0.0; GRID * GRID];
        for y in 0..GRID {
            for x in 0..GRID {
                out[y * GRID + x] = (-radius..=radius)
                    .map(|d| {
                        let (sx, sy) = if horizontal {
                            ((x as isize + d).clamp(0, GRID as isize - 1) as usize, y)
                        } else {
                            (x, (y as isize + d).clamp(0, GRID as isize - 1) as usize)
                        };
                        input[sy * GRID + sx] * at(d)
                    })
                    .sum();
            }
        }
        out
    };
    pass(&pass(values, true), false)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A flat grey image with a small detailed patch (a fine checkerboard of saturated
    /// colours) at a given place.
    fn subject(width: u32, height: u32, at: (u32, u32), size: u32) -> DynamicImage {
        DynamicImage::ImageRgb8(image::RgbImage::from_fn(width, height, |x, y| {
            let inside = (at.0..at.0 + size).contains(&x) && (at.1..at.1 + size).contains(&y);
            if inside {
                if (x / 2 + y / 2) % 2 == 0 {
                    image::Rgb([230, 40, 30])
                } else {
                    image::Rgb([20, 200, 240])
                }
            } else {
                image::Rgb([110, 110, 110])
            }
        }))
    }

    #[test]
    fn the_window_holds_a_detailed_subject_wherever_it_is() {
        // A linear congruential sequence: seeded, so the positions are the same every run.
        let mut seed = 0x2545_f491_u64;
        let mut next = |bound: u32| {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            ((seed >> 33) % u64::from(bound)) as u32
        };
        for case in 0..60 {
            let (width, height) = (400 + next(800), 300 + next(600));
            let size = 24 + next(40);
            let at = (next(width - size), next(height - size));
            let image = subject(width, height, at, size);
            let window = f64::from(width.min(height) / 2);
            let (left, top) = attention(&image, window, window).unwrap();
            let (cx, cy) = (f64::from(at.0 + size / 2), f64::from(at.1 + size / 2));
            assert!(
                (left..left + window).contains(&cx) && (top..top + window).contains(&cy),
                "case {case}: {width}x{height}, subject {size} px at {at:?}: window \
                 {window} at ({left}, {top}) misses its centre"
            );
        }
    }

    #[test]
    fn a_flat_image_keeps_the_window_inside() {
        let flat = DynamicImage::ImageRgb8(image::RgbImage::from_pixel(
            300,
            200,
            image::Rgb([90, 90, 90]),
        ));
        let (left, top) = attention(&flat, 100.0, 200.0).unwrap();
        assert!((0.0..=200.0).contains(&left) && top == 0.0, "{left} {top}");
    }
}
