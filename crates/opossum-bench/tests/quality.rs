//! Shrink-on-load must be used where it applies, and must not cost visible quality: a thumbnail
//! made through DCT-domain scaling stays within 40 dB PSNR of a full-decode Lanczos3 reference.

use image::DynamicImage;
use opossum_image::{DecodeHint, Limits, decode, decode_hint, process};
use opossum_ops::Chain;

fn photo_jpeg(width: u32, height: u32) -> Vec<u8> {
    let path = format!(
        "{}/../../../shared/corpus/photos/kodim23.png",
        env!("CARGO_MANIFEST_DIR")
    );
    let photo = image::open(&path)
        .unwrap_or_else(|e| panic!("{path}: {e} (is ../shared beside the checkout?)"));
    let big = opossum_bench::realistic_image(&photo, width, height, 7).unwrap();
    opossum_bench::jpeg(&big, 90).unwrap()
}

#[test]
fn thumbnails_use_shrink_on_load_and_keep_quality() {
    let jpeg = photo_jpeg(2400, 1600);
    let limits = Limits::default();
    for (chain, decoded_width) in [
        ("thumbnail:200,format:png", 600),
        ("resize:100:100,format:png", 300),
        ("resize:1000:1000,format:png", 2400),
    ] {
        let chain = Chain::parse(chain).unwrap();
        let hint: Option<DecodeHint> = decode_hint(&chain);
        let decoded = decode(&jpeg, &limits, hint).unwrap();
        assert_eq!(
            decoded.image.width(),
            decoded_width,
            "{chain}: decode scale"
        );
        assert_eq!((decoded.source_width, decoded.source_height), (2400, 1600));

        let output = process(&jpeg, &chain, &limits).unwrap();
        let thumbnail = image::load_from_memory(&output.bytes).unwrap().to_rgb8();
        let full = decode(&jpeg, &limits, None).unwrap().image;
        assert_eq!(full.width(), 2400);
        let reference =
            opossum_bench::reference_resize(&full, thumbnail.width(), thumbnail.height()).unwrap();
        let db = opossum_bench::psnr(&reference, &thumbnail).unwrap();
        assert!(
            db >= 40.0,
            "{chain}: PSNR {db:.2} dB against the full-decode reference"
        );
    }
}

#[test]
fn exif_orientation_is_applied_before_resizing() {
    // A landscape JPEG tagged "rotate 90" must come out portrait, with shrink-on-load too.
    let jpeg = photo_jpeg(1200, 800);
    let tagged = with_exif_orientation(&jpeg, 6);
    let limits = Limits::default();
    let full = decode(&tagged, &limits, None).unwrap();
    assert_eq!((full.image.width(), full.image.height()), (800, 1200));
    let out = process(
        &tagged,
        &Chain::parse("thumbnail:150,format:png").unwrap(),
        &limits,
    )
    .unwrap();
    assert_eq!((out.width, out.height), (100, 150));
    // The top-left of the upright image is the bottom-left of the stored one.
    let stored =
        DynamicImage::ImageRgb8(image::load_from_memory(&jpeg).unwrap().to_rgb8()).rotate90();
    let diff: i32 = (0..3)
        .map(|c| {
            i32::from(stored.to_rgb8().get_pixel(5, 5).0[c])
                - i32::from(full.image.to_rgb8().get_pixel(5, 5).0[c])
        })
        .map(i32::abs)
        .sum();
    assert!(
        diff < 30,
        "orientation applied the wrong way (difference {diff})"
    );
}

/// Inserts an APP1 EXIF segment with one Orientation entry right after SOI.
fn with_exif_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
    let mut tiff = Vec::new();
    tiff.extend_from_slice(b"MM\x00\x2a\x00\x00\x00\x08"); // big-endian TIFF, IFD at 8
    tiff.extend_from_slice(&1u16.to_be_bytes()); // one entry
    tiff.extend_from_slice(&0x0112u16.to_be_bytes()); // Orientation
    tiff.extend_from_slice(&3u16.to_be_bytes()); // SHORT
    tiff.extend_from_slice(&1u32.to_be_bytes()); // count
    tiff.extend_from_slice(&orientation.to_be_bytes());
    tiff.extend_from_slice(&[0, 0]);
    tiff.extend_from_slice(&0u32.to_be_bytes()); // no next IFD
    let mut segment = b"Exif\x00\x00".to_vec();
    segment.extend_from_slice(&tiff);
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((segment.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&segment);
    out.extend_from_slice(&jpeg[2..]);
    out
}

#[test]
fn bare_analysis_describes_the_source_from_a_small_decode() {
    let jpeg = photo_jpeg(2400, 1600);
    let limits = Limits::default();
    let hint = DecodeHint {
        width: 256,
        height: 256,
        mode: opossum_ops::ResizeMode::Fit,
        enlarge: false,
    };
    // What process() decodes for a bare analysis: a quarter-scale image (the 256 px working
    // copy, with the factor of two shrink-on-load always leaves).
    assert_eq!(
        decode(&jpeg, &limits, Some(hint)).unwrap().image.width(),
        600
    );
    let output = process(&jpeg, &Chain::parse("analyze").unwrap(), &limits).unwrap();
    let analysis: serde_json::Value = serde_json::from_slice(&output.bytes).unwrap();
    assert_eq!(
        (analysis["width"].as_u64(), analysis["height"].as_u64()),
        (Some(2400), Some(1600))
    );
    assert_eq!(analysis["format"], "jpeg");
    // After a resize, the analysis describes the resized image.
    let output = process(
        &jpeg,
        &Chain::parse("resize:300:300,analyze").unwrap(),
        &limits,
    )
    .unwrap();
    assert_eq!((output.width, output.height), (300, 200));
}
