//! Benchmark inputs and measures, shared by the `opossum-bench` binary and the criterion
//! benches.
//!
//! The corpus has no large photos, so large inputs are made from a real one: enlarged with
//! Lanczos3 and given mild seeded noise, so that the result compresses like a camera image
//! (a smooth enlargement compresses far better than any real photo and would flatter decoders).
//! The same arguments always give the same pixels.

use anyhow::Context;
use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};
use image::{DynamicImage, RgbImage};

/// Standard deviation of the added noise, in 8-bit levels: with it a 24 MP enlargement of a
/// Kodak photo saved at q90 is about as large as a 24 MP camera JPEG (6.6 MB), where a
/// noiseless enlargement would be a fraction of that and decode unrealistically fast.
pub const DEFAULT_NOISE_SIGMA: f32 = 8.0;

/// `source` enlarged (or reduced) to `width` x `height` with Lanczos3, plus seeded noise of
/// [`DEFAULT_NOISE_SIGMA`].
pub fn realistic_image(
    source: &DynamicImage,
    width: u32,
    height: u32,
    seed: u64,
) -> anyhow::Result<RgbImage> {
    noisy_image(source, width, height, seed, DEFAULT_NOISE_SIGMA)
}

/// Like [`realistic_image`] with a chosen noise level.
pub fn noisy_image(
    source: &DynamicImage,
    width: u32,
    height: u32,
    seed: u64,
    sigma: f32,
) -> anyhow::Result<RgbImage> {
    let mut image = lanczos3(source, width, height).context("enlarging the source")?;
    let mut state = seed | 1;
    let mut next = move || {
        // xorshift64*: fast, seeded, good enough for sensor-like noise.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 40) as f32 / (1u64 << 24) as f32
    };
    for pixel in image.pixels_mut() {
        for channel in pixel.0.iter_mut() {
            // Sum of four uniforms: close enough to Gaussian, variance 4/12.
            let noise = (next() + next() + next() + next() - 2.0) * sigma * 1.732;
            *channel = (f32::from(*channel) + noise).round().clamp(0.0, 255.0) as u8;
        }
    }
    Ok(image)
}

/// Encodes as a baseline 4:2:0 JPEG at `quality`, as cameras and most web photos are.
pub fn jpeg(image: &RgbImage, quality: i32) -> anyhow::Result<Vec<u8>> {
    let mut compressor = turbojpeg::Compressor::new()?;
    compressor.set_quality(quality)?;
    compressor.set_subsamp(turbojpeg::Subsamp::Sub2x2)?;
    let source = turbojpeg::Image {
        pixels: image.as_raw().as_slice(),
        width: image.width() as usize,
        pitch: image.width() as usize * 3,
        height: image.height() as usize,
        format: turbojpeg::PixelFormat::RGB,
    };
    Ok(compressor.compress_to_vec(source)?)
}

/// Peak signal-to-noise ratio of `test` against `reference` over the RGB channels, in dB.
pub fn psnr(reference: &RgbImage, test: &RgbImage) -> anyhow::Result<f64> {
    anyhow::ensure!(
        reference.dimensions() == test.dimensions(),
        "sizes differ: reference {:?}, test {:?}",
        reference.dimensions(),
        test.dimensions()
    );
    let squared: f64 = reference
        .as_raw()
        .iter()
        .zip(test.as_raw())
        .map(|(a, b)| {
            let d = f64::from(*a) - f64::from(*b);
            d * d
        })
        .sum();
    let mse = squared / reference.as_raw().len() as f64;
    Ok(if mse == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (255.0f64 * 255.0 / mse).log10()
    })
}

/// The high-quality reference a thumbnail is judged against: the full-resolution decode, then
/// one Lanczos3 reduction straight to the thumbnail's size, with no shrink-on-load.
pub fn reference_resize(full: &DynamicImage, width: u32, height: u32) -> anyhow::Result<RgbImage> {
    lanczos3(full, width, height).context("reference resize")
}

/// One Lanczos3 resize to exactly `width` x `height`, in RGB.
fn lanczos3(image: &DynamicImage, width: u32, height: u32) -> anyhow::Result<RgbImage> {
    let source = DynamicImage::ImageRgb8(image.to_rgb8());
    let mut target = DynamicImage::new_rgb8(width, height);
    Resizer::new().resize(
        &source,
        &mut target,
        &ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3)),
    )?;
    Ok(target.to_rgb8())
}
