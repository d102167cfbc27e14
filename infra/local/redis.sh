#!/usr/bin/env bash
# Private Redis for microlend: data in $ML_DATA_DIR/redis, 127.0.0.1:$ML_REDIS_PORT only, AOF on.
#   redis.sh start | stop | status | url
set -euo pipefail
source "$(dirname "$0")/common.sh"

REDIS_DIR="$ML_DATA_DIR/redis"
PID_FILE="$REDIS_DIR/redis.pid"

# Running means: the Redis answering on the port is this one, serving $REDIS_DIR. Another Redis
# on the port (another checkout's, or a parallel test's) is neither used nor shut down.
running() {
  local dir
  dir=$(redis-cli -h 127.0.0.1 -p "$ML_REDIS_PORT" config get dir 2>/dev/null | sed -n 2p) || return 1
  [[ -n "$dir" && "$dir" == "$(realpath -m "$REDIS_DIR")" ]]
}

start() {
  command -v redis-server >/dev/null || ml_die "redis-server not found (run scripts/install-deps.sh)"
  mkdir -p "$REDIS_DIR"
  if ! running; then
    # AOF for durability. Its rewrite dumps the whole event stream again; with the default 64 MB
    # threshold, a burst of 100,000 events/s rewrote it every second, and compressing each dump
    # (rdbcompression) cost Redis a quarter of its CPU. Rewrite from 1 GB, uncompressed: disk is
    # cheaper than the CPU the ledger needs.
    redis-server --bind 127.0.0.1 --port "$ML_REDIS_PORT" --dir "$REDIS_DIR" --daemonize yes \
      --pidfile "$PID_FILE" --logfile "$REDIS_DIR/redis.log" --appendonly yes \
      --appendfsync everysec --save "" --rdbcompression no \
      --auto-aof-rewrite-min-size 1gb --protected-mode yes >/dev/null
    for _ in $(seq 1 100); do running && break; sleep 0.1; done
    running || ml_die "Redis failed to start on 127.0.0.1:$ML_REDIS_PORT (log: $REDIS_DIR/redis.log)"
  fi
  ml_log "Redis ready at 127.0.0.1:$ML_REDIS_PORT (data $REDIS_DIR)"
}

stop() {
  if running; then redis-cli -h 127.0.0.1 -p "$ML_REDIS_PORT" shutdown >/dev/null 2>&1 || true; fi
  for _ in $(seq 1 100); do running || break; sleep 0.1; done
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) running ;;
  url) echo "127.0.0.1:$ML_REDIS_PORT" ;;
  *) echo "usage: $0 start|stop|status|url" >&2; exit 2 ;;
esac
