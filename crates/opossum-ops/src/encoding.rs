//! Output formats and their encoder settings.
//!
//! A request names only what it cares about (`format:jpeg:85:progressive`); everything it leaves
//! out is `None` and is filled in from the configured defaults ([`EncodingDefaults`], the
//! `encoding:` section) by [`Encoding::resolved`], which the pipeline does before it derives a key
//! and the engine does before it encodes. Keys hash the resolved text, so `format:jpeg`,
//! `format:jpeg:80:420` and `{"op":"format","format":"jpeg","quality":80}` are one variant with
//! one key, and changing a configured default changes the key of every variant it affects.
//!
//! Parsing never fills defaults in: a job carries what its client named, and the worker that
//! computes it resolves with its own configuration (the fleet shares one file). A named value
//! always wins, also when it equals a built-in default the operator has since changed.

use std::fmt;

/// Output formats an encoder exists for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutputFormat {
    /// JPEG (libjpeg-turbo)
    Jpeg,
    /// PNG (lossless, optimised by oxipng; optionally quantised to a palette)
    Png,
    /// WebP, lossy or lossless (libwebp)
    Webp,
    /// AVIF (libaom through libheif)
    Avif,
    /// GIF, still or animated (the `gif` crate, NeuQuant palettes)
    Gif,
    /// SVG traced from the raster image (vtracer)
    Svg,
}

/// Read by name (`jpeg`, `jpg`, `png`, `webp`, `avif`, `svg`), as configuration files name it.
impl<'de> serde::Deserialize<'de> for OutputFormat {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<OutputFormat, D::Error> {
        let name = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        OutputFormat::from_name(&name).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown format `{name}` (known: jpeg, png, webp, avif, gif, svg)"
            ))
        })
    }
}

impl OutputFormat {
    /// Every output format.
    pub const ALL: [OutputFormat; 6] = [
        OutputFormat::Jpeg,
        OutputFormat::Png,
        OutputFormat::Webp,
        OutputFormat::Avif,
        OutputFormat::Gif,
        OutputFormat::Svg,
    ];

    /// The canonical name, as it appears in chains, file extensions and events.
    pub fn name(self) -> &'static str {
        match self {
            OutputFormat::Jpeg => "jpeg",
            OutputFormat::Png => "png",
            OutputFormat::Webp => "webp",
            OutputFormat::Avif => "avif",
            OutputFormat::Gif => "gif",
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
            OutputFormat::Gif => "image/gif",
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
            "gif" => Some(OutputFormat::Gif),
            "svg" => Some(OutputFormat::Svg),
            _ => None,
        }
    }

    /// Whether the format has a quality setting (1-100).
    pub fn has_quality(self) -> bool {
        matches!(
            self,
            OutputFormat::Jpeg | OutputFormat::Webp | OutputFormat::Avif
        )
    }
}

/// JPEG chroma subsampling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Chroma {
    /// colour at half resolution in both axes: the usual photo setting
    #[default]
    C420,
    /// colour at full resolution: for text, line art and saturated edges
    C444,
}

impl Chroma {
    /// `420` or `444`.
    pub fn name(self) -> &'static str {
        match self {
            Chroma::C420 => "420",
            Chroma::C444 => "444",
        }
    }

    /// Parses `420` or `444`.
    pub fn from_name(name: &str) -> Option<Chroma> {
        match name {
            "420" => Some(Chroma::C420),
            "444" => Some(Chroma::C444),
            _ => None,
        }
    }
}

/// Read as `"420"` or `"444"` (or the numbers), as configuration files name it.
impl<'de> serde::Deserialize<'de> for Chroma {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Chroma, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        let text = match &value {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        Chroma::from_name(&text).ok_or_else(|| {
            serde::de::Error::custom(format!("unknown chroma `{text}` (known: 420, 444)"))
        })
    }
}

/// Most colours of a PNG palette.
pub const MAX_PALETTE_COLOURS: u16 = 256;
/// Highest PNG `compression` (oxipng's optimisation presets run 0-6).
pub const MAX_PNG_COMPRESSION: u8 = 6;
/// Highest WebP `effort` (libwebp's method).
pub const MAX_WEBP_EFFORT: u8 = 6;
/// Highest AVIF `speed`.
pub const MAX_AVIF_SPEED: u8 = 10;

/// The output encoding a chain ends with. Every setting but the format is `None` until named or
/// [`Encoding::resolved`]; a setting applies to one format only (the parser refuses the others).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Encoding {
    /// which encoder
    pub format: OutputFormat,
    /// JPEG, WebP, AVIF: 1-100
    pub quality: Option<u8>,
    /// WebP: lossless instead of lossy (PNG always is)
    pub lossless: bool,
    /// JPEG: progressive scans
    pub progressive: Option<bool>,
    /// JPEG: chroma subsampling
    pub chroma: Option<Chroma>,
    /// PNG: quantised (dithered) to at most this many colours, 2-256; `None` keeps every colour
    pub palette: Option<u16>,
    /// PNG: how hard the lossless optimiser works, 0-6 (oxipng's presets)
    pub compression: Option<u8>,
    /// WebP: how hard the encoder works, 0-6 (smaller files, slower)
    pub effort: Option<u8>,
    /// AVIF: encoder speed, 0 (slowest, smallest) to 10
    pub speed: Option<u8>,
}

impl Encoding {
    /// The format with every setting left to the defaults.
    pub fn default_for(format: OutputFormat) -> Encoding {
        Encoding {
            format,
            quality: None,
            lossless: false,
            progressive: None,
            chroma: None,
            palette: None,
            compression: None,
            effort: None,
            speed: None,
        }
    }

    /// Every setting of this format filled in: named ones kept, the rest from `defaults`.
    /// Idempotent; settings of other formats stay `None`.
    pub fn resolved(self, defaults: &EncodingDefaults) -> Encoding {
        let mut e = Encoding {
            palette: self.palette,
            lossless: self.lossless,
            ..Encoding::default_for(self.format)
        };
        match self.format {
            OutputFormat::Jpeg => {
                e.quality = self.quality.or(Some(defaults.jpeg_quality));
                e.progressive = self.progressive.or(Some(defaults.jpeg_progressive));
                e.chroma = self.chroma.or(Some(defaults.jpeg_chroma));
            }
            OutputFormat::Png => {
                e.compression = self.compression.or(Some(defaults.png_compression));
            }
            OutputFormat::Webp => {
                if !self.lossless {
                    e.quality = self.quality.or(Some(defaults.webp_quality));
                }
                e.effort = self.effort.or(Some(defaults.webp_effort));
            }
            OutputFormat::Avif => {
                e.quality = self.quality.or(Some(defaults.avif_quality));
                e.speed = self.speed.or(Some(defaults.avif_speed));
            }
            OutputFormat::Gif | OutputFormat::Svg => {}
        }
        e
    }
}

/// The canonical text after `format:`: the format, the quality, then each named option in a
/// fixed order. Exactly what is named is written, so the text parses back to the same value; it
/// is [`Encoding::resolved`] that makes a spelled-out default and a left-out one the same key.
impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.format.name())?;
        if self.lossless {
            f.write_str(":lossless")?;
        } else if let Some(q) = self.quality {
            write!(f, ":{q}")?;
        }
        match self.progressive {
            Some(true) => f.write_str(":progressive")?,
            Some(false) => f.write_str(":progressive=false")?,
            None => {}
        }
        if let Some(chroma) = self.chroma {
            write!(f, ":{}", chroma.name())?;
        }
        match self.palette {
            Some(MAX_PALETTE_COLOURS) => f.write_str(":palette")?,
            Some(colours) => write!(f, ":palette={colours}")?,
            None => {}
        }
        if let Some(level) = self.compression {
            write!(f, ":compression={level}")?;
        }
        if let Some(effort) = self.effort {
            write!(f, ":effort={effort}")?;
        }
        if let Some(speed) = self.speed {
            write!(f, ":speed={speed}")?;
        }
        Ok(())
    }
}

/// The settings a request leaves out, per format: the configuration's `encoding:` section.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EncodingDefaults {
    /// `encoding.jpeg.quality`
    pub jpeg_quality: u8,
    /// `encoding.jpeg.progressive`
    pub jpeg_progressive: bool,
    /// `encoding.jpeg.chroma`
    pub jpeg_chroma: Chroma,
    /// `encoding.png.compression`
    pub png_compression: u8,
    /// `encoding.webp.quality`
    pub webp_quality: u8,
    /// `encoding.webp.effort`
    pub webp_effort: u8,
    /// `encoding.avif.quality`
    pub avif_quality: u8,
    /// `encoding.avif.speed`
    pub avif_speed: u8,
}

/// The built-in defaults.
impl Default for EncodingDefaults {
    fn default() -> EncodingDefaults {
        EncodingDefaults {
            jpeg_quality: 80,
            jpeg_progressive: false,
            jpeg_chroma: Chroma::C420,
            // oxipng's preset 1: on kodim23 (768x512) 0.19 s and 547 KB, where preset 2 took
            // 0.34 s for 547 KB and preset 0 0.07 s for 571 KB.
            png_compression: 1,
            webp_quality: 80,
            // libwebp's own default method.
            webp_effort: 4,
            avif_quality: 60,
            // Keeps a 1 MP encode well under a second, which an on-demand server needs.
            avif_speed: 8,
        }
    }
}

impl EncodingDefaults {
    /// What a chain that names no format is keyed with: `None` with the built-in defaults (so
    /// their keys stay as they are), otherwise the settings that differ, as text.
    pub fn identity(&self) -> Option<String> {
        let (ours, builtin) = (self, &EncodingDefaults::default());
        if ours == builtin {
            return None;
        }
        let settings = |d: &EncodingDefaults| {
            [
                ("jpeg.quality", d.jpeg_quality.to_string()),
                ("jpeg.progressive", d.jpeg_progressive.to_string()),
                ("jpeg.chroma", d.jpeg_chroma.name().to_string()),
                ("png.compression", d.png_compression.to_string()),
                ("webp.quality", d.webp_quality.to_string()),
                ("webp.effort", d.webp_effort.to_string()),
                ("avif.quality", d.avif_quality.to_string()),
                ("avif.speed", d.avif_speed.to_string()),
            ]
        };
        let parts: Vec<String> = settings(ours)
            .into_iter()
            .zip(settings(builtin))
            .filter(|((_, value), (_, default))| value != default)
            .map(|((name, value), _)| format!("{name}={value}"))
            .collect();
        (!parts.is_empty()).then(|| parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolution_fills_only_the_formats_own_settings() {
        let defaults = EncodingDefaults {
            jpeg_quality: 85,
            ..EncodingDefaults::default()
        };
        let jpeg = Encoding::default_for(OutputFormat::Jpeg).resolved(&defaults);
        assert_eq!(jpeg.quality, Some(85));
        assert_eq!(jpeg.chroma, Some(Chroma::C420));
        assert_eq!(
            (jpeg.effort, jpeg.speed, jpeg.compression),
            (None, None, None)
        );
        assert_eq!(jpeg.to_string(), "jpeg:85:progressive=false:420");
        assert_eq!(jpeg.resolved(&defaults), jpeg, "idempotent");
        let named = Encoding {
            quality: Some(80),
            ..Encoding::default_for(OutputFormat::Jpeg)
        };
        assert_eq!(named.resolved(&defaults).quality, Some(80), "named wins");
        let lossless = Encoding {
            lossless: true,
            ..Encoding::default_for(OutputFormat::Webp)
        }
        .resolved(&defaults);
        assert_eq!(lossless.quality, None);
        assert_eq!(lossless.to_string(), "webp:lossless:effort=4");
    }

    #[test]
    fn identity_names_only_what_differs_from_the_built_in_defaults() {
        let builtin = EncodingDefaults::default();
        assert_eq!(builtin.identity(), None);
        let changed = EncodingDefaults {
            avif_speed: 6,
            jpeg_progressive: true,
            ..builtin
        };
        assert_eq!(
            changed.identity().as_deref(),
            Some("jpeg.progressive=true,avif.speed=6")
        );
    }
}
