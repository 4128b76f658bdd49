#!/usr/bin/env bash
# Every test on a fresh Debian 12 machine: install, build, run the whole suite under ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./scripts/build.sh
cd "${BUILD_DIR:-build}"
ctest --output-on-failure -j2 --timeout 900
