#!/usr/bin/env bash
# Configures and builds vizsweep in build/ (Ninja, -j2 by default; override with JOBS).
#   scripts/build.sh [--target T]... [CMAKE_ARGS...]
# --target builds only those targets (the quickstart: vizsweep); other arguments go to
# cmake's configure step, e.g. -DCMAKE_PREFIX_PATH=/opt/libtorch -DVIZSWEEP_BUILD_TESTS=OFF.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${BUILD_DIR:-build}"
JOBS="${JOBS:-2}"
export CCACHE_SLOPPINESS="${CCACHE_SLOPPINESS:-pch_defines,time_macros,include_file_mtime,include_file_ctime}"
TARGETS=()
CONFIGURE=()
while [ $# -gt 0 ]; do
  case "$1" in
    --target)
      if [ $# -lt 2 ]; then echo "build.sh: --target needs a target name (e.g. vizsweep)" >&2; exit 2; fi
      TARGETS+=(--target "$2"); shift 2 ;;
    *) CONFIGURE+=("$1"); shift ;;
  esac
done
cmake -S . -B "$BUILD_DIR" -G Ninja ${CONFIGURE[@]+"${CONFIGURE[@]}"}
cmake --build "$BUILD_DIR" -j "$JOBS" ${TARGETS[@]+"${TARGETS[@]}"}
