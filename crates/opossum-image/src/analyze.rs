//! Image analysis, as imgproxy Pro's `/info` and thumbor's `/meta` offer: dimensions, format,
//! colour histogram, average and dominant colours, BlurHash and a perceptual hash.
//!
//! Everything but the dimensions is computed on a small copy (at most 256 px on the long side):
//! the statistics do not change meaningfully, and analysis of a 24 MP photo stays cheap.

use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};
use image::{DynamicImage, RgbaImage};
use serde::Serialize;

use crate::decode::SourceFormat;

/// Long side of the copy every statistic is computed on.
pub(crate) const WORKING_EDGE: u32 = 256;
const HISTOGRAM_BINS: usize = 16;
const DOMINANT_COLOURS: usize = 5;

/// The analysis JSON of an image.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Analysis {
    /// width of the analysed image
    pub width: u32,
    /// height of the analysed image
    pub height: u32,
    /// format of the source bytes
    pub format: SourceFormat,
    /// whether the image has an alpha channel
    pub has_alpha: bool,
    /// frames: 1 for a still image (the statistics describe the first frame)
    pub frames: u32,
    /// how many times an animation plays (0: for ever); absent for a still image
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loop_count: Option<u32>,
    /// how long one play of an animation takes, in milliseconds; absent for a still image
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// per-channel histogram
    pub histogram: Histogram,
    /// mean colour, `#rrggbb`
    pub average_color: String,
    /// the most common colours, most common first
    pub dominant_colors: Vec<DominantColor>,
    /// BlurHash with 4x3 components
    pub blurhash: String,
    /// 64-bit perceptual hash (DCT, median threshold, as pHash defines it), hex; compare two
    /// by Hamming distance
    pub phash: String,
    /// the source's ICC profile description, when it has one
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icc_profile: Option<String>,
    /// the source's EXIF summary, when it has EXIF
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exif: Option<crate::metadata::ExifSummary>,
}

/// Fractions of pixels per bin; each channel's bins sum to 1.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Histogram {
    /// bins per channel (values 0-255 are split evenly)
    pub bins: usize,
    /// red channel
    pub red: Vec<f32>,
    /// green channel
    pub green: Vec<f32>,
    /// blue channel
    pub blue: Vec<f32>,
    /// Rec. 709 luma
    pub luma: Vec<f32>,
}

/// One dominant colour and its share of the image.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DominantColor {
    /// `#rrggbb`
    pub color: String,
    /// share of pixels nearest to this colour, 0-1
    pub fraction: f32,
}

/// Analyses an (already decoded and processed) image.
pub fn analyze(image: &DynamicImage, format: SourceFormat) -> Analysis {
    let small = working_copy(image);
    let rgb = DynamicImage::ImageRgba8(small.clone()).to_rgb8();
    let luma = DynamicImage::ImageRgba8(small.clone()).to_luma8();
    let pixel_count = rgb.pixels().len().max(1) as f32;

    let channels = imageproc::stats::histogram(&rgb).channels;
    let luma_histogram = imageproc::stats::histogram(&luma).channels;
    let bin = |counts: &[u32; 256]| -> Vec<f32> {
        counts
            .chunks(256 / HISTOGRAM_BINS)
            .map(|c| c.iter().sum::<u32>() as f32 / pixel_count)
            .collect()
    };

    let mut sums = [0u64; 3];
    for p in rgb.pixels() {
        for (s, v) in sums.iter_mut().zip(p.0) {
            *s += u64::from(v);
        }
    }
    let n = rgb.pixels().len().max(1) as u64;
    let average = [sums[0] / n, sums[1] / n, sums[2] / n].map(|v| v as u8);

    let blurhash =
        blurhash::encode(4, 3, small.width(), small.height(), small.as_raw()).unwrap_or_default();
    let phash = image_hasher::HasherConfig::new()
        .hash_alg(image_hasher::HashAlg::Median)
        .hash_size(8, 8)
        .preproc_dct()
        .to_hasher()
        .hash_image(&DynamicImage::ImageRgba8(small.clone()));

    Analysis {
        width: image.width(),
        height: image.height(),
        format,
        has_alpha: image.color().has_alpha(),
        frames: 1,
        loop_count: None,
        duration_ms: None,
        histogram: Histogram {
            bins: HISTOGRAM_BINS,
            red: bin(&channels[0]),
            green: bin(&channels[1]),
            blue: bin(&channels[2]),
            luma: bin(&luma_histogram[0]),
        },
        average_color: hex_colour(average),
        dominant_colors: dominant_colours(&small),
        blurhash,
        phash: phash
            .as_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
        icc_profile: None,
        exif: None,
    }
}

/// A copy at most [`WORKING_EDGE`] on the long side, resized before it is converted so a
/// large image is never copied at full size.
fn working_copy(image: &DynamicImage) -> RgbaImage {
    let (w, h) = (image.width(), image.height());
    let scale = f64::from(WORKING_EDGE) / f64::from(w.max(h));
    if scale >= 1.0 {
        return image.to_rgba8();
    }
    let tw = ((f64::from(w) * scale).round() as u32).max(1);
    let th = ((f64::from(h) * scale).round() as u32).max(1);
    let mut target = DynamicImage::new(tw, th, image.color());
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
    match Resizer::new().resize(image, &mut target, &options) {
        Ok(()) => target.to_rgba8(),
        Err(_) => image.thumbnail(tw, th).to_rgba8(),
    }
}

/// Quantises to a small palette (NeuQuant, the quantiser the GIF encoder uses) and ranks the
/// palette entries by how many pixels map to each.
fn dominant_colours(image: &RgbaImage) -> Vec<DominantColor> {
    let pixels = image.as_raw();
    if pixels.is_empty() {
        return Vec::new();
    }
    let quantiser = color_quant::NeuQuant::new(10, 16, pixels);
    let palette = quantiser.color_map_rgb();
    let mut counts = vec![0u32; palette.len() / 3];
    for p in pixels.chunks_exact(4) {
        counts[quantiser.index_of(p)] += 1;
    }
    let total = (pixels.len() / 4) as f32;
    let mut ranked: Vec<(u32, [u8; 3])> = counts
        .iter()
        .zip(palette.chunks_exact(3))
        .filter(|(count, _)| **count > 0)
        .map(|(count, rgb)| (*count, [rgb[0], rgb[1], rgb[2]]))
        .collect();
    ranked.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    ranked
        .into_iter()
        .take(DOMINANT_COLOURS)
        .map(|(count, rgb)| DominantColor {
            color: hex_colour(rgb),
            fraction: count as f32 / total,
        })
        .collect()
}

fn hex_colour([r, g, b]: [u8; 3]) -> String {
    format!("#{r:02x}{g:02x}{b:02x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flat_red_image() {
        let image = DynamicImage::ImageRgb8(image::RgbImage::from_pixel(
            500,
            300,
            image::Rgb([255, 0, 0]),
        ));
        let a = analyze(&image, SourceFormat::Png);
        assert_eq!((a.width, a.height), (500, 300));
        assert_eq!(a.average_color, "#ff0000");
        assert_eq!(a.dominant_colors.len(), 1);
        assert!(a.dominant_colors[0].fraction > 0.99);
        assert!((a.histogram.red[15] - 1.0).abs() < 1e-6);
        assert!((a.histogram.green[0] - 1.0).abs() < 1e-6);
        assert_eq!(a.blurhash.len(), 4 + 2 * 4 * 3);
        assert_eq!(a.phash.len(), 16);
    }

    #[test]
    fn perceptual_hash_survives_resizing_but_not_a_different_picture() {
        let photo = |name: &str| {
            let path = format!(
                "{}/../../../shared/corpus/photos/{name}",
                env!("CARGO_MANIFEST_DIR")
            );
            image::open(&path)
                .unwrap_or_else(|e| panic!("{path}: {e} (is ../shared beside the checkout?)"))
        };
        let hash = |img: &DynamicImage| {
            u64::from_str_radix(&analyze(img, SourceFormat::Png).phash, 16).unwrap()
        };
        let parrots = photo("kodim23.png");
        let a = hash(&parrots);
        let b = hash(&parrots.resize(300, 300, image::imageops::FilterType::Triangle));
        let c = hash(&photo("kodim02.png"));
        assert!(
            (a ^ b).count_ones() <= 6,
            "resized copy differs by {}",
            (a ^ b).count_ones()
        );
        assert!(
            (a ^ c).count_ones() >= 20,
            "different photo differs by {}",
            (a ^ c).count_ones()
        );
    }
}
