//! Pixel tests of the canvas operations and filters, through the chain as users write it:
//! smart crop, relative crop, contain, pad, background, trim, enlarge, dpr, any-angle rotate,
//! rounded corners, pixelate, tint, gamma, normalize, median and modulate.

use image::{DynamicImage, Rgb, RgbImage, Rgba, RgbaImage};
use opossum_image::{ImageError, Limits, apply, process};
use opossum_ops::Chain;

fn run_with(image: DynamicImage, chain: &str, limits: &Limits) -> Result<DynamicImage, ImageError> {
    let chain = Chain::parse(chain).unwrap_or_else(|e| panic!("{chain}: {e}"));
    chain
        .pixel_ops()
        .iter()
        .try_fold(image, |img, op| apply(img, op, limits))
}

fn run(image: DynamicImage, chain: &str) -> DynamicImage {
    run_with(image, chain, &Limits::default()).unwrap_or_else(|e| panic!("{chain}: {e}"))
}

fn flat(width: u32, height: u32, rgb: [u8; 3]) -> DynamicImage {
    DynamicImage::ImageRgb8(RgbImage::from_pixel(width, height, Rgb(rgb)))
}

fn size(image: &DynamicImage) -> (u32, u32) {
    (image.width(), image.height())
}

fn rgba_at(image: &DynamicImage, x: u32, y: u32) -> [u8; 4] {
    image.to_rgba8().get_pixel(x, y).0
}

/// A grey image with a detailed square (a fine checkerboard of saturated colours).
fn with_subject(width: u32, height: u32, at: (u32, u32), side: u32) -> DynamicImage {
    DynamicImage::ImageRgb8(RgbImage::from_fn(width, height, |x, y| {
        let inside = (at.0..at.0 + side).contains(&x) && (at.1..at.1 + side).contains(&y);
        match (inside, (x / 3 + y / 3) % 2) {
            (true, 0) => Rgb([240, 30, 20]),
            (true, _) => Rgb([250, 220, 30]),
            (false, _) => Rgb([120, 120, 120]),
        }
    }))
}

/// True when some pixels are far from the grey background (the subject, even scaled down and
/// its checkerboard blended).
fn holds_subject(image: &DynamicImage) -> bool {
    image
        .to_rgb8()
        .pixels()
        .filter(|p| p.0.iter().any(|&c| c.abs_diff(120) > 50))
        .count()
        > 4
}

#[test]
fn smart_crop_keeps_a_small_subject_wherever_it_is() {
    let mut seed = 0x9e37_79b9_u64;
    let mut next = |bound: u32| {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((seed >> 33) % u64::from(bound)) as u32
    };
    for case in 0..40 {
        let (width, height) = (500 + next(700), 400 + next(500));
        let side = 30 + next(40);
        let at = (next(width - side), next(height - side));
        let source = || with_subject(width, height, at, side);
        let crop = run(source(), "crop:200:200:smart");
        assert_eq!(size(&crop), (200, 200));
        assert!(
            holds_subject(&crop),
            "case {case}: crop misses the subject at {at:?} in {width}x{height}"
        );
        // A fill to a square keeps a square window of the full height (or width), placed smartly.
        let fill = run(source(), "resize:120:120:fill:smart");
        assert_eq!(size(&fill), (120, 120));
        assert!(
            holds_subject(&fill),
            "case {case}: fill misses the subject at {at:?} in {width}x{height}"
        );
    }
}

#[test]
fn relative_crop_takes_fractions_of_the_image() {
    let crop = run(flat(600, 400, [50, 50, 50]), "crop:0.5:0.25:north-west");
    assert_eq!(size(&crop), (300, 100));
    let mixed = run(flat(600, 400, [50, 50, 50]), "crop:0.333:150");
    assert_eq!(size(&mixed), (200, 150));
}

#[test]
fn contain_pads_to_exactly_the_box() {
    let wide = || flat(400, 200, [10, 200, 10]);
    let contained = run(wide(), "resize:300:300:contain:ff0000");
    assert_eq!(size(&contained), (300, 300));
    // 400x200 fits as 300x150, centred: 75 px of red above and below.
    for (x, y) in [
        (0, 0),
        (299, 0),
        (0, 299),
        (299, 299),
        (150, 74),
        (150, 225),
    ] {
        assert_eq!(rgba_at(&contained, x, y), [255, 0, 0, 255], "({x}, {y})");
    }
    assert_eq!(rgba_at(&contained, 150, 76)[..3], [10, 200, 10]);
    assert_eq!(rgba_at(&contained, 150, 223)[..3], [10, 200, 10]);
    // An opaque colour keeps an RGB image RGB; the default is transparent, so it gains alpha.
    assert!(!contained.color().has_alpha());
    let transparent = run(wide(), "resize:300:300:contain");
    assert_eq!(rgba_at(&transparent, 0, 0)[3], 0);
    assert_eq!(rgba_at(&transparent, 150, 150), [10, 200, 10, 255]);
    // Never enlarged unless asked: a small source is padded at its own size.
    let small = run(flat(100, 50, [1, 2, 3]), "resize:300:300:contain:ffffff");
    assert_eq!(size(&small), (300, 300));
    assert_eq!(rgba_at(&small, 150, 150)[..3], [1, 2, 3]);
    assert_eq!(rgba_at(&small, 150, 100)[..3], [255, 255, 255]);
    let enlarged = run(
        flat(100, 50, [1, 2, 3]),
        "resize:300:300:contain:ffffff:enlarge",
    );
    assert_eq!(rgba_at(&enlarged, 150, 100)[..3], [1, 2, 3]);
    assert_eq!(rgba_at(&enlarged, 150, 74)[..3], [255, 255, 255]);
}

#[test]
fn pad_adds_each_margin_in_css_order() {
    let padded = run(flat(100, 50, [9, 9, 9]), "pad:1:2:3:4:0000ff");
    assert_eq!(size(&padded), (106, 54));
    for (x, y) in [
        (0, 0),
        (105, 0),
        (0, 53),
        (105, 53),
        (3, 25),
        (104, 25),
        (50, 0),
        (50, 51),
    ] {
        assert_eq!(rgba_at(&padded, x, y), [0, 0, 255, 255], "({x}, {y})");
    }
    for (x, y) in [(4, 1), (103, 1), (4, 50), (103, 50)] {
        assert_eq!(rgba_at(&padded, x, y), [9, 9, 9, 255], "({x}, {y})");
    }
    let transparent = run(flat(10, 10, [9, 9, 9]), "pad:5");
    assert_eq!(size(&transparent), (20, 20));
    assert_eq!(rgba_at(&transparent, 0, 0)[3], 0);
}

#[test]
fn a_canvas_past_the_output_limit_is_a_clear_error() {
    let limits = Limits {
        max_output_pixels: 10_000,
        ..Limits::default()
    };
    let err = run_with(flat(90, 90, [0; 3]), "pad:10", &limits).unwrap_err();
    assert!(
        err.to_string().contains("pad:10:10:10:10")
            && err.to_string().contains("more than the output limit"),
        "{err}"
    );
    let err = run_with(flat(90, 90, [0; 3]), "dpr:4,resize:30:30:contain", &limits).unwrap_err();
    assert!(err.to_string().contains("resize:120:120:contain"), "{err}");
    let err = run_with(flat(100, 100, [0; 3]), "rotate:45", &limits).unwrap_err();
    assert!(err.to_string().contains("rotate:45"), "{err}");
    let err = run_with(flat(50, 50, [0; 3]), "resize:200:200:fit:enlarge", &limits).unwrap_err();
    assert!(
        err.to_string().contains("more than the output limit"),
        "{err}"
    );
}

#[test]
fn background_flattens_alpha_onto_the_colour() {
    let half = DynamicImage::ImageRgba8(RgbaImage::from_pixel(4, 4, Rgba([255, 0, 0, 128])));
    let flat_onto_blue = run(half, "background:0000ff");
    assert!(!flat_onto_blue.color().has_alpha());
    let [r, g, b, _] = rgba_at(&flat_onto_blue, 1, 1);
    assert!(
        (r as i32 - 128).abs() <= 1 && g == 0 && (b as i32 - 127).abs() <= 1,
        "{r} {g} {b}"
    );
    // An image without alpha has nothing to flatten.
    let opaque = run(flat(4, 4, [1, 2, 3]), "background:ffffff");
    assert_eq!(rgba_at(&opaque, 0, 0), [1, 2, 3, 255]);
}

#[test]
fn trim_returns_the_inner_rectangle_exactly() {
    for (left, top, width, height) in [
        (10, 20, 30, 40),
        (0, 5, 7, 1),
        (99, 0, 1, 80),
        (1, 1, 98, 78),
    ] {
        let image = DynamicImage::ImageRgb8(RgbImage::from_fn(100, 80, |x, y| {
            let inside = (left..left + width).contains(&x) && (top..top + height).contains(&y);
            // The border varies by less than the threshold; the content's corners differ.
            if inside {
                Rgb([200, 40, 40])
            } else {
                Rgb([250, 250, 245 + ((x + y) % 5) as u8])
            }
        }));
        let trimmed = run(image, "trim:10");
        assert_eq!(
            size(&trimmed),
            (width, height),
            "content at ({left}, {top})"
        );
        assert_eq!(rgba_at(&trimmed, 0, 0)[..3], [200, 40, 40]);
    }
    // All border: nothing to cut or keep, the image comes back whole.
    assert_eq!(size(&run(flat(30, 20, [5, 5, 5]), "trim")), (30, 20));
    // A threshold of 0 counts the faint variation as content.
    let faint = DynamicImage::ImageRgb8(RgbImage::from_fn(50, 50, |x, _| {
        Rgb([0, 0, if x == 40 { 3 } else { 0 }])
    }));
    assert_eq!(size(&run(faint.clone(), "trim:0")), (1, 50));
    assert_eq!(size(&run(faint, "trim:5")), (50, 50));
}

#[test]
fn rotating_by_45_degrees_keeps_the_centre_and_grows_the_canvas() {
    let image = DynamicImage::ImageRgb8(RgbImage::from_fn(201, 101, |x, y| {
        if (95..=105).contains(&x) && (45..=55).contains(&y) {
            Rgb([250, 10, 10])
        } else {
            Rgb([20, 20, 200])
        }
    }));
    let rotated = run(image, "rotate:45:00ff00");
    // The bounding box of a 201 x 101 image turned 45 degrees: (201 + 101) / sqrt(2) = 213.5.
    assert_eq!(size(&rotated), (214, 214));
    let (cx, cy) = (rotated.width() / 2, rotated.height() / 2);
    assert_eq!(rgba_at(&rotated, cx, cy)[..3], [250, 10, 10]);
    // The corners are outside the turned image: the fill colour.
    for (x, y) in [(0, 0), (213, 0), (0, 213), (213, 213)] {
        assert_eq!(rgba_at(&rotated, x, y)[..3], [0, 255, 0], "({x}, {y})");
    }
    // Right angles stay exact.
    assert_eq!(size(&run(flat(30, 20, [1; 3]), "rotate:-270")), (20, 30));
}

#[test]
fn enlarge_and_dpr_sizes() {
    let small = || flat(100, 50, [7; 3]);
    assert_eq!(size(&run(small(), "resize:400:400")), (100, 50));
    assert_eq!(
        size(&run(small(), "resize:400:400:fit:enlarge")),
        (400, 200)
    );
    assert_eq!(size(&run(small(), "resize:400:400:fill")), (100, 50));
    assert_eq!(
        size(&run(small(), "resize:400:400:fill:enlarge")),
        (400, 400)
    );
    let photo = || flat(1000, 800, [7; 3]);
    assert_eq!(size(&run(photo(), "dpr:2,resize:100:80")), (200, 160));
    assert_eq!(size(&run(photo(), "dpr:3,thumbnail:100")), (300, 240));
    // The padding is a size too: 5 px become 10 on each side.
    assert_eq!(size(&run(photo(), "dpr:2,crop:50:40,pad:5")), (120, 100));
}

#[test]
fn rounded_corners_are_transparent_outside_the_radius() {
    let rounded = run(flat(100, 60, [200, 100, 0]), "round:20");
    assert!(rounded.color().has_alpha());
    for (x, y) in [(0, 0), (99, 0), (0, 59), (99, 59), (3, 3)] {
        assert_eq!(rgba_at(&rounded, x, y)[3], 0, "({x}, {y})");
    }
    for (x, y) in [(50, 0), (0, 30), (20, 20), (50, 30), (79, 39)] {
        assert_eq!(rgba_at(&rounded, x, y), [200, 100, 0, 255], "({x}, {y})");
    }
}

#[test]
fn filters_do_what_they_say() {
    let gradient = DynamicImage::ImageRgb8(RgbImage::from_fn(64, 64, |x, y| {
        Rgb([(x * 4) as u8, (y * 4) as u8, 100])
    }));
    // pixelate: each 8 x 8 block one colour, the blocks' colours differing.
    let blocks = run(gradient.clone(), "pixelate:8").to_rgb8();
    for by in 0..8 {
        for bx in 0..8 {
            let first = blocks.get_pixel(bx * 8, by * 8);
            assert!((0..8).all(|d| blocks.get_pixel(bx * 8 + d, by * 8 + 7 - d) == first));
        }
    }
    assert_ne!(blocks.get_pixel(0, 0), blocks.get_pixel(63, 63));
    // tint: white becomes the colour, black stays black.
    let two = DynamicImage::ImageRgb8(RgbImage::from_fn(2, 1, |x, _| Rgb([255 * x as u8; 3])));
    let tinted = run(two, "tint:ff8800");
    assert_eq!(rgba_at(&tinted, 0, 0)[..3], [0, 0, 0]);
    assert_eq!(rgba_at(&tinted, 1, 0)[..3], [255, 136, 0]);
    // gamma 2: mid grey lightens to sqrt(0.5); the ends stay.
    let grey = |v: u8| flat(2, 2, [v; 3]);
    assert_eq!(rgba_at(&run(grey(128), "gamma:2"), 0, 0)[0], 181);
    assert_eq!(rgba_at(&run(grey(255), "gamma:2"), 0, 0)[0], 255);
    // normalize: a low-contrast image is stretched to the full range.
    let dull = DynamicImage::ImageRgb8(RgbImage::from_fn(100, 1, |x, _| {
        Rgb([100 + (x / 2) as u8; 3])
    }));
    let stretched = run(dull, "normalize").to_rgb8();
    let (lo, hi) = stretched
        .pixels()
        .fold((255, 0), |(lo, hi), p| (p.0[0].min(lo), p.0[0].max(hi)));
    assert!(lo <= 3 && hi >= 252, "{lo} {hi}");
    // median: isolated salt pixels disappear, the flat image under them stays.
    let salted = DynamicImage::ImageRgb8(RgbImage::from_fn(30, 30, |x, y| {
        if (x * 7 + y * 3) % 11 == 0 {
            Rgb([255; 3])
        } else {
            Rgb([40; 3])
        }
    }));
    assert!(
        run(salted, "median:1")
            .to_rgb8()
            .pixels()
            .all(|p| p.0 == [40; 3])
    );
    // modulate: a hue turn of 180 makes red cyan-ish; saturation 0 makes grey; brightness scales.
    let red = || flat(2, 2, [200, 20, 20]);
    let [r, g, b, _] = rgba_at(&run(red(), "modulate:1:1:180"), 0, 0);
    assert!(r < g && r < b, "{r} {g} {b}");
    let [r, g, b, _] = rgba_at(&run(red(), "modulate:1:0"), 0, 0);
    assert!(r.abs_diff(g) <= 1 && g.abs_diff(b) <= 1, "{r} {g} {b}");
    assert!(rgba_at(&run(red(), "modulate:0.5"), 0, 0)[0] < 110);
}

#[test]
fn the_new_steps_run_end_to_end_from_bytes() {
    // Through `process`, as the CLI, workers and origin call the engine: decode, ops, encode.
    let mut png = Vec::new();
    with_subject(640, 480, (500, 60), 50)
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    let chain =
        Chain::parse("dpr:2,resize:100:100:fill:smart,pad:10:ffffff,round:16,format:webp").unwrap();
    let out = process(&png, &chain, &Limits::default()).unwrap();
    assert_eq!((out.width, out.height, out.format), (240, 240, "webp"));
    // JPEG has no alpha: the transparent margins of contain come out white.
    let chain = Chain::parse("resize:200:200:contain,format:jpeg").unwrap();
    let out = process(&png, &chain, &Limits::default()).unwrap();
    let decoded = image::load_from_memory(&out.bytes).unwrap();
    assert_eq!(size(&decoded), (200, 200));
    let corner = decoded.to_rgb8().get_pixel(2, 2).0;
    assert!(corner.iter().all(|&c| c > 245), "{corner:?}");
}

#[test]
fn a_watermark_changes_only_its_region() {
    use opossum_image::{Overlays, apply_with};
    let mut mark = Vec::new();
    flat(50, 25, [250, 0, 0])
        .write_to(
            &mut std::io::Cursor::new(&mut mark),
            image::ImageFormat::Png,
        )
        .unwrap();
    let mut overlays = Overlays::none();
    overlays
        .decode("logo.png".into(), &mark, &Limits::default())
        .unwrap();
    let base = || flat(200, 100, [20, 40, 60]);
    let run_mark = |chain: &str| {
        let chain = Chain::parse(chain).unwrap();
        chain
            .pixel_ops()
            .iter()
            .try_fold(base(), |img, op| {
                apply_with(img, op, &Limits::default(), &overlays)
            })
            .unwrap()
            .to_rgb8()
    };
    // At scale 0.2 the mark is 40 x 20 on the 200 x 100 base.
    for (position, (left, top)) in [
        ("north-west", (0, 0)),
        ("north", (80, 0)),
        ("north-east", (160, 0)),
        ("west", (0, 40)),
        ("centre", (80, 40)),
        ("east", (160, 40)),
        ("south-west", (0, 80)),
        ("south", (80, 80)),
        ("south-east", (160, 80)),
        ("focus:0.25:0.5", (30, 40)),
    ] {
        let out = run_mark(&format!("watermark:logo.png:{position}:1:0.2"));
        for (x, y, pixel) in out.enumerate_pixels() {
            let inside = (left..left + 40).contains(&x) && (top..top + 20).contains(&y);
            let expect = if inside { [250, 0, 0] } else { [20, 40, 60] };
            assert_eq!(pixel.0, expect, "{position}: ({x}, {y})");
        }
    }
    // Half opacity blends; the default place is the bottom-right corner.
    let half = run_mark("watermark:logo.png");
    assert_eq!(half.get_pixel(199, 99).0, [135, 20, 30]);
    assert_eq!(half.get_pixel(0, 0).0, [20, 40, 60]);
    // Tiled, the copies cover the whole image.
    assert!(
        run_mark("watermark:logo.png:tile:1:0.2")
            .pixels()
            .all(|p| p.0 == [250, 0, 0])
    );
    // Without its overlay the engine says which watermark is missing.
    let err = opossum_image::apply(
        base(),
        &Chain::parse("watermark:logo.png").unwrap().ops()[0],
        &Limits::default(),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("watermark `logo.png` was not loaded"),
        "{err}"
    );
}
