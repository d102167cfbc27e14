# Shared settings for the local infra scripts. Sourced, not run.
# Everything lives under ML_DATA_DIR (default: .local/ in the checkout) and listens on 127.0.0.1.
ML_REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
ML_DATA_DIR=${ML_DATA_DIR:-$ML_REPO_ROOT/.local}
ML_PG_PORT=${ML_PG_PORT:-54329}
ML_PG_USER=${ML_PG_USER:-microlend}
ML_PG_DB=${ML_PG_DB:-microlend}
ML_REDIS_PORT=${ML_REDIS_PORT:-63799}

ml_log() { printf '%s %s\n' "$(basename "$0")" "$*" >&2; }
ml_die() { ml_log "error: $*"; exit 1; }
