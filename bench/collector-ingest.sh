#!/usr/bin/env bash
# Collector ingest throughput and latency: a release collector on loopback and
# caretaker-loadgen with many simulated agents, on the same machine.
# Usage: bench/collector-ingest.sh [AGENTS] [REPORTS_PER_AGENT] [SAMPLES]
set -euo pipefail
cd "$(dirname "$0")/.."
AGENTS=${1:-32}; PER=${2:-1000}; SAMPLES=${3:-200}
cargo build --release --quiet -p caretaker-collector -p caretaker-tests
W=$(mktemp -d); PID=
# KNOWN=1: each agent's first report brings an inventory (its host is a known
# asset, as with a real agent), so what fires opens cases instead of being held.
# STORE=postgresql: the store on the PostgreSQL server CARETAKER_TEST_POSTGRES
# names (default 127.0.0.1:5432, trust), in a database made for this run.
STORE=${STORE:-sqlite}; PGADDR=${CARETAKER_TEST_POSTGRES:-127.0.0.1:5432}; DB=caretaker_bench_$$
pg() { psql -h "${PGADDR%:*}" -p "${PGADDR##*:}" -U postgres -d postgres -qc "$1" >/dev/null; }
cleanup() {
  [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
  [ "$STORE" = postgresql ] && pg "DROP DATABASE IF EXISTS $DB WITH (FORCE)" || true
  rm -rf "$W"
}
trap cleanup EXIT
PORT=18555
if [ "$STORE" = postgresql ]; then
  pg "CREATE DATABASE $DB"
  printf "[store]\nurl = \"postgres://postgres@$PGADDR/$DB\"\n" > "$W/collector.toml"
else
  printf "[store]\nsynchronous = \"${SYNC:-full}\"\n" > "$W/collector.toml"
fi
target/release/caretaker-collector init --data-dir "$W/data" --config "$W/collector.toml" >/dev/null
echo "store: $STORE"
CARETAKER_LOG=warn target/release/caretaker-collector serve --config "$W/collector.toml" --data-dir "$W/data" --listen 127.0.0.1:$PORT 2>"$W/collector.log" &
PID=$!
until curl -fs --cacert "$W/data/ca.pem" https://127.0.0.1:$PORT/healthz >/dev/null; do sleep 0.1; done
target/release/caretaker-loadgen --url https://127.0.0.1:$PORT --ca "$W/data/ca.pem" \
  --token "$(cat "$W/data/enrollment-token")" --agents "$AGENTS" --reports-per-agent "$PER" --samples "$SAMPLES" \
  ${KNOWN:+--known}
# The collector's own view: accepted count and the latency histogram.
curl -fs --cacert "$W/data/ca.pem" -H "Authorization: Bearer $(cat "$W/data/metrics-token")" https://127.0.0.1:$PORT/metrics |
  grep -E '^caretaker_ingest_(reports_accepted_total|latency_seconds_(count|sum))' || true
echo "collector CPU: $(awk '{printf "%.2f s user+sys", ($14+$15)/100}' /proc/$PID/stat)"
echo "collector RSS: $(awk '/VmHWM/{print $2" "$3}' /proc/$PID/status) peak; store $(du -sh "$W/data" | cut -f1)"
