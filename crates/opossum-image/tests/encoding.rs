//! Encoder options change the output as named, through the whole engine (chain text in, bytes
//! out), and the configured defaults apply where a request names nothing.

use std::path::Path;

use opossum_image::{Limits, process};
use opossum_ops::{Chain, Chroma, EncodingDefaults};

fn photo() -> Vec<u8> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/photos/kodim23.png");
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn run(input: &[u8], chain: &str, limits: &Limits) -> Vec<u8> {
    let chain = Chain::parse(chain).unwrap_or_else(|e| panic!("{chain}: {e}"));
    process(input, &chain, limits)
        .unwrap_or_else(|e| panic!("{chain}: {e}"))
        .bytes
}

/// The JPEG's start-of-frame marker: 0xC0 baseline, 0xC2 progressive.
fn start_of_frame(jpeg: &[u8]) -> u8 {
    jpeg.windows(2)
        .find(|w| w[0] == 0xFF && matches!(w[1], 0xC0..=0xC2))
        .map(|w| w[1])
        .expect("a start-of-frame marker")
}

/// PNG colour type (IHDR byte 9) and the palette's entry count (PLTE length / 3).
fn png_layout(png: &[u8]) -> (u8, Option<usize>) {
    assert_eq!(&png[12..16], b"IHDR");
    let colour_type = png[25];
    let mut pos = 8;
    let mut palette = None;
    while pos + 8 <= png.len() {
        let length = u32::from_be_bytes(png[pos..pos + 4].try_into().unwrap()) as usize;
        if &png[pos + 4..pos + 8] == b"PLTE" {
            palette = Some(length / 3);
        }
        pos += 12 + length;
    }
    (colour_type, palette)
}

#[test]
fn jpeg_progressive_and_chroma_are_what_was_asked() {
    let input = photo();
    let limits = Limits::default();
    let baseline = run(&input, "resize:384,format:jpeg", &limits);
    let progressive = run(&input, "resize:384,format:jpeg:progressive", &limits);
    assert_eq!(start_of_frame(&baseline), 0xC0);
    assert_eq!(start_of_frame(&progressive), 0xC2);
    let subsampling = |jpeg: &[u8]| {
        turbojpeg::Decompressor::new()
            .unwrap()
            .read_header(jpeg)
            .unwrap()
            .subsamp
    };
    assert_eq!(subsampling(&baseline), turbojpeg::Subsamp::Sub2x2);
    let full = run(&input, "resize:384,format:jpeg:85:444", &limits);
    assert_eq!(subsampling(&full), turbojpeg::Subsamp::None);
    // 4:4:4 keeps twice the colour samples of 4:2:0.
    let half = run(&input, "resize:384,format:jpeg:85:420", &limits);
    assert!(full.len() > half.len(), "{} vs {}", full.len(), half.len());
}

#[test]
fn png_is_lossless_and_palette_is_indexed() {
    let input = photo();
    let limits = Limits::default();
    let truecolour = run(&input, "resize:256,format:png", &limits);
    assert_eq!(png_layout(&truecolour), (2, None), "RGB without a palette");
    // Another lossless encoder of the same pixels is the reference.
    let reference = run(&input, "resize:256,format:webp:lossless", &limits);
    let back = image::load_from_memory(&truecolour).unwrap().to_rgb8();
    let again = image::load_from_memory(&reference).unwrap().to_rgb8();
    assert_eq!(back.as_raw(), again.as_raw(), "the PNG changed pixels");

    let palette = run(&input, "resize:256,format:png:palette=32", &limits);
    let (colour_type, entries) = png_layout(&palette);
    assert_eq!(colour_type, 3, "indexed");
    assert!(
        entries.is_some_and(|n| n <= 32),
        "{entries:?} palette entries"
    );
    assert!(
        palette.len() * 2 < truecolour.len(),
        "palette {} bytes, truecolour {}",
        palette.len(),
        truecolour.len()
    );
    // Dithered, not posterised: the quantised image stays close to the original.
    let quantised = image::load_from_memory(&palette).unwrap().to_rgb8();
    let mean_error = quantised
        .as_raw()
        .iter()
        .zip(back.as_raw())
        .map(|(a, b)| f64::from(a.abs_diff(*b)))
        .sum::<f64>()
        / back.as_raw().len() as f64;
    assert!(mean_error < 12.0, "mean error {mean_error:.1} per channel");
}

#[test]
fn png_compression_trades_time_for_bytes() {
    let input = photo();
    let limits = Limits::default();
    let fast = run(&input, "resize:384,format:png:compression=0", &limits);
    let best = run(&input, "resize:384,format:png:compression=4", &limits);
    assert!(best.len() <= fast.len(), "{} vs {}", best.len(), fast.len());
    assert_eq!(
        image::load_from_memory(&fast).unwrap().to_rgb8(),
        image::load_from_memory(&best).unwrap().to_rgb8()
    );
}

#[test]
fn webp_effort_and_avif_speed_change_the_output() {
    let input = photo();
    let limits = Limits::default();
    let quick = run(&input, "resize:384,format:webp:effort=0", &limits);
    let thorough = run(&input, "resize:384,format:webp:effort=6", &limits);
    assert!(
        thorough.len() < quick.len(),
        "effort 6: {} bytes, effort 0: {}",
        thorough.len(),
        quick.len()
    );
    let fast = run(&input, "resize:128,format:avif:speed=10", &limits);
    let slow = run(&input, "resize:128,format:avif:speed=4", &limits);
    assert_ne!(fast, slow);
    assert_eq!(&slow[4..12], b"ftypavif");
}

#[test]
fn configured_defaults_apply_where_the_request_names_nothing() {
    let input = photo();
    let builtin = Limits::default();
    let configured = Limits {
        encoding: EncodingDefaults {
            jpeg_quality: 40,
            jpeg_progressive: true,
            jpeg_chroma: Chroma::C444,
            ..EncodingDefaults::default()
        },
        ..Limits::default()
    };
    let default = run(&input, "resize:384,format:jpeg", &builtin);
    let from_config = run(&input, "resize:384,format:jpeg", &configured);
    assert_eq!(start_of_frame(&from_config), 0xC2);
    assert!(from_config.len() < default.len());
    // A named setting wins over the configured one.
    let named = run(
        &input,
        "resize:384,format:jpeg:80:420:progressive=false",
        &configured,
    );
    assert_eq!(named, default);
}
