#!/usr/bin/env bash
# Rebuilds the committed default model, models/fashion_vgg11.pt (+ .json record):
# torchvision's VGG11 layout at a quarter of its width, 1 input channel, 10 classes,
# 32 px input, trained on Debian's Fashion-MNIST with vizsweep-train (LibTorch).
# Takes about 10 minutes on 2 cores. Usage: models/make_default_model.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
models/export_and_train.sh "${1:-build}" models/fashion_vgg11.pt --arch vgg11 --seed 0 --width 0.25 \
    --in-channels 1 --num-classes 10 --fc-width 256 --pool 1 --input-size 32 -- --epochs 10 --seed 0
