# Sourced by run.sh and demo.sh: bring the local stack up and down on the default ports.
# PostgreSQL and Redis come from infra/local; the servers run in the background with logs in
# $ML_DATA_DIR/logs/. stack_down stops only what stack_up started.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$ROOT/infra/local/common.sh"
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
MLCTL="$BUILD_DIR/tools/mlctl"
export MICROLEND_PG_URL=${MICROLEND_PG_URL:-"host=127.0.0.1 port=$ML_PG_PORT dbname=$ML_PG_DB user=$ML_PG_USER"}
export MICROLEND_REDIS=${MICROLEND_REDIS:-127.0.0.1:$ML_REDIS_PORT}
export MICROLEND_LENDING_LISTEN=${MICROLEND_LENDING_LISTEN:-127.0.0.1:50051}
export MICROLEND_MATCHING_LISTEN=${MICROLEND_MATCHING_LISTEN:-127.0.0.1:50052}
export MICROLEND_NOTIFY_LISTEN=${MICROLEND_NOTIFY_LISTEN:-127.0.0.1:50053}
export MICROLEND_LENDING_ADDR=$MICROLEND_LENDING_LISTEN
export MICROLEND_MATCHING_ADDR=$MICROLEND_MATCHING_LISTEN
export MICROLEND_NOTIFY_ADDR=$MICROLEND_NOTIFY_LISTEN
# The demo moves the lending server's business clock forward (months of repayments, an expiry, a
# default) with ServerAdmin.AdvanceClock, which needs --clock_control. The clock restarts at the
# wall clock with the server. Set MICROLEND_CLOCK_CONTROL=false to refuse clock moves.
export MICROLEND_CLOCK_CONTROL=${MICROLEND_CLOCK_CONTROL:-true}
SERVER_PIDS=()

stack_up() {
  "$ROOT/infra/local/pg.sh" start
  "$ROOT/infra/local/redis.sh" start
  mkdir -p "$ML_DATA_DIR/logs"
  local name addr port_file pid
  for name in lending matching notify; do
    # The server writes its port file once it has bound its port (exclusively): waiting for the
    # file first means the health check below reaches this server, not a stale one on the port.
    port_file="$ML_DATA_DIR/logs/$name.port"
    rm -f "$port_file"
    env "MICROLEND_${name^^}_PORT_FILE=$port_file" "$BUILD_DIR/services/$name/${name}_server" \
      >>"$ML_DATA_DIR/logs/$name.log" 2>&1 &
    pid=$!
    SERVER_PIDS+=($pid)
    for _ in $(seq 1 600); do
      [[ -s "$port_file" ]] && break
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    addr=$(eval echo "\$MICROLEND_${name^^}_LISTEN")
    if [[ ! -s "$port_file" ]] || ! "$MLCTL" wait --targets "$addr" --timeout_s 60; then
      echo "stack: $name did not start on $addr; last log lines:" >&2
      tail -n 20 "$ML_DATA_DIR/logs/$name.log" >&2
      return 1
    fi
  done
}

stack_down() {
  local pid
  for pid in "${SERVER_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${SERVER_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  SERVER_PIDS=()
  "$ROOT/infra/local/redis.sh" stop || true
  "$ROOT/infra/local/pg.sh" stop || true
}
