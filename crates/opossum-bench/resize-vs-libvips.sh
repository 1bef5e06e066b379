#!/usr/bin/env bash
# Lanczos3 resize 4928x3279 -> 852x567 on one thread: the engine (fast_image_resize, criterion)
# against libvips (pyvips, in memory, VIPS_CONCURRENCY=1) on the same pixels, same run.
# Needs: python3 with pyvips (pip install pyvips) and libvips (Debian libvips42).
set -euo pipefail
cd "$(dirname "$0")/../.."
target=${CARGO_TARGET_DIR:-target}
python3 -c 'import pyvips' 2>/dev/null || { echo "missing pyvips: pip install pyvips (and apt-get install libvips42)" >&2; exit 1; }
cargo build --release -q -p opossum-bench
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
times = []
for i in range(25):
    start = time.perf_counter()
    out = image.resize(852 / 4928, vscale=567 / 3279, kernel="lanczos3").copy_memory()
    times.append(time.perf_counter() - start)
    assert (out.width, out.height) == (852, 567), (out.width, out.height)
vips = statistics.median(times[5:])
def criterion(name):
    path = f"{sys.argv[2]}/lanczos3-4928x3279-to-852x567/{name}/new/estimates.json"
    return json.load(open(path))["median"]["point_estimate"] / 1e9
ours, crate = criterion("opossum"), criterion("image-crate")
print(f"libvips {pyvips.version(0)}.{pyvips.version(1)}.{pyvips.version(2)}, one thread")
print("| implementation | median | ratio to libvips |")
print("|---|---|---|")
print(f"| opossum (fast_image_resize) | {ours*1000:.1f} ms | {ours/vips:.2f}x |")
print(f"| libvips (pyvips) | {vips*1000:.1f} ms | 1.00x |")
print(f"| image crate | {crate*1000:.1f} ms | {crate/vips:.2f}x |")
PY
