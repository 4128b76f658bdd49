#!/usr/bin/env bash
# The main job on a fresh Debian 12 machine: install, build, and run the kernels demo
# (feature maps, activation maximization, inversion, FGSM) into results/demo.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./scripts/build.sh
./build/kernels/vizsweep-demo --out results/demo "$@"
echo "quickstart: images and feature-map grids are in $(pwd)/results/demo"
