//! `max-bytes:N` lands at or under N across many images, sizes and formats, reports the quality
//! it chose, and ends with a clear error when nothing fits.

use std::path::Path;

use image::{DynamicImage, ImageFormat};
use opossum_image::{ImageError, Limits, process};
use opossum_ops::Chain;

/// xorshift64*: seeded, so every run tries the same 50 cases.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn png_bytes(image: &DynamicImage) -> Vec<u8> {
    let mut out = Vec::new();
    image
        .write_to(&mut std::io::Cursor::new(&mut out), ImageFormat::Png)
        .unwrap();
    out
}

/// Real photos from the corpus and seeded synthetic images (noise over gradients, which
/// compress badly, and flat shapes, which compress well).
fn sources(rng: &mut Rng) -> Vec<Vec<u8>> {
    let photos = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/photos");
    let mut sources: Vec<Vec<u8>> = [
        "kodim02.png",
        "kodim07.png",
        "kodim17.png",
        "kodim23.png",
        "harvesters.jpeg",
        "peacock.default.jpeg",
    ]
    .iter()
    .map(|name| std::fs::read(photos.join(name)).unwrap_or_else(|e| panic!("{name}: {e}")))
    .collect();
    for _ in 0..4 {
        let seed = rng.next();
        let noise = rng.below(96) as u32;
        let image = image::RgbImage::from_fn(640, 480, |x, y| {
            let h = ((u64::from(x) * 0x9E37_79B9) ^ (u64::from(y) * 0x85EB_CA6B) ^ seed)
                .wrapping_mul(0xC2B2_AE35);
            let n = (h >> 40) as u32 % (noise + 1);
            image::Rgb([
                ((x * 255 / 640 + n) % 256) as u8,
                ((y * 255 / 480 + n) % 256) as u8,
                (((x + y) / 5 + n) % 256) as u8,
            ])
        });
        sources.push(png_bytes(&DynamicImage::ImageRgb8(image)));
    }
    sources
}

#[test]
fn max_bytes_lands_at_or_under_the_budget() {
    let mut rng = Rng(0x005E_ED0F_0B05_5A11);
    let sources = sources(&mut rng);
    let limits = Limits::default();
    // AVIF (rav1e) takes most of a second per encode even of a thumbnail: one case in ten.
    let formats = [
        "jpeg", "jpeg:90", "webp", "webp:95", "png", "jpeg", "webp", "jpeg:60", "webp:70", "avif",
    ];
    for case in 0..50 {
        let source = &sources[rng.below(sources.len() as u64) as usize];
        let format = formats[rng.below(formats.len() as u64) as usize];
        // AVIF is the slowest encoder: keep its cases small.
        let width = if format == "avif" {
            48 + rng.below(32)
        } else {
            64 + rng.below(256)
        };
        let plain = Chain::parse(&format!("resize:{width},format:{format}")).unwrap();
        let unconstrained = process(source, &plain, &limits).unwrap().bytes.len() as u64;
        // From a little under the unconstrained size down to a tenth of it.
        let budget = (unconstrained * (10 + rng.below(85)) / 100).max(1_000);
        let text = format!("resize:{width},max-bytes:{budget},format:{format}");
        let chain = Chain::parse(&text).unwrap();
        let output =
            process(source, &chain, &limits).unwrap_or_else(|e| panic!("case {case} {text}: {e}"));
        assert!(
            output.bytes.len() as u64 <= budget,
            "case {case} {text}: {} bytes",
            output.bytes.len()
        );
        match format {
            "png" => assert_eq!(output.quality, None, "case {case}"),
            _ => {
                let quality = output.quality.expect("a lossy format reports its quality");
                assert!(
                    (10..=95).contains(&quality),
                    "case {case}: quality {quality}"
                );
                // The reported quality is the one encoded at: where the size was kept, the
                // chain with that quality gives the same bytes.
                let name = format.split(':').next().unwrap();
                let again =
                    Chain::parse(&format!("resize:{width},format:{name}:{quality}")).unwrap();
                let same = process(source, &again, &limits).unwrap();
                if (same.width, same.height) == (output.width, output.height) {
                    assert_eq!(same.bytes, output.bytes, "case {case} {text} at q{quality}");
                }
            }
        }
    }
}

#[test]
fn an_unreachable_budget_is_a_clear_error() {
    let mut rng = Rng(7);
    let noise = image::RgbImage::from_fn(512, 512, |_, _| {
        let v = rng.next().to_le_bytes();
        image::Rgb([v[0], v[1], v[2]])
    });
    let source = png_bytes(&DynamicImage::ImageRgb8(noise));
    for format in ["png", "jpeg", "webp:lossless"] {
        let chain = Chain::parse(&format!("max-bytes:100,format:{format}")).unwrap();
        match process(&source, &chain, &Limits::default()) {
            Err(ImageError::OverBudget {
                budget: 100,
                smallest,
                width,
                height,
            }) => {
                assert!(smallest > 100);
                assert!(
                    width < 512 && height < 512,
                    "{format}: it tried smaller sizes"
                );
                assert_eq!(width.min(height), 16, "{format}: down to the smallest edge");
            }
            other => panic!("{format}: {other:?}"),
        }
    }
    let traced = Chain::parse("max-bytes:1000,format:svg").unwrap();
    let err = process(&source, &traced, &Limits::default()).unwrap_err();
    assert!(err.to_string().contains("raster formats"), "{err}");
}

#[test]
fn quality_is_lowered_before_size() {
    let photo = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/photos/kodim23.png"),
    )
    .unwrap();
    let limits = Limits::default();
    let full = process(&photo, &Chain::parse("format:jpeg").unwrap(), &limits).unwrap();
    // A budget the first encode meets changes nothing.
    let roomy = Chain::parse(&format!("max-bytes:{},format:jpeg", full.bytes.len())).unwrap();
    let same = process(&photo, &roomy, &limits).unwrap();
    assert_eq!((same.bytes, same.quality), (full.bytes.clone(), Some(80)));
    let budget = full.bytes.len() * 6 / 10;
    let chain = Chain::parse(&format!("max-bytes:{budget},format:jpeg")).unwrap();
    let fitted = process(&photo, &chain, &limits).unwrap();
    assert_eq!(
        (fitted.width, fitted.height),
        (768, 512),
        "the size is kept"
    );
    let quality = fitted.quality.unwrap();
    assert!(quality < 80, "quality {quality}");
    assert!(fitted.bytes.len() <= budget);
    // A budget below what the floor quality reaches shrinks the image.
    let floor = process(&photo, &Chain::parse("format:jpeg:10").unwrap(), &limits).unwrap();
    let tight = floor.bytes.len() / 3;
    let chain = Chain::parse(&format!("max-bytes:{tight},format:jpeg")).unwrap();
    let shrunk = process(&photo, &chain, &limits).unwrap();
    assert!(shrunk.width < 768 && shrunk.bytes.len() <= tight);
    assert_eq!(shrunk.quality, Some(10));
}
