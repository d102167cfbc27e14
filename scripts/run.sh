#!/usr/bin/env bash
# `make run`: PostgreSQL, Redis and the three servers on 127.0.0.1, in the foreground.
# Ctrl-C (or SIGTERM) stops everything; nothing is left running. Data persists in .local/.
set -euo pipefail
source "$(dirname "$0")/stack.sh"

trap 'echo; echo "stopping..."; stack_down; exit 0' INT TERM
if ! stack_up; then stack_down; exit 1; fi

# Seed the marketplace with the demo (partners, a thousand loans through their lifecycle, lenders
# with wallets, a fundraising catalogue) so there is something to explore. The seed uses fixed
# request ids and skips what is done: running again replays it instead of duplicating it. It moves
# lending's business clock months ahead of the wall clock (--clock_control, see stack.sh).
echo "seeding the demo marketplace (about a minute the first time, seconds after that; log: $ML_DATA_DIR/logs/seed.log)"
"$MLCTL" demo >"$ML_DATA_DIR/logs/seed.log" 2>&1 || { echo "seeding failed:" >&2; tail -n 20 "$ML_DATA_DIR/logs/seed.log" >&2; }
sed -n '/^marketplace summary/,/^  FX loss/p' "$ML_DATA_DIR/logs/seed.log" || true
grep -A5 '^catalogue:' "$ML_DATA_DIR/logs/seed.log" || true

OPS_TOKEN=$("$MLCTL" token --role ops --subject ops-1)
cat <<MSG

microlend is running:
  lending   $MICROLEND_LENDING_LISTEN   (loans, partners, lenders, ledger)
  matching  $MICROLEND_MATCHING_LISTEN   (contributions, auto-lend, matching campaigns)
  notify    $MICROLEND_NOTIFY_LISTEN   (share links, trending, inbox, webhooks)
  postgres  127.0.0.1:$ML_PG_PORT   redis 127.0.0.1:$ML_REDIS_PORT   logs $ML_DATA_DIR/logs/

Try:  build/tools/mlctl status --target $MICROLEND_LENDING_LISTEN --token \$(build/tools/mlctl token --role ops)
      build/tools/mlctl demo
Press Ctrl-C to stop.
MSG
"$MLCTL" status --target "$MICROLEND_LENDING_LISTEN" --token "$OPS_TOKEN" || true

# Wait for a signal; if a server dies on its own, say so and stop the rest.
while true; do
  for pid in "${SERVER_PIDS[@]}"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "a server exited unexpectedly; see $ML_DATA_DIR/logs/" >&2
      stack_down
      exit 1
    fi
  done
  sleep 1 &
  wait $! || true
done
