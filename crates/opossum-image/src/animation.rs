//! Animated GIF and WebP: every frame decoded, every operation applied to every frame, and the
//! timing and loop count written back out.
//!
//! Frames are decoded by the `image` crate's animation decoders, which composite each frame
//! onto the canvas as a viewer shows it (disposal and blending applied), so every frame here is
//! a whole picture of the canvas's size and any operation can run on it alone. The price is
//! that output frames are whole frames too; the encoders (libwebp's animation encoder, the
//! `gif` crate with NeuQuant palettes) find what changed between frames themselves.
//!
//! Limits come before allocation, frame by frame: the canvas against the pixel limit, then
//! each further frame's pixels added to the running total and the frame count against
//! `max_frames`, before that frame is decoded.
//!
//! Operations whose result depends on the pixels decide once for the whole animation: `smart`
//! gravity picks its window on the first frame (a window per frame would jump about), and
//! `trim` cuts the box that holds the content of every frame.

use std::io::Cursor;

use image::{AnimationDecoder, DynamicImage, RgbaImage};
use opossum_ops::{Encoding, Operation, OutputFormat};

use crate::decode::{SourceFormat, check_pixels};
use crate::ops::{Pin, apply_pinned};
use crate::{ImageError, Limits, Overlays, canvas};

/// How an animation plays: each frame's delay and how many times the whole plays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timing {
    /// how long each frame shows, in milliseconds, one entry per frame
    pub delays_ms: Vec<u32>,
    /// how many times it plays; 0 is for ever
    pub loops: u32,
}

impl Timing {
    /// The time one play takes, in milliseconds.
    pub fn duration_ms(&self) -> u64 {
        self.delays_ms.iter().map(|&d| u64::from(d)).sum()
    }
}

/// What a chain works on: a still image (one frame, no timing) or an animation's frames, all of
/// one size, with their timing.
#[derive(Debug, Clone)]
pub struct Picture {
    frames: Vec<DynamicImage>,
    timing: Option<Timing>,
}

impl Picture {
    /// A still image.
    pub fn still(image: DynamicImage) -> Picture {
        Picture {
            frames: vec![image],
            timing: None,
        }
    }

    /// An animation; `frames` is not empty and `timing` has one delay per frame.
    pub(crate) fn animated(frames: Vec<DynamicImage>, timing: Timing) -> Picture {
        debug_assert_eq!(frames.len(), timing.delays_ms.len());
        Picture {
            frames,
            timing: Some(timing),
        }
    }

    /// The still image, or an animation's first frame.
    pub fn first(&self) -> &DynamicImage {
        &self.frames[0]
    }

    /// The still image, or an animation's first frame, by value.
    pub fn into_first(self) -> DynamicImage {
        self.frames
            .into_iter()
            .next()
            .expect("a picture has a frame")
    }

    /// Every frame (one for a still image).
    pub fn frames(&self) -> &[DynamicImage] {
        &self.frames
    }

    /// The timing of an animation; `None` for a still image.
    pub fn timing(&self) -> Option<&Timing> {
        self.timing.as_ref()
    }

    /// True for an animation (more than one frame).
    pub fn is_animated(&self) -> bool {
        self.timing.is_some()
    }

    /// Width of every frame.
    pub fn width(&self) -> u32 {
        self.first().width()
    }

    /// Height of every frame.
    pub fn height(&self) -> u32 {
        self.first().height()
    }

    /// A copy with every frame converted to sRGB from `icc` (for `keep:icc` where the output
    /// cannot carry the profile).
    pub(crate) fn converted_to_srgb(&self, icc: &[u8]) -> Picture {
        let mut converted = self.clone();
        for frame in &mut converted.frames {
            crate::decode::convert_to_srgb(frame, icc);
        }
        converted
    }

    /// Bytes of pixels held, over every frame.
    pub fn pixel_bytes(&self) -> usize {
        self.frames.iter().map(|f| f.as_bytes().len()).sum()
    }

    /// Applies one pixel operation to every frame. `frame:N` takes frame `N` as a still image.
    pub fn apply(
        self,
        op: &Operation,
        limits: &Limits,
        overlays: &Overlays,
    ) -> Result<Picture, ImageError> {
        let Some(timing) = self.timing else {
            let image = self
                .frames
                .into_iter()
                .next()
                .expect("a picture has a frame");
            return Ok(Picture::still(apply_pinned(
                image,
                op,
                limits,
                overlays,
                &Pin::default(),
            )?));
        };
        match *op {
            Operation::Frame(index) => {
                let count = self.frames.len();
                let (width, height) = (self.frames[0].width(), self.frames[0].height());
                return match self.frames.into_iter().nth(index as usize) {
                    Some(frame) => Ok(Picture::still(frame)),
                    None => Err(ImageError::BadOperation {
                        op: op.to_string(),
                        width,
                        height,
                        reason: format!("the animation has {count} frames (0 to {})", count - 1),
                    }),
                };
            }
            Operation::Trim { threshold } => {
                let frames = canvas::trim_alike(self.frames, threshold);
                return Ok(Picture::animated(frames, timing));
            }
            _ => {}
        }
        let pin = Pin::default();
        let frames = self
            .frames
            .into_iter()
            .map(|frame| apply_pinned(frame, op, limits, overlays, &pin))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Picture::animated(frames, timing))
    }
}

/// The frames and timing of a GIF or an animated WebP (a GIF of one frame is one frame here),
/// the first `wanted` of them (`None`: all; `frame:N` needs N + 1, and no frame after those is
/// decoded); `None` for a still WebP, which the still decoder reads.
pub(crate) fn decode(
    input: &[u8],
    format: SourceFormat,
    limits: &Limits,
    wanted: Option<u32>,
) -> Result<Option<(Vec<DynamicImage>, Timing)>, ImageError> {
    let name = format.name();
    let corrupt = |e: image::ImageError| ImageError::Corrupt {
        format: name,
        message: e.to_string().to_lowercase(),
    };
    match format {
        SourceFormat::Gif => {
            let decoder =
                image::codecs::gif::GifDecoder::new(Cursor::new(input)).map_err(corrupt)?;
            let (width, height) = image::ImageDecoder::dimensions(&decoder);
            check_pixels(u64::from(width), u64::from(height), limits.max_pixels)?;
            let loops = loop_count(decoder.loop_count());
            let frames = decoder.into_frames();
            collect(frames, wanted, (width, height), loops, name, limits)
        }
        SourceFormat::Webp => {
            let decoder =
                image::codecs::webp::WebPDecoder::new(Cursor::new(input)).map_err(corrupt)?;
            if !decoder.has_animation() {
                return Ok(None);
            }
            let (width, height) = image::ImageDecoder::dimensions(&decoder);
            check_pixels(u64::from(width), u64::from(height), limits.max_pixels)?;
            let loops = loop_count(decoder.loop_count());
            let frames = decoder.into_frames();
            collect(frames, wanted, (width, height), loops, name, limits)
        }
        _ => Ok(None),
    }
}

fn loop_count(count: image::metadata::LoopCount) -> u32 {
    match count {
        image::metadata::LoopCount::Infinite => 0,
        image::metadata::LoopCount::Finite(n) => n.get(),
    }
}

/// Decodes frames one at a time, each counted against the limits before it is decoded, up to
/// `wanted` of them (`None`: all).
fn collect(
    frames: image::Frames<'_>,
    wanted: Option<u32>,
    (width, height): (u32, u32),
    loops: u32,
    name: &'static str,
    limits: &Limits,
) -> Result<Option<(Vec<DynamicImage>, Timing)>, ImageError> {
    let frame_pixels = u64::from(width) * u64::from(height);
    let mut images = Vec::new();
    let mut delays_ms = Vec::new();
    let wanted = wanted.map_or(usize::MAX, |n| n as usize);
    for frame in frames.take(wanted) {
        let count = images.len() as u64 + 1;
        if count > u64::from(limits.max_frames) {
            return Err(ImageError::TooManyFrames {
                limit: limits.max_frames,
            });
        }
        let pixels = frame_pixels.saturating_mul(count);
        if pixels > limits.max_pixels {
            return Err(ImageError::AnimationTooLarge {
                frames: count,
                width: u64::from(width),
                height: u64::from(height),
                pixels,
                limit: limits.max_pixels,
            });
        }
        let frame = frame.map_err(|e| ImageError::Corrupt {
            format: name,
            message: format!("frame {}: {}", count - 1, e.to_string().to_lowercase()),
        })?;
        let (numer, denom) = frame.delay().numer_denom_ms();
        delays_ms.push(numer.checked_div(denom).unwrap_or(0));
        let buffer = frame.into_buffer();
        if (buffer.width(), buffer.height()) != (width, height) {
            return Err(ImageError::Corrupt {
                format: name,
                message: format!(
                    "frame {} is {}x{}, the canvas {width}x{height}",
                    count - 1,
                    buffer.width(),
                    buffer.height()
                ),
            });
        }
        images.push(DynamicImage::ImageRgba8(buffer));
    }
    if images.is_empty() {
        return Err(ImageError::Corrupt {
            format: name,
            message: "no frames".into(),
        });
    }
    Ok(Some((images, Timing { delays_ms, loops })))
}

/// The format an animation is written in when the chain names none: its own.
pub(crate) fn default_format(source: SourceFormat) -> Option<OutputFormat> {
    match source {
        SourceFormat::Gif => Some(OutputFormat::Gif),
        SourceFormat::Webp => Some(OutputFormat::Webp),
        _ => None,
    }
}

/// Encodes an animation as GIF or WebP; other formats take the first frame (as imgproxy does),
/// which the caller encodes.
pub(crate) fn encode(
    frames: &[DynamicImage],
    timing: &Timing,
    encoding: Encoding,
) -> Option<Result<Vec<u8>, ImageError>> {
    match encoding.format {
        OutputFormat::Gif => Some(encode_gif(frames, Some(timing))),
        OutputFormat::Webp => Some(encode_webp(frames, timing, encoding)),
        _ => None,
    }
}

/// GIF, animated when `timing` is given: each frame quantised to its own 256-colour palette
/// (NeuQuant, the `gif` crate's quantiser at its default speed).
pub(crate) fn encode_gif(
    frames: &[DynamicImage],
    timing: Option<&Timing>,
) -> Result<Vec<u8>, ImageError> {
    let failed = |e: image::ImageError| ImageError::Internal {
        message: format!("gif encoder: {e}"),
    };
    if let Some(frame) = frames.first()
        && (frame.width() > u32::from(u16::MAX) || frame.height() > u32::from(u16::MAX))
    {
        return Err(ImageError::Unsupported {
            format: "gif",
            message: format!(
                "{}x{} is larger than a gif can be (65535 on a side)",
                frame.width(),
                frame.height()
            ),
        });
    }
    let mut out = Vec::new();
    {
        let mut encoder = image::codecs::gif::GifEncoder::new_with_speed(&mut out, 10);
        if let Some(timing) = timing {
            encoder
                .set_repeat(match timing.loops {
                    0 => image::codecs::gif::Repeat::Infinite,
                    n => image::codecs::gif::Repeat::Finite(n.min(u32::from(u16::MAX)) as u16),
                })
                .map_err(failed)?;
        }
        for (at, frame) in frames.iter().enumerate() {
            let delay = timing.map_or(0, |t| t.delays_ms[at]);
            let frame = image::Frame::from_parts(
                rgba(frame),
                0,
                0,
                image::Delay::from_numer_denom_ms(delay, 1),
            );
            encoder.encode_frame(frame).map_err(failed)?;
        }
    }
    Ok(out)
}

/// Animated WebP by libwebp's animation encoder: lossy at the encoding's quality, or lossless.
fn encode_webp(
    frames: &[DynamicImage],
    timing: &Timing,
    encoding: Encoding,
) -> Result<Vec<u8>, ImageError> {
    let failed = |message: String| ImageError::Internal {
        message: format!("webp animation encoder: {message}"),
    };
    let config = crate::encode::webp_config(encoding)?;
    let (width, height) = (frames[0].width(), frames[0].height());
    let pixels: Vec<RgbaImage> = frames.iter().map(rgba).collect();
    let mut encoder = webp::AnimEncoder::new(width, height, &config);
    encoder.set_loop_count(i32::try_from(timing.loops).unwrap_or(0));
    let mut start_ms: i32 = 0;
    for (frame, &delay) in pixels.iter().zip(&timing.delays_ms) {
        encoder.add_frame(webp::AnimFrame::from_rgba(
            frame.as_raw(),
            width,
            height,
            start_ms,
        ));
        start_ms = start_ms.saturating_add(i32::try_from(delay).unwrap_or(i32::MAX));
    }
    let memory = encoder.try_encode().map_err(|e| failed(format!("{e:?}")))?;
    Ok(memory.to_vec())
}

fn rgba(frame: &DynamicImage) -> RgbaImage {
    match frame {
        DynamicImage::ImageRgba8(rgba) => rgba.clone(),
        other => other.to_rgba8(),
    }
}
