//! The one argument table: each operation's argument names in positional order (the JSON
//! form uses the same names), and the validators that turn a [`RawOp`] into an [`Operation`].
//!
//! Both spellings of a chain are first turned into `RawOp`s (a canonical operation name plus one
//! optional string per declared argument), and only then validated by one function per
//! operation. That is what makes `resize:800:600` and
//! `{"op":"resize","width":800,"height":600}` the same request: one validator, not two.
//! `preset` steps go through the same table and become [`PresetRef`]s.

use crate::OpsError;
use crate::encoding::{
    Chroma, MAX_AVIF_SPEED, MAX_PALETTE_COLOURS, MAX_PNG_COMPRESSION, MAX_WEBP_EFFORT,
};
use crate::operation::{
    Colour, Encoding, Extent, FlipAxis, Gravity, Keep, MAX_DIMENSION, Milli, Operation,
    OutputFormat, Placement, ResizeMode, Rotation, Watermark,
};

/// Argument names of each operation, in positional order. The JSON form uses the same names.
pub(crate) fn spec(name: &str) -> Option<(&'static str, &'static [&'static str])> {
    Some(match name.to_ascii_lowercase().as_str() {
        "resize" => (
            "resize",
            &[
                "width",
                "height",
                "mode",
                "gravity",
                "enlarge",
                "background",
            ],
        ),
        "thumbnail" | "thumb" => ("thumbnail", &["size"]),
        "crop" => ("crop", &["width", "height", "x", "y", "gravity"]),
        "rotate" => ("rotate", &["degrees", "background"]),
        "flip" => ("flip", &["axis"]),
        "pad" | "padding" => ("pad", &["top", "right", "bottom", "left", "color"]),
        "background" | "bg" | "flatten" => ("background", &["color"]),
        "trim" => ("trim", &["threshold"]),
        "dpr" => ("dpr", &["factor"]),
        "max-bytes" | "max_bytes" | "maxbytes" => ("max-bytes", &["bytes"]),
        "keep" | "keep-metadata" | "keep_metadata" => ("keep", KEEP_ARGS),
        "frame" => ("frame", &["index"]),
        "grayscale" | "greyscale" | "gray" | "grey" => ("grayscale", &[]),
        "blur" => ("blur", &["sigma"]),
        "sharpen" => ("sharpen", &["sigma"]),
        "brightness" => ("brightness", &["value"]),
        "contrast" => ("contrast", &["value"]),
        "saturation" => ("saturation", &["value"]),
        "pixelate" => ("pixelate", &["size"]),
        "tint" => ("tint", &["color"]),
        "gamma" => ("gamma", &["gamma"]),
        "normalize" | "normalise" => ("normalize", &[]),
        "median" => ("median", &["radius"]),
        "round" | "rounded" => ("round", &["radius"]),
        "modulate" => ("modulate", &["brightness", "saturation", "hue"]),
        "watermark" | "wm" => (
            "watermark",
            &["image", "position", "opacity", "scale", "version"],
        ),
        "format" => ("format", FORMAT_ARGS),
        "analyze" | "analyse" => ("analyze", &[]),
        "preset" => ("preset", &["name", "version"]),
        _ => return None,
    })
}

/// `format`'s arguments: the format and its quality by position, the rest by name
/// (`format:png:palette=64:compression=4`, `format:jpeg:85:progressive:444`).
const FORMAT_ARGS: &[&str] = &[
    "format",
    "quality",
    "lossless",
    "progressive",
    "chroma",
    "palette",
    "compression",
    "effort",
    "speed",
];

/// What `keep` can keep, named in the string form (`keep:icc:copyright`) and as JSON booleans
/// (`{"op":"keep","icc":true}`).
const KEEP_ARGS: &[&str] = &["icc", "copyright"];

/// `keep`'s string tokens are the names of what it keeps, in any order: each sets its slot.
fn keep_slots(
    position: usize,
    tokens: Vec<Option<String>>,
) -> Result<Vec<Option<String>>, OpsError> {
    let mut slots: Vec<Option<String>> = vec![None; KEEP_ARGS.len()];
    for token in tokens.into_iter().flatten() {
        let slot = KEEP_ARGS
            .iter()
            .position(|name| token.eq_ignore_ascii_case(name))
            .ok_or_else(|| OpsError::BadArgument {
                position,
                op: "keep",
                arg: "metadata",
                value: token.clone(),
                reason: "expected icc or copyright".into(),
            })?;
        slots[slot] = Some("true".into());
    }
    Ok(slots)
}

/// Places `format`'s string tokens (after the format name) in their named slots: a first token
/// that is a number up to 100 or `lossless` is the quality, a `true`/`false` second token is the
/// lossless flag (the older spelling), and every other token is an option, `NAME[=VALUE]` or
/// one of the bare words `progressive`, `palette`, `lossless`, `420` and `444`.
fn format_slots(
    position: usize,
    tokens: Vec<Option<String>>,
) -> Result<Vec<Option<String>>, OpsError> {
    let mut slots: Vec<Option<String>> = vec![None; FORMAT_ARGS.len()];
    // The tokens are moved into their slots, not copied: this runs on every request's parse.
    let mut put = |slot: usize, value: String, given: &str| {
        if slots[slot].is_some() {
            return Err(OpsError::BadArgument {
                position,
                op: "format",
                arg: FORMAT_ARGS[slot],
                value: given.to_string(),
                reason: "given twice".into(),
            });
        }
        slots[slot] = Some(value);
        Ok(())
    };
    for (index, token) in tokens.into_iter().enumerate() {
        let Some(mut token) = token else { continue };
        if index == 0 {
            put(0, token, "")?;
            continue;
        }
        token.make_ascii_lowercase();
        let is_quality = token.parse::<f64>().is_ok_and(|q| q <= 100.0);
        let bare = |slot: usize| (slot, String::from("true"));
        let (slot, value) = match (index, token.as_str()) {
            // A quality only ever stands here, so it cannot be given twice: moved.
            (1, _) if is_quality => (1, std::mem::take(&mut token)),
            (2, "true" | "false") => (2, token.clone()),
            (_, "420" | "444") => (4, token.clone()),
            (_, "lossless") => bare(2),
            (_, "progressive") => bare(3),
            (_, "palette") => bare(5),
            _ => {
                let (name, value) = token.split_once('=').ok_or_else(|| OpsError::BadArgument {
                    position,
                    op: "format",
                    arg: "options",
                    value: token.clone(),
                    reason: "expected a quality, `lossless`, `progressive`, `420`, `444`, \
                             `palette[=COLORS]`, `compression=N`, `effort=N` or `speed=N`"
                        .into(),
                })?;
                let slot = FORMAT_ARGS
                    .iter()
                    .skip(1)
                    .position(|a| *a == name)
                    .map(|i| i + 1)
                    .ok_or_else(|| OpsError::BadArgument {
                        position,
                        op: "format",
                        arg: "options",
                        value: token.clone(),
                        reason: format!("unknown option `{name}`"),
                    })?;
                (slot, value.to_string())
            }
        };
        put(slot, value, &token)?;
    }
    Ok(slots)
}

/// An operation name with one optional string per declared argument, before validation.
pub(crate) struct RawOp {
    pub(crate) position: usize,
    pub(crate) name: &'static str,
    arg_names: &'static [&'static str],
    args: Vec<Option<String>>,
}

impl RawOp {
    pub(crate) fn from_text(position: usize, text: &str) -> Result<RawOp, OpsError> {
        let mut parts = text.trim().split(':');
        let given = parts.next().unwrap_or_default().trim();
        let (name, arg_names) = spec(given).ok_or_else(|| OpsError::UnknownOperation {
            position,
            name: given.to_string(),
        })?;
        let mut positional: Vec<Option<String>> = Vec::new();
        while let Some(part) = parts.next() {
            let mut part = part.trim().to_string();
            // `focus:X:Y` is one gravity argument spelled over three segments.
            if part.eq_ignore_ascii_case("focus") {
                for _ in 0..2 {
                    part.push(':');
                    part.push_str(parts.next().unwrap_or_default().trim());
                }
            }
            positional.push(Some(part).filter(|p| !p.is_empty()));
        }
        if name == "format" || name == "keep" {
            let args = if name == "format" {
                format_slots(position, positional)?
            } else {
                keep_slots(position, positional)?
            };
            return Ok(RawOp {
                position,
                name,
                arg_names,
                args,
            });
        }
        if positional.len() > arg_names.len() {
            return Err(OpsError::TooManyArguments {
                position,
                op: name,
                got: positional.len(),
                max: arg_names.len(),
            });
        }
        let mut args = positional;
        args.resize(arg_names.len(), None);
        Ok(RawOp {
            position,
            name,
            arg_names,
            args,
        })
    }

    pub(crate) fn from_json(position: usize, item: &serde_json::Value) -> Result<RawOp, OpsError> {
        let object = item
            .as_object()
            .ok_or_else(|| OpsError::Json(format!("operation {position}: expected an object")))?;
        let given = match (object.get("op"), object.get("type")) {
            (Some(v), _) | (None, Some(v)) => v.as_str().ok_or_else(|| {
                OpsError::Json(format!("operation {position}: `op` must be a string"))
            })?,
            (None, None) => {
                return Err(OpsError::Json(format!(
                    "operation {position}: missing `op`"
                )));
            }
        };
        let (name, arg_names) = spec(given).ok_or_else(|| OpsError::UnknownOperation {
            position,
            name: given.to_string(),
        })?;
        let mut args = vec![None; arg_names.len()];
        for (field, value) in object {
            if field == "op" || field == "type" {
                continue;
            }
            let slot = arg_names.iter().position(|a| a == field).ok_or_else(|| {
                OpsError::UnknownField {
                    position,
                    op: name,
                    field: field.clone(),
                }
            })?;
            args[slot] = match value {
                serde_json::Value::Null => None,
                serde_json::Value::String(s) => Some(s.trim().to_string()),
                serde_json::Value::Number(n) => Some(n.to_string()),
                serde_json::Value::Bool(b) => Some(b.to_string()),
                other => {
                    return Err(OpsError::BadArgument {
                        position,
                        op: name,
                        arg: arg_names[slot],
                        value: other.to_string(),
                        reason: "expected a number or a string".into(),
                    });
                }
            }
            .filter(|s| !s.is_empty());
        }
        Ok(RawOp {
            position,
            name,
            arg_names,
            args,
        })
    }

    pub(crate) fn arg(&self, index: usize) -> Option<&str> {
        self.args[index].as_deref()
    }

    fn bad(&self, index: usize, value: &str, reason: impl Into<String>) -> OpsError {
        OpsError::BadArgument {
            position: self.position,
            op: self.name,
            arg: self.arg_names[index],
            value: value.to_string(),
            reason: reason.into(),
        }
    }

    fn missing(&self, index: usize) -> OpsError {
        OpsError::MissingArgument {
            position: self.position,
            op: self.name,
            arg: self.arg_names[index],
        }
    }

    fn integer(&self, index: usize, min: i64, max: i64) -> Result<Option<i64>, OpsError> {
        let Some(text) = self.arg(index) else {
            return Ok(None);
        };
        // JSON numbers such as 800.0 arrive as "800.0": accept whole values only.
        let value: i64 = match text.parse::<i64>() {
            Ok(v) => v,
            Err(_) => match text.parse::<f64>() {
                Ok(f) if f.fract() == 0.0 && f.abs() < 1e15 => f as i64,
                _ => return Err(self.bad(index, text, "expected a whole number")),
            },
        };
        if value < min || value > max {
            return Err(self.bad(index, text, format!("must be between {min} and {max}")));
        }
        Ok(Some(value))
    }

    fn dimension(&self, index: usize) -> Result<Option<u32>, OpsError> {
        Ok(self
            .integer(index, 0, i64::from(MAX_DIMENSION))?
            .map(|v| v as u32))
    }

    fn required_dimension(&self, index: usize) -> Result<u32, OpsError> {
        match self.dimension(index)? {
            None => Err(self.missing(index)),
            Some(0) => Err(self.bad(index, "0", "must be at least 1")),
            Some(v) => Ok(v),
        }
    }

    fn milli(&self, index: usize, max: u32) -> Result<Option<Milli>, OpsError> {
        let Some(text) = self.arg(index) else {
            return Ok(None);
        };
        let value: f64 = text
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite())
            .ok_or_else(|| self.bad(index, text, "expected a number"))?;
        if value < 0.0 || value > f64::from(max) {
            return Err(self.bad(index, text, format!("must be between 0 and {max}")));
        }
        Ok(Some(Milli((value * 1000.0).round() as u32)))
    }

    fn percent(&self) -> Result<i32, OpsError> {
        self.integer(0, -100, 100)?
            .map(|v| v as i32)
            .ok_or_else(|| self.missing(0))
    }

    pub(crate) fn build(&self) -> Result<Option<Operation>, OpsError> {
        Ok(Some(match self.name {
            "resize" => self.build_resize()?,
            "thumbnail" => Operation::Thumbnail {
                size: self.required_dimension(0)?,
            },
            "crop" => self.build_crop()?,
            "rotate" => return self.build_rotate(),
            "flip" => Operation::Flip(match self.arg(0).map(str::to_ascii_lowercase).as_deref() {
                None | Some("h" | "horizontal" | "x") => FlipAxis::Horizontal,
                Some("v" | "vertical" | "y") => FlipAxis::Vertical,
                Some(other) => return Err(self.bad(0, other, "expected `h` or `v`")),
            }),
            "frame" => Operation::Frame(
                self.integer(0, 0, i64::from(crate::limits::MAX_FRAMES) - 1)?
                    .ok_or_else(|| self.missing(0))? as u32,
            ),
            "grayscale" => Operation::Grayscale,
            "blur" => Operation::Blur {
                sigma: self.milli(0, 100)?.ok_or_else(|| self.missing(0))?,
            },
            "sharpen" => Operation::Sharpen {
                sigma: self.milli(0, 10)?.unwrap_or(Milli(1000)),
            },
            "brightness" => Operation::Brightness(self.percent()?),
            "contrast" => Operation::Contrast(self.percent()?),
            "saturation" => Operation::Saturation(self.percent()?),
            "pad" => self.build_pad()?,
            "background" => Operation::Background(self.required_colour(0)?),
            "trim" => Operation::Trim {
                threshold: self.integer(0, 0, 255)?.unwrap_or(10) as u8,
            },
            "pixelate" => {
                Operation::Pixelate(self.integer(0, 1, 1024)?.ok_or_else(|| self.missing(0))? as u32)
            }
            "tint" => Operation::Tint(self.required_colour(0)?),
            "gamma" => {
                let gamma = self.milli(0, 10)?.ok_or_else(|| self.missing(0))?;
                if gamma.0 < 100 {
                    return Err(self.bad(
                        0,
                        self.arg(0).unwrap_or_default(),
                        "must be at least 0.1",
                    ));
                }
                Operation::Gamma(gamma)
            }
            "normalize" => Operation::Normalize,
            "median" => {
                Operation::Median(self.integer(0, 0, 20)?.ok_or_else(|| self.missing(0))? as u32)
            }
            "round" => Operation::Round(self.dimension(0)?.ok_or_else(|| self.missing(0))?),
            "modulate" => Operation::Modulate {
                brightness: self.milli(0, 10)?.unwrap_or(Milli(1000)),
                saturation: self.milli(1, 10)?.unwrap_or(Milli(1000)),
                hue: self.integer(2, -3600, 3600)?.unwrap_or(0).rem_euclid(360) as u32,
            },
            "watermark" => Operation::Watermark(self.build_watermark()?),
            "format" => Operation::Format(self.build_format()?),
            "analyze" => Operation::Analyze,
            // `preset` steps are expanded, never built (chain.rs), and spec() names no other.
            other => {
                return Err(OpsError::UnknownOperation {
                    position: self.position,
                    name: other.to_string(),
                });
            }
        }))
    }

    fn build_resize(&self) -> Result<Operation, OpsError> {
        let width = self.dimension(0)?.unwrap_or(0);
        let height = self.dimension(1)?.unwrap_or(0);
        let mut enlarge = match self.arg(4).map(str::to_ascii_lowercase).as_deref() {
            None | Some("false") => false,
            Some("true" | "enlarge") => true,
            Some(other) => return Err(self.bad(4, other, "expected `enlarge`, true or false")),
        };
        // The string form's fourth argument is a gravity (fill), a colour (contain) or the
        // `enlarge` flag when nothing else stands before it.
        let mut fourth = self.arg(3);
        if fourth.is_some_and(|text| text.eq_ignore_ascii_case("enlarge")) {
            enlarge = true;
            fourth = None;
        }
        let mode = match self.arg(2).map(str::to_ascii_lowercase).as_deref() {
            None | Some("fit" | "inside") => ResizeMode::Fit,
            Some("fill" | "cover") => ResizeMode::Fill,
            Some("force" | "stretch" | "exact") => ResizeMode::Force,
            Some("contain" | "letterbox") => {
                // A centre gravity is what `contain` does anyway (the JSON form may name it).
                let fourth = fourth
                    .take()
                    .filter(|text| Gravity::parse(text) != Some(Gravity::Centre));
                let background = match (fourth, self.arg(5)) {
                    (Some(_), Some(given)) => {
                        return Err(self.bad(5, given, "the colour is given twice"));
                    }
                    (Some(text), None) => self.parse_colour(
                        3,
                        text,
                        "`contain` centres the image; its fourth argument is a colour",
                    )?,
                    (None, Some(text)) => self.parse_colour(5, text, "")?,
                    (None, None) => Colour::TRANSPARENT,
                };
                ResizeMode::Contain { background }
            }
            Some(other) => {
                return Err(self.bad(2, other, "expected `fit`, `fill`, `force` or `contain`"));
            }
        };
        if width == 0 && height == 0 {
            return Err(self.missing(0));
        }
        if mode != ResizeMode::Fit && (width == 0 || height == 0) {
            let (index, value) = if width == 0 { (0, width) } else { (1, height) };
            let reason = format!("`{}` needs both width and height", mode.name());
            return Err(self.bad(index, &value.to_string(), reason));
        }
        if let Some(text) = self.arg(5)
            && !matches!(mode, ResizeMode::Contain { .. })
        {
            let reason = format!(
                "`{}` leaves no margin; a background needs `contain`",
                mode.name()
            );
            return Err(self.bad(5, text, reason));
        }
        let gravity = match fourth {
            None => Gravity::Centre,
            Some(text) => self.parse_gravity(3, text)?,
        };
        if gravity != Gravity::Centre && mode != ResizeMode::Fill {
            let reason = format!(
                "`{}` keeps the whole image; a gravity needs `fill`",
                mode.name()
            );
            return Err(self.bad(3, &gravity.to_string(), reason));
        }
        // `force` scales to the box whatever the source's size: `enlarge` says nothing more.
        if mode == ResizeMode::Force {
            enlarge = false;
        }
        Ok(Operation::Resize {
            width,
            height,
            mode,
            gravity,
            enlarge,
        })
    }

    /// A colour argument at `index` (`RRGGBB` or `RRGGBBAA`), if given.
    fn colour(&self, index: usize) -> Result<Option<Colour>, OpsError> {
        self.arg(index)
            .map(|text| self.parse_colour(index, text, ""))
            .transpose()
    }

    fn required_colour(&self, index: usize) -> Result<Colour, OpsError> {
        self.colour(index)?.ok_or_else(|| self.missing(index))
    }

    fn parse_colour(&self, index: usize, text: &str, context: &str) -> Result<Colour, OpsError> {
        Colour::parse(text).ok_or_else(|| {
            let shape = "expected a colour as RRGGBB or RRGGBBAA (hex)";
            let reason = if context.is_empty() {
                shape.to_string()
            } else {
                format!("{context}, RRGGBB or RRGGBBAA (hex)")
            };
            self.bad(index, text, reason)
        })
    }

    fn build_rotate(&self) -> Result<Option<Operation>, OpsError> {
        let text = self.arg(0).ok_or_else(|| self.missing(0))?;
        let degrees: f64 = text
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite())
            .ok_or_else(|| self.bad(0, text, "expected a number of degrees"))?;
        if degrees.abs() > 3600.0 {
            return Err(self.bad(0, text, "must be between -3600 and 3600"));
        }
        let milli = ((degrees * 1000.0).round() as i64).rem_euclid(360_000);
        let background = self.colour(1)?.unwrap_or(Colour::TRANSPARENT);
        if milli % 90_000 == 0 {
            // A right angle leaves no corners to fill: the colour says nothing.
            return Ok(Rotation::from_degrees(milli / 1000).map(Operation::Rotate));
        }
        Ok(Some(Operation::RotateBy {
            degrees: Milli(milli as u32),
            background,
        }))
    }

    /// `pad:TOP[:RIGHT[:BOTTOM[:LEFT]]][:COLOR]`, each missing side as CSS (and imgproxy)
    /// default it: right and bottom from top, left from right.
    fn build_pad(&self) -> Result<Operation, OpsError> {
        // In the string form the colour follows the last side given.
        let last_side = (0..4).rev().find(|&i| self.arg(i).is_some());
        let colour_slot = match last_side {
            Some(i) if self.arg(i).is_some_and(Colour::looks_like) => {
                if let Some(given) = self.arg(4) {
                    return Err(self.bad(4, given, "the colour is given twice"));
                }
                Some(i)
            }
            _ => None,
        };
        let colour = match colour_slot {
            Some(i) => self.required_colour(i)?,
            None => self.colour(4)?.unwrap_or(Colour::TRANSPARENT),
        };
        let side = |index: usize| -> Result<Option<u32>, OpsError> {
            if colour_slot == Some(index) {
                Ok(None)
            } else {
                self.dimension(index)
            }
        };
        let top = side(0)?.ok_or_else(|| self.missing(0))?;
        let right = side(1)?.unwrap_or(top);
        let bottom = side(2)?.unwrap_or(top);
        let left = side(3)?.unwrap_or(right);
        Ok(Operation::Pad {
            top,
            right,
            bottom,
            left,
            colour,
        })
    }

    /// A crop's width or height: whole pixels, or a fraction of the image below 1.
    fn extent(&self, index: usize) -> Result<Extent, OpsError> {
        let text = self.arg(index).ok_or_else(|| self.missing(index))?;
        let value: f64 = text
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite())
            .ok_or_else(|| self.bad(index, text, "expected a number"))?;
        if value > 0.0 && value < 1.0 {
            let fraction = (value * 1000.0).round() as u32;
            if fraction == 0 || fraction >= 1000 {
                return Err(self.bad(
                    index,
                    text,
                    "a fraction needs three decimals at most, between 0.001 and 0.999",
                ));
            }
            return Ok(Extent::Fraction(Milli(fraction)));
        }
        if value <= 0.0 {
            return Err(self.bad(index, text, "must be above 0"));
        }
        Ok(Extent::Pixels(self.required_dimension(index)?))
    }

    fn build_watermark(&self) -> Result<Watermark, OpsError> {
        let image = self.arg(0).ok_or_else(|| self.missing(0))?;
        // The store checks the id fully before any I/O; here only what no id can be.
        if image.len() > 1024 || image.chars().any(char::is_control) {
            return Err(self.bad(0, image, "not an image id"));
        }
        let placement = match self.arg(1) {
            None => Placement::At(Gravity::SouthEast),
            Some(text) if text.eq_ignore_ascii_case("tile") => Placement::Tile,
            Some(text) => match self.parse_gravity(1, text)? {
                Gravity::Smart => {
                    return Err(self.bad(
                        1,
                        text,
                        "a watermark is placed by a gravity or `tile`, not `smart`",
                    ));
                }
                gravity => Placement::At(gravity),
            },
        };
        let opacity = self.milli(2, 1)?.unwrap_or(Milli(500));
        let scale = self.milli(3, 1)?.unwrap_or(Milli(200));
        if scale.0 == 0 {
            return Err(self.bad(3, self.arg(3).unwrap_or_default(), "must be above 0"));
        }
        let version = match self.arg(4) {
            None => None,
            Some(text) if text.len() == 16 && text.bytes().all(|b| b.is_ascii_hexdigit()) => {
                Some(text.to_ascii_lowercase().into())
            }
            Some(text) => return Err(self.bad(4, text, "expected 16 hex digits")),
        };
        Ok(Watermark {
            image: image.into(),
            placement,
            opacity,
            scale,
            version,
        })
    }

    /// `max-bytes:N`: a budget of at least 100 bytes (no image format fits in less) and at
    /// most the largest source allowed.
    pub(crate) fn byte_budget(&self) -> Result<u64, OpsError> {
        let limit = i64::try_from(crate::limits::MAX_SOURCE_BYTES).unwrap_or(i64::MAX);
        Ok(self
            .integer(0, 100, limit)?
            .ok_or_else(|| self.missing(0))? as u64)
    }

    /// `keep:...`: what it keeps; it must name something.
    pub(crate) fn kept(&self) -> Result<Keep, OpsError> {
        let keep = Keep {
            icc: self.flag(0)?.unwrap_or(false),
            copyright: self.flag(1)?.unwrap_or(false),
        };
        if keep.is_nothing() {
            return Err(OpsError::MissingArgument {
                position: self.position,
                op: "keep",
                arg: "icc or copyright",
            });
        }
        Ok(keep)
    }

    /// The `dpr:N` step's factor, 1 to 8.
    pub(crate) fn dpr_factor(&self) -> Result<Milli, OpsError> {
        let factor = self.milli(0, 8)?.ok_or_else(|| self.missing(0))?;
        if factor.0 < 1000 {
            return Err(self.bad(
                0,
                self.arg(0).unwrap_or_default(),
                "must be between 1 and 8",
            ));
        }
        Ok(factor)
    }

    /// The gravity given at `index` (centre when absent); an error names the argument
    /// `named` (the string form of `crop` puts a gravity where an offset's `x` would go).
    fn gravity(&self, index: usize, named: usize) -> Result<Gravity, OpsError> {
        match self.arg(index) {
            None => Ok(Gravity::Centre),
            Some(text) => self.parse_gravity(named, text),
        }
    }

    fn parse_gravity(&self, named: usize, text: &str) -> Result<Gravity, OpsError> {
        Gravity::parse(text).ok_or_else(|| {
            self.bad(
                named,
                text,
                "expected centre, north, south, east, west, north-east, north-west, south-east, south-west, smart or focus:X:Y (fractions 0-1)",
            )
        })
    }

    fn build_crop(&self) -> Result<Operation, OpsError> {
        let width = self.extent(0)?;
        let height = self.extent(1)?;
        // `crop:W:H:GRAVITY`: the string form's third argument is a gravity when it is not a
        // number (the JSON form names it `gravity`).
        if let Some(text) = self.arg(2)
            && text.parse::<f64>().is_err()
        {
            if self.arg(3).is_some() || self.arg(4).is_some() {
                return Err(self.bad(2, text, "a gravity takes no offset"));
            }
            return Ok(Operation::Crop {
                width,
                height,
                origin: None,
                gravity: self.gravity(2, 4)?,
            });
        }
        let gravity = self.gravity(4, 4)?;
        let x = self.integer(2, 0, i64::from(u32::MAX))?;
        let y = self.integer(3, 0, i64::from(u32::MAX))?;
        if gravity != Gravity::Centre && (x.is_some() || y.is_some()) {
            return Err(self.bad(4, &gravity.to_string(), "a gravity takes no offset"));
        }
        let origin = match (x, y) {
            (None, None) => None,
            (Some(x), Some(y)) => Some((x as u32, y as u32)),
            (Some(_), None) => return Err(self.missing(3)),
            (None, Some(_)) => return Err(self.missing(2)),
        };
        Ok(Operation::Crop {
            width,
            height,
            origin,
            gravity,
        })
    }

    fn build_format(&self) -> Result<Encoding, OpsError> {
        let given = self.arg(0).ok_or_else(|| self.missing(0))?;
        let format = OutputFormat::from_name(given)
            .ok_or_else(|| self.bad(0, given, "expected jpeg, png, webp, avif, gif or svg"))?;
        let mut encoding = Encoding::default_for(format);
        let only = |index: usize, formats: &[OutputFormat]| -> Result<(), OpsError> {
            match self.arg(index) {
                Some(value) if !formats.contains(&format) => {
                    let names: Vec<&str> = formats.iter().map(|f| f.name()).collect();
                    Err(self.bad(
                        index,
                        value,
                        format!("applies to {} only", names.join(" and ")),
                    ))
                }
                _ => Ok(()),
            }
        };
        encoding.lossless = match self.flag(2)? {
            Some(true) => {
                if format != OutputFormat::Webp && format != OutputFormat::Png {
                    return Err(self.bad(2, "lossless", "only webp and png can be lossless"));
                }
                // PNG is lossless whatever it is called; only WebP records the choice.
                format == OutputFormat::Webp
            }
            _ => false,
        };
        if let Some(q) = self.integer(1, 1, 100)?.map(|q| q as u8) {
            if encoding.lossless {
                return Err(self.bad(1, &q.to_string(), "a lossless encoding takes no quality"));
            }
            if !format.has_quality() {
                let reason = format!("{} takes no quality", format.name());
                return Err(self.bad(1, &q.to_string(), reason));
            }
            encoding.quality = Some(q);
        }
        only(3, &[OutputFormat::Jpeg])?;
        encoding.progressive = self.flag(3)?;
        only(4, &[OutputFormat::Jpeg])?;
        encoding.chroma = match self.arg(4) {
            None => None,
            Some(text) => Some(
                Chroma::from_name(text).ok_or_else(|| self.bad(4, text, "expected 420 or 444"))?,
            ),
        };
        only(5, &[OutputFormat::Png])?;
        encoding.palette = match self.arg(5).map(str::to_ascii_lowercase).as_deref() {
            None | Some("false") => None,
            Some("true") => Some(MAX_PALETTE_COLOURS),
            Some(_) => self
                .integer(5, 2, i64::from(MAX_PALETTE_COLOURS))?
                .map(|c| c as u16),
        };
        only(6, &[OutputFormat::Png])?;
        encoding.compression = self
            .integer(6, 0, i64::from(MAX_PNG_COMPRESSION))?
            .map(|v| v as u8);
        only(7, &[OutputFormat::Webp])?;
        encoding.effort = self
            .integer(7, 0, i64::from(MAX_WEBP_EFFORT))?
            .map(|v| v as u8);
        only(8, &[OutputFormat::Avif])?;
        encoding.speed = self
            .integer(8, 0, i64::from(MAX_AVIF_SPEED))?
            .map(|v| v as u8);
        Ok(encoding)
    }

    /// A yes/no argument: `true`/`false` (JSON booleans arrive as these).
    fn flag(&self, index: usize) -> Result<Option<bool>, OpsError> {
        match self.arg(index).map(str::to_ascii_lowercase).as_deref() {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(other) => Err(self.bad(index, other, "expected true or false")),
        }
    }
}
