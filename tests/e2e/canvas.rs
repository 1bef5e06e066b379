//! The canvas operations and filters of image engine II the three ways users arrive: `opossum
//! process`, `opossum submit` (embedded) and the origin's URLs. The source is a 300 x 200 white
//! frame (20 px) around a grey picture with a small detailed subject in one corner.

use std::path::Path;

use image::{DynamicImage, Rgb, RgbImage};
use opossum_testkit::{TempDir, json_lines};

use crate::origin::{get, start};
use crate::support::{opossum_fails_in, opossum_in as opossum};

fn write_framed(dir: &Path) {
    let image = RgbImage::from_fn(300, 200, |x, y| {
        let framed = !(20..280).contains(&x) || !(20..180).contains(&y);
        let subject = (220..260).contains(&x) && (30..70).contains(&y);
        match (framed, subject, (x / 2 + y / 2) % 2) {
            (true, _, _) => Rgb([255, 255, 255]),
            (false, true, 0) => Rgb([240, 30, 20]),
            (false, true, _) => Rgb([250, 220, 30]),
            (false, false, _) => Rgb([100, 110, 120]),
        }
    });
    image.save(dir.join("framed.png")).unwrap();
}

fn pixel(image: &DynamicImage, x: u32, y: u32) -> [u8; 4] {
    image.to_rgba8().get_pixel(x, y).0
}

#[test]
fn process_runs_every_new_step() {
    let originals = TempDir::new("canvas-originals");
    write_framed(originals.path());
    let data = TempDir::new("canvas-data");
    let store = originals.path().to_str().unwrap();
    let run = |ops: &str| {
        let out = originals.join("out.png");
        opossum(
            &data,
            &[
                "process",
                "framed.png",
                "--originals",
                store,
                "--ops",
                &format!("{ops},format:png"),
                "--out",
                out.to_str().unwrap(),
            ],
        );
        image::open(&out).unwrap()
    };
    let check = |ops: &str, size: (u32, u32)| {
        let image = run(ops);
        assert_eq!((image.width(), image.height()), size, "{ops}");
        image
    };
    let trimmed = check("trim", (260, 160));
    assert_eq!(pixel(&trimmed, 0, 0)[..3], [100, 110, 120]);
    let contained = check("trim,resize:100:100:contain:ff0000", (100, 100));
    assert_eq!(pixel(&contained, 0, 0), [255, 0, 0, 255]);
    assert_eq!(pixel(&contained, 99, 99), [255, 0, 0, 255]);
    let padded = check("dpr:2,pad:1:2:3:4:0000ff", (312, 208));
    assert_eq!(pixel(&padded, 0, 0), [0, 0, 255, 255]);
    check("crop:0.5:0.5:north-west", (150, 100));
    // smart keeps the detailed subject (the top right) rather than the centre.
    let smart = check("trim,crop:80:80:smart", (80, 80));
    let coloured = smart.to_rgb8().pixels().filter(|p| p.0[2] < 60).count();
    assert!(
        coloured > 100,
        "the smart window holds {coloured} subject pixels"
    );
    check("rotate:30:00ff00", (360, 324));
    check("resize:600:600:fit:enlarge", (600, 400));
    let rounded = check(
        "round:30,pixelate:4,tint:ff8800,gamma:2,normalize,median:1,modulate:1:1.5:90",
        (300, 200),
    );
    assert_eq!(pixel(&rounded, 0, 0)[3], 0);
    let flattened = check("round:30,background:00ff00", (300, 200));
    assert_eq!(pixel(&flattened, 0, 0), [0, 255, 0, 255]);
    // A bad argument is named, and nothing is written.
    let stderr = opossum_fails_in(
        &data,
        &[
            "process",
            "framed.png",
            "--originals",
            store,
            "--ops",
            "pad:10:blue",
        ],
    );
    assert!(stderr.contains("`pad`: bad right `blue`"), "{stderr}");
}

#[test]
fn submit_takes_the_new_steps_and_dpr_shares_the_key() {
    let originals = TempDir::new("canvas-submit-originals");
    write_framed(originals.path());
    let data = TempDir::new("canvas-submit-data");
    let store = originals.path().to_str().unwrap();
    let submit = |ops: &str| {
        json_lines(&opossum(
            &data,
            &["submit", "framed.png", "--originals", store, "--ops", ops],
        ))
        .remove(0)
    };
    let key = |ops: &str| {
        String::from_utf8_lossy(&opossum(&data, &["key", "framed.png", "--ops", ops]).stdout)
            .trim()
            .to_string()
    };
    let event = submit("dpr:2,trim,resize:50:40:contain:ffffff,format:webp");
    assert_eq!(event["status"], "ok", "{event}");
    assert_eq!(
        event["key"],
        key("trim,resize:100:80:letterbox:FFFFFFFF,format:webp")
    );
    assert_ne!(event["key"], key("trim,resize:100:80:contain,format:webp"));
    // Every other new step through the queue too: one job, all of them.
    let event = submit(
        "resize:600:400:fit:enlarge,pad:4:ff0000,background:ffffff,pixelate:3,tint:ff8800,\
         gamma:1.4,normalize,median:1,modulate:1.1:0.8:20,resize:100:100:fill:north-east,\
         format:png",
    );
    assert_eq!(event["status"], "ok", "{event}");
    assert!(event["bytes"].as_u64().unwrap() > 0, "{event}");
    let event = submit("rotate:-45:000000,crop:0.5:0.5:smart,round:8,format:png");
    assert_eq!(event["status"], "ok", "{event}");
    assert_eq!(
        event["key"],
        key("rotate:315:000000ff,crop:0.500:0.5:attention,rounded:8,format:png")
    );
}

#[tokio::test]
async fn origin_urls_take_the_new_steps() {
    let server = start(&[], None);
    write_framed(server.originals.path());
    let response = get(
        &format!(
            "{}/v1/img/trim,resize:100:100:contain:ff0000,pad:5:0000ff,format:png/framed.png",
            server.base
        ),
        &[],
    )
    .await;
    assert_eq!(response.status(), 200);
    let image = image::load_from_memory(&response.bytes().await.unwrap()).unwrap();
    assert_eq!((image.width(), image.height()), (110, 110));
    assert_eq!(pixel(&image, 0, 0), [0, 0, 255, 255]);
    assert_eq!(pixel(&image, 5, 5), [255, 0, 0, 255]);
    let dpr = get(
        &format!(
            "{}/v1/img/dpr:2,crop:0.25:50,format:png/framed.png",
            server.base
        ),
        &[],
    )
    .await;
    assert_eq!(dpr.status(), 200);
    let image = image::load_from_memory(&dpr.bytes().await.unwrap()).unwrap();
    assert_eq!((image.width(), image.height()), (75, 100));
    // The rest of the new steps in one URL.
    let all = get(
        &format!(
            "{}/v1/img/dpr:1.5,resize:400:400:fit:enlarge,background:ffffff,round:10,\
             pixelate:2,tint:88ccff,gamma:0.8,normalize,median:1,modulate:1:1.3:45,\
             rotate:10:ffffff,crop:0.8:0.8:smart,format:png/framed.png",
            server.base
        ),
        &[],
    )
    .await;
    assert_eq!(all.status(), 200);
    let image = image::load_from_memory(&all.bytes().await.unwrap()).unwrap();
    // 600 x 400 after the enlarged fit; a 10 degree turn grows it to 661 x 499; 0.8 of that.
    assert_eq!((image.width(), image.height()), (529, 399));
    let bad = get(
        &format!("{}/v1/img/rotate:45:blue/framed.png", server.base),
        &[],
    )
    .await;
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await.unwrap().contains("bad background `blue`"));
}

fn write_logo(dir: &Path, rgb: [u8; 3]) {
    RgbImage::from_pixel(60, 30, Rgb(rgb))
        .save(dir.join("logo.png"))
        .unwrap();
}

#[test]
fn a_watermark_from_process_and_submit_and_a_replaced_one_changes_the_key() {
    // (`--no-cache` and `key` read the store itself: they see a replacement at once.)
    let originals = TempDir::new("watermark-originals");
    write_framed(originals.path());
    write_logo(originals.path(), [0, 0, 255]);
    let data = TempDir::new("watermark-data");
    let store = originals.path().to_str().unwrap();
    let out = originals.join("out.png");
    let process = |extra: &[&str]| {
        let mut args = vec![
            "process",
            "framed.png",
            "--originals",
            store,
            "--ops",
            "watermark:logo.png:north-west:1:0.2,format:png",
            "--out",
            out.to_str().unwrap(),
            "--json",
        ];
        args.extend_from_slice(extra);
        let report: serde_json::Value =
            serde_json::from_slice(&opossum(&data, &args).stdout).unwrap();
        (
            report["key"].as_str().unwrap().to_string(),
            image::open(&out).unwrap(),
        )
    };
    let (first, marked) = process(&[]);
    // 0.2 of the 300 px width: a 60 x 30 logo in the top-left corner, nothing else changed.
    assert_eq!(pixel(&marked, 5, 5), [0, 0, 255, 255]);
    assert_eq!(pixel(&marked, 59, 29), [0, 0, 255, 255]);
    assert_eq!(pixel(&marked, 61, 10), [255, 255, 255, 255]);
    assert_eq!(pixel(&marked, 10, 31), [255, 255, 255, 255]);
    assert_eq!(pixel(&marked, 150, 100)[..3], [100, 110, 120]);
    // The same request again is the same key, answered from the cache; without the cache too.
    assert_eq!(process(&[]).0, first);
    assert_eq!(process(&["--no-cache"]).0, first);
    // Replace the watermark image. The fleet shares the loaded watermark as a resource for a
    // minute, so at first the old one answers; invalidating its id makes the change at once:
    // a new key, and the new logo drawn.
    write_logo(originals.path(), [0, 255, 0]);
    assert_eq!(process(&[]).0, first);
    opossum(&data, &["cache", "invalidate", "logo.png"]);
    let (second, remarked) = process(&[]);
    assert_ne!(second, first);
    assert_eq!(pixel(&remarked, 5, 5), [0, 255, 0, 255]);
    // `opossum key` pins the version as the pipeline does.
    let key = opossum(
        &data,
        &[
            "key",
            "framed.png",
            "--originals",
            store,
            "--ops",
            "watermark:logo.png:nw:1:0.2,format:png",
        ],
    );
    assert_eq!(String::from_utf8_lossy(&key.stdout).trim(), second);
    // `submit` (embedded) composites it too, and its event carries the pinned key.
    let event = json_lines(&opossum(
        &data,
        &[
            "submit",
            "framed.png",
            "--originals",
            store,
            "--ops",
            "watermark:logo.png:north-west:1:0.2,format:png",
        ],
    ))
    .remove(0);
    assert_eq!(event["status"], "ok", "{event}");
    assert_eq!(event["key"], second.as_str());
    // A watermark id that could leave the store is refused before any I/O.
    let stderr = opossum_fails_in(
        &data,
        &[
            "process",
            "framed.png",
            "--originals",
            store,
            "--ops",
            "watermark:../secret.png",
        ],
    );
    assert!(
        stderr.contains("invalid image id `../secret.png`"),
        "{stderr}"
    );
}

#[tokio::test]
async fn origin_urls_take_a_watermark() {
    let server = start(&[], None);
    write_framed(server.originals.path());
    write_logo(server.originals.path(), [255, 0, 255]);
    let response = get(
        &format!(
            "{}/v1/img/watermark:logo.png:tile:1:0.2,format:png/framed.png",
            server.base
        ),
        &[],
    )
    .await;
    assert_eq!(response.status(), 200);
    let image = image::load_from_memory(&response.bytes().await.unwrap()).unwrap();
    assert!(image.to_rgb8().pixels().all(|p| p.0 == [255, 0, 255]));
    let missing = get(
        &format!("{}/v1/img/watermark:nope.png/framed.png", server.base),
        &[],
    )
    .await;
    assert_eq!(missing.status(), 404);
    assert!(missing.text().await.unwrap().contains("nope.png"));
}
