//! The operation model: each operation and its validated arguments, stored so that equal
//! requests compare, hash and print the same (the canonical text keys are derived from).

use std::fmt;

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
}

impl ResizeMode {
    pub(crate) fn name(self) -> &'static str {
        match self {
            ResizeMode::Fit => "fit",
            ResizeMode::Fill => "fill",
            ResizeMode::Force => "force",
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
            _ => return None,
        })
    }

    /// Where the window's centre wants to be, as fractions of the image (0.5, 0.5 is the
    /// middle; a compass point pins the window to that edge or corner).
    pub fn anchor(self) -> (f64, f64) {
        match self {
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
        }
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

/// Output formats an encoder exists for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutputFormat {
    /// JPEG (libjpeg-turbo)
    Jpeg,
    /// PNG
    Png,
    /// WebP, lossy or lossless (libwebp)
    Webp,
    /// AVIF (rav1e)
    Avif,
    /// SVG traced from the raster image (vtracer)
    Svg,
}

/// Read by name (`jpeg`, `jpg`, `png`, `webp`, `avif`, `svg`), as configuration files name it.
impl<'de> serde::Deserialize<'de> for OutputFormat {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<OutputFormat, D::Error> {
        let name = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        OutputFormat::from_name(&name).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown format `{name}` (known: jpeg, png, webp, avif, svg)"
            ))
        })
    }
}

impl OutputFormat {
    /// The canonical name, as it appears in chains, file extensions and events.
    pub fn name(self) -> &'static str {
        match self {
            OutputFormat::Jpeg => "jpeg",
            OutputFormat::Png => "png",
            OutputFormat::Webp => "webp",
            OutputFormat::Avif => "avif",
            OutputFormat::Svg => "svg",
        }
    }

    /// The MIME type of encoded output.
    pub fn mime(self) -> &'static str {
        match self {
            OutputFormat::Jpeg => "image/jpeg",
            OutputFormat::Png => "image/png",
            OutputFormat::Webp => "image/webp",
            OutputFormat::Avif => "image/avif",
            OutputFormat::Svg => "image/svg+xml",
        }
    }

    /// Parses a format name, folding the usual aliases (`jpg`).
    pub fn from_name(name: &str) -> Option<OutputFormat> {
        match name.to_ascii_lowercase().as_str() {
            "jpeg" | "jpg" => Some(OutputFormat::Jpeg),
            "png" => Some(OutputFormat::Png),
            "webp" => Some(OutputFormat::Webp),
            "avif" => Some(OutputFormat::Avif),
            "svg" => Some(OutputFormat::Svg),
            _ => None,
        }
    }

    /// The quality used when a request names none; `None` where quality has no meaning.
    pub fn default_quality(self) -> Option<u8> {
        match self {
            OutputFormat::Jpeg | OutputFormat::Webp => Some(80),
            OutputFormat::Avif => Some(60),
            OutputFormat::Png | OutputFormat::Svg => None,
        }
    }
}

/// The output encoding a chain ends with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Encoding {
    /// which encoder
    pub format: OutputFormat,
    /// 1-100 for lossy encoders; `None` for lossless ones
    pub quality: Option<u8>,
}

impl Encoding {
    /// The encoding with the format's default settings.
    pub fn default_for(format: OutputFormat) -> Encoding {
        Encoding {
            format,
            quality: format.default_quality(),
        }
    }

    /// True when the encoder keeps every pixel (PNG, lossless WebP, SVG tracing aside).
    pub fn is_lossless(self) -> bool {
        self.quality.is_none()
    }
}

/// One step of a chain, normalised: defaults filled in, aliases folded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
        width: u32,
        /// window height
        height: u32,
        /// top-left corner; `None` places the window by `gravity`
        origin: Option<(u32, u32)>,
        /// where the window sits without an origin (always `Centre` with one)
        gravity: Gravity,
    },
    /// Rotate clockwise.
    Rotate(Rotation),
    /// Mirror.
    Flip(FlipAxis),
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
            Operation::Rotate(_) => "rotate",
            Operation::Flip(_) => "flip",
            Operation::Grayscale => "grayscale",
            Operation::Blur { .. } => "blur",
            Operation::Sharpen { .. } => "sharpen",
            Operation::Brightness(_) => "brightness",
            Operation::Contrast(_) => "contrast",
            Operation::Saturation(_) => "saturation",
            Operation::Format(_) => "format",
            Operation::Analyze => "analyze",
        }
    }

    /// True for operations that leave the image unchanged and are dropped by normalisation.
    pub(crate) fn is_identity(&self) -> bool {
        match self {
            Operation::Blur { sigma } | Operation::Sharpen { sigma } => sigma.0 == 0,
            Operation::Brightness(v) | Operation::Contrast(v) | Operation::Saturation(v) => *v == 0,
            _ => false,
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.name();
        match self {
            Operation::Resize {
                width,
                height,
                mode,
                gravity: Gravity::Centre,
            } => write!(f, "{name}:{width}:{height}:{}", mode.name()),
            Operation::Resize {
                width,
                height,
                mode,
                gravity,
            } => write!(f, "{name}:{width}:{height}:{}:{gravity}", mode.name()),
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
            Operation::Flip(FlipAxis::Horizontal) => write!(f, "{name}:h"),
            Operation::Flip(FlipAxis::Vertical) => write!(f, "{name}:v"),
            Operation::Blur { sigma } | Operation::Sharpen { sigma } => {
                write!(f, "{name}:{sigma}")
            }
            Operation::Brightness(v) | Operation::Contrast(v) | Operation::Saturation(v) => {
                write!(f, "{name}:{v}")
            }
            Operation::Format(Encoding {
                format,
                quality: Some(q),
            }) => write!(f, "{name}:{}:{q}", format.name()),
            Operation::Format(Encoding {
                format: format @ OutputFormat::Webp,
                quality: None,
            }) => write!(f, "{name}:{}:lossless", format.name()),
            Operation::Format(Encoding {
                format,
                quality: None,
            }) => write!(f, "{name}:{}", format.name()),
            Operation::Grayscale | Operation::Analyze => f.write_str(name),
        }
    }
}
