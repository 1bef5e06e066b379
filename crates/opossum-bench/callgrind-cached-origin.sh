#!/usr/bin/env bash
# Instructions per cached origin request, counted by callgrind (repeatable on a noisy machine,
# unlike wall time): `opossum serve` (embedded) answers one warm-up miss and then N cached
# requests of one variant over one keep-alive connection; the figure is
# (total(N=HIGH) - total(N=LOW)) / (HIGH - LOW), so start-up and the miss cancel out.
# Malloc calls per request are counted the same way.
#
# Usage: callgrind-cached-origin.sh BIN_DIR [LOW=200] [HIGH=1200]   (BIN_DIR holds `opossum`)
# Needs `apt-get install valgrind`; compare two BIN_DIRs in the same session for an A/B.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=$1
LOW=${2:-200}
HIGH=${3:-1200}

run() {  # n -> "instructions malloc_calls"
  local n=$1 w
  w=$(mktemp -d)
  mkdir -p "$w/o" "$w/d"
  cp ../shared/corpus/photos/kodim23.png "$w/o/hot.png"
  printf 'warming:\n  related_formats: []\n  interval: 1h\n' > "$w/c.yaml"
  OPOSSUM_LOG=error OPOSSUM_CONFIG="$w/c.yaml" valgrind --tool=callgrind --callgrind-out-file="$w/cg.out" \
    "$BIN/opossum" serve --listen 127.0.0.1:0 --originals "$w/o" --data-dir "$w/d" > "$w/serve.out" 2> "$w/vg.err" &
  local pid=$!
  for _ in $(seq 1 600); do grep -q listening "$w/serve.out" 2>/dev/null && break; sleep 0.2; done
  local port
  port=$(sed -n 's/^listening on http:\/\/127.0.0.1://p' "$w/serve.out")
  python3 - "$port" "$n" <<'PY'
import http.client, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
for _ in range(n + 1):  # the first is the miss
    c.request("GET", "/v1/img/thumbnail:200,format:webp/hot.png")
    r = c.getresponse(); r.read()
    assert r.status == 200, r.status
PY
  kill -INT "$pid"; wait "$pid" || true
  python3 - "$w/cg.out" <<'PY'
import re, sys
names, cur, mallocs, total = {}, None, 0, 0
for line in open(sys.argv[1], errors="replace"):
    if line.startswith(("summary:", "totals:")) and not total:
        total = int(line.split()[1])
    m = re.match(r"c?fn=\((\d+)\)(?: (.*))?", line)
    if m:
        if m.group(2):
            names[m.group(1)] = m.group(2).strip()
        cur = names.get(m.group(1)) if line.startswith("cfn=") else None
        continue
    if line.startswith("calls=") and cur is not None:
        if cur.split(" ")[0] == "malloc":
            mallocs += int(line.split("=")[1].split()[0])
        cur = None
print(total, mallocs)
PY
  rm -rf "$w"
}

read -r low_i low_m < <(run "$LOW")
read -r high_i high_m < <(run "$HIGH")
python3 -c "d=$HIGH-$LOW; print(f'instructions per cached request: {($high_i-$low_i)/d:.0f}; malloc calls per request: {($high_m-$low_m)/d:.1f}')"
