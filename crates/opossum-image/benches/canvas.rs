//! Smart crop, contain, pad, trim, rotate by 45 degrees and watermark on a 12 MP photo and on a
//! 768 px one, one thread: the engine's side of `canvas-vs-libvips.sh`, which makes the
//! inputs (`CANVAS_BENCH_INPUTS`: `large.png`, `small.png`, `mark.png`) and times libvips's
//! equivalents on the same pixels in the same run.

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use image::DynamicImage;
use opossum_image::{Limits, Overlays, apply_with};
use opossum_ops::Chain;

fn inputs_dir() -> String {
    std::env::var("CANVAS_BENCH_INPUTS")
        .expect("CANVAS_BENCH_INPUTS names the inputs' directory: run canvas-vs-libvips.sh")
}

fn load(name: &str) -> DynamicImage {
    let path = format!("{}/{name}", inputs_dir());
    image::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn canvas(c: &mut Criterion) {
    let limits = Limits::default();
    let mut overlays = Overlays::none();
    let mark = std::fs::read(format!("{}/mark.png", inputs_dir())).expect("mark.png");
    overlays.decode("mark.png".into(), &mark, &limits).unwrap();
    for size in ["large", "small"] {
        let source = load(&format!("{size}.png"));
        let side = source.height();
        let cases = [
            ("smartcrop", format!("crop:{side}:{side}:smart")),
            ("contain", "resize:800:800:contain:ffffff".to_string()),
            ("pad", "pad:100:100:100:100:ffffff".to_string()),
            ("trim", "trim:10".to_string()),
            ("rotate45", "rotate:45:ffffff".to_string()),
            (
                "watermark",
                "watermark:mark.png:south-east:0.5:0.2".to_string(),
            ),
        ];
        let mut group = c.benchmark_group(format!("canvas-{size}"));
        group.sample_size(10);
        for (name, chain) in cases {
            let chain = Chain::parse(&chain).unwrap();
            let op = chain.ops()[0].clone();
            group.bench_function(name, |b| {
                b.iter_batched(
                    || source.clone(),
                    |image| apply_with(image, &op, &limits, &overlays).unwrap(),
                    BatchSize::LargeInput,
                )
            });
        }
        group.finish();
    }
}

criterion_group!(benches, canvas);
criterion_main!(benches);
