#!/usr/bin/env bash
# Ingest throughput of 1..N collector replicas sharing one PostgreSQL store:
# N release collectors on loopback (copies of one data directory), and one
# caretaker-loadgen per replica, all started together, each with AGENTS/N
# simulated agents. Prints each loadgen's figures, their sum, and how the
# machine's CPU was split during the load: each collector, PostgreSQL, and the
# rest (the load generators). KNOWN=1: each simulated host is a known asset.
# HOSTS_PER_CUSTOMER=K: the hosts form customers of K hosts each (by default
# all hosts are one customer's, so a rule firing on all of them at once is one
# storm case that every report, through every replica, updates).
# Usage: bench/replicas-ingest.sh [REPLICAS] [AGENTS] [REPORTS_PER_AGENT] [SAMPLES]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-2}; AGENTS=${2:-32}; PER=${3:-100}; SAMPLES=${4:-200}
cargo build --release --quiet -p caretaker-collector -p caretaker-tests
W=$(mktemp -d); PIDS=(); LG=()
PGADDR=${CARETAKER_TEST_POSTGRES:-127.0.0.1:5432}; DB=caretaker_bench_$$
pg() { psql -h "${PGADDR%:*}" -p "${PGADDR##*:}" -U postgres -d "${2:-postgres}" -qtAc "$1"; }
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
# Busy clock ticks of the whole machine, and of one process.
busy() { awk '/^cpu /{print $2+$3+$4+$7+$8}' /proc/stat; }
ticks() { awk '{print $14+$15}' /proc/$1/stat; }
C0=(); for p in "${PIDS[@]}"; do C0+=("$(ticks "$p")"); done
PG0=$(pgcpu); ALL0=$(busy); SIZE0=$(pg "SELECT pg_database_size('$DB')")
for i in $(seq 0 $((N - 1))); do
  target/release/caretaker-loadgen --url https://127.0.0.1:$((18600 + i)) --ca "$W/data0/ca.pem" \
    --token "$(cat "$W/data0/enrollment-token")" --agents $((AGENTS / N)) --reports-per-agent "$PER" \
    --samples "$SAMPLES" --prefix "r$i-load" \
    --hosts-per-customer "${HOSTS_PER_CUSTOMER:-0}" ${KNOWN:+--known} > "$W/load$i.json" &
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
ALL=$(( $(busy) - ALL0 )); PGT=$(( $(pgcpu) - PG0 )); REST=$ALL
for i in $(seq 0 $((N - 1))); do
  t=$(( $(ticks "${PIDS[$i]}") - ${C0[$i]} )); REST=$(( REST - t ))
  echo "replica r$i CPU: $(awk -v t="$t" 'BEGIN {printf "%.1f s", t/100}')"
done
REST=$(( REST - PGT ))
echo "PostgreSQL CPU: $(awk -v t="$PGT" 'BEGIN {printf "%.1f s", t/100}')"
echo "rest (load generators, other): $(awk -v t="$REST" 'BEGIN {printf "%.1f s", t/100}')"
echo "machine busy: $(awk -v t="$ALL" 'BEGIN {printf "%.1f s", t/100}') of $(nproc) cores"
sleep 1  # the statistics collector's last flush
echo "database grew by: $(( ($(pg "SELECT pg_database_size('$DB')") - SIZE0) / 1024 )) KiB"
echo "largest tables (KiB, with indexes): $(pg "SELECT string_agg(relname || ' ' || (pg_total_relation_size(relid) / 1024), ', ' ORDER BY pg_total_relation_size(relid) DESC) FROM (SELECT * FROM pg_statio_user_tables ORDER BY pg_total_relation_size(relid) DESC LIMIT 4) t" "$DB")"
echo "PostgreSQL work (commits|rows inserted|updated|fetched|returned): $(pg "SELECT xact_commit, tup_inserted, tup_updated, tup_fetched, tup_returned FROM pg_stat_database WHERE datname = '$DB'")"
