#!/usr/bin/env bash
# Encoder bytes against the reference command-line tools, on the same inputs in the same run:
#
#   JPEG     `opossum process --ops format:jpeg:Q[:progressive]` against libjpeg-turbo's
#            `cjpeg -optimize [-progressive] -quality Q` (both 4:2:0): bytes and SSIM of each;
#   palette  `format:png:palette` (256 colours, NeuQuant, Floyd-Steinberg) against
#            `pngquant 256` (libimagequant, dithered, default speed): bytes and SSIM of each.
#
# SSIM is computed here on BT.601 luma with 8x8 uniform windows (python3, numpy, pillow),
# against the original PNG. The inputs are the corpus's Kodak photos.
#
# Needs: cjpeg (Debian's libjpeg-turbo-progs), pngquant, python3 with numpy and pillow, and a
# built opossum binary (`cargo build --bin opossum`).
# Usage: crates/opossum-bench/encoders-vs-tools.sh [OPOSSUM_BINARY]
set -euo pipefail
cd "$(dirname "$0")/../.."
OPOSSUM=${1:-${CARGO_TARGET_DIR:-$HOME/.cache/opossum-target}/debug/opossum}
CORPUS=../shared/corpus/photos
for tool in cjpeg pngquant python3 "$OPOSSUM"; do
  command -v "$tool" >/dev/null || { echo "missing: $tool (see the header of $0)" >&2; exit 1; }
done
python3 -c 'import numpy, PIL' || { echo "missing: python3 numpy and pillow (pip install numpy pillow)" >&2; exit 1; }
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export OPOSSUM_DATA_DIR="$WORK/data"

cat > "$WORK/ssim.py" <<'EOF'
import sys
import numpy as np
from PIL import Image

def luma(path):
    rgb = np.asarray(Image.open(path).convert("RGB"), dtype=np.float64)
    return rgb @ np.array([0.299, 0.587, 0.114])

def windows(a, n=8):
    # Sums over every n x n window, from the integral image.
    s = np.pad(a, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    return (s[n:, n:] - s[:-n, n:] - s[n:, :-n] + s[:-n, :-n]) / (n * n)

def ssim(a, b):
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    ma, mb = windows(a), windows(b)
    va = windows(a * a) - ma * ma
    vb = windows(b * b) - mb * mb
    cov = windows(a * b) - ma * mb
    s = ((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma * ma + mb * mb + c1) * (va + vb + c2))
    return s.mean()

print(f"{ssim(luma(sys.argv[1]), luma(sys.argv[2])):.5f}")
EOF
ssim() { python3 "$WORK/ssim.py" "$1" "$2"; }
bytes() { stat -c %s "$1"; }

echo "JPEG: opossum against cjpeg -optimize, same quality"
printf "%-12s %-18s %10s %8s %10s %8s %7s\n" image setting opossum_B ssim cjpeg_B ssim ratio
for image in kodim02 kodim07 kodim17 kodim23; do
  src="$CORPUS/$image.png"
  python3 -c "from PIL import Image; Image.open('$src').convert('RGB').save('$WORK/$image.ppm')"
  for q in 60 80 90; do
    for mode in baseline progressive; do
      ops="format:jpeg:$q"; flags=(-optimize -quality "$q")
      if [ "$mode" = progressive ]; then ops="$ops:progressive"; flags+=(-progressive); fi
      "$OPOSSUM" process "$src" --no-cache --ops "$ops" --out "$WORK/ours.jpg"
      cjpeg "${flags[@]}" -outfile "$WORK/theirs.jpg" "$WORK/$image.ppm"
      a=$(bytes "$WORK/ours.jpg"); b=$(bytes "$WORK/theirs.jpg")
      printf "%-12s %-18s %10d %8s %10d %8s %7.3f\n" "$image" "q$q $mode" "$a" \
        "$(ssim "$src" "$WORK/ours.jpg")" "$b" "$(ssim "$src" "$WORK/theirs.jpg")" \
        "$(echo "$a / $b" | bc -l)"
    done
  done
done

echo
echo "PNG palette: opossum format:png:palette against pngquant 256"
printf "%-12s %10s %8s %10s %8s %7s\n" image opossum_B ssim pngquant_B ssim ratio
for image in kodim02 kodim07 kodim17 kodim23; do
  src="$CORPUS/$image.png"
  "$OPOSSUM" process "$src" --no-cache --ops format:png:palette --out "$WORK/ours.png"
  pngquant --force --output "$WORK/theirs.png" 256 "$src"
  a=$(bytes "$WORK/ours.png"); b=$(bytes "$WORK/theirs.png")
  printf "%-12s %10d %8s %10d %8s %7.3f\n" "$image" "$a" "$(ssim "$src" "$WORK/ours.png")" \
    "$b" "$(ssim "$src" "$WORK/theirs.png")" "$(echo "$a / $b" | bc -l)"
done
