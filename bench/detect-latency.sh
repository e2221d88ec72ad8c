#!/usr/bin/env bash
# Time from a faulty report to its case in the API: a release collector on
# loopback (default [detect] settings) and caretaker-case-latency, optionally
# with other agents sending reports meanwhile.
# Usage: bench/detect-latency.sh [PROBES] [BACKGROUND_AGENTS]
set -euo pipefail
cd "$(dirname "$0")/.."
PROBES=${1:-50}; BACKGROUND=${2:-0}
cargo build --release --quiet -p caretaker-collector -p caretaker-tests
BIN=${CARGO_TARGET_DIR:-target}/release
W=$(mktemp -d); trap 'kill $PID 2>/dev/null || true; rm -rf "$W"' EXIT
PORT=${PORT:-18556}
CARETAKER_LOG=warn "$BIN/caretaker-collector" init --data-dir "$W/data" >/dev/null
CARETAKER_LOG=warn "$BIN/caretaker-collector" serve --data-dir "$W/data" --listen 127.0.0.1:$PORT 2>"$W/collector.log" &
PID=$!
until curl -fs --cacert "$W/data/ca.pem" https://127.0.0.1:$PORT/healthz >/dev/null; do sleep 0.1; done
"$BIN/caretaker-case-latency" --url https://127.0.0.1:$PORT --ca "$W/data/ca.pem" \
  --token "$(cat "$W/data/enrollment-token")" --api-token "$(cat "$W/data/api-token")" \
  --probes "$PROBES" --background "$BACKGROUND"
curl -fs --cacert "$W/data/ca.pem" -H "Authorization: Bearer $(cat "$W/data/metrics-token")" https://127.0.0.1:$PORT/metrics |
  grep -E '^caretaker_(rule_evaluation_seconds_(count|sum)|detect_evaluations_dropped_total)' || true
