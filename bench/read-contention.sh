#!/usr/bin/env bash
# Queue API latency while a large inspection report is generated, with one read
# connection (the old single shared reader) and with a pool of four, in one run:
# the same seeded store, the collector restarted with `[store] readers = N`.
# Usage: bench/read-contention.sh [HOSTS] [REPORTS] [PROFILE]
# PROFILE is "release" (default) or "debug" (reuses a debug build; compare the
# two runs with each other only).
set -euo pipefail
cd "$(dirname "$0")/.."
HOSTS=${1:-20000}; REPORTS=${2:-3}; PROFILE=${3:-release}
if [ "$PROFILE" = release ]; then
  cargo build --release --quiet -p caretaker-collector -p caretaker-tests
else
  cargo build --quiet -p caretaker-collector -p caretaker-tests --bin caretaker-collector --bin caretaker-read-contention
fi
BIN=${CARGO_TARGET_DIR:-target}/$PROFILE
W=$(mktemp -d); PID=
trap '[ -n "$PID" ] && kill $PID 2>/dev/null; rm -rf "$W"' EXIT
PORT=${PORT:-18557}
CARETAKER_LOG=warn "$BIN/caretaker-collector" init --data-dir "$W/data" >/dev/null
"$BIN/caretaker-read-contention" seed --db "$W/data/caretaker.db" --hosts "$HOSTS"
for READERS in 1 4; do
  printf "[store]\nreaders = %s\n[reports]\nschedule = \"off\"\n" "$READERS" > "$W/collector.toml"
  CARETAKER_LOG=warn "$BIN/caretaker-collector" serve --config "$W/collector.toml" --data-dir "$W/data" \
    --listen 127.0.0.1:$PORT 2>"$W/collector.log" &
  PID=$!
  until curl -fs --cacert "$W/data/ca.pem" https://127.0.0.1:$PORT/healthz >/dev/null; do sleep 0.1; done
  echo "== readers = $READERS"
  "$BIN/caretaker-read-contention" measure --url https://127.0.0.1:$PORT --ca "$W/data/ca.pem" \
    --api-token "$(cat "$W/data/api-token")" --reports "$REPORTS"
  kill $PID; wait $PID 2>/dev/null || true; PID=
done
