//! One operation at a time. Resizing uses fast_image_resize (SIMD convolution, about 12x faster
//! than the `image` crate's resize and on par with libvips); canvas operations are in
//! `canvas.rs`, filters in `filters.rs`, smart crop in `smart.rs`; blur, sharpen, brightness
//! and contrast use the `image` crate's kernels, which are fast enough at the sizes that reach
//! them (after shrink-on-load and resize).

use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};
use image::DynamicImage;
use opossum_ops::{FlipAxis, Gravity, Operation, ResizeMode, Rotation};

use crate::decode::{DecodeHint, target_size};
use crate::overlay::{self, Overlays};
use crate::{ImageError, Limits, canvas, filters, smart};

/// Applies one pixel operation. `format` and `analyze` are not pixel operations and are
/// returned unchanged. A `watermark` needs [`apply_with`].
pub fn apply(
    image: DynamicImage,
    op: &Operation,
    limits: &Limits,
) -> Result<DynamicImage, ImageError> {
    apply_with(image, op, limits, &Overlays::none())
}

/// [`apply`] with the watermark images the chain names.
pub fn apply_with(
    image: DynamicImage,
    op: &Operation,
    limits: &Limits,
    overlays: &Overlays,
) -> Result<DynamicImage, ImageError> {
    apply_pinned(image, op, limits, overlays, &Pin::default())
}

/// What the frames of an animation share for one operation: the window `smart` gravity chose
/// on the first frame, so that every frame is cut alike (a window per frame would jump about).
#[derive(Debug, Default)]
pub(crate) struct Pin(std::cell::Cell<Option<(f64, f64)>>);

/// [`apply_with`] for one frame of several, sharing `pin` with the others.
pub(crate) fn apply_pinned(
    image: DynamicImage,
    op: &Operation,
    limits: &Limits,
    overlays: &Overlays,
    pin: &Pin,
) -> Result<DynamicImage, ImageError> {
    let (width, height) = (image.width(), image.height());
    Ok(match *op {
        Operation::Watermark(ref mark) => overlay::watermark(image, mark, overlays, op, limits)?,
        Operation::Resize {
            width: bw,
            height: bh,
            mode,
            gravity,
            enlarge,
        } => {
            let hint = DecodeHint {
                width: bw,
                height: bh,
                mode,
                enlarge,
            };
            match mode {
                ResizeMode::Force => resize(&image, bw, bh, None, op, limits, pin)?,
                ResizeMode::Fit => {
                    let (w, h) = target_size(width, height, hint);
                    resize(&image, w, h, None, op, limits, pin)?
                }
                ResizeMode::Contain { background } => {
                    let (w, h) = target_size(width, height, hint);
                    let fitted = resize(&image, w, h, None, op, limits, pin)?;
                    if (w, h) == (bw, bh) {
                        fitted
                    } else {
                        let at = ((bw.saturating_sub(w)) / 2, (bh.saturating_sub(h)) / 2);
                        let size = (u64::from(bw), u64::from(bh));
                        canvas::embed(fitted, size, at, background, op, limits)?
                    }
                }
                ResizeMode::Fill if enlarge => {
                    resize(&image, bw, bh, Some(gravity), op, limits, pin)?
                }
                ResizeMode::Fill => {
                    // Cover the box, but never enlarge: a small source is only cropped.
                    let (w, h) = (bw.min(width), bh.min(height));
                    let (cover_w, _) = target_size(width, height, hint);
                    if cover_w >= width {
                        crop_at(&image, w, h, gravity, pin)?
                    } else {
                        resize(&image, w, h, Some(gravity), op, limits, pin)?
                    }
                }
            }
        }
        Operation::Thumbnail { size } => {
            let hint = DecodeHint {
                width: size,
                height: size,
                mode: ResizeMode::Fit,
                enlarge: false,
            };
            let (w, h) = target_size(width, height, hint);
            resize(&image, w, h, None, op, limits, pin)?
        }
        Operation::Crop {
            width: cw,
            height: ch,
            origin,
            gravity,
        } => {
            let (cw, ch) = (cw.resolve(width), ch.resolve(height));
            match origin {
                None => crop_at(&image, cw, ch, gravity, pin)?,
                Some((x, y)) => {
                    if x >= width || y >= height {
                        return Err(ImageError::BadOperation {
                            op: op.to_string(),
                            width,
                            height,
                            reason: format!("origin ({x}, {y}) is outside the image"),
                        });
                    }
                    // A window reaching past the edge is clipped, as imgproxy does.
                    canvas::crop(&image, x, y, cw.min(width - x), ch.min(height - y))
                }
            }
        }
        Operation::Rotate(Rotation::Deg90) => image.rotate90(),
        Operation::Rotate(Rotation::Deg180) => image.rotate180(),
        Operation::Rotate(Rotation::Deg270) => image.rotate270(),
        Operation::RotateBy {
            degrees,
            background,
        } => canvas::rotate_by(image, f64::from(degrees.0) / 1000.0, background, op, limits)?,
        Operation::Flip(FlipAxis::Horizontal) => image.fliph(),
        Operation::Flip(FlipAxis::Vertical) => image.flipv(),
        Operation::Pad {
            top,
            right,
            bottom,
            left,
            colour,
        } => canvas::pad(image, [top, right, bottom, left], colour, op, limits)?,
        Operation::Background(colour) => canvas::flatten(image, colour),
        Operation::Trim { threshold } => canvas::trim(image, threshold),
        Operation::Round(radius) => canvas::round(image, radius),
        Operation::Grayscale => image.grayscale(),
        // A box-blur approximation of the Gaussian: linear in the pixels whatever the sigma.
        Operation::Blur { sigma } => image.fast_blur(sigma.as_f32()),
        Operation::Sharpen { sigma } => image.unsharpen(sigma.as_f32(), 0),
        Operation::Brightness(percent) => image.brighten(percent * 255 / 100),
        Operation::Contrast(percent) => image.adjust_contrast(percent as f32),
        Operation::Saturation(percent) => filters::saturate(image, percent),
        Operation::Pixelate(size) => filters::pixelate(image, size),
        Operation::Tint(colour) => filters::tint(image, colour),
        Operation::Gamma(g) => filters::gamma(image, g),
        Operation::Normalize => filters::normalize(image),
        Operation::Median(radius) => filters::median(image, radius),
        Operation::Modulate {
            brightness,
            saturation,
            hue,
        } => filters::modulate(image, brightness, saturation, hue),
        // A still image is its own frame 0; other frames are taken from an animation before
        // any operation runs (`Picture::apply`).
        Operation::Frame(0) => image,
        Operation::Frame(index) => {
            return Err(ImageError::BadOperation {
                op: op.to_string(),
                width,
                height,
                reason: format!("the image has 1 frame, not {}", index + 1),
            });
        }
        Operation::Format(_) | Operation::Analyze => image,
    })
}

/// A window of at most `width` x `height` where `gravity` places it.
fn crop_at(
    image: &DynamicImage,
    width: u32,
    height: u32,
    gravity: Gravity,
    pin: &Pin,
) -> Result<DynamicImage, ImageError> {
    let (w, h) = (width.min(image.width()), height.min(image.height()));
    if (w, h) == (image.width(), image.height()) {
        return Ok(image.clone());
    }
    let (x, y) = window(image, f64::from(w), f64::from(h), gravity, pin)?;
    // The window is inside: `window` clamps its corner to [0, extent - size].
    let (x, y) = (x.round() as u32, y.round() as u32);
    Ok(canvas::crop(
        image,
        x.min(image.width() - w),
        y.min(image.height() - h),
        w,
        h,
    ))
}

/// The top-left corner of a `w` x `h` window in the image, placed by `gravity`.
fn window(
    image: &DynamicImage,
    w: f64,
    h: f64,
    gravity: Gravity,
    pin: &Pin,
) -> Result<(f64, f64), ImageError> {
    let Some((ax, ay)) = gravity.anchor() else {
        if let Some(corner) = pin.0.get() {
            return Ok(corner);
        }
        let corner = smart::attention(image, w, h)?;
        pin.0.set(Some(corner));
        return Ok(corner);
    };
    Ok((
        Gravity::offset(f64::from(image.width()), w, ax),
        Gravity::offset(f64::from(image.height()), h, ay),
    ))
}

/// Lanczos3 resize to exactly `width` x `height`; with `cover`, the source is first cut to the
/// destination's aspect ratio, the window placed by the gravity.
fn resize(
    image: &DynamicImage,
    width: u32,
    height: u32,
    cover: Option<Gravity>,
    op: &Operation,
    limits: &Limits,
    pin: &Pin,
) -> Result<DynamicImage, ImageError> {
    if (width, height) == (image.width(), image.height()) {
        return Ok(image.clone());
    }
    canvas::check_output(op, u64::from(width), u64::from(height), limits)?;
    let mut options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3));
    if let Some(gravity) = cover {
        // The largest window of the destination's aspect ratio, where the gravity puts it.
        let (sw, sh) = (f64::from(image.width()), f64::from(image.height()));
        let aspect = f64::from(width) / f64::from(height);
        let (cw, ch) = if sw / sh > aspect {
            (sh * aspect, sh)
        } else {
            (sw, sw / aspect)
        };
        let (left, top) = window(image, cw, ch, gravity, pin)?;
        options = options.crop(left, top, cw, ch);
    }
    let mut target = DynamicImage::new(width, height, image.color());
    Resizer::new()
        .resize(image, &mut target, &options)
        .map_err(|e| ImageError::Internal {
            message: format!("resize to {width}x{height}: {e}"),
        })?;
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;
    use opossum_ops::Chain;

    fn run(image: DynamicImage, chain: &str) -> Result<DynamicImage, ImageError> {
        let chain = Chain::parse(chain).unwrap();
        chain
            .pixel_ops()
            .iter()
            .try_fold(image, |img, op| apply(img, op, &Limits::default()))
    }

    fn gradient(width: u32, height: u32) -> DynamicImage {
        DynamicImage::ImageRgb8(image::RgbImage::from_fn(width, height, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, 128])
        }))
    }

    fn size(image: &DynamicImage) -> (u32, u32) {
        (image.width(), image.height())
    }

    #[test]
    fn geometry() {
        let src = || gradient(600, 400);
        let check = |chain: &str, expect: (u32, u32)| {
            assert_eq!(size(&run(src(), chain).unwrap()), expect, "{chain}");
        };
        check("resize:300:300", (300, 200));
        check("resize:300:300:fill", (300, 300));
        check("resize:300:300:force", (300, 300));
        check("resize:1200:1200", (600, 400));
        check("resize:1200:100:fill", (600, 100));
        check("resize:0:100", (150, 100));
        check("thumbnail:200", (200, 133));
        check("crop:100:50", (100, 50));
        check("crop:100:50:550:390", (50, 10));
        check("rotate:90", (400, 600));
        check("rotate:180", (600, 400));
        check("resize:300:300,rotate:270,crop:20:20", (20, 20));
    }

    /// A 600 x 400 grey image with a 20 px marker of its own colour in each corner and at
    /// the point (450, 100).
    fn markers() -> DynamicImage {
        const MARKS: [(u32, u32, [u8; 3]); 5] = [
            (0, 0, [255, 0, 0]),
            (580, 0, [0, 255, 0]),
            (0, 380, [0, 0, 255]),
            (580, 380, [255, 255, 0]),
            (440, 90, [255, 0, 255]),
        ];
        DynamicImage::ImageRgb8(image::RgbImage::from_fn(600, 400, |x, y| {
            MARKS
                .iter()
                .find(|(mx, my, _)| (*mx..mx + 20).contains(&x) && (*my..my + 20).contains(&y))
                .map_or(image::Rgb([128, 128, 128]), |(_, _, c)| image::Rgb(*c))
        }))
    }

    fn has(image: &DynamicImage, colour: [u8; 3]) -> bool {
        image
            .to_rgb8()
            .pixels()
            .any(|p| p.0.iter().zip(colour).all(|(a, b)| a.abs_diff(b) < 40))
    }

    const RED: [u8; 3] = [255, 0, 0];
    const GREEN: [u8; 3] = [0, 255, 0];
    const BLUE: [u8; 3] = [0, 0, 255];
    const YELLOW: [u8; 3] = [255, 255, 0];
    const MAGENTA: [u8; 3] = [255, 0, 255];

    #[test]
    fn gravity_keeps_the_window_it_names() {
        // Which corner markers each crop and each fill keeps; a 200 px window holds one corner.
        for (gravity, kept) in [
            ("north-west", vec![RED]),
            ("north-east", vec![GREEN]),
            ("south-west", vec![BLUE]),
            ("south-east", vec![YELLOW]),
            ("centre", vec![]),
        ] {
            let crop = run(markers(), &format!("crop:200:200:{gravity}")).unwrap();
            assert_eq!(size(&crop), (200, 200));
            for colour in [RED, GREEN, BLUE, YELLOW] {
                assert_eq!(
                    has(&crop, colour),
                    kept.contains(&colour),
                    "crop {gravity} {colour:?}"
                );
            }
        }
        // fill to a tall box keeps a full-height strip: west keeps both left corners.
        let west = run(markers(), "resize:100:200:fill:west").unwrap();
        assert_eq!(size(&west), (100, 200));
        assert!(has(&west, RED) && has(&west, BLUE) && !has(&west, GREEN));
        let east = run(markers(), "resize:100:200:fill:east").unwrap();
        assert!(has(&east, GREEN) && has(&east, YELLOW) && !has(&east, RED));
        // A wide box keeps a full-width strip: north keeps the top corners.
        let north = run(markers(), "resize:300:100:fill:north").unwrap();
        assert!(has(&north, RED) && has(&north, GREEN) && !has(&north, BLUE));
        let south = run(markers(), "resize:300:100:fill:south").unwrap();
        assert!(has(&south, BLUE) && has(&south, YELLOW) && !has(&south, RED));
    }

    #[test]
    fn focus_keeps_the_point_near_the_centre_of_the_window() {
        // The magenta marker's centre is at (450, 100): a 200 x 200 crop centres on it.
        let crop = run(markers(), "crop:200:200:focus:0.75:0.25")
            .unwrap()
            .to_rgb8();
        assert_eq!(crop.get_pixel(100, 100).0, MAGENTA);
        // Near an edge the window stops at the bound: the point moves off centre, still in.
        let edge = run(markers(), "crop:300:300:focus:0.75:0.25").unwrap();
        assert!(has(&edge, MAGENTA) && has(&edge, GREEN));
        // A fill keeps it too (the strip of a 100 x 200 box around x = 450).
        let fill = run(markers(), "resize:100:200:fill:focus:0.75:0.25").unwrap();
        assert!(has(&fill, MAGENTA) && !has(&fill, RED) && !has(&fill, GREEN));
        // A small source is only cropped, by the same rule.
        let small = run(markers(), "resize:1000:200:fill:focus:0.75:0.25").unwrap();
        assert_eq!(size(&small), (600, 200));
        assert!(has(&small, MAGENTA) && has(&small, RED));
    }

    #[test]
    fn pixels_move_where_they_should() {
        let mut img = image::RgbImage::new(4, 2);
        img.put_pixel(0, 0, image::Rgb([255, 0, 0]));
        let img = DynamicImage::ImageRgb8(img);
        let flipped = run(img.clone(), "flip:h").unwrap().to_rgb8();
        assert_eq!(flipped.get_pixel(3, 0).0, [255, 0, 0]);
        let flipped = run(img.clone(), "flip:v").unwrap().to_rgb8();
        assert_eq!(flipped.get_pixel(0, 1).0, [255, 0, 0]);
        let rotated = run(img, "rotate:90").unwrap().to_rgb8();
        assert_eq!(rotated.get_pixel(1, 0).0, [255, 0, 0]);
    }

    #[test]
    fn colour_operations() {
        let px = |chain: &str| -> [u8; 3] {
            let img = DynamicImage::ImageRgb8(image::RgbImage::from_pixel(
                8,
                8,
                image::Rgb([200, 100, 50]),
            ));
            run(img, chain).unwrap().to_rgb8().get_pixel(4, 4).0
        };
        let grey = px("grayscale");
        assert!(grey[0] == grey[1] && grey[1] == grey[2], "{grey:?}");
        // Rec. 709 luma of (200, 100, 50) is 117.65.
        assert_eq!(px("saturation:-100"), [118, 118, 118]);
        let more = px("saturation:50");
        assert!(more[0] > 200 && more[2] < 50, "{more:?}");
        assert!(px("brightness:20")[0] > 200);
        assert!(px("brightness:-20")[0] < 200);
        let contrast = px("contrast:50");
        assert!(contrast[0] > 200 && contrast[2] < 50, "{contrast:?}");
        // A flat image stays flat under blur and sharpen.
        assert_eq!(px("blur:3"), [200, 100, 50]);
        assert_eq!(px("sharpen:1"), [200, 100, 50]);
    }

    #[test]
    fn bad_geometry_is_a_clear_error() {
        let err = run(gradient(100, 100), "crop:10:10:200:0").unwrap_err();
        assert_eq!(
            err.to_string(),
            "`crop:10:10:200:0` cannot apply to a 100x100 image: origin (200, 0) is outside the image"
        );
        let err = run(gradient(100, 100), "resize:16000:16000:force").unwrap_err();
        assert!(
            err.to_string().contains("more than the output limit"),
            "{err}"
        );
    }
}
