//! Operations, their arguments, and the two spellings of a chain.
//!
//! Both spellings are first turned into [`RawOp`]s (a canonical operation name plus one optional
//! string per declared argument), and only then validated by one function per operation. That is
//! what makes `resize:800:600` and `{"op":"resize","width":800,"height":600}` the same request:
//! there is one validator, not two.

use std::fmt;

use crate::OpsError;
use crate::preset::{NoPresets, PresetLookup, PresetRef};

/// At most this many operations in one chain; longer chains are almost certainly abuse.
pub const MAX_CHAIN_LENGTH: usize = 32;
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
    /// Scale to cover the box, keeping the aspect ratio, then crop the centre; never enlarges.
    Fill,
    /// Scale to exactly the box, ignoring the aspect ratio.
    Force,
}

impl ResizeMode {
    fn name(self) -> &'static str {
        match self {
            ResizeMode::Fit => "fit",
            ResizeMode::Fill => "fill",
            ResizeMode::Force => "force",
        }
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
    fn degrees(self) -> u32 {
        match self {
            Rotation::Deg90 => 90,
            Rotation::Deg180 => 180,
            Rotation::Deg270 => 270,
        }
    }

    fn from_degrees(degrees: i64) -> Option<Rotation> {
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
    },
    /// Fit into a `size` x `size` box, as `vipsthumbnail -s size`.
    Thumbnail {
        /// box edge
        size: u32,
    },
    /// Cut a `width` x `height` window, at (`x`, `y`) or centred when no origin is given.
    Crop {
        /// window width
        width: u32,
        /// window height
        height: u32,
        /// top-left corner; `None` centres the window
        origin: Option<(u32, u32)>,
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
    fn is_identity(&self) -> bool {
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
            } => write!(f, "{name}:{width}:{height}:{}", mode.name()),
            Operation::Thumbnail { size } => write!(f, "{name}:{size}"),
            Operation::Crop {
                width,
                height,
                origin: None,
            } => write!(f, "{name}:{width}:{height}"),
            Operation::Crop {
                width,
                height,
                origin: Some((x, y)),
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

/// A validated, normalised operation chain. Construct it with [`Chain::parse`] or
/// [`Chain::from_json`]; its `Display` is the canonical string that keys are derived from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Chain {
    ops: Vec<Operation>,
}

impl Chain {
    /// Parses the string form: operations separated by `,`, arguments by `:`. A `preset`
    /// step is an error here; see [`Chain::parse_with`].
    pub fn parse(text: &str) -> Result<Chain, OpsError> {
        Chain::parse_with(text, &NoPresets)
    }

    /// Parses the string form, expanding `preset:NAME[:VERSION]` steps from `presets`.
    pub fn parse_with(text: &str, presets: &dyn PresetLookup) -> Result<Chain, OpsError> {
        Chain::from_steps(text_steps(text)?, presets)
    }

    /// Parses the JSON form: an array of objects with `op` (or the seed's `type`) and named
    /// arguments, e.g. `[{"op":"resize","width":800,"height":600}]`.
    pub fn from_json(text: &str) -> Result<Chain, OpsError> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| OpsError::Json(e.to_string()))?;
        Chain::from_json_value(&value)
    }

    /// Like [`Chain::from_json`], from an already parsed value.
    pub fn from_json_value(value: &serde_json::Value) -> Result<Chain, OpsError> {
        Chain::from_json_value_with(value, &NoPresets)
    }

    /// Like [`Chain::from_json_value`], expanding `{"op":"preset",...}` steps from `presets`.
    pub fn from_json_value_with(
        value: &serde_json::Value,
        presets: &dyn PresetLookup,
    ) -> Result<Chain, OpsError> {
        Chain::from_steps(json_steps(value)?, presets)
    }

    /// Parses either form: text starting with `[` (or `{`, a malformed JSON chain) is JSON,
    /// anything else the string form.
    pub fn parse_any(text: &str) -> Result<Chain, OpsError> {
        Chain::parse_any_with(text, &NoPresets)
    }

    /// Like [`Chain::parse_any`], expanding preset steps from `presets`.
    pub fn parse_any_with(text: &str, presets: &dyn PresetLookup) -> Result<Chain, OpsError> {
        Chain::from_steps(any_steps(text)?, presets)
    }

    /// The presets a chain (either form) names, in order, without resolving them: what a
    /// caller must fetch before [`Chain::parse_any_with`] can succeed.
    pub fn preset_refs(text: &str) -> Result<Vec<PresetRef>, OpsError> {
        Ok(any_steps(text)?
            .into_iter()
            .filter_map(|step| match step {
                Step::Preset(_, reference) => Some(reference),
                Step::Op(_) => None,
            })
            .collect())
    }

    /// Builds a chain from operations, normalising and validating as parsing does.
    pub fn from_operations(ops: Vec<Operation>) -> Result<Chain, OpsError> {
        check_length(ops.len())?;
        let positioned = ops.into_iter().enumerate().map(|(i, op)| (i + 1, op));
        normalise(positioned.collect())
    }

    fn from_steps(steps: Vec<Step>, presets: &dyn PresetLookup) -> Result<Chain, OpsError> {
        let mut ops = Vec::with_capacity(steps.len());
        for step in steps {
            match step {
                // `None` is an operation that is the identity as written (`rotate:360`).
                Step::Op(raw) => {
                    if let Some(op) = raw.build()? {
                        ops.push((raw.position, op));
                    }
                }
                Step::Preset(position, reference) => {
                    let chain =
                        presets
                            .lookup(&reference)
                            .ok_or_else(|| OpsError::UnknownPreset {
                                position,
                                reference: reference.to_string(),
                            })?;
                    ops.extend(chain.ops.iter().map(|op| (position, *op)));
                }
            }
        }
        check_length(ops.len())?;
        normalise(ops)
    }

    /// The operations, in order.
    pub fn ops(&self) -> &[Operation] {
        &self.ops
    }

    /// Number of operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// True for the empty chain, which asks for the original re-encoded.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The chain of the first `n` operations: the key of an intermediate result.
    pub fn prefix(&self, n: usize) -> Chain {
        Chain {
            ops: self.ops[..n.min(self.ops.len())].to_vec(),
        }
    }

    /// The encoding the chain ends with, if it names one.
    pub fn encoding(&self) -> Option<Encoding> {
        match self.ops.last() {
            Some(Operation::Format(encoding)) => Some(*encoding),
            _ => None,
        }
    }

    /// True when the chain ends in `analyze` and produces JSON, not an image.
    pub fn is_analysis(&self) -> bool {
        matches!(self.ops.last(), Some(Operation::Analyze))
    }

    /// The pixel operations: everything but the trailing `format` or `analyze`.
    pub fn pixel_ops(&self) -> &[Operation] {
        match self.ops.last() {
            Some(Operation::Format(_) | Operation::Analyze) => &self.ops[..self.ops.len() - 1],
            _ => &self.ops,
        }
    }
}

impl fmt::Display for Chain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, op) in self.ops.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{op}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Chain {
    type Err = OpsError;
    fn from_str(s: &str) -> Result<Chain, OpsError> {
        Chain::parse_any(s)
    }
}

/// Serialised as the canonical string; deserialised from either form, so job payloads can
/// carry what the user wrote.
impl serde::Serialize for Chain {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Chain {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Chain, D::Error> {
        use serde::de::Error;
        let value = serde_json::Value::deserialize(deserializer)?;
        match &value {
            serde_json::Value::String(text) => Chain::parse(text),
            other => Chain::from_json_value(other),
        }
        .map_err(D::Error::custom)
    }
}

/// One step of a chain as written: an operation, or a preset still to be expanded.
enum Step {
    Op(RawOp),
    Preset(usize, PresetRef),
}

fn any_steps(text: &str) -> Result<Vec<Step>, OpsError> {
    if text.trim_start().starts_with(['[', '{']) {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| OpsError::Json(e.to_string()))?;
        json_steps(&value)
    } else {
        text_steps(text)
    }
}

fn text_steps(text: &str) -> Result<Vec<Step>, OpsError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(OpsError::EmptyChain);
    }
    let parts: Vec<&str> = text.split(',').collect();
    check_length(parts.len())?;
    parts
        .iter()
        .enumerate()
        .map(|(index, part)| {
            let position = index + 1;
            let mut args = part.trim().split(':');
            let head = args.next().unwrap_or_default().trim();
            if !head.eq_ignore_ascii_case("preset") {
                return RawOp::from_text(position, part).map(Step::Op);
            }
            let (name, version) = (args.next(), args.next());
            let extra = args.count();
            if extra > 0 {
                return Err(OpsError::TooManyArguments {
                    position,
                    op: "preset",
                    got: 2 + extra,
                    max: 2,
                });
            }
            PresetRef::new(position, name, version).map(|r| Step::Preset(position, r))
        })
        .collect()
}

fn json_steps(value: &serde_json::Value) -> Result<Vec<Step>, OpsError> {
    let items = value
        .as_array()
        .ok_or_else(|| OpsError::Json("expected an array of operations".into()))?;
    if items.is_empty() {
        return Err(OpsError::EmptyChain);
    }
    check_length(items.len())?;
    items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            let position = index + 1;
            let Some(object) = item.as_object() else {
                return RawOp::from_json(position, item).map(Step::Op);
            };
            let op = object.get("op").or_else(|| object.get("type"));
            if !op
                .and_then(|v| v.as_str())
                .is_some_and(|v| v.eq_ignore_ascii_case("preset"))
            {
                return RawOp::from_json(position, item).map(Step::Op);
            }
            let mut name = None;
            let mut version = None;
            for (field, value) in object {
                let text = match value {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Number(n) => n.to_string(),
                    _ => String::from("?"),
                };
                match field.as_str() {
                    "op" | "type" => {}
                    "name" => name = Some(text),
                    "version" => version = Some(text),
                    _ => {
                        return Err(OpsError::UnknownField {
                            position,
                            op: "preset",
                            field: field.clone(),
                        });
                    }
                }
            }
            PresetRef::new(position, name.as_deref(), version.as_deref())
                .map(|r| Step::Preset(position, r))
        })
        .collect()
}

fn check_length(count: usize) -> Result<(), OpsError> {
    if count > MAX_CHAIN_LENGTH {
        return Err(OpsError::TooLong {
            count,
            max: MAX_CHAIN_LENGTH,
        });
    }
    Ok(())
}

/// Drops identity steps, folds consecutive rotations and cancelling flips, and checks that
/// `format` and `analyze` stand last. Errors name positions in the chain as written.
fn normalise(ops: Vec<(usize, Operation)>) -> Result<Chain, OpsError> {
    let count = ops.len();
    for (index, (position, op)) in ops.iter().enumerate() {
        let is_last = index + 1 == count;
        match op {
            Operation::Format(_) if !is_last => {
                return Err(OpsError::Misplaced {
                    position: *position,
                    op: "format",
                    reason: "must be the last operation",
                });
            }
            Operation::Analyze if !is_last => {
                return Err(OpsError::Misplaced {
                    position: *position,
                    op: "analyze",
                    reason: "must be the last operation, and cannot be combined with format",
                });
            }
            _ => {}
        }
    }
    let mut out: Vec<Operation> = Vec::with_capacity(count);
    for (_, op) in ops {
        if op.is_identity() {
            continue;
        }
        match (out.last().copied(), op) {
            (Some(Operation::Rotate(a)), Operation::Rotate(b)) => {
                out.pop();
                let sum = i64::from(a.degrees()) + i64::from(b.degrees());
                if let Some(r) = Rotation::from_degrees(sum) {
                    out.push(Operation::Rotate(r));
                }
            }
            (Some(Operation::Flip(a)), Operation::Flip(b)) if a == b => {
                out.pop();
            }
            _ => out.push(op),
        }
    }
    Ok(Chain { ops: out })
}

/// Argument names of each operation, in positional order. The JSON form uses the same names.
fn spec(name: &str) -> Option<(&'static str, &'static [&'static str])> {
    Some(match name.to_ascii_lowercase().as_str() {
        "resize" => ("resize", &["width", "height", "mode"]),
        "thumbnail" | "thumb" => ("thumbnail", &["size"]),
        "crop" => ("crop", &["width", "height", "x", "y"]),
        "rotate" => ("rotate", &["degrees"]),
        "flip" => ("flip", &["axis"]),
        "grayscale" | "greyscale" | "gray" | "grey" => ("grayscale", &[]),
        "blur" => ("blur", &["sigma"]),
        "sharpen" => ("sharpen", &["sigma"]),
        "brightness" => ("brightness", &["value"]),
        "contrast" => ("contrast", &["value"]),
        "saturation" => ("saturation", &["value"]),
        "format" => ("format", &["format", "quality", "lossless"]),
        "analyze" | "analyse" => ("analyze", &[]),
        _ => return None,
    })
}

/// An operation name with one optional string per declared argument, before validation.
struct RawOp {
    position: usize,
    name: &'static str,
    arg_names: &'static [&'static str],
    args: Vec<Option<String>>,
}

impl RawOp {
    fn from_text(position: usize, text: &str) -> Result<RawOp, OpsError> {
        let mut parts = text.trim().split(':');
        let given = parts.next().unwrap_or_default().trim();
        let (name, arg_names) = spec(given).ok_or_else(|| OpsError::UnknownOperation {
            position,
            name: given.to_string(),
        })?;
        let positional: Vec<Option<String>> = parts
            .map(|p| Some(p.trim().to_string()).filter(|p| !p.is_empty()))
            .collect();
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

    fn from_json(position: usize, item: &serde_json::Value) -> Result<RawOp, OpsError> {
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

    fn arg(&self, index: usize) -> Option<&str> {
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

    fn build(&self) -> Result<Option<Operation>, OpsError> {
        Ok(Some(match self.name {
            "resize" => self.build_resize()?,
            "thumbnail" => Operation::Thumbnail {
                size: self.required_dimension(0)?,
            },
            "crop" => self.build_crop()?,
            "rotate" => {
                let degrees = self
                    .integer(0, -3600, 3600)?
                    .ok_or_else(|| self.missing(0))?;
                if degrees % 90 != 0 {
                    let text = degrees.to_string();
                    return Err(self.bad(0, &text, "must be a multiple of 90"));
                }
                match Rotation::from_degrees(degrees) {
                    Some(r) => Operation::Rotate(r),
                    None => return Ok(None),
                }
            }
            "flip" => Operation::Flip(match self.arg(0).map(str::to_ascii_lowercase).as_deref() {
                None | Some("h" | "horizontal" | "x") => FlipAxis::Horizontal,
                Some("v" | "vertical" | "y") => FlipAxis::Vertical,
                Some(other) => return Err(self.bad(0, other, "expected `h` or `v`")),
            }),
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
            "format" => Operation::Format(self.build_format()?),
            "analyze" => Operation::Analyze,
            other => unreachable!("spec() returned unknown operation {other}"),
        }))
    }

    fn build_resize(&self) -> Result<Operation, OpsError> {
        let width = self.dimension(0)?.unwrap_or(0);
        let height = self.dimension(1)?.unwrap_or(0);
        let mode = match self.arg(2).map(str::to_ascii_lowercase).as_deref() {
            None | Some("fit" | "inside" | "contain") => ResizeMode::Fit,
            Some("fill" | "cover") => ResizeMode::Fill,
            Some("force" | "stretch" | "exact") => ResizeMode::Force,
            Some(other) => return Err(self.bad(2, other, "expected `fit`, `fill` or `force`")),
        };
        if width == 0 && height == 0 {
            return Err(self.missing(0));
        }
        if mode != ResizeMode::Fit && (width == 0 || height == 0) {
            let (index, value) = if width == 0 { (0, width) } else { (1, height) };
            let reason = format!("`{}` needs both width and height", mode.name());
            return Err(self.bad(index, &value.to_string(), reason));
        }
        Ok(Operation::Resize {
            width,
            height,
            mode,
        })
    }

    fn build_crop(&self) -> Result<Operation, OpsError> {
        let width = self.required_dimension(0)?;
        let height = self.required_dimension(1)?;
        let x = self.integer(2, 0, i64::from(u32::MAX))?;
        let y = self.integer(3, 0, i64::from(u32::MAX))?;
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
        })
    }

    fn build_format(&self) -> Result<Encoding, OpsError> {
        let given = self.arg(0).ok_or_else(|| self.missing(0))?;
        let format = OutputFormat::from_name(given)
            .ok_or_else(|| self.bad(0, given, "expected jpeg, png, webp, avif or svg"))?;
        let lossless_flag = match self.arg(2).map(str::to_ascii_lowercase).as_deref() {
            None | Some("false") => false,
            Some("true" | "lossless") => true,
            Some(other) => return Err(self.bad(2, other, "expected true or false")),
        };
        let quality_text = self.arg(1);
        let lossless =
            lossless_flag || quality_text.is_some_and(|q| q.eq_ignore_ascii_case("lossless"));
        if lossless {
            if format != OutputFormat::Webp && format != OutputFormat::Png {
                return Err(self.bad(1, "lossless", "only webp and png can be lossless"));
            }
            if let Some(q) = quality_text.filter(|q| !q.eq_ignore_ascii_case("lossless")) {
                return Err(self.bad(1, q, "a lossless encoding takes no quality"));
            }
            return Ok(Encoding {
                format,
                quality: None,
            });
        }
        let quality = self.integer(1, 1, 100)?.map(|q| q as u8);
        match (format.default_quality(), quality) {
            (None, Some(q)) => {
                let reason = format!("{} takes no quality", format.name());
                Err(self.bad(1, &q.to_string(), reason))
            }
            (default, given) => Ok(Encoding {
                format,
                quality: given.or(default),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one data-driven check: `input` (string or JSON) normalises to `expect`, or fails with
    /// a message containing `expect` when it starts with `error:`.
    fn check(input: &str, expect: &str) {
        let got = match Chain::parse_any(input) {
            Ok(chain) => chain.to_string(),
            Err(e) => format!("error: {e}"),
        };
        if let Some(fragment) = expect.strip_prefix("error:") {
            assert!(
                got.starts_with("error:") && got.contains(fragment.trim()),
                "{input:?}: expected an error containing {fragment:?}, got {got:?}"
            );
        } else {
            assert_eq!(got, expect, "input {input:?}");
        }
    }

    #[test]
    fn normalises_defaults_and_aliases() {
        check("resize:800:600", "resize:800:600:fit");
        check("resize:800", "resize:800:0:fit");
        check("resize::600", "resize:0:600:fit");
        check("RESIZE:800:600:Cover", "resize:800:600:fill");
        check("format:jpg", "format:jpeg:80");
        check("format:webp:lossless", "format:webp:lossless");
        check("format:png", "format:png");
        check("format:avif", "format:avif:60");
        check("greyscale", "grayscale");
        check("rotate:-90", "rotate:270");
        check("rotate:90,rotate:90", "rotate:180");
        check("rotate:90,rotate:270,grayscale", "grayscale");
        check("flip,flip:h,grayscale", "grayscale");
        check("flip:vertical", "flip:v");
        check("blur:2.0", "blur:2");
        check("blur:2.50", "blur:2.5");
        check("blur:0,brightness:0,sharpen", "sharpen:1");
        check("rotate:360,grayscale", "grayscale");
        check(
            " resize : 800 : 600 , grayscale ",
            "resize:800:600:fit,grayscale",
        );
        check("thumb:200", "thumbnail:200");
        check("crop:100:50", "crop:100:50");
        check("crop:100:50:10:20", "crop:100:50:10:20");
        check("analyse", "analyze");
    }

    #[test]
    fn json_form_matches_string_form() {
        check(
            r#"[{"op":"resize","width":800,"height":600},{"op":"format","format":"jpg"}]"#,
            "resize:800:600:fit,format:jpeg:80",
        );
        check(r#"[{"type":"thumbnail","size":200}]"#, "thumbnail:200");
        check(r#"[{"op":"blur","sigma":2.5}]"#, "blur:2.5");
        check(
            r#"[{"op":"format","format":"webp","lossless":true}]"#,
            "format:webp:lossless",
        );
        check(
            r#"[{"op":"resize","width":800.0,"height":null}]"#,
            "resize:800:0:fit",
        );
    }

    #[test]
    fn rejects_bad_input_naming_the_problem() {
        check("", "error: empty operation chain");
        check("[]", "error: empty operation chain");
        check(
            "resize:abc:600",
            "error: operation 1 `resize`: bad width `abc`",
        );
        check(
            "grayscale,frobnicate",
            "error: operation 2: unknown operation `frobnicate`",
        );
        check(
            "resize:20000:10",
            "error: bad width `20000`: must be between 0 and 16384",
        );
        check("resize:0:0", "error: missing argument `width`");
        check(
            "resize:100:0:fill",
            "error: `fill` needs both width and height",
        );
        check(
            "rotate:45",
            "error: bad degrees `45`: must be a multiple of 90",
        );
        check(
            "blur",
            "error: operation 1 `blur`: missing argument `sigma`",
        );
        check("blur:-1", "error: bad sigma `-1`");
        check("blur:NaN", "error: bad sigma `NaN`: expected a number");
        check(
            "brightness:150",
            "error: bad value `150`: must be between -100 and 100",
        );
        check("format:gif", "error: bad format `gif`");
        check("format:png:80", "error: png takes no quality");
        check(
            "format:jpeg:lossless",
            "error: only webp and png can be lossless",
        );
        check("format:jpeg:0", "error: bad quality `0`");
        check(
            "format:webp,grayscale",
            "error: operation 1 `format`: must be the last operation",
        );
        check(
            "analyze,format:png",
            "error: `analyze`: must be the last operation",
        );
        check("grayscale:1", "error: takes at most 0 arguments, got 1");
        check("crop:10:10:5", "error: missing argument `y`");
        check(
            r#"[{"op":"resize","widht":800}]"#,
            "error: unknown field `widht`",
        );
        check(r#"[{"width":800}]"#, "error: missing `op`");
        check(r#"{"op":"resize"}"#, "error: expected an array");
        check(
            &vec!["grayscale"; 33].join(","),
            "error: 33 operations, at most 32",
        );
    }

    #[test]
    fn serde_round_trips_through_the_canonical_string() {
        let chain = Chain::parse("resize:800:600,format:webp").unwrap();
        let json = serde_json::to_string(&chain).unwrap();
        assert_eq!(json, r#""resize:800:600:fit,format:webp:80""#);
        let back: Chain = serde_json::from_str(&json).unwrap();
        assert_eq!(back, chain);
        let from_array: Chain = serde_json::from_str(
            r#"[{"op":"resize","width":800,"height":600},{"op":"format","format":"webp"}]"#,
        )
        .unwrap();
        assert_eq!(from_array, chain);
    }

    #[test]
    fn pixel_ops_exclude_the_terminal_step() {
        let chain = Chain::parse("grayscale,blur:1,format:png").unwrap();
        assert_eq!(chain.pixel_ops().len(), 2);
        assert_eq!(chain.prefix(1).to_string(), "grayscale");
        assert!(Chain::parse("analyze").unwrap().is_analysis());
    }
}
