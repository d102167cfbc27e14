#!/usr/bin/env bash
# Private PostgreSQL for microlend: initdb into $ML_DATA_DIR/pg, listen on 127.0.0.1:$ML_PG_PORT
# only, trust auth for the local user, fsync and synchronous_commit on.
#   pg.sh start   create the cluster on first use, start it, create the database (idempotent)
#   pg.sh stop    stop it if running
#   pg.sh status  exit 0 when running
#   pg.sh url     print the libpq connection string
set -euo pipefail
source "$(dirname "$0")/common.sh"

PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[[ -x "$PG_BIN/initdb" ]] || ml_die "PostgreSQL server binaries not found (run scripts/install-deps.sh)"
PGDATA_DIR="$ML_DATA_DIR/pg"
LOG_FILE="$ML_DATA_DIR/pg.log"

# PostgreSQL refuses to run as root: run it as the 'postgres' system user then.
as_owner() {
  if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

url() {
  echo "host=127.0.0.1 port=$ML_PG_PORT dbname=$ML_PG_DB user=$ML_PG_USER"
}

running() { [[ -f "$PGDATA_DIR/PG_VERSION" ]] && as_owner "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" status >/dev/null 2>&1; }

init_cluster() {
  mkdir -p "$ML_DATA_DIR"
  if [[ $(id -u) -eq 0 ]]; then
    mkdir -p "$PGDATA_DIR"
    chown postgres: "$PGDATA_DIR"
    touch "$LOG_FILE" && chown postgres: "$LOG_FILE"
    runuser -u postgres -- test -w "$PGDATA_DIR" ||
      ml_die "user 'postgres' cannot write $PGDATA_DIR (a parent folder is not traversable); set ML_DATA_DIR to a folder it can reach"
  fi
  as_owner "$PG_BIN/initdb" -D "$PGDATA_DIR" -U "$ML_PG_USER" --auth=trust -E UTF8 --locale=C >/dev/null
  cat >>"$PGDATA_DIR/postgresql.conf" <<CONF
# microlend local settings
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
max_connections = 300
shared_buffers = 512MB
fsync = on
synchronous_commit = on
wal_level = minimal
max_wal_senders = 0
max_wal_size = 4GB
checkpoint_timeout = 15min
logging_collector = off
CONF
}

start() {
  [[ -f "$PGDATA_DIR/PG_VERSION" ]] || init_cluster
  if ! running; then
    as_owner "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -l "$LOG_FILE" -o "-p $ML_PG_PORT" -w -t 60 start >/dev/null ||
      { tail -n 20 "$LOG_FILE" >&2; ml_die "PostgreSQL failed to start on 127.0.0.1:$ML_PG_PORT (log: $LOG_FILE)"; }
  fi
  local exists
  exists=$(psql "$(url | sed "s/dbname=$ML_PG_DB/dbname=postgres/")" -tAc \
    "SELECT 1 FROM pg_database WHERE datname = '$ML_PG_DB'")
  [[ "$exists" == "1" ]] || psql "$(url | sed "s/dbname=$ML_PG_DB/dbname=postgres/")" -qc "CREATE DATABASE $ML_PG_DB" >/dev/null
  ml_log "PostgreSQL ready at 127.0.0.1:$ML_PG_PORT (data $PGDATA_DIR)"
}

stop() {
  if running; then as_owner "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -m fast -w -t 60 stop >/dev/null; fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) running ;;
  url) url ;;
  *) echo "usage: $0 start|stop|status|url" >&2; exit 2 ;;
esac
