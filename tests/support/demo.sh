#!/usr/bin/env bash
# Runs the local stack in the background, waits for its API, runs the demo, stops the stack.
# The API listens on NOTIFY_LOCAL_PORT (default 3000); the demo calls it there.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
mkdir -p .local
PORT=${NOTIFY_LOCAL_PORT:-3000}
export NOTIFY_LOCAL_PORT=$PORT NOTIFY_DEMO_API=http://127.0.0.1:$PORT

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }

if listening; then
  echo "error: something already listens on 127.0.0.1:$PORT; stop it, or pick another port:" >&2
  echo "  make demo API_PORT=3300" >&2
  exit 1
fi
target/debug/local-stack >.local/local-stack.log 2>&1 &
STACK=$!
trap 'kill $STACK 2>/dev/null || true; wait $STACK 2>/dev/null || true' EXIT
for attempt in $(seq 1 150); do
  listening && break
  if ! kill -0 $STACK 2>/dev/null; then
    echo "error: the local stack exited; its log:" >&2
    cat .local/local-stack.log >&2
    exit 1
  fi
  if [[ $attempt == 150 ]]; then
    echo "error: the local stack's API did not listen on 127.0.0.1:$PORT within 30 s; its log:" >&2
    cat .local/local-stack.log >&2
    exit 1
  fi
  sleep 0.2
done
target/debug/demo
echo
echo "(local stack log: .local/local-stack.log — one JSON line per notification attempt)"
grep '"notification attempt"' .local/local-stack.log | tail -n 1 || true
