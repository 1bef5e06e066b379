#!/usr/bin/env bash
# Cache benchmarks, one run: tier hit latency (64 KiB) beside a plain Redis GET; hit rate on a
# Zipf(0.9) trace over 1M keys at 1% capacity (tinylfu and LRU beside Belady's optimal); and a
# repeated `opossum process` answered by the disk tier against the first, computed run.
# Needs: redis-server, hyperfine (Debian packages).
set -euo pipefail
cd "$(dirname "$0")/../.."
target=${CARGO_TARGET_DIR:-target}
cargo build --release -q --workspace
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" \
  --maxmemory-policy allkeys-lfu --daemonize yes --pidfile "$work/redis.pid" >/dev/null
trap 'kill "$(cat "$work/redis.pid")" 2>/dev/null; rm -rf "$work"' EXIT
sleep 0.5

echo "## Hit latency"
"$target/release/opossum-bench" tier-latency --redis "redis://127.0.0.1:$port/"

echo; echo "## Hit rate, Zipf(0.9), 1,000,000 keys, ${REQUESTS:-10000000} requests, capacity 10,000 (1%)"
"$target/release/opossum-bench" zipf-trace --keys 1000000 --requests "${REQUESTS:-10000000}" --exponent 0.9 --out "$work/zipf.trace"
for policy in tinylfu lru; do
  "$target/release/opossum" cache simulate --trace "$work/zipf.trace" --capacity 10000 --policy "$policy" --json
done

echo; echo "## Repeated process: first run computes, later runs hit the disk tier"
input=../shared/corpus/photos/harvesters.jpeg
ops=resize:400:300:fill,sharpen,format:webp
hyperfine -N --runs 10 --prepare "rm -rf $work/data" -n computed \
  "$target/release/opossum --data-dir $work/data process $input --ops $ops --out $work/o.webp" \
  --export-json "$work/cold.json" >/dev/null
"$target/release/opossum" --data-dir "$work/data" process "$input" --ops "$ops" --out "$work/o.webp" --json
hyperfine -N --warmup 2 --runs 20 -n disk-hit \
  "$target/release/opossum --data-dir $work/data process $input --ops $ops --out $work/o.webp" \
  --export-json "$work/warm.json" >/dev/null
python3 - "$work/cold.json" "$work/warm.json" <<'PY'
import json, sys
cold = json.load(open(sys.argv[1]))["results"][0]; warm = json.load(open(sys.argv[2]))["results"][0]
print("| run | median wall time | ratio |")
print("|---|---|---|")
print(f"| first (computed) | {cold['median']*1000:.1f} ms | 1.00x |")
print(f"| repeated (disk tier) | {warm['median']*1000:.1f} ms | {warm['median']/cold['median']:.2f}x |")
PY
