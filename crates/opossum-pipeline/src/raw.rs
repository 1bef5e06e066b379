//! Intermediate results as raw pixels: re-encoding them (even losslessly) would cost more than
//! the step they save. MessagePack with the pixels as one binary field.

use opossum_image::{DynamicImage, SourceFormat, SourceInfo};
use serde::{Deserialize, Serialize};

pub(crate) const MEDIA_TYPE: &str = "application/x-opossum-raw";

#[derive(Serialize, Deserialize)]
struct Raw {
    width: u32,
    height: u32,
    channels: u8,
    source_format: String,
    source_width: u32,
    source_height: u32,
    #[serde(default)]
    metadata: opossum_image::SourceMetadata,
    #[serde(with = "serde_bytes")]
    pixels: Vec<u8>,
}

pub(crate) fn encode(image: &DynamicImage, source: &SourceInfo) -> Vec<u8> {
    let raw = Raw {
        width: image.width(),
        height: image.height(),
        channels: image.color().channel_count(),
        source_format: source.format.name().to_string(),
        source_width: source.width,
        source_height: source.height,
        metadata: source.metadata.clone(),
        pixels: image.as_bytes().to_vec(),
    };
    rmp_serde::to_vec_named(&raw).unwrap_or_default()
}

pub(crate) fn decode(bytes: &[u8]) -> Result<(DynamicImage, SourceInfo), String> {
    let raw: Raw = rmp_serde::from_slice(bytes).map_err(|e| e.to_string())?;
    let (w, h, pixels) = (raw.width, raw.height, raw.pixels);
    let wrong = || format!("{}x{}x{} raw image has the wrong size", w, h, raw.channels);
    let image = match raw.channels {
        1 => DynamicImage::ImageLuma8(image::GrayImage::from_raw(w, h, pixels).ok_or_else(wrong)?),
        2 => DynamicImage::ImageLumaA8(
            image::GrayAlphaImage::from_raw(w, h, pixels).ok_or_else(wrong)?,
        ),
        3 => DynamicImage::ImageRgb8(image::RgbImage::from_raw(w, h, pixels).ok_or_else(wrong)?),
        4 => DynamicImage::ImageRgba8(image::RgbaImage::from_raw(w, h, pixels).ok_or_else(wrong)?),
        n => return Err(format!("raw image with {n} channels")),
    };
    let format = SourceFormat::from_name(&raw.source_format)
        .ok_or_else(|| format!("unknown source format {}", raw.source_format))?;
    Ok((
        image,
        SourceInfo {
            format,
            width: raw.source_width,
            height: raw.source_height,
            metadata: raw.metadata,
        },
    ))
}
