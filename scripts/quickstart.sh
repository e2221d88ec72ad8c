#!/usr/bin/env bash
# One command: build, then run a collector (embedded SQLite, self-signed TLS)
# and an agent on this host enrolled to it. Ctrl-C stops both.
# State lives in ./.caretaker (delete it to start over).
set -euo pipefail
cd "$(dirname "$0")/.."
LISTEN=${CARETAKER_LISTEN:-127.0.0.1:8443}
HOME_DIR=$PWD/.caretaker
DATA=$HOME_DIR/collector
echo "building (release)..."
cargo build --release --quiet -p caretaker-collector -p caretaker-agent
BIN=$PWD/target/release
mkdir -p "$HOME_DIR"
# The enrollment token is bound to customer "demo": agents enrolled with it
# can only ever report as demo's.
[ -f "$DATA/ca.key" ] || "$BIN/caretaker-collector" init --data-dir "$DATA" --customer demo >"$HOME_DIR/init.txt"

# Written once: edits (labels, [[databases]], [smart]) survive the next start.
[ -f "$HOME_DIR/agent.toml" ] || cat >"$HOME_DIR/agent.toml" <<TOML
collector_url = "https://$LISTEN"
ca_file = "$DATA/ca.pem"
state_dir = "$HOME_DIR/agent"
enrollment_token = "$(cat "$DATA/enrollment-token")"
interval_secs = 15

[labels]
customer = "demo"
site = "local"
TOML
"$BIN/caretaker-agent" check-config --config "$HOME_DIR/agent.toml" >/dev/null

"$BIN/caretaker-collector" serve --data-dir "$DATA" --listen "$LISTEN" 2>>"$HOME_DIR/collector.log" &
COLLECTOR=$!
trap 'kill $COLLECTOR ${AGENT:-} 2>/dev/null; wait 2>/dev/null; echo stopped' EXIT INT TERM
until curl -fs --cacert "$DATA/ca.pem" "https://$LISTEN/healthz" >/dev/null; do
  kill -0 $COLLECTOR 2>/dev/null || { echo "collector failed to start; see $HOME_DIR/collector.log"; exit 1; }
  sleep 0.2
done
"$BIN/caretaker-agent" run --config "$HOME_DIR/agent.toml" 2>>"$HOME_DIR/agent.log" &
AGENT=$!

TOKEN=$(cat "$DATA/api-token")
cat <<TXT

Caretaker is running: collector on https://$LISTEN, agent reporting every 15 s.
  metrics:   curl --cacert $DATA/ca.pem -H "Authorization: Bearer $(cat "$DATA/metrics-token")" https://$LISTEN/metrics
  hosts API: curl --cacert $DATA/ca.pem -H "Authorization: Bearer $TOKEN" https://$LISTEN/api/v1/hosts
  assets:    curl --cacert $DATA/ca.pem -H "Authorization: Bearer $TOKEN" https://$LISTEN/api/v1/assets
  disks:     curl --cacert $DATA/ca.pem -H "Authorization: Bearer $TOKEN" https://$LISTEN/api/v1/disks
             (disk health needs smartmontools >= 7; run as root to read the disks)
  logs:      $HOME_DIR/collector.log, $HOME_DIR/agent.log
  enroll another agent (customer demo): caretaker-agent enroll --collector https://$LISTEN --token $(cat "$DATA/enrollment-token") --ca $DATA/ca.pem --label customer=demo
  agents:    $BIN/caretaker-collector agents list --data-dir $DATA
Ctrl-C stops both.
TXT
wait $COLLECTOR
