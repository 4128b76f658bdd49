"""A search (actmax.search, asynchronous successive halving) killed at random points: SIGKILL of a
worker rank, of the coordinator (rank 0) and of mpirun, four times per seed over three seeds,
each time resumed by the same `vizsweep run` until it completes; both layers are scored against
natural exemplars, so the trials wait for the scan and are scored as they complete. Afterwards: every decision the
index records is the rule's over the order the trials completed in (none lost, none made twice),
the tasks are exactly the first rung and the rungs promoted to, each once and done, `verify` is
clean, and each layer's choice is the one the rule makes over that order (what an uninterrupted
run with the same completion order would choose).

Run by ctest with Debian's /usr/bin/python3 in the plain pass (label long); VIZSWEEP is the
binary's path."""
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from test_faults import wait_gone, wait_ranks  # noqa: E402
from test_runner import ENV, SEARCH, VIZSWEEP, index_rows, mpirun, run, search_decisions, seconds_per_iteration  # noqa: E402

SEEDS = (5, 17, 29)
KILLS_PER_SEED = 4


def trials_done(d):
    try:
        return index_rows(d, "SELECT COUNT(*) FROM search_trials")[0][0]
    except Exception:  # not created yet, or being written
        return 0


class SearchFaultTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="vizsweep_search_faults_")
        with open(SEARCH) as f:
            text = f.read()
        # Trials long enough to be killed amid the search on any CPU kind: the first rung's
        # iterations from a rate measured here (a one-rung search), for about 0.3 s a trial.
        calibration = re.sub(r"min_iterations: \d+, max_iterations: \d+", "min_iterations: 20, max_iterations: 20", text)
        calibration = calibration.replace("name: search", "name: search_calibration")
        per_iteration = seconds_per_iteration(calibration, cls.tmp, 20)
        first = max(10, int(0.3 / per_iteration))
        text = re.sub(r"min_iterations: \d+, max_iterations: \d+", f"min_iterations: {first}, max_iterations: {4 * first}", text)
        text = text.replace("name: search", "name: search_faults")
        # Both layers scored against natural exemplars (the judge's features): the trials wait for
        # the scan and carry the final score when they complete.
        judge = os.path.join(HERE, "..", "..", "models", "fashion_judge.pt")
        text += ("exemplars:\n  layers: [conv2_1, fc8]\n  images: {dataset: fashion-mnist, split: test, count: 400}\n"
                 f"  k: 5\n  bottom: true\n  images_per_task: 100\n  feature_model: {os.path.abspath(judge)}\n")
        cls.sweep = os.path.join(cls.tmp, "search.yaml")
        with open(cls.sweep, "w") as g:
            g.write(text)
        print(f"\nsearch: {per_iteration * 1e3:.2f} ms per task-iteration, rungs of {first}, {2 * first}, {4 * first}", flush=True)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_killed_searches_resume_with_their_decisions(self):
        kills = 0
        for seed in SEEDS:
            rng = random.Random(seed)
            d = os.path.join(self.tmp, f"kill-{seed}")
            seen = []
            for k in range(KILLS_PER_SEED):
                done = trials_done(d)
                at = done + rng.randint(1, 4)
                victim = rng.choice(("worker", "coordinator", "mpirun"))
                label = f"seed {seed}, kill {k + 1} ({victim} after {at} trials)"
                p = subprocess.Popen(mpirun(2, "run", self.sweep, "--out", d), env=ENV, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
                deadline = time.time() + 120
                while trials_done(d) < at and p.poll() is None and time.time() < deadline:
                    time.sleep(0.05)
                time.sleep(rng.uniform(0, 0.2))
                ranks = wait_ranks(self.sweep, 2, timeout=5)
                if p.poll() is not None or sorted(ranks) != [0, 1]:
                    p.wait()
                    break  # the search finished before this kill point
                os.kill({"worker": ranks[1], "coordinator": ranks[0], "mpirun": p.pid}[victim], signal.SIGKILL)
                try:
                    p.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    pass
                gone = wait_gone(self.sweep, 10)
                if not gone:
                    os.killpg(p.pid, signal.SIGKILL)
                self.assertTrue(gone, f"{label}: ranks outlived their launcher")
                kills += 1
                # What was recorded stays: no trial rewritten, no promotion undone.
                now = index_rows(d, "SELECT layer, base_setting, rung, value, completed FROM search_trials ORDER BY completed")
                self.assertEqual(now[:len(seen)], seen, label)
                seen = now
            r = run(mpirun(2, "run", self.sweep, "--out", d))
            self.assertEqual(r.returncode, 0, r.stderr)
            values, want, got = search_decisions(d)
            self.assertEqual(got, want, f"seed {seed}: the recorded promotions are the rule's over the recorded order")
            self.assertEqual({(l, b, r - 1) for (l, b, r) in values if r > 0}, got, f"seed {seed}: a later rung ran iff promoted")
            self.assertEqual(dict(index_rows(d, "SELECT state, COUNT(*) FROM tasks GROUP BY state")), {"done": len(values) + 4})
            # Each trial was scored against the exemplars when it completed: its value is the mean of
            # the score its rows hold at the end (the finishing step had nothing to change).
            for layer, base, rung, value, mean, unscored in index_rows(
                    d, "SELECT st.layer, st.base_setting, st.rung, st.value, AVG(r.score), SUM(r.mis IS NULL) FROM search_trials st "
                       "JOIN tasks t ON t.layer = st.layer AND t.setting_id = st.setting_id "
                       "JOIN actmax_results r ON r.task_key = t.task_key GROUP BY st.layer, st.base_setting, st.rung"):
                self.assertEqual(unscored, 0, (seed, layer, base, rung))
                self.assertAlmostEqual(value, mean, places=12, msg=(seed, layer, base, rung))
            self.assertEqual(index_rows(d, "SELECT COUNT(*), COUNT(DISTINCT task_key || ':' || unit) FROM actmax_results")[0],
                             (4 * len(values), 4 * len(values)), f"seed {seed}: each trial's 4 units once")
            # The choice: the best trial at the highest rung, from the recorded trials.
            chosen = dict(re.findall(r"search (\S+): chosen (\S+) \(", r.stderr))
            for layer in ("conv2_1", "fc8"):
                top = max(r_ for (l, _, r_) in values if l == layer)
                best = sorted(((v, b) for (l, b, r_), v in values.items() if l == layer and r_ == top),
                              key=lambda x: (x[0] is None, -(x[0] or 0), x[1]))[0][1]
                name = index_rows(d, "SELECT s.name FROM search_trials st JOIN actmax_settings s ON s.setting_id = st.setting_id "
                                     "WHERE st.layer = ? AND st.base_setting = ? AND st.rung = ?", layer, best, top)[0][0]
                self.assertEqual(chosen.get(layer), name.rsplit("@", 1)[0], f"seed {seed}, {layer}")
            v = run([VIZSWEEP, "verify", d])
            self.assertEqual(v.returncode, 0, v.stdout)
            print(f"seed {seed}: {len(seen)} trials recorded at the last kill, {len(values)} in all; complete, decisions consistent",
                  flush=True)
        self.assertGreaterEqual(kills, 10, "at least ten kills over the seeds")


if __name__ == "__main__":
    unittest.main(verbosity=2)
