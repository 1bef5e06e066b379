//! What `keep:` writes into an output: the source's ICC profile (`keep:icc`) and an EXIF block
//! with its copyright and artist (`keep:copyright`). Each format takes them through the library
//! that writes the format: PNG through oxipng's own chunks and AVIF's EXIF through libheif, at
//! encode time (see `encode`); JPEG and WebP afterwards, as marker segments and chunks written
//! by img-parts, which also turns a simple WebP into the extended form these need.
//!
//! AVIF does not get the profile: libheif-rs 0.20 (the newest whose bindings build against
//! Debian 12's libheif 1.15) hands libheif the profile type without its terminating NUL, so
//! libheif reads past it and refuses the profile at random (fixed in libheif-rs 0.21, which
//! needs libheif 1.16). An AVIF output's pixels are converted to sRGB instead, as for GIF.
//!
//! A profile is embedded only where it describes the pixels that are written: an RGB profile
//! in an RGB output, a grey one in a grey JPEG or PNG. Where the format cannot carry it (GIF,
//! traced SVG) or the profile does not fit the output, the pixels, left in the source's colour
//! space by the decoder, are converted to sRGB before encoding instead: `keep:icc` never
//! changes how an image looks, only where its colours are defined.

use image::DynamicImage;
use opossum_ops::{Keep, OutputFormat};

use crate::ImageError;
use crate::metadata::SourceMetadata;

/// The blocks one output carries; empty for almost every request.
#[derive(Debug, Default)]
pub(crate) struct Embed<'a> {
    /// an ICC profile describing the pixels written
    pub icc: Option<&'a [u8]>,
    /// an EXIF block (TIFF-structured)
    pub exif: Option<Vec<u8>>,
}

/// What `keep:` asks of one output: the blocks to embed, and whether the pixels must first be
/// converted to sRGB from the source profile they were left in.
#[derive(Debug, Default)]
pub(crate) struct Plan<'a> {
    pub embed: Embed<'a>,
    pub convert_from: Option<&'a [u8]>,
}

/// The colour spaces of profiles that matter here.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ProfileSpace {
    Rgb,
    Grey,
    Other,
}

fn profile_space(icc: &[u8]) -> Option<ProfileSpace> {
    let profile = lcms2::Profile::new_icc(icc).ok()?;
    Some(match profile.color_space() {
        lcms2::ColorSpaceSignature::RgbData => ProfileSpace::Rgb,
        lcms2::ColorSpaceSignature::GrayData => ProfileSpace::Grey,
        _ => ProfileSpace::Other,
    })
}

impl<'a> Plan<'a> {
    /// The plan for writing `image` as `format` when the chain keeps `keep` of a source with
    /// `metadata`.
    pub(crate) fn new(
        keep: Keep,
        metadata: &'a SourceMetadata,
        format: OutputFormat,
        image: &DynamicImage,
    ) -> Plan<'a> {
        let carries_exif = matches!(
            format,
            OutputFormat::Jpeg | OutputFormat::Png | OutputFormat::Webp | OutputFormat::Avif
        );
        let carries_icc = matches!(
            format,
            OutputFormat::Jpeg | OutputFormat::Png | OutputFormat::Webp
        );
        let mut plan = Plan::default();
        if keep.copyright && carries_exif {
            plan.embed.exif = metadata.copyright_exif();
        }
        let Some(icc) = metadata.icc().filter(|_| keep.icc) else {
            return plan;
        };
        let grey = matches!(
            image,
            DynamicImage::ImageLuma8(_) | DynamicImage::ImageLumaA8(_)
        );
        match profile_space(icc) {
            Some(ProfileSpace::Rgb) if carries_icc && !grey => plan.embed.icc = Some(icc),
            // Only JPEG and PNG write grey pixels as grey.
            Some(ProfileSpace::Grey)
                if grey && matches!(format, OutputFormat::Jpeg | OutputFormat::Png) =>
            {
                plan.embed.icc = Some(icc)
            }
            // RGB pixels the decoder left unconverted, in a format that cannot say so.
            Some(ProfileSpace::Rgb) => plan.convert_from = Some(icc),
            // Converted at decode whatever the chain says (CMYK), or never converted (grey).
            _ => {}
        }
        plan
    }
}

impl Embed<'_> {
    fn is_empty(&self) -> bool {
        self.icc.is_none() && self.exif.is_none()
    }

    /// Writes the blocks into an encoded JPEG or WebP (PNG and AVIF take them while encoding).
    pub(crate) fn write_into(
        &self,
        bytes: Vec<u8>,
        format: OutputFormat,
    ) -> Result<Vec<u8>, ImageError> {
        if self.is_empty() {
            return Ok(bytes);
        }
        match format {
            OutputFormat::Jpeg => self.write_into_jpeg(bytes),
            OutputFormat::Webp => self.write_into_webp(bytes),
            _ => Ok(bytes),
        }
    }

    fn write_into_jpeg(&self, bytes: Vec<u8>) -> Result<Vec<u8>, ImageError> {
        let mut jpeg =
            img_parts::jpeg::Jpeg::from_bytes(bytes.into()).map_err(|e| internal("jpeg", &e))?;
        self.write(&mut jpeg);
        Ok(jpeg.encoder().bytes().to_vec())
    }

    fn write_into_webp(&self, bytes: Vec<u8>) -> Result<Vec<u8>, ImageError> {
        let mut webp =
            img_parts::webp::WebP::from_bytes(bytes.into()).map_err(|e| internal("webp", &e))?;
        self.write(&mut webp);
        Ok(webp.encoder().bytes().to_vec())
    }

    fn write(&self, image: &mut (impl img_parts::ImageICC + img_parts::ImageEXIF)) {
        if let Some(icc) = self.icc {
            image.set_icc_profile(Some(img_parts::Bytes::copy_from_slice(icc)));
        }
        if let Some(exif) = &self.exif {
            image.set_exif(Some(img_parts::Bytes::copy_from_slice(exif)));
        }
    }
}

fn internal(format: &str, error: &img_parts::Error) -> ImageError {
    ImageError::Internal {
        message: format!("{format} metadata: {error}"),
    }
}
