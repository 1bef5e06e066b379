#!/usr/bin/env bash
# 200 px thumbnail of a 24-megapixel JPEG: `opossum process --no-cache` against vipsthumbnail
# (Debian libvips-tools), same input, same run. Prints wall time (hyperfine), peak memory
# (GNU time, median of 5) and PSNR against a full-decode Lanczos3 reference.
# Needs: hyperfine, libvips-tools, time (Debian packages).
set -euo pipefail
cd "$(dirname "$0")/../.."
target=${CARGO_TARGET_DIR:-target}
for tool in hyperfine vipsthumbnail /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install hyperfine libvips-tools time" >&2; exit 1; }
done
cargo build --release -q --workspace
opossum=$target/release/opossum
bench=$target/release/opossum-bench
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$bench" make-image --source ../shared/corpus/photos/kodim23.png --width 6000 --height 4000 \
  --quality 90 --out "$work/big.jpg" >/dev/null
echo "input: 6000x4000 JPEG q90, $(stat -c %s "$work/big.jpg") bytes"

ours="$opossum process $work/big.jpg --ops thumbnail:200,format:jpeg:80 --no-cache --out $work/ours.jpg"
vips="vipsthumbnail $work/big.jpg -s 200 -o $work/vips.jpg[Q=80,strip]"
hyperfine -N --warmup 3 --runs ${RUNS:-20} --export-json "$work/times.json" -n opossum "$ours" -n vipsthumbnail "$vips" >/dev/null

peak() { # median peak RSS in KiB over 5 runs
  for _ in 1 2 3 4 5; do /usr/bin/time -f %M $1 2>&1 >/dev/null | tail -1; done | sort -n | sed -n 3p
}
ours_kib=$(peak "$ours"); vips_kib=$(peak "$vips")

# Quality: lossless outputs, so only the resize is judged.
"$opossum" process "$work/big.jpg" --ops thumbnail:200,format:png --out "$work/ours.png"
vipsthumbnail "$work/big.jpg" -s 200 -o "$work/vips.png"
psnr=$("$bench" psnr --source "$work/big.jpg" "$work/ours.png" "$work/vips.png")

python3 - "$work/times.json" "$ours_kib" "$vips_kib" "$psnr" <<'PY'
import json, sys
times = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
o, v = times["opossum"], times["vipsthumbnail"]
ours_kib, vips_kib = int(sys.argv[2]), int(sys.argv[3])
psnr = {("opossum" if "ours" in l.split("\t")[0] else "vipsthumbnail"): l.split("\t")[2] for l in sys.argv[4].splitlines()}
print("| measure | opossum | vipsthumbnail | ratio (opossum / vips) |")
print("|---|---|---|---|")
print(f"| wall time, median of {len(o['times'])} | {o['median']*1000:.1f} ms | {v['median']*1000:.1f} ms | {o['median']/v['median']:.2f}x |")
print(f"| wall time, mean ± sd | {o['mean']*1000:.1f} ± {o['stddev']*1000:.1f} ms | {v['mean']*1000:.1f} ± {v['stddev']*1000:.1f} ms | |")
print(f"| peak RSS, median of 5 | {ours_kib/1024:.1f} MiB | {vips_kib/1024:.1f} MiB | {ours_kib/vips_kib:.2f}x |")
print(f"| PSNR vs full-decode Lanczos3 | {psnr['opossum']} | {psnr['vipsthumbnail']} | |")
PY
