#!/usr/bin/env bash
# Lanczos3 resize 4928x3279 -> 852x567 on one thread: the engine (fast_image_resize, criterion)
# against libvips (pyvips, in memory, VIPS_CONCURRENCY=1) on the same pixels, same run.
# The ratio is taken against libvips's faster path: `reduce` (the Lanczos3 kernel alone) or
# `resize` (what users call; in Debian's 8.14 it is 20x slower than `reduce`).
# Needs: python3 with pyvips; `pip install pyvips pyvips-binary` brings libvips 8.18.
set -euo pipefail
cd "$(dirname "$0")/../.."
target=${CARGO_TARGET_DIR:-target}
python3 -c 'import pyvips' 2>/dev/null || { echo "missing pyvips: pip install pyvips pyvips-binary" >&2; exit 1; }
cargo build --release -q --workspace
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$target/release/opossum-bench" make-image --source ../shared/corpus/photos/kodim23.png \
  --width 4928 --height 3279 --out "$work/input.png" >/dev/null
cargo bench -q -p opossum-bench --bench resize -- --noplot >/dev/null 2>&1 || cargo bench -p opossum-bench --bench resize
VIPS_CONCURRENCY=1 python3 - "$work/input.png" "$target/criterion" <<'PY'
import json, statistics, sys, time
import pyvips
pyvips.cache_set_max(0)
image = pyvips.Image.new_from_file(sys.argv[1]).copy_memory()
def median_seconds(operation):
    times = []
    for _ in range(25):
        start = time.perf_counter()
        out = operation().copy_memory()
        times.append(time.perf_counter() - start)
        assert (out.width, out.height) == (852, 567), (out.width, out.height)
    return statistics.median(times[5:])
resize = median_seconds(lambda: image.resize(852 / 4928, vscale=567 / 3279, kernel="lanczos3"))
reduce = median_seconds(lambda: image.reduce(4928 / 852, 3279 / 567, kernel="lanczos3"))
vips = min(resize, reduce)
def criterion(name):
    path = f"{sys.argv[2]}/lanczos3-4928x3279-to-852x567/{name}/new/estimates.json"
    return json.load(open(path))["median"]["point_estimate"] / 1e9
ours, crate = criterion("opossum"), criterion("image-crate")
print(f"libvips {pyvips.version(0)}.{pyvips.version(1)}.{pyvips.version(2)}, one thread")
print("| implementation | median | ratio to libvips |")
print("|---|---|---|")
print(f"| opossum (fast_image_resize) | {ours*1000:.1f} ms | {ours/vips:.2f}x |")
print(f"| libvips `reduce` | {reduce*1000:.1f} ms | {reduce/vips:.2f}x |")
print(f"| libvips `resize` | {resize*1000:.1f} ms | {resize/vips:.2f}x |")
print(f"| image crate | {crate*1000:.1f} ms | {crate/vips:.2f}x |")
PY
