#!/usr/bin/env bash
# Starts or stops the local stand-ins: moto server (DynamoDB, EventBridge, SQS, Secrets Manager)
# and the SMTP sink, both on 127.0.0.1. State (pids, logs, received mail) lives in .local/.
#
#   services.sh up | down | run CMD...   (run: up, CMD, then down, keeping CMD's exit code)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
STATE="$ROOT/.local"
PY="${NOTIFY_PYTHON:-$ROOT/.venv/bin/python}"
MOTO_PORT="${MOTO_PORT:-5055}"
SMTP_PORT="${SMTP_PORT:-2525}"
mkdir -p "$STATE/mail"

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  local port=$1 name=$2 log=$3
  for _ in $(seq 1 150); do
    port_open "$port" && return 0
    sleep 0.2
  done
  echo "error: $name did not start on 127.0.0.1:$port; its log ($log):" >&2
  tail -n 30 "$log" >&2 || true
  exit 1
}

start() {
  local name=$1 port=$2; shift 2
  if port_open "$port"; then
    echo "$name: already listening on 127.0.0.1:$port"
    return
  fi
  # One pid file and log per port, so stacks on other ports (another checkout's or a helper's)
  # are never stopped or overwritten by this one.
  nohup "$@" >"$STATE/$name.$port.log" 2>&1 &
  echo $! >"$STATE/$name.$port.pid"
  wait_port "$port" "$name" "$STATE/$name.$port.log"
  echo "$name: listening on 127.0.0.1:$port (log: .local/$name.$port.log)"
}

up() {
  if [ ! -x "$PY" ]; then
    echo "error: $PY not found; run 'make venv' first" >&2
    exit 1
  fi
  # moto with DynamoDB requests serialised, so conditional writes are atomic as in DynamoDB.
  start moto "$MOTO_PORT" env MOTO_PORT="$MOTO_PORT" "$PY" "$ROOT/tests/support/moto_server.py" --host 127.0.0.1 --port "$MOTO_PORT"
  start smtp "$SMTP_PORT" "$PY" "$ROOT/tests/support/smtp_sink.py" --host 127.0.0.1 --port "$SMTP_PORT" --dir "$STATE/mail"
}

down() {
  # (`smtp.pid` and `moto.pid`: left by older versions of this script.)
  for pidfile in "$STATE/smtp.$SMTP_PORT.pid" "$STATE/moto.$MOTO_PORT.pid" "$STATE/smtp.pid" "$STATE/moto.pid"; do
    if [ -f "$pidfile" ]; then
      kill "$(cat "$pidfile")" 2>/dev/null || true
      rm -f "$pidfile"
    fi
  done
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  run)
    shift
    up
    trap down EXIT
    "$@"
    ;;
  *) echo "usage: $0 up|down|run CMD..." >&2; exit 2 ;;
esac
