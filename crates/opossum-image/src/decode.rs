//! Safe decoding to an upright 8-bit sRGB image (or, for `keep:icc`, an image left in the
//! colour space of its ICC profile).
//!
//! Order of checks, cheapest first, all before the pixel buffer exists: byte size, format sniff,
//! header dimensions against the pixel limit. The `image` crate additionally gets an allocation
//! limit, so a decoder that allocates for metadata (huge PNG text chunks, say) is stopped too.
//!
//! JPEGs go through libjpeg-turbo rather than the `image` crate because it can decode at 1/2, 1/4
//! or 1/8 scale in the DCT domain ("shrink-on-load", as libvips does): a 24 MP photo made into a
//! 200 px thumbnail is decoded at 750x500 instead of 6000x4000, about 40x less work and memory.
//! The scale always leaves at least a factor of two for the final Lanczos resize, which is what
//! keeps quality indistinguishable from a full decode.
//!
//! The decoders hand over pixels in the source's colour space with its raw ICC profile and EXIF
//! ([`SourceMetadata`]); the conversion to sRGB is one step after them, skipped when the chain
//! keeps the profile. CMYK is the exception: it is always converted, there being no CMYK output.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader};
use opossum_ops::{Chain, Operation, ResizeMode};

use crate::animation::{self, Picture, Timing};
use crate::metadata::SourceMetadata;
use crate::{ImageError, Limits, svg};

/// Formats the engine reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceFormat {
    /// JPEG, decoded by libjpeg-turbo
    Jpeg,
    /// PNG
    Png,
    /// GIF, still or animated
    Gif,
    /// WebP, still or animated
    Webp,
    /// BMP
    Bmp,
    /// ICO
    Ico,
    /// TIFF
    Tiff,
    /// AVIF, decoded by libheif with libdav1d
    Avif,
    /// HEIC and other HEIF files, decoded by libheif with libde265
    Heic,
    /// JPEG XL, decoded by jxl-oxide
    Jxl,
    /// SVG, rendered by resvg
    Svg,
}

impl SourceFormat {
    /// The format with this [`SourceFormat::name`].
    pub fn from_name(name: &str) -> Option<SourceFormat> {
        [
            SourceFormat::Jpeg,
            SourceFormat::Png,
            SourceFormat::Gif,
            SourceFormat::Webp,
            SourceFormat::Bmp,
            SourceFormat::Ico,
            SourceFormat::Tiff,
            SourceFormat::Avif,
            SourceFormat::Heic,
            SourceFormat::Jxl,
            SourceFormat::Svg,
        ]
        .into_iter()
        .find(|f| f.name() == name)
    }

    /// Lowercase name, used in errors and the analysis JSON.
    pub fn name(self) -> &'static str {
        match self {
            SourceFormat::Jpeg => "jpeg",
            SourceFormat::Png => "png",
            SourceFormat::Gif => "gif",
            SourceFormat::Webp => "webp",
            SourceFormat::Bmp => "bmp",
            SourceFormat::Ico => "ico",
            SourceFormat::Tiff => "tiff",
            SourceFormat::Avif => "avif",
            SourceFormat::Heic => "heic",
            SourceFormat::Jxl => "jxl",
            SourceFormat::Svg => "svg",
        }
    }

    fn image_format(self) -> Option<ImageFormat> {
        Some(match self {
            SourceFormat::Jpeg => ImageFormat::Jpeg,
            SourceFormat::Png => ImageFormat::Png,
            SourceFormat::Gif => ImageFormat::Gif,
            SourceFormat::Webp => ImageFormat::WebP,
            SourceFormat::Bmp => ImageFormat::Bmp,
            SourceFormat::Ico => ImageFormat::Ico,
            SourceFormat::Tiff => ImageFormat::Tiff,
            SourceFormat::Avif | SourceFormat::Heic | SourceFormat::Jxl | SourceFormat::Svg => {
                return None;
            }
        })
    }
}

/// How large the decoded image needs to be: the box the first operation will resize into.
/// Decoders may return anything at least this large (in the resize's sense) instead of the
/// full-size image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeHint {
    /// box width (0 = unconstrained)
    pub width: u32,
    /// box height (0 = unconstrained)
    pub height: u32,
    /// how the box will be filled
    pub mode: ResizeMode,
    /// whether the resize may scale up (a source smaller than the box is decoded whole anyway;
    /// an SVG is rendered larger than its own size)
    pub enlarge: bool,
}

/// The hint for a chain: when its first operation is a resize, because any other first step
/// (a crop, a blur in pixel units) needs the full-resolution image; and for a bare `analyze`,
/// which only needs its small working copy (a 50 MP source would otherwise cost 200 MB for
/// statistics of 65,536 pixels).
pub fn decode_hint(chain: &Chain) -> Option<DecodeHint> {
    if chain.is_analysis() && chain.pixel_ops().is_empty() {
        return Some(DecodeHint {
            width: crate::analyze::WORKING_EDGE,
            height: crate::analyze::WORKING_EDGE,
            mode: ResizeMode::Fit,
            enlarge: false,
        });
    }
    match chain.pixel_ops().first()? {
        Operation::Resize {
            width,
            height,
            mode,
            enlarge,
            ..
        } => Some(DecodeHint {
            width: *width,
            height: *height,
            mode: *mode,
            enlarge: *enlarge,
        }),
        Operation::Thumbnail { size } => Some(DecodeHint {
            width: *size,
            height: *size,
            mode: ResizeMode::Fit,
            enlarge: false,
        }),
        _ => None,
    }
}

/// A decoded image.
#[derive(Debug, Clone)]
pub struct Decoded {
    /// upright, 8 bits per channel (Luma8, LumaA8, Rgb8 or Rgba8), sRGB unless decoded for a
    /// chain with `keep:icc`; an animation's first frame
    pub image: DynamicImage,
    /// an animation's other frames (RGBA, each the whole canvas); empty for a still image
    pub more_frames: Vec<DynamicImage>,
    /// an animation's timing; `None` for a still image
    pub timing: Option<Timing>,
    /// what the bytes were
    pub format: SourceFormat,
    /// full width before any shrink-on-load, upright
    pub source_width: u32,
    /// full height before any shrink-on-load, upright
    pub source_height: u32,
    /// its raw ICC profile and EXIF block
    pub metadata: SourceMetadata,
}

impl Decoded {
    /// The image or animation, for [`Picture::apply`].
    pub fn into_picture(self) -> Picture {
        match self.timing {
            Some(timing) => {
                let mut frames = Vec::with_capacity(1 + self.more_frames.len());
                frames.push(self.image);
                frames.extend(self.more_frames);
                Picture::animated(frames, timing)
            }
            None => Picture::still(self.image),
        }
    }
}

/// Decodes `input` within `limits` to sRGB. With a `hint`, JPEG and SVG sources are decoded no
/// larger than needed for it.
pub fn decode(
    input: &[u8],
    limits: &Limits,
    hint: Option<DecodeHint>,
) -> Result<Decoded, ImageError> {
    let mut decoded = decode_source(input, limits, hint, None)?;
    decoded.convert_to_srgb();
    Ok(decoded)
}

/// Decodes `input` for `chain`: no larger than its first resize needs ([`decode_hint`]), no
/// further into an animation than its `frame:N` (`frames_needed`), and converted to sRGB
/// unless it keeps the ICC profile (`keep:icc`).
pub fn decode_for(input: &[u8], chain: &Chain, limits: &Limits) -> Result<Decoded, ImageError> {
    let mut decoded = decode_source(input, limits, decode_hint(chain), frames_needed(chain))?;
    if !chain.keep().icc {
        decoded.convert_to_srgb();
    }
    Ok(decoded)
}

/// How many of an animation's frames `chain` needs: frames 0 to N for a chain that starts with
/// `frame:N` (GIF frames build on the ones before them, so those are decoded; none after them
/// is), every frame otherwise (`None`).
fn frames_needed(chain: &Chain) -> Option<u32> {
    match chain.pixel_ops().first()? {
        Operation::Frame(index) => Some(index.saturating_add(1)),
        _ => None,
    }
}

/// Decodes `input` to pixels in the source's own colour space; of an animation, the first
/// `frames` frames (`None`: all).
fn decode_source(
    input: &[u8],
    limits: &Limits,
    hint: Option<DecodeHint>,
    frames: Option<u32>,
) -> Result<Decoded, ImageError> {
    if input.len() as u64 > limits.max_bytes {
        return Err(ImageError::TooManyBytes {
            size: input.len() as u64,
            limit: limits.max_bytes,
        });
    }
    let format = sniff(input).ok_or_else(|| ImageError::UnknownFormat {
        magic: input.iter().take(8).map(|b| format!("{b:02x}")).collect(),
    })?;
    match format {
        SourceFormat::Jpeg => decode_jpeg(input, limits, hint),
        SourceFormat::Svg => svg::render(input, limits, hint),
        SourceFormat::Gif | SourceFormat::Webp => {
            match animation::decode(input, format, limits, frames)? {
                Some((frames, timing)) => Ok(Decoded::frames(frames, timing, format)),
                None => decode_with_image_crate(input, format, limits),
            }
        }
        SourceFormat::Avif | SourceFormat::Heic => crate::heif::decode(input, format, limits),
        SourceFormat::Jxl => crate::jxl::decode(input, limits),
        other => decode_with_image_crate(input, other, limits),
    }
}

impl Decoded {
    /// Converts a still image tagged with an RGB profile to sRGB (an animation's frames are
    /// sRGB already: GIF has no profiles, and animated WebP's are not read).
    fn convert_to_srgb(&mut self) {
        if let Some(icc) = self.metadata.icc() {
            convert_to_srgb(&mut self.image, icc);
        }
    }

    /// A still image as decoded, at its full size.
    pub(crate) fn still(image: DynamicImage, format: SourceFormat) -> Decoded {
        Decoded {
            source_width: image.width(),
            source_height: image.height(),
            image,
            more_frames: Vec::new(),
            timing: None,
            format,
            metadata: SourceMetadata::default(),
        }
    }

    /// The frames of a GIF or WebP animation; one frame is a still image.
    fn frames(frames: Vec<DynamicImage>, timing: Timing, format: SourceFormat) -> Decoded {
        let mut frames = frames.into_iter();
        let image = frames.next().expect("at least one frame");
        let more_frames: Vec<DynamicImage> = frames.collect();
        Decoded {
            timing: (!more_frames.is_empty()).then_some(timing),
            more_frames,
            ..Decoded::still(image, format)
        }
    }
}

fn sniff(input: &[u8]) -> Option<SourceFormat> {
    if let Some(format) = crate::heif::sniff(input) {
        return Some(format);
    }
    // A bare JPEG XL codestream, or the JPEG XL container's signature box.
    if input.starts_with(&[0xFF, 0x0A]) || input.starts_with(b"\0\0\0\x0cJXL \r\n\x87\n") {
        return Some(SourceFormat::Jxl);
    }
    if let Ok(format) = image::guess_format(input) {
        return Some(match format {
            ImageFormat::Jpeg => SourceFormat::Jpeg,
            ImageFormat::Png => SourceFormat::Png,
            ImageFormat::Gif => SourceFormat::Gif,
            ImageFormat::WebP => SourceFormat::Webp,
            ImageFormat::Bmp => SourceFormat::Bmp,
            ImageFormat::Ico => SourceFormat::Ico,
            ImageFormat::Tiff => SourceFormat::Tiff,
            _ => return None,
        });
    }
    svg::looks_like_svg(input).then_some(SourceFormat::Svg)
}

pub(crate) fn check_pixels(width: u64, height: u64, limit: u64) -> Result<(), ImageError> {
    let pixels = width.saturating_mul(height);
    if pixels > limit || width == 0 || height == 0 {
        if width == 0 || height == 0 {
            return Err(ImageError::Corrupt {
                format: "image",
                message: format!("dimensions {width}x{height} are empty"),
            });
        }
        return Err(ImageError::TooManyPixels {
            width,
            height,
            pixels,
            limit,
        });
    }
    Ok(())
}

/// The size a resize into `hint` would produce from a `width` x `height` source (no enlarging
/// unless the hint says so; `contain` scales as `fit`, its margins come after).
pub(crate) fn target_size(width: u32, height: u32, hint: DecodeHint) -> (u32, u32) {
    let (w, h) = (f64::from(width), f64::from(height));
    let (bw, bh) = (f64::from(hint.width), f64::from(hint.height));
    let scale = match hint.mode {
        ResizeMode::Force => return (hint.width.min(width), hint.height.min(height)),
        ResizeMode::Fit | ResizeMode::Contain { .. } => match (hint.width, hint.height) {
            (0, _) => bh / h,
            (_, 0) => bw / w,
            _ => (bw / w).min(bh / h),
        },
        ResizeMode::Fill => (bw / w).max(bh / h),
    };
    let scale = if hint.enlarge { scale } else { scale.min(1.0) };
    (
        ((w * scale).round() as u32).max(1),
        ((h * scale).round() as u32).max(1),
    )
}

fn decode_jpeg(
    input: &[u8],
    limits: &Limits,
    hint: Option<DecodeHint>,
) -> Result<Decoded, ImageError> {
    let corrupt = |e: turbojpeg::Error| ImageError::Corrupt {
        format: "jpeg",
        message: e.to_string().to_lowercase(),
    };
    let mut decompressor = turbojpeg::Decompressor::new().map_err(|e| ImageError::Internal {
        message: format!("libjpeg-turbo init: {e}"),
    })?;
    let header = decompressor.read_header(input).map_err(corrupt)?;
    check_pixels(header.width as u64, header.height as u64, limits.max_pixels)?;
    // Progressive JPEGs with thousands of scans are a known CPU denial of service;
    // libjpeg-turbo's documentation suggests a limit of this order for untrusted input.
    decompressor.set_scan_limit(500).map_err(corrupt)?;

    let metadata = JpegMetadata::read(input);
    let orientation = metadata.orientation;
    let swaps_axes = matches!(
        orientation,
        image::metadata::Orientation::Rotate90
            | image::metadata::Orientation::Rotate270
            | image::metadata::Orientation::Rotate90FlipH
            | image::metadata::Orientation::Rotate270FlipH
    );
    let (upright_w, upright_h) = if swaps_axes {
        (header.height as u32, header.width as u32)
    } else {
        (header.width as u32, header.height as u32)
    };
    let scale = match hint {
        Some(hint) => {
            let (tw, th) = target_size(upright_w, upright_h, hint);
            let (tw, th) = if swaps_axes { (th, tw) } else { (tw, th) };
            shrink_on_load_factor(header.width, header.height, tw as usize, th as usize)
        }
        None => turbojpeg::ScalingFactor::ONE,
    };
    decompressor.set_scaling_factor(scale).map_err(corrupt)?;
    let scaled = header.scaled(scale);
    let (format, channels) = match header.colorspace {
        turbojpeg::Colorspace::Gray => (turbojpeg::PixelFormat::GRAY, 1),
        turbojpeg::Colorspace::CMYK | turbojpeg::Colorspace::YCCK => {
            (turbojpeg::PixelFormat::CMYK, 4)
        }
        _ => (turbojpeg::PixelFormat::RGB, 3),
    };
    let mut pixels = vec![0u8; scaled.width * scaled.height * channels];
    let target = turbojpeg::Image {
        pixels: pixels.as_mut_slice(),
        width: scaled.width,
        pitch: scaled.width * channels,
        height: scaled.height,
        format,
    };
    decompressor.decompress(input, target).map_err(corrupt)?;
    let (w, h) = (scaled.width as u32, scaled.height as u32);
    let buffer_error = || ImageError::Internal {
        message: "jpeg pixel buffer has the wrong size".into(),
    };
    let image = match channels {
        1 => DynamicImage::ImageLuma8(
            image::GrayImage::from_raw(w, h, pixels).ok_or_else(buffer_error)?,
        ),
        4 => DynamicImage::ImageRgb8(cmyk_to_srgb(
            &pixels,
            w,
            h,
            metadata.icc.as_deref(),
            metadata.adobe_inverted,
        )?),
        _ => DynamicImage::ImageRgb8(
            image::RgbImage::from_raw(w, h, pixels).ok_or_else(buffer_error)?,
        ),
    };
    let mut image = image;
    image.apply_orientation(orientation);
    Ok(Decoded {
        source_width: upright_w,
        source_height: upright_h,
        metadata: SourceMetadata::new(metadata.icc, metadata.exif),
        ..Decoded::still(image, SourceFormat::Jpeg)
    })
}

/// The smallest DCT scale (1/8, 1/4, 1/2) that still leaves at least twice the target size in
/// both axes, so the final resize has real pixels to filter.
fn shrink_on_load_factor(
    width: usize,
    height: usize,
    target_w: usize,
    target_h: usize,
) -> turbojpeg::ScalingFactor {
    for denom in [8, 4, 2] {
        if width.div_ceil(denom) >= 2 * target_w && height.div_ceil(denom) >= 2 * target_h {
            return turbojpeg::ScalingFactor::new(1, denom);
        }
    }
    turbojpeg::ScalingFactor::ONE
}

/// What the JPEG's markers say beyond the pixels: orientation, ICC profile, EXIF, Adobe
/// inversion.
struct JpegMetadata {
    orientation: image::metadata::Orientation,
    icc: Option<Vec<u8>>,
    exif: Option<Vec<u8>>,
    adobe_inverted: bool,
}

impl JpegMetadata {
    fn read(input: &[u8]) -> JpegMetadata {
        // The image crate's JPEG decoder parses only the headers here; it is used for EXIF and
        // ICC (reassembled from APP2 chunks) so that no marker parser is written by hand.
        let (orientation, icc, exif) =
            match image::codecs::jpeg::JpegDecoder::new(Cursor::new(input)) {
                Ok(mut decoder) => (
                    decoder
                        .orientation()
                        .unwrap_or(image::metadata::Orientation::NoTransforms),
                    decoder.icc_profile().ok().flatten(),
                    decoder.exif_metadata().ok().flatten(),
                ),
                Err(_) => (image::metadata::Orientation::NoTransforms, None, None),
            };
        JpegMetadata {
            orientation,
            icc,
            exif,
            adobe_inverted: has_adobe_marker(input),
        }
    }
}

/// Photoshop writes CMYK JPEGs inverted and marks them with an Adobe APP14 segment.
fn has_adobe_marker(input: &[u8]) -> bool {
    // Walk the marker segments up to the start of scan.
    let mut pos = 2;
    while pos + 4 <= input.len() && input[pos] == 0xFF {
        let marker = input[pos + 1];
        if marker == 0xDA {
            break;
        }
        let length = usize::from(u16::from_be_bytes([input[pos + 2], input[pos + 3]]));
        if marker == 0xEE && input[pos + 4..].starts_with(b"Adobe") {
            return true;
        }
        pos += 2 + length;
    }
    false
}

fn cmyk_to_srgb(
    cmyk: &[u8],
    width: u32,
    height: u32,
    icc: Option<&[u8]>,
    inverted: bool,
) -> Result<image::RgbImage, ImageError> {
    let mut rgb = vec![0u8; width as usize * height as usize * 3];
    let transform = icc.and_then(|icc| {
        let profile = lcms2::Profile::new_icc(icc).ok()?;
        let format = if inverted {
            lcms2::PixelFormat::CMYK_8_REV
        } else {
            lcms2::PixelFormat::CMYK_8
        };
        lcms2::Transform::<[u8; 4], [u8; 3]>::new(
            &profile,
            format,
            &lcms2::Profile::new_srgb(),
            lcms2::PixelFormat::RGB_8,
            lcms2::Intent::Perceptual,
        )
        .ok()
    });
    match transform {
        Some(transform) => {
            let (src, _) = cmyk.as_chunks::<4>();
            let (dst, _) = rgb.as_chunks_mut::<3>();
            transform.transform_pixels(src, dst);
        }
        // No usable profile: the naive conversion, as browsers do for untagged CMYK.
        None => {
            for (c, out) in cmyk.chunks_exact(4).zip(rgb.chunks_exact_mut(3)) {
                let (c0, m0, y0, k0) = if inverted {
                    (255 - c[0], 255 - c[1], 255 - c[2], 255 - c[3])
                } else {
                    (c[0], c[1], c[2], c[3])
                };
                let k = 255 - u32::from(k0);
                out[0] = ((255 - u32::from(c0)) * k / 255) as u8;
                out[1] = ((255 - u32::from(m0)) * k / 255) as u8;
                out[2] = ((255 - u32::from(y0)) * k / 255) as u8;
            }
        }
    }
    image::RgbImage::from_raw(width, height, rgb).ok_or_else(|| ImageError::Internal {
        message: "cmyk buffer has the wrong size".into(),
    })
}

/// Converts an RGB(A) image tagged with `icc` to sRGB in place (see [`rgb_icc_to_srgb`]); a
/// grey image and its grey profile are left as they are.
pub(crate) fn convert_to_srgb(image: &mut DynamicImage, icc: &[u8]) {
    match image {
        DynamicImage::ImageRgb8(rgb) => {
            rgb_icc_to_srgb(rgb.as_mut(), icc, lcms2::PixelFormat::RGB_8)
        }
        DynamicImage::ImageRgba8(rgba) => {
            rgb_icc_to_srgb(rgba.as_mut(), icc, lcms2::PixelFormat::RGBA_8)
        }
        _ => {}
    }
}

/// Converts pixels tagged with `icc` to sRGB in place; untouched when the profile is sRGB
/// already or cannot be read (an unreadable profile is treated as absent, as browsers do).
fn rgb_icc_to_srgb(pixels: &mut [u8], icc: &[u8], format: lcms2::PixelFormat) {
    let Ok(profile) = lcms2::Profile::new_icc(icc) else {
        return;
    };
    let description = profile
        .info(lcms2::InfoType::Description, lcms2::Locale::none())
        .unwrap_or_default();
    if description.to_ascii_lowercase().starts_with("srgb") {
        return;
    }
    if profile.color_space() != lcms2::ColorSpaceSignature::RgbData {
        return;
    }
    let flags = if format == lcms2::PixelFormat::RGBA_8 {
        lcms2::Flags::COPY_ALPHA
    } else {
        lcms2::Flags::default()
    };
    let Ok(transform) = lcms2::Transform::<u8, u8>::new_flags(
        &profile,
        format,
        &lcms2::Profile::new_srgb(),
        format,
        lcms2::Intent::Perceptual,
        flags,
    ) else {
        return;
    };
    transform.transform_in_place(pixels);
}

fn decode_with_image_crate(
    input: &[u8],
    format: SourceFormat,
    limits: &Limits,
) -> Result<Decoded, ImageError> {
    let image_format = format.image_format().ok_or_else(|| ImageError::Internal {
        message: format!("{} is not decoded by the image crate", format.name()),
    })?;
    let mut reader = ImageReader::with_format(Cursor::new(input), image_format);
    let mut decoder_limits = image::Limits::default();
    let side = u32::try_from(limits.max_pixels).unwrap_or(u32::MAX);
    decoder_limits.max_image_width = Some(side);
    decoder_limits.max_image_height = Some(side);
    // Room for the largest allowed image at 16 bits per channel with alpha, plus metadata.
    decoder_limits.max_alloc = Some(limits.max_pixels.saturating_mul(8) + (64 << 20));
    reader.limits(decoder_limits);
    let decoder = reader.into_decoder().map_err(image_crate_error(format))?;
    decode_with(decoder, format, limits)
}

/// How an `image` crate error reads: limits and unsupported features apart from corruption.
fn image_crate_error(format: SourceFormat) -> impl Fn(image::ImageError) -> ImageError {
    let name = format.name();
    move |e| match e {
        image::ImageError::Limits(l) => ImageError::Unsupported {
            format: name,
            message: format!("decoder limit exceeded: {l}"),
        },
        image::ImageError::Unsupported(u) => ImageError::Unsupported {
            format: name,
            message: u.to_string().to_lowercase(),
        },
        other => ImageError::Corrupt {
            format: name,
            message: other.to_string().to_lowercase(),
        },
    }
}

/// Decodes through an `image` crate decoder: the header's size checked first, then the
/// pixels, brought to 8 bits, sRGB and upright.
fn decode_with(
    mut decoder: impl ImageDecoder,
    format: SourceFormat,
    limits: &Limits,
) -> Result<Decoded, ImageError> {
    let (width, height) = decoder.dimensions();
    check_pixels(u64::from(width), u64::from(height), limits.max_pixels)?;
    let icc = decoder.icc_profile().ok().flatten();
    let exif = decoder.exif_metadata().ok().flatten();
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let image = DynamicImage::from_decoder(decoder).map_err(image_crate_error(format))?;
    let mut image = to_8bit(image);
    image.apply_orientation(orientation);
    Ok(Decoded {
        metadata: SourceMetadata::new(icc, exif),
        ..Decoded::still(image, format)
    })
}

/// The engine works in 8 bits per channel: what every output format and every web client uses.
pub(crate) fn to_8bit(image: DynamicImage) -> DynamicImage {
    match image {
        DynamicImage::ImageLuma8(_)
        | DynamicImage::ImageLumaA8(_)
        | DynamicImage::ImageRgb8(_)
        | DynamicImage::ImageRgba8(_) => image,
        DynamicImage::ImageLuma16(_) => DynamicImage::ImageLuma8(image.to_luma8()),
        DynamicImage::ImageLumaA16(_) => DynamicImage::ImageLumaA8(image.to_luma_alpha8()),
        other if other.color().has_alpha() => DynamicImage::ImageRgba8(other.to_rgba8()),
        other => DynamicImage::ImageRgb8(other.to_rgb8()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shrink_on_load_leaves_twice_the_target() {
        let f = shrink_on_load_factor(6000, 4000, 200, 133);
        assert_eq!(f, turbojpeg::ScalingFactor::ONE_EIGHTH);
        let f = shrink_on_load_factor(6000, 4000, 800, 533);
        assert_eq!(f, turbojpeg::ScalingFactor::ONE_HALF);
        let f = shrink_on_load_factor(6000, 4000, 1600, 1067);
        assert_eq!(f, turbojpeg::ScalingFactor::ONE);
    }

    #[test]
    fn target_size_never_enlarges() {
        let hint = |width, height, mode| DecodeHint {
            width,
            height,
            mode,
            enlarge: false,
        };
        assert_eq!(
            target_size(6000, 4000, hint(200, 200, ResizeMode::Fit)),
            (200, 133)
        );
        assert_eq!(
            target_size(6000, 4000, hint(200, 200, ResizeMode::Fill)),
            (300, 200)
        );
        assert_eq!(
            target_size(6000, 4000, hint(0, 100, ResizeMode::Fit)),
            (150, 100)
        );
        assert_eq!(
            target_size(100, 50, hint(800, 600, ResizeMode::Fit)),
            (100, 50)
        );
    }

    #[test]
    fn rejects_oversized_headers_before_decoding() {
        let limits = Limits {
            max_pixels: 1000,
            ..Limits::default()
        };
        // A valid 64x64 PNG is over a 1000-pixel limit.
        let mut png = Vec::new();
        DynamicImage::new_rgb8(64, 64)
            .write_to(&mut Cursor::new(&mut png), ImageFormat::Png)
            .unwrap();
        let err = decode(&png, &limits, None).unwrap_err();
        assert!(
            matches!(err, ImageError::TooManyPixels { pixels: 4096, .. }),
            "{err}"
        );
        let err = decode(
            &png,
            &Limits {
                max_bytes: 10,
                ..Limits::default()
            },
            None,
        )
        .unwrap_err();
        assert!(matches!(err, ImageError::TooManyBytes { .. }), "{err}");
        let err = decode(b"hello world", &Limits::default(), None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unrecognised image format (first bytes 68656c6c6f20776f)"
        );
    }
}
