//! Gravity for `fill` and `crop` the three ways users arrive: `opossum process`, `opossum
//! submit` (embedded) and the origin's URLs, on a 600 x 400 image with a coloured marker in
//! each corner and one at (450, 100).

use std::path::Path;

use image::{DynamicImage, Rgb, RgbImage};
use opossum_testkit::{TempDir, json_lines};

use crate::origin::{get, start};
use crate::support::opossum_in as opossum;

const RED: [u8; 3] = [255, 0, 0];
const GREEN: [u8; 3] = [0, 255, 0];
const BLUE: [u8; 3] = [0, 0, 255];
const YELLOW: [u8; 3] = [255, 255, 0];
const MAGENTA: [u8; 3] = [255, 0, 255];

fn write_markers(dir: &Path) {
    let marks = [
        (0, 0, RED),
        (580, 0, GREEN),
        (0, 380, BLUE),
        (580, 380, YELLOW),
        (440, 90, MAGENTA),
    ];
    let image = RgbImage::from_fn(600, 400, |x, y| {
        marks
            .iter()
            .find(|(mx, my, _)| (*mx..mx + 20).contains(&x) && (*my..my + 20).contains(&y))
            .map_or(Rgb([128, 128, 128]), |(_, _, c)| Rgb(*c))
    });
    image.save(dir.join("markers.png")).unwrap();
}

fn has(image: &DynamicImage, colour: [u8; 3]) -> bool {
    image
        .to_rgb8()
        .pixels()
        .any(|p| p.0.iter().zip(colour).all(|(a, b)| a.abs_diff(b) < 40))
}

#[test]
fn process_and_submit_keep_the_window_the_gravity_names() {
    let originals = TempDir::new("gravity-originals");
    write_markers(originals.path());
    let data = TempDir::new("gravity-data");
    let store = originals.path().to_str().unwrap();
    for (ops, kept, dropped) in [
        ("crop:200:200:north-east", GREEN, RED),
        ("crop:200:200:sw", BLUE, YELLOW),
        ("resize:100:200:fill:west", RED, GREEN),
        ("resize:300:100:fill:south", YELLOW, RED),
        ("resize:100:200:fill:focus:0.75:0.25", MAGENTA, RED),
    ] {
        let out = originals.join("out.png");
        opossum(
            &data,
            &[
                "process",
                "markers.png",
                "--originals",
                store,
                "--ops",
                &format!("{ops},format:png"),
                "--out",
                out.to_str().unwrap(),
            ],
        );
        let result = image::open(&out).unwrap();
        assert!(has(&result, kept) && !has(&result, dropped), "{ops}");
    }
    // `submit` (embedded here) takes the same gravity, and another spelling is the same key.
    let event = &json_lines(&opossum(
        &data,
        &[
            "submit",
            "markers.png",
            "--originals",
            store,
            "--ops",
            "crop:200:200:focus:0.75:0.25",
        ],
    ))[0];
    assert_eq!(event["status"], "ok", "{event}");
    let key = |ops: &str| {
        String::from_utf8_lossy(&opossum(&data, &["key", "markers.png", "--ops", ops]).stdout)
            .trim()
            .to_string()
    };
    assert_eq!(event["key"], key("crop:200:200:FOCUS:0.750:0.25"));
    assert_ne!(event["key"], key("crop:200:200"));
}

#[tokio::test]
async fn origin_urls_take_a_gravity() {
    let server = start(&[], None);
    write_markers(server.originals.path());
    let response = get(
        &format!(
            "{}/v1/img/crop:200:200:focus:0.75:0.25,format:png/markers.png",
            server.base
        ),
        &[],
    )
    .await;
    assert_eq!(response.status(), 200);
    let body = response.bytes().await.unwrap();
    let image = image::load_from_memory(&body).unwrap().to_rgb8();
    assert_eq!(image.dimensions(), (200, 200));
    // The focal point is the window's centre.
    assert_eq!(image.get_pixel(100, 100).0, MAGENTA);
    let bad = get(
        &format!("{}/v1/img/crop:200:200:up/markers.png", server.base),
        &[],
    )
    .await;
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await.unwrap().contains("bad gravity `up`"));
}
