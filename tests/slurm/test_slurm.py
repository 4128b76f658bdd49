"""vizsweep on a real Slurm cluster (one node, started and torn down by the test): a submitted
sweep completes and equals a plain mpirun run; a sweep longer than the time limit drains,
requeues itself and completes over several allocations; scancel then resubmit completes; the
two interrupted runs of the long sweep end with the same data.

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
from test_runner import (ENV, VIZSWEEP, assert_same_data, index_rows, mpirun, run, seconds_per_iteration,  # noqa: E402
                         sized_sweep, wait_for_done)

SMALL = os.path.join(HERE, "..", "runner", "small.yaml")
LONG = os.path.join(HERE, "long.yaml")
# Work in the long sweep, in seconds on 2 ranks: Slurm signals the batch shell 60 s before the
# 3-minute limit (at about 120 s, up to a minute late), so 240 s is still running then.
LONG_SECONDS = 240

# The lines the batch script logs (runner/slurm.cpp), after their "[date] " prefix.
DRAINING = "time limit near: draining"
CANCELLING = "cancelled: finishing the tasks in flight"
CANCELLED = "job cancelled: not requeueing; submit this script again to go on"


def requeueing(job):
    return f"work remains: requeueing job {job}"


def log_lines(log):
    """The batch script's messages, one per line, without their "[2026-01-01T00:00:00+00:00] " prefix."""
    return [re.sub(r"^\[[^\]]*\] ", "", line) for line in log.splitlines()]


class SlurmTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="vizsweep_slurmtest_")
        # The long sweep must outlast the 3-minute time limit on any machine, plain or sanitizer
        # build, AMD or Intel: its iteration count comes from a rate measured here and now (16
        # tasks of the same layers at 100 iterations), sized for LONG_SECONDS of work on 2 ranks.
        global LONG
        with open(LONG) as f:
            text = f.read()
        calibration = re.sub(r"units: 0-31", "units: 0-7", text)
        per_iteration = seconds_per_iteration(calibration, cls.tmp, 100)
        text, cls.iterations = sized_sweep(text, per_iteration, tasks=64, ranks=2, target_seconds=LONG_SECONDS, least=200)
        LONG = os.path.join(cls.tmp, "long.yaml")
        with open(LONG, "w") as g:
            g.write(text)
        print(f"\nlong sweep: {per_iteration * 1e3:.2f} ms per task-iteration measured, {cls.iterations} iterations "
              f"for {LONG_SECONDS} s on 2 ranks", flush=True)
        cls.cluster = SlurmCluster(cpus=4)
        cls.cluster.__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.cluster.__exit__(None, None, None)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    # The long sweep's two interrupted runs (a time limit's drain and requeue; a scancel and a
    # resubmission) stop at different points, so each is compared with the other rather than
    # with a third, uninterrupted run (4 minutes of the test's 12): what an interruption could
    # lose or change would differ between them. The small sweep is compared with plain mpirun.
    long_done = None

    def assert_long_complete(self, out):
        if SlurmTest.long_done is None:
            self.assert_complete_and_equal(out, None)
            SlurmTest.long_done = out
        else:
            self.assert_complete_and_equal(out, SlurmTest.long_done)

    def submit(self, sweep, out, *args):
        r = subprocess.run([VIZSWEEP, "slurm", sweep, "--out", out, "--ranks-per-node", "2", *args, "--submit"],
                           env=dict(ENV, SLURM_CONF=self.cluster.conf), capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        m = re.search(r"submitted job (\d+)", r.stdout)
        self.assertTrue(m, r.stdout)
        return m.group(1)

    def wait_complete(self, job, out, timeout):
        """Waits until the job has COMPLETED with every task of the sweep done (a requeued job
        passes through other states, and may show COMPLETED between its allocations)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            info = self.cluster.job(job)
            state = info.get("JobState", "")
            if state in ("FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY"):
                return state, info
            if state == "COMPLETED":
                try:
                    left = index_rows(out, "SELECT COUNT(*) FROM tasks WHERE state<>'done'")[0][0]
                except sqlite3.Error:
                    left = -1
                if left == 0:
                    return state, info
            time.sleep(2)
        return "TIMEOUT (test)", self.cluster.job(job)

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
        if ref is not None:
            assert_same_data(self, ref, out, f"slurm ({out}) vs {ref}: ")

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
        out = os.path.join(self.tmp, "long")
        t0 = time.time()
        job = self.submit(LONG, out, "--time", "3", "--drain-seconds", "60")
        state, info = self.wait_complete(job, out, timeout=1200)
        log = self.job_log(out, "long")
        self.assertEqual(state, "COMPLETED", log + self.cluster.logs())
        print(f"\ntime-limit test: completed in {time.time() - t0:.0f}s after {info.get('Restarts')} requeue(s)")
        lines = log_lines(log)
        self.assertIn(DRAINING, lines, log)
        self.assertIn(requeueing(job), lines, log)
        self.assertNotIn(CANCELLING, lines, log)  # the time-limit signal is not taken for a cancel
        restarts = int(info.get("Restarts", "0"))
        self.assertGreaterEqual(restarts, 1, log)
        self.assert_long_complete(out)

    def test_scancel_then_resubmit_completes(self):
        out = os.path.join(self.tmp, "cancel")
        job = self.submit(LONG, out, "--time", "00:30:00")
        self.assertGreaterEqual(wait_for_done(out, 8, timeout=300), 8)
        self.cluster.run("scancel", job)
        self.assertEqual(self.cluster.wait(job, timeout=120), "CANCELLED")
        # The batch shell logs the cancel and must not requeue; Slurm kills it KillWait (5 s) later.
        deadline = time.time() + 30
        while CANCELLING not in log_lines(self.job_log(out, "long")) and time.time() < deadline:
            time.sleep(1)
        time.sleep(10)
        log = self.job_log(out, "long")
        lines = log_lines(log)
        self.assertIn(CANCELLING, lines, log)
        self.assertNotIn(requeueing(job), lines, log)
        self.assertNotIn(DRAINING, lines, log)
        # Whether the script reaches its last words depends on how fast the run drains within
        # Slurm's KillWait; where it does, they say it does not requeue.
        self.assertFalse([x for x in lines if "requeue" in x and x != CANCELLED], log)
        info = self.cluster.job(job)
        self.assertEqual((info.get("JobState"), info.get("Restarts", "0")), ("CANCELLED", "0"), log)
        left = index_rows(out, "SELECT COUNT(*) FROM tasks WHERE state<>'done'")[0][0]
        self.assertGreater(left, 0, "cancelled before the end")
        r = subprocess.run(["sbatch", "--parsable", os.path.join(out, "slurm", "long.sbatch")], env=self.cluster.env,
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        job2 = r.stdout.strip().split(";")[0]
        state, _ = self.wait_complete(job2, out, timeout=600)
        self.assertEqual(state, "COMPLETED", self.cluster.logs())
        self.assert_long_complete(out)


if __name__ == "__main__":
    unittest.main(verbosity=2)
