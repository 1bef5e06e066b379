#!/usr/bin/env bash
# Same-run A/B of the two cached paths a refactor must not slow down, between two sets of
# release binaries (a directory each, holding opossum, opossum-worker and, for the newer
# layout, opossum-bench):
#
# 1. the origin's cached path: `opossum serve` (embedded) answering one cached variant to
#    wrk -t1 -c32, A and B alternated ROUNDS times so drift on this shared machine hits both;
# 2. the fleet's cached queue throughput: the queue load generator with --cached (one worker
#    process draining JOBS cache-hit jobs), A and B alternated likewise, each on a fresh
#    redis-server. Older binaries carry it as `opossum bench queue`, newer ones as
#    `opossum-bench queue`; the script picks whichever the directory has.
#
# Usage: ab-cached-paths.sh A_DIR B_DIR [ROUNDS=3] [SECONDS=10] [JOBS=5000]
# Needs `apt-get install wrk redis-server curl`.
set -euo pipefail
cd "$(dirname "$0")/../.."
A=$1
B=$2
ROUNDS=${3:-3}
SECONDS_PER_RUN=${4:-10}
JOBS=${5:-5000}
CORPUS=../shared/corpus/photos
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

mkdir -p "$WORK/originals"
cp "$CORPUS/kodim23.png" "$WORK/originals/hot.png"
printf 'warming:\n  related_formats: []\n  interval: 1h\n' > "$WORK/opossum.yaml"
HOT="/v1/img/thumbnail:200,format:webp/hot.png"

origin_rps() {  # bin_dir label -> requests/s of a cached variant
  local bin=$1 data="$WORK/data-$2-$RANDOM"
  mkdir -p "$data"
  OPOSSUM_LOG=warn OPOSSUM_CONFIG="$WORK/opossum.yaml" "$bin/opossum" serve --listen 127.0.0.1:0 \
    --originals "$WORK/originals" --data-dir "$data" > "$WORK/serve.out" &
  local pid=$!
  for _ in $(seq 1 100); do grep -q listening "$WORK/serve.out" 2>/dev/null && break; sleep 0.1; done
  local origin
  origin=$(sed -n 's/^listening on //p' "$WORK/serve.out")
  curl -s -o /dev/null "$origin$HOT"
  curl -s -o /dev/null "$origin$HOT"
  wrk -t1 -c32 -d"${SECONDS_PER_RUN}s" "$origin$HOT" | awk '/Requests\/sec/ {print $2}'
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

queue_jps() {  # bin_dir -> jobs/s of the worker and of the no-op apalis baseline
  local bin=$1 port
  port=$(free_port)
  redis-server --port "$port" --save "" --appendonly no --daemonize no > /dev/null &
  local rpid=$!
  for _ in $(seq 1 50); do redis-cli -p "$port" ping > /dev/null 2>&1 && break; sleep 0.1; done
  local url="redis://127.0.0.1:$port/" out="$WORK/queue.json"
  if [ -x "$bin/opossum-bench" ] && "$bin/opossum-bench" queue --help > /dev/null 2>&1; then
    OPOSSUM_LOG=error "$bin/opossum-bench" queue --redis "$url" --jobs "$JOBS" --concurrency 64 --cached --json > "$out"
  else
    OPOSSUM_LOG=error "$bin/opossum" --redis "$url" bench queue --jobs "$JOBS" --concurrency 64 --cached --json > "$out"
  fi
  kill "$rpid"; wait "$rpid" 2>/dev/null || true
  python3 -c "import json,sys; r=json.load(open('$out')); print(round(r['opossum_worker']['jobs_per_second']), round(r['baseline_noop_apalis']['jobs_per_second']), r['opossum_worker']['latency_p50_ms'])"
}

echo "| round | origin A req/s | origin B req/s | B/A |"
echo "|---|---|---|---|"
for r in $(seq 1 "$ROUNDS"); do
  a=$(origin_rps "$A" a); b=$(origin_rps "$B" b)
  python3 -c "print(f'| $r | $a | $b | {float(\"$b\")/float(\"$a\"):.3f} |')"
done
echo
echo "| round | worker A jobs/s | worker B jobs/s | B/A | no-op apalis (A run / B run) | p50 A / B ms |"
echo "|---|---|---|---|---|---|"
for r in $(seq 1 "$ROUNDS"); do
  read -r aj an ap < <(queue_jps "$A")
  read -r bj bn bp < <(queue_jps "$B")
  python3 -c "print(f'| $r | $aj | $bj | {$bj/$aj:.3f} | $an / $bn | $ap / $bp |')"
done
