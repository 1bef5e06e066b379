//! JPEG XL input through jxl-oxide, a pure-Rust decoder (no C++ to build, unlike libjxl).
//!
//! The container and frame headers are read first and the size is checked against the pixel
//! limit before any frame is rendered. A file cut short is an error rather than the partial
//! picture a progressive decoder could show: a cached variant of half an image would be served
//! for as long as the variant lives. An animation gives its first frame. Pixels come out in
//! the colour space jxl-oxide renders to (the file's own, or sRGB for CMYK and XYB files) and
//! are converted to sRGB through the rendered ICC profile unless they are sRGB already.

use std::io::Cursor;

use image::DynamicImage;
use jxl_oxide::{EnumColourEncoding, JxlImage, RenderingIntent};

use crate::decode::{Decoded, SourceFormat, check_pixels};
use crate::metadata::SourceMetadata;
use crate::{ImageError, Limits};

/// CICP code points of sRGB: BT.709 primaries, the sRGB transfer function.
const SRGB_PRIMARIES: u8 = 1;
const SRGB_TRANSFER: u8 = 13;

pub(crate) fn decode(input: &[u8], limits: &Limits) -> Result<Decoded, ImageError> {
    let corrupt = |message: String| ImageError::Corrupt {
        format: "jxl",
        message,
    };
    let failed =
        |e: Box<dyn std::error::Error + Send + Sync>| corrupt(e.to_string().to_lowercase());
    let mut image = JxlImage::builder()
        .read(Cursor::new(input))
        .map_err(failed)?;
    check_pixels(
        u64::from(image.width()),
        u64::from(image.height()),
        limits.max_pixels,
    )?;
    if image.num_loaded_keyframes() == 0 {
        return Err(corrupt("truncated: the first frame is incomplete".into()));
    }
    if image.pixel_format().has_black() {
        image.request_color_encoding(EnumColourEncoding::srgb(RenderingIntent::Relative));
    }
    let render = image.render_frame(0).map_err(failed)?;
    let mut stream = render.stream();
    let (width, height, channels) = (stream.width(), stream.height(), stream.channels());
    let mut pixels = vec![0u8; width as usize * height as usize * channels as usize];
    stream.write_to_buffer::<u8>(&mut pixels);
    let buffer_error = || ImageError::Internal {
        message: "jxl pixel buffer has the wrong size".into(),
    };
    let decoded = match channels {
        1 => DynamicImage::ImageLuma8(
            image::GrayImage::from_raw(width, height, pixels).ok_or_else(buffer_error)?,
        ),
        2 => DynamicImage::ImageLumaA8(
            image::GrayAlphaImage::from_raw(width, height, pixels).ok_or_else(buffer_error)?,
        ),
        3 => DynamicImage::ImageRgb8(
            image::RgbImage::from_raw(width, height, pixels).ok_or_else(buffer_error)?,
        ),
        4 => DynamicImage::ImageRgba8(
            image::RgbaImage::from_raw(width, height, pixels).ok_or_else(buffer_error)?,
        ),
        other => {
            return Err(ImageError::Unsupported {
                format: "jxl",
                message: format!("{other} colour channels"),
            });
        }
    };
    let srgb = image
        .rendered_cicp()
        .is_some_and(|[primaries, transfer, ..]| {
            primaries == SRGB_PRIMARIES && transfer == SRGB_TRANSFER
        });
    // The profile the pixels were rendered in, which `decode` converts to sRGB from (unless
    // `keep:icc`); none when they are sRGB already.
    let icc = (!srgb).then(|| image.rendered_icc());
    Ok(Decoded {
        metadata: SourceMetadata::new(icc, None),
        ..Decoded::still(decoded, SourceFormat::Jxl)
    })
}
