#!/usr/bin/env bash
# The GPU measurements of the performance work, as one script for a machine with PyTorch and
# CUDA but none of the project's other libraries: builds the kernels and
# vizsweep-bench-actmax (VIZSWEEP_KERNELS_ONLY) against PyTorch's own LibTorch, then on
# torchvision's VGG16 at 224 px (seeded random weights):
#   1. fp32 NCHW: unit-iterations/s and loop GFLOP/s per layer, and the convolution peak;
#   2. the same in channels_last, in bf16 + channels_last and in fp16 + channels_last, each
#      with `check` lines against fp32 (largest pixel difference, objective reached);
#   3. the projected time to map all 13,416 VGG16 units at 256 iterations, in fp32 and in
#      the format named by PROJECT_FORMAT (default "bf16 1": bf16, channels_last);
#   4. tune: per layer, the decision `vizsweep tune` makes (kernels/tune.h) over fp32, bf16
#      and fp16, NCHW and NHWC, behind the quality guard (TUNE_ITERS iterations, default 50;
#      TUNE=0 skips it);
#   5. the cost of Lucid's parameterization and transforms (--param-cost): per layer of
#      PARAM_LAYERS (default conv3_3,conv5_3,fc8), the loop's time per iteration under pixel,
#      fft and fft + olah2017's transforms, uncropped and on the receptive-field crop, at
#      PARAM_UNITS units (default 4; PARAM_COST=0 skips it).
#
#   bench/gpu_check.sh                       # on the GPU machine, from the repository root
#   bench/gpu_check.sh --stage-headers DIR   # on a Debian machine: copy nlohmann/json.hpp and
#                                            # stb's headers into DIR, for a machine without them
# Environment: DEVICE (cuda), UNITS (64), ITERS (10), LAYERS (the six of bench/run_bench.py),
# HEADERS (a directory made by --stage-headers, added to the include path), BUILD_DIR
# (build-gpu), PROJECT (256 iterations; 0 skips step 3), OUT (when set, the log is also
# written to $OUT/gpu_check.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--stage-headers" ]; then
  dir="${2:?--stage-headers needs a directory}"
  mkdir -p "$dir/nlohmann" "$dir/stb"
  cp /usr/include/nlohmann/json.hpp "$dir/nlohmann/"
  cp /usr/include/stb/stb_image.h /usr/include/stb/stb_image_write.h "$dir/stb/"
  echo "headers in $dir: pass HEADERS=$dir to bench/gpu_check.sh"
  exit 0
fi
DEVICE="${DEVICE:-cuda}" UNITS="${UNITS:-64}" ITERS="${ITERS:-10}" BUILD_DIR="${BUILD_DIR:-build-gpu}"
LAYERS="${LAYERS:-conv1_2,conv2_2,conv3_3,conv4_3,conv5_3,fc8}"
PROJECT_FORMAT="${PROJECT_FORMAT:-bf16 1}" PROJECT="${PROJECT:-256}"
log() { if [ -n "${OUT:-}" ]; then tee -a "$OUT/gpu_check.txt"; else cat; fi; }

PY="${PYTHON:-python3}"
prefix="$("$PY" -c 'import torch; print(torch.utils.cmake_prefix_path)')"
"$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "device",
           torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none")' | log
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv | log || true

gen=()
command -v ninja >/dev/null && gen=(-G Ninja)
flags=()
[ -n "${HEADERS:-}" ] && flags=(-DCMAKE_CXX_FLAGS="-I$(cd "$HEADERS" && pwd)")
mkdir -p "$BUILD_DIR"
t0=$(date +%s)
cmake -S . -B "$BUILD_DIR" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" \
  -DVIZSWEEP_KERNELS_ONLY=ON "${flags[@]}" > "$BUILD_DIR/configure.log" 2>&1 || { tail -30 "$BUILD_DIR/configure.log"; exit 1; }
cmake --build "$BUILD_DIR" -j "$(nproc)" --target vizsweep-bench-actmax > "$BUILD_DIR/build.log" 2>&1 || { tail -40 "$BUILD_DIR/build.log"; exit 1; }
echo "built in $(( $(date +%s) - t0 )) s" | log
BENCH="$BUILD_DIR/bench/vizsweep-bench-actmax"

for fmt in "fp32 0" "fp32 1" "bf16 1" "fp16 1"; do
  set -- $fmt
  [ "$1" = fp16 ] && [ "$DEVICE" = cpu ] && continue  # no fp16 convolutions on CPUs
  echo "== precision $1, channels_last $2" | log
  "$BENCH" --device "$DEVICE" --units "$UNITS" --iters "$ITERS" --layers "$LAYERS" --peak \
    --precision "$1" --channels-last "$2" 2>&1 | log || echo "failed: precision $1 channels_last $2" | log
done
for fmt in "fp32 0" "$PROJECT_FORMAT"; do
  [ "$PROJECT" -gt 0 ] || break
  set -- $fmt
  echo "== projection, precision $1, channels_last $2" | log
  "$BENCH" --device "$DEVICE" --units "$UNITS" --project "$PROJECT" --precision "$1" --channels-last "$2" 2>&1 | log ||
    echo "failed: projection $1 $2" | log
done
if [ "${TUNE:-1}" != 0 ]; then
  echo "== tune (the quality guard against fp32 NCHW; the fastest format that passes)" | log
  "$BENCH" --device "$DEVICE" --units "${TUNE_UNITS:-8}" --iters "${TUNE_ITERS:-50}" --layers "$LAYERS" --tune 2>&1 | log ||
    echo "failed: tune" | log
fi
if [ "${PARAM_COST:-1}" != 0 ]; then
  echo "== param cost (pixel against fft and fft + transforms, per iteration at the same batch)" | log
  "$BENCH" --device "$DEVICE" --units "${PARAM_UNITS:-4}" --iters "$ITERS" --layers "${PARAM_LAYERS:-conv3_3,conv5_3,fc8}" \
    --param-cost 2>&1 | log || echo "failed: param cost" | log
fi
