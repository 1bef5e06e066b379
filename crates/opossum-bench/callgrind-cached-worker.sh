#!/usr/bin/env bash
# Instructions per cached job in a worker process, counted by callgrind (repeatable on a noisy
# machine, unlike wall time): `opossum-bench queue --cached` drains LOW and then HIGH cache-hit
# jobs through one `opossum-worker` run under callgrind; the figure is
# (total(HIGH) - total(LOW)) / (HIGH - LOW), so start-up and the 64 warm-up computations
# cancel out. With TOP=N it also prints the N functions with the most instructions
# per job, self and inclusive, each the difference of the two runs, to show where a job's cost goes.
#
# Usage: callgrind-cached-worker.sh BIN_DIR [LOW=500] [HIGH=2500]
#        (BIN_DIR holds opossum-bench and opossum-worker)
# Needs `apt-get install valgrind redis-server`; compare two BIN_DIRs in one session for an A/B.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=$(cd "$1" && pwd)
LOW=${2:-500}
HIGH=${3:-2500}
TOP=${TOP:-0}
WORK=$(mktemp -d)
trap 'kill "$(cat "$WORK/redis.pid" 2>/dev/null)" 2>/dev/null; pkill -f "callgrind-out-file=$WORK" 2>/dev/null; rm -rf "$WORK"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$WORK" \
  --daemonize yes --pidfile "$WORK/redis.pid" >/dev/null
sleep 0.5

# The load generator starts the `opossum-worker` beside its own binary: here a wrapper that
# runs the real one under callgrind. The generator kills the wrapper when it is done; the
# worker lives on until it is sent SIGTERM, stops gracefully and writes its profile.
mkdir -p "$WORK/bin"
cp "$BIN/opossum-bench" "$WORK/bin/"
cat > "$WORK/bin/opossum-worker" <<WRAPPER
#!/usr/bin/env bash
valgrind --tool=callgrind --callgrind-out-file=$WORK/cg.\$OPOSSUM_BENCH_RUN.out "$BIN/opossum-worker" "\$@" 2>>"$WORK/vg.err" &
wait
WRAPPER
chmod +x "$WORK/bin/opossum-worker"

run() {  # jobs -> total instructions
  local jobs=$1
  OPOSSUM_BENCH_RUN=$jobs "$WORK/bin/opossum-bench" queue --redis "redis://127.0.0.1:$port/" \
    --jobs "$jobs" --latency-jobs 1 --concurrency 64 --cached > "$WORK/bench.$jobs.out"
  pkill -TERM -f "callgrind-out-file=$WORK/cg.$jobs.out" || true
  for _ in $(seq 1 300); do
    pgrep -f "callgrind-out-file=$WORK/cg.$jobs.out" >/dev/null || break
    sleep 0.2
  done
  sed -n 's/^\(summary\|totals\): \([0-9]*\).*/\2/p' "$WORK/cg.$jobs.out" | head -1
}

low=$(run "$LOW")
high=$(run "$HIGH")
python3 -c "print(f'instructions per cached job in the worker: {($high-$low)/($HIGH-$LOW):.0f} ({$LOW} and {$HIGH} jobs)')"
if [ "$TOP" -gt 0 ]; then
  # Per function, the difference between the two runs per extra job: start-up and warm-up
  # cancel out as in the total, so what is left is what a cached job costs and where.
  for jobs in "$LOW" "$HIGH"; do
    callgrind_annotate --threshold=100 --auto=no "$WORK/cg.$jobs.out" > "$WORK/self.$jobs" 2>/dev/null
    callgrind_annotate --threshold=100 --auto=no --inclusive=yes "$WORK/cg.$jobs.out" > "$WORK/incl.$jobs" 2>/dev/null
  done
  python3 - "$WORK" "$LOW" "$HIGH" "$TOP" <<'PY'
import re, sys
work, low, high, top = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
def table(path):
    counts = {}
    for line in open(path, errors="replace"):
        m = re.match(r"^\s*([0-9,]+) (?:\([ 0-9.%]+\) )?\s*(.+?)(?: \[[^]]*\])?$", line)
        if m and ":" in m.group(2):
            name = m.group(2).split(":", 1)[1] if m.group(2).startswith(("/", "./", "???")) else m.group(2)
            counts[name] = counts.get(name, 0) + int(m.group(1).replace(",", ""))
    return counts
for kind, title in (("self", "self"), ("incl", "inclusive, Opossum's, apalis's and redis's own functions")):
    a, b = table(f"{work}/{kind}.{low}"), table(f"{work}/{kind}.{high}")
    diff = {k: (b.get(k, 0) - a.get(k, 0)) / (high - low) for k in set(a) | set(b)}
    rows = sorted(diff.items(), key=lambda kv: -kv[1])
    if kind == "incl":
        rows = [r for r in rows if re.search(r"opossum|apalis|redis::", r[0])]
    print(f"\ninstructions per cached job by function ({title}):")
    for name, per_job in rows[:top]:
        print(f"{per_job:10.0f}  {name[:160]}")
PY
fi
