#!/usr/bin/env bash
# Animated GIF processing against libvips, same run, same input, one thread each (the engine
# with RAYON_NUM_THREADS=1; pyvips with VIPS_CONCURRENCY=1, in memory; medians of RUNS):
#   a GIF resized to 58x50 and written as GIF (libvips: thumbnail_buffer n=-1, gifsave; the
#   source is 116x100, so fill and fit are the same box; libvips's crop would write one frame
#   of an animation), and a GIF thumbnailed to 64 px and written as lossy WebP q80 (thumbnail,
#   webpsave Q=80), on image-gif's moon_impact.gif (116x100, every frame);
#   then a 120-frame GIF (pan-gif.py: 480x320, a pan across the corpus's harvesters photo)
#   resized to half (240x160) and written as animated lossy WebP q80, against libvips
#   (thumbnail n=-1, webpsave Q=80) and against gif2webp (Debian's webp: `-lossy -q 80 -m 4`,
#   libwebp's default method, as ours) given the GIF already at half size (gifsicle --scale 0.5;
#   its time is gif2webp's alone, one process per run).
# Needs: python3 with pillow and pyvips (`pip install pyvips pyvips-binary` brings libvips
# 8.18); gif2webp and gifsicle (`apt-get install webp gifsicle`).
set -euo pipefail
cd "$(dirname "$0")/../.."
target=${CARGO_TARGET_DIR:-target}
runs=${RUNS:-30}
python3 -c 'import pyvips' 2>/dev/null || { echo "missing pyvips: pip install pyvips pyvips-binary" >&2; exit 1; }
for tool in gif2webp gifsicle; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install webp gifsicle" >&2; exit 1; }
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 crates/opossum-bench/pan-gif.py ../shared/corpus/photos "$work/pan.gif"
gifsicle --scale 0.5 "$work/pan.gif" -o "$work/pan-half.gif"
pan_runs=$(( (runs + 4) / 5 ))
gif=crates/opossum-image/tests/fixtures/moon_impact.gif
cargo build -q --release -p opossum-image --example animation_timing
ours() { RAYON_NUM_THREADS=1 "$target/release/examples/animation_timing" "$gif" "$1" "$runs"; }
gif_ours=$(ours "resize:58:50:fill,format:gif")
webp_ours=$(ours "thumbnail:64,format:webp:80")
pan_ours=$(RAYON_NUM_THREADS=1 "$target/release/examples/animation_timing" "$work/pan.gif" \
  "resize:240:160,format:webp:80" "$pan_runs")
# gif2webp's median wall time over the same number of runs, one process each.
pan_gif2webp=$(for _ in $(seq "$pan_runs"); do
  start=$(date +%s%N)
  gif2webp -quiet -lossy -q 80 -m 4 "$work/pan-half.gif" -o "$work/theirs.webp"
  echo $(( ($(date +%s%N) - start) / 1000 ))
done | sort -n | awk '{a[NR] = $1} END {printf "%.2f", a[int((NR + 1) / 2)] / 1000}')
VIPS_CONCURRENCY=1 python3 - "$gif" "$runs" "$gif_ours" "$webp_ours" "$work" "$pan_runs" \
  "$pan_ours" "$pan_gif2webp" <<'PY'
import statistics, sys, time
import pyvips
pyvips.cache_set_max(0)
path, runs, gif_ours, webp_ours = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
work, pan_runs, pan_ours, pan_gif2webp = sys.argv[5], int(sys.argv[6]), sys.argv[7], float(sys.argv[8])
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
pan = open(f"{work}/pan.gif", "rb").read()
runs = pan_runs
pan_vips, pan_out = timed(lambda: pyvips.Image.thumbnail_buffer(pan, 240, height=160, option_string="n=-1").webpsave_buffer(Q=80))
theirs = open(f"{work}/theirs.webp", "rb").read()
ms, count, size = pan_ours.split()
print()
print(f"120-frame 480x320 GIF ({len(pan)} bytes) to 240x160 animated WebP q80, {pan_runs} runs each")
print("| tool | ms | frames | bytes | time / opossum's | bytes / opossum's |")
print("|---|---|---|---|---|---|")
print(f"| opossum | {float(ms):.1f} | {count} | {size} | 1.00x | 1.00x |")
print(f"| libvips | {pan_vips:.1f} | {frames(pan_out)} | {len(pan_out)} | {pan_vips / float(ms):.2f}x | {len(pan_out) / int(size):.2f}x |")
print(f"| gif2webp (input pre-halved) | {pan_gif2webp:.1f} | {frames(theirs)} | {len(theirs)} | {pan_gif2webp / float(ms):.2f}x | {len(theirs) / int(size):.2f}x |")
PY
