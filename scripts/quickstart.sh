#!/usr/bin/env bash
# One command: build, then run a collector (embedded SQLite, self-signed TLS)
# with a demo customer, contract and two logins, and an agent on this host
# enrolled to it. Ctrl-C stops both.
# State lives in ./.caretaker (delete it to start over).
#   CARETAKER_LISTEN  address to serve on (default 127.0.0.1:8443)
#   CARETAKER_HOME    state directory (default ./.caretaker)
#   CARETAKER_BIN     directory of already built binaries (skips the build)
set -euo pipefail
cd "$(dirname "$0")/.."
LISTEN=${CARETAKER_LISTEN:-127.0.0.1:8443}
HOME_DIR=${CARETAKER_HOME:-$PWD/.caretaker}
DATA=$HOME_DIR/collector
if [ -z "${CARETAKER_BIN:-}" ]; then
  echo "building (release)..."
  cargo build --release --quiet -p caretaker-collector -p caretaker-agent
  BIN=$PWD/target/release
else
  BIN=$CARETAKER_BIN
fi
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

# The contracts file, written once: the demo customer, a 5x8 contract on its
# hosts, an engineer on call for its site, and two logins whose passwords are
# printed this once and kept only as argon2id hashes.
LOGINS=""
if [ ! -f "$HOME_DIR/contracts.toml" ]; then
  password() { head -c 15 /dev/urandom | base64 | tr -d '/+=' ; }
  hash() { printf '%s\n' "$1" | "$BIN/caretaker-collector" hash-password; }
  ENGINEER_PW=$(password)
  CUSTOMER_PW=$(password)
  # The contract's hours are this machine's local hours.
  ZONE=$(readlink /etc/localtime 2>/dev/null | sed -n 's|.*/zoneinfo/||p')
  ZONE=${ZONE:-UTC}
  umask 077
  cat >"$HOME_DIR/contracts.toml.new" <<TOML
[[customer]]
name = "demo"
sites = ["local"]

[[contract]]
name = "demo-5x8"
customer = "demo"
covers = { labels = { customer = "demo" } }
hours = "5x8"
time_zone = "$ZONE"
response = { critical = "1h", major = "4h", warning = "8h", info = "3d" }
resolution = { critical = "8h", major = "2d", warning = "5d" }
pausing_holds = ["awaiting_customer", "awaiting_window"]

[[engineer]]
name = "engineer"
sites = ["local"]
level = "L1"

[[rotation]]
site = "local"
members = ["engineer"]
shift = "1w"
start = "2026-01-05T08:00:00Z"

[[user]]
name = "engineer"
role = "engineer"
password = "$(hash "$ENGINEER_PW")"
time_zone = "$ZONE"

[[user]]
name = "demo-admin"
role = "customer"
customer = "demo"
password = "$(hash "$CUSTOMER_PW")"
TOML
  "$BIN/caretaker-collector" contracts check "$HOME_DIR/contracts.toml.new" >/dev/null
  mv "$HOME_DIR/contracts.toml.new" "$HOME_DIR/contracts.toml"
  umask 022
  LOGINS="  engineer:   user engineer, password $ENGINEER_PW
  customer:   user demo-admin, password $CUSTOMER_PW
  (shown only now; the contracts file keeps their hashes)"
else
  LOGINS="  engineer:   user engineer; customer: user demo-admin (passwords were shown at the first start;
  new ones: echo 'new password' | $BIN/caretaker-collector hash-password, into $HOME_DIR/contracts.toml)"
fi
[ -f "$HOME_DIR/collector.toml" ] || cat >"$HOME_DIR/collector.toml" <<TOML
data_dir = "$DATA"

[queue]
contracts_file = "$HOME_DIR/contracts.toml"
TOML

"$BIN/caretaker-collector" serve --config "$HOME_DIR/collector.toml" --listen "$LISTEN" 2>>"$HOME_DIR/collector.log" &
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
  web pages: https://$LISTEN/
$LOGINS
  The certificate is signed by this collector's own CA: import $DATA/ca.pem
  into the browser's authorities (or accept the one-time warning).
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
