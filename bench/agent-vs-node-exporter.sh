#!/usr/bin/env bash
# Agent footprint side by side with Prometheus node_exporter on the same
# machine at the same interval: steady RSS and CPU time per collection cycle
# (agent: one report collected, compressed, spooled and sent; node_exporter:
# one scrape of /metrics).
# Usage: bench/agent-vs-node-exporter.sh [CYCLES] [INTERVAL_SECS]
# HARDWARE=N: the ipmi and raid collectors read a BMC and a MegaRAID
# controller every N seconds (stand-in FreeIPMI and storcli64 scripts printing
# the captures in tests/fixtures/hardware); the tools' own CPU time is shown
# apart from the agent's.
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
child_ticks() { awk '{print $16+$17}' /proc/$1/stat; }
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
if [ -n "${HARDWARE:-}" ]; then
  FX="$PWD/tests/fixtures/hardware"
  mkdir -p "$W/hw"
  printf '#!/bin/sh\ncat "%s"\n' "$FX/ipmi/freeipmi/supermicro-sensors-healthy-derived.csv" >"$W/hw/ipmi-sensors"
  printf '#!/bin/sh\ncase "$*" in *--info*) printf "Number of log entries : 3\\nFree space remaining : 15000 bytes\\n";; *) cat "%s";; esac\n' \
    "$FX/ipmi/freeipmi/sel-old-psu-failure-derived.csv" >"$W/hw/ipmi-sel"
  printf '#!/bin/sh\nprintf "Power fault : false\\nChassis intrusion : inactive\\nCooling/fan fault : false\\nDrive Fault : false\\n"\n' >"$W/hw/ipmi-chassis"
  printf '#!/bin/sh\nprintf "Firmware Revision : 1.73\\nIPMI Version : 2.0\\nManufacturer ID : Super Micro Computer Inc. (10876)\\n"\n' >"$W/hw/bmc-info"
  printf '#!/bin/sh\ncase "$*" in *eall*) cat "%s";; *) cat "%s";; esac\n' \
    "$FX/raid/storcli/praid-ep420i-call-eall-sall-show-all.json" "$FX/raid/storcli/praid-ep420i-call-show-all.json" >"$W/hw/storcli64"
  chmod +x "$W"/hw/*
  : >"$W/hw/ipmi0"
  cat >>"$W/agent.toml" <<TOML
[ipmi]
tool = "freeipmi"
ipmi_sensors_path = "$W/hw/ipmi-sensors"
ipmi_sel_path = "$W/hw/ipmi-sel"
ipmi_chassis_path = "$W/hw/ipmi-chassis"
bmc_info_path = "$W/hw/bmc-info"
fru = false
interval_secs = $HARDWARE
devices = ["$W/hw/ipmi0"]
[raid]
storcli_path = "$W/hw/storcli64"
perccli_path = "$W/hw/none"
storcli2_path = "$W/hw/none"
perccli2_path = "$W/hw/none"
ssacli_path = "$W/hw/none"
interval_secs = $HARDWARE
TOML
fi
CARETAKER_LOG=warn $B/caretaker-agent run --config "$W/agent.toml" 2>"$W/a.log" &
AG=$!
prometheus-node-exporter --web.listen-address=127.0.0.1:9101 --no-collector.systemd --log.level=warn 2>"$W/ne.log" &
NE=$!
sleep 3   # warm-up: enrollment, first reports, first scrapes
for i in 1 2 3; do curl -fs -o /dev/null http://127.0.0.1:9101/metrics; done

TICK=$(getconf CLK_TCK)
a0=$(cpu_ticks $AG); n0=$(cpu_ticks $NE); t0=$(child_ticks $AG)
arss=0; nrss=0
for i in $(seq 1 "$CYCLES"); do
  curl -fs -o /dev/null http://127.0.0.1:9101/metrics
  sleep "$INTERVAL"
  arss=$(( $(rss_kib $AG) > arss ? $(rss_kib $AG) : arss ))
  nrss=$(( $(rss_kib $NE) > nrss ? $(rss_kib $NE) : nrss ))
done
a1=$(cpu_ticks $AG); n1=$(cpu_ticks $NE); t1=$(child_ticks $AG)
TOKEN=$(cat "$W/data/api-token")
reports=$(curl -fs --cacert "$W/data/ca.pem" -H "Authorization: Bearer $TOKEN" https://127.0.0.1:18557/api/v1/hosts | jq '.hosts[0].reports_applied')
curl -fs --cacert "$W/data/ca.pem" -H "Authorization: Bearer $(cat "$W/data/metrics-token" 2>/dev/null)" \
  https://127.0.0.1:18557/metrics >"$W/metrics.txt" || true
hw_ok=$(grep -cE '^caretaker_agent_collector_success\{.*collector="(ipmi|raid)".*\} 1(\.0)?$' "$W/metrics.txt" || true)

awk -v a=$((a1-a0)) -v n=$((n1-n0)) -v tt=$((t1-t0)) -v hw="${HARDWARE:-}" -v hwok="$hw_ok" -v c="$CYCLES" -v t="$TICK" -v ar="$arss" -v nr="$nrss" -v rep="$reports" 'BEGIN {
  am = a*1000/t/c; nm = n*1000/t/c;
  printf "cycles %d; reports applied %d\n", c, rep;
  printf "caretaker-agent : peak RSS %6.1f MiB, CPU %.2f ms per cycle\n", ar/1024, am;
  printf "node_exporter   : peak RSS %6.1f MiB, CPU %.2f ms per scrape\n", nr/1024, nm;
  printf "ratio agent/node_exporter CPU: %.2f\n", (nm > 0 ? am/nm : 0);
  if (hw != "") printf "hardware tools (ipmi, raid every %s s; collectors succeeding: %d of 2): %.2f ms per cycle in the tools themselves\n", hw, hwok, tt*1000/t/c;
}'
