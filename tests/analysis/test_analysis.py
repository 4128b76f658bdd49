"""The analysis subcommands on the results of a small real sweep made here: answers checked
against independent computations from the raw index rows, figures of the expected pixel size,
the atlas loaded in headless Chromium, clear errors for bad input, and readers that never fail
while a sweep writes the index."""
import csv
import math
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import unittest

import h5py
import matplotlib.image as mpimg
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)
VIZSWEEP = os.environ.get("VIZSWEEP", os.path.join(ROOT, "build", "runner", "vizsweep"))
SMALL = os.path.join(ROOT, "tests", "runner", "small.yaml")
SLOW = os.path.join(ROOT, "tests", "runner", "slow.yaml")

from analysis import grid  # noqa: E402
from analysis.featuremaps import tile_maps  # noqa: E402
from browser import Browser  # noqa: E402


def analysis(*args):
    return subprocess.run([sys.executable, "-m", "analysis", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


class AnalysisTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="vizsweep_analysis_")
        cls.dir = os.path.join(cls.tmp, "small")
        r = subprocess.run([VIZSWEEP, "run", SMALL, "--out", cls.dir], capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr
        cls.db = sqlite3.connect(os.path.join(cls.dir, "index.sqlite"))
        # small.yaml's actmax of fc8 beside the exemplars of two layers (top and bottom 5).
        with open(SMALL) as f:
            text = f.read()
        text = text.split("invert:")[0].replace("name: small", "name: small_exemplars").replace(
            "[conv2_1, conv4_2, fc8]", "[conv2_1, fc8]")
        text += ("exemplars:\n  layers: [conv2_1, fc8]\n  units: 0-5\n  images: {dataset: fashion-mnist, split: test, count: 400}\n"
                 "  k: 5\n  bottom: true\n  batch: 100\n  images_per_task: 200\n")
        cls.ex_sweep = os.path.join(cls.tmp, "small_exemplars.yaml")
        with open(cls.ex_sweep, "w") as f:
            f.write(text)
        cls.exdir = os.path.join(cls.tmp, "small_exemplars")
        r = subprocess.run([VIZSWEEP, "run", cls.ex_sweep, "--out", cls.exdir], capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr

    @classmethod
    def tearDownClass(cls):
        cls.db.close()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def out(self, name):
        return os.path.join(self.tmp, name)

    def ok(self, *args):
        r = analysis(*args)
        self.assertEqual(r.returncode, 0, f"{args}: {r.stderr}")
        return r.stdout

    def fails(self, args, message):
        r = analysis(*args)
        self.assertEqual(r.returncode, 2, f"{args}: {r.stdout} {r.stderr}")
        self.assertIn(message, r.stderr)
        self.assertNotIn("Traceback", r.stderr)

    # --- scripts/compare_results.py -----------------------------------------------------------

    def test_compare_results_sees_one_changed_byte_or_value(self):
        compare = [sys.executable, os.path.join(ROOT, "scripts", "compare_results.py")]
        copy = self.out("compare_copy")
        shutil.copytree(self.dir, copy)
        same = subprocess.run(compare + [self.dir, copy], capture_output=True, text=True, timeout=300)
        self.assertEqual(same.returncode, 0, same.stdout + same.stderr)
        self.assertIn("same actmax_results", same.stdout)
        db = sqlite3.connect(os.path.join(copy, "index.sqlite"))
        shard, dataset = db.execute("SELECT shard, dataset FROM invert_results LIMIT 1").fetchone()
        with h5py.File(os.path.join(copy, shard), "r+") as f:
            a = np.asarray(f[dataset]).copy()
            a.flat[a.size // 2] = np.nextafter(a.flat[a.size // 2], np.float32(2)) if a.dtype.kind == "f" else a.flat[a.size // 2] ^ 1
            f[dataset][...] = a
        one_byte = subprocess.run(compare + [self.dir, copy], capture_output=True, text=True, timeout=300)
        self.assertEqual(one_byte.returncode, 1, one_byte.stdout)
        self.assertIn("DIFF invert_results", one_byte.stdout)
        self.assertIn("same actmax_results", one_byte.stdout)
        db.execute("UPDATE actmax_results SET hf_energy = hf_energy + 1e-9 WHERE rowid = 1")
        db.commit()
        db.close()
        value = subprocess.run(compare + [self.dir, copy], capture_output=True, text=True, timeout=300)
        self.assertIn("DIFF actmax_results", value.stdout)
        shutil.rmtree(copy)

    # --- best -------------------------------------------------------------------------------

    def raw_means(self, layer):
        """{setting name: (mean activation, mean hf energy, mean score)} from actmax_results
        directly, the score recomputed from its definition (no judge in this sweep)."""
        rows = self.db.execute("SELECT s.name, r.final_activation, r.hf_energy, r.robustness, r.score "
                               "FROM actmax_results r JOIN tasks t ON t.task_key = r.task_key JOIN actmax_settings s "
                               "ON s.setting_id = t.setting_id WHERE t.layer = ?", (layer,)).fetchall()
        sums = {}
        for name, act, hf, robustness, score in rows:
            self.assertAlmostEqual(score, min(max(robustness, 0), 1) * min(max(1 - hf, 0), 1), places=12)
            s = sums.setdefault(name, [0.0, 0.0, 0.0, 0])
            s[0] += act
            s[1] += hf
            s[2] += score
            s[3] += 1
        return {k: (v[0] / v[3], v[1] / v[3], v[2] / v[3]) for k, v in sums.items()}

    def table(self, stdout):
        """Rows of a `best` table: [layer, rank, setting, count, value, pareto?]."""
        return [line.split() for line in stdout.splitlines()[1:] if not line.startswith("pareto:")]

    def test_best_matches_the_raw_rows(self):
        for layer in ("conv2_1", "conv4_2", "fc8"):
            means = self.raw_means(layer)
            # by default, the interpretability score
            rows = self.table(self.ok("best", self.dir, "--layer", layer))
            self.assertEqual([r[2] for r in rows], sorted(means, key=lambda k: -means[k][2]))
            self.assertAlmostEqual(float(rows[0][4]), max(m[2] for m in means.values()), places=3)
            rows = self.table(self.ok("best", self.dir, "--layer", layer, "--metric", "activation"))
            self.assertEqual([r[2] for r in rows], sorted(means, key=lambda k: -means[k][0]))
            self.assertAlmostEqual(float(rows[0][4]), max(m[0] for m in means.values()), places=3)
            rows = self.table(self.ok("best", self.dir, "--layer", layer, "--metric", "hf_energy"))
            self.assertEqual(rows[0][2], min(means, key=lambda k: means[k][1]))
            # Pareto front computed independently: not beaten on both coordinates.
            front = {a for a in means if not any(means[b][0] >= means[a][0] and means[b][1] <= means[a][1] and
                                                 means[b] != means[a] for b in means)}
            self.assertEqual({r[2] for r in rows if r[-1] == "yes"}, front)
            only = self.table(self.ok("best", self.dir, "--layer", layer, "--pareto"))
            self.assertEqual({r[2] for r in only}, front)
        r = self.ok("best", self.dir, "--csv", self.out("best.csv"))
        with open(self.out("best.csv")) as f:
            self.assertEqual(len(f.read().splitlines()), 1 + 3 * 3)  # header + 3 layers x 3 settings

    def test_best_inversion_error_and_fgsm_success(self):
        for layer in ("relu1_1", "relu3_1"):
            want = self.db.execute("SELECT AVG(rep_error) FROM invert_results r JOIN tasks t "
                                   "ON t.task_key = r.task_key WHERE t.layer = ?", (layer,)).fetchone()[0]
            rows = self.table(self.ok("best", self.dir, "--metric", "inversion_error", "--layer", layer))
            self.assertEqual(len(rows), 1)
            self.assertAlmostEqual(float(rows[0][4]), want, places=4)
        raw = {}
        for name, true, clean, final in self.db.execute(
                "SELECT s.name, r.true_label, r.clean_pred, r.final_pred FROM fgsm_results r JOIN tasks t "
                "ON t.task_key = r.task_key JOIN fgsm_settings s ON s.setting_id = t.setting_id"):
            if clean == true:
                c = raw.setdefault(name, [0, 0])
                c[0] += final != true
                c[1] += 1
        rows = self.table(self.ok("best", self.dir, "--metric", "fgsm_success"))
        self.assertEqual(len(rows), 4)
        got = {r[2]: float(r[4]) for r in rows}
        for name, (fooled, n) in raw.items():
            self.assertAlmostEqual(got[name], fooled / n, places=4)
        self.assertEqual([float(r[4]) for r in rows], sorted(got.values(), reverse=True))

    def test_an_index_before_the_score_ranks_by_activation(self):
        """An index written before schema 1.4 (the committed 1.1 fixture, read as it is): best
        offers only the metrics its columns hold and ranks by activation by default."""
        d = self.out("before_score")
        shutil.copytree(os.path.join(ROOT, "tests", "fixtures", "small-1.1"), d)
        out = self.ok("best", d, "--layer", "fc8")
        self.assertIn("activation", out.splitlines()[0])
        self.fails(("best", d, "--metric", "score"), "unknown metric 'score' (have activation, hf_energy")

    def test_metrics_are_what_the_index_declares(self):
        """The index carries its metrics (the `metrics` table, declared once in
        results_schema.sql): best ranks by any metric the index declares, a new one included,
        and a declaration that would splice something else into SQL is refused."""
        declared = [r[0] for r in self.db.execute("SELECT name FROM metrics ORDER BY rowid")]
        self.assertEqual(declared, ["score", "judge_prob", "mis", "activation_ratio", "activation", "hf_energy",
                                    "total_variation", "saturation",
                                    "robustness", "argmax_rate", "inversion_error", "fgsm_success"])
        d = self.out("metrics_copy")
        shutil.copytree(self.dir, d)
        db = sqlite3.connect(os.path.join(d, "index.sqlite"))
        db.execute("INSERT INTO metrics VALUES ('tv_again', 'actmax', 'actmax_results', 'total_variation', 'mean', 0, "
                   "'per pixel', 'total variation, declared by this index only')")
        db.commit()
        db.close()
        for layer in ("conv2_1", "fc8"):
            new = self.table(self.ok("best", d, "--layer", layer, "--metric", "tv_again"))
            old = self.table(self.ok("best", d, "--layer", layer, "--metric", "total_variation"))
            self.assertEqual([r[2:5] for r in new], [r[2:5] for r in old])
            self.assertEqual(len(new), 3)
        self.assertIn("tv_again", self.ok("grid", d, "-o", self.out("tv.png"), "--metric", "tv_again"))
        db = sqlite3.connect(os.path.join(d, "index.sqlite"))
        db.execute("UPDATE metrics SET column_name = 'unit) FROM tasks; --' WHERE name = 'tv_again'")
        db.commit()
        db.close()
        self.fails(("best", d, "--metric", "activation"), "declares metric 'tv_again' oddly")
        db = sqlite3.connect(os.path.join(d, "index.sqlite"))
        db.execute("UPDATE metrics SET result_table = 'classes', column_name = 'name' WHERE name = 'tv_again'")
        db.commit()
        db.close()
        self.fails(("best", d, "--metric", "activation"), "reads table classes, which is not a result table")

    # --- figures ----------------------------------------------------------------------------

    def grid_layout(self, rows, cols, tile, row_labels):
        return grid.layout(rows, cols, tile, grid.left_band([grid.row_lines(r) for r in row_labels]))

    def test_grid_tiles_are_the_images_enlarged_with_labels_outside(self):
        out = self.out("grid.png")
        stdout = self.ok("grid", self.dir, "-o", out, "--layer", "conv4_2", "--first", "5", "--tile", "64")
        self.assertIn("3 settings x 5 units", stdout)
        settings = [n for (n,) in self.db.execute("SELECT name FROM actmax_settings ORDER BY setting_id")]
        width, height, box = self.grid_layout(3, 5, 64, settings)
        png = np.round(mpimg.imread(out)[..., :3] * 255).astype(np.uint8)
        self.assertEqual(png.shape[:2], (height, width))
        # Every tile is its shard image (32 px, gray) enlarged 2x by nearest neighbour, on the
        # one 0-255 scale: equal pixel for pixel, so no label is drawn over an image and no
        # tile is stretched on its own.
        rows = self.db.execute(
            "SELECT s.setting_id, r.unit, r.shard, r.dataset FROM actmax_results r JOIN tasks t ON t.task_key = r.task_key "
            "JOIN actmax_settings s ON s.setting_id = t.setting_id WHERE t.layer = 'conv4_2' AND r.unit < 5").fetchall()
        self.assertEqual(len(rows), 15)
        for sid, unit, shard, ds in rows:
            with h5py.File(os.path.join(self.dir, shard), "r") as f:
                img = f[ds][()]
            want = np.kron(img, np.ones((2, 2), dtype=np.uint8))
            x0, y0 = box(sid, unit)
            tile = png[y0:y0 + 64, x0:x0 + 64]
            for ch in range(3):
                np.testing.assert_array_equal(tile[..., ch], want, f"setting {sid} unit {unit}")
        # The labels are there, outside: dark text in the band above the first row and in the
        # strip under each tile.
        _, y0 = box(0, 0)
        self.assertLess(png[:y0].min(), 100, "column labels above the tiles")
        self.assertLess(png[y0 + 64:y0 + 64 + grid.VALUE].min(), 100, "values under the tiles")

    def test_answers_are_the_views_rows(self):
        # The FGSM answer against the view it reads; an answer whose technique the sweep lacks
        # says so; --markdown gives tables; an unknown answer is an error naming it.
        out = self.ok("answers", self.dir, "--only", "fgsm_success")
        want = self.db.execute("SELECT COUNT(*) FROM fgsm_success").fetchone()[0]
        lines = out.strip().splitlines()
        self.assertEqual(lines[1].split(), ["eps", "steps", "images", "clean_correct", "success_rate",
                                            "adversarial_accuracy"])
        self.assertEqual(len(lines) - 3, want)  # title, header, rule, one line per row
        self.assertIn("(no results)", self.ok("answers", self.dir, "--only", "exemplars_of_a_unit"))
        md = self.ok("answers", self.dir, "--only", "best_settings", "--markdown")
        self.assertIn("| layer | best_score | highest_activation | least_hf_energy |", md)
        self.assertEqual(md.count("\n| conv"), 2)  # conv2_1 and conv4_2
        self.fails(("answers", self.dir, "--only", "everything"), "--only: no answer named 'everything'")

    def test_grid_selects_a_setting_by_its_exact_name_commas_and_all(self):
        # A preset with changed values is named preset+key=value,key=value: the commas belong to
        # the name, and --setting must select it as the index holds it.
        sweep = self.out("commas.yaml")
        with open(sweep, "w") as f:
            f.write("name: commas\n"
                    "model: {builtin: vgg11, width: 0.0625, in_channels: 1, num_classes: 10, fc_width: 32, "
                    "pool: 1, input_size: 32, seed: 1}\nthreads: 1\n"
                    "actmax:\n  layers: [fc8]\n  units: 0-3\n"
                    "  presets: [{unregularized: {iterations: 5}},\n"
                    "            {unregularized: {iterations: 5, blur_radius: 0.5, blur_every: 2}}]\n")
        d = self.out("commas")
        r = subprocess.run([VIZSWEEP, "run", sweep, "--out", d], capture_output=True, text=True, timeout=600)
        self.assertEqual(r.returncode, 0, r.stderr)
        db = sqlite3.connect(os.path.join(d, "index.sqlite"))
        names = [n for (n,) in db.execute("SELECT name FROM actmax_settings ORDER BY setting_id")]
        db.close()
        plain, changed = "unregularized+iterations=5", "unregularized+iterations=5,blur_radius=0.5,blur_every=2"
        self.assertEqual(names, [plain, changed])
        stdout = self.ok("grid", d, "-o", self.out("commas.png"), "--setting", changed)
        self.assertIn("1 settings x 4 units", stdout)
        stdout = self.ok("grid", d, "-o", self.out("commas.png"), "--setting", changed, "--setting", plain)
        self.assertIn("2 settings x 4 units", stdout)
        # a value that is no setting's name still reads as a comma-separated list of names
        stdout = self.ok("grid", d, "-o", self.out("commas.png"), "--setting", f"{plain},{plain}")
        self.assertIn("1 settings x 4 units", stdout)
        self.fails(("grid", d, "-o", self.out("x.png"), "--setting", "unregularized+iterations=5,blur_radius=0.5"),
                   "no setting named 'unregularized+iterations=5,blur_radius=0.5'")

    def test_grid_paginates_and_takes_any_two_dimensions(self):
        out = self.out("pages.png")
        stdout = self.ok("grid", self.dir, "-o", out, "--layer", "conv2_1", "--max-cols", "4", "--tile", "32")
        self.assertIn("3 settings x 6 units", stdout)
        settings = [n for (n,) in self.db.execute("SELECT name FROM actmax_settings ORDER BY setting_id")]
        w4, h4, _ = self.grid_layout(3, 4, 32, settings)
        w2, h2, _ = self.grid_layout(3, 2, 32, settings)
        self.assertEqual(mpimg.imread(self.out("pages-p1.png")).shape[:2], (h4, w4))
        self.assertEqual(mpimg.imread(self.out("pages-p2.png")).shape[:2], (h2, w2))
        self.assertFalse(os.path.exists(out))
        out = self.out("layers.png")
        stdout = self.ok("grid", self.dir, "-o", out, "--rows", "layer", "--cols", "setting", "--units", "3",
                         "--tile", "40")
        self.assertIn("3 layers x 3 settings", stdout)
        w, h, _ = self.grid_layout(3, 3, 40, ["conv2_1", "conv4_2", "fc8"])
        self.assertEqual(mpimg.imread(out).shape[:2], (h, w))

    def test_fgsm_figure(self):
        out = self.out("fgsm.png")
        stdout = self.ok("fgsm", self.dir, "-o", out, "--examples", "2")
        # the default examples come from the strongest setting: eps 0.05, 5 steps
        fooled = self.db.execute(
            "SELECT COUNT(*) FROM fgsm_results r JOIN tasks t ON t.task_key = r.task_key JOIN fgsm_settings s "
            "ON s.setting_id = t.setting_id WHERE s.eps = 0.05 AND s.steps = 5 AND r.success = 1 "
            "AND r.clean_pred = r.true_label").fetchone()[0]
        n = min(2, fooled)
        self.assertIn(f"4 settings, {n} example triplets under eps0.05-steps5", stdout)
        img = mpimg.imread(out)
        self.assertEqual(img.shape[:2], (340 + 210, 1100))
        # the per-step probabilities it plots: from the index, adversarial = the final prediction
        steps = self.db.execute("SELECT COUNT(*), SUM(final_prob IS NULL) FROM fgsm_steps").fetchone()
        self.assertEqual(steps[1], 0)
        last = self.db.execute("SELECT COUNT(*) FROM fgsm_steps st JOIN fgsm_results r USING (task_key, image_id) "
                               "JOIN tasks t USING (task_key) JOIN fgsm_settings s ON s.setting_id = t.setting_id "
                               "WHERE st.step = s.steps AND abs(st.final_prob - st.pred_prob) > 1e-6").fetchone()[0]
        self.assertEqual(last, 0, "at the last step the final prediction's probability is pred_prob")

    def test_robust_table_and_figure(self):
        """robust: per eps the ensemble's robust accuracy is the index's (an image robust only
        when no attack there changed its label), no attack's figure is below it, and each
        marginal gain counts the images only that attack broke."""
        out, csv_path = self.out("robust.png"), self.out("robust.csv")
        stdout = self.ok("robust", self.dir, "-o", out, "--csv", csv_path)
        self.assertIn("linf: robust accuracy", stdout)
        with open(csv_path) as f:
            rows = list(csv.DictReader(f))
        ensemble = {float(r["eps"]): float(r["robust_accuracy"]) for r in rows if r["attack"] == "ensemble"}
        self.assertEqual(sorted(ensemble), [0.01, 0.05])
        flags = {}
        for eps, image, label, ok, final in self.db.execute(
                "SELECT s.eps, r.image_id, r.true_label, r.clean_pred = r.true_label, r.final_pred FROM fgsm_results r "
                "JOIN tasks t ON t.task_key = r.task_key JOIN fgsm_settings s ON s.setting_id = t.setting_id"):
            flags[(eps, image)] = flags.get((eps, image), True) and bool(ok) and final == label
        for eps, acc in ensemble.items():
            mine = [v for (e, _), v in flags.items() if e == eps]
            self.assertAlmostEqual(acc, sum(mine) / len(mine), places=9)
        for r in rows:
            if r["attack"] != "ensemble":
                self.assertGreaterEqual(float(r["robust_accuracy"]), ensemble[float(r["eps"])], r)
        # Marginal gain of the 5-step attack at eps 0.05: broken by it, by no other at that eps.
        broken = {}
        for steps, image, survived in self.db.execute(
                "SELECT s.steps, r.image_id, r.clean_pred = r.true_label AND r.final_pred = r.true_label FROM fgsm_results r "
                "JOIN tasks t ON t.task_key = r.task_key JOIN fgsm_settings s ON s.setting_id = t.setting_id "
                "WHERE s.eps = 0.05 AND r.clean_pred = r.true_label"):
            broken.setdefault(steps, set()).update([] if survived else [image])
        want = len(broken.get(5, set()) - broken.get(1, set()))
        got = next(int(r["marginal"]) for r in rows if r["attack"] == "fgsm 5 steps" and float(r["eps"]) == 0.05)
        self.assertEqual(got, want)
        self.assertEqual(mpimg.imread(out).shape[:2], (462, 660))  # 6 x 4.2 in at 110 dpi
        # An index written before the attacks (schema 1.1, read as it is) is a clear error.
        d = self.out("before_attacks")
        shutil.copytree(os.path.join(ROOT, "tests", "fixtures", "small-1.1"), d)
        self.fails(("robust", d), "predates schema 1.8")

    def test_invert_figure(self):
        out = self.out("invert.png")
        stdout = self.ok("invert", self.dir, "-o", out, "--tile", "64")
        self.assertIn("3 images x 2 layers", stdout)
        self.assertEqual(mpimg.imread(out).shape[:2], (3 * (64 + 14), 3 * 64))

    def test_featuremaps_figure_and_tiling(self):
        out = self.out("fm.png")
        stdout = self.ok("featuremaps", self.dir, "-o", out, "--layer", "conv3_1", "--image", "1")
        self.assertIn("conv3_1 of image 1, 16 maps [16x8x8]", stdout)
        self.assertGreater(os.path.getsize(out), 1000)
        maps = np.arange(5 * 3 * 2, dtype=np.float64).reshape(5, 3, 2)
        m = tile_maps(maps)  # 5 maps -> 3 columns, 2 rows, 1-px gaps
        self.assertEqual(m.shape, (2 * 4 - 1, 3 * 3 - 1))
        np.testing.assert_allclose(m[4:7, 3:5], (maps[4] - 0) / 29)  # map 4: row 1, column 1
        self.assertTrue(np.all(m[3, :] == 1.0))
        np.testing.assert_allclose(tile_maps(maps, per_map=True)[0:3, 0:2], (maps[0] - 0) / 5)

    def test_atlas_loads_in_chromium(self):
        site = self.out("atlas")
        stdout = self.ok("atlas", self.dir, "-o", site)
        self.assertIn("3 layers, 22 pages, 54 images", stdout)  # index + 3 layers + 18 units; 18 x 3 images
        expected = {"index.html": 0}
        for layer in ("conv2_1", "conv4_2", "fc8"):
            expected[f"layer-{layer}.html"] = 6
            for u in range(6):
                expected[f"unit-{layer}-{u}.html"] = 3
        self.assertEqual(sorted(f for f in os.listdir(site) if f.endswith(".html")), sorted(expected))
        with Browser() as b:
            for name, n in expected.items():
                got = b.check(os.path.join(site, name))
                self.assertEqual(got["errors"], [], name)
                self.assertEqual((got["total"], got["loaded"]), (n, n), name)
            # the check can fail: a page with a missing image and a script error
            broken = os.path.join(site, "broken.html")
            with open(os.path.join(site, "unit-fc8-0.html")) as f:
                text = f.read().replace("0-s0.png", "0-s9.png")
            with open(broken, "w") as f:
                f.write(text.replace("</body>", "<script>console.error('boom')</script></body>"))
            got = b.check(broken)
            self.assertEqual((got["total"], got["loaded"]), (3, 2))
            self.assertEqual(len(got["errors"]), 2, got["errors"])
        with open(os.path.join(site, "layer-fc8.html")) as f:
            text = f.read()
        best = self.table(self.ok("best", self.dir, "--layer", "fc8"))[0][2]
        self.assertIn(f"by score (higher is better): <b>{best}</b>", text)

    # --- exemplars ---------------------------------------------------------------------------

    def test_exemplar_crops_are_the_receptive_fields_of_the_stored_images(self):
        from analysis import exemplars as ex
        from analysis.index import Shards
        db = sqlite3.connect(os.path.join(self.exdir, "index.sqlite"))
        self.assertEqual(ex.exemplar_layers(db), ["conv2_1", "fc8"])
        lists = ex.lists(db, "conv2_1")
        self.assertEqual(sorted(lists), list(range(6)))  # units 0-5 of small.yaml's actmax and exemplars alike
        with Shards(self.exdir) as shards:
            for unit, kinds in lists.items():
                self.assertEqual([len(kinds["top"]), len(kinds["bottom"])], [5, 5])
                acts = [r[3] for r in kinds["top"]]
                self.assertEqual(acts, sorted(acts, reverse=True))
                self.assertGreaterEqual(min(acts), max(r[3] for r in kinds["bottom"]))
                for row in kinds["top"][:2]:
                    image = shards.read(row[10], row[11])
                    y0, y1, x0, x1 = row[6:10]
                    # conv2_1 of a VGG11 sees 8 x 8 pixels (3x3 conv, 2x2 pool, 3x3 conv), fewer at a border
                    self.assertLessEqual(y1 - y0, 8)
                    self.assertTrue(y0 <= row[4] * 2 < y1 and x0 <= row[5] * 2 < x1, row)
                    c = ex.crop(shards, row)
                    self.assertEqual(c.shape[:2], (10, 10))  # widened to MIN_CROP, 10 px
                    self.assertTrue(any(np.array_equal(c[dy:dy + y1 - y0, dx:dx + x1 - x0], image[y0:y1, x0:x1])
                                        for dy in range(11 - (y1 - y0)) for dx in range(11 - (x1 - x0))), row)
        db.close()

    def test_exemplars_figure(self):
        path = self.out("ex.png")
        stdout = self.ok("exemplars", self.exdir, "-o", path, "--layer", "conv2_1", "--bottom")
        self.assertIn("6 units of conv2_1 x 10 exemplars", stdout)
        img = mpimg.imread(path)
        self.assertGreater(img.shape[0], 6 * 96)  # six rows of 96-pixel tiles and labels
        self.ok("exemplars", self.exdir, "-o", self.out("ex-fc8.png"))
        self.fails(("exemplars", self.dir, "-o", path), "the index holds no exemplars (no exemplars section in the sweep)")
        self.fails(("exemplars", self.exdir, "-o", path, "--layer", "conv4_2"),
                   "--layer: no exemplars for layer 'conv4_2' (have conv2_1, fc8)")
        self.fails(("exemplars", self.exdir, "-o", path, "--units", "50-60"), "--units: none of 50-60 has exemplars in fc8")

    def test_atlas_shows_exemplars_beside_every_setting(self):
        site = self.out("atlas-ex")
        stdout = self.ok("atlas", self.exdir, "-o", site)
        # 2 layers x 6 units x (5 top + 5 bottom) crops
        self.assertIn("2 layers, 15 pages, 36 images, 120 exemplar crops", stdout)
        with Browser() as b:
            for layer in ("conv2_1", "fc8"):
                # 6 units: the best image and 3 exemplars each
                got = b.check(os.path.join(site, f"layer-{layer}.html"))
                self.assertEqual(got["errors"], [], layer)
                self.assertEqual((got["total"], got["loaded"]), (24, 24), layer)
                # a unit: 5 top + 5 bottom, then each of 3 settings with its 3 top exemplars beside it
                got = b.check(os.path.join(site, f"unit-{layer}-2.html"))
                self.assertEqual(got["errors"], [], layer)
                self.assertEqual((got["total"], got["loaded"]), (10 + 3 * 4, 10 + 3 * 4), layer)
        with open(os.path.join(site, "unit-fc8-2.html")) as f:
            text = f.read()
        self.assertIn("natural exemplars", text)
        self.assertIn("fashion-mnist/test#", text)  # each crop names its image

    # --- bad input ---------------------------------------------------------------------------

    def test_bad_input_is_a_clear_error(self):
        self.fails(("best", self.tmp), "no index.sqlite here")
        self.fails(("best", self.out("nowhere")), "no such directory")
        self.fails(("best", self.dir, "--layer", "conv9_9"),
                   "no activation-maximization results for layer 'conv9_9' (have conv2_1, conv4_2, fc8)")
        self.fails(("best", self.dir, "--metric", "beauty"), "unknown metric 'beauty'")
        self.fails(("best", self.dir, "--metric", "inversion_error", "--layer", "conv2_1"),
                   "no inversion results for layer 'conv2_1' (have relu1_1, relu3_1)")
        self.fails(("grid", self.dir, "-o", self.out("x.png"), "--setting", "nope"), "no setting named 'nope'")
        self.fails(("grid", self.dir, "-o", self.out("x.png"), "--units", "5-2"), "runs backwards")
        self.fails(("grid", self.dir, "-o", self.out("x.png"), "--rows", "unit", "--cols", "unit"),
                   "--rows and --cols")
        self.fails(("grid", self.dir, "-o", self.out("x.png"), "--units", "90-99"), "with these filters")
        self.fails(("invert", self.dir, "-o", self.out("x.png"), "--setting", "nope"), "no inversion setting")
        self.fails(("featuremaps", self.dir, "-o", self.out("x.png"), "--layer", "fc8"),
                   "no feature maps for layer 'fc8'")
        self.fails(("atlas", self.dir, "-o", self.out("x"), "--metric", "fgsm_success"),
                   "unknown metric 'fgsm_success' for actmax (have score, judge_prob, mis, activation_ratio, activation")
        r = analysis("grid", self.dir)
        self.assertEqual(r.returncode, 2)
        self.assertIn("-o/--output", r.stderr)
        # not an index: a file of garbage under the right name
        junk = self.out("junk")
        os.makedirs(junk, exist_ok=True)
        with open(os.path.join(junk, "index.sqlite"), "wb") as f:
            f.write(b"this is not sqlite" * 100)
        self.fails(("best", junk), "not a vizsweep index")

    def test_an_empty_sweep_is_a_clear_error(self):
        empty = self.out("empty")
        os.makedirs(empty, exist_ok=True)
        db = sqlite3.connect(os.path.join(empty, "index.sqlite"))
        db.executescript(subprocess.run([VIZSWEEP, "schema"], check=True, capture_output=True, text=True).stdout)
        db.close()
        self.fails(("best", empty), "the index holds no activation-maximization results (none in the sweep)")
        self.fails(("fgsm", empty, "-o", self.out("x.png")), "the index holds no FGSM results")
        self.fails(("invert", empty, "-o", self.out("x.png")), "no inversion results")
        self.fails(("featuremaps", empty, "-o", self.out("x.png")), "no feature-map results")
        self.fails(("atlas", empty, "-o", self.out("x")), "no activation-maximization results")

    def test_every_subcommand_has_help(self):
        for cmd in ("best", "grid", "fgsm", "invert", "featuremaps", "atlas", "exemplars"):
            self.assertIn("results_dir", self.ok(cmd, "--help"), cmd)


class ReadersWhileWritingTest(unittest.TestCase):
    """The analysis scripts query the index throughout a running sweep and never fail: each call
    succeeds or says that no results are there yet; never "database is locked"."""

    def test_readers_during_a_run(self):
        tmp = tempfile.mkdtemp(prefix="vizsweep_readers_")
        try:
            out = os.path.join(tmp, "slow")
            sweep = os.path.join(tmp, "slow.yaml")  # tests/runner/slow.yaml, 5x longer
            with open(SLOW) as f, open(sweep, "w") as g:
                g.write(f.read().replace("iterations: 40", "iterations: 200"))
            log = open(os.path.join(tmp, "run.log"), "w+")
            run = subprocess.Popen([VIZSWEEP, "run", sweep, "--out", out], stdout=log, stderr=subprocess.STDOUT)
            calls, successes, during = 0, 0, 0
            while not os.path.exists(os.path.join(out, "index.sqlite")) and run.poll() is None:
                time.sleep(0.05)
            while run.poll() is None or calls < 3:
                running = run.poll() is None
                for args in (("best", out), ("best", out, "--metric", "fgsm_success"),
                             ("grid", out, "-o", os.path.join(tmp, "g.png"), "--layer", "conv3_1", "--first", "4")):
                    r = analysis(*args)
                    calls += 1
                    self.assertNotIn("locked", r.stderr)
                    self.assertNotIn("Traceback", r.stderr)
                    if r.returncode == 0:
                        successes += 1
                        during += running and run.poll() is None
                    else:
                        self.assertEqual(r.returncode, 2, r.stderr)
                        self.assertRegex(r.stderr, "no .* results")
            log.seek(0)
            self.assertEqual(run.wait(), 0, log.read())
            log.close()
            self.assertGreater(during, 0, "at least one query answered while the sweep was running")
            print(f"{calls} queries while the sweep ran: {successes} answered, {during} of them mid-run")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    unittest.main(verbosity=2)
