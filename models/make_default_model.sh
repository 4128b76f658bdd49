#!/usr/bin/env bash
# Rebuilds the committed default model, models/fashion_vgg11.pt (+ .json record):
# torchvision's VGG11 layout at a quarter of its width, 1 input channel, 10 classes,
# 32 px input, trained on Debian's Fashion-MNIST with vizsweep-train (LibTorch).
# Takes about 10 minutes on 2 cores. Usage: models/make_default_model.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD="${1:-build}"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
/usr/bin/python3 models/export_torchvision.py --arch vgg11 --weights none --seed 0 --width 0.25 \
    --in-channels 1 --num-classes 10 --fc-width 256 --pool 1 --input-size 32 -o "$TMP/template.pt"
"$BUILD/models/vizsweep-train" --template "$TMP/template.pt" --out models/fashion_vgg11.pt --epochs 10 --seed 0
