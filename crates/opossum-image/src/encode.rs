//! Encoders. Each format uses the library its ecosystem trusts: libjpeg-turbo for JPEG (the
//! encoder libvips uses), libwebp for WebP (the `image` crate only writes lossless WebP), rav1e
//! through the `image` crate for AVIF, the `image` crate for PNG, and vtracer for SVG output.
//! Metadata is never copied: orientation was applied at decode time, and stripping EXIF is what
//! image servers do by default.

use image::{DynamicImage, ImageEncoder};
use opossum_ops::{Encoding, OutputFormat};

use crate::decode::SourceFormat;
use crate::{ImageError, Limits};

/// AVIF encoder speed (1 slowest - 10 fastest). 8 keeps a 1 MP encode well under a second,
/// which is what an on-demand server needs; quality per byte is within a few percent of 6.
const AVIF_SPEED: u8 = 8;

/// The encoding used when a chain names none: the source's own format where there is an
/// encoder for it, PNG otherwise (GIF, BMP, ICO, TIFF, rendered SVG).
pub fn default_encoding(source: SourceFormat) -> Encoding {
    Encoding::default_for(match source {
        SourceFormat::Jpeg => OutputFormat::Jpeg,
        SourceFormat::Webp => OutputFormat::Webp,
        _ => OutputFormat::Png,
    })
}

/// Encodes `image` as `encoding` says.
pub fn encode(
    image: &DynamicImage,
    encoding: Encoding,
    limits: &Limits,
) -> Result<Vec<u8>, ImageError> {
    let (width, height) = (image.width(), image.height());
    let failed = |e: &dyn std::fmt::Display| ImageError::Internal {
        message: format!("{} encoder: {e}", encoding.format.name()),
    };
    match encoding.format {
        OutputFormat::Jpeg => {
            let quality = encoding.quality.unwrap_or(80);
            let mut compressor = turbojpeg::Compressor::new().map_err(|e| failed(&e))?;
            compressor
                .set_quality(i32::from(quality))
                .map_err(|e| failed(&e))?;
            let (pixels, format, channels) = match image {
                DynamicImage::ImageLuma8(grey) => {
                    compressor
                        .set_subsamp(turbojpeg::Subsamp::Gray)
                        .map_err(|e| failed(&e))?;
                    (grey.as_raw().clone(), turbojpeg::PixelFormat::GRAY, 1)
                }
                other => {
                    compressor
                        .set_subsamp(turbojpeg::Subsamp::Sub2x2)
                        .map_err(|e| failed(&e))?;
                    (
                        flatten_alpha(other).into_raw(),
                        turbojpeg::PixelFormat::RGB,
                        3,
                    )
                }
            };
            let source = turbojpeg::Image {
                pixels: pixels.as_slice(),
                width: width as usize,
                pitch: width as usize * channels,
                height: height as usize,
                format,
            };
            compressor.compress_to_vec(source).map_err(|e| failed(&e))
        }
        OutputFormat::Png => {
            let mut out = Vec::new();
            let encoder = image::codecs::png::PngEncoder::new_with_quality(
                &mut out,
                image::codecs::png::CompressionType::Default,
                image::codecs::png::FilterType::Adaptive,
            );
            encoder
                .write_image(image.as_bytes(), width, height, image.color().into())
                .map_err(|e| failed(&e))?;
            Ok(out)
        }
        OutputFormat::Webp => {
            let (pixels, layout) = if image.color().has_alpha() {
                (image.to_rgba8().into_raw(), webp::PixelLayout::Rgba)
            } else {
                (image.to_rgb8().into_raw(), webp::PixelLayout::Rgb)
            };
            let encoder = webp::Encoder::new(&pixels, layout, width, height);
            let memory = match encoding.quality {
                Some(q) => encoder.encode_simple(false, f32::from(q)),
                None => encoder.encode_simple(true, 75.0),
            }
            .map_err(|e| failed(&format!("{e:?}")))?;
            Ok(memory.to_vec())
        }
        OutputFormat::Avif => {
            let mut out = Vec::new();
            let encoder = image::codecs::avif::AvifEncoder::new_with_speed_quality(
                &mut out,
                AVIF_SPEED,
                encoding.quality.unwrap_or(60),
            );
            let converted = match image {
                DynamicImage::ImageRgb8(_) | DynamicImage::ImageRgba8(_) => None,
                other if other.color().has_alpha() => {
                    Some(DynamicImage::ImageRgba8(other.to_rgba8()))
                }
                other => Some(DynamicImage::ImageRgb8(other.to_rgb8())),
            };
            let source = converted.as_ref().unwrap_or(image);
            source.write_with_encoder(encoder).map_err(|e| failed(&e))?;
            Ok(out)
        }
        OutputFormat::Gif => crate::animation::encode_gif(std::slice::from_ref(image), None),
        OutputFormat::Svg => trace(image, limits),
    }
}

/// JPEG has no alpha: composite onto white, as browsers show a transparent image on a page.
fn flatten_alpha(image: &DynamicImage) -> image::RgbImage {
    if !image.color().has_alpha() {
        return image.to_rgb8();
    }
    let rgba = image.to_rgba8();
    image::RgbImage::from_fn(rgba.width(), rgba.height(), |x, y| {
        let [r, g, b, a] = rgba.get_pixel(x, y).0;
        let blend =
            |c: u8| ((u32::from(c) * u32::from(a) + 255 * (255 - u32::from(a))) / 255) as u8;
        image::Rgb([blend(r), blend(g), blend(b)])
    })
}

/// Traces the raster image into a colour SVG with vtracer's defaults (stacked, spline paths).
fn trace(image: &DynamicImage, limits: &Limits) -> Result<Vec<u8>, ImageError> {
    let (width, height) = (image.width(), image.height());
    let pixels = u64::from(width) * u64::from(height);
    if pixels > limits.max_trace_pixels {
        return Err(ImageError::OutputTooLarge {
            op: "format:svg".into(),
            width: u64::from(width),
            height: u64::from(height),
            limit: limits.max_trace_pixels,
        });
    }
    let rgba = image.to_rgba8();
    let color_image = vtracer::ColorImage {
        pixels: rgba.into_raw(),
        width: width as usize,
        height: height as usize,
    };
    let svg = vtracer::convert(color_image, vtracer::Config::default()).map_err(|e| {
        ImageError::Internal {
            message: format!("svg tracing: {e}"),
        }
    })?;
    Ok(svg.to_string().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> DynamicImage {
        DynamicImage::ImageRgba8(image::RgbaImage::from_fn(64, 48, |x, y| {
            image::Rgba([
                (x * 4) as u8,
                (y * 5) as u8,
                90,
                if x < 8 { 0 } else { 255 },
            ])
        }))
    }

    fn decode_back(bytes: &[u8]) -> DynamicImage {
        image::load_from_memory(bytes).expect("encoder output decodes")
    }

    #[test]
    fn every_raster_encoder_produces_a_decodable_image() {
        for (encoding, expect) in [
            (
                Encoding::default_for(OutputFormat::Jpeg),
                image::ImageFormat::Jpeg,
            ),
            (
                Encoding::default_for(OutputFormat::Png),
                image::ImageFormat::Png,
            ),
            (
                Encoding::default_for(OutputFormat::Webp),
                image::ImageFormat::WebP,
            ),
            (
                Encoding {
                    format: OutputFormat::Webp,
                    quality: None,
                },
                image::ImageFormat::WebP,
            ),
        ] {
            let bytes = encode(&sample(), encoding, &Limits::default()).unwrap();
            assert_eq!(image::guess_format(&bytes).unwrap(), expect, "{encoding:?}");
            let back = decode_back(&bytes);
            assert_eq!((back.width(), back.height()), (64, 48), "{encoding:?}");
        }
    }

    #[test]
    fn lossless_webp_keeps_every_visible_pixel() {
        // libwebp may zero the colour of fully transparent pixels; nothing visible changes.
        let src = sample().to_rgba8();
        let encoding = Encoding {
            format: OutputFormat::Webp,
            quality: None,
        };
        let bytes = encode(
            &DynamicImage::ImageRgba8(src.clone()),
            encoding,
            &Limits::default(),
        )
        .unwrap();
        let back = decode_back(&bytes).to_rgba8();
        let visible = |p: &image::Rgba<u8>| if p.0[3] == 0 { [0; 4] } else { p.0 };
        let differing = src
            .pixels()
            .zip(back.pixels())
            .filter(|(a, b)| visible(a) != visible(b))
            .count();
        assert_eq!(differing, 0, "{differing} visible pixels changed");
    }

    #[test]
    fn avif_has_the_avif_brand() {
        let bytes = encode(
            &sample(),
            Encoding::default_for(OutputFormat::Avif),
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(&bytes[4..12], b"ftypavif");
    }

    #[test]
    fn svg_tracing_produces_svg_that_resvg_renders() {
        let bytes = encode(
            &sample(),
            Encoding::default_for(OutputFormat::Svg),
            &Limits::default(),
        )
        .unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(
            text.contains("<svg") && text.contains("<path"),
            "{text:.200}"
        );
        let rendered = crate::decode(&bytes, &Limits::default(), None).unwrap();
        assert_eq!((rendered.image.width(), rendered.image.height()), (64, 48));
    }

    #[test]
    fn quality_changes_size() {
        let src = DynamicImage::ImageRgb8(image::RgbImage::from_fn(128, 128, |x, y| {
            image::Rgb([
                ((x * y) % 251) as u8,
                ((x + 3 * y) % 253) as u8,
                (x ^ y) as u8,
            ])
        }));
        let size = |q| {
            let encoding = Encoding {
                format: OutputFormat::Jpeg,
                quality: Some(q),
            };
            encode(&src, encoding, &Limits::default()).unwrap().len()
        };
        assert!(size(30) < size(95));
    }
}
