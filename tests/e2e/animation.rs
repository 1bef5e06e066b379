//! Animated sources the three ways users arrive: `opossum process` (cached and `--no-cache`),
//! `opossum submit` (embedded) and the origin's URLs. The source is a real animated GIF
//! (image-gif's `moon_impact.gif`, 116 x 100), copied into each test's originals store.

use std::path::Path;

use image::AnimationDecoder;
use opossum_testkit::{TempDir, json_lines};

use crate::origin::{get, start};

fn write_moon(dir: &Path) {
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../crates/opossum-image/tests/fixtures/moon_impact.gif"
    );
    std::fs::copy(fixture, dir.join("moon.gif")).unwrap();
}

/// Frame count, frame size and delays of a GIF or an animated WebP, as the `image` crate reads
/// them.
fn frames(bytes: &[u8]) -> (usize, (u32, u32), Vec<u32>) {
    let cursor = std::io::Cursor::new(bytes);
    let frames = match image::guess_format(bytes).unwrap() {
        image::ImageFormat::Gif => image::codecs::gif::GifDecoder::new(cursor)
            .unwrap()
            .into_frames()
            .collect_frames()
            .unwrap(),
        image::ImageFormat::WebP => {
            let decoder = image::codecs::webp::WebPDecoder::new(cursor).unwrap();
            assert!(decoder.has_animation(), "a still webp");
            decoder.into_frames().collect_frames().unwrap()
        }
        other => panic!("not an animation: {other:?}"),
    };
    let size = frames[0].buffer().dimensions();
    let delays = frames
        .iter()
        .map(|f| {
            let (n, d) = f.delay().numer_denom_ms();
            n / d
        })
        .collect();
    (frames.len(), size, delays)
}

fn source_frames() -> (usize, (u32, u32), Vec<u32>) {
    let dir = TempDir::new("moon");
    write_moon(dir.path());
    frames(&std::fs::read(dir.join("moon.gif")).unwrap())
}

#[test]
fn process_keeps_an_animation_and_takes_one_frame_on_request() {
    let (count, _, delays) = source_frames();
    let originals = TempDir::new("animation-originals");
    write_moon(originals.path());
    let data = TempDir::new("animation-data");
    let store = originals.path().to_str().unwrap();
    let out = originals.join("out");
    let run = |ops: &str, extra: &[&str]| {
        crate::support::process_in(&data, store, "moon.gif", ops, &out, extra);
        std::fs::read(&out).unwrap()
    };
    for extra in [&[][..], &["--no-cache"][..]] {
        let gif = run("resize:58:50:fill", extra);
        assert_eq!(
            frames(&gif),
            (count, (58, 50), delays.clone()),
            "a gif {extra:?}"
        );
        let webp = run("thumbnail:64,format:webp", extra);
        let (webp_count, size, webp_delays) = frames(&webp);
        assert_eq!(size, (64, 55));
        assert!(webp_count > 1 && webp_count <= count, "{webp_count} frames");
        assert_eq!(
            webp_delays.iter().sum::<u32>(),
            delays.iter().sum::<u32>(),
            "one play lasts as long {extra:?}"
        );
        let still = run("frame:3,format:png", extra);
        assert_eq!(
            image::guess_format(&still).unwrap(),
            image::ImageFormat::Png
        );
    }
}

#[test]
fn submit_keeps_an_animation_and_process_then_reads_it_from_the_cache() {
    let (count, _, delays) = source_frames();
    let originals = TempDir::new("animation-submit-originals");
    write_moon(originals.path());
    let data = TempDir::new("animation-submit-data");
    let store = originals.path().to_str().unwrap();
    let ops = "crop:60:60:smart,rotate:180";
    // The submitted job's result is what a later `process` of the same variant answers with.
    let out = originals.join("out.gif");
    crate::support::submit_then_process(&data, store, "moon.gif", ops, &out);
    let bytes = std::fs::read(&out).unwrap();
    assert_eq!(frames(&bytes), (count, (60, 60), delays));
    // A frame past the end is a clear error, through the queue too.
    let failed = crate::support::run_in(
        &data,
        &[
            "submit",
            "moon.gif",
            "--originals",
            store,
            "--ops",
            &format!("frame:{count}"),
        ],
    );
    assert_eq!(failed.status.code(), Some(1));
    let event = json_lines(&failed).remove(0);
    assert_eq!(event["status"], "error", "{event}");
    assert!(
        event["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains(&format!("the animation has {count} frames")),
        "{event}"
    );
}

#[tokio::test]
async fn origin_urls_keep_an_animation_and_analyze_it() {
    let (count, _, delays) = source_frames();
    let server = start(&[], None);
    write_moon(server.originals.path());
    let response = get(
        &format!("{}/v1/img/resize:58:50:fill/moon.gif", server.base),
        &[],
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "image/gif");
    let bytes = response.bytes().await.unwrap();
    assert_eq!(frames(&bytes), (count, (58, 50), delays.clone()));
    let still = get(
        &format!("{}/v1/img/frame:1,thumbnail:40/moon.gif", server.base),
        &[],
    )
    .await;
    assert_eq!(still.status(), 200);
    assert_eq!(still.headers()["content-type"], "image/png");
    let analysis = get(&format!("{}/v1/img/analyze/moon.gif", server.base), &[]).await;
    assert_eq!(analysis.status(), 200);
    let json: serde_json::Value = serde_json::from_slice(&analysis.bytes().await.unwrap()).unwrap();
    assert_eq!(json["frames"], count);
    assert_eq!(
        json["duration_ms"],
        delays.iter().map(|&d| u64::from(d)).sum::<u64>()
    );
}
