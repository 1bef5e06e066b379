//! AVIF, HEIC and JPEG XL sources, encoder options, `max-bytes` and `keep:` the three ways users
//! arrive: `opossum process` (cached and `--no-cache`), `opossum submit` (embedded) and the
//! origin's URLs. The sources are the engine's fixtures (encodings of the corpus's kodim23,
//! 768x512, and photos with an Adobe RGB profile or an author in their EXIF).

use std::path::Path;

use opossum_testkit::{TempDir, json_lines};

use crate::origin::{get, start};
use crate::support::{opossum_in as opossum, process_in, submit_then_process};

const SOURCES: [&str; 6] = [
    "kodim23.avif",
    "kodim23.heic",
    "kodim23.jxl",
    "paris_exif_xmp_icc.jpg",
    "adobe_rgb.jpg",
    "exif_artist_copyright_gps.jpg",
];

/// The ICC profile and EXIF block an encoded image carries, as the image crate reads them.
fn embedded(bytes: &[u8]) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
    use image::ImageDecoder;
    let mut decoder = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .unwrap()
        .into_decoder()
        .unwrap();
    (
        decoder.icc_profile().unwrap(),
        decoder.exif_metadata().unwrap(),
    )
}

/// True when `haystack` holds `needle`.
fn holds(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// The author's EXIF kept, and nothing else of it: the camera's make and the GPS block gone.
fn only_the_author(exif: &[u8]) -> bool {
    holds(exif, "Ilya Kurikhin") && !holds(exif, "Canon") && !holds(exif, "NIKON")
}

fn write_sources(dir: &Path) {
    for name in SOURCES {
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../crates/opossum-image/tests/fixtures")
            .join(name);
        std::fs::copy(&fixture, dir.join(name)).unwrap();
    }
}

/// PNG colour type (IHDR byte 9): 2 RGB, 3 indexed, 6 RGBA.
fn png_colour_type(png: &[u8]) -> u8 {
    assert_eq!(&png[1..4], b"PNG");
    png[25]
}

/// True when the JPEG's frame is progressive (SOF2).
fn progressive(jpeg: &[u8]) -> bool {
    jpeg.windows(2)
        .find(|w| w[0] == 0xFF && matches!(w[1], 0xC0..=0xC2))
        .is_some_and(|w| w[1] == 0xC2)
}

#[test]
fn process_reads_the_new_formats_and_applies_encoder_options() {
    let originals = TempDir::new("formats-originals");
    write_sources(originals.path());
    let data = TempDir::new("formats-data");
    let store = originals.path().to_str().unwrap();
    let out = originals.join("out");
    let run = |image: &str, ops: &str, extra: &[&str]| {
        let report = process_in(&data, store, image, ops, &out, extra);
        (report, std::fs::read(&out).unwrap())
    };
    for extra in [&[][..], &["--no-cache"][..]] {
        // Without a format: AVIF stays AVIF, HEIC becomes JPEG, JPEG XL becomes PNG.
        for (image, format) in [
            ("kodim23.avif", "avif"),
            ("kodim23.heic", "jpeg"),
            ("kodim23.jxl", "png"),
        ] {
            let (report, bytes) = run(image, "thumbnail:96", extra);
            assert_eq!(report["format"], format, "{image} {extra:?}: {report}");
            assert_eq!(
                (report["width"].as_u64(), report["height"].as_u64()),
                (Some(96), Some(64))
            );
            let decoded = image::load_from_memory(&bytes);
            if format != "avif" {
                assert_eq!(decoded.unwrap().width(), 96, "{image}");
            }
        }
        let (_, jpeg) = run(
            "kodim23.heic",
            "resize:300,format:jpeg:progressive:444",
            extra,
        );
        assert!(progressive(&jpeg), "progressive {extra:?}");
        let (_, png) = run("kodim23.jxl", "resize:200,format:png:palette=16", extra);
        assert_eq!(png_colour_type(&png), 3, "palette {extra:?}");
        let (report, fitted) = run("kodim23.avif", "max-bytes:9000,format:jpeg", extra);
        assert!(fitted.len() <= 9000, "{} bytes {extra:?}", fitted.len());
        let quality = report["quality"].as_u64().expect("the chosen quality");
        assert!(quality < 80, "{report}");
        // keep:icc after an sRGB run of the same steps: the cached intermediate of
        // `resize:300` (sRGB pixels) is not the one keep:icc resumes from.
        let (_, srgb) = run("adobe_rgb.jpg", "resize:300,blur:1,format:png", extra);
        let (_, kept) = run(
            "adobe_rgb.jpg",
            "keep:icc,resize:300,blur:1,format:png",
            extra,
        );
        assert_eq!(embedded(&srgb).0, None, "no profile by default {extra:?}");
        let profile = embedded(&kept).0.expect("keep:icc embeds the profile");
        assert!(holds(&profile, "Adobe RGB"), "{extra:?}");
        assert_ne!(
            image::load_from_memory(&srgb).unwrap().to_rgb8(),
            image::load_from_memory(&kept).unwrap().to_rgb8(),
            "keep:icc leaves the pixels in Adobe RGB {extra:?}"
        );
        let (_, kept) = run(
            "exif_artist_copyright_gps.jpg",
            "keep:copyright,format:webp",
            extra,
        );
        let exif = embedded(&kept).1.expect("keep:copyright writes EXIF");
        assert!(only_the_author(&exif), "{extra:?}");
        let (_, analysis) = run("paris_exif_xmp_icc.jpg", "analyze", extra);
        let analysis: serde_json::Value = serde_json::from_slice(&analysis).unwrap();
        assert_eq!(analysis["exif"]["camera"], "Google Pixel 4a", "{analysis}");
        assert_eq!(analysis["exif"]["has_gps"], true);
    }
}

#[test]
fn submit_records_the_quality_max_bytes_chose() {
    let originals = TempDir::new("formats-submit-originals");
    write_sources(originals.path());
    let data = TempDir::new("formats-submit-data");
    let store = originals.path().to_str().unwrap();
    let ops = "resize:512,max-bytes:12000,format:webp";
    // `process` of the submitted variant answers from the cache with the same bytes and quality.
    let out = originals.join("out.webp");
    let (event, report) = submit_then_process(&data, store, "kodim23.heic", ops, &out);
    assert!(event["bytes"].as_u64().unwrap() <= 12000, "{event}");
    let quality = event["quality"]
        .as_u64()
        .expect("the chosen quality in the event");
    assert!(quality < 80, "{event}");
    assert_eq!(report["quality"], event["quality"]);
    assert_eq!(report["bytes"], event["bytes"]);
    // The other new sources and options through the queue too, read back from the cache.
    let out_png = originals.join("out.png");
    submit_then_process(
        &data,
        store,
        "kodim23.jxl",
        "resize:200,format:png:palette=16",
        &out_png,
    );
    assert_eq!(png_colour_type(&std::fs::read(&out_png).unwrap()), 3);
    let out_jpeg = originals.join("out.jpg");
    submit_then_process(
        &data,
        store,
        "kodim23.avif",
        "thumbnail:96,format:jpeg:progressive:444",
        &out_jpeg,
    );
    assert!(progressive(&std::fs::read(&out_jpeg).unwrap()));
    let out_json = originals.join("out.json");
    submit_then_process(&data, store, "paris_exif_xmp_icc.jpg", "analyze", &out_json);
    let analysis: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&out_json).unwrap()).unwrap();
    assert_eq!(analysis["exif"]["camera"], "Google Pixel 4a", "{analysis}");
    // keep: through the queue, read back from the cache.
    let out_kept = originals.join("kept.jpg");
    submit_then_process(
        &data,
        store,
        "exif_artist_copyright_gps.jpg",
        "thumbnail:100,keep:copyright:icc,format:jpeg",
        &out_kept,
    );
    let (_, exif) = embedded(&std::fs::read(&out_kept).unwrap());
    assert!(only_the_author(&exif.expect("EXIF kept")));
    let out_webp = originals.join("kept.webp");
    submit_then_process(
        &data,
        store,
        "adobe_rgb.jpg",
        "keep:icc,resize:200,format:webp",
        &out_webp,
    );
    let (icc, _) = embedded(&std::fs::read(&out_webp).unwrap());
    assert!(
        icc.is_some_and(|icc| holds(&icc, "Adobe RGB")),
        "the profile in the WebP"
    );
    // A default spelled out is the same variant as one left out.
    let spelled = json_lines(&opossum(
        &data,
        &[
            "submit",
            "kodim23.heic",
            "--originals",
            store,
            "--ops",
            "resize:512,max-bytes:12000,format:webp:80:effort=4",
        ],
    ))
    .remove(0);
    assert_eq!(spelled["key"], event["key"], "{spelled}");
}

#[tokio::test]
async fn origin_urls_read_the_new_formats_with_options_and_budgets() {
    let server = start(&[], None);
    write_sources(server.originals.path());
    let response = get(
        &format!("{}/v1/img/thumbnail:120/kodim23.heic", server.base),
        &[],
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "image/jpeg");
    let jpeg = response.bytes().await.unwrap();
    assert_eq!(image::load_from_memory(&jpeg).unwrap().width(), 120);

    let response = get(
        &format!(
            "{}/v1/img/resize:200,format:png:palette=32/kodim23.jxl",
            server.base
        ),
        &[],
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(png_colour_type(&response.bytes().await.unwrap()), 3);

    let response = get(
        &format!(
            "{}/v1/img/max-bytes:8000,format:webp/kodim23.avif",
            server.base
        ),
        &[],
    )
    .await;
    assert_eq!(response.status(), 200);
    assert!(response.bytes().await.unwrap().len() <= 8000);

    let response = get(
        &format!("{}/v1/img/analyze/paris_exif_xmp_icc.jpg", server.base),
        &[],
    )
    .await;
    assert_eq!(response.status(), 200);
    let analysis: serde_json::Value =
        serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(
        analysis["exif"]["lens"], "Pixel 4a back camera 4.38mm f/1.73",
        "{analysis}"
    );
    assert!(analysis["icc_profile"].is_string(), "{analysis}");

    for (ops, image, format) in [
        ("keep:icc,thumbnail:150", "adobe_rgb.jpg", "image/jpeg"),
        (
            "keep:icc:copyright,format:png",
            "adobe_rgb.jpg",
            "image/png",
        ),
    ] {
        let response = get(&format!("{}/v1/img/{ops}/{image}", server.base), &[]).await;
        assert_eq!(response.status(), 200, "{ops}");
        assert_eq!(response.headers()["content-type"], format);
        let (icc, exif) = embedded(&response.bytes().await.unwrap());
        assert!(icc.is_some_and(|icc| holds(&icc, "Adobe RGB")), "{ops}");
        assert_eq!(exif.is_some(), ops.contains("copyright"), "{ops}");
    }
    let response = get(
        &format!(
            "{}/v1/img/keep:copyright,format:webp/exif_artist_copyright_gps.jpg",
            server.base
        ),
        &[],
    )
    .await;
    assert_eq!(response.status(), 200);
    let (_, exif) = embedded(&response.bytes().await.unwrap());
    assert!(only_the_author(&exif.expect("EXIF kept")));
    let response = get(
        &format!("{}/v1/img/keep:gps/adobe_rgb.jpg", server.base),
        &[],
    )
    .await;
    assert_eq!(response.status(), 400, "keep names what it keeps");

    let response = get(
        &format!("{}/v1/img/format:jpeg:effort=3/kodim23.avif", server.base),
        &[],
    )
    .await;
    assert_eq!(response.status(), 400, "an option of another format");
}
