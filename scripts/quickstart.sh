#!/usr/bin/env bash
# The quickstart on a fresh Debian 12 machine: install what it needs (scripts/setup.sh
# --quickstart), build the vizsweep program alone, run sweeps/examples/quickstart.yaml under
# mpirun with 2 ranks into results/quickstart (OUT=DIR for another), print the index's answers,
# draw the figures and the atlas, and say where everything is and how long each phase took.
# Running it again resumes (or finds everything done). scripts/test.sh installs and builds the rest.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-results/quickstart}"
export BUILD_DIR="${BUILD_DIR:-build}"
VIZSWEEP="$BUILD_DIR/runner/vizsweep"
PHASES=()
phase_start=$SECONDS
phase() {  # phase NAME: the time since the last phase ended
  PHASES+=("$(printf '%-9s %4d s' "$1" $((SECONDS - phase_start)))")
  phase_start=$SECONDS
}

./scripts/setup.sh --quickstart
phase install
# The tests and benchmarks are not built here (scripts/test.sh builds everything).
./scripts/build.sh --target vizsweep -DVIZSWEEP_BUILD_TESTS=OFF
phase build

if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
mpirun -np 2 --oversubscribe "$VIZSWEEP" run sweeps/examples/quickstart.yaml --out "$OUT"
"$VIZSWEEP" status "$OUT"
phase sweep

echo
echo "The index's answers (python3 -m analysis answers; each is one SQL query, docs/results-layout.md):"
echo
/usr/bin/python3 -m analysis answers "$OUT"
echo
echo "Figures and the unit atlas (python3 -m analysis; docs/analysis.md):"
/usr/bin/python3 -m analysis grid "$OUT" --layer fc8 -o "$OUT/grid_fc8.png"
/usr/bin/python3 -m analysis fgsm "$OUT" -o "$OUT/fgsm.png"
/usr/bin/python3 -m analysis invert "$OUT" -o "$OUT/invert.png"
/usr/bin/python3 -m analysis exemplars "$OUT" --layer fc8 -o "$OUT/exemplars_fc8.png"
/usr/bin/python3 -m analysis exemplars "$OUT" --layer conv3_1 --units 0-15 --bottom -o "$OUT/exemplars_conv3_1.png"
/usr/bin/python3 -m analysis atlas "$OUT" -o "$OUT/atlas"
phase analysis
echo
ABS="$(cd "$OUT" && pwd)"
echo "quickstart: index  $ABS/index.sqlite"
echo "            shards $ABS/shards/ (HDF5; docs/results-layout.md)"
echo "            class images under each setting: $ABS/grid_fc8.png"
echo "            natural exemplars: $ABS/exemplars_fc8.png, $ABS/exemplars_conv3_1.png"
echo "            FGSM and inversion figures: $ABS/fgsm.png, $ABS/invert.png"
echo "            the unit atlas (open in a browser): $ABS/atlas/index.html"
echo
echo "quickstart: time per phase"
for p in "${PHASES[@]}"; do echo "  $p"; done
echo "  $(printf '%-9s %4d s' total "$SECONDS")"
