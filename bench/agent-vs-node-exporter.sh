#!/usr/bin/env bash
# Agent footprint side by side with Prometheus node_exporter on the same
# machine at the same interval: steady RSS and CPU time per collection cycle
# (agent: one report collected, compressed, spooled and sent; node_exporter:
# one scrape of /metrics).
# Usage: bench/agent-vs-node-exporter.sh [CYCLES] [INTERVAL_SECS]
set -euo pipefail
cd "$(dirname "$0")/.."
CYCLES=${1:-60}; INTERVAL=${2:-1}
command -v prometheus-node-exporter >/dev/null || { echo "needs Debian's prometheus-node-exporter"; exit 1; }
cargo build --release --quiet -p caretaker-collector -p caretaker-agent
W=$(mktemp -d)
cleanup() { kill ${NE:-} ${COL:-} ${AG:-} 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT
B=target/release
cpu_ticks() { awk '{print $14+$15}' /proc/$1/stat; }
rss_kib() { awk '/VmRSS/{print $2}' /proc/$1/status; }

$B/caretaker-collector init --data-dir "$W/data" >/dev/null
CARETAKER_LOG=warn $B/caretaker-collector serve --data-dir "$W/data" --listen 127.0.0.1:18557 2>"$W/c.log" &
COL=$!
until curl -fs --cacert "$W/data/ca.pem" https://127.0.0.1:18557/healthz >/dev/null; do sleep 0.1; done
cat >"$W/agent.toml" <<TOML
collector_url = "https://127.0.0.1:18557"
ca_file = "$W/data/ca.pem"
state_dir = "$W/agent"
enrollment_token = "$(cat "$W/data/enrollment-token")"
interval_secs = $INTERVAL
TOML
CARETAKER_LOG=warn $B/caretaker-agent run --config "$W/agent.toml" 2>"$W/a.log" &
AG=$!
prometheus-node-exporter --web.listen-address=127.0.0.1:9101 --no-collector.systemd --log.level=warn 2>"$W/ne.log" &
NE=$!
sleep 3   # warm-up: enrollment, first reports, first scrapes
for i in 1 2 3; do curl -fs -o /dev/null http://127.0.0.1:9101/metrics; done

TICK=$(getconf CLK_TCK)
a0=$(cpu_ticks $AG); n0=$(cpu_ticks $NE)
arss=0; nrss=0
for i in $(seq 1 "$CYCLES"); do
  curl -fs -o /dev/null http://127.0.0.1:9101/metrics
  sleep "$INTERVAL"
  arss=$(( $(rss_kib $AG) > arss ? $(rss_kib $AG) : arss ))
  nrss=$(( $(rss_kib $NE) > nrss ? $(rss_kib $NE) : nrss ))
done
a1=$(cpu_ticks $AG); n1=$(cpu_ticks $NE)
TOKEN=$(cat "$W/data/api-token")
reports=$(curl -fs --cacert "$W/data/ca.pem" -H "Authorization: Bearer $TOKEN" https://127.0.0.1:18557/api/v1/hosts | jq '.hosts[0].reports_applied')
awk -v a=$((a1-a0)) -v n=$((n1-n0)) -v c="$CYCLES" -v t="$TICK" -v ar="$arss" -v nr="$nrss" -v rep="$reports" 'BEGIN {
  am = a*1000/t/c; nm = n*1000/t/c;
  printf "cycles %d; reports applied %d\n", c, rep;
  printf "caretaker-agent : peak RSS %6.1f MiB, CPU %.2f ms per cycle\n", ar/1024, am;
  printf "node_exporter   : peak RSS %6.1f MiB, CPU %.2f ms per scrape\n", nr/1024, nm;
  printf "ratio agent/node_exporter CPU: %.2f\n", (nm > 0 ? am/nm : 0);
}'
