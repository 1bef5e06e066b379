//! The command line as a user meets it: outputs, keys, and errors.

use std::time::Duration;

use opossum_testkit::{TempDir, corpus};

use crate::support::run;

const DEADLINE: Duration = Duration::from_secs(60);

fn photo(name: &str) -> String {
    corpus()
        .join("photos")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

fn ok(args: &[&str]) -> crate::support::Run {
    let run = run(args, DEADLINE).unwrap();
    assert!(run.status.success(), "{args:?} failed: {}", run.stderr);
    run
}

fn fails(args: &[&str], message: &str) {
    let run = run(args, DEADLINE).unwrap();
    assert_eq!(run.status.code(), Some(1), "{args:?}: {}", run.stderr);
    assert_eq!(run.stderr.lines().count(), 1, "{args:?}: {:?}", run.stderr);
    assert!(run.stderr.starts_with("error: "), "{:?}", run.stderr);
    assert!(
        run.stderr.contains(message),
        "{args:?}: expected {message:?} in {:?}",
        run.stderr
    );
}

#[test]
fn process_writes_the_requested_format_and_size() {
    let temp = TempDir::new("cli-formats");
    let jpeg = photo("harvesters.jpeg");
    for (chain, format, mime_check) in [
        (
            "thumbnail:200,format:webp",
            "webp",
            image::ImageFormat::WebP,
        ),
        (
            "resize:300:200:fill,format:png",
            "png",
            image::ImageFormat::Png,
        ),
        (
            "resize:300:200:force,grayscale,format:jpeg:70",
            "jpeg",
            image::ImageFormat::Jpeg,
        ),
        (
            "resize:0:150,blur:1.5,sharpen,format:webp:lossless",
            "webp",
            image::ImageFormat::WebP,
        ),
    ] {
        let out = temp.join(&format!("out.{format}"));
        let out_arg = out.to_string_lossy().into_owned();
        let report = ok(&[
            "process", &jpeg, "--ops", chain, "--out", &out_arg, "--json",
        ])
        .json();
        assert_eq!(report["format"], format, "{chain}");
        let bytes = std::fs::read(&out).unwrap();
        assert_eq!(report["bytes"].as_u64().unwrap(), bytes.len() as u64);
        assert_eq!(image::guess_format(&bytes).unwrap(), mime_check, "{chain}");
        let img = image::load_from_memory(&bytes).unwrap();
        assert_eq!(
            (u64::from(img.width()), u64::from(img.height())),
            (
                report["width"].as_u64().unwrap(),
                report["height"].as_u64().unwrap()
            ),
            "{chain}"
        );
        assert!(report["duration_ms"].as_f64().unwrap() > 0.0);
    }
}

#[test]
fn process_without_format_keeps_the_source_format_and_writes_to_stdout() {
    let run = ok(&["process", &photo("kodim23.png"), "--ops", "crop:100:80"]);
    let img = image::load_from_memory(&run.stdout).unwrap();
    assert_eq!(
        image::guess_format(&run.stdout).unwrap(),
        image::ImageFormat::Png
    );
    assert_eq!((img.width(), img.height()), (100, 80));
}

#[test]
fn analyze_prints_the_analysis_json() {
    let run = ok(&[
        "process",
        &photo("kodim23.png"),
        "--ops",
        "analyze",
        "--out",
        "-",
    ]);
    let analysis = run.json();
    assert_eq!(analysis["width"], 768);
    assert_eq!(analysis["height"], 512);
    assert_eq!(analysis["format"], "png");
    assert_eq!(analysis["dominant_colors"].as_array().unwrap().len(), 5);
    assert!(analysis["average_color"].as_str().unwrap().starts_with('#'));
    assert_eq!(analysis["phash"].as_str().unwrap().len(), 16);
}

#[test]
fn svg_round_trip_through_tracing_and_rendering() {
    let temp = TempDir::new("cli-svg");
    let svg = temp.join("traced.svg").to_string_lossy().into_owned();
    ok(&[
        "process",
        &photo("kodim23.png"),
        "--ops",
        "thumbnail:120,format:svg",
        "--out",
        &svg,
    ]);
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.contains("<svg") && text.contains("<path"));
    let png = temp.join("rendered.png").to_string_lossy().into_owned();
    let report = ok(&[
        "process",
        &svg,
        "--ops",
        "resize:60:60,format:png",
        "--out",
        &png,
        "--json",
    ])
    .json();
    assert_eq!(
        (report["width"].as_u64(), report["height"].as_u64()),
        (Some(60), Some(40))
    );
}

#[test]
fn key_agrees_with_process_and_ignores_spelling() {
    let file = photo("kodim23.png");
    let by_key = ok(&["key", &file, "--ops", "resize:100:100,format:jpg"]).stdout_text();
    let json = r#"[{"op":"resize","width":100,"height":100,"mode":"fit"},{"op":"format","format":"jpeg","quality":80}]"#;
    let by_json = ok(&["key", &file, "--ops", json]).stdout_text();
    assert_eq!(by_key, by_json);
    let by_process = ok(&[
        "process",
        &file,
        "--ops",
        "resize:100:100:fit,format:jpeg:80",
        "--json",
    ])
    .json();
    assert_eq!(by_process["key"].as_str().unwrap(), by_key.trim());
    let other = ok(&["key", &file, "--ops", "resize:100:101,format:jpg"]).stdout_text();
    assert_ne!(other, by_key);
    let described = ok(&["key", &file, "--ops", "thumbnail:200", "--json"]).json();
    assert_eq!(described["category"], "thumbnail");
    assert_eq!(described["ttl_seconds"], 604_800);
}

#[test]
fn the_font_set_is_part_of_every_key_and_draws_svg_text() {
    let temp = TempDir::new("cli-fonts");
    let svg = temp.join("text.svg");
    std::fs::write(
        &svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="160" height="48"><rect width="160" height="48" fill="white"/><text x="6" y="36" font-family="sans-serif" font-size="30">Opossum</text></svg>"#,
    )
    .unwrap();
    let bare = temp.join("no-fonts.yaml");
    let empty = temp.join("empty");
    std::fs::write(&bare, format!("fonts:\n  dir: {}\n", empty.display())).unwrap();
    let (svg, bare) = (svg.to_str().unwrap(), bare.to_str().unwrap());
    let (with, without) = (temp.join("with.png"), temp.join("without.png"));
    let (with, without) = (with.to_str().unwrap(), without.to_str().unwrap());

    let default_key = ok(&["key", svg, "--ops", "format:png"]).stdout_text();
    let bare_key = ok(&["--config", bare, "key", svg, "--ops", "format:png"]).stdout_text();
    assert_ne!(default_key, bare_key, "two font sets share a key");
    let drawn = ok(&[
        "process",
        svg,
        "--ops",
        "format:png",
        "--out",
        with,
        "--json",
    ])
    .json();
    assert_eq!(drawn["key"].as_str().unwrap(), default_key.trim());
    let blank = ok(&[
        "--config",
        bare,
        "process",
        svg,
        "--ops",
        "format:png",
        "--out",
        without,
        "--json",
    ])
    .json();
    assert_eq!(blank["key"].as_str().unwrap(), bare_key.trim());
    assert_ne!(
        std::fs::read(with).unwrap(),
        std::fs::read(without).unwrap(),
        "the text looks the same with and without fonts"
    );
}

#[test]
fn presets_from_config_expand_to_the_same_key_as_their_operations() {
    let temp = TempDir::new("cli-presets");
    let config = temp.join("opossum.yaml");
    std::fs::write(
        &config,
        "presets:\n  avatar:\n    version: 2\n    ops: \"thumbnail:64,format:png\"\n    family: avatar\n",
    )
    .unwrap();
    let config = config.to_string_lossy().into_owned();
    let file = photo("kodim23.png");
    let expanded = ok(&["key", &file, "--ops", "thumbnail:64,format:png"]).stdout_text();
    let by_name = ok(&["--config", &config, "key", &file, "--ops", "preset:avatar"]);
    assert_eq!(by_name.stdout_text(), expanded);
    let processed = ok(&[
        "--config",
        &config,
        "process",
        &file,
        "--ops",
        "preset:avatar:v2",
        "--json",
    ])
    .json();
    assert_eq!(processed["key"].as_str().unwrap(), expanded.trim());
    assert_eq!(processed["format"], "png");
    assert_eq!(processed["width"], 64);

    fails(
        &[
            "--config",
            &config,
            "key",
            &file,
            "--ops",
            "preset:avatar:3",
        ],
        "unknown preset `preset:avatar:3`",
    );
    fails(
        &["key", &file, "--ops", "preset:avatar"],
        "unknown preset `preset:avatar`",
    );
    std::fs::write(
        temp.join("bad.yaml"),
        "presets:\n  avatar:\n    ops: blur:x\n",
    )
    .unwrap();
    let bad = temp.join("bad.yaml").to_string_lossy().into_owned();
    fails(
        &["--config", &bad, "key", &file, "--ops", "blur:1"],
        "presets: preset `avatar`: operation 1 `blur`: bad sigma `x`",
    );
    std::fs::write(temp.join("typo.yaml"), "presetz: {}\n").unwrap();
    let typo = temp.join("typo.yaml").to_string_lossy().into_owned();
    fails(
        &["--config", &typo, "key", &file, "--ops", "blur:1"],
        "typo.yaml: presetz: unknown field `presetz`",
    );
}

#[test]
fn bad_input_is_one_clear_line_and_exit_1() {
    let temp = TempDir::new("cli-errors");
    let garbage = temp.join("garbage.jpg");
    std::fs::write(&garbage, b"\xff\xd8\xff\xe0 this is not really a jpeg").unwrap();
    let garbage = garbage.to_string_lossy().into_owned();
    let png = photo("kodim23.png");
    fails(
        &["process", "/no/such/file.png", "--ops", "grayscale"],
        "cannot read /no/such/file.png",
    );
    fails(&["process", &png, "--ops", "resize:abc"], "bad width `abc`");
    fails(
        &["process", &png, "--ops", "sepia"],
        "unknown operation `sepia`",
    );
    fails(
        &["process", &garbage, "--ops", "grayscale", "--json"],
        "corrupt jpeg image",
    );
    fails(
        &["process", &png, "--ops", "crop:10:10:5000:0", "--json"],
        "origin (5000, 0) is outside the image",
    );
    fails(
        &[
            "process",
            &png,
            "--ops",
            "resize:16000:16000:force",
            "--json",
        ],
        "more than the output limit",
    );
    fails(
        &[
            "process",
            temp.path().to_str().unwrap(),
            "--ops",
            "grayscale",
        ],
        "is not a file",
    );
    // A 2 KB JPEG whose frame header claims 60000x60000: rejected from the header, at once.
    let bomb = temp.join("bomb.jpg");
    std::fs::write(
        &bomb,
        with_claimed_size(
            &std::fs::read(photo("peacock.default.jpeg")).unwrap(),
            60_000,
            60_000,
        ),
    )
    .unwrap();
    let bomb = bomb.to_string_lossy().into_owned();
    fails(
        &["process", &bomb, "--ops", "thumbnail:100"],
        "60000x60000 (3600000000 pixels), more than the limit of 50000000 pixels",
    );
    // Usage errors come from clap with exit 2.
    let run = run(&["process", &png], DEADLINE).unwrap();
    assert_eq!(run.status.code(), Some(2));
    assert!(run.stderr.contains("--ops"));
}

/// Rewrites the dimensions in a JPEG's start-of-frame header, leaving the pixel data alone.
fn with_claimed_size(jpeg: &[u8], width: u16, height: u16) -> Vec<u8> {
    let mut out = jpeg.to_vec();
    let mut pos = 2;
    while pos + 9 < out.len() {
        assert_eq!(out[pos], 0xFF, "lost marker sync at {pos}");
        let marker = out[pos + 1];
        let length = usize::from(u16::from_be_bytes([out[pos + 2], out[pos + 3]]));
        if (0xC0..=0xC2).contains(&marker) {
            out[pos + 5..pos + 7].copy_from_slice(&height.to_be_bytes());
            out[pos + 7..pos + 9].copy_from_slice(&width.to_be_bytes());
            return out;
        }
        pos += 2 + length;
    }
    panic!("no start-of-frame marker");
}

/// `process` through the tiers: computed, then answered by the disk tier in a new process, then
/// gone after `cache invalidate`; stats count it all.
#[test]
fn process_uses_the_disk_tier_and_invalidate_removes_it() {
    let temp = TempDir::new("cli-cache");
    let data = temp.join("data").to_string_lossy().into_owned();
    let file = photo("kodim23.png");
    let args = [
        "--data-dir",
        &data,
        "process",
        &file,
        "--ops",
        "thumbnail:120,format:webp",
        "--json",
    ];
    let first = ok(&args).json();
    assert_eq!(first["source"], "computed");
    let second = ok(&args).json();
    assert_eq!(second["source"], "disk");
    assert_eq!(first["key"], second["key"]);
    assert_eq!(first["bytes"], second["bytes"]);

    let stats = ok(&["--data-dir", &data, "cache", "stats", "--json"]).json();
    assert_eq!(
        stats["tiers"]["disk"]["categories"]["thumbnail"]["hits"], 1,
        "{stats}"
    );
    assert_eq!(stats["computed"]["thumbnail"], 1, "{stats}");
    let table = ok(&["--data-dir", &data, "cache", "stats"]).stdout_text();
    assert!(
        table.contains("thumbnail") && table.contains("hit rate"),
        "{table}"
    );

    let removed = ok(&["--data-dir", &data, "cache", "invalidate", &file, "--json"]).json();
    assert_eq!(removed["tiers"]["disk"]["removed"], 1, "{removed}");
    assert_eq!(ok(&args).json()["source"], "computed");

    // --no-cache neither reads nor writes.
    let bypass = ok(&[&args[..], &["--no-cache"]].concat()).json();
    assert_eq!(bypass["source"], "computed");
}

#[test]
fn bad_input_is_cached_as_an_error_result() {
    let temp = TempDir::new("cli-error-cache");
    let data = temp.join("data").to_string_lossy().into_owned();
    let broken = temp.join("broken.png");
    std::fs::write(&broken, b"\x89PNG\r\n\x1a\n truncated").unwrap();
    let broken = broken.to_string_lossy().into_owned();
    let args = [
        "--data-dir",
        &data,
        "process",
        &broken,
        "--ops",
        "grayscale",
        "--json",
    ];
    fails(&args, "corrupt png image");
    // Fixing the file does not help until the error result expires (5 min) or is invalidated.
    std::fs::copy(photo("kodim23.png"), &broken).unwrap();
    fails(&args, "corrupt png image");
    ok(&["--data-dir", &data, "cache", "invalidate", &broken]);
    assert_eq!(ok(&args).json()["source"], "computed");
}

#[test]
fn simulate_reports_the_policy_beside_lru_arc_and_optimal() {
    let temp = TempDir::new("cli-simulate");
    let trace = temp.join("trace.txt");
    // A hot set of 20 keys, each followed by three one-off keys.
    let mut lines = Vec::new();
    for i in 0..4000 {
        lines.push(format!("hot{}", i % 20));
        for j in 0..3 {
            lines.push(format!("cold{i}-{j}"));
        }
    }
    std::fs::write(&trace, lines.join("\n")).unwrap();
    let trace = trace.to_string_lossy().into_owned();
    let report = ok(&[
        "cache",
        "simulate",
        "--trace",
        &trace,
        "--capacity",
        "30",
        "--json",
    ])
    .json();
    assert_eq!(report["requests"], 16_000);
    let (tiny, lru, arc, opt) = (
        report["policy_hit_rate"].as_f64().unwrap(),
        report["lru_hit_rate"].as_f64().unwrap(),
        report["arc_hit_rate"].as_f64().unwrap(),
        report["optimal_hit_rate"].as_f64().unwrap(),
    );
    assert!(
        tiny > lru && opt >= tiny && opt >= arc && arc >= lru,
        "tinylfu {tiny} lru {lru} arc {arc} optimal {opt}"
    );
    let text = ok(&["cache", "simulate", "--trace", &trace, "--capacity", "30"]);
    let text = text.stdout_text();
    assert!(text.contains("arc (reference)"), "{text}");
    fails(
        &[
            "cache",
            "simulate",
            "--trace",
            &trace,
            "--capacity",
            "30",
            "--policy",
            "fifo",
        ],
        "unknown --policy `fifo`",
    );
}
