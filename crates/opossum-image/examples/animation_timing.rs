//! Times `opossum_image::process` on one input: `animation_timing FILE CHAIN RUNS` prints the
//! median wall time in milliseconds, the output's frames and bytes, for
//! `animation-vs-libvips.sh` to set beside libvips on the same input.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [path, chain, runs] = &args[..] else {
        panic!("usage: animation_timing FILE CHAIN RUNS");
    };
    let input = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let chain = opossum_ops::Chain::parse(chain).expect("chain");
    let limits = opossum_image::Limits::default();
    let runs: usize = runs.parse().expect("runs");
    let mut times = Vec::with_capacity(runs);
    let mut last = None;
    for _ in 0..runs {
        let started = std::time::Instant::now();
        let output = opossum_image::process(&input, &chain, &limits).expect("process");
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        last = Some(output);
    }
    times.sort_by(f64::total_cmp);
    let output = last.expect("at least one run");
    println!(
        "{:.2} {} {}",
        times[times.len() / 2],
        output.frames,
        output.bytes.len()
    );
}
