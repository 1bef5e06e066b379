//! What a source says about itself beyond its pixels: its ICC profile and EXIF block, kept raw
//! as the decoders hand them over and read only when a request needs them. `analyze` reports
//! the profile's description and a summary of the EXIF (camera, lens, capture time,
//! orientation, and whether it carries a GPS position, never the position itself);
//! `keep:icc` embeds the profile in the output, and `keep:copyright` writes a new EXIF block
//! with only the source's `Copyright` and `Artist` ([`SourceMetadata::copyright_exif`]).
//! Nothing else of the source's EXIF ever reaches an output: the pixels are already upright, and
//! stripping is what image servers do by default.
//!
//! EXIF is read and written by kamadak-exif (pure Rust, fuzzed); a block it cannot read is left
//! out of the summary rather than failing the request.

use exif::{Context, Field, In, Tag, Value};
use serde::{Deserialize, Serialize};

/// The source's ICC profile and EXIF block, raw, where it has them. Carried with a request's
/// intermediate results, so a request resumed from one still knows them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceMetadata {
    /// the ICC profile the decoded pixels are in (before any conversion to sRGB)
    #[serde(default, with = "serde_bytes", skip_serializing_if = "Option::is_none")]
    icc: Option<Vec<u8>>,
    /// the EXIF block, TIFF-structured (without JPEG's `Exif\0\0` prefix)
    #[serde(default, with = "serde_bytes", skip_serializing_if = "Option::is_none")]
    exif: Option<Vec<u8>>,
}

/// A summary of an EXIF block.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExifSummary {
    /// make and model (`Google Pixel 4a`)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub camera: Option<String>,
    /// lens model
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lens: Option<String>,
    /// when the picture was taken, as EXIF writes it (`2022-08-22 20:30:46`), with its UTC
    /// offset when the file gives one
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub captured_at: Option<String>,
    /// the EXIF orientation (1-8) the decoder applied
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orientation: Option<u32>,
    /// whether the block records a GPS position (the coordinates are never reported)
    pub has_gps: bool,
}

impl SourceMetadata {
    /// The metadata of a source with these raw blocks: an ICC profile, and an EXIF block
    /// (TIFF-structured, with or without the `Exif\0\0` prefix JPEG puts before it). Empty
    /// blocks count as absent.
    pub(crate) fn new(icc: Option<Vec<u8>>, exif: Option<Vec<u8>>) -> SourceMetadata {
        let exif = exif.map(|mut exif| {
            if exif.starts_with(b"Exif\0\0") {
                exif.drain(..6);
            }
            exif
        });
        SourceMetadata {
            icc: icc.filter(|icc| !icc.is_empty()),
            exif: exif.filter(|exif| !exif.is_empty()),
        }
    }

    /// The raw ICC profile.
    pub fn icc(&self) -> Option<&[u8]> {
        self.icc.as_deref()
    }

    /// The raw EXIF block, TIFF-structured.
    pub fn exif(&self) -> Option<&[u8]> {
        self.exif.as_deref()
    }

    /// The ICC profile's description (`Display P3`, `sRGB IEC61966-2.1`, ...).
    pub fn icc_description(&self) -> Option<String> {
        self.icc().and_then(icc_description)
    }

    /// What the EXIF block says, if it can be read.
    pub fn exif_summary(&self) -> Option<ExifSummary> {
        self.exif().and_then(exif_summary)
    }

    /// A new EXIF block (TIFF, little-endian) with only the source's `Copyright` and `Artist`
    /// fields, for `keep:copyright`; `None` when the source has neither (or only blank ones).
    pub fn copyright_exif(&self) -> Option<Vec<u8>> {
        let exif = exif::Reader::new().read_raw(self.exif()?.to_vec()).ok()?;
        let kept: Vec<Field> = [Tag::Copyright, Tag::Artist]
            .into_iter()
            .filter_map(|tag| {
                let field = exif.get_field(tag, In::PRIMARY)?;
                ascii(field)?;
                Some(Field {
                    tag,
                    ifd_num: In::PRIMARY,
                    value: field.value.clone(),
                })
            })
            .collect();
        if kept.is_empty() {
            return None;
        }
        let mut writer = exif::experimental::Writer::new();
        for field in &kept {
            writer.push_field(field);
        }
        let mut out = std::io::Cursor::new(Vec::new());
        writer.write(&mut out, true).ok()?;
        Some(out.into_inner())
    }
}

fn icc_description(icc: &[u8]) -> Option<String> {
    let profile = lcms2::Profile::new_icc(icc).ok()?;
    let description = profile.info(lcms2::InfoType::Description, lcms2::Locale::none())?;
    let description = description.trim().to_string();
    (!description.is_empty()).then_some(description)
}

fn exif_summary(raw: &[u8]) -> Option<ExifSummary> {
    let exif = exif::Reader::new().read_raw(raw.to_vec()).ok()?;
    let text = |tag: Tag| exif.get_field(tag, In::PRIMARY).and_then(ascii);
    let camera = match (text(Tag::Make), text(Tag::Model)) {
        // Models often repeat the make (`Canon` / `Canon EOS 5D`).
        (Some(make), Some(model)) if model.starts_with(&make) => Some(model),
        (Some(make), Some(model)) => Some(format!("{make} {model}")),
        (make, model) => make.or(model),
    };
    let captured_at = text(Tag::DateTimeOriginal)
        .or_else(|| text(Tag::DateTime))
        .map(|when| {
            // `2022:08:22 20:30:46` -> `2022-08-22 20:30:46`
            let when = match when.split_once(' ') {
                Some((date, time)) => format!("{} {time}", date.replace(':', "-")),
                None => when,
            };
            match text(Tag::OffsetTimeOriginal) {
                Some(offset) => format!("{when}{offset}"),
                None => when,
            }
        });
    Some(ExifSummary {
        camera,
        lens: text(Tag::LensModel),
        captured_at,
        orientation: exif
            .get_field(Tag::Orientation, In::PRIMARY)
            .and_then(|field| field.value.get_uint(0)),
        has_gps: exif
            .fields()
            .any(|field| field.tag.context() == Context::Gps),
    })
}

/// An ASCII field's first string, trimmed; `None` when empty or not text.
fn ascii(field: &Field) -> Option<String> {
    match &field.value {
        Value::Ascii(strings) => {
            let text = String::from_utf8_lossy(strings.first()?).trim().to_string();
            (!text.is_empty()).then_some(text)
        }
        _ => None,
    }
}
