#!/usr/bin/env bash
# `make bench`: runs every benchmark at full size; each prints `name value` lines.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
for b in "$BUILD_DIR"/bench/*_bench; do
  [[ -x "$b" ]] && "$b"
done
