#!/usr/bin/env bash
# Rebuilds the second default model, models/fashion_resnet.pt (+ .json record): a graph model
# (export_torchvision.py --arch resnet_mini: torchvision's BasicBlock in three stages, widths
# 16/32/64, laid out and named as torchvision's ResNet, so its taps are layer1.0.conv1,
# layer1.0.relu:2, layer1.0:add, ...), 1 input channel, 10 classes, 32 px input, trained on
# Debian's Fashion-MNIST with vizsweep-train from its own seed. The judge of its class images
# is the VGG default (models/fashion_vgg11.pt), a different family.
# About 15 minutes on 2 cores. Usage: models/make_resnet_model.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
models/export_and_train.sh "${1:-build}" models/fashion_resnet.pt --arch resnet_mini --seed 2 --width 0.5 \
    --in-channels 1 --num-classes 10 --input-size 32 -- --epochs 7 --seed 2
