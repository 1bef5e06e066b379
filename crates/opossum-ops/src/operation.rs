//! The operation model: each operation and its validated arguments, stored so that equal
//! requests compare, hash and print the same (the canonical text keys are derived from).

use std::fmt;

pub use crate::encoding::{Encoding, OutputFormat};

/// Largest width or height an operation may ask for.
pub const MAX_DIMENSION: u32 = 16_384;

/// A non-negative decimal with three fractional digits, stored exactly so that `blur:2`,
/// `blur:2.0` and `blur:2.000` compare, hash and print the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Milli(pub u32);

impl Milli {
    /// The value as a float, for the image kernels.
    pub fn as_f32(self) -> f32 {
        self.0 as f32 / 1000.0
    }
}

impl fmt::Display for Milli {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (whole, frac) = (self.0 / 1000, self.0 % 1000);
        if frac == 0 {
            write!(f, "{whole}")
        } else {
            let digits = format!("{frac:03}");
            write!(f, "{whole}.{}", digits.trim_end_matches('0'))
        }
    }
}

/// An sRGB colour with alpha, written `RRGGBB` or `RRGGBBAA` (hex, any case, an optional `#`).
/// Every fully transparent colour is the one [`Colour::TRANSPARENT`], and an opaque one prints
/// without its alpha, so equal colours have one spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Colour {
    /// red, green, blue and alpha, 0-255; all zero when alpha is
    rgba: [u8; 4],
}

impl Colour {
    /// No colour at all: what `contain`, `pad` and `rotate` fill with by default (an encoder
    /// without alpha flattens it onto white).
    pub const TRANSPARENT: Colour = Colour { rgba: [0, 0, 0, 0] };

    /// The colour of these channels (any with alpha 0 is [`Colour::TRANSPARENT`]).
    pub fn new(rgba: [u8; 4]) -> Colour {
        if rgba[3] == 0 {
            Colour::TRANSPARENT
        } else {
            Colour { rgba }
        }
    }

    /// Red, green, blue and alpha, 0-255.
    pub fn rgba(self) -> [u8; 4] {
        self.rgba
    }

    /// Reads `RRGGBB` or `RRGGBBAA`.
    pub fn parse(text: &str) -> Option<Colour> {
        let hex = text.trim();
        let hex = hex.strip_prefix('#').unwrap_or(hex);
        if !(hex.len() == 6 || hex.len() == 8) || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let byte = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).ok();
        let alpha = if hex.len() == 8 { byte(6)? } else { 255 };
        Some(Colour::new([byte(0)?, byte(2)?, byte(4)?, alpha]))
    }

    /// True when the text has a colour's shape (6 or 8 hex digits), whatever else it could be:
    /// no size reaches six digits, so `pad:10:10:ff0000` is unambiguous.
    pub(crate) fn looks_like(text: &str) -> bool {
        let hex = text.trim();
        let hex = hex.strip_prefix('#').unwrap_or(hex);
        (hex.len() == 6 || hex.len() == 8) && hex.bytes().all(|b| b.is_ascii_hexdigit())
    }

    /// True when the colour hides nothing under it.
    pub fn is_opaque(self) -> bool {
        self.rgba[3] == 255
    }
}

impl fmt::Display for Colour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [r, g, b, a] = self.rgba;
        if a == 255 {
            write!(f, "{r:02x}{g:02x}{b:02x}")
        } else {
            write!(f, "{r:02x}{g:02x}{b:02x}{a:02x}")
        }
    }
}

/// A crop's width or height: pixels, or a fraction of the image's (a value below 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Extent {
    /// this many pixels
    Pixels(u32),
    /// this fraction of the image's side, above 0 and below 1
    Fraction(Milli),
}

impl Extent {
    /// The extent in pixels of an image side of `full` pixels (at least 1).
    pub fn resolve(self, full: u32) -> u32 {
        match self {
            Extent::Pixels(pixels) => pixels,
            Extent::Fraction(fraction) => {
                ((u64::from(full) * u64::from(fraction.0) + 500) / 1000).max(1) as u32
            }
        }
    }
}

impl fmt::Display for Extent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Extent::Pixels(pixels) => write!(f, "{pixels}"),
            Extent::Fraction(fraction) => write!(f, "{fraction}"),
        }
    }
}

/// How `resize` maps the source onto the requested box.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResizeMode {
    /// Scale to fit inside the box, keeping the aspect ratio; never enlarges.
    Fit,
    /// Scale to cover the box, keeping the aspect ratio, then crop where the gravity says;
    /// never enlarges.
    Fill,
    /// Scale to exactly the box, ignoring the aspect ratio.
    Force,
    /// Scale to fit inside the box as `Fit` does, then pad to exactly the box with the image
    /// centred, the margins of this colour.
    Contain {
        /// the margins' colour
        background: Colour,
    },
}

impl ResizeMode {
    pub(crate) fn name(self) -> &'static str {
        match self {
            ResizeMode::Fit => "fit",
            ResizeMode::Fill => "fill",
            ResizeMode::Force => "force",
            ResizeMode::Contain { .. } => "contain",
        }
    }
}

/// Where a window smaller than the image sits in it: the part of the image a `fill` resize or a
/// `crop` keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Gravity {
    /// the middle (`centre`, or `center`)
    #[default]
    Centre,
    /// the top edge, centred across
    North,
    /// the bottom edge, centred across
    South,
    /// the right edge, centred down
    East,
    /// the left edge, centred down
    West,
    /// the top-right corner
    NorthEast,
    /// the top-left corner
    NorthWest,
    /// the bottom-right corner
    SouthEast,
    /// the bottom-left corner
    SouthWest,
    /// the most interesting window, found in the image's pixels as libvips's `attention`
    /// strategy does (edges, skin tones, saturated colour)
    Smart,
    /// a focal point, as fractions (0 to 1) of the width and height, kept as close to the
    /// window's centre as the image's bounds allow
    Focus {
        /// fraction of the width
        x: Milli,
        /// fraction of the height
        y: Milli,
    },
}

impl Gravity {
    /// Reads a gravity name (`north-east`, `ne`, `centre`, `center`, `focus:0.3:0.7`).
    pub fn parse(text: &str) -> Option<Gravity> {
        let lower = text.trim().to_ascii_lowercase();
        if let Some(rest) = lower.strip_prefix("focus:") {
            let (x, y) = rest.split_once(':')?;
            let fraction = |v: &str| {
                let v: f64 = v.trim().parse().ok().filter(|v: &f64| v.is_finite())?;
                (0.0..=1.0)
                    .contains(&v)
                    .then(|| Milli((v * 1000.0).round() as u32))
            };
            return Some(Gravity::Focus {
                x: fraction(x)?,
                y: fraction(y)?,
            });
        }
        Some(match lower.replace('_', "-").as_str() {
            "centre" | "center" | "c" => Gravity::Centre,
            "north" | "n" | "top" => Gravity::North,
            "south" | "s" | "bottom" => Gravity::South,
            "east" | "e" | "right" => Gravity::East,
            "west" | "w" | "left" => Gravity::West,
            "north-east" | "northeast" | "ne" => Gravity::NorthEast,
            "north-west" | "northwest" | "nw" => Gravity::NorthWest,
            "south-east" | "southeast" | "se" => Gravity::SouthEast,
            "south-west" | "southwest" | "sw" => Gravity::SouthWest,
            "smart" | "attention" | "sm" => Gravity::Smart,
            _ => return None,
        })
    }

    /// Where the window's centre wants to be, as fractions of the image (0.5, 0.5 is the
    /// middle; a compass point pins the window to that edge or corner). `None` for `smart`,
    /// whose window only the pixels can tell.
    pub fn anchor(self) -> Option<(f64, f64)> {
        Some(match self {
            Gravity::Centre => (0.5, 0.5),
            Gravity::North => (0.5, 0.0),
            Gravity::South => (0.5, 1.0),
            Gravity::East => (1.0, 0.5),
            Gravity::West => (0.0, 0.5),
            Gravity::NorthEast => (1.0, 0.0),
            Gravity::NorthWest => (0.0, 0.0),
            Gravity::SouthEast => (1.0, 1.0),
            Gravity::SouthWest => (0.0, 1.0),
            Gravity::Focus { x, y } => (f64::from(x.0) / 1000.0, f64::from(y.0) / 1000.0),
            Gravity::Smart => return None,
        })
    }

    /// The left (or top) of a window of `window` inside `extent` placed by `anchor` (a
    /// fraction): the anchor's point at the window's centre, clamped to the image.
    pub fn offset(extent: f64, window: f64, anchor: f64) -> f64 {
        (anchor * extent - window / 2.0).clamp(0.0, (extent - window).max(0.0))
    }
}

impl fmt::Display for Gravity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Gravity::Centre => "centre",
            Gravity::North => "north",
            Gravity::South => "south",
            Gravity::East => "east",
            Gravity::West => "west",
            Gravity::NorthEast => "north-east",
            Gravity::NorthWest => "north-west",
            Gravity::SouthEast => "south-east",
            Gravity::SouthWest => "south-west",
            Gravity::Smart => "smart",
            Gravity::Focus { x, y } => return write!(f, "focus:{x}:{y}"),
        })
    }
}

/// A clockwise rotation by a multiple of 90 degrees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rotation {
    /// 90 degrees clockwise
    Deg90,
    /// 180 degrees
    Deg180,
    /// 270 degrees clockwise (90 counter-clockwise)
    Deg270,
}

impl Rotation {
    pub(crate) fn degrees(self) -> u32 {
        match self {
            Rotation::Deg90 => 90,
            Rotation::Deg180 => 180,
            Rotation::Deg270 => 270,
        }
    }

    pub(crate) fn from_degrees(degrees: i64) -> Option<Rotation> {
        match degrees.rem_euclid(360) {
            90 => Some(Rotation::Deg90),
            180 => Some(Rotation::Deg180),
            270 => Some(Rotation::Deg270),
            _ => None,
        }
    }
}

/// Mirror axis for `flip`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FlipAxis {
    /// mirror left-right
    Horizontal,
    /// mirror top-bottom
    Vertical,
}

/// Where a watermark goes: one copy placed by a gravity, or copies tiled over the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Placement {
    /// one copy, placed as a window of its size would be (`smart` is not a placement)
    At(Gravity),
    /// copies side by side from the top-left corner, covering the image
    Tile,
}

impl fmt::Display for Placement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Placement::At(gravity) => write!(f, "{gravity}"),
            Placement::Tile => f.write_str("tile"),
        }
    }
}

/// `keep:icc`, `keep:copyright` (or both): source metadata carried into the output, where by
/// default every output is sRGB with no metadata. Not an operation on pixels but on the whole
/// request, so a [`crate::Chain`] holds it beside its operations, as it holds `max-bytes`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Keep {
    /// the source's ICC profile is embedded in the output and its pixels left in that colour
    /// space, instead of being converted to sRGB
    pub icc: bool,
    /// the EXIF `Copyright` and `Artist` fields are written into the output (nothing else of
    /// the EXIF block: no camera, no position)
    pub copyright: bool,
}

impl Keep {
    /// Keeps nothing: the default.
    pub fn is_nothing(self) -> bool {
        !self.icc && !self.copyright
    }

    /// Everything either keeps.
    pub fn union(self, other: Keep) -> Keep {
        Keep {
            icc: self.icc || other.icc,
            copyright: self.copyright || other.copyright,
        }
    }
}

/// The canonical step, `keep:icc:copyright` (what it keeps, in that order).
impl fmt::Display for Keep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("keep")?;
        if self.icc {
            f.write_str(":icc")?;
        }
        if self.copyright {
            f.write_str(":copyright")?;
        }
        Ok(())
    }
}

/// `watermark`: another image of the originals store composited over this one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Watermark {
    /// the watermark's image id (validated by the store before any I/O)
    pub image: std::sync::Arc<str>,
    /// where it goes
    pub placement: Placement,
    /// 0 (invisible) to 1 (as it is)
    pub opacity: Milli,
    /// its width as a fraction of the base image's width, above 0 and at most 1
    pub scale: Milli,
    /// the watermark's content version (16 hex digits of its SHA-256), filled in by the
    /// pipeline before the key is derived, so a replaced watermark image changes the key
    pub version: Option<std::sync::Arc<str>>,
}

/// One step of a chain, normalised: defaults filled in, aliases folded.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Operation {
    /// Scale into a `width` x `height` box; 0 in one side means "from the aspect ratio" (fit only).
    Resize {
        /// box width, 0 = auto
        width: u32,
        /// box height, 0 = auto
        height: u32,
        /// how the box is filled
        mode: ResizeMode,
        /// the part a `fill` keeps (always `Centre` for the other modes)
        gravity: Gravity,
        /// scale up a source smaller than the box (`fit`, `fill` and `contain`); without it a
        /// resize never enlarges
        enlarge: bool,
    },
    /// Fit into a `size` x `size` box, as `vipsthumbnail -s size`.
    Thumbnail {
        /// box edge
        size: u32,
    },
    /// Cut a `width` x `height` window, at (`x`, `y`), or placed by the gravity when no origin
    /// is given.
    Crop {
        /// window width
        width: Extent,
        /// window height
        height: Extent,
        /// top-left corner; `None` places the window by `gravity`
        origin: Option<(u32, u32)>,
        /// where the window sits without an origin (always `Centre` with one)
        gravity: Gravity,
    },
    /// Rotate clockwise by a right angle (lossless).
    Rotate(Rotation),
    /// Rotate clockwise by any other angle; the canvas grows to hold the whole image and the
    /// corners take the colour.
    RotateBy {
        /// degrees clockwise, above 0 and below 360, never a multiple of 90
        degrees: Milli,
        /// what fills the corners
        background: Colour,
    },
    /// Mirror.
    Flip(FlipAxis),
    /// One frame of an animation (0-based), as a still image; the first step of a chain.
    Frame(u32),
    /// Add margins (CSS order) of a colour.
    Pad {
        /// pixels above
        top: u32,
        /// pixels to the right
        right: u32,
        /// pixels below
        bottom: u32,
        /// pixels to the left
        left: u32,
        /// the margins' colour
        colour: Colour,
    },
    /// Flatten transparency onto a colour.
    Background(Colour),
    /// Remove borders of the top-left pixel's colour.
    Trim {
        /// how far (0-255, on every channel) a pixel may be from that colour and still be border
        threshold: u8,
    },
    /// Convert to shades of grey (Rec. 709 luma).
    Grayscale,
    /// Gaussian blur with this sigma in pixels.
    Blur {
        /// standard deviation, pixels
        sigma: Milli,
    },
    /// Unsharp mask with this sigma in pixels.
    Sharpen {
        /// standard deviation, pixels
        sigma: Milli,
    },
    /// Brightness change in percent, -100..=100.
    Brightness(i32),
    /// Contrast change in percent, -100..=100.
    Contrast(i32),
    /// Saturation change in percent, -100..=100 (-100 is grey).
    Saturation(i32),
    /// Blocks of this many pixels square, each of its mean colour.
    Pixelate(u32),
    /// Shades of one colour: each pixel's luma times the colour.
    Tint(Colour),
    /// Gamma correction: every channel raised to 1 / this (above 1 lightens the mid-tones).
    Gamma(Milli),
    /// Stretch the luma's 1st to 99th percentile to the full range, every channel alike.
    Normalize,
    /// Median filter over a square of 2 x radius + 1 pixels.
    Median(u32),
    /// Round the corners with this radius in pixels; outside them is transparent.
    Round(u32),
    /// Brightness and saturation factors (1 unchanged) and a hue rotation in degrees.
    Modulate {
        /// factor on every channel
        brightness: Milli,
        /// factor on the distance from grey
        saturation: Milli,
        /// hue rotation, degrees, 0 to 359
        hue: u32,
    },
    /// Composite another image over this one.
    Watermark(Watermark),
    /// Encode the result in this format.
    Format(Encoding),
    /// Produce the analysis JSON instead of an image.
    Analyze,
}

impl Operation {
    /// The canonical operation name.
    pub fn name(&self) -> &'static str {
        match self {
            Operation::Resize { .. } => "resize",
            Operation::Thumbnail { .. } => "thumbnail",
            Operation::Crop { .. } => "crop",
            Operation::Rotate(_) | Operation::RotateBy { .. } => "rotate",
            Operation::Flip(_) => "flip",
            Operation::Frame(_) => "frame",
            Operation::Pad { .. } => "pad",
            Operation::Background(_) => "background",
            Operation::Trim { .. } => "trim",
            Operation::Grayscale => "grayscale",
            Operation::Blur { .. } => "blur",
            Operation::Sharpen { .. } => "sharpen",
            Operation::Brightness(_) => "brightness",
            Operation::Contrast(_) => "contrast",
            Operation::Saturation(_) => "saturation",
            Operation::Pixelate(_) => "pixelate",
            Operation::Tint(_) => "tint",
            Operation::Gamma(_) => "gamma",
            Operation::Normalize => "normalize",
            Operation::Median(_) => "median",
            Operation::Round(_) => "round",
            Operation::Modulate { .. } => "modulate",
            Operation::Watermark(_) => "watermark",
            Operation::Format(_) => "format",
            Operation::Analyze => "analyze",
        }
    }

    /// True for operations that leave the image unchanged and are dropped by normalisation.
    pub(crate) fn is_identity(&self) -> bool {
        match *self {
            Operation::Blur { sigma } | Operation::Sharpen { sigma } => sigma.0 == 0,
            Operation::Brightness(v) | Operation::Contrast(v) | Operation::Saturation(v) => v == 0,
            Operation::Pad {
                top,
                right,
                bottom,
                left,
                ..
            } => top == 0 && right == 0 && bottom == 0 && left == 0,
            Operation::Pixelate(size) => size <= 1,
            Operation::Gamma(g) => g.0 == 1000,
            Operation::Median(radius) | Operation::Round(radius) => radius == 0,
            Operation::Background(colour) => colour == Colour::TRANSPARENT,
            Operation::Modulate {
                brightness,
                saturation,
                hue,
            } => brightness.0 == 1000 && saturation.0 == 1000 && hue == 0,
            Operation::Watermark(ref watermark) => watermark.opacity.0 == 0,
            _ => false,
        }
    }
}

/// Sizes in pixels multiplied by a device-pixel ratio, each at most `max`; the name of the first
/// argument that would pass it is the error.
fn scale(
    value: u32,
    factor: Milli,
    max: u64,
    arg: &'static str,
) -> Result<u32, (&'static str, u64)> {
    let scaled = (u64::from(value) * u64::from(factor.0) + 500) / 1000;
    if scaled > max {
        return Err((arg, scaled));
    }
    Ok(scaled as u32)
}

impl Operation {
    /// The operation as a `dpr:FACTOR` step before it asks: every size in pixels multiplied
    /// (resize and thumbnail boxes, crop windows and offsets, padding, corner radii). Fractions,
    /// angles and colours are left alone. An error names the argument that would pass the
    /// largest dimension, and the value it would have.
    pub(crate) fn scaled(self, factor: Milli) -> Result<Operation, (&'static str, u64)> {
        // (A watermark's size is a fraction of the image: a ratio leaves it alone.)
        let dim = u64::from(MAX_DIMENSION);
        let extent = |e: Extent, arg| match e {
            Extent::Pixels(p) => scale(p, factor, dim, arg).map(Extent::Pixels),
            fraction => Ok(fraction),
        };
        Ok(match self {
            Operation::Resize {
                width,
                height,
                mode,
                gravity,
                enlarge,
            } => Operation::Resize {
                width: scale(width, factor, dim, "width")?,
                height: scale(height, factor, dim, "height")?,
                mode,
                gravity,
                enlarge,
            },
            Operation::Thumbnail { size } => Operation::Thumbnail {
                size: scale(size, factor, dim, "size")?,
            },
            Operation::Crop {
                width,
                height,
                origin,
                gravity,
            } => Operation::Crop {
                width: extent(width, "width")?,
                height: extent(height, "height")?,
                origin: match origin {
                    None => None,
                    Some((x, y)) => Some((
                        scale(x, factor, u64::from(u32::MAX), "x")?,
                        scale(y, factor, u64::from(u32::MAX), "y")?,
                    )),
                },
                gravity,
            },
            Operation::Pad {
                top,
                right,
                bottom,
                left,
                colour,
            } => Operation::Pad {
                top: scale(top, factor, dim, "top")?,
                right: scale(right, factor, dim, "right")?,
                bottom: scale(bottom, factor, dim, "bottom")?,
                left: scale(left, factor, dim, "left")?,
                colour,
            },
            Operation::Round(radius) => Operation::Round(scale(radius, factor, dim, "radius")?),
            other => other,
        })
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.name();
        match *self {
            Operation::Watermark(ref w) => {
                write!(
                    f,
                    "{name}:{}:{}:{}:{}",
                    w.image, w.placement, w.opacity, w.scale
                )?;
                if let Some(version) = &w.version {
                    write!(f, ":{version}")?;
                }
                Ok(())
            }
            Operation::Resize {
                width,
                height,
                mode,
                gravity,
                enlarge,
            } => {
                write!(f, "{name}:{width}:{height}:{}", mode.name())?;
                match mode {
                    ResizeMode::Contain { background } if background != Colour::TRANSPARENT => {
                        write!(f, ":{background}")?
                    }
                    _ if gravity != Gravity::Centre => write!(f, ":{gravity}")?,
                    _ => {}
                }
                if enlarge {
                    f.write_str(":enlarge")?;
                }
                Ok(())
            }
            Operation::Thumbnail { size } => write!(f, "{name}:{size}"),
            Operation::Crop {
                width,
                height,
                origin: None,
                gravity: Gravity::Centre,
            } => write!(f, "{name}:{width}:{height}"),
            Operation::Crop {
                width,
                height,
                origin: None,
                gravity,
            } => write!(f, "{name}:{width}:{height}:{gravity}"),
            Operation::Crop {
                width,
                height,
                origin: Some((x, y)),
                ..
            } => write!(f, "{name}:{width}:{height}:{x}:{y}"),
            Operation::Rotate(r) => write!(f, "{name}:{}", r.degrees()),
            Operation::RotateBy {
                degrees,
                background: Colour::TRANSPARENT,
            } => write!(f, "{name}:{degrees}"),
            Operation::RotateBy {
                degrees,
                background,
            } => write!(f, "{name}:{degrees}:{background}"),
            Operation::Flip(FlipAxis::Horizontal) => write!(f, "{name}:h"),
            Operation::Flip(FlipAxis::Vertical) => write!(f, "{name}:v"),
            Operation::Pad {
                top,
                right,
                bottom,
                left,
                colour,
            } => {
                write!(f, "{name}:{top}:{right}:{bottom}:{left}")?;
                if colour != Colour::TRANSPARENT {
                    write!(f, ":{colour}")?;
                }
                Ok(())
            }
            Operation::Background(colour) | Operation::Tint(colour) => {
                write!(f, "{name}:{colour}")
            }
            Operation::Trim { threshold } => write!(f, "{name}:{threshold}"),
            Operation::Blur { sigma } | Operation::Sharpen { sigma } => {
                write!(f, "{name}:{sigma}")
            }
            Operation::Brightness(v) | Operation::Contrast(v) | Operation::Saturation(v) => {
                write!(f, "{name}:{v}")
            }
            Operation::Pixelate(v)
            | Operation::Median(v)
            | Operation::Round(v)
            | Operation::Frame(v) => {
                write!(f, "{name}:{v}")
            }
            Operation::Gamma(g) => write!(f, "{name}:{g}"),
            Operation::Modulate {
                brightness,
                saturation,
                hue,
            } => write!(f, "{name}:{brightness}:{saturation}:{hue}"),
            Operation::Format(encoding) => write!(f, "{name}:{encoding}"),
            Operation::Grayscale | Operation::Normalize | Operation::Analyze => f.write_str(name),
        }
    }
}
