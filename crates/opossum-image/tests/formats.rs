//! AVIF, HEIC and JPEG XL input: real files decode to the right size and colours, alpha
//! survives, and the pixel limit is applied from the header. Metadata: what `analyze` reports,
//! and what `keep:icc` and `keep:copyright` carry into every format that can hold it.

use std::path::{Path, PathBuf};

use image::{DynamicImage, GenericImageView};
use opossum_image::{ImageError, Limits, SourceFormat, SourceMetadata, decode, decode_for};
use opossum_ops::Chain;

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn corpus(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/corpus")
        .join(path)
}

/// PSNR of the RGB channels, in dB.
fn psnr(a: &DynamicImage, b: &DynamicImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions());
    let (a, b) = (a.to_rgb8(), b.to_rgb8());
    let sum: f64 = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
        .sum();
    let mse = sum / a.as_raw().len() as f64;
    10.0 * (255.0 * 255.0 / mse).log10()
}

#[test]
fn avif_heic_and_jxl_decode_to_the_originals_colours() {
    let original = image::open(corpus("photos/kodim23.png")).expect("corpus kodim23.png");
    // Each file is a lossy encoding of the corpus image; a wrong matrix, range, channel order or
    // a missing colour conversion costs far more than these margins.
    for (file, format, at_least_db) in [
        // libavif's own encoding is the smallest (21 KB): 32.8 dB, as heif-convert decodes it.
        ("kodim23.avif", SourceFormat::Avif, 32.0),
        ("kodim23.heic", SourceFormat::Heic, 34.0),
        ("kodim23.jxl", SourceFormat::Jxl, 34.0),
    ] {
        let decoded = decode(&fixture(file), &Limits::default(), None)
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(decoded.format, format, "{file}");
        assert_eq!(decoded.image.dimensions(), (768, 512), "{file}");
        assert_eq!(
            (decoded.source_width, decoded.source_height),
            (768, 512),
            "{file}"
        );
        assert!(!decoded.image.color().has_alpha(), "{file}");
        let db = psnr(&decoded.image, &original);
        assert!(db >= at_least_db, "{file}: {db:.1} dB against the original");
        // The same bytes with the channels swapped would still look like a photo; check the
        // average colour too (kodim23 is two parrots, red and green against a green field).
        let mean = |image: &DynamicImage, channel: usize| {
            let rgb = image.to_rgb8();
            rgb.pixels().map(|p| f64::from(p.0[channel])).sum::<f64>() / (768.0 * 512.0)
        };
        for channel in 0..3 {
            let (got, want) = (mean(&decoded.image, channel), mean(&original, channel));
            assert!(
                (got - want).abs() < 2.0,
                "{file}: channel {channel} averages {got:.1}, the original {want:.1}"
            );
        }
    }
}

#[test]
fn heic_and_avif_keep_alpha() {
    let original = image::open(corpus("pngsuite/basn6a08.png")).expect("corpus basn6a08.png");
    let original = original.to_rgba8();
    for file in ["alpha.heic", "alpha.avif"] {
        let decoded = decode(&fixture(file), &Limits::default(), None)
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        let rgba = match &decoded.image {
            DynamicImage::ImageRgba8(rgba) => rgba,
            other => panic!("{file}: decoded as {:?}, not RGBA", other.color()),
        };
        assert_eq!(rgba.dimensions(), (32, 32), "{file}");
        let worst = rgba
            .pixels()
            .zip(original.pixels())
            .map(|(a, b)| a.0[3].abs_diff(b.0[3]))
            .max()
            .unwrap();
        assert!(worst <= 24, "{file}: alpha differs by up to {worst}");
        let alphas: std::collections::BTreeSet<u8> = rgba.pixels().map(|p| p.0[3]).collect();
        assert!(
            alphas.len() > 8,
            "{file}: alpha is not a gradient: {alphas:?}"
        );
    }
}

#[test]
fn the_pixel_limit_holds_before_decoding() {
    let limits = Limits {
        max_pixels: 100_000,
        ..Limits::default()
    };
    for file in ["kodim23.avif", "kodim23.heic", "kodim23.jxl"] {
        let err = decode(&fixture(file), &limits, None).unwrap_err();
        assert!(
            matches!(
                err,
                ImageError::TooManyPixels {
                    width: 768,
                    height: 512,
                    ..
                }
            ),
            "{file}: {err}"
        );
    }
}

#[test]
fn truncated_files_are_corrupt_not_a_panic() {
    for file in ["kodim23.avif", "kodim23.heic", "kodim23.jxl"] {
        let bytes = fixture(file);
        for cut in [bytes.len() / 2, 200, 40] {
            match decode(&bytes[..cut], &Limits::default(), None) {
                Err(ImageError::Corrupt { .. } | ImageError::Unsupported { .. }) => {}
                Err(other) => panic!("{file} cut at {cut}: {other}"),
                Ok(decoded) => panic!(
                    "{file} cut at {cut}: decoded as {:?} {}x{}",
                    decoded.format, decoded.source_width, decoded.source_height
                ),
            }
        }
    }
}

#[test]
fn avif_output_decodes_back_with_its_colours_and_alpha() {
    let original = image::open(corpus("photos/kodim23.png")).expect("corpus kodim23.png");
    let chain = opossum_ops::Chain::parse("format:avif:60").unwrap();
    let source = std::fs::read(corpus("photos/kodim23.png")).unwrap();
    let encoded = opossum_image::process(&source, &chain, &Limits::default()).unwrap();
    assert_eq!(encoded.media_type, "image/avif");
    let back = decode(&encoded.bytes, &Limits::default(), None).unwrap();
    assert_eq!(back.format, SourceFormat::Avif);
    let db = psnr(&back.image, &original);
    assert!(db > 34.0, "{db:.1} dB");
    let alpha = std::fs::read(corpus("pngsuite/basn6a08.png")).unwrap();
    let encoded = opossum_image::process(&alpha, &chain, &Limits::default()).unwrap();
    let back = decode(&encoded.bytes, &Limits::default(), None).unwrap();
    assert!(back.image.color().has_alpha(), "alpha kept");
}

#[test]
fn analyze_reports_the_icc_profile_and_an_exif_summary_without_coordinates() {
    let chain = opossum_ops::Chain::parse("analyze").unwrap();
    for file in ["paris_exif_xmp_icc.jpg", "paris_icc_exif_xmp.avif"] {
        let output = opossum_image::process(&fixture(file), &chain, &Limits::default())
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        let json: serde_json::Value = serde_json::from_slice(&output.bytes).unwrap();
        let exif = &json["exif"];
        assert_eq!(exif["camera"], "Google Pixel 4a", "{file}: {json}");
        assert_eq!(exif["captured_at"], "2022-08-22 20:30:46+02:00", "{file}");
        assert_eq!(exif["has_gps"], true, "{file}");
        if file.ends_with(".jpg") {
            assert_eq!(exif["lens"], "Pixel 4a back camera 4.38mm f/1.73");
            assert_eq!(exif["orientation"], 1);
        }
        assert!(
            json["icc_profile"].as_str().is_some_and(|d| !d.is_empty()),
            "{file}: {json}"
        );
        let text = String::from_utf8_lossy(&output.bytes).to_lowercase();
        for word in ["latitude", "longitude", "gpslat", "gpslong"] {
            assert!(!text.contains(word), "{file}: {word} in {text}");
        }
    }
    // A source without either says nothing of them.
    let plain =
        opossum_image::process(&fixture("kodim23.heic"), &chain, &Limits::default()).unwrap();
    let json: serde_json::Value = serde_json::from_slice(&plain.bytes).unwrap();
    assert!(
        json.get("exif").is_none() && json.get("icc_profile").is_none(),
        "{json}"
    );
}

fn process(input: &[u8], chain: &str) -> opossum_image::Output {
    let parsed = Chain::parse(chain).unwrap();
    opossum_image::process(input, &parsed, &Limits::default())
        .unwrap_or_else(|e| panic!("{chain}: {e}"))
}

/// The pixels of `bytes` as stored (not converted to sRGB), and the profile and EXIF it
/// carries, read by the decoders (the image crate's for JPEG, PNG and WebP; libheif's for
/// AVIF), not by the writers under test.
fn as_stored(bytes: &[u8]) -> (DynamicImage, SourceMetadata) {
    let keep = Chain::parse("keep:icc").unwrap();
    let decoded = decode_for(bytes, &keep, &Limits::default()).unwrap();
    (decoded.image, decoded.metadata)
}

/// The EXIF fields of a block, as (tag name, value) pairs.
fn exif_fields(block: &[u8]) -> Vec<(String, String)> {
    let exif = exif::Reader::new().read_raw(block.to_vec()).unwrap();
    exif.fields()
        .map(|f| (f.tag.to_string(), f.display_value().to_string()))
        .collect()
}

/// The outputs that carry EXIF; all but AVIF carry a profile too (see `embed`).
const WITH_METADATA: [&str; 4] = ["jpeg:95", "png", "webp:95", "avif:90"];

#[test]
fn keep_icc_embeds_the_profile_and_leaves_the_pixels_in_its_colour_space() {
    let source = fixture("adobe_rgb.jpg");
    let (in_adobe, metadata) = as_stored(&source);
    let profile = metadata.icc().expect("the fixture has a profile").to_vec();
    assert_eq!(
        metadata.icc_description().as_deref(),
        Some("Adobe RGB (1998)")
    );
    let in_srgb = decode(&source, &Limits::default(), None).unwrap().image;
    let conversion = psnr(&in_adobe, &in_srgb);
    assert!(
        conversion < 34.0,
        "Adobe RGB to sRGB moves the pixels: {conversion:.1} dB"
    );
    for format in WITH_METADATA.into_iter().filter(|f| !f.starts_with("avif")) {
        let kept = process(&source, &format!("keep:icc,format:{format}"));
        let (stored, back) = as_stored(&kept.bytes);
        assert_eq!(
            back.icc(),
            Some(&profile[..]),
            "{format}: the profile is embedded"
        );
        let (to_adobe, to_srgb) = (psnr(&stored, &in_adobe), psnr(&stored, &in_srgb));
        eprintln!("{format}: {to_adobe:.1} dB to the Adobe RGB pixels, {to_srgb:.1} dB to sRGB");
        assert!(
            to_adobe > 33.0 && to_adobe > to_srgb + 5.0,
            "{format}: pixels left in Adobe RGB ({to_adobe:.1} dB to them, {to_srgb:.1} dB to sRGB)"
        );
        // Shown through its profile, it looks as the default (sRGB) output does.
        let shown = decode(&kept.bytes, &Limits::default(), None).unwrap().image;
        let default = process(&source, &format!("format:{format}"));
        let (default_pixels, default_metadata) = as_stored(&default.bytes);
        assert_eq!(
            default_metadata.icc(),
            None,
            "{format}: no profile by default"
        );
        let same = psnr(&shown, &default_pixels);
        assert!(
            same > 32.0,
            "{format}: shown as the sRGB output is ({same:.1} dB)"
        );
    }
}

#[test]
fn keep_icc_converts_where_the_format_cannot_carry_a_profile() {
    // GIF has no profile: the pixels are converted to sRGB at the end instead of at decode,
    // which gives the very same file when nothing comes between, and the same picture after a
    // resize (which then ran on the unconverted pixels).
    let source = fixture("adobe_rgb.jpg");
    let kept = process(&source, "keep:icc,format:gif");
    assert!(
        kept.bytes == process(&source, "format:gif").bytes,
        "keep:icc changed a GIF"
    );
    // Nor does AVIF, here (libheif-rs 0.20 cannot hand libheif a profile safely).
    let kept = process(&source, "keep:icc,format:avif");
    assert_eq!(as_stored(&kept.bytes).1.icc(), None);
    assert!(
        kept.bytes == process(&source, "format:avif").bytes,
        "keep:icc changed an AVIF"
    );
    let kept = process(&source, "keep:icc,resize:300,format:gif");
    let (stored, back) = as_stored(&kept.bytes);
    assert_eq!(back.icc(), None);
    let default = as_stored(&process(&source, "resize:300,format:gif").bytes).0;
    let same = psnr(&stored, &default);
    assert!(same > 30.0, "resized, then converted: {same:.1} dB");
    // A source without a profile is unchanged by keep:icc.
    let plain = fixture("kodim23.heic");
    let kept = process(&plain, "keep:icc,format:png");
    assert!(kept.bytes == process(&plain, "format:png").bytes);
}

#[test]
fn keep_copyright_writes_only_the_copyright_and_artist() {
    let source = fixture("exif_artist_copyright_gps.jpg");
    let (_, metadata) = as_stored(&source);
    let all = exif_fields(metadata.exif().unwrap());
    let named = |name: &str| all.iter().find(|(tag, _)| tag == name).cloned();
    let (artist, copyright) = (named("Artist").unwrap(), named("Copyright").unwrap());
    assert!(named("GPSVersionID").is_some() && named("Model").is_some());
    for format in WITH_METADATA {
        let kept = process(
            &source,
            &format!("resize:100,keep:copyright,format:{format}"),
        );
        let (_, back) = as_stored(&kept.bytes);
        let block = back
            .exif()
            .unwrap_or_else(|| panic!("{format}: no EXIF written"));
        let fields = exif_fields(block);
        assert_eq!(
            fields,
            vec![artist.clone(), copyright.clone()],
            "{format}: exactly the two fields"
        );
        assert_eq!(back.icc(), None, "{format}: the profile was not asked for");
        let default = process(&source, &format!("resize:100,format:{format}"));
        assert_eq!(
            as_stored(&default.bytes).1.exif(),
            None,
            "{format}: stripped by default"
        );
    }
    // A source with an artist and no copyright keeps the one; one without EXIF gets none.
    let (_, back) =
        as_stored(&process(&fixture("adobe_rgb.jpg"), "keep:copyright,format:png").bytes);
    let fields = exif_fields(back.exif().unwrap());
    assert_eq!(fields.len(), 1, "{fields:?}");
    assert_eq!(fields[0].0, "Artist");
    let (_, back) =
        as_stored(&process(&fixture("kodim23.heic"), "keep:copyright,format:jpeg").bytes);
    assert_eq!(back.exif(), None);
}

#[test]
fn keep_both_in_every_kind_of_webp_and_within_a_byte_budget() {
    // A WebP source with a profile; outputs in lossy, lossless and alpha WebP, whose extended
    // header libwebp's mux writes.
    let source = fixture("adobe_rgb.webp");
    let (_, metadata) = as_stored(&source);
    let profile = metadata
        .icc()
        .expect("the WebP fixture has a profile")
        .to_vec();
    for chain in [
        "keep:icc:copyright,format:webp",
        "keep:icc:copyright,format:webp:lossless",
        "keep:icc:copyright,round:40,format:webp",
        "keep:icc:copyright,resize:200,max-bytes:12000,format:webp",
    ] {
        let output = process(&source, chain);
        let (stored, back) = as_stored(&output.bytes);
        assert_eq!(back.icc(), Some(&profile[..]), "{chain}");
        let fields = exif_fields(back.exif().unwrap_or_else(|| panic!("{chain}: no EXIF")));
        assert_eq!(fields[0].0, "Artist", "{chain}");
        if chain.contains("round") {
            assert!(stored.color().has_alpha(), "{chain}: alpha kept");
        }
        if chain.contains("max-bytes") {
            assert!(
                output.bytes.len() <= 12000,
                "{chain}: {} bytes",
                output.bytes.len()
            );
        }
    }
}
