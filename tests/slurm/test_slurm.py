"""vizsweep on a real Slurm cluster (one node, started and torn down by the test): a submitted
sweep completes and equals a plain mpirun run; a sweep longer than the time limit drains,
requeues itself and completes over several allocations; scancel then resubmit completes.

Needs root and Debian's slurmctld, slurmd, slurm-client and munge (scripts/setup.sh)."""
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "runner"))
from cluster import SlurmCluster  # noqa: E402
from test_runner import ENV, VIZSWEEP, index_rows, mpirun, run, task_data  # noqa: E402

SMALL = os.path.join(HERE, "..", "runner", "small.yaml")
LONG = os.path.join(HERE, "long.yaml")


class SlurmTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="vizsweep_slurmtest_")
        cls.cluster = SlurmCluster(cpus=4)
        cls.cluster.__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.cluster.__exit__(None, None, None)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def submit(self, sweep, out, *args):
        r = subprocess.run([VIZSWEEP, "slurm", sweep, "--out", out, "--ranks-per-node", "2", *args, "--submit"],
                           env=dict(ENV, SLURM_CONF=self.cluster.conf), capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        m = re.search(r"submitted job (\d+)", r.stdout)
        self.assertTrue(m, r.stdout)
        return m.group(1)

    def job_log(self, out, name):
        logs = [f for f in os.listdir(os.path.join(out, "slurm")) if f.endswith(".out")]
        text = ""
        for f in logs:
            with open(os.path.join(out, "slurm", f)) as fh:
                text += fh.read()
        return text

    def assert_complete_and_equal(self, out, ref):
        states = dict(index_rows(out, "SELECT state, COUNT(*) FROM tasks GROUP BY state"))
        self.assertEqual(list(states), ["done"], states)
        v = run([VIZSWEEP, "verify", out])
        self.assertEqual(v.returncode, 0, v.stdout)
        a, b = task_data(ref), task_data(out)
        self.assertEqual(set(a), set(b))
        for key in a:
            for name in a[key]:
                self.assertEqual(a[key][name], b[key][name], f"{key}/{name} differs from the mpirun run")

    def test_submitted_sweep_completes_like_mpirun(self):
        out, ref = os.path.join(self.tmp, "small"), os.path.join(self.tmp, "small_ref")
        self.assertEqual(run(mpirun(2, "run", SMALL, "--out", ref)).returncode, 0)
        job = self.submit(SMALL, out, "--time", "00:10:00")
        state = self.cluster.wait(job, timeout=300)
        self.assertEqual(state, "COMPLETED", self.job_log(out, "small") + self.cluster.logs())
        self.assertEqual(sorted(r[0] for r in index_rows(out, "SELECT DISTINCT rank FROM tasks")), [0, 1])
        self.assert_complete_and_equal(out, ref)
        self.assertTrue(os.path.exists(os.path.join(out, "slurm", "small.sbatch")))

    def test_time_limit_drains_requeues_and_completes(self):
        out, ref = os.path.join(self.tmp, "long"), os.path.join(self.tmp, "long_ref")
        self.assertEqual(run(mpirun(2, "run", LONG, "--out", ref)).returncode, 0)
        job = self.submit(LONG, out, "--time", "2", "--drain-seconds", "60")
        state = self.cluster.wait(job, timeout=900, states=("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"))
        log = self.job_log(out, "long")
        self.assertEqual(state, "COMPLETED", log + self.cluster.logs())
        self.assertIn("time limit near: draining", log)
        self.assertIn("work remains: requeueing", log)
        restarts = int(self.cluster.job(job).get("Restarts", "0"))
        self.assertGreaterEqual(restarts, 1, log)
        self.assert_complete_and_equal(out, ref)

    def test_scancel_then_resubmit_completes(self):
        out, ref = os.path.join(self.tmp, "cancel"), os.path.join(self.tmp, "cancel_ref")
        self.assertEqual(run(mpirun(2, "run", LONG, "--out", ref)).returncode, 0)
        job = self.submit(LONG, out, "--time", "00:30:00")
        deadline = time.time() + 300
        done = 0
        while time.time() < deadline and done < 8:
            time.sleep(1)
            try:
                done = index_rows(out, "SELECT COUNT(*) FROM tasks WHERE state='done'")[0][0]
            except sqlite3.Error:
                pass
        self.assertGreaterEqual(done, 8)
        self.cluster.run("scancel", job)
        self.assertEqual(self.cluster.wait(job, timeout=120), "CANCELLED")
        left = index_rows(out, "SELECT COUNT(*) FROM tasks WHERE state<>'done'")[0][0]
        self.assertGreater(left, 0, "cancelled before the end")
        r = subprocess.run(["sbatch", "--parsable", os.path.join(out, "slurm", "long.sbatch")], env=self.cluster.env,
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        job2 = r.stdout.strip().split(";")[0]
        self.assertEqual(self.cluster.wait(job2, timeout=600), "COMPLETED", self.cluster.logs())
        self.assert_complete_and_equal(out, ref)


if __name__ == "__main__":
    unittest.main(verbosity=2)
