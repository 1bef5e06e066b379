//! Colour and neighbourhood filters: `saturation`, `pixelate`, `tint`, `gamma`, `normalize`,
//! `median` and `modulate` (blur, sharpen, brightness and contrast use the `image` crate's own).
//!
//! The per-pixel ones work on the image's bytes whatever its layout and leave alpha alone;
//! those that need colour (tint, modulate) widen grey images to RGB first. Lookup tables
//! where the map is per channel (gamma, normalize), one 3 x 3 matrix where it mixes channels
//! (modulate).

use image::DynamicImage;
use opossum_ops::{Colour, Milli};

/// The image in one of the four 8-bit layouts decoding gives (anything else widened to RGBA).
fn eight_bit(image: DynamicImage) -> DynamicImage {
    match image {
        DynamicImage::ImageLuma8(_)
        | DynamicImage::ImageLumaA8(_)
        | DynamicImage::ImageRgb8(_)
        | DynamicImage::ImageRgba8(_) => image,
        other => DynamicImage::ImageRgba8(other.to_rgba8()),
    }
}

/// The bytes of an [`eight_bit`] image.
fn bytes_mut(image: &mut DynamicImage) -> &mut [u8] {
    match image {
        DynamicImage::ImageLuma8(i) => i,
        DynamicImage::ImageLumaA8(i) => i,
        DynamicImage::ImageRgb8(i) => i,
        DynamicImage::ImageRgba8(i) => i,
        _ => &mut [],
    }
}

/// Applies `map` to the colour channels of every pixel (alpha, when present, untouched).
fn each_pixel(image: DynamicImage, mut map: impl FnMut(&mut [u8])) -> DynamicImage {
    let mut image = eight_bit(image);
    let channels = usize::from(image.color().channel_count());
    let colour = channels - usize::from(image.color().has_alpha());
    for pixel in bytes_mut(&mut image).chunks_exact_mut(channels) {
        map(&mut pixel[..colour]);
    }
    image
}

/// The same lookup table on every colour channel.
fn with_table(image: DynamicImage, table: &[u8; 256]) -> DynamicImage {
    each_pixel(image, |px| {
        px.iter_mut().for_each(|c| *c = table[usize::from(*c)])
    })
}

/// Grey images as RGB (with their alpha): for the filters that give them colour.
fn in_colour(image: DynamicImage) -> DynamicImage {
    match image {
        DynamicImage::ImageLuma8(_) => DynamicImage::ImageRgb8(image.to_rgb8()),
        DynamicImage::ImageLumaA8(_) => DynamicImage::ImageRgba8(image.to_rgba8()),
        other => other,
    }
}

fn luma(px: &[u8]) -> f32 {
    match px {
        [r, g, b, ..] => 0.2126 * f32::from(*r) + 0.7152 * f32::from(*g) + 0.0722 * f32::from(*b),
        [y, ..] => f32::from(*y),
        [] => 0.0,
    }
}

fn to_byte(v: f32) -> u8 {
    v.round().clamp(0.0, 255.0) as u8
}

/// Scales each pixel's distance from its grey (Rec. 709 luma) by `1 + percent / 100`.
pub(crate) fn saturate(image: DynamicImage, percent: i32) -> DynamicImage {
    let factor = 1.0 + percent as f32 / 100.0;
    // Grey images have no saturation to change.
    each_pixel(image, |px| {
        if px.len() >= 3 {
            let l = luma(px);
            px.iter_mut()
                .for_each(|c| *c = to_byte(l + (f32::from(*c) - l) * factor));
        }
    })
}

/// `pixelate:N`: blocks of N x N pixels (smaller at the right and bottom edges), each the mean
/// of its pixels, alpha included.
pub(crate) fn pixelate(image: DynamicImage, size: u32) -> DynamicImage {
    let mut image = eight_bit(image);
    let channels = usize::from(image.color().channel_count());
    let (width, height) = (image.width() as usize, image.height() as usize);
    let size = size as usize;
    let stride = width * channels;
    let bytes = bytes_mut(&mut image);
    let mut sums = vec![0u64; channels];
    for by in (0..height).step_by(size) {
        let rows = by..(by + size).min(height);
        for bx in (0..width).step_by(size) {
            let columns = bx..(bx + size).min(width);
            sums.iter_mut().for_each(|s| *s = 0);
            for y in rows.clone() {
                let line = &bytes
                    [y * stride + columns.start * channels..y * stride + columns.end * channels];
                for pixel in line.chunks_exact(channels) {
                    sums.iter_mut()
                        .zip(pixel)
                        .for_each(|(s, c)| *s += u64::from(*c));
                }
            }
            let count = (rows.len() * columns.len()) as u64;
            let mean: Vec<u8> = sums
                .iter()
                .map(|s| ((s + count / 2) / count) as u8)
                .collect();
            for y in rows.clone() {
                let line = &mut bytes
                    [y * stride + columns.start * channels..y * stride + columns.end * channels];
                for pixel in line.chunks_exact_mut(channels) {
                    pixel.copy_from_slice(&mean);
                }
            }
        }
    }
    image
}

/// `tint:COLOR`: each pixel's luma times the colour (a monochrome image in its shades).
pub(crate) fn tint(image: DynamicImage, colour: Colour) -> DynamicImage {
    let [r, g, b, _] = colour.rgba().map(|c| f32::from(c) / 255.0);
    each_pixel(in_colour(image), |px| {
        let l = luma(px);
        px[0] = to_byte(l * r);
        px[1] = to_byte(l * g);
        px[2] = to_byte(l * b);
    })
}

/// `gamma:G`: every colour channel raised to 1 / G on the 0-1 scale.
pub(crate) fn gamma(image: DynamicImage, gamma: Milli) -> DynamicImage {
    let exponent = 1.0 / f64::from(gamma.0) * 1000.0;
    let table: [u8; 256] =
        std::array::from_fn(|v| ((v as f64 / 255.0).powf(exponent) * 255.0).round() as u8);
    with_table(image, &table)
}

/// `normalize`: the luma's 1st and 99th percentiles stretched to 0 and 255, the same map on
/// every channel (hues kept), as sharp's `normalise`. A flat image is left as it is.
pub(crate) fn normalize(image: DynamicImage) -> DynamicImage {
    let channels = usize::from(image.color().channel_count());
    let mut histogram = [0u64; 256];
    let mut count = 0u64;
    for pixel in image.as_bytes().chunks_exact(channels) {
        histogram[usize::from(to_byte(luma(pixel)))] += 1;
        count += 1;
    }
    let percentile = |fraction: f64| {
        let target = (count as f64 * fraction).ceil().max(1.0) as u64;
        let mut seen = 0;
        histogram
            .iter()
            .position(|&n| {
                seen += n;
                seen >= target
            })
            .unwrap_or(255) as f32
    };
    let (low, high) = (percentile(0.01), percentile(0.99));
    if high <= low {
        return image;
    }
    let table: [u8; 256] =
        std::array::from_fn(|v| to_byte((v as f32 - low) * 255.0 / (high - low)));
    with_table(image, &table)
}

/// `median:R`: each channel the median of its (2R+1)² neighbourhood (imageproc's sliding
/// histogram, linear in R).
pub(crate) fn median(image: DynamicImage, radius: u32) -> DynamicImage {
    use imageproc::filter::median_filter;
    match image {
        DynamicImage::ImageLuma8(i) => DynamicImage::ImageLuma8(median_filter(&i, radius, radius)),
        DynamicImage::ImageLumaA8(i) => {
            DynamicImage::ImageLumaA8(median_filter(&i, radius, radius))
        }
        DynamicImage::ImageRgb8(i) => DynamicImage::ImageRgb8(median_filter(&i, radius, radius)),
        other => DynamicImage::ImageRgba8(median_filter(&other.to_rgba8(), radius, radius)),
    }
}

/// `modulate:BRIGHTNESS:SATURATION:HUE`: one linear map of RGB, the product of a brightness
/// scale, a saturation scale about the pixel's grey, and a hue rotation about the grey axis
/// (in YIQ, where hue is the angle of the two chroma components).
pub(crate) fn modulate(
    image: DynamicImage,
    brightness: Milli,
    saturation: Milli,
    hue: u32,
) -> DynamicImage {
    let matrix = modulation(
        brightness.0 as f32 / 1000.0,
        saturation.0 as f32 / 1000.0,
        (hue as f32).to_radians(),
    );
    each_pixel(in_colour(image), |px| {
        let rgb = [px[0], px[1], px[2]].map(f32::from);
        for (c, row) in px.iter_mut().zip(&matrix) {
            *c = to_byte(row[0] * rgb[0] + row[1] * rgb[1] + row[2] * rgb[2]);
        }
    })
}

/// The 3 x 3 RGB matrix of [`modulate`].
fn modulation(brightness: f32, saturation: f32, hue: f32) -> [[f32; 3]; 3] {
    const TO_YIQ: [[f32; 3]; 3] = [
        [0.299, 0.587, 0.114],
        [0.596, -0.274, -0.322],
        [0.211, -0.523, 0.312],
    ];
    const FROM_YIQ: [[f32; 3]; 3] = [
        [1.0, 0.956, 0.621],
        [1.0, -0.272, -0.647],
        [1.0, -1.106, 1.703],
    ];
    let (sin, cos) = hue.sin_cos();
    // In YIQ: brightness scales everything, saturation the chroma, hue rotates the chroma.
    let yiq = [
        [brightness, 0.0, 0.0],
        [
            0.0,
            brightness * saturation * cos,
            -brightness * saturation * sin,
        ],
        [
            0.0,
            brightness * saturation * sin,
            brightness * saturation * cos,
        ],
    ];
    multiply(&FROM_YIQ, &multiply(&yiq, &TO_YIQ))
}

fn multiply(a: &[[f32; 3]; 3], b: &[[f32; 3]; 3]) -> [[f32; 3]; 3] {
    std::array::from_fn(|i| std::array::from_fn(|j| (0..3).map(|k| a[i][k] * b[k][j]).sum()))
}
