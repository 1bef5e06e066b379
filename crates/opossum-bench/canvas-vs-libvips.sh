#!/usr/bin/env bash
# Image engine II against libvips, same run, same pixels, one thread each (criterion for the
# engine, RAYON_NUM_THREADS=1; pyvips with VIPS_CONCURRENCY=1, in memory, medians of 15):
#   smart crop (1:1, attention), contain (fit into 800x800 and pad), pad (100 px each side),
#   trim (threshold 10), rotate by 45 degrees (bilinear, white corners), watermark (a logo at
#   0.2 of the width, half opacity, bottom right)
# on a 12 MP photo (4000x3000) and a 768 px one (768x512), both a Kodak photo inside a white
# border. Then the smart-crop quality: for every Kodak photo in ../shared/corpus/photos, the
# overlap (intersection over union) of our 1:1 window with libvips's attention window.
# Needs: python3 with pyvips (`pip install pyvips pyvips-binary` brings libvips 8.18).
set -euo pipefail
cd "$(dirname "$0")/../.."
target=${CARGO_TARGET_DIR:-target}
python3 -c 'import pyvips' 2>/dev/null || { echo "missing pyvips: pip install pyvips pyvips-binary" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export CANVAS_BENCH_INPUTS="$work"
python3 - "$work" <<'PY'
import sys, pyvips
work = sys.argv[1]
photo = pyvips.Image.new_from_file("../shared/corpus/photos/kodim23.png").extract_band(0, n=3)
def framed(width, height, border):
    inner = photo.resize((width - 2 * border) / photo.width, vscale=(height - 2 * border) / photo.height)
    return inner.embed(border, border, width, height, extend="background", background=[255, 255, 255])
framed(4000, 3000, 100).write_to_file(f"{work}/large.png")
framed(768, 512, 20).write_to_file(f"{work}/small.png")
logo = pyvips.Image.new_from_file("../shared/corpus/photos/kodim07.png").extract_band(0, n=3).resize(0.5)
logo.bandjoin(255).write_to_file(f"{work}/mark.png")
PY
RAYON_NUM_THREADS=1 cargo bench -q -p opossum-image --bench canvas -- --noplot >/dev/null 2>&1 \
  || RAYON_NUM_THREADS=1 cargo bench -p opossum-image --bench canvas -- --noplot
cargo build -q --release -p opossum-image --example smart_windows
photos=(../shared/corpus/photos/kodim*.png ../shared/corpus/photos/harvesters.jpeg ../shared/corpus/photos/hibiscus.regular.png ../shared/corpus/photos/peacock.default.jpeg)
"$target/release/examples/smart_windows" "${photos[@]}" > "$work/windows.txt"
VIPS_CONCURRENCY=1 python3 - "$work" "$target/criterion" <<'PY'
import json, statistics, sys, time
import pyvips
pyvips.cache_set_max(0)
work, criterion_dir = sys.argv[1], sys.argv[2]
mark = pyvips.Image.new_from_file(f"{work}/mark.png").copy_memory()
def median_seconds(operation, runs=15):
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        operation().copy_memory()
        times.append(time.perf_counter() - start)
    return statistics.median(times[3:])
def watermark(image):
    scale = image.width * 0.2 / mark.width
    small = mark.resize(scale)
    small = small.extract_band(0, n=3).bandjoin(small.extract_band(3) * 0.5)
    return image.composite2(small, "over", x=image.width - small.width, y=image.height - small.height)
def trim(image):
    left, top, width, height = image.find_trim(threshold=10, background=[255, 255, 255])
    return image.crop(left, top, width, height)
def contain(image):
    scale = min(800 / image.width, 800 / image.height)
    return image.resize(scale).gravity("centre", 800, 800, extend="background", background=[255, 255, 255])
print(f"libvips {pyvips.version(0)}.{pyvips.version(1)}.{pyvips.version(2)}, one thread each; medians")
print("| input | operation | opossum | libvips | ratio |")
print("|---|---|---|---|---|")
for size in ["large", "small"]:
    image = pyvips.Image.new_from_file(f"{work}/{size}.png").copy_memory()
    side = image.height
    cases = {
        "smartcrop": lambda: image.smartcrop(side, side, interesting="attention"),
        "contain": lambda: contain(image),
        "pad": lambda: image.embed(100, 100, image.width + 200, image.height + 200, extend="background", background=[255, 255, 255]),
        "trim": lambda: trim(image),
        "rotate45": lambda: image.rotate(45, background=[255, 255, 255]),
        "watermark": lambda: watermark(image),
    }
    for name, operation in cases.items():
        vips = median_seconds(operation)
        path = f"{criterion_dir}/canvas-{size}/{name}/new/estimates.json"
        ours = json.load(open(path))["median"]["point_estimate"] / 1e9
        label = f"{image.width}x{image.height}"
        print(f"| {label} | {name} | {ours*1000:.2f} ms | {vips*1000:.2f} ms | {ours/vips:.2f}x |")
print()
print("| photo | opossum window x,y | libvips window x,y | IoU |")
print("|---|---|---|---|")
ious = []
for line in open(f"{work}/windows.txt"):
    path, x, y, side = line.split()
    x, y, side = int(x), int(y), int(side)
    image = pyvips.Image.new_from_file(path)
    _, opts = image.smartcrop(side, side, interesting="attention", attention_x=True, attention_y=True)
    vx = min(max(opts["attention_x"] - side // 2, 0), image.width - side)
    vy = min(max(opts["attention_y"] - side // 2, 0), image.height - side)
    ix = max(0, min(x, vx) + side - max(x, vx))
    iy = max(0, min(y, vy) + side - max(y, vy))
    inter = ix * iy
    iou = inter / (2 * side * side - inter)
    ious.append(iou)
    flag = " (below 0.5)" if iou < 0.5 else ""
    print(f"| {path.split('/')[-1]} | {x},{y} | {vx},{vy} | {iou:.2f}{flag} |")
kodak = [iou for line, iou in zip(open(f"{work}/windows.txt"), ious) if "/kodim" in line]
print(f"\nmean IoU, Kodak photos ({len(kodak)}): {statistics.mean(kodak):.3f}; all {len(ious)} photos: {statistics.mean(ious):.3f}; below 0.5: {sum(i < 0.5 for i in ious)}")
PY
