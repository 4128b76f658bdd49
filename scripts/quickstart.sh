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
echo "Activation maximization, per layer: the setting with the best interpretability score (the"
echo "judge's probability of the class for fc8; elsewhere the machine interpretability against"
echo "the natural exemplars; docs/results-layout.md), the highest mean activation, and the least"
echo "high-frequency energy:"
sqlite3 -header -column "file:$DB?mode=ro" "
  SELECT layer,
         (SELECT setting FROM actmax_by_layer_setting b WHERE b.layer = a.layer ORDER BY mean_score DESC LIMIT 1) AS best_score,
         (SELECT setting FROM actmax_by_layer_setting b WHERE b.layer = a.layer ORDER BY mean_activation DESC LIMIT 1) AS highest_activation,
         (SELECT setting FROM actmax_by_layer_setting b WHERE b.layer = a.layer ORDER BY mean_hf_energy ASC LIMIT 1) AS least_hf_energy
  FROM (SELECT DISTINCT layer FROM actmax_by_layer_setting) a;"
echo
echo "Class images (fc8), per setting: how many the model itself puts first (its argmax), how"
echo "many the independent judge (models/fashion_judge.pt) recognizes, the judge's mean"
echo "probability of the class, and the classes the judge does not see:"
sqlite3 -header -column "file:$DB?mode=ro" "
  SELECT s.name AS setting, SUM(r.is_argmax) || '/' || COUNT(*) AS model_argmax,
         SUM(r.judge_class = r.unit) || '/' || COUNT(*) AS judge_recognizes,
         ROUND(AVG(r.judge_prob), 3) AS judge_prob, ROUND(AVG(r.hf_energy), 3) AS hf_energy,
         COALESCE(GROUP_CONCAT(CASE WHEN r.judge_class <> r.unit THEN c.name END, ', '), '') AS judge_misses
  FROM actmax_results r JOIN tasks t ON t.task_key = r.task_key AND t.layer = 'fc8' AND t.state = 'done'
  JOIN actmax_settings s ON s.setting_id = t.setting_id LEFT JOIN classes c ON c.class_id = r.unit
  GROUP BY s.setting_id ORDER BY AVG(r.score) DESC;"
echo
echo "Natural exemplars: the 10,000 test images scanned once for all 442 units (top-9 and bottom-9"
echo "each). Machine interpretability (mis: how often the image is nearer a unit's top than its"
echo "bottom exemplars in the judge's feature space, 0.5 = chance; docs/results-layout.md) and"
echo "the image's activation over its top exemplar's, per layer, best setting by mis first:"
sqlite3 -header -column "file:$DB?mode=ro" "
  SELECT layer, setting, ROUND(mean_mis, 3) AS mis, ROUND(mean_activation_ratio, 2) AS activation_ratio
  FROM actmax_by_layer_setting WHERE mean_mis IS NOT NULL ORDER BY layer, mean_mis DESC;"
echo
echo "Class units: the settings ranked by the judge and by mis (do they agree?):"
sqlite3 -header -column "file:$DB?mode=ro" "
  SELECT setting, ROUND(mean_judge_prob, 3) AS judge_prob, RANK() OVER (ORDER BY mean_judge_prob DESC) AS judge_rank,
         ROUND(mean_mis, 3) AS mis, RANK() OVER (ORDER BY mean_mis DESC) AS mis_rank
  FROM actmax_by_layer_setting WHERE layer = 'fc8' ORDER BY judge_rank;"
echo
echo "FGSM success rate (images the model classified correctly whose label the attack changed):"
sqlite3 -header -column "file:$DB?mode=ro" "
  SELECT eps, steps, images, clean_correct, ROUND(success_rate, 3) AS success_rate,
         ROUND(adversarial_accuracy, 3) AS adversarial_accuracy
  FROM fgsm_success ORDER BY targeted, eps, steps;"
echo
echo "One iterative FGSM attack (eps 0.1, 10 steps), step by step:"
sqlite3 -header -column "file:$DB?mode=ro" "
  WITH a AS (SELECT r.task_key, r.image_id FROM fgsm_results r JOIN tasks t ON t.task_key = r.task_key
             JOIN fgsm_settings s ON s.setting_id = t.setting_id
             WHERE s.eps = 0.1 AND s.steps = 10 AND s.targeted = 0 AND r.success = 1 ORDER BY r.image_id LIMIT 1)
  SELECT st.step, cp.name AS predicted, ROUND(st.pred_prob, 2) AS its_probability, ct.name AS true_class,
         ROUND(st.label_prob, 2) AS true_probability
  FROM fgsm_steps st JOIN a ON a.task_key = st.task_key AND a.image_id = st.image_id
  JOIN fgsm_results r ON r.task_key = st.task_key AND r.image_id = st.image_id
  LEFT JOIN classes cp ON cp.class_id = st.pred LEFT JOIN classes ct ON ct.class_id = r.true_label
  ORDER BY st.step;"
echo
echo "Inversion: normalized reconstruction error by layer:"
sqlite3 -header -column "file:$DB?mode=ro" "
  SELECT layer, ROUND(mean_rep_error, 4) AS rep_error FROM invert_error_by_layer;"
echo
echo "Figures and the unit atlas (python3 -m analysis; see the README):"
/usr/bin/python3 -m analysis grid "$OUT" --layer fc8 -o "$OUT/grid_fc8.png"
/usr/bin/python3 -m analysis fgsm "$OUT" -o "$OUT/fgsm.png"
/usr/bin/python3 -m analysis invert "$OUT" -o "$OUT/invert.png"
/usr/bin/python3 -m analysis exemplars "$OUT" --layer fc8 -o "$OUT/exemplars_fc8.png"
/usr/bin/python3 -m analysis exemplars "$OUT" --layer conv3_1 --units 0-15 --bottom -o "$OUT/exemplars_conv3_1.png"
/usr/bin/python3 -m analysis atlas "$OUT" -o "$OUT/atlas"
echo
ABS="$(cd "$OUT" && pwd)"
echo "quickstart: index  $ABS/index.sqlite"
echo "            shards $ABS/shards/ (HDF5; layout in docs/results-layout.md)"
echo "            class images under each setting: $ABS/grid_fc8.png"
echo "            natural exemplars: $ABS/exemplars_fc8.png, $ABS/exemplars_conv3_1.png"
echo "            FGSM and inversion figures: $ABS/fgsm.png, $ABS/invert.png"
echo "            the unit atlas (open in a browser): $ABS/atlas/index.html"
