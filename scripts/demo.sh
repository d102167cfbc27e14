#!/usr/bin/env bash
# `make demo`: the scripted walk-through against the real services. Uses a stack that
# `make run` already has up; otherwise starts one, runs the demo and stops it again.
set -euo pipefail
source "$(dirname "$0")/stack.sh"

started=0
if ! "$MLCTL" health --target "$MICROLEND_LENDING_LISTEN" >/dev/null 2>&1; then
  trap 'stack_down' EXIT
  stack_up
  started=1
fi
"$MLCTL" demo
[[ $started -eq 1 ]] && echo "demo: stopping the stack it started"
exit 0
