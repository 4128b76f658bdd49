#!/usr/bin/env bash
# Writes the TorchScript models the kernel tests load, exported from Debian's torchvision.
# Usage: make_test_models.sh PYTHON OUTDIR
set -euo pipefail
PY="$1"; OUT="$2"
HERE="$(cd "$(dirname "$0")/.." && pwd)"
mkdir -p "$OUT"
EXPORT="$HERE/models/export_torchvision.py"
[ -s "$OUT/vgg16.pt" ] || "$PY" "$EXPORT" --arch vgg16 --weights none --seed 0 -o "$OUT/vgg16.pt" \
    --reference "$OUT/vgg16_ref" --reference-size 64
[ -s "$OUT/vgg19.pt" ] || "$PY" "$EXPORT" --arch vgg19 --weights none --seed 0 -o "$OUT/vgg19.pt"
"$PY" "$EXPORT" --arch vgg11 --weights none --seed 1 --width 0.0625 --in-channels 1 --num-classes 10 \
    --fc-width 32 --pool 1 --input-size 32 -o "$OUT/small.pt" --reference "$OUT/small_ref"
"$PY" "$HERE/tests/kernels/make_not_vgg.py" "$OUT/not_vgg.pt"
# Graph models at 64 px for the receptive-field crop on graph taps (test_techniques.cpp).
for a in resnet18 densenet121; do
  [ -s "$OUT/${a}_64.pt" ] || "$PY" "$EXPORT" --arch "$a" --weights none --seed 0 --input-size 64 -o "$OUT/${a}_64.pt"
done
