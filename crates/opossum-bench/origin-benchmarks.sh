#!/usr/bin/env bash
# The HTTP origin's benchmarks, each beside its baseline in the same run:
#
# 1. cached throughput and latency: wrk against `opossum serve` (embedded) for one cached
#    variant, then against Varnish (Debian's) serving the same object from its cache;
# 2. the seed's latency table on our operations: uncached versus cached p50 over N distinct
#    images for a basic filter, a filter chain, SVG generation and image analysis, measured two
#    ways: curl, a new connection per request (the TCP setup is timed too), and
#    `opossum-bench http-latency`, one keep-alive connection (as a CDN or an app talks to an
#    origin), each on its own copies of the image so both see real misses. Beside them, the
#    same keep-alive client reading each variant from Varnish's cache (its own copies again):
#    what the same bytes cost from a C cache server, the floor the client and kernel set.
#
# The embedded scheduler runs (so every answer is recorded in its analytics, as by default),
# but with no related formats and an hourly predictive run: related-variant warming would
# compute siblings in the background while the uncached requests are timed.
#
# Needs release binaries (cargo build --release --workspace) and
# `apt-get install wrk varnish curl` (BIN=DIR for other binaries). Usage: origin-benchmarks.sh [N=15] [SECONDS=10]
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-15}
SECONDS_PER_RUN=${2:-10}
BIN="${BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/opossum-target}/release}"
CORPUS=../shared/corpus/photos
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

mkdir -p "$WORK/originals" "$WORK/data"
for i in $(seq 1 "$N"); do
  cp "$CORPUS/kodim23.png" "$WORK/originals/img$i.png"
  cp "$CORPUS/kodim23.png" "$WORK/originals/ka$i.png"
  cp "$CORPUS/kodim23.png" "$WORK/originals/vk$i.png"
done
cp "$CORPUS/kodim23.png" "$WORK/originals/hot.png"

printf 'warming:\n  related_formats: []\n  interval: 1h\n' > "$WORK/opossum.yaml"
OPOSSUM_LOG=warn OPOSSUM_CONFIG="$WORK/opossum.yaml" "$BIN/opossum" serve --listen 127.0.0.1:0 --originals "$WORK/originals" \
  --data-dir "$WORK/data" > "$WORK/serve.out" &
PIDS+=($!)
for _ in $(seq 1 100); do grep -q listening "$WORK/serve.out" 2>/dev/null && break; sleep 0.1; done
ORIGIN=$(sed -n 's/^listening on //p' "$WORK/serve.out")
PORT=${ORIGIN##*:}

VPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
sed "s/.port = \"8080\";/.port = \"$PORT\";/" deploy/varnish/default.vcl > "$WORK/bench.vcl"
varnishd -F -j none -a "127.0.0.1:$VPORT" -f "$WORK/bench.vcl" -n "$WORK/varnish" -s malloc,256m \
  > /dev/null 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$VPORT/healthz" && break; sleep 0.1; done

HOT="/v1/img/thumbnail:200,format:webp/hot.png"
curl -s -o /dev/null "$ORIGIN$HOT"
curl -s -o /dev/null "http://127.0.0.1:$VPORT$HOT"
curl -s -o /dev/null "http://127.0.0.1:$VPORT$HOT"

run_wrk() {  # url -> "requests/s p50_ms p99_ms"
  wrk -t1 -c32 -d"${SECONDS_PER_RUN}s" --latency "$1" > "$WORK/wrk.out"
  local rps p50 p99
  rps=$(awk '/Requests\/sec/ {print $2}' "$WORK/wrk.out")
  p50=$(awk '$1=="50%" {print $2}' "$WORK/wrk.out")
  p99=$(awk '$1=="99%" {print $2}' "$WORK/wrk.out")
  echo "$rps $(to_ms "$p50") $(to_ms "$p99")"
}
to_ms() {  # wrk's "812.00us" / "1.20ms" / "2.00s" -> milliseconds
  python3 -c "import sys; v=sys.argv[1]; u={'us':1e-3,'ms':1,'s':1e3}; n=v.rstrip('usm'); print(round(float(n)*u[v[len(n):]],3))" "$1"
}

read -r O_RPS O_P50 O_P99 < <(run_wrk "$ORIGIN$HOT")
read -r V_RPS V_P50 V_P99 < <(run_wrk "http://127.0.0.1:$VPORT$HOT")
echo "## Cached variant ($HOT), wrk -t1 -c32 -d${SECONDS_PER_RUN}s, loopback"
echo
echo "| server | requests/s | p50 | p99 |"
echo "|---|---|---|---|"
echo "| Varnish 7.1 cache hit (baseline) | $V_RPS | $V_P50 ms | $V_P99 ms |"
echo "| opossum serve (memory tier) | $O_RPS | $O_P50 ms | $O_P99 ms |"
python3 -c "print(f'\nopossum / Varnish throughput: {float(\"$O_RPS\")/float(\"$V_RPS\"):.2f}x')"
echo

p50_of() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]*1000}'; }
echo "## Uncached versus cached p50 over $N images (ms)"
echo
echo "curl: time_total, a new connection per request, one cached request per image."
echo "keep-alive: opossum-bench http-latency, one connection, 5 cached requests per image."
echo "Varnish cached: the same client and requests through Varnish, answered from its cache."
echo
echo "| operation | chain | curl uncached | curl cached | improvement | keep-alive uncached | keep-alive cached | improvement | Varnish cached (keep-alive) |"
echo "|---|---|---|---|---|---|---|---|---|"
for row in "basic filter|/v1/img/grayscale,format:jpeg" \
           "filter chain|/v1/img/resize:800:600,sharpen:1,contrast:10,grayscale,format:webp" \
           "SVG generation|/v1/img/resize:320:240,format:svg" \
           "image analysis|/v1/info"; do
  name=${row%%|*}; route=${row#*|}
  : > "$WORK/cold"; : > "$WORK/warm"
  for i in $(seq 1 "$N"); do
    curl -s -o /dev/null -w '%{time_total}\n' "$ORIGIN$route/img$i.png" >> "$WORK/cold"
    curl -s -o /dev/null -w '%{time_total}\n' "$ORIGIN$route/img$i.png" >> "$WORK/warm"
  done
  cold=$(p50_of < "$WORK/cold"); warm=$(p50_of < "$WORK/warm")
  kept=$("$BIN/opossum-bench" http-latency --url "$ORIGIN$route/ka{i}.png" --count "$N" --repeat 5)
  kcold=$(sed -n 's/.*cold_p50_ms=\([0-9.]*\).*/\1/p' <<< "$kept")
  kwarm=$(sed -n 's/.*warm_p50_ms=\([0-9.]*\).*/\1/p' <<< "$kept")
  varnished=$("$BIN/opossum-bench" http-latency --url "http://127.0.0.1:$VPORT$route/vk{i}.png" --count "$N" --repeat 5)
  vwarm=$(sed -n 's/.*warm_p50_ms=\([0-9.]*\).*/\1/p' <<< "$varnished")
  python3 -c "print(f'| $name | \`${route#/v1/img/}\` | {$cold:.1f} | {$warm:.2f} | {100*(1-$warm/$cold):.1f}% | {$kcold:.1f} | {$kwarm:.3f} | {100*(1-$kwarm/$kcold):.1f}% | {$vwarm:.3f} |')"
done
