#!/usr/bin/env bash
# Animated GIF processing against libvips, same run, same input, one thread each (the engine
# with RAYON_NUM_THREADS=1; pyvips with VIPS_CONCURRENCY=1, in memory; medians of RUNS):
#   a GIF resized to 58x50 and written as GIF (libvips: thumbnail_buffer n=-1, gifsave; the
#   source is 116x100, so fill and fit are the same box; libvips's crop would write one frame
#   of an animation), and a GIF thumbnailed to 64 px and written as lossy WebP q80 (thumbnail,
#   webpsave Q=80), on image-gif's moon_impact.gif (116x100, every frame).
# Needs: python3 with pyvips (`pip install pyvips pyvips-binary` brings libvips 8.18).
set -euo pipefail
cd "$(dirname "$0")/../.."
target=${CARGO_TARGET_DIR:-target}
runs=${RUNS:-30}
python3 -c 'import pyvips' 2>/dev/null || { echo "missing pyvips: pip install pyvips pyvips-binary" >&2; exit 1; }
gif=crates/opossum-image/tests/fixtures/moon_impact.gif
cargo build -q --release -p opossum-image --example animation_timing
ours() { RAYON_NUM_THREADS=1 "$target/release/examples/animation_timing" "$gif" "$1" "$runs"; }
gif_ours=$(ours "resize:58:50:fill,format:gif")
webp_ours=$(ours "thumbnail:64,format:webp:80")
VIPS_CONCURRENCY=1 python3 - "$gif" "$runs" "$gif_ours" "$webp_ours" <<'PY'
import statistics, sys, time
import pyvips
pyvips.cache_set_max(0)
path, runs, gif_ours, webp_ours = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
data = open(path, "rb").read()
def timed(make):
    times, out = [], None
    for _ in range(runs):
        started = time.perf_counter()
        out = make()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), out
def frames(buffer):
    return pyvips.Image.new_from_buffer(buffer, "", n=-1).get("n-pages")
gif_vips, gif_out = timed(lambda: pyvips.Image.thumbnail_buffer(data, 58, height=50, option_string="n=-1").gifsave_buffer())
webp_vips, webp_out = timed(lambda: pyvips.Image.thumbnail_buffer(data, 64, option_string="n=-1").webpsave_buffer(Q=80))
print(f"libvips {pyvips.version(0)}.{pyvips.version(1)}.{pyvips.version(2)}, {runs} runs each, one thread")
print("| case | opossum ms | frames | bytes | libvips ms | frames | bytes | ratio (libvips/opossum time) |")
print("|---|---|---|---|---|---|---|---|")
for name, ours, vips, out in [("58x50 -> gif", gif_ours, gif_vips, gif_out), ("thumbnail 64 -> webp q80", webp_ours, webp_vips, webp_out)]:
    ms, count, size = ours.split()
    print(f"| {name} | {float(ms):.2f} | {count} | {size} | {vips:.2f} | {frames(out)} | {len(out)} | {vips / float(ms):.2f}x |")
PY
