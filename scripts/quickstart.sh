#!/usr/bin/env bash
# The main job on a fresh Debian 12 machine: install, build, and run the quickstart sweep
# (sweeps/examples/quickstart.yaml) under mpirun with 2 ranks into results/quickstart, then
# print the answers the index holds and where everything is. Running it again resumes
# (or finds everything done).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./scripts/build.sh
OUT="${OUT:-results/quickstart}"
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
mpirun -np 2 --oversubscribe ./build/runner/vizsweep run sweeps/examples/quickstart.yaml --out "$OUT"
./build/runner/vizsweep status "$OUT"
DB="$OUT/index.sqlite"
echo
echo "Activation maximization, per layer: the setting that reaches the highest mean activation,"
echo "and the one whose images carry the least high-frequency energy:"
sqlite3 -header -column "file:$DB?mode=ro" "
  SELECT layer,
         (SELECT setting FROM actmax_by_layer_setting b WHERE b.layer = a.layer ORDER BY mean_activation DESC LIMIT 1) AS highest_activation,
         (SELECT setting FROM actmax_by_layer_setting b WHERE b.layer = a.layer ORDER BY mean_hf_energy ASC LIMIT 1) AS least_hf_energy
  FROM (SELECT DISTINCT layer FROM actmax_by_layer_setting) a;"
echo
echo "FGSM success rate (images the model classified correctly whose label the attack changed):"
sqlite3 -header -column "file:$DB?mode=ro" "
  SELECT eps, steps, images, clean_correct, ROUND(success_rate, 3) AS success_rate,
         ROUND(adversarial_accuracy, 3) AS adversarial_accuracy
  FROM fgsm_success ORDER BY targeted, eps, steps;"
echo
echo "Inversion: normalized reconstruction error by layer:"
sqlite3 -header -column "file:$DB?mode=ro" "
  SELECT layer, ROUND(mean_rep_error, 4) AS rep_error FROM invert_error_by_layer;"
echo
ABS="$(cd "$OUT" && pwd)"
echo "quickstart: index  $ABS/index.sqlite"
echo "            shards $ABS/shards/ (HDF5; layout in docs/results-layout.md)"
