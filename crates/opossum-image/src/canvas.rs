//! Operations that change the canvas rather than scale the image: margins (`pad`, the `contain`
//! letterbox), flattening onto a colour (`background`), cutting borders away (`trim`), rotating
//! by any angle and rounding the corners.
//!
//! They work on the image's bytes row by row, whatever its layout (grey, grey and alpha, RGB,
//! RGBA: all 8-bit after decoding), and widen it only when the colour they add needs it: an
//! RGB photo padded with opaque white stays RGB, padded with a transparent colour it gains
//! alpha (which a JPEG encoder flattens onto white). Each new canvas is checked against the
//! output pixel limit before it is allocated.

use image::{DynamicImage, RgbImage, RgbaImage};
use opossum_ops::{Colour, Operation};

use crate::{ImageError, Limits};

/// Ok when an image of `width` x `height`, which `op` is about to allocate, is within the
/// output limit (every operation that makes a new canvas or resizes asks first).
pub(crate) fn check_output(
    op: &Operation,
    width: u64,
    height: u64,
    limits: &Limits,
) -> Result<(), ImageError> {
    if width * height > limits.max_output_pixels
        || width > u64::from(u32::MAX)
        || height > u64::from(u32::MAX)
    {
        return Err(ImageError::OutputTooLarge {
            op: op.to_string(),
            width,
            height,
            limit: limits.max_output_pixels,
        });
    }
    Ok(())
}

/// The image as RGB, or RGBA where it has alpha or `colour` is not opaque: the layout that
/// holds both the image and the colour.
pub(crate) fn widen_for(image: DynamicImage, colour: Colour) -> DynamicImage {
    let alpha = image.color().has_alpha() || !colour.is_opaque();
    match (image, alpha) {
        (rgba @ DynamicImage::ImageRgba8(_), true) => rgba,
        (rgb @ DynamicImage::ImageRgb8(_), false) => rgb,
        (other, true) => DynamicImage::ImageRgba8(other.to_rgba8()),
        (other, false) => DynamicImage::ImageRgb8(other.to_rgb8()),
    }
}

/// A `width` x `height` canvas of `colour` with the image copied at (`left`, `top`), once the
/// size has passed the output limit (the sizes are u64 so a sum cannot wrap before the check).
pub(crate) fn embed(
    image: DynamicImage,
    (width, height): (u64, u64),
    (left, top): (u32, u32),
    colour: Colour,
    op: &Operation,
    limits: &Limits,
) -> Result<DynamicImage, ImageError> {
    check_output(op, width, height, limits)?;
    let (width, height) = (width as u32, height as u32);
    let [r, g, b, a] = colour.rgba();
    Ok(match widen_for(image, colour) {
        DynamicImage::ImageRgba8(source) => {
            let mut canvas = RgbaImage::from_pixel(width, height, image::Rgba([r, g, b, a]));
            copy_rows(&source, source.width(), &mut canvas, width, (left, top), 4);
            DynamicImage::ImageRgba8(canvas)
        }
        rgb => {
            let source = rgb.into_rgb8();
            let mut canvas = RgbImage::from_pixel(width, height, image::Rgb([r, g, b]));
            copy_rows(&source, source.width(), &mut canvas, width, (left, top), 3);
            DynamicImage::ImageRgb8(canvas)
        }
    })
}

/// Copies a `source_width`-wide image into a `canvas_width`-wide one at (`left`, `top`), one
/// slice per row; both have `channels` bytes per pixel and the source fits.
fn copy_rows(
    source: &[u8],
    source_width: u32,
    canvas: &mut [u8],
    canvas_width: u32,
    (left, top): (u32, u32),
    channels: usize,
) {
    let row = source_width as usize * channels;
    if row == 0 {
        return;
    }
    let stride = canvas_width as usize * channels;
    for (y, line) in source.chunks_exact(row).enumerate() {
        let start = (top as usize + y) * stride + left as usize * channels;
        canvas[start..start + row].copy_from_slice(line);
    }
}

/// The `width` x `height` window at (`left`, `top`), which must lie inside the image, copied a
/// row slice at a time (the `image` crate's `crop_imm` copies pixel by pixel, several times
/// slower on a large window).
pub(crate) fn crop(
    image: &DynamicImage,
    left: u32,
    top: u32,
    width: u32,
    height: u32,
) -> DynamicImage {
    fn rows<P: image::Pixel<Subpixel = u8>>(
        source: &image::ImageBuffer<P, Vec<u8>>,
        (left, top, width, height): (u32, u32, u32, u32),
    ) -> image::ImageBuffer<P, Vec<u8>> {
        let channels = usize::from(P::CHANNEL_COUNT);
        let stride = source.width() as usize * channels;
        let (start, row) = (left as usize * channels, width as usize * channels);
        let mut bytes = Vec::with_capacity(row * height as usize);
        for y in top as usize..(top + height) as usize {
            bytes.extend_from_slice(&source.as_raw()[y * stride + start..y * stride + start + row]);
        }
        image::ImageBuffer::from_raw(width, height, bytes).expect("the window's bytes")
    }
    let window = (left, top, width, height);
    match image {
        DynamicImage::ImageLuma8(i) => DynamicImage::ImageLuma8(rows(i, window)),
        DynamicImage::ImageLumaA8(i) => DynamicImage::ImageLumaA8(rows(i, window)),
        DynamicImage::ImageRgb8(i) => DynamicImage::ImageRgb8(rows(i, window)),
        DynamicImage::ImageRgba8(i) => DynamicImage::ImageRgba8(rows(i, window)),
        other => other.crop_imm(left, top, width, height),
    }
}

/// `pad:TOP:RIGHT:BOTTOM:LEFT:COLOR`.
pub(crate) fn pad(
    image: DynamicImage,
    [top, right, bottom, left]: [u32; 4],
    colour: Colour,
    op: &Operation,
    limits: &Limits,
) -> Result<DynamicImage, ImageError> {
    let width = u64::from(image.width()) + u64::from(left) + u64::from(right);
    let height = u64::from(image.height()) + u64::from(top) + u64::from(bottom);
    embed(image, (width, height), (left, top), colour, op, limits)
}

/// `background:COLOR`: every pixel composited over the colour (Porter-Duff "over"); an image
/// without alpha is returned as it is.
pub(crate) fn flatten(image: DynamicImage, colour: Colour) -> DynamicImage {
    if !image.color().has_alpha() {
        return image;
    }
    let mut rgba = image.into_rgba8();
    let [br, bg, bb, ba] = colour.rgba().map(u32::from);
    for pixel in rgba.pixels_mut() {
        let [r, g, b, a] = pixel.0.map(u32::from);
        // In 0-255 fixed point: out_a = a + ba (1 - a); out_c = (c a + bc ba (1 - a)) / out_a.
        let under = ba * (255 - a);
        let out_a = a * 255 + under;
        if out_a == 0 {
            pixel.0 = [0, 0, 0, 0];
            continue;
        }
        let mix = |c: u32, bc: u32| ((c * a * 255 + bc * under + out_a / 2) / out_a) as u8;
        pixel.0 = [
            mix(r, br),
            mix(g, bg),
            mix(b, bb),
            ((out_a + 127) / 255) as u8,
        ];
    }
    if colour.is_opaque() {
        DynamicImage::ImageRgba8(rgba).into_rgb8().into()
    } else {
        DynamicImage::ImageRgba8(rgba)
    }
}

/// `trim:THRESHOLD`: the smallest window holding every pixel that differs from the top-left
/// pixel by more than the threshold on some channel. An image that is all border is returned
/// whole (as imgproxy and libvips do: there is nothing to keep or to cut).
pub(crate) fn trim(image: DynamicImage, threshold: u8) -> DynamicImage {
    let Some((left, top, width, height)) = content_box(&image, threshold) else {
        return image;
    };
    if (width, height) == (image.width(), image.height()) {
        return image;
    }
    crop(&image, left, top, width, height)
}

/// `trim` for the frames of an animation: one window for all, the smallest that holds the
/// content of every frame, so the frames stay one size and nothing of any is cut.
pub(crate) fn trim_alike(frames: Vec<DynamicImage>, threshold: u8) -> Vec<DynamicImage> {
    let Some(first) = frames.first() else {
        return frames;
    };
    let (width, height) = (first.width(), first.height());
    let union = frames
        .iter()
        .filter_map(|frame| content_box(frame, threshold))
        .map(|(left, top, w, h)| (left, top, left + w, top + h))
        .reduce(|a, b| (a.0.min(b.0), a.1.min(b.1), a.2.max(b.2), a.3.max(b.3)));
    let Some((left, top, right, bottom)) = union else {
        return frames;
    };
    if (right - left, bottom - top) == (width, height) {
        return frames;
    }
    frames
        .iter()
        .map(|frame| crop(frame, left, top, right - left, bottom - top))
        .collect()
}

/// The content's bounding box (left, top, width, height), `None` when there is none.
fn content_box(image: &DynamicImage, threshold: u8) -> Option<(u32, u32, u32, u32)> {
    let channels = usize::from(image.color().channel_count());
    let (width, height) = (image.width() as usize, image.height() as usize);
    let bytes = image.as_bytes();
    if width == 0 || height == 0 || bytes.len() != width * height * channels {
        return None;
    }
    let reference = &bytes[..channels];
    let differs = |pixel: &[u8]| {
        pixel
            .iter()
            .zip(reference)
            .any(|(a, b)| a.abs_diff(*b) > threshold)
    };
    let row = |y: usize| &bytes[y * width * channels..(y + 1) * width * channels];
    let row_has_content = |y: usize| row(y).chunks_exact(channels).any(differs);
    let top = (0..height).find(|&y| row_has_content(y))?;
    let bottom = (top..height).rev().find(|&y| row_has_content(y))?;
    let (mut left, mut right) = (width, 0);
    for y in top..=bottom {
        let pixels = row(y);
        // Only the part not yet known to hold content needs looking at.
        if let Some(x) = (0..left).find(|&x| differs(&pixels[x * channels..(x + 1) * channels])) {
            left = x;
        }
        if let Some(x) = (right.max(left)..width)
            .rev()
            .find(|&x| differs(&pixels[x * channels..(x + 1) * channels]))
        {
            right = right.max(x);
        }
    }
    Some((
        left as u32,
        top as u32,
        (right + 1 - left) as u32,
        (bottom + 1 - top) as u32,
    ))
}

/// `rotate:DEG:COLOR` for an angle that is not a right angle: the canvas grows to the rotated
/// image's bounding box, each output pixel is sampled bilinearly from the source, and what
/// falls outside the source takes the colour (so the edges are smooth).
pub(crate) fn rotate_by(
    image: DynamicImage,
    degrees: f64,
    colour: Colour,
    op: &Operation,
    limits: &Limits,
) -> Result<DynamicImage, ImageError> {
    let (sin, cos) = degrees.to_radians().sin_cos();
    let (w, h) = (f64::from(image.width()), f64::from(image.height()));
    let out_w = (w * cos.abs() + h * sin.abs() - 1e-6).ceil().max(1.0);
    let out_h = (w * sin.abs() + h * cos.abs() - 1e-6).ceil().max(1.0);
    check_output(op, out_w as u64, out_h as u64, limits)?;
    let (out_w, out_h) = (out_w as u32, out_h as u32);
    Ok(match widen_for(image, colour) {
        DynamicImage::ImageRgba8(source) => {
            let mut out = RgbaImage::new(out_w, out_h);
            sample_rotated::<4>(
                &source,
                source.dimensions(),
                &mut out,
                (out_w, out_h),
                (sin, cos),
                colour.rgba(),
            );
            DynamicImage::ImageRgba8(out)
        }
        rgb => {
            let source = rgb.into_rgb8();
            let mut out = RgbImage::new(out_w, out_h);
            let [r, g, b, _] = colour.rgba();
            sample_rotated::<3>(
                &source,
                source.dimensions(),
                &mut out,
                (out_w, out_h),
                (sin, cos),
                [r, g, b],
            );
            DynamicImage::ImageRgb8(out)
        }
    })
}

/// Inverse mapping: each output pixel's centre turned back by the angle onto the source. The
/// source point moves by a constant step along a row, so it is carried, not recomputed; pixels
/// whose four neighbours are all inside take an integer (8-bit fraction) bilinear path, those
/// with none inside take the colour, and only the edge pixels mix the two.
fn sample_rotated<const C: usize>(
    source: &[u8],
    (sw, sh): (u32, u32),
    out: &mut [u8],
    (ow, oh): (u32, u32),
    (sin, cos): (f64, f64),
    fill: [u8; C],
) {
    let (sw_i, sh_i) = (i64::from(sw), i64::from(sh));
    let (scx, scy) = (f64::from(sw) / 2.0, f64::from(sh) / 2.0);
    let (ocx, ocy) = (f64::from(ow) / 2.0, f64::from(oh) / 2.0);
    let stride = sw as usize * C;
    let texel = |x: i64, y: i64| -> [u32; C] {
        if x < 0 || y < 0 || x >= sw_i || y >= sh_i {
            return fill.map(u32::from);
        }
        let at = y as usize * stride + x as usize * C;
        std::array::from_fn(|c| u32::from(source[at + c]))
    };
    for (oy, line) in out.chunks_exact_mut(ow as usize * C).enumerate() {
        let dy = oy as f64 + 0.5 - ocy;
        let dx = 0.5 - ocx;
        // Clockwise on screen (y down): the source point is the output's turned back. In
        // 32.32 fixed point, so a step is one add and the cell and weights are shifts (over a
        // 16,384 px row the rounding of the step drifts by a few millionths of a pixel).
        const ONE: f64 = (1u64 << 32) as f64;
        let mut sx = ((cos * dx + sin * dy + scx - 0.5) * ONE) as i64;
        let mut sy = ((-sin * dx + cos * dy + scy - 0.5) * ONE) as i64;
        let (step_x, step_y) = ((cos * ONE) as i64, (-sin * ONE) as i64);
        for pixel in line.chunks_exact_mut(C) {
            let (x0, y0) = (sx >> 32, sy >> 32);
            let wx = ((sx >> 24) & 0xff) as u32;
            let wy = ((sy >> 24) & 0xff) as u32;
            sx += step_x;
            sy += step_y;
            if x0 < -1 || y0 < -1 || x0 >= sw_i || y0 >= sh_i {
                pixel.copy_from_slice(&fill);
                continue;
            }
            let inside = x0 >= 0 && y0 >= 0 && x0 + 1 < sw_i && y0 + 1 < sh_i;
            let (a, b, c, d) = if inside {
                let at = y0 as usize * stride + x0 as usize * C;
                let texel_at =
                    |i: usize| -> [u32; C] { std::array::from_fn(|ch| u32::from(source[i + ch])) };
                (
                    texel_at(at),
                    texel_at(at + C),
                    texel_at(at + stride),
                    texel_at(at + stride + C),
                )
            } else {
                (
                    texel(x0, y0),
                    texel(x0 + 1, y0),
                    texel(x0, y0 + 1),
                    texel(x0 + 1, y0 + 1),
                )
            };
            for ch in 0..C {
                let top = a[ch] * (256 - wx) + b[ch] * wx;
                let bottom = c[ch] * (256 - wx) + d[ch] * wx;
                pixel[ch] = ((top * (256 - wy) + bottom * wy + 32_768) >> 16) as u8;
            }
        }
    }
}

/// `round:RADIUS`: the corners cut to quarter circles (at most half the shorter side), the
/// outside transparent and the edge anti-aliased by the pixel's coverage.
pub(crate) fn round(image: DynamicImage, radius: u32) -> DynamicImage {
    let radius = radius.min(image.width() / 2).min(image.height() / 2);
    if radius == 0 {
        return image;
    }
    let mut rgba = image.into_rgba8();
    let (width, height) = rgba.dimensions();
    let r = f64::from(radius);
    for y in 0..radius {
        for x in 0..radius {
            // Distance of the pixel's centre from the corner circle's centre.
            let (dx, dy) = (r - (f64::from(x) + 0.5), r - (f64::from(y) + 0.5));
            let coverage = (r - (dx * dx + dy * dy).sqrt() + 0.5).clamp(0.0, 1.0);
            if coverage >= 1.0 {
                continue;
            }
            for (px, py) in [
                (x, y),
                (width - 1 - x, y),
                (x, height - 1 - y),
                (width - 1 - x, height - 1 - y),
            ] {
                let pixel = rgba.get_pixel_mut(px, py);
                pixel.0[3] = (f64::from(pixel.0[3]) * coverage).round() as u8;
            }
        }
    }
    DynamicImage::ImageRgba8(rgba)
}
