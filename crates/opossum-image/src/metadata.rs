//! What a source says about itself beyond its pixels, for `analyze`: the ICC profile's
//! description and a summary of its EXIF (camera, lens, capture time, orientation, and whether
//! it carries a GPS position, never the position itself). Read once at decode, from the raw
//! blocks the decoders hand over; the pixels have already been converted to sRGB and turned
//! upright, so nothing here changes an output.
//!
//! EXIF is parsed by kamadak-exif (pure Rust, fuzzed); a block it cannot read is left out of
//! the summary rather than failing the request.

use exif::{Context, Field, In, Tag, Value};
use serde::{Deserialize, Serialize};

/// The description of the source's ICC profile and its EXIF summary, where it has them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceMetadata {
    /// the ICC profile's description (`Display P3`, `sRGB IEC61966-2.1`, ...)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icc_profile: Option<String>,
    /// what the EXIF block says
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exif: Option<ExifSummary>,
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
    /// (TIFF-structured, with or without the `Exif\0\0` prefix JPEG puts before it).
    pub(crate) fn read(icc: Option<&[u8]>, exif: Option<&[u8]>) -> SourceMetadata {
        SourceMetadata {
            icc_profile: icc.and_then(icc_description),
            exif: exif.and_then(exif_summary),
        }
    }
}

fn icc_description(icc: &[u8]) -> Option<String> {
    let profile = lcms2::Profile::new_icc(icc).ok()?;
    let description = profile.info(lcms2::InfoType::Description, lcms2::Locale::none())?;
    let description = description.trim().to_string();
    (!description.is_empty()).then_some(description)
}

fn exif_summary(raw: &[u8]) -> Option<ExifSummary> {
    let raw = raw.strip_prefix(b"Exif\0\0").unwrap_or(raw);
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
