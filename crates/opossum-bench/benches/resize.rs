//! Lanczos3 resize 4928x3279 to 852x567 (the size fast_image_resize publishes), one thread:
//! the engine's resize (fast_image_resize) against the `image` crate's, in the same run.
//! libvips on the same pixels is measured by `resize-vs-libvips.sh`, which runs this bench.

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use image::DynamicImage;
use opossum_image::{Limits, apply};
use opossum_ops::{Operation, ResizeMode};

fn input() -> DynamicImage {
    let path = format!(
        "{}/../../../shared/corpus/photos/kodim23.png",
        env!("CARGO_MANIFEST_DIR")
    );
    let photo = image::open(&path)
        .unwrap_or_else(|e| panic!("{path}: {e} (is ../shared beside the checkout?)"));
    DynamicImage::ImageRgb8(opossum_bench::realistic_image(&photo, 4928, 3279, 1).expect("input"))
}

fn resize(c: &mut Criterion) {
    let source = input();
    let op = Operation::Resize {
        width: 852,
        height: 567,
        mode: ResizeMode::Force,
        gravity: opossum_ops::Gravity::Centre,
        enlarge: false,
    };
    let limits = Limits::default();
    let mut group = c.benchmark_group("lanczos3-4928x3279-to-852x567");
    group.sample_size(20);
    // `apply` takes the image by value; the copy is set-up, not measured.
    group.bench_function("opossum", |b| {
        b.iter_batched(
            || source.clone(),
            |img| apply(img, &op, &limits).unwrap(),
            BatchSize::LargeInput,
        )
    });
    group.bench_function("image-crate", |b| {
        b.iter(|| source.resize_exact(852, 567, image::imageops::FilterType::Lanczos3))
    });
    group.finish();
}

criterion_group!(benches, resize);
criterion_main!(benches);
