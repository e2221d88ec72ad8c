#!/usr/bin/env bash
# Collector ingest throughput and latency: a release collector on loopback and
# caretaker-loadgen with many simulated agents, on the same machine.
# Usage: bench/collector-ingest.sh [AGENTS] [REPORTS_PER_AGENT] [SAMPLES]
set -euo pipefail
cd "$(dirname "$0")/.."
AGENTS=${1:-32}; PER=${2:-1000}; SAMPLES=${3:-200}
cargo build --release --quiet -p caretaker-collector -p caretaker-tests
W=$(mktemp -d); trap 'kill $PID 2>/dev/null || true; rm -rf "$W"' EXIT
PORT=18555
target/release/caretaker-collector init --data-dir "$W/data" >/dev/null
printf "[store]\nsynchronous = \"${SYNC:-full}\"\n" > "$W/collector.toml"
CARETAKER_LOG=warn target/release/caretaker-collector serve --config "$W/collector.toml" --data-dir "$W/data" --listen 127.0.0.1:$PORT 2>"$W/collector.log" &
PID=$!
until curl -fs --cacert "$W/data/ca.pem" https://127.0.0.1:$PORT/healthz >/dev/null; do sleep 0.1; done
target/release/caretaker-loadgen --url https://127.0.0.1:$PORT --ca "$W/data/ca.pem" \
  --token "$(cat "$W/data/enrollment-token")" --agents "$AGENTS" --reports-per-agent "$PER" --samples "$SAMPLES"
# The collector's own view: accepted count and the latency histogram.
curl -fs --cacert "$W/data/ca.pem" -H "Authorization: Bearer $(cat "$W/data/metrics-token")" https://127.0.0.1:$PORT/metrics |
  grep -E '^caretaker_ingest_(reports_accepted_total|latency_seconds_(count|sum))' || true
echo "collector CPU: $(awk '{printf "%.2f s user+sys", ($14+$15)/100}' /proc/$PID/stat)"
echo "collector RSS: $(awk '/VmHWM/{print $2" "$3}' /proc/$PID/status) peak; store $(du -sh "$W/data" | cut -f1)"
