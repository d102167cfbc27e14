#!/usr/bin/env bash
# `make test`: the whole suite through ctest (extra args are passed on, e.g. -L unit).
# Integration tests start their own PostgreSQL, Redis and servers on free ports.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
ctest --test-dir "$BUILD_DIR" --output-on-failure --no-tests=error -j 2 "$@"
