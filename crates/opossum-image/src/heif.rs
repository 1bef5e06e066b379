//! AVIF and HEIC input, and AVIF output, through libheif.
//!
//! Why libheif rather than the `image` crate's `avif-native` decoder (mp4parse and dav1d): that
//! decoder's dav1d binding wants libdav1d 1.3 while Debian 12 ships 1.0, and it reads AVIF only.
//! libheif (Debian's 1.15) reads both containers, assembles grid images, applies the `clap`,
//! `irot` and `imir` transforms and the alpha auxiliary image, decodes AV1 with libdav1d and
//! HEVC with libde265, and converts to RGB with the file's own matrix coefficients. Sources of
//! more than 8 bits per channel come out at 8, as everything does in this engine.
//!
//! The same rule as every decoder: the primary image's size (after its transforms) is checked
//! against the pixel limit before any pixel is decoded. The container is parsed from the
//! caller's buffer without a copy.
//!
//! AVIF is encoded by libaom through libheif's encoder plugin (Debian's libaom 3.6), chosen by
//! measurement over rav1e, which the `image` crate uses (`avif-vs-avifenc.sh` in
//! opossum-bench measures both against `avifenc`; the figures are in issue 17's closing
//! note). One thread, `tune=psnr`, 4:2:0; libheif converts RGB to YCbCr (BT.601, full range)
//! and writes the container.

use image::DynamicImage;
use libheif_rs::{
    Channel, ColorSpace, CompressionFormat, DecodingOptions, EncoderParameterValue, EncoderQuality,
    HeifContext, HeifError, HeifErrorCode, LibHeif, RgbChroma,
};

use crate::decode::{Decoded, SourceFormat, check_pixels};
use crate::metadata::SourceMetadata;
use crate::{ImageError, Limits};

/// libheif, initialised once for the process: `LibHeif::new` and its drop run `heif_init` and
/// `heif_deinit`, which register and drop every codec plugin, so a handle per image would do
/// that work per image (and a context must not outlive the last handle).
fn library() -> &'static LibHeif {
    static LIBRARY: std::sync::OnceLock<LibHeif> = std::sync::OnceLock::new();
    LIBRARY.get_or_init(LibHeif::new)
}

/// Whether `input` starts with an ISO-BMFF `ftyp` box naming an AVIF or HEIF brand, and which.
/// A file naming both (a `mif1` HEIF that carries AV1) counts as AVIF.
pub(crate) fn sniff(input: &[u8]) -> Option<SourceFormat> {
    if input.get(4..8)? != b"ftyp" {
        return None;
    }
    let size = u32::from_be_bytes(input[0..4].try_into().ok()?) as usize;
    let end = size.clamp(16, 1024).min(input.len());
    let major = input.get(8..12)?;
    let compatible = input.get(16..end).unwrap_or_default().chunks_exact(4);
    let mut heif = false;
    for brand in std::iter::once(major).chain(compatible) {
        match brand {
            b"avif" | b"avis" => return Some(SourceFormat::Avif),
            b"heic" | b"heix" | b"heim" | b"heis" | b"hevc" | b"hevx" | b"hevm" | b"hevs"
            | b"mif1" | b"msf1" => heif = true,
            _ => {}
        }
    }
    heif.then_some(SourceFormat::Heic)
}

/// Decodes the primary image of an AVIF or HEIC file to 8-bit sRGB, upright.
pub(crate) fn decode(
    input: &[u8],
    format: SourceFormat,
    limits: &Limits,
) -> Result<Decoded, ImageError> {
    let name = format.name();
    let failed = |e: HeifError| {
        let message = e.message.to_lowercase();
        match e.code {
            HeifErrorCode::UnsupportedFeature
            | HeifErrorCode::UnsupportedFileType
            | HeifErrorCode::DecoderPluginError => ImageError::Unsupported {
                format: name,
                message,
            },
            _ => ImageError::Corrupt {
                format: name,
                message,
            },
        }
    };
    let library = library();
    let context = HeifContext::read_from_bytes(input).map_err(failed)?;
    let handle = context.primary_image_handle().map_err(failed)?;
    check_pixels(
        u64::from(handle.width()),
        u64::from(handle.height()),
        limits.max_pixels,
    )?;
    let alpha = handle.has_alpha_channel();
    let mut options = DecodingOptions::new();
    if let Some(options) = options.as_mut() {
        options.set_convert_hdr_to_8bit(true);
    }
    // Interleaved 8-bit RGB(A): libheif converts from YCbCr (or monochrome) with the file's
    // matrix and range, and scales more than 8 bits down.
    let chroma = if alpha {
        RgbChroma::Rgba
    } else {
        RgbChroma::Rgb
    };
    let decoded = library
        .decode(&handle, ColorSpace::Rgb(chroma), options)
        .map_err(failed)?;
    let planes = decoded.planes();
    let plane = planes.interleaved.ok_or_else(|| ImageError::Internal {
        message: format!("{name} decoder returned no interleaved plane"),
    })?;
    let channels: usize = if alpha { 4 } else { 3 };
    let (width, height) = (plane.width, plane.height);
    let row = width as usize * channels;
    let needed = plane.stride * (height as usize).saturating_sub(1) + row;
    if plane.stride < row || plane.data.len() < needed {
        return Err(ImageError::Internal {
            message: format!("{name} decoder returned a plane smaller than {width}x{height}"),
        });
    }
    let mut pixels = Vec::with_capacity(row * height as usize);
    for y in 0..height as usize {
        pixels.extend_from_slice(&plane.data[y * plane.stride..y * plane.stride + row]);
    }
    let buffer_error = || ImageError::Internal {
        message: format!("{name} pixel buffer has the wrong size"),
    };
    // Left in the file's colour space: `decode` converts to sRGB unless `keep:icc` asks not to.
    let icc = handle.color_profile_raw().map(|profile| profile.data);
    let image = if alpha {
        DynamicImage::ImageRgba8(
            image::RgbaImage::from_raw(width, height, pixels).ok_or_else(buffer_error)?,
        )
    } else {
        DynamicImage::ImageRgb8(
            image::RgbImage::from_raw(width, height, pixels).ok_or_else(buffer_error)?,
        )
    };
    // libheif's Exif item starts with the offset of the TIFF header within it.
    let mut ids = [0; 1];
    let exif = (handle.metadata_block_ids(&mut ids, b"Exif") == 1)
        .then(|| handle.metadata(ids[0]).ok())
        .flatten()
        .and_then(|block| {
            let offset = u32::from_be_bytes(block.get(..4)?.try_into().ok()?) as usize;
            block.get(4 + offset..).map(<[u8]>::to_vec)
        });
    Ok(Decoded {
        metadata: SourceMetadata::new(icc, exif),
        ..Decoded::still(image, format)
    })
}

/// AVIF of `image` at `quality` (1-100) and `speed` (0-10; libaom's fastest is 9), alpha kept,
/// with the ICC profile and EXIF `keep:` asks for.
pub(crate) fn encode_avif(
    image: &DynamicImage,
    quality: u8,
    speed: u8,
    embed: &crate::embed::Embed,
) -> Result<Vec<u8>, ImageError> {
    let failed = |e: HeifError| ImageError::Internal {
        message: format!("avif encoder: {}", e.message.to_lowercase()),
    };
    let alpha = image.color().has_alpha();
    let (width, height) = (image.width(), image.height());
    let (pixels, chroma, channels) = if alpha {
        (image.to_rgba8().into_raw(), RgbChroma::Rgba, 4)
    } else {
        (image.to_rgb8().into_raw(), RgbChroma::Rgb, 3)
    };
    let mut picture =
        libheif_rs::Image::new(width, height, ColorSpace::Rgb(chroma)).map_err(failed)?;
    picture
        .create_plane(Channel::Interleaved, width, height, 8)
        .map_err(failed)?;
    let planes = picture.planes_mut();
    let plane = planes.interleaved.ok_or_else(|| ImageError::Internal {
        message: "avif encoder: no interleaved plane".into(),
    })?;
    let row = width as usize * channels;
    if plane.stride < row
        || plane.data.len() < plane.stride * (height as usize).saturating_sub(1) + row
    {
        return Err(ImageError::Internal {
            message: format!("avif encoder: a plane smaller than {width}x{height}"),
        });
    }
    for (y, source) in pixels.chunks_exact(row).enumerate() {
        plane.data[y * plane.stride..y * plane.stride + row].copy_from_slice(source);
    }
    if let Some(icc) = embed.icc {
        let profile =
            libheif_rs::ColorProfileRaw::new(libheif_rs::color_profile_types::PROF, icc.to_vec());
        picture.set_color_profile_raw(&profile).map_err(failed)?;
    }
    let mut encoder = library()
        .encoder_for_format(CompressionFormat::Av1)
        .map_err(failed)?;
    encoder
        .set_quality(EncoderQuality::Lossy(quality.min(100)))
        .map_err(failed)?;
    for (name, value) in [
        ("speed", EncoderParameterValue::Int(i32::from(speed.min(9)))),
        ("threads", EncoderParameterValue::Int(1)),
        ("tune", EncoderParameterValue::String("psnr".into())),
        ("chroma", EncoderParameterValue::String("420".into())),
    ] {
        encoder.set_parameter_value(name, value).map_err(failed)?;
    }
    let mut context = HeifContext::new().map_err(failed)?;
    let handle = context
        .encode_image(&picture, &mut encoder, None)
        .map_err(failed)?;
    if let Some(exif) = &embed.exif {
        context.add_exif_metadata(&handle, exif).map_err(failed)?;
    }
    context.write_to_bytes().map_err(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ftyp(major: &[u8; 4], compatible: &[&[u8; 4]]) -> Vec<u8> {
        let size = 16 + 4 * compatible.len();
        let mut bytes = (size as u32).to_be_bytes().to_vec();
        bytes.extend_from_slice(b"ftyp");
        bytes.extend_from_slice(major);
        bytes.extend_from_slice(&[0, 0, 0, 0]);
        for brand in compatible {
            bytes.extend_from_slice(*brand);
        }
        bytes
    }

    #[test]
    fn sniffs_avif_and_heic_by_brand() {
        assert_eq!(sniff(&ftyp(b"avif", &[])), Some(SourceFormat::Avif));
        assert_eq!(
            sniff(&ftyp(b"mif1", &[b"mif1", b"avif"])),
            Some(SourceFormat::Avif)
        );
        assert_eq!(
            sniff(&ftyp(b"heic", &[b"mif1", b"heic"])),
            Some(SourceFormat::Heic)
        );
        assert_eq!(sniff(&ftyp(b"mp42", &[b"isom"])), None);
        assert_eq!(sniff(b"ftyp"), None);
        // A box size far past the end of the input reads only what is there.
        let mut huge = ftyp(b"mif1", &[b"heic"]);
        huge[0..4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(sniff(&huge), Some(SourceFormat::Heic));
    }
}
