"""analysis best / grid on the results of a small real sweep made here, checked against an
independent computation from the raw index rows; bad input gives clear errors."""
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import unittest

import matplotlib.image as mpimg

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
VIZSWEEP = os.environ.get("VIZSWEEP", os.path.join(ROOT, "build", "runner", "vizsweep"))
SMALL = os.path.join(ROOT, "tests", "runner", "small.yaml")


def analysis(*args):
    return subprocess.run([sys.executable, "-m", "analysis", *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


class AnalysisTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="vizsweep_analysis_")
        cls.dir = os.path.join(cls.tmp, "small")
        r = subprocess.run([VIZSWEEP, "run", SMALL, "--out", cls.dir], capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def raw_best(self, layer, higher=True):
        """The best setting by mean final activation, computed from actmax_results directly."""
        db = sqlite3.connect(os.path.join(self.dir, "index.sqlite"))
        rows = db.execute("SELECT t.setting_id, r.final_activation, r.hf_energy FROM actmax_results r "
                          "JOIN tasks t ON t.task_key = r.task_key WHERE t.layer = ?", (layer,)).fetchall()
        names = dict(db.execute("SELECT setting_id, name FROM actmax_settings").fetchall())
        sums = {}
        for sid, act, hf in rows:
            s = sums.setdefault(sid, [0.0, 0.0, 0])
            s[0] += act
            s[1] += hf
            s[2] += 1
        by_act = max(sums, key=lambda k: sums[k][0] / sums[k][2])
        by_hf = min(sums, key=lambda k: sums[k][1] / sums[k][2])
        return names[by_act], names[by_hf]

    def test_best_matches_the_raw_rows(self):
        for layer in ("conv2_1", "conv4_2", "fc8"):
            want_act, want_hf = self.raw_best(layer)
            r = analysis("best", self.dir, "--layer", layer)
            self.assertEqual(r.returncode, 0, r.stderr)
            first = r.stdout.splitlines()[1].split()
            self.assertEqual((first[0], first[1], first[2]), (layer, "1", want_act))
            r = analysis("best", self.dir, "--layer", layer, "--metric", "hf_energy")
            self.assertEqual(r.stdout.splitlines()[1].split()[2], want_hf)
        csv_path = os.path.join(self.tmp, "best.csv")
        r = analysis("best", self.dir, "--csv", csv_path)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(csv_path) as f:
            self.assertEqual(len(f.read().splitlines()), 1 + 3 * 3)  # header + 3 layers x 3 settings

    def test_grid_has_one_tile_per_setting_and_unit(self):
        out = os.path.join(self.tmp, "grid.png")
        r = analysis("grid", self.dir, "-o", out, "--layer", "conv4_2", "--units", "5", "--tile", "64")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("3 settings x 5 units", r.stdout)
        img = mpimg.imread(out)
        self.assertEqual(img.shape[:2], (3 * 64, 5 * 64))
        self.assertGreater(img[..., :3].std(), 0.05, "the tiles hold images, not a blank canvas")

    def test_bad_input_is_a_clear_error(self):
        r = analysis("best", self.tmp)
        self.assertEqual(r.returncode, 2)
        self.assertIn("no index.sqlite here", r.stderr)
        r = analysis("best", self.dir, "--layer", "conv9_9")
        self.assertEqual(r.returncode, 2)
        self.assertIn("no activation-maximization results for layer 'conv9_9' (have conv2_1, conv4_2, fc8)", r.stderr)
        r = analysis("best", self.dir, "--metric", "beauty")
        self.assertEqual(r.returncode, 2)
        self.assertIn("unknown metric 'beauty'", r.stderr)
        r = analysis("grid", self.dir)
        self.assertEqual(r.returncode, 2)
        self.assertIn("-o/--output", r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
