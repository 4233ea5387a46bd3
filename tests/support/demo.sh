#!/usr/bin/env bash
# Runs the local stack in the background, waits for its API, runs the demo, stops the stack.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
mkdir -p .local
target/debug/local-stack >.local/local-stack.log 2>&1 &
STACK=$!
trap 'kill $STACK 2>/dev/null || true; wait $STACK 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  (exec 3<>/dev/tcp/127.0.0.1/3000) 2>/dev/null && break
  if ! kill -0 $STACK 2>/dev/null; then
    echo "error: the local stack exited; its log:" >&2
    cat .local/local-stack.log >&2
    exit 1
  fi
  sleep 0.2
done
target/debug/demo
echo
echo "(local stack log: .local/local-stack.log — one JSON line per notification attempt)"
grep '"notification attempt"' .local/local-stack.log | tail -n 1 || true
