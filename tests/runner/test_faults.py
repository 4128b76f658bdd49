"""Faults a long sweep meets on a shared cluster, each followed by the same `vizsweep run`:
SIGKILL of a worker rank, of the coordinator rank and of mpirun at random points (several
seeds); SIGTERM / SIGUSR1 drains and the drain deadline; shard files truncated or with
damaged bytes; writes that fail (a file size limit, a read-only directory); NaN during
optimization. After each: exactly the planned tasks once each, a clean `verify`, and data
byte-identical to an uninterrupted run.

Run by ctest with Debian's /usr/bin/python3 (h5py); VIZSWEEP is the binary's path."""
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

import h5py

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from test_runner import (ENV, SLOW, VIZSWEEP, assert_same_data, index_rows, mpirun, plan_tasks,  # noqa: E402
                         rank_of, run, seconds_per_iteration, sized_sweep, wait_for_done)

# Kill points drawn from each seed (each kills a worker, the coordinator and mpirun). The
# sanitizer pass (scripts/test.sh sets ASAN_OPTIONS) draws from the first only: the same code
# paths in half the time there; the plain pass draws from both.
SEEDS = (11,) if "ASAN_OPTIONS" in os.environ else (11, 23)


def rank_pids(sweep):
    """MPI rank -> pid of the processes running `sweep` (processes gone meanwhile are skipped)."""
    out = {}
    for x in subprocess.run(["pgrep", "-f", f"^{VIZSWEEP} run {sweep}"], capture_output=True, text=True).stdout.split():
        try:
            out[rank_of(int(x))] = int(x)
        except OSError:
            pass
    return out


def wait_ranks(sweep, n, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        ranks = rank_pids(sweep)
        if len(ranks) >= n:
            return ranks
        time.sleep(0.1)
    return rank_pids(sweep)


def wait_gone(sweep, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if not rank_pids(sweep):
            return True
        time.sleep(0.2)
    return False


class FaultTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="vizsweep_faults_")
        # A private copy: the processes of this test are found by their command line.
        global SLOW
        # Time to kill it mid-way on any CPU kind and build: the iteration count comes from a
        # rate measured here, for about 4 s of work on 3 ranks (at least 120 iterations).
        with open(SLOW) as f:
            text = f.read()
        per_iteration = seconds_per_iteration(text, cls.tmp, 40)
        text, iterations = sized_sweep(text, per_iteration, tasks=32, ranks=3, target_seconds=4, least=120)
        print(f"\nslow sweep: {per_iteration * 1e3:.2f} ms per task-iteration, {iterations} iterations", flush=True)
        with open(os.path.join(cls.tmp, "slow.yaml"), "w") as g:
            g.write(text)
        SLOW = os.path.join(cls.tmp, "slow.yaml")
        cls.n = plan_tasks(SLOW)
        cls.ref = os.path.join(cls.tmp, "ref")  # the uninterrupted run everything is compared with
        r = run(mpirun(1, "run", SLOW, "--out", cls.ref))
        assert r.returncode == 0, r.stderr

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def out(self, name):
        return os.path.join(self.tmp, name)

    def assert_complete(self, d, label):
        """Exactly the planned tasks, once each, all done; verify clean; data equal to the reference."""
        self.assertEqual(dict(index_rows(d, "SELECT state, COUNT(*) FROM tasks GROUP BY state")), {"done": self.n}, label)
        self.assertEqual(index_rows(d, "SELECT COUNT(*), COUNT(DISTINCT task_key || unit) FROM actmax_results")[0],
                         (2 * 32, 2 * 32), label)
        # 40 images under iterative FGSM, PGD and APGD-DLR (2 restarts each: random starts).
        self.assertEqual(index_rows(d, "SELECT COUNT(*), COUNT(DISTINCT task_key || image_id) FROM fgsm_results")[0],
                         (120, 120), label)
        # Exemplars: ten shards of 1,000 images; the merged lists of 32 + 64 + 10 units, top and bottom.
        self.assertEqual(index_rows(d, "SELECT COUNT(*), COUNT(DISTINCT layer || unit || kind || rank) FROM exemplars")[0],
                         (106 * 2 * 9, 106 * 2 * 9), label)
        lists = "SELECT layer, unit, kind, rank, image_id, activation, y, x, dataset FROM exemplars ORDER BY layer, unit, kind, rank"
        self.assertEqual(index_rows(d, lists), index_rows(self.ref, lists), label)
        v = run([VIZSWEEP, "verify", d])
        self.assertEqual(v.returncode, 0, f"{label}: {v.stdout}")
        assert_same_data(self, self.ref, d, f"{label}: ")

    def test_sigkill_at_random_points(self):
        """SIGKILL of a worker rank, of the coordinator (rank 0) and of mpirun itself."""
        for seed in SEEDS:
            rng = random.Random(seed)
            for victim in ("worker", "coordinator", "mpirun"):
                label = f"seed {seed}, {victim} killed"
                d = self.out(f"kill-{seed}-{victim}")
                at = rng.randint(self.n // 8, 5 * self.n // 8)  # the last tasks (exemplars, FGSM) are quick
                p = subprocess.Popen(mpirun(3, "run", SLOW, "--out", d), env=ENV, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
                self.assertGreaterEqual(wait_for_done(d, at), at, label)
                time.sleep(rng.uniform(0, 0.3))  # not always right after a commit
                ranks = wait_ranks(SLOW, 3)
                self.assertEqual(sorted(ranks), [0, 1, 2], label)
                os.kill({"worker": ranks.get(rng.choice([1, 2])), "coordinator": ranks[0], "mpirun": p.pid}[victim],
                        signal.SIGKILL)
                try:
                    p.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    pass
                # Ranks whose launcher died stop on their own (they watch their parent process).
                gone = wait_gone(SLOW, 10)
                if not gone:
                    os.killpg(p.pid, signal.SIGKILL)
                self.assertTrue(gone, f"{label}: ranks outlived their launcher")
                before = index_rows(d, "SELECT COUNT(*) FROM tasks WHERE state='done'")[0][0]
                self.assertLess(before, self.n, f"{label}: the kill came before the end")
                r = run(mpirun(2, "run", SLOW, "--out", d))
                self.assertEqual(r.returncode, 0, f"{label}: {r.stderr}")
                self.assert_complete(d, label)
                print(f"{label} after {before}/{self.n} tasks: resumed, complete, identical", flush=True)

    def test_drain_on_sigterm_and_sigusr1(self):
        for sig in (signal.SIGTERM, signal.SIGUSR1):
            label = sig.name
            d = self.out(f"drain-{label}")
            p = subprocess.Popen(mpirun(2, "run", SLOW, "--out", d), env=ENV, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE, text=True, start_new_session=True)
            self.assertGreaterEqual(wait_for_done(d, 4), 4)
            t0 = time.time()
            # What Slurm does: the signal to every process of the step (mpirun forwards it too).
            for pid in rank_pids(SLOW).values():
                os.kill(pid, sig)
            _, err = p.communicate(timeout=120)
            self.assertEqual(p.returncode, 4, f"{label}: {err}")  # work remains
            self.assertLess(time.time() - t0, 60)
            self.assertIn("drain requested", err)
            states = dict(index_rows(d, "SELECT state, COUNT(*) FROM tasks GROUP BY state"))
            self.assertNotIn("running", states, f"{label}: in-flight tasks finished before the exit")
            self.assertGreater(states.get("pending", 0), 0)
            v = run([VIZSWEEP, "verify", d])
            self.assertEqual(v.returncode, 0, v.stdout + v.stderr)
            r = run(mpirun(2, "run", SLOW, "--out", d))
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assert_complete(d, label)

    def test_drain_deadline_abandons_tasks_in_flight(self):
        d = self.out("deadline")
        p = subprocess.Popen(mpirun(2, "run", SLOW, "--out", d, "--drain-seconds", "0"), env=ENV,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
        self.assertGreaterEqual(wait_for_done(d, 4), 4)
        for pid in rank_pids(SLOW).values():
            os.kill(pid, signal.SIGTERM)
        _, err = p.communicate(timeout=120)
        self.assertEqual(p.returncode, 4, err)
        self.assertIn("drain deadline passed", err)
        states = dict(index_rows(d, "SELECT state, COUNT(*) FROM tasks GROUP BY state"))
        self.assertNotIn("running", states, "abandoned tasks are pending again")
        v = run([VIZSWEEP, "verify", d])
        self.assertEqual(v.returncode, 0, v.stdout + v.stderr)
        r = run(mpirun(2, "run", SLOW, "--out", d))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assert_complete(d, "drain deadline")

    def affected(self, d, shard):
        return {r[0] for r in index_rows(
            d, "SELECT task_key FROM actmax_results WHERE shard=? UNION SELECT task_key FROM fgsm_results WHERE shard=? "
               "UNION SELECT task_key FROM exemplar_results WHERE shard=?", shard, shard, shard)}

    def test_damaged_shards_are_named_and_exactly_those_tasks_recomputed(self):
        # A bit flipped inside one dataset: its Fletcher-32 checksum no longer matches. One bit
        # of one byte changes one 16-bit word by 1 or 256, which Fletcher-32 always sees;
        # inverting whole bytes does not always (0x0000 and 0xFFFF are the same word modulo
        # 65535, and saturated images are full of 0 and 255 pixels).
        d = self.out("flipped")
        shutil.copytree(self.ref, d)
        key, shard, ds = index_rows(d, "SELECT task_key, shard, dataset FROM actmax_results ORDER BY task_key LIMIT 1")[0]
        with h5py.File(os.path.join(d, shard), "r") as f:
            offset = f[ds].id.get_chunk_info(0).byte_offset
        with open(os.path.join(d, shard), "r+b") as f:
            f.seek(offset + 10)
            b = f.read(1)
            f.seek(offset + 10)
            f.write(bytes([b[0] ^ 0x01]))
        v = run([VIZSWEEP, "verify", d])
        self.assertEqual(v.returncode, 1, v.stdout)
        bad = [line for line in v.stdout.splitlines() if line.startswith("BAD")]
        self.assertEqual(len(bad), 1, v.stdout)
        self.assertIn(f"task {key}", bad[0])
        r = run([VIZSWEEP, "run", SLOW, "--out", d])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("1 with unreadable data recomputed", r.stderr)
        self.assertIn(f"{self.n} tasks, {self.n - 1} already done, 1 to run", r.stderr)
        self.assert_complete(d, "flipped bytes")

        # A shard cut in half: every task whose rows name it, and only those.
        d = self.out("truncated")
        shutil.copytree(self.ref, d)
        shard = index_rows(d, "SELECT shard FROM actmax_results LIMIT 1")[0][0]
        keys = self.affected(d, shard)
        path = os.path.join(d, shard)
        with open(path, "r+b") as f:
            f.truncate(os.path.getsize(path) // 2)
        v = run([VIZSWEEP, "verify", d])
        self.assertEqual(v.returncode, 1)
        named = {line.split()[1] for line in v.stdout.splitlines() if line.strip().startswith("task ")}
        self.assertEqual(named, keys)
        r = run([VIZSWEEP, "run", SLOW, "--out", d])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(f"{len(keys)} with unreadable data recomputed", r.stderr)
        self.assert_complete(d, "truncated shard")

    def test_a_file_size_limit_stops_the_run_cleanly(self):
        """Rank 1 runs under `ulimit -f 24` (24 KiB): its shard writes fail. The run stops with
        exit 6 naming the file; the task goes back to pending with no rows; a rerun completes."""
        d = self.out("fsize")
        # TCP between the ranks: Open MPI's shared-memory transport backs its segment with a file
        # larger than the limit, and MPI_Init would fail first.
        cmd = ["mpirun", "--oversubscribe", "--mca", "btl", "self,tcp", "-np", "1", VIZSWEEP, "run", SLOW, "--out", d, ":",
               "-np", "1", "bash", "-c", f'ulimit -f 24; exec "$0" "$@"', VIZSWEEP, "run", SLOW, "--out", d]
        r = run(cmd)
        self.assertEqual(r.returncode, 6, r.stderr)
        self.assertIn("results cannot be written on rank 1", r.stderr)
        self.assertRegex(r.stderr, r"shards/r1-[0-9-]+\.h5")
        states = dict(index_rows(d, "SELECT state, COUNT(*) FROM tasks GROUP BY state"))
        self.assertNotIn("failed", states)
        self.assertNotIn("running", states)
        self.assertGreater(states.get("pending", 0), 0)
        pending_rows = index_rows(d, "SELECT COUNT(*) FROM actmax_results r JOIN tasks t USING (task_key) "
                                     "WHERE t.state <> 'done'")[0][0]
        self.assertEqual(pending_rows, 0, "no rows for tasks whose data was not written")
        self.assertEqual(index_rows(d, "SELECT SUM(attempts) FROM tasks WHERE state='pending'")[0][0] or 0, 0)
        v = run([VIZSWEEP, "verify", d])
        self.assertEqual(v.returncode, 0, v.stdout + v.stderr)
        r = run(mpirun(2, "run", SLOW, "--out", d))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assert_complete(d, "file size limit")

    def test_a_read_only_results_directory_is_a_clear_error(self):
        d = self.out("readonly")
        shutil.copytree(self.ref, d)
        with open(os.path.join(d, "index.sqlite"), "rb") as f:
            index_before = f.read()
        for p in (self.tmp, d, os.path.join(d, "shards")):
            os.chmod(p, 0o755)
        # root writes anywhere: run as nobody, for whom the directory is read-only
        r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", VIZSWEEP, "run", SLOW,
                            "--out", d], env=ENV, capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn(d, r.stderr)
        self.assertRegex(r.stderr, "read-only|Permission denied|cannot")
        with open(os.path.join(d, "index.sqlite"), "rb") as f:
            self.assertEqual(f.read(), index_before, "index unchanged")

    def test_nan_fails_the_task_with_that_reason_and_the_sweep_goes_on(self):
        """A model whose conv1_1 unit 0 has weights of 1e38 (what a diverged training run leaves):
        that unit's activation overflows to Inf. The kernels clamp the image to its pixel range
        every step, so a huge learning rate alone cannot produce NaN; a model can."""
        model = self.out("exploding.pt")
        script = ("import sys, torch\n"
                  "extra = {'vizsweep.json': ''}\n"
                  "m = torch.jit.load(sys.argv[1], _extra_files=extra)\n"
                  "w = dict(m.named_parameters())['features.0.weight']\n"
                  "with torch.no_grad(): w[0].fill_(1e38)\n"
                  "torch.jit.save(m, sys.argv[2], _extra_files=extra)\n")
        subprocess.run(["/usr/bin/python3", "-c", script, os.path.join(HERE, "..", "..", "models", "fashion_vgg11.pt"),
                        model], check=True, capture_output=True, timeout=300)
        d = self.out("nan")
        sweep = self.out("nan.yaml")
        with open(sweep, "w") as f:
            f.write("name: nan\nmax_attempts: 2\nthreads: 1\nmodel: {file: exploding.pt}\n"
                    "actmax:\n  layers: [conv1_1]\n  units: 0-3\n  units_per_batch: 1\n  grid: {iterations: 10}\n")
        r = run(mpirun(2, "run", sweep, "--out", d))
        self.assertEqual(r.returncode, 3, r.stderr)  # ran; a task failed
        rows = index_rows(d, "SELECT units, state, attempts, error FROM tasks ORDER BY units")
        self.assertEqual([x[:3] for x in rows], [("0", "failed", 2), ("1", "done", 1), ("2", "done", 1), ("3", "done", 1)])
        self.assertIn("NaN or Inf during optimization of conv1_1", rows[0][3])
        self.assertIn("finished: 3/4 done, 1 failed", r.stderr)
        self.assertEqual(index_rows(d, "SELECT COUNT(*) FROM actmax_results"), [(3,)])
        st = run([VIZSWEEP, "status", d])
        self.assertIn("NaN or Inf during optimization of conv1_1", st.stdout)
        # retries are bounded across runs too: a rerun does not try it again
        r = run([VIZSWEEP, "run", sweep, "--out", d])
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertIn("0 to run", r.stderr)
        self.assertEqual(index_rows(d, "SELECT attempts FROM tasks WHERE state='failed'"), [(2,)])


if __name__ == "__main__":
    unittest.main(verbosity=2)
