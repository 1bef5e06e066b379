//! Encoders. Each format uses the library its ecosystem trusts: libjpeg-turbo for JPEG (the
//! encoder libvips uses; optimised Huffman tables always, progressive and 4:4:4 on request),
//! libwebp for WebP (the `image` crate only writes lossless WebP), libaom through libheif for
//! AVIF (see `heif`), oxipng for PNG (lossless optimisation; NeuQuant and Floyd-Steinberg for
//! `palette`), and vtracer for SVG output. Settings a request leaves out come from the
//! configuration's `encoding:` defaults ([`Limits::encoding`]).
//! Metadata is not copied unless the chain says `keep:` (see `embed`): orientation was applied at
//! decode time, and stripping EXIF is what image servers do by default.

use image::DynamicImage;
use opossum_ops::{Chroma, Encoding, OutputFormat};

use crate::decode::SourceFormat;
use crate::embed::Embed;
use crate::{ImageError, Limits};

/// The encoding used when a chain names none: the source's own format where there is an
/// encoder for it; JPEG for HEIC (a camera's photo, which browsers other than Safari cannot
/// show); PNG otherwise (BMP, ICO, TIFF, JPEG XL, rendered SVG; a GIF is GIF when animated,
/// see `animation`).
pub fn default_encoding(source: SourceFormat) -> Encoding {
    Encoding::default_for(match source {
        SourceFormat::Jpeg | SourceFormat::Heic => OutputFormat::Jpeg,
        SourceFormat::Webp => OutputFormat::Webp,
        SourceFormat::Avif => OutputFormat::Avif,
        _ => OutputFormat::Png,
    })
}

/// Encodes `image` as `encoding` says; settings it leaves out come from `limits.encoding`.
pub fn encode(
    image: &DynamicImage,
    encoding: Encoding,
    limits: &Limits,
) -> Result<Vec<u8>, ImageError> {
    encode_with(image, encoding, limits, &Embed::default())
}

/// [`encode`], with the metadata blocks `keep:` asks for.
pub(crate) fn encode_with(
    image: &DynamicImage,
    encoding: Encoding,
    limits: &Limits,
    embed: &Embed,
) -> Result<Vec<u8>, ImageError> {
    let encoding = encoding.resolved(&limits.encoding);
    let (width, height) = (image.width(), image.height());
    let failed = |e: &dyn std::fmt::Display| ImageError::Internal {
        message: format!("{} encoder: {e}", encoding.format.name()),
    };
    match encoding.format {
        OutputFormat::Jpeg => {
            let mut compressor = turbojpeg::Compressor::new().map_err(|e| failed(&e))?;
            let quality = encoding.quality.unwrap_or(limits.encoding.jpeg_quality);
            compressor
                .set_quality(i32::from(quality))
                .map_err(|e| failed(&e))?;
            // Huffman tables fitted to the image: 2-5% smaller at no cost in quality, and what
            // progressive scans need anyway.
            compressor.set_optimize(true).map_err(|e| failed(&e))?;
            compressor
                .set_progressive(encoding.progressive.unwrap_or(false))
                .map_err(|e| failed(&e))?;
            let (pixels, format, channels) = match image {
                DynamicImage::ImageLuma8(grey) => {
                    compressor
                        .set_subsamp(turbojpeg::Subsamp::Gray)
                        .map_err(|e| failed(&e))?;
                    (grey.as_raw().clone(), turbojpeg::PixelFormat::GRAY, 1)
                }
                other => {
                    let subsamp = match encoding.chroma.unwrap_or_default() {
                        Chroma::C420 => turbojpeg::Subsamp::Sub2x2,
                        Chroma::C444 => turbojpeg::Subsamp::None,
                    };
                    compressor.set_subsamp(subsamp).map_err(|e| failed(&e))?;
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
            let bytes = compressor.compress_to_vec(source).map_err(|e| failed(&e))?;
            embed.write_into(bytes, OutputFormat::Jpeg)
        }
        OutputFormat::Png => encode_png(image, encoding, embed).map_err(|e| failed(&e)),
        OutputFormat::Webp => {
            let (pixels, layout) = if image.color().has_alpha() {
                (image.to_rgba8().into_raw(), webp::PixelLayout::Rgba)
            } else {
                (image.to_rgb8().into_raw(), webp::PixelLayout::Rgb)
            };
            let encoder = webp::Encoder::new(&pixels, layout, width, height);
            let memory = encoder
                .encode_advanced(&webp_config(encoding)?)
                .map_err(|e| failed(&format!("{e:?}")))?;
            embed.write_into(memory.to_vec(), OutputFormat::Webp)
        }
        OutputFormat::Avif => crate::heif::encode_avif(
            image,
            encoding.quality.unwrap_or(limits.encoding.avif_quality),
            encoding.speed.unwrap_or(limits.encoding.avif_speed),
            embed,
        ),
        OutputFormat::Gif => crate::animation::encode_gif(std::slice::from_ref(image), None),
        OutputFormat::Svg => trace(image, limits),
    }
}

/// libwebp's settings for a resolved encoding (which has a quality unless it is lossless):
/// lossy at its quality or lossless, at its effort
/// (libwebp's `method`). Shared by still and animated WebP.
pub(crate) fn webp_config(encoding: Encoding) -> Result<webp::WebPConfig, ImageError> {
    let mut config = webp::WebPConfig::new().map_err(|()| ImageError::Internal {
        message: "webp encoder: no configuration".into(),
    })?;
    match encoding.quality {
        Some(quality) => {
            config.quality = f32::from(quality);
            config.alpha_compression = 1;
        }
        None => {
            config.lossless = 1;
            config.alpha_compression = 0;
            config.quality = 75.0;
        }
    }
    config.method = i32::from(
        encoding
            .effort
            .unwrap_or(opossum_ops::EncodingDefaults::default().webp_effort),
    );
    Ok(config)
}

/// PNG through oxipng, which picks the smallest of its filter and deflate trials and reduces
/// bit depth, colour type and palette where that loses nothing. With `palette`, the image is
/// first quantised to that many colours (NeuQuant, alpha included) with Floyd-Steinberg
/// dithering.
fn encode_png(
    image: &DynamicImage,
    encoding: Encoding,
    embed: &Embed,
) -> Result<Vec<u8>, oxipng::PngError> {
    let (width, height) = (image.width(), image.height());
    let mut raw = match (encoding.palette, image) {
        (Some(colours), _) => {
            let mut rgba = image.to_rgba8();
            let quantiser = color_quant::NeuQuant::new(10, usize::from(colours), rgba.as_raw());
            image::imageops::dither(&mut rgba, &quantiser);
            let indices = image::imageops::index_colors(&rgba, &quantiser);
            let palette = quantiser
                .color_map_rgba()
                .chunks_exact(4)
                .map(|c| oxipng::RGBA8::new(c[0], c[1], c[2], c[3]))
                .collect();
            oxipng::RawImage::new(
                width,
                height,
                oxipng::ColorType::Indexed { palette },
                oxipng::BitDepth::Eight,
                indices.into_raw(),
            )?
        }
        (None, DynamicImage::ImageLuma8(grey)) => oxipng::RawImage::new(
            width,
            height,
            oxipng::ColorType::Grayscale {
                transparent_shade: None,
            },
            oxipng::BitDepth::Eight,
            grey.as_raw().clone(),
        )?,
        (None, DynamicImage::ImageLumaA8(grey)) => oxipng::RawImage::new(
            width,
            height,
            oxipng::ColorType::GrayscaleAlpha,
            oxipng::BitDepth::Eight,
            grey.as_raw().clone(),
        )?,
        (None, other) if other.color().has_alpha() => oxipng::RawImage::new(
            width,
            height,
            oxipng::ColorType::RGBA,
            oxipng::BitDepth::Eight,
            other.to_rgba8().into_raw(),
        )?,
        (None, other) => oxipng::RawImage::new(
            width,
            height,
            oxipng::ColorType::RGB {
                transparent_color: None,
            },
            oxipng::BitDepth::Eight,
            other.to_rgb8().into_raw(),
        )?,
    };
    if let Some(icc) = embed.icc {
        raw.add_icc_profile(icc);
    }
    if let Some(exif) = &embed.exif {
        raw.add_png_chunk(*b"eXIf", exif.clone());
    }
    // `encoding` is resolved: the compression is always named by now.
    let level = encoding
        .compression
        .unwrap_or(opossum_ops::EncodingDefaults::default().png_compression);
    let options = oxipng::Options::from_preset(level);
    raw.create_optimized_png(&options)
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
                    lossless: true,
                    ..Encoding::default_for(OutputFormat::Webp)
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
            lossless: true,
            ..Encoding::default_for(OutputFormat::Webp)
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
                quality: Some(q),
                ..Encoding::default_for(OutputFormat::Jpeg)
            };
            encode(&src, encoding, &Limits::default()).unwrap().len()
        };
        assert!(size(30) < size(95));
    }
}
