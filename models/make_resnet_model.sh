#!/usr/bin/env bash
# Rebuilds the second default model, models/fashion_resnet.pt (+ .json record): a graph model
# (export_torchvision.py --arch resnet_mini: torchvision's BasicBlock in three stages, widths
# 16/32/64, laid out and named as torchvision's ResNet, so its taps are layer1.0.conv1,
# layer1.0.relu:2, layer1.0:add, ...), 1 input channel, 10 classes, 32 px input, trained on
# Debian's Fashion-MNIST with vizsweep-train from its own seed. The judge of its class images
# is the VGG default (models/fashion_vgg11.pt), a different family.
# About 30 minutes on 2 cores. Usage: models/make_resnet_model.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD="${1:-build}"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
/usr/bin/python3 models/export_torchvision.py --arch resnet_mini --weights none --seed 2 --width 0.5 \
    --in-channels 1 --num-classes 10 --input-size 32 -o "$TMP/template.pt"
"$BUILD/models/vizsweep-train" --template "$TMP/template.pt" --out models/fashion_resnet.pt --epochs 7 --seed 2
