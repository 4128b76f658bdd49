#!/usr/bin/env bash
# Rebuilds the committed judge model, models/fashion_judge.pt (+ .json record): a residual
# network (torchvision's BasicBlock, batch norm, widths 16/32/64, global average pooling;
# export_torchvision.py --arch resnet_small), 1 input channel, 10 classes, 32 px input,
# trained on Debian's Fashion-MNIST with vizsweep-train from a different seed than the default
# model. It shares no weights, layout or seed with models/fashion_vgg11.pt, so the probability
# it gives a class image's intended class says what the image shows, not what fools the model
# it came from. About 20 minutes on 2 cores (92.0% test accuracy). Usage: models/make_judge_model.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
models/export_and_train.sh "${1:-build}" models/fashion_judge.pt --arch resnet_small --seed 1 --width 0.5 \
    --in-channels 1 --num-classes 10 --input-size 32 -- --epochs 5 --seed 1
