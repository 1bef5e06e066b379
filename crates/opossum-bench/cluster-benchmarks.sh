#!/usr/bin/env bash
# Redis Cluster benchmarks, one run, against a single redis-server and a 3-primary cluster
# started here on loopback (scratch servers, removed at the end):
# - the shared tier: 10,000 images of 20 KiB written through RedisTier, then random reads
#   through RedisTier::get beside plain GETs on the same connection, on each target; keys and
#   memory per primary afterwards (balance);
# - the fleet on the cluster: `opossum-bench queue --cached` with one worker process, then two,
#   each beside the no-op apalis-redis worker of the same run.
# The recovery time after a primary kill is measured by the fault test:
#   cargo test -p opossum-tests --test e2e a_killed_primary -- --nocapture
# Needs: redis-server, redis-cli (Debian's redis-server and redis-tools).
set -euo pipefail
cd "$(dirname "$0")/../.."
target=${CARGO_TARGET_DIR:-target}
profile=${PROFILE:-release}
if [ "$profile" = release ]; then cargo build --release -q --workspace; else cargo build -q --workspace; fi
bin="$target/$profile"
work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
start() { # port, dir, extra args...
  local port=$1 dir=$2; shift 2
  mkdir -p "$dir"
  redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$dir" \
    --maxmemory-policy allkeys-lfu --daemonize no "$@" >"$dir/log" 2>&1 &
  pids+=($!)
}
single=$(free_port)
start "$single" "$work/single"
cluster_ports=()
for n in 1 2 3; do
  port=$((30000 + RANDOM % 20000))
  cluster_ports+=("$port")
  start "$port" "$work/c$n" --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 2000
done
sleep 1
redis-cli --cluster create $(for p in "${cluster_ports[@]}"; do printf '127.0.0.1:%s ' "$p"; done) --cluster-yes >/dev/null
until redis-cli -p "${cluster_ports[0]}" cluster info | grep -q cluster_state:ok; do sleep 0.2; done
seeds=$(IFS=,; for p in "${cluster_ports[@]}"; do printf '127.0.0.1:%s,' "$p"; done)
cluster_url="redis+cluster://${seeds%,}"

echo "## Shared tier: 20 KiB values, single node and 3 shards"
"$bin/opossum-bench" shared-tier --redis "redis://127.0.0.1:$single/" --redis "$cluster_url" \
  --images 10000 --size 20480 --reads "${READS:-50000}" --concurrency 32

for workers in 1 2; do
  echo; echo "## Fleet on the cluster, cached jobs, $workers worker process(es)"
  "$bin/opossum-bench" queue --redis "$cluster_url" --cached --workers "$workers" --jobs "${JOBS:-10000}"
done
