#!/usr/bin/env bash
# Memory over a long run (issue 19): `opossum serve` (embedded) and a worker under the soak
# (`opossum-bench soak`: 200,000 requests over 20,000 variants of 200 images, RSS sampled every
# second), once per allocator on the same binaries and the same requests: glibc as it comes,
# glibc with two arenas, jemalloc and mimalloc (LD_PRELOAD of Debian's libraries), and the
# binaries' own jemalloc (`builtin`).
# The binaries carry jemalloc as their `malloc` since issue 19, and a preloaded library cannot
# replace an executable's own `malloc`: the LD_PRELOAD rows need binaries built before that
# (PRELOAD_BIN=a build of 0e0a020, `cargo build --release --workspace --bins` there). Without
# PRELOAD_BIN only `builtin` runs.
# Needs: redis-server, libjemalloc2, libmimalloc2.0 (Debian packages).
# REQUESTS=20000 VARIANTS=2000 for a short run; ALLOCATORS="glibc builtin" to pick some.
set -euo pipefail
cd "$(dirname "$0")/../.."
target=${CARGO_TARGET_DIR:-target}
bin=${BIN:-$target/release}
[ -n "${BIN:-}" ] || cargo build --release -q --workspace --bins
lib=/usr/lib/x86_64-linux-gnu
for library in libjemalloc.so.2 libmimalloc.so.2; do
  [ -e "$lib/$library" ] || { echo "missing $lib/$library: apt-get install libjemalloc2 libmimalloc2.0" >&2; exit 1; }
done
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" \
  --daemonize yes --pidfile "$work/redis.pid" >/dev/null
trap 'kill "$(cat "$work/redis.pid")" 2>/dev/null; rm -rf "$work"' EXIT
sleep 0.5

declare -A env=(
  [builtin]=""
  [glibc]=""
  [glibc-2-arenas]="--env MALLOC_ARENA_MAX=2"
  [jemalloc]="--env LD_PRELOAD=$lib/libjemalloc.so.2"
  [mimalloc]="--env LD_PRELOAD=$lib/libmimalloc.so.2"
)
default="builtin"
[ -z "${PRELOAD_BIN:-}" ] || default="glibc glibc-2-arenas jemalloc mimalloc builtin"
for allocator in ${ALLOCATORS:-$default}; do
  echo "## $allocator"
  measured=$bin
  if [ "$allocator" != builtin ]; then
    measured=${PRELOAD_BIN:?"the $allocator row needs PRELOAD_BIN (binaries without jemalloc built in)"}
  fi
  # shellcheck disable=SC2086
  "$measured/opossum-bench" soak --redis "redis://127.0.0.1:$port/" --target "${TARGET:-both}" \
    --requests "${REQUESTS:-200000}" --variants "${VARIANTS:-20000}" --images "${IMAGES:-200}" \
    --memory-cache-mib "${MEMORY_MIB:-64}" ${env[$allocator]} \
    --csv "${CSV_DIR:-$work}/soak-$allocator.csv"
  echo
done
