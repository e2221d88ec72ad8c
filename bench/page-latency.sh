#!/usr/bin/env bash
# The web pages with a large fleet in the store: the queue (first and deep
# pages, each order, a search, the unassigned view), case pages, the hosts
# list and host pages, one logged-in client at a time.
# Usage: bench/page-latency.sh [HOSTS] [CASES] [LOGROWS] [PROFILE]
# PROFILE is "release" (default) or "debug". STORE=postgresql puts the store
# on the PostgreSQL server CARETAKER_TEST_POSTGRES (default 127.0.0.1:5432,
# user postgres, trust) in a database made for the run and dropped after it.
# REQUESTS sets the requests per page (default 200; fewer for a page that
# takes more than 90 s in all). CARETAKER_BIN: a directory with the binaries
# built already (nothing is built then). PAGES: only the pages whose name
# contains it (e.g. "page 100").
set -euo pipefail
cd "$(dirname "$0")/.."
HOSTS=${1:-10000}; CASES=${2:-50000}; LOGROWS=${3:-500000}; PROFILE=${4:-release}
STORE=${STORE:-sqlite}; PGADDR=${CARETAKER_TEST_POSTGRES:-127.0.0.1:5432}; DB=caretaker_pages_$$
REQUESTS=${REQUESTS:-200}
if [ -n "${CARETAKER_BIN:-}" ]; then
  BIN=$CARETAKER_BIN   # binaries built already (caretaker-collector, caretaker-page-latency)
else
  if [ "$PROFILE" = release ]; then
    cargo build --release --quiet -p caretaker-collector -p caretaker-tests --bin caretaker-collector --bin caretaker-page-latency
  else
    cargo build --quiet -p caretaker-collector -p caretaker-tests --bin caretaker-collector --bin caretaker-page-latency
  fi
  BIN=${CARGO_TARGET_DIR:-target}/$PROFILE
fi
pg() { psql -h "${PGADDR%:*}" -p "${PGADDR##*:}" -U postgres -d postgres -qc "$1" >/dev/null; }
W=$(mktemp -d); PID=
cleanup() {
  [ -n "$PID" ] && kill $PID 2>/dev/null
  [ "$STORE" = postgresql ] && pg "DROP DATABASE IF EXISTS $DB WITH (FORCE)" || true
  rm -rf "$W"
}
trap cleanup EXIT
PORT=${PORT:-18558}
PASSWORD=$(head -c 15 /dev/urandom | base64 | tr -d '/+=')
if [ "$STORE" = postgresql ]; then
  pg "CREATE DATABASE $DB"
  printf '[store]\nurl = "postgres://postgres@%s/%s"\n' "$PGADDR" "$DB" > "$W/collector.toml"
  SEED=(--store-url "postgres://postgres@$PGADDR/$DB")
else
  : > "$W/collector.toml"
  SEED=(--db "$W/data/caretaker.db")
fi
CARETAKER_LOG=warn "$BIN/caretaker-collector" init --config "$W/collector.toml" --data-dir "$W/data" >/dev/null
"$BIN/caretaker-page-latency" seed "${SEED[@]}" --hosts "$HOSTS" --cases "$CASES" --log-rows "$LOGROWS" \
  --contracts "$W/contracts.toml" --password "$PASSWORD"
printf '[reports]\nschedule = "off"\n[queue]\ncontracts_file = "%s"\n' "$W/contracts.toml" >> "$W/collector.toml"
"$BIN/caretaker-collector" contracts check "$W/contracts.toml" >/dev/null
CARETAKER_LOG=warn "$BIN/caretaker-collector" serve --config "$W/collector.toml" --data-dir "$W/data" \
  --listen 127.0.0.1:$PORT 2>"$W/collector.log" &
PID=$!
until curl -fs --cacert "$W/data/ca.pem" https://127.0.0.1:$PORT/healthz >/dev/null; do
  kill -0 $PID 2>/dev/null || { cat "$W/collector.log"; exit 1; }
  sleep 0.2
done
echo "== $STORE, $HOSTS hosts, $CASES cases, $LOGROWS log rows, $PROFILE; load average $(cut -d' ' -f1-3 /proc/loadavg)"
"$BIN/caretaker-page-latency" measure --url https://127.0.0.1:$PORT --ca "$W/data/ca.pem" --password "$PASSWORD" \
  --hosts "$HOSTS" --cases "$CASES" --requests "$REQUESTS" ${PAGES:+--only "$PAGES"}
echo "== load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
if grep -qiE 'error|panic' "$W/collector.log"; then echo "== collector log:"; grep -iE 'error|panic' "$W/collector.log" | head -5; fi
