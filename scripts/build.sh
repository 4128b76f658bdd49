#!/usr/bin/env bash
# Configures and builds vizsweep in build/ (Ninja, -j2 by default; override with JOBS).
# Extra arguments go to cmake's configure step, e.g. -DCMAKE_PREFIX_PATH=/opt/libtorch.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${BUILD_DIR:-build}"
JOBS="${JOBS:-2}"
export CCACHE_SLOPPINESS="${CCACHE_SLOPPINESS:-pch_defines,time_macros,include_file_mtime,include_file_ctime}"
cmake -S . -B "$BUILD_DIR" -G Ninja "$@"
cmake --build "$BUILD_DIR" -j "$JOBS"
