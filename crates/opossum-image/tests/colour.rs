//! Colour management: CMYK and ICC-tagged sources come out as correct sRGB.

use image::{DynamicImage, ImageEncoder};
use opossum_image::{Limits, decode};

fn centre(image: &DynamicImage) -> [u8; 3] {
    image
        .to_rgb8()
        .get_pixel(image.width() / 2, image.height() / 2)
        .0
}

fn close(actual: [u8; 3], expect: [u8; 3], tolerance: u8) -> bool {
    actual
        .iter()
        .zip(expect)
        .all(|(a, e)| a.abs_diff(e) <= tolerance)
}

/// A 32x32 CMYK JPEG as Photoshop writes them: Adobe APP14 marker, inverted values.
fn adobe_cmyk_jpeg(c: u8, m: u8, y: u8, k: u8) -> Vec<u8> {
    let pixels: Vec<u8> = [255 - c, 255 - m, 255 - y, 255 - k].repeat(32 * 32);
    let mut compressor = turbojpeg::Compressor::new().unwrap();
    compressor.set_quality(95).unwrap();
    compressor.set_subsamp(turbojpeg::Subsamp::None).unwrap();
    let image = turbojpeg::Image {
        pixels: pixels.as_slice(),
        width: 32,
        pitch: 32 * 4,
        height: 32,
        format: turbojpeg::PixelFormat::CMYK,
    };
    compressor.compress_to_vec(image).unwrap()
}

#[test]
fn adobe_cmyk_jpeg_becomes_srgb() {
    for (cmyk, rgb) in [
        ((0, 255, 255, 0), [255, 0, 0]),
        ((255, 0, 255, 0), [0, 255, 0]),
        ((0, 0, 0, 255), [0, 0, 0]),
        ((0, 0, 0, 0), [255, 255, 255]),
        ((0, 0, 0, 128), [127, 127, 127]),
    ] {
        let jpeg = adobe_cmyk_jpeg(cmyk.0, cmyk.1, cmyk.2, cmyk.3);
        let decoded = decode(&jpeg, &Limits::default(), None).unwrap();
        let got = centre(&decoded.image);
        assert!(
            close(got, rgb, 6),
            "cmyk {cmyk:?}: got {got:?}, want {rgb:?}"
        );
    }
}

/// An RGB profile like sRGB but with the red and blue primaries exchanged.
fn swapped_primaries_profile() -> Vec<u8> {
    let white = lcms2::CIExyY {
        x: 0.3127,
        y: 0.3290,
        Y: 1.0,
    };
    let red = lcms2::CIExyY {
        x: 0.64,
        y: 0.33,
        Y: 1.0,
    };
    let green = lcms2::CIExyY {
        x: 0.30,
        y: 0.60,
        Y: 1.0,
    };
    let blue = lcms2::CIExyY {
        x: 0.15,
        y: 0.06,
        Y: 1.0,
    };
    let primaries = lcms2::CIExyYTRIPLE {
        Red: blue,
        Green: green,
        Blue: red,
    };
    let curve = lcms2::ToneCurve::new(2.2);
    lcms2::Profile::new_rgb(&white, &primaries, &[&curve, &curve, &curve])
        .unwrap()
        .icc()
        .unwrap()
}

#[test]
fn icc_tagged_png_is_converted_to_srgb() {
    let pixels = image::RgbImage::from_pixel(16, 16, image::Rgb([255, 0, 0]));
    let mut png = Vec::new();
    let mut encoder = image::codecs::png::PngEncoder::new(&mut png);
    encoder
        .set_icc_profile(swapped_primaries_profile())
        .unwrap();
    encoder
        .write_image(pixels.as_raw(), 16, 16, image::ExtendedColorType::Rgb8)
        .unwrap();
    let decoded = decode(&png, &Limits::default(), None).unwrap();
    let got = centre(&decoded.image);
    // "Red" in this profile is sRGB's blue primary.
    assert!(got[2] > 200 && got[0] < 60 && got[1] < 60, "got {got:?}");

    // The same pixels untagged stay red.
    let mut plain = Vec::new();
    image::codecs::png::PngEncoder::new(&mut plain)
        .write_image(pixels.as_raw(), 16, 16, image::ExtendedColorType::Rgb8)
        .unwrap();
    assert_eq!(
        centre(&decode(&plain, &Limits::default(), None).unwrap().image),
        [255, 0, 0]
    );
}
