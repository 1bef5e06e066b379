//! Chains: the two spellings (string and JSON) parsed into steps, presets expanded, and the
//! result normalised into the one canonical [`Chain`].

use std::fmt;

use crate::EncodingDefaults;
use crate::OpsError;
use crate::args::RawOp;
use crate::operation::{Encoding, Keep, Milli, Operation, Rotation, Watermark};
use crate::preset::{NoPresets, PresetLookup, PresetRef};

/// At most this many operations in one chain; longer chains are almost certainly abuse.
pub const MAX_CHAIN_LENGTH: usize = 32;

/// A validated, normalised operation chain. Construct it with [`Chain::parse`] or
/// [`Chain::from_json`]; its `Display` is the canonical string that keys are derived from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Chain {
    ops: Vec<Operation>,
    /// `max-bytes:N`: the encoded output's budget (written before the `format` step)
    max_bytes: Option<u64>,
    /// `keep:...`: the source metadata the output carries (written first)
    keep: Keep,
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
                Step::Op(_) | Step::Dpr(..) | Step::MaxBytes(..) | Step::Keep(..) => None,
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
        let mut dpr = None;
        let mut max_bytes = None;
        // A preset's own budget, which one written in the chain overrides.
        let mut preset_budget = None;
        // Where `keep` was first written (for errors) and everything the steps keep.
        let mut keep: Option<(usize, Keep)> = None;
        for (index, step) in steps.into_iter().enumerate() {
            match step {
                Step::Keep(position, kept) => {
                    let (first, before) = keep.unwrap_or((position, Keep::default()));
                    keep = Some((first, before.union(kept)));
                }
                Step::MaxBytes(position, _) if max_bytes.is_some() => {
                    return Err(OpsError::Misplaced {
                        position,
                        op: "max-bytes",
                        reason: "may appear once",
                    });
                }
                Step::MaxBytes(position, bytes) => max_bytes = Some((position, bytes)),
                // `None` is an operation that is the identity as written (`rotate:360`).
                Step::Op(raw) => {
                    if let Some(op) = raw.build()? {
                        ops.push((raw.position, op));
                    }
                }
                Step::Dpr(position, _) if index > 0 => {
                    return Err(OpsError::Misplaced {
                        position,
                        op: "dpr",
                        reason: "must be the first operation",
                    });
                }
                Step::Dpr(_, factor) => dpr = Some(factor),
                Step::Preset(position, reference) => {
                    let chain =
                        presets
                            .lookup(&reference)
                            .ok_or_else(|| OpsError::UnknownPreset {
                                position,
                                reference: reference.to_string(),
                            })?;
                    ops.extend(chain.ops.iter().map(|op| (position, op.clone())));
                    preset_budget = preset_budget.or(chain.max_bytes.map(|b| (position, b)));
                    if !chain.keep.is_nothing() {
                        let (first, before) = keep.unwrap_or((position, Keep::default()));
                        keep = Some((first, before.union(chain.keep)));
                    }
                }
            }
        }
        check_length(ops.len())?;
        if let Some(factor) = dpr {
            ops = scale_by_dpr(ops, factor)?;
        }
        let mut chain = normalise(ops)?;
        if let Some((position, bytes)) = max_bytes.or(preset_budget) {
            if chain.is_analysis() {
                return Err(OpsError::Misplaced {
                    position,
                    op: "max-bytes",
                    reason: "cannot be combined with analyze",
                });
            }
            chain.max_bytes = Some(bytes);
        }
        if let Some((position, kept)) = keep {
            if chain.is_analysis() {
                return Err(OpsError::Misplaced {
                    position,
                    op: "keep",
                    reason: "cannot be combined with analyze",
                });
            }
            chain.keep = kept;
        }
        Ok(chain)
    }

    /// The budget of `max-bytes:N`, if the chain has one: the encoder lowers quality, then
    /// size, until the output fits.
    pub fn max_bytes(&self) -> Option<u64> {
        self.max_bytes
    }

    /// The source metadata the output keeps (`keep:icc`, `keep:copyright`); nothing by default.
    pub fn keep(&self) -> Keep {
        self.keep
    }

    /// The watermarks the chain composites, in order.
    pub fn watermarks(&self) -> impl Iterator<Item = &Watermark> {
        self.ops.iter().filter_map(|op| match op {
            Operation::Watermark(watermark) => Some(watermark),
            _ => None,
        })
    }

    /// The chain with each watermark's content version set from `version` (by image id): the
    /// pipeline's step before it derives a key, so that replacing a watermark image changes
    /// the key of every variant that shows it.
    pub fn with_watermark_versions(
        &self,
        version: impl Fn(&str) -> Option<std::sync::Arc<str>>,
    ) -> Chain {
        let ops = self
            .ops
            .iter()
            .map(|op| match op {
                Operation::Watermark(watermark) => Operation::Watermark(Watermark {
                    version: version(&watermark.image),
                    ..watermark.clone()
                }),
                other => other.clone(),
            })
            .collect();
        Chain {
            ops,
            max_bytes: self.max_bytes,
            keep: self.keep,
        }
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

    /// The chain of the first `n` operations: the key of an intermediate result. It keeps
    /// `keep:icc`, which decides the colour space of its pixels, and nothing that only the
    /// encoder reads.
    pub fn prefix(&self, n: usize) -> Chain {
        Chain {
            max_bytes: None,
            keep: Keep {
                icc: self.keep.icc,
                copyright: false,
            },
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

/// The operations in order, with `keep:...` first and `max-bytes:N` just before the `format`
/// step, or last when there is none (both may be written anywhere).
impl fmt::Display for Chain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(f, None)
    }
}

/// [`Chain::resolved_text`]'s writer.
struct Resolved<'a>(&'a Chain, &'a EncodingDefaults);

impl fmt::Display for Resolved<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.write(f, Some(self.1))
    }
}

impl Chain {
    /// The canonical text with the `format` step resolved with `defaults` (what keys hash),
    /// written without building the resolved chain.
    pub fn resolved_text(&self, defaults: &EncodingDefaults) -> String {
        use std::fmt::Write;
        // Room for a typical chain, so the text is written with one allocation.
        let mut text = String::with_capacity(128);
        let _ = write!(text, "{}", Resolved(self, defaults));
        text
    }

    /// The canonical text; with `defaults`, the `format` step resolved.
    fn write(
        &self,
        f: &mut fmt::Formatter<'_>,
        defaults: Option<&EncodingDefaults>,
    ) -> fmt::Result {
        let budget_at = match self.ops.last() {
            Some(Operation::Format(_)) => self.ops.len() - 1,
            _ => self.ops.len(),
        };
        let mut first = true;
        let mut separate = |f: &mut fmt::Formatter<'_>| {
            if first {
                first = false;
                Ok(())
            } else {
                f.write_str(",")
            }
        };
        if !self.keep.is_nothing() {
            separate(f)?;
            write!(f, "{}", self.keep)?;
        }
        for (i, op) in self.ops.iter().enumerate() {
            if let Some(bytes) = self.max_bytes.filter(|_| i == budget_at) {
                separate(f)?;
                write!(f, "max-bytes:{bytes}")?;
            }
            separate(f)?;
            match (op, defaults) {
                (Operation::Format(encoding), Some(defaults)) => {
                    write!(f, "format:{}", encoding.resolved(defaults))?
                }
                _ => write!(f, "{op}")?,
            }
        }
        if let Some(bytes) = self.max_bytes.filter(|_| budget_at == self.ops.len()) {
            separate(f)?;
            write!(f, "max-bytes:{bytes}")?;
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

/// One step of a chain as written: an operation, a preset still to be expanded, or the
/// device-pixel ratio that multiplies the sizes of every later step.
enum Step {
    Op(RawOp),
    Preset(usize, PresetRef),
    Dpr(usize, Milli),
    MaxBytes(usize, u64),
    Keep(usize, Keep),
}

impl Step {
    /// A `preset` step's arguments (read through the one argument table) become its
    /// reference; any other operation stays raw until it is built.
    fn of(raw: RawOp) -> Result<Step, OpsError> {
        if raw.name == "dpr" {
            return raw
                .dpr_factor()
                .map(|factor| Step::Dpr(raw.position, factor));
        }
        if raw.name == "max-bytes" {
            return raw
                .byte_budget()
                .map(|bytes| Step::MaxBytes(raw.position, bytes));
        }
        if raw.name == "keep" {
            return raw.kept().map(|keep| Step::Keep(raw.position, keep));
        }
        if raw.name != "preset" {
            return Ok(Step::Op(raw));
        }
        PresetRef::new(raw.position, raw.arg(0), raw.arg(1))
            .map(|reference| Step::Preset(raw.position, reference))
    }
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
        .map(|(index, part)| RawOp::from_text(index + 1, part).and_then(Step::of))
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
        .map(|(index, item)| RawOp::from_json(index + 1, item).and_then(Step::of))
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

/// `dpr:FACTOR` folded into the steps after it: the chain it leaves is the one a user would
/// write with the sizes multiplied, so both share a key.
fn scale_by_dpr(
    ops: Vec<(usize, Operation)>,
    factor: Milli,
) -> Result<Vec<(usize, Operation)>, OpsError> {
    ops.into_iter()
        .map(|(position, op)| {
            let name = op.name();
            op.scaled(factor)
                .map(|scaled| (position, scaled))
                .map_err(|(arg, value)| OpsError::BadArgument {
                    position,
                    op: name,
                    arg,
                    value: value.to_string(),
                    reason: format!(
                        "`dpr:{factor}` makes it more than {}",
                        crate::operation::MAX_DIMENSION
                    ),
                })
        })
        .collect()
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
            Operation::Frame(_) if index > 0 => {
                return Err(OpsError::Misplaced {
                    position: *position,
                    op: "frame",
                    reason: "must be the first operation",
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
        match (out.last(), &op) {
            (Some(&Operation::Rotate(a)), &Operation::Rotate(b)) => {
                out.pop();
                let sum = i64::from(a.degrees()) + i64::from(b.degrees());
                if let Some(r) = Rotation::from_degrees(sum) {
                    out.push(Operation::Rotate(r));
                }
            }
            (Some(&Operation::Flip(a)), &Operation::Flip(b)) if a == b => {
                out.pop();
            }
            _ => out.push(op),
        }
    }
    Ok(Chain {
        ops: out,
        max_bytes: None,
        keep: Keep::default(),
    })
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
        check("format:jpg", "format:jpeg");
        check("format:webp:lossless", "format:webp:lossless");
        check("format:png", "format:png");
        check("format:avif", "format:avif");
        check("format:jpeg:444:90:progressive", "error: bad options `90`");
        check(
            "format:jpeg:90:444:progressive",
            "format:jpeg:90:progressive:444",
        );
        check(
            "format:png:palette=64:compression=4",
            "format:png:palette=64:compression=4",
        );
        check("format:png:palette", "format:png:palette");
        check("format:webp:70:effort=6", "format:webp:70:effort=6");
        check("format:avif:speed=3", "format:avif:speed=3");
        check(
            "format:webp:effort=7",
            "error: bad effort `7`: must be between 0 and 6",
        );
        check(
            "format:jpeg:effort=3",
            "error: bad effort `3`: applies to webp only",
        );
        check(
            "format:png:progressive",
            "error: bad progressive `true`: applies to jpeg only",
        );
        check(
            "format:png:palette=1",
            "error: bad palette `1`: must be between 2 and 256",
        );
        check(
            "format:jpeg:speed=3:speed=4",
            "error: bad speed `speed=4`: given twice",
        );
        check("format:jpeg:fast", "error: bad options `fast`");
        check("format:jpeg:turbo=1", "error: unknown option `turbo`");
        check("greyscale", "grayscale");
        check(
            "max-bytes:50000,resize:100,format:webp",
            "resize:100:0:fit,max-bytes:50000,format:webp",
        );
        check("format:jpeg,max_bytes:500", "max-bytes:500,format:jpeg");
        check(
            "resize:100,maxbytes:2000",
            "resize:100:0:fit,max-bytes:2000",
        );
        check("max-bytes:2000", "max-bytes:2000");
        check(r#"[{"op":"max-bytes","bytes":4000}]"#, "max-bytes:4000");
        check(
            "max-bytes:99",
            "error: bad bytes `99`: must be between 100 and",
        );
        check(
            "max-bytes:1000,max-bytes:2000",
            "error: operation 2 `max-bytes`: may appear once",
        );
        check(
            "max-bytes:1000,analyze",
            "error: cannot be combined with analyze",
        );
        check(
            "resize:100,keep:copyright:ICC,format:jpeg",
            "keep:icc:copyright,resize:100:0:fit,format:jpeg",
        );
        check(
            "keep:icc,grayscale,keep:copyright,keep:icc",
            "keep:icc:copyright,grayscale",
        );
        check("keep:icc", "keep:icc");
        check(
            r#"[{"op":"keep","copyright":true},{"op":"format","format":"png"}]"#,
            "keep:copyright,format:png",
        );
        check(
            r#"[{"op":"keep","icc":false,"copyright":true}]"#,
            "keep:copyright",
        );
        check("keep", "error: operation 1 `keep`: missing argument");
        check(r#"[{"op":"keep","icc":false}]"#, "error: missing argument");
        check(
            "keep:gps",
            "error: bad metadata `gps`: expected icc or copyright",
        );
        check(
            "keep:icc,analyze",
            "error: operation 1 `keep`: cannot be combined with analyze",
        );
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
        check("format:GIF", "format:gif");
        check("frame:0,resize:100", "frame:0,resize:100:0:fit");
        check(r#"[{"op":"frame","index":3}]"#, "frame:3");
    }

    #[test]
    fn gravity_has_one_spelling_per_window() {
        check("resize:300:200:fill:centre", "resize:300:200:fill");
        check("resize:300:200:fill:CENTER", "resize:300:200:fill");
        check("resize:300:200:cover:ne", "resize:300:200:fill:north-east");
        check(
            "resize:300:200:fill:south_west",
            "resize:300:200:fill:south-west",
        );
        check("resize:300:200:fill:top", "resize:300:200:fill:north");
        check(
            "resize:300:200:fill:focus:0.50:0.250",
            "resize:300:200:fill:focus:0.5:0.25",
        );
        check(
            "resize:300:200:fill:Focus: 0.3 :0.7",
            "resize:300:200:fill:focus:0.3:0.7",
        );
        check("crop:100:50:centre", "crop:100:50");
        check("crop:100:50:west", "crop:100:50:west");
        check("crop:100:50:focus:1:0", "crop:100:50:focus:1:0");
        check(
            r#"[{"op":"crop","width":100,"height":50,"gravity":"nw"}]"#,
            "crop:100:50:north-west",
        );
        check(
            r#"[{"op":"resize","width":300,"height":200,"mode":"fill","gravity":"focus:0.3:0.7"}]"#,
            "resize:300:200:fill:focus:0.3:0.7",
        );
        check(
            "resize:300:200:fill:up",
            "error: bad gravity `up`: expected centre, north",
        );
        check(
            "resize:300:200:fit:north",
            "error: `fit` keeps the whole image; a gravity needs `fill`",
        );
        check(
            "crop:100:50:focus:1.5:0",
            "error: bad gravity `focus:1.5:0`",
        );
        check("crop:100:50:north:3", "error: a gravity takes no offset");
        check(
            r#"[{"op":"crop","width":100,"height":50,"x":1,"y":2,"gravity":"north"}]"#,
            "error: a gravity takes no offset",
        );
    }

    #[test]
    fn canvas_and_filter_steps_have_one_spelling() {
        // smart gravity, relative crop
        check("resize:300:200:fill:smart", "resize:300:200:fill:smart");
        check("crop:200:200:attention", "crop:200:200:smart");
        check("crop:0.5:0.50:north-west", "crop:0.5:0.5:north-west");
        check("crop:0.25:300", "crop:0.25:300");
        check(
            r#"[{"op":"crop","width":0.5,"height":0.5,"gravity":"smart"}]"#,
            "crop:0.5:0.5:smart",
        );
        // contain and its colour, enlarge
        check("resize:300:200:contain", "resize:300:200:contain");
        check(
            "resize:300:200:letterbox:FF0000",
            "resize:300:200:contain:ff0000",
        );
        check(
            "resize:300:200:contain:#ff0000ff",
            "resize:300:200:contain:ff0000",
        );
        check("resize:300:200:contain:ff000000", "resize:300:200:contain");
        check(
            "resize:300:200:contain:00ff0080",
            "resize:300:200:contain:00ff0080",
        );
        check(
            r#"[{"op":"resize","width":300,"height":200,"mode":"contain","background":"ff0000","enlarge":true}]"#,
            "resize:300:200:contain:ff0000:enlarge",
        );
        check("resize:300:200:fit:enlarge", "resize:300:200:fit:enlarge");
        check(
            "resize:300:200:fill:north:enlarge",
            "resize:300:200:fill:north:enlarge",
        );
        check("resize:300:200:force:enlarge", "resize:300:200:force");
        check(
            r#"[{"op":"resize","width":300,"height":200,"mode":"fill","enlarge":"true"}]"#,
            "resize:300:200:fill:enlarge",
        );
        // pad: CSS order, missing sides as CSS, the colour last
        check("pad:10", "pad:10:10:10:10");
        check("pad:10:20", "pad:10:20:10:20");
        check("pad:10:20:30", "pad:10:20:30:20");
        check("pad:1:2:3:4:ffffff", "pad:1:2:3:4:ffffff");
        check("pad:10:ff0000", "pad:10:10:10:10:ff0000");
        check("padding:0,grayscale", "grayscale");
        check(
            r#"[{"op":"pad","top":5,"left":7,"color":"000000"}]"#,
            "pad:5:5:5:7:000000",
        );
        check("background:FFF000", "background:fff000");
        check("bg:00000000,grayscale", "grayscale");
        check("trim", "trim:10");
        check("trim:0", "trim:0");
        // rotate by any angle; right angles stay lossless and fold
        check("rotate:45", "rotate:45");
        check("rotate:-45", "rotate:315");
        check("rotate:22.5:ffffff", "rotate:22.5:ffffff");
        check("rotate:450", "rotate:90");
        check("rotate:90:ff0000", "rotate:90");
        check("rotate:90,rotate:45", "rotate:90,rotate:45");
        // dpr multiplies every later size and disappears
        check("dpr:2,resize:100:80", "resize:200:160:fit");
        check("dpr:1,resize:100:80", "resize:100:80:fit");
        check(
            "dpr:1.5,crop:100:50:10:20,pad:4,round:8,thumbnail:100",
            "crop:150:75:15:30,pad:6:6:6:6,round:12,thumbnail:150",
        );
        check("dpr:3,crop:0.5:0.5", "crop:0.5:0.5");
        check(
            r#"[{"op":"dpr","factor":2},{"op":"resize","width":100,"height":80}]"#,
            "resize:200:160:fit",
        );
        // filters
        check("pixelate:1,grayscale", "grayscale");
        check("pixelate:8", "pixelate:8");
        check("tint:Ff8800", "tint:ff8800");
        check("gamma:1.0,grayscale", "grayscale");
        check("gamma:2.20", "gamma:2.2");
        check("normalise", "normalize");
        check("median:0,median:3", "median:3");
        check("rounded:20", "round:20");
        check("modulate:1:1:0,grayscale", "grayscale");
        check("modulate:1.2:0.5:-30", "modulate:1.2:0.5:330");
        check("modulate:1:1:360,grayscale", "grayscale");
        check("modulate:0.8", "modulate:0.8:1:0");
    }

    #[test]
    fn watermarks_have_one_spelling() {
        check(
            "watermark:logo.png",
            "watermark:logo.png:south-east:0.5:0.2",
        );
        check(
            "wm:brand/logo.png:tile:0.30:0.1",
            "watermark:brand/logo.png:tile:0.3:0.1",
        );
        check(
            "watermark:logo.png:focus:0.1:0.9:1",
            "watermark:logo.png:focus:0.1:0.9:1:0.2",
        );
        check(
            r#"[{"op":"watermark","image":"logo.png","position":"nw","opacity":0.25}]"#,
            "watermark:logo.png:north-west:0.25:0.2",
        );
        check(
            "watermark:logo.png:centre:0.5:0.2:00112233AABBCCDD",
            "watermark:logo.png:centre:0.5:0.2:00112233aabbccdd",
        );
        check("watermark:logo.png:north:0,grayscale", "grayscale");
        check("watermark", "error: missing argument `image`");
        check(
            "watermark:logo.png:smart",
            "error: bad position `smart`: a watermark is placed",
        );
        check("watermark:logo.png:up", "error: bad position `up`");
        check(
            "watermark:logo.png:north:1.5",
            "error: bad opacity `1.5`: must be between 0 and 1",
        );
        check(
            "watermark:logo.png:north:1:0",
            "error: bad scale `0`: must be above 0",
        );
        check(
            "watermark:logo.png:north:1:1:v1",
            "error: bad version `v1`: expected 16 hex digits",
        );
        let chain = Chain::parse("watermark:a.png,resize:10:10,watermark:b.png:tile").unwrap();
        let pinned = chain.with_watermark_versions(|id| Some(format!("{:016x}", id.len()).into()));
        assert_eq!(
            pinned.to_string(),
            "watermark:a.png:south-east:0.5:0.2:0000000000000005,resize:10:10:fit,\
             watermark:b.png:tile:0.5:0.2:0000000000000005"
        );
        assert_eq!(Chain::parse(&pinned.to_string()).unwrap(), pinned);
        assert_eq!(pinned.watermarks().count(), 2);
    }

    #[test]
    fn canvas_and_filter_errors_name_the_argument() {
        check(
            "crop:0:10",
            "error: operation 1 `crop`: bad width `0`: must be above 0",
        );
        check("crop:0.0001:10", "error: bad width `0.0001`: a fraction");
        check(
            "resize:300:200:contain:north",
            "error: bad gravity `north`: `contain` centres the image",
        );
        check("resize:300:200:fit:ff0000", "error: bad gravity `ff0000`");
        check(
            r#"[{"op":"resize","width":300,"height":200,"background":"ff0000"}]"#,
            "error: bad background `ff0000`: `fit` leaves no margin",
        );
        check(
            "resize:300:0:contain",
            "error: `contain` needs both width and height",
        );
        check(
            "resize:300:200:fill:north:maybe",
            "error: bad enlarge `maybe`",
        );
        check("pad", "error: missing argument `top`");
        check(
            "pad:20000",
            "error: bad top `20000`: must be between 0 and 16384",
        );
        check(
            "pad:1:2:3:4:red",
            "error: bad color `red`: expected a colour as RRGGBB",
        );
        check("pad:1:ff0000:3", "error: bad right `ff0000`");
        check("background", "error: missing argument `color`");
        check("background:12345", "error: bad color `12345`");
        check(
            "trim:256",
            "error: bad threshold `256`: must be between 0 and 255",
        );
        check(
            "rotate:abc",
            "error: bad degrees `abc`: expected a number of degrees",
        );
        check("rotate:45:blue", "error: bad background `blue`");
        check(
            "grayscale,dpr:2",
            "error: operation 2 `dpr`: must be the first operation",
        );
        check("dpr:9", "error: bad factor `9`: must be between 0 and 8");
        check(
            "dpr:0.5",
            "error: bad factor `0.5`: must be between 1 and 8",
        );
        check(
            "dpr:2,resize:10000:100",
            "error: operation 2 `resize`: bad width `20000`: `dpr:2` makes it more than 16384",
        );
        check(
            "pixelate:0",
            "error: bad size `0`: must be between 1 and 1024",
        );
        check(
            "gamma:0.05",
            "error: bad gamma `0.05`: must be at least 0.1",
        );
        check(
            "gamma:11",
            "error: bad gamma `11`: must be between 0 and 10",
        );
        check(
            "median:21",
            "error: bad radius `21`: must be between 0 and 20",
        );
        check("tint", "error: missing argument `color`");
        check("modulate:1:11", "error: bad saturation `11`");
        check("normalize:1", "error: takes at most 0 arguments, got 1");
    }

    #[test]
    fn json_form_matches_string_form() {
        check(
            r#"[{"op":"resize","width":800,"height":600},{"op":"format","format":"jpg"}]"#,
            "resize:800:600:fit,format:jpeg",
        );
        check(
            r#"[{"op":"format","format":"jpeg","quality":90,"progressive":true,"chroma":"444"}]"#,
            "format:jpeg:90:progressive:444",
        );
        check(
            r#"[{"op":"format","format":"png","palette":32,"compression":5}]"#,
            "format:png:palette=32:compression=5",
        );
        check(
            r#"[{"op":"format","format":"png","palette":true}]"#,
            "format:png:palette",
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
        check("rotate", "error: missing argument `degrees`");
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
        check("format:bmp", "error: bad format `bmp`");
        check("format:gif:80", "error: gif takes no quality");
        check(
            "resize:100,frame:1",
            "error: operation 2 `frame`: must be the first",
        );
        check("frame:500", "error: bad index `500`");
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
    fn a_prefix_keeps_what_decides_its_pixels() {
        let chain = Chain::parse("keep:icc:copyright,resize:100,blur:2,format:png").unwrap();
        assert_eq!(chain.prefix(1).to_string(), "keep:icc,resize:100:0:fit");
        let chain = Chain::parse("keep:copyright,resize:100,blur:2").unwrap();
        assert_eq!(chain.prefix(1).to_string(), "resize:100:0:fit");
    }

    #[test]
    fn resolved_text_spells_out_the_encoding_and_nothing_else() {
        let defaults = EncodingDefaults::default();
        let chain = Chain::parse("resize:100,max-bytes:500,format:jpeg").unwrap();
        assert_eq!(
            chain.resolved_text(&defaults),
            "resize:100:0:fit,max-bytes:500,format:jpeg:80:progressive=false:420"
        );
        assert_eq!(
            chain.to_string(),
            "resize:100:0:fit,max-bytes:500,format:jpeg"
        );
        let bare = Chain::parse("grayscale").unwrap();
        assert_eq!(bare.resolved_text(&defaults), "grayscale");
    }

    #[test]
    fn serde_round_trips_through_the_canonical_string() {
        let chain = Chain::parse("resize:800:600,format:webp").unwrap();
        let json = serde_json::to_string(&chain).unwrap();
        assert_eq!(json, r#""resize:800:600:fit,format:webp""#);
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
