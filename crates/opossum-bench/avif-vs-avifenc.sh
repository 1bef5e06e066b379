#!/usr/bin/env bash
# AVIF encoding against avifenc (Debian's libavif-bin, libaom) at equal PSNR, same inputs, same run.
#
# For each photo and each avifenc setting (`avifenc -s 8 -j 1 -y 420 --min Q --max Q`: speed 8,
# one thread, 4:2:0), the opossum quality whose PSNR is within 0.2 dB of avifenc's is found by
# bisection (`opossum process --no-cache --ops format:avif:QUALITY`, speed 8 by default), and the
# two are compared: bytes, and CPU time (user + system of the whole command, PNG decoding
# included on both sides, the median of RUNS runs). PSNR is over RGB against the original,
# after decoding with libheif's heif-convert.
#
# Needs: avifenc, heif-convert (libheif-examples), python3 with numpy and pillow, and a
# built opossum binary. The dev profile will do: dependencies are optimised there, and the
# time goes to libaom (Debian's, optimised) and the PNG decoder.
# Usage: crates/opossum-bench/avif-vs-avifenc.sh [OPOSSUM_BINARY] [RUNS] [EXTRA_IMAGE...]
# (an extra image is a path to a PNG or JPEG, for example a 12 MP photo the corpus lacks:
# libavif's tests/data/dog_exif_extended_xmp_icc.jpg, 4032x3024)
set -euo pipefail
cd "$(dirname "$0")/../.."
OPOSSUM=${1:-${CARGO_TARGET_DIR:-$HOME/.cache/opossum-target}/debug/opossum}
RUNS=${2:-3}
EXTRA=("${@:3}")
CORPUS=../shared/corpus/photos
for tool in avifenc heif-convert python3 "$OPOSSUM"; do
  command -v "$tool" >/dev/null || { echo "missing: $tool (see the header of $0)" >&2; exit 1; }
done
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export OPOSSUM_DATA_DIR="$WORK/data"
cat > "$WORK/psnr.py" <<'EOF'
import sys
import numpy as np
from PIL import Image
a = np.asarray(Image.open(sys.argv[1]).convert("RGB"), dtype=np.float64)
b = np.asarray(Image.open(sys.argv[2]).convert("RGB"), dtype=np.float64)
print(f"{10 * np.log10(255 * 255 / ((a - b) ** 2).mean()):.2f}")
EOF
psnr() { heif-convert "$1" "$WORK/decoded.png" >/dev/null 2>&1; python3 "$WORK/psnr.py" "$WORK/decoded.png" "$2"; }
# CPU seconds (user + system) of one run of a command, to the microsecond (wait4's rusage;
# GNU time prints hundredths, too coarse for a 0.4 MP encode).
cat > "$WORK/cpu.py" <<'EOF'
import os, subprocess, sys
child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
_, status, usage = os.wait4(child.pid, 0)
if status != 0:
    sys.exit(f"failed: {sys.argv[1:]}")
print(f"{usage.ru_utime + usage.ru_stime:.4f}")
EOF
# Median CPU seconds (user + system) of RUNS runs of a command.
cpu() {
  for _ in $(seq "$RUNS"); do
    python3 "$WORK/cpu.py" "$@"
  done | sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'
}

printf "%-16s %4s %8s %7s %6s | %4s %8s %7s %6s | %6s %6s\n" image minq avifenc_B psnr cpu_s \
  q opossum_B psnr cpu_s bytes cpu
for image in kodim02 kodim07 kodim23 harvesters "${EXTRA[@]}"; do
  src="$CORPUS/$image.png"
  if [ -f "$image" ]; then
    # An extra image, upright and as PNG so both sides decode the same thing.
    src="$WORK/extra-$(basename "$image").png"
    python3 -c "from PIL import Image, ImageOps; ImageOps.exif_transpose(Image.open('$image')).convert('RGB').save('$src')"
    image=$(basename "$image")
  elif [ ! -f "$src" ]; then
    python3 -c "from PIL import Image; Image.open('$CORPUS/$image.jpeg').save('$WORK/$image.png')"
    src="$WORK/$image.png"
  fi
  for q in 24 30 36; do
    avifenc -s 8 -j 1 -y 420 --min "$q" --max "$q" "$src" "$WORK/theirs.avif" >/dev/null
    target=$(psnr "$WORK/theirs.avif" "$src")
    theirs_bytes=$(stat -c %s "$WORK/theirs.avif")
    theirs_cpu=$(cpu avifenc -s 8 -j 1 -y 420 --min "$q" --max "$q" "$src" "$WORK/theirs.avif")
    # Bisection on quality for the PSNR avifenc reached (PSNR rises with quality).
    low=1; high=100; quality=50; got=0
    for _ in $(seq 8); do
      quality=$(( (low + high) / 2 ))
      "$OPOSSUM" process "$src" --no-cache --ops "format:avif:$quality" --out "$WORK/ours.avif"
      got=$(psnr "$WORK/ours.avif" "$src")
      if python3 -c "import sys; sys.exit(0 if abs($got - $target) <= 0.2 else 1)"; then break; fi
      if python3 -c "import sys; sys.exit(0 if $got < $target else 1)"; then low=$((quality + 1)); else high=$((quality - 1)); fi
      [ "$low" -le "$high" ] || break
    done
    ours_bytes=$(stat -c %s "$WORK/ours.avif")
    ours_cpu=$(cpu "$OPOSSUM" process "$src" --no-cache --ops "format:avif:$quality" --out "$WORK/ours.avif")
    printf "%-16s %4s %8d %7s %6s | %4s %8d %7s %6s | %6.3f %6.3f\n" "$image" "$q" "$theirs_bytes" \
      "$target" "$theirs_cpu" "$quality" "$ours_bytes" "$got" "$ours_cpu" \
      "$(echo "$ours_bytes / $theirs_bytes" | bc -l)" "$(echo "$ours_cpu / $theirs_cpu" | bc -l)"
  done
done
