//! Animated GIF and WebP through the engine: every frame decoded and processed, timing and
//! loop count kept, `frame:N`, the limits, and what the output decodes to in a decoder other
//! than the one that wrote it.

use image::AnimationDecoder;
use opossum_image::{ImageError, Limits, decode, process};
use opossum_ops::Chain;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Frames (size), delays and loop count (0: for ever) of a GIF, read by the `image` crate.
fn gif_frames(bytes: &[u8]) -> (Vec<(u32, u32)>, Vec<u32>, u32) {
    let decoder = image::codecs::gif::GifDecoder::new(std::io::Cursor::new(bytes)).unwrap();
    let loops = match decoder.loop_count() {
        image::metadata::LoopCount::Infinite => 0,
        image::metadata::LoopCount::Finite(n) => n.get(),
    };
    let frames = decoder.into_frames().collect_frames().unwrap();
    let sizes = frames
        .iter()
        .map(|f| (f.buffer().width(), f.buffer().height()))
        .collect();
    let delays = frames
        .iter()
        .map(|f| {
            let (n, d) = f.delay().numer_denom_ms();
            n / d
        })
        .collect();
    (sizes, delays, loops)
}

/// An animated WebP as libwebp's own demuxer and decoder play it (not the decoder the engine
/// uses): each frame's pixels with the time it ends, and the loop count.
fn webp_timeline(bytes: &[u8]) -> (Vec<(i32, image::RgbaImage)>, u32) {
    let decoded = webp::AnimDecoder::new(bytes).decode().unwrap();
    assert!(decoded.has_animation(), "not an animated webp");
    let frames = (0..decoded.len())
        .map(|i| {
            let frame = decoded.get_frame(i).unwrap();
            let image = match frame.get_layout() {
                webp::PixelLayout::Rgba => image::RgbaImage::from_raw(
                    frame.width(),
                    frame.height(),
                    frame.get_image().to_vec(),
                )
                .unwrap(),
                webp::PixelLayout::Rgb => image::DynamicImage::ImageRgb8(
                    image::RgbImage::from_raw(
                        frame.width(),
                        frame.height(),
                        frame.get_image().to_vec(),
                    )
                    .unwrap(),
                )
                .to_rgba8(),
            };
            (frame.get_time_ms(), image)
        })
        .collect();
    (frames, decoded.loop_count)
}

/// The frame a timeline shows at `t` ms.
fn shown_at(timeline: &[(i32, image::RgbaImage)], t: i32) -> &image::RgbaImage {
    &timeline
        .iter()
        .find(|(end, _)| *end > t)
        .unwrap_or_else(|| timeline.last().unwrap())
        .1
}

/// Checks that `timeline` plays `expected` (frames with their delays): the same total time,
/// and at the start of every expected frame, that frame (libwebp merges a frame that does not
/// change into the one before it, so frames are compared by what is shown when).
fn plays_as(timeline: &[(i32, image::RgbaImage)], expected: &[image::RgbaImage], delays: &[u32]) {
    let total: u32 = delays.iter().sum();
    assert_eq!(timeline.last().unwrap().0, total as i32, "total duration");
    let mut start = 0;
    for (at, (frame, delay)) in expected.iter().zip(delays).enumerate() {
        if *delay > 0 {
            assert!(
                shown_at(timeline, start) == frame,
                "frame {at} at {start} ms differs"
            );
        }
        start += *delay as i32;
    }
}

#[test]
fn an_animated_gif_decodes_every_frame_with_its_timing() {
    let source = fixture("moon_impact.gif");
    let (sizes, delays, loops) = gif_frames(&source);
    assert!(sizes.len() > 5, "the fixture is an animation");
    let decoded = decode(&source, &Limits::default(), None).unwrap();
    let picture = decoded.into_picture();
    assert_eq!(picture.frames().len(), sizes.len());
    let timing = picture.timing().expect("animated");
    assert_eq!(timing.delays_ms, delays);
    assert_eq!(timing.loops, loops);
}

#[test]
fn a_resized_gif_stays_an_animated_gif_with_the_same_timing() {
    let source = fixture("moon_impact.gif");
    let (sizes, delays, loops) = gif_frames(&source);
    let out = process(
        &source,
        &Chain::parse("resize:58:50:fill").unwrap(),
        &Limits::default(),
    )
    .unwrap();
    assert_eq!((out.format, out.media_type), ("gif", "image/gif"));
    assert_eq!(out.frames as usize, sizes.len());
    let (out_sizes, out_delays, out_loops) = gif_frames(&out.bytes);
    assert_eq!(out_sizes, vec![(58, 50); sizes.len()]);
    assert_eq!(out_delays, delays);
    assert_eq!(out_loops, loops);
}

#[test]
fn a_gif_becomes_an_animated_webp_that_plays_the_same() {
    let source = fixture("moon_impact.gif");
    let (_, delays, loops) = gif_frames(&source);
    let chain = |format: &str| Chain::parse(&format!("thumbnail:64,rotate:90,{format}")).unwrap();
    // What the frames should be: the same operations on the decoded GIF, frame by frame.
    let expected: Vec<image::RgbaImage> = decode(&source, &Limits::default(), None)
        .unwrap()
        .into_picture()
        .frames()
        .iter()
        .map(|frame| {
            let mut frame = frame.clone();
            for op in chain("format:png").pixel_ops() {
                frame = opossum_image::apply(frame, op, &Limits::default()).unwrap();
            }
            frame.to_rgba8()
        })
        .collect();
    let out = process(&source, &chain("format:webp:lossless"), &Limits::default()).unwrap();
    assert_eq!(out.media_type, "image/webp");
    assert_eq!((out.width, out.height), (55, 64), "rotated thumbnail");
    let (timeline, out_loops) = webp_timeline(&out.bytes);
    assert_eq!(out_loops, loops);
    assert!(timeline.iter().all(|(_, f)| f.dimensions() == (55, 64)));
    plays_as(&timeline, &expected, &delays);
    // Lossy: the same timeline, the pixels close.
    let out = process(&source, &chain("format:webp:90"), &Limits::default()).unwrap();
    let (timeline, _) = webp_timeline(&out.bytes);
    assert_eq!(
        timeline.last().unwrap().0,
        delays.iter().sum::<u32>() as i32
    );
    // And the engine reads its own output back as an animation of the same length.
    let back = decode(&out.bytes, &Limits::default(), None).unwrap();
    let timing = back.into_picture().timing().unwrap().clone();
    assert_eq!(
        timing.duration_ms(),
        delays.iter().map(|&d| u64::from(d)).sum::<u64>()
    );
}

#[test]
fn frame_n_takes_one_frame_as_a_still_image() {
    let source = fixture("moon_impact.gif");
    let all = decode(&source, &Limits::default(), None)
        .unwrap()
        .into_picture();
    let third = all.frames()[2].to_rgba8();
    let out = process(
        &source,
        &Chain::parse("frame:2,format:png").unwrap(),
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(out.frames, 1);
    let png = image::load_from_memory(&out.bytes).unwrap().to_rgba8();
    assert_eq!(png, third, "frame 2, losslessly");
    // Without a format a still GIF frame is written as a PNG, as a still GIF always was.
    let out = process(
        &source,
        &Chain::parse("frame:0").unwrap(),
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(out.format, "png");
    let count = all.frames().len();
    let err = process(
        &source,
        &Chain::parse(&format!("frame:{count}")).unwrap(),
        &Limits::default(),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("the animation has {count} frames")),
        "{err}"
    );
}

/// `frame:N` decodes frames 0 to N and no further: a frame after N would count against the
/// limits, so an animation longer than `max_frames` still gives its early frames, the same
/// pixels as a whole decode gives, while the whole animation is refused.
#[test]
fn frame_n_decodes_no_frame_after_n() {
    let source = fixture("moon_impact.gif");
    let limits = Limits {
        max_frames: 3,
        ..Limits::default()
    };
    let whole = decode(&source, &Limits::default(), None)
        .unwrap()
        .into_picture();
    assert!(whole.frames().len() > 3);
    for index in 0..3 {
        let out = process(
            &source,
            &Chain::parse(&format!("frame:{index},format:png")).unwrap(),
            &limits,
        )
        .unwrap();
        let png = image::load_from_memory(&out.bytes).unwrap().to_rgba8();
        assert_eq!(png, whole.frames()[index].to_rgba8(), "frame {index}");
    }
    let err = process(&source, &Chain::parse("frame:3").unwrap(), &limits).unwrap_err();
    assert!(
        matches!(err, ImageError::TooManyFrames { limit: 3 }),
        "{err}"
    );
    let err = process(&source, &Chain::parse("format:png").unwrap(), &limits).unwrap_err();
    assert!(
        matches!(err, ImageError::TooManyFrames { limit: 3 }),
        "{err}"
    );
}

#[test]
fn a_format_without_animation_takes_the_first_frame() {
    let source = fixture("moon_impact.gif");
    let first = decode(&source, &Limits::default(), None)
        .unwrap()
        .image
        .to_rgba8();
    let out = process(
        &source,
        &Chain::parse("format:png").unwrap(),
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(out.frames, 1);
    assert_eq!(
        image::load_from_memory(&out.bytes).unwrap().to_rgba8(),
        first
    );
}

#[test]
fn smart_gravity_cuts_every_frame_in_the_same_place() {
    let source = fixture("moon_impact.gif");
    let (_, delays, _) = gif_frames(&source);
    let picture = decode(&source, &Limits::default(), None)
        .unwrap()
        .into_picture();
    let (left, top) = opossum_image::smart_window(picture.first(), 40, 40).unwrap();
    let expected: Vec<image::RgbaImage> = picture
        .frames()
        .iter()
        .map(|full| image::imageops::crop_imm(&full.to_rgba8(), left, top, 40, 40).to_image())
        .collect();
    let out = process(
        &source,
        &Chain::parse("crop:40:40:smart,format:webp:lossless").unwrap(),
        &Limits::default(),
    )
    .unwrap();
    let (timeline, _) = webp_timeline(&out.bytes);
    plays_as(&timeline, &expected, &delays);
}

#[test]
fn analyze_reports_frames_loops_and_duration() {
    let source = fixture("moon_impact.gif");
    let (sizes, delays, _) = gif_frames(&source);
    let out = process(
        &source,
        &Chain::parse("analyze").unwrap(),
        &Limits::default(),
    )
    .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.bytes).unwrap();
    assert_eq!(json["frames"], sizes.len());
    assert_eq!(
        json["duration_ms"],
        delays.iter().map(|&d| u64::from(d)).sum::<u64>()
    );
    assert!(json["loop_count"].is_u64(), "{json}");
    let still = process(
        &fixture("moon_impact.gif"),
        &Chain::parse("frame:1,analyze").unwrap(),
        &Limits::default(),
    )
    .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&still.bytes).unwrap();
    assert_eq!(json["frames"], 1);
    assert!(json.get("loop_count").is_none(), "{json}");
}

#[test]
fn frames_count_against_the_limits_before_they_are_decoded() {
    let source = fixture("moon_impact.gif");
    let (sizes, _, _) = gif_frames(&source);
    let err = decode(
        &source,
        &Limits {
            max_frames: 3,
            ..Limits::default()
        },
        None,
    )
    .unwrap_err();
    assert!(
        matches!(err, ImageError::TooManyFrames { limit: 3 }),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "animation has more than 3 frames, the limit"
    );
    // 116x100 a frame: room for four frames' pixels, not all of them.
    let err = decode(
        &source,
        &Limits {
            max_pixels: 116 * 100 * 4,
            ..Limits::default()
        },
        None,
    )
    .unwrap_err();
    assert!(
        matches!(err, ImageError::AnimationTooLarge { frames: 5, .. }),
        "{err}"
    );
    assert!(sizes.len() > 5);
}

#[test]
fn a_still_image_becomes_a_gif_on_request() {
    let still = image::DynamicImage::ImageRgb8(image::RgbImage::from_fn(64, 48, |x, y| {
        image::Rgb([(x * 4) as u8, (y * 5) as u8, 90])
    }));
    let mut png = Vec::new();
    still
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    let out = process(
        &png,
        &Chain::parse("resize:32:24,format:gif").unwrap(),
        &Limits::default(),
    )
    .unwrap();
    assert_eq!((out.format, out.frames), ("gif", 1));
    let (sizes, _, _) = gif_frames(&out.bytes);
    assert_eq!(sizes, vec![(32, 24)]);
}

#[test]
fn a_tiny_hand_made_animation_round_trips() {
    let source = fixture("anim-gr.gif");
    let (sizes, delays, _) = gif_frames(&source);
    let out = process(&source, &Chain::default(), &Limits::default()).unwrap();
    let (out_sizes, out_delays, _) = gif_frames(&out.bytes);
    if sizes.len() > 1 {
        assert_eq!(out.format, "gif");
        assert_eq!((out_sizes, out_delays), (sizes, delays));
    } else {
        assert_eq!(out.format, "png");
    }
}
