#!/usr/bin/env bash
# One-command local MiniTrue cluster: broker (embedded, unless one already listens on the
# broker port), three symmetric nodes started with the same command (each takes the next
# free slot: polaris 8080/9000, sirius 8081/9001, vega 8082/9002), the fleet simulator, and
# the dashboard (built when npm is present, before the server so the binary embeds it; the
# nodes, run from here, serve frontend/dist itself). Ctrl-C stops everything it started.
#
# Environment: MINITRUE_RUN_DIR (logs and data, default ./run), MINITRUE_BROKER_PORT
# (default 1883), MINITRUE_SIM_DEVICES (default 3), MINITRUE_SIM_INTERVAL (default 1),
# MINITRUE_SKIP_BUILD=1 to use already built binaries (MINITRUE_BIN_DIR, default
# target/release), MINITRUE_SKIP_FRONTEND=1.
set -euo pipefail
cd "$(dirname "$0")"

RUN_DIR=${MINITRUE_RUN_DIR:-run}
BROKER_PORT=${MINITRUE_BROKER_PORT:-1883}
DEVICES=${MINITRUE_SIM_DEVICES:-3}
INTERVAL=${MINITRUE_SIM_INTERVAL:-1}
BIN=${MINITRUE_BIN_DIR:-target/release}
HTTP_PORTS=(8080 8081 8082)
GOSSIP_PORTS=(9000 9001 9002)
PIDS=()

say() { printf '[run_cluster] %s\n' "$*"; }

port_in_use() {
  # bash's /dev/tcp connects when something listens; no extra tools needed.
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

wait_for_port() {
  local port=$1 what=$2
  for _ in $(seq 1 100); do
    port_in_use "$port" && return 0
    sleep 0.1
  done
  say "error: $what did not start listening on port $port; see $RUN_DIR/logs/"
  return 1
}

stop_all() {
  trap - INT TERM EXIT
  if [ ${#PIDS[@]} -gt 0 ]; then
    say "stopping ${#PIDS[@]} processes..."
    # Reverse order: simulator first, then nodes (they flush and fsync), broker last.
    for ((i=${#PIDS[@]}-1; i>=0; i--)); do
      kill -TERM "${PIDS[$i]}" 2>/dev/null || true
      wait "${PIDS[$i]}" 2>/dev/null || true
    done
  fi
  say "stopped."
}
trap 'stop_all; exit 0' INT TERM
trap stop_all EXIT

for port in "${HTTP_PORTS[@]}" "${GOSSIP_PORTS[@]}"; do
  if port_in_use "$port"; then
    say "error: port $port is in use (another MiniTrue? stop it first: pkill -f minitrue-server)"
    exit 1
  fi
done

mkdir -p "$RUN_DIR/logs" "$RUN_DIR/data"

# The dashboard first, so the release build below embeds this bundle (build.rs).
if [ "${MINITRUE_SKIP_FRONTEND:-0}" != 1 ]; then
  if command -v npm >/dev/null 2>&1; then
    say "building the dashboard (frontend/dist)..."
    (cd frontend && { [ -d node_modules ] || npm ci --no-audit --no-fund; } && npm run build) \
      >"$RUN_DIR/logs/frontend-build.log" 2>&1 \
      || say "warning: dashboard build failed (see $RUN_DIR/logs/frontend-build.log); the API still works"
  else
    say "npm not found: the dashboard is not built. Install Node.js 20+ and npm, then re-run."
  fi
fi

if [ "${MINITRUE_SKIP_BUILD:-0}" != 1 ]; then
  say "building (release)..."
  cargo build --release --bins
fi

if port_in_use "$BROKER_PORT"; then
  say "using the MQTT broker already listening on port $BROKER_PORT"
else
  say "starting the embedded MQTT broker on 127.0.0.1:$BROKER_PORT"
  "$BIN/minitrue-broker" --listen "127.0.0.1:$BROKER_PORT" >"$RUN_DIR/logs/broker.log" 2>&1 &
  PIDS+=($!)
  wait_for_port "$BROKER_PORT" broker
fi

for i in 0 1 2; do
  # The same command three times: each node takes the next free slot.
  "$BIN/minitrue-server" --mode=all --broker "tcp://127.0.0.1:$BROKER_PORT" \
    --data_dir "$RUN_DIR/data" >"$RUN_DIR/logs/node-$i.log" 2>&1 &
  PIDS+=($!)
  wait_for_port "${HTTP_PORTS[$i]}" "node $i"
done
for i in 0 1 2; do
  name=$(sed -n 's/.*\[main\] \([a-z]*\): opened.*/\1/p' "$RUN_DIR/logs/node-$i.log" | head -1)
  [ -n "$name" ] && mv "$RUN_DIR/logs/node-$i.log" "$RUN_DIR/logs/$name.log" 2>/dev/null || true
done

"$BIN/minitrue-publisher" --sim=true --devices "$DEVICES" --interval "$INTERVAL" \
  --broker "tcp://127.0.0.1:$BROKER_PORT" >"$RUN_DIR/logs/simulator.log" 2>&1 &
PIDS+=($!)

cat <<MSG

  MiniTrue is running: 3 nodes, broker on :$BROKER_PORT, simulator with $DEVICES devices.

  Dashboard   http://localhost:8080/   (also :8081, :8082)
  Status      curl -s localhost:8080/status
  Query       curl -s -XPOST localhost:8080/query -d '{"device_id":"sensor_1","metric_name":"temperature","operation":"avg","start_time":0,"end_time":0}'
  Live        ws://localhost:8080/ws
  Logs        $RUN_DIR/logs/   Data  $RUN_DIR/data/

  Press Ctrl-C to stop everything.

MSG

# Wait until Ctrl-C, or until any started process dies.
while true; do
  for pid in "${PIDS[@]}"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      say "error: process $pid exited; see $RUN_DIR/logs/. Stopping the rest."
      exit 1
    fi
  done
  sleep 1
done
