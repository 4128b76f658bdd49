#!/usr/bin/env bash
# What models/make_*_model.sh share: export an untrained architecture with
# models/export_torchvision.py, then train it with vizsweep-train.
# Usage: export_and_train.sh BUILD_DIR OUT.pt EXPORT_ARGS... -- TRAIN_ARGS...
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD="$1"; OUT="$2"; shift 2
EXPORT=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do EXPORT+=("$1"); shift; done
[ $# -gt 0 ] && shift
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
/usr/bin/python3 models/export_torchvision.py "${EXPORT[@]}" --weights none -o "$TMP/template.pt"
"$BUILD/models/vizsweep-train" --template "$TMP/template.pt" --out "$OUT" "$@"
