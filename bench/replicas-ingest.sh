#!/usr/bin/env bash
# Ingest throughput of 1..N collector replicas sharing one PostgreSQL store:
# N release collectors on loopback (copies of one data directory), and one
# caretaker-loadgen per replica, all started together, each with AGENTS/N
# simulated agents. Prints each loadgen's figures, their sum, and the CPU
# seconds of every collector and of PostgreSQL during the run.
# Usage: bench/replicas-ingest.sh [REPLICAS] [AGENTS] [REPORTS_PER_AGENT] [SAMPLES]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-2}; AGENTS=${2:-32}; PER=${3:-100}; SAMPLES=${4:-200}
cargo build --release --quiet -p caretaker-collector -p caretaker-tests
W=$(mktemp -d); PIDS=(); LG=()
PGADDR=${CARETAKER_TEST_POSTGRES:-127.0.0.1:5432}; DB=caretaker_bench_$$
pg() { psql -h "${PGADDR%:*}" -p "${PGADDR##*:}" -U postgres -d postgres -qtAc "$1"; }
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  pg "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT
pg "CREATE DATABASE $DB" >/dev/null
# PostgreSQL's CPU (all its processes) in clock ticks, before and after.
pgcpu() { for p in $(pgrep -f '^postgres'); do awk '{print $14+$15}' /proc/$p/stat 2>/dev/null; done | awk '{s+=$1} END {print s+0}'; }
for i in $(seq 0 $((N - 1))); do
  printf "[store]\nurl = \"postgres://postgres@$PGADDR/$DB\"\n[replicas]\nname = \"r$i\"\n" > "$W/r$i.toml"
done
target/release/caretaker-collector init --data-dir "$W/data0" --config "$W/r0.toml" >/dev/null
for i in $(seq 1 $((N - 1))); do cp -r "$W/data0" "$W/data$i"; done
for i in $(seq 0 $((N - 1))); do
  CARETAKER_LOG=warn target/release/caretaker-collector serve --config "$W/r$i.toml" --data-dir "$W/data$i" \
    --listen 127.0.0.1:$((18600 + i)) 2>"$W/r$i.log" &
  PIDS+=($!)
done
for i in $(seq 0 $((N - 1))); do
  until curl -fs --cacert "$W/data0/ca.pem" https://127.0.0.1:$((18600 + i))/healthz >/dev/null; do sleep 0.1; done
done
PG0=$(pgcpu)
for i in $(seq 0 $((N - 1))); do
  target/release/caretaker-loadgen --url https://127.0.0.1:$((18600 + i)) --ca "$W/data0/ca.pem" \
    --token "$(cat "$W/data0/enrollment-token")" --agents $((AGENTS / N)) --reports-per-agent "$PER" \
    --samples "$SAMPLES" ${KNOWN:+--known} > "$W/load$i.json" &
  LG+=($!)
done
for p in "${LG[@]}"; do wait "$p"; done
for i in $(seq 0 $((N - 1))); do cat "$W/load$i.json"; done
python3 - "$W" "$N" <<'PY'
import json, sys
w, n = sys.argv[1], int(sys.argv[2])
runs = [json.load(open(f"{w}/load{i}.json")) for i in range(n)]
total = sum(r["accepted"] for r in runs)
secs = max(r["seconds"] for r in runs)
print(f"replicas: {n}  accepted: {total}  wall: {secs:.2f} s  reports/s: {total / secs:.0f}  "
      f"p99 (worst loadgen): {max(r['p99_ms'] for r in runs):.1f} ms")
PY
for i in $(seq 0 $((N - 1))); do
  echo "replica r$i CPU: $(awk '{printf "%.2f s user+sys", ($14+$15)/100}' /proc/${PIDS[$i]}/stat)"
done
echo "PostgreSQL CPU during the run: $(( ($(pgcpu) - PG0) / 100 )) s"
