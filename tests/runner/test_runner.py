"""Integration tests of `vizsweep` under mpirun: a full sweep, 1 vs 3 ranks, status and
verify, and errors that must write nothing. Faults (kills, drains, damaged shards, failing
writes, NaN) are in test_faults.py, bad input in test_bad_input.py.

Run by ctest with Debian's /usr/bin/python3 (h5py); VIZSWEEP is the binary's path."""
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import unittest

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
VIZSWEEP = os.environ.get("VIZSWEEP", os.path.join(HERE, "..", "..", "build", "runner", "vizsweep"))
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMPI_MCA_rmaps_base_oversubscribe="1")
SMALL = os.path.join(HERE, "small.yaml")
SLOW = os.path.join(HERE, "slow.yaml")
SEARCH = os.path.join(HERE, "search.yaml")
# small.yaml's results as written by vizsweep at schema 1.1 (tests/fixtures/README.md).
FIXTURE_1_1 = os.path.join(HERE, "..", "fixtures", "small-1.1")


def mpirun(n, *args):
    return ["mpirun", "-np", str(n), "--oversubscribe", VIZSWEEP, *args]


def run(cmd, **kw):
    return subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=600, **kw)


def plan_tasks(sweep):
    out = run([VIZSWEEP, "plan", sweep])
    assert out.returncode == 0, out.stderr
    first = out.stdout.splitlines()[0]
    return int(first.split(", ")[-1].split(" tasks")[0].replace(",", ""))


def rank_of(pid):
    """The MPI rank of a process, from the environment mpirun gave it."""
    with open(f"/proc/{pid}/environ", "rb") as f:
        for item in f.read().split(b"\0"):
            if item.startswith(b"OMPI_COMM_WORLD_RANK="):
                return int(item.split(b"=", 1)[1])
    return -1


def index_rows(d, sql, *params):
    db = sqlite3.connect(f"file:{d}/index.sqlite?mode=ro", uri=True)
    try:
        return db.execute(sql, params).fetchall()
    finally:
        db.close()


def task_data(d):
    """key -> {dataset name: bytes} for every done task, read from the shard its rows name."""
    out = {}
    tables = [t for t in ("actmax_results", "invert_results", "fgsm_results", "featuremap_results", "exemplar_results")
              if index_rows(d, "SELECT COUNT(*) FROM sqlite_master WHERE name = ?", t)[0][0]]  # exemplars: since 1.5
    for key, shard in index_rows(d, "SELECT DISTINCT r.task_key, r.shard FROM (" +
                                 " UNION ".join(f"SELECT task_key, shard FROM {t}" for t in tables) + ") r"):
        with h5py.File(os.path.join(d, shard), "r") as f:
            g = f["tasks"][key]
            out[key] = {name: np.asarray(g[name]).tobytes() for name in g}
    return out


def actmax_traces(d):
    """key -> objective per iteration [iterations, units] of every done actmax task."""
    out = {}
    for key, shard in index_rows(d, "SELECT DISTINCT task_key, shard FROM actmax_results"):
        with h5py.File(os.path.join(d, shard), "r") as f:
            out[key] = np.asarray(f["tasks"][key]["objective_trace"], dtype=np.float64)
    return out


def assert_same_data(test, ref, d, label=""):
    """Every dataset of every done task of d is byte-identical to ref's."""
    a, b = task_data(ref), task_data(d)
    test.assertEqual(set(a), set(b))
    for key in a:
        test.assertEqual(a[key].keys(), b[key].keys(), key)
        for name in a[key]:
            test.assertEqual(a[key][name], b[key][name], f"{label}{key}/{name} differs")


def search_decisions(d):
    """The promotions actmax.search's rule makes over the trials d recorded, in their order of
    completion (written out here from Li et al. 2020, independently of runner/search.cpp):
    when a trial completes at rung r, the top floor(n_r / eta) of rung r's n_r completed trials
    (higher metric first, no value last, then the lower setting) go on. Returns
    ({(layer, setting, rung): value}, {(layer, setting, rung) promoted by the rule}, the same
    recorded by the run)."""
    eta, rungs = 2, 3  # search.yaml's
    rows = index_rows(d, "SELECT layer, base_setting, rung, value, promoted_at IS NOT NULL FROM search_trials ORDER BY completed")
    done, want, got, values = {}, set(), set(), {}
    for layer, base, rung, value, promoted in rows:
        values[(layer, base, rung)] = value
        if promoted:
            got.add((layer, base, rung))
        done.setdefault((layer, rung), {})[base] = value
        if rung + 1 < rungs:
            order = sorted(done[(layer, rung)].items(), key=lambda kv: (kv[1] is None, -(kv[1] or 0), kv[0]))
            want.update((layer, b, rung) for b, _ in order[:len(order) // eta])
    return values, want, got


def wait_for_done(d, at_least, timeout=120):
    """Polls the index until at least `at_least` tasks are done; returns the count."""
    deadline = time.time() + timeout
    done = 0
    while time.time() < deadline:
        time.sleep(0.3)
        try:
            done = index_rows(d, "SELECT COUNT(*) FROM tasks WHERE state='done'")[0][0]
        except sqlite3.Error:
            continue
        if done >= at_least:
            break
    return done


def seconds_per_iteration(sweep_text, tmp, iterations, ranks=1):
    """Measured cost of one optimization iteration of one task of `sweep_text` on this machine:
    the sweep runs with `iterations: N` replaced by `iterations` and the index's per-task compute
    seconds are divided by it. Tests that must outlast a time limit or be stopped mid-way size
    their sweeps from this rate, not from a fixed count tuned on one CPU kind."""
    name = re.search(r"^name: (\S+)", sweep_text, re.M).group(1)
    path = os.path.join(tmp, f"calibrate_{name}.yaml")
    with open(path, "w") as f:
        f.write(re.sub(r"iterations: \d+", f"iterations: {iterations}", sweep_text))
    out = os.path.join(tmp, f"calibrate_{name}")
    r = run(mpirun(ranks, "run", path, "--out", out))
    assert r.returncode == 0, r.stderr
    tasks, seconds = index_rows(out, "SELECT COUNT(*), SUM(seconds) FROM tasks WHERE technique='actmax'")[0]
    shutil.rmtree(out, ignore_errors=True)
    os.remove(path)
    return seconds / tasks / iterations


def sized_sweep(sweep_text, per_iteration, tasks, ranks, target_seconds, least):
    """sweep_text with its iteration count chosen so that `tasks` actmax tasks on `ranks` ranks
    take about target_seconds at the measured `per_iteration` rate (at least `least`)."""
    iterations = max(least, int(target_seconds * ranks / (tasks * per_iteration)))
    return re.sub(r"iterations: \d+", f"iterations: {iterations}", sweep_text), iterations


class RunnerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="vizsweep_runner_")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def out(self, name):
        return os.path.join(self.tmp, name)

    def test_three_ranks_complete_verify_and_match_one_rank(self):
        n = plan_tasks(SMALL)
        d3, d1 = self.out("three"), self.out("one")
        r = run(mpirun(3, "run", SMALL, "--out", d3))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(f"finished: {n}/{n} done, 0 failed", r.stderr)
        states = dict(index_rows(d3, "SELECT state, COUNT(*) FROM tasks GROUP BY state"))
        self.assertEqual(states, {"done": n})
        ranks = {row[0] for row in index_rows(d3, "SELECT DISTINCT rank FROM tasks")}
        self.assertEqual(ranks, {0, 1, 2}, "every rank, rank 0 included, ran tasks")
        v = run([VIZSWEEP, "verify", d3])
        self.assertEqual(v.returncode, 0, v.stdout + v.stderr)
        self.assertIn("0 problem(s)", v.stdout)
        # Row counts: 3 layers x 6 units x 3 settings; 2 layers x 3 images; 4 settings x 20 images.
        self.assertEqual(index_rows(d3, "SELECT COUNT(*) FROM actmax_results")[0][0], 54)
        self.assertEqual(index_rows(d3, "SELECT COUNT(*) FROM invert_results")[0][0], 6)
        self.assertEqual(index_rows(d3, "SELECT COUNT(*) FROM fgsm_results")[0][0], 80)
        self.assertEqual(index_rows(d3, "SELECT COUNT(*) FROM fgsm_steps")[0][0], 20 * (2 + 2 + 6 + 6))
        self.assertEqual(index_rows(d3, "SELECT COUNT(*) FROM featuremap_results")[0][0], 4)
        # One rank, same threads per rank: byte-identical data for every task key.
        r1 = run(mpirun(1, "run", SMALL, "--out", d1))
        self.assertEqual(r1.returncode, 0, r1.stderr)
        self.assertEqual(len(task_data(d3)), n)
        assert_same_data(self, d3, d1, "1 vs 3 ranks: ")
        # Running again finds everything done and changes nothing.
        again = run([VIZSWEEP, "run", SMALL, "--out", d1])
        self.assertEqual(again.returncode, 0, again.stderr)
        self.assertIn(f"{n} already done, 0 to run", again.stderr)
        st = run([VIZSWEEP, "status", d1])
        self.assertEqual(st.returncode, 0)
        self.assertRegex(st.stdout, rf"all\s+{n}\s+0\s+0\s+0\s+{n}")

    def test_results_of_the_previous_version_resume_with_nothing_recomputed(self):
        """Results survive upgrades: a results directory written by an earlier version (the
        fixture) resumes under this one with every task done, no result row or shard byte
        changed and a clean verify."""
        d, ref = self.out("upgrade"), self.out("upgrade_ref")
        shutil.copytree(FIXTURE_1_1, d)
        shutil.copytree(FIXTURE_1_1, ref)  # read from a copy too: the checkout stays untouched
        sweep = os.path.join(d, "sweep.yaml")  # the sweep file as that version ran it
        n = plan_tasks(sweep)
        self.assertEqual(index_rows(d, "SELECT COUNT(*) FROM tasks WHERE state='done'")[0][0], n)
        before_data = task_data(d)
        before_rows = index_rows(d, "SELECT task_key, finished_at, seconds FROM tasks ORDER BY task_key")
        old_columns = ("SELECT task_key, unit, final_activation, hf_energy, total_variation, saturation, robustness, "
                       "is_argmax, shard, dataset FROM actmax_results ORDER BY task_key, unit")
        before_results = index_rows(d, old_columns)
        r = run(mpirun(2, "run", sweep, "--out", d))
        self.assertEqual(r.returncode, 0, r.stderr)
        # The spec hash covers every task key: had a key changed, the directory would be
        # refused as another sweep's.
        self.assertIn(f"{n} tasks, {n} already done, 0 to run", r.stderr)
        self.assertEqual(index_rows(d, "SELECT task_key, finished_at, seconds FROM tasks ORDER BY task_key"), before_rows)
        self.assertEqual(index_rows(d, old_columns), before_results)
        assert_same_data(self, ref, d, "after the upgrade: ")
        self.assertEqual(len(before_data), n)
        v = run([VIZSWEEP, "verify", d])
        self.assertEqual(v.returncode, 0, v.stdout + v.stderr)
        self.assertIn("0 problem(s)", v.stdout)
        # The schema migrated in place: 1.1 -> 1.2 -> 1.3 -> 1.4 -> 1.5 adds the hyperparameters declared since,
        # at the defaults the old rows ran with.
        self.assertEqual(index_rows(ref, "SELECT value FROM meta WHERE key='schema_version'"), [("1.1",)])
        self.assertEqual(index_rows(d, "SELECT value FROM meta WHERE key='schema_version'"), [("1.9",)])
        self.assertEqual(index_rows(d, "SELECT DISTINCT jitter, adam_beta1, adam_beta2, param, decay_power, scale, rotate, "
                                       "pad, decorrelate FROM actmax_settings"),
                         [(0, 0.9, 0.999, "pixel", 1.0, 0.0, 0.0, 0, 0)])
        self.assertEqual(index_rows(d, "SELECT COUNT(*) FROM metrics")[0][0], 12)
        # 1.5: tasks and images rebuilt with all their rows; the exemplar tables there, empty
        self.assertEqual(index_rows(d, "SELECT COUNT(*) FROM exemplar_results"), [(0,)])
        self.assertEqual(index_rows(d, "SELECT COUNT(*) FROM actmax_results WHERE mis IS NOT NULL"), [(0,)])
        # 1.4: the score of the rows already there, no judge columns
        self.assertEqual(index_rows(d, "SELECT COUNT(*) FROM actmax_results WHERE judge_prob IS NOT NULL OR "
                                       "ABS(score - MIN(MAX(robustness, 0), 1) * (1 - hf_energy)) > 1e-12"), [(0,)])

    def test_channels_last_matches_and_bf16_is_its_own_sweep(self):
        with open(SMALL) as f:
            text = f.read()
        sweeps = {}
        for label, extra in (("nchw", ""), ("nhwc", "channels_last: true\n"), ("bf16", "precision: bf16\n")):
            path = os.path.join(self.tmp, f"small_{label}.yaml")
            with open(path, "w") as f:
                f.write(text.replace("threads: 1\n", "threads: 1\n" + extra))
            sweeps[label] = path
            r = run(mpirun(1, "run", path, "--out", self.out(label)))
            self.assertEqual(r.returncode, 0, label + ": " + r.stderr)
        ref, nhwc, bf16 = task_data(self.out("nchw")), task_data(self.out("nhwc")), task_data(self.out("bf16"))
        # The layout is not part of the keys (docs/performance.md, "Compute format"): NHWC runs the same math
        # in another order of float operations, as another CPU kind's kernels do, and a results
        # directory may hold tasks of both, as it may hold tasks from both kinds of CPU.
        self.assertEqual(set(ref), set(nhwc))
        rows = lambda d: dict(((k, u, s), (a, f)) for k, u, s, a, f in index_rows(
            d, "SELECT t.layer, r.unit, t.setting_id, r.final_activation, r.is_argmax FROM actmax_results r "
               "JOIN tasks t ON t.task_key = r.task_key"))
        r0, r1, r2 = rows(self.out("nchw")), rows(self.out("nhwc")), rows(self.out("bf16"))
        self.assertEqual(len(r0), 54)
        self.assertEqual(set(r0), set(r1))
        # The same seed gives the same starting image: its objective (iteration 0 of the trace)
        # differs by the forward pass's rounding alone (measured 2e-7 of its scale). A layout
        # that computed something else would differ by O(1) here.
        t0, t1 = actmax_traces(self.out("nchw")), actmax_traces(self.out("nhwc"))
        self.assertEqual(len(t0), 18)
        for key in t0:
            a, b = t0[key], t1[key]  # [iterations, units]
            scale = np.maximum(1.0, np.abs(a).max(axis=0))
            self.assertLess(float((np.abs(a[0] - b[0]) / scale).max()), 1e-5, key)
        # Over the iterations the rounding differences grow, in jumps (a ReLU or max-pool that
        # switches): the final activations moved by up to 0.7% per unit after 30 steps on both
        # an AMD EPYC (Genoa) and an Intel Xeon (AMX). 5% per unit is seven times that.
        for k in r0:
            self.assertAlmostEqual(r0[k][0], r1[k][0], delta=0.05 * max(1.0, abs(r0[k][0])), msg=str(k))
        # bf16 is another sweep: every task key differs, and the keys say why.
        self.assertFalse(set(ref) & set(bf16))
        self.assertEqual(len(bf16), len(ref))
        canon = []
        for key, shard in index_rows(self.out("bf16"), "SELECT task_key, shard FROM actmax_results GROUP BY task_key"):
            with h5py.File(os.path.join(self.out("bf16"), shard), "r") as f:
                c = f["tasks"][key].attrs["canonical"]
                canon.append(c.decode() if isinstance(c, bytes) else str(c))
        self.assertTrue(canon and all("|precision=bf16" in c for c in canon), canon[:2])
        # Its keys, and so its seeds and starting images, differ from fp32's; its optimized
        # images, scored in the index, climb as far as fp32's within 15% per layer (measured
        # 0.97..1.10 of fp32's sum per layer and setting, with bf16 units).
        for layer in ("conv2_1", "conv4_2", "fc8"):
            s0 = sum(v[0] for k, v in r0.items() if k[0] == layer)
            s2 = sum(v[0] for k, v in r2.items() if k[0] == layer)
            self.assertGreater(s2, 0.85 * s0, layer)
        # Resuming the fp32 directory with the bf16 sweep is refused: the spec differs.
        r = run(mpirun(1, "run", sweeps["bf16"], "--out", self.out("nchw")))
        self.assertNotEqual(r.returncode, 0)

    def test_per_layer_compute_runs_only_that_layers_actmax_in_its_format(self):
        with open(SMALL) as f:
            text = f.read()
        path = os.path.join(self.tmp, "small_fc8_bf16.yaml")
        with open(path, "w") as f:
            f.write(text.replace("threads: 1\n", "threads: 1\ncompute:\n  fc8: {precision: bf16, channels_last: true, fp32_finish: 0.25}\n"))
        plain, tuned = self.out("per_layer_plain"), self.out("per_layer_bf16")
        for sweep, d in ((SMALL, plain), (path, tuned)):
            r = run(mpirun(1, "run", sweep, "--out", d))
            self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("fp32 (fc8: bf16, channels_last, fp32_finish 0.25)", r.stderr)
        ref, got = task_data(plain), task_data(tuned)
        fc8 = {k for k, in index_rows(tuned, "SELECT task_key FROM tasks WHERE technique = 'actmax' AND layer = 'fc8'")}
        self.assertEqual(len(fc8), 6)  # 6 units in tasks of 4, 3 settings
        # Every other task (actmax of the other layers, and invert, fgsm, featuremaps) is the
        # same task, computed the same way on this machine: same keys, byte-identical data.
        self.assertEqual(set(ref) - set(got), {k for k, in index_rows(
            plain, "SELECT task_key FROM tasks WHERE technique = 'actmax' AND layer = 'fc8'")})
        self.assertEqual(set(got) - set(ref), fc8)
        for key in set(ref) & set(got):
            self.assertEqual(ref[key], got[key], key)
        # fc8's tasks say how they computed, in their keys and in their shard groups.
        for key, shard in index_rows(tuned, "SELECT task_key, shard FROM actmax_results GROUP BY task_key"):
            with h5py.File(os.path.join(tuned, shard), "r") as f:
                attrs = f["tasks"][key].attrs
                canonical = attrs["canonical"]
                canonical = canonical.decode() if isinstance(canonical, bytes) else str(canonical)
                compute = attrs.get("compute")
                compute = compute.decode() if isinstance(compute, bytes) else compute
            if key in fc8:
                self.assertIn("|precision=bf16|fp32_finish=0.25|layer=fc8", canonical)
                self.assertEqual(compute, "bf16, channels_last, fp32_finish 0.25")
            else:
                self.assertNotIn("precision", canonical)
                self.assertIsNone(compute)

    def test_tune_measures_every_group_and_status_compares_the_run(self):
        d = self.out("tuned")
        loads = lambda: {n for n in os.listdir(tempfile.gettempdir()) if n.startswith("vizsweep-tune-load-")}  # noqa: E731
        before = loads()
        t = run([VIZSWEEP, "tune", SMALL, "--out", d, "--units", "4", "--iters", "10", "--repeats", "1", "--ranks", "2"])
        self.assertEqual(t.returncode, 0, t.stderr)
        # The tasks' costs are measured with the run's other rank computing beside them (a copy
        # of the sweep, restarted whenever it finishes), which is gone with its scratch
        # directory when tune ends.
        self.assertIn("with 1 copy of the sweep running beside it as the run's other ranks", t.stdout)
        self.assertEqual(loads(), before)
        ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
        self.assertNotIn("vizsweep-tune-load-", ps)
        # One table per actmax layer: fp32 NCHW as the reference, every other format with its
        # guard verdict, and a choice that is fp32 or a format that passed.
        for layer in ("conv2_1", "conv4_2", "fc8"):
            block = t.stdout.split(f"\n{layer}: ")[1].split("\n\n")[0]
            rows = {line[2:40].strip(): line for line in block.splitlines()[2:] if line.startswith("  ") and "->" not in line}
            self.assertIn("reference", rows["fp32"])
            self.assertIn("fp32, channels_last", rows)
            chosen = block.split("-> ")[1].split(" (")[0]
            self.assertTrue(chosen == "fp32" or ("pass" in rows[chosen] and "FAIL" not in rows[chosen]), block)
        files = [os.path.join(d, "tune", f) for f in os.listdir(os.path.join(d, "tune"))]
        self.assertEqual(len(files), 1)
        import json
        with open(files[0]) as f:
            tuned = json.load(f)
        self.assertEqual(tuned["format"], "vizsweep-tune 1")
        self.assertEqual(tuned["threads"], 1)  # small.yaml's threads
        # Every (technique, layer, setting) of the sweep has a measured task.
        plan = run([VIZSWEEP, "plan", SMALL, "--out", d, "--ranks", "2"])
        self.assertEqual(plan.returncode, 0, plan.stderr)
        groups = {(g["technique"], g["layer"], g["setting"]) for g in tuned["groups"]}
        self.assertTrue(all(g["seconds"] > 0 and g["cost"] > 0 for g in tuned["groups"]))
        self.assertIn("projected time on " + tuned["machine"] + ", 2 ranks x 1 thread", plan.stdout)
        self.assertIn("wall on 2 ranks: about", plan.stdout)
        self.assertNotIn("not projected", plan.stdout)
        r = run(mpirun(2, "run", SMALL, "--out", d))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(groups, set(index_rows(d, "SELECT DISTINCT technique, layer, COALESCE(setting_id, -1) FROM tasks")))
        st = run([VIZSWEEP, "status", d])
        self.assertEqual(st.returncode, 0, st.stderr)
        self.assertIn("against the done tasks", st.stdout)
        m = re.search(r"task time: projected .*, took .* \(([0-9.]+)x\)", st.stdout)
        self.assertTrue(m, st.stdout)
        self.assertGreater(float(m.group(1)), 0)
        self.assertRegex(st.stdout, r"wall on 2 ranks, first task start to last finish: projected .*, took ")
        # With the projection, slurm suggests --time and counts the allocations.
        s = run([VIZSWEEP, "slurm", SMALL, "--out", d, "--nodes", "1", "--ranks-per-node", "2"])
        self.assertEqual(s.returncode, 0, s.stderr)
        self.assertRegex(s.stdout, r"--time \d\d:\d\d:00 \(suggested")
        self.assertIn("1 allocation (0 requeues)", s.stdout)
        s = run([VIZSWEEP, "slurm", SMALL, "--out", d, "--time", "2-00", "--drain-seconds", "60"])
        self.assertEqual(s.returncode, 0, s.stderr)
        self.assertIn("with --time 2-00: 1 allocation", s.stdout)

    def test_a_search_promotes_as_trials_complete_and_resumes(self):
        d = self.out("search")
        plan = run([VIZSWEEP, "plan", SEARCH])
        self.assertEqual(plan.returncode, 0, plan.stderr)
        self.assertIn("actmax search (asha, eta 2, metric score): 8 settings on 4 sampled units of each of 2 layers, rungs of 4, 8, 16 iterations",
                      plan.stdout)
        self.assertRegex(plan.stdout, r"search cost: expected [0-9.]+ TFLOP \(trials per rung and layer 8, 4, 2")
        r = run(mpirun(2, "run", SEARCH, "--out", d))
        self.assertEqual(r.returncode, 0, r.stderr)
        values, want, got = search_decisions(d)
        # Every setting's first rung ran on both layers; the promotions are the rule's over the
        # order the results came in, and a later rung ran exactly for the settings promoted.
        for layer in ("conv2_1", "fc8"):
            self.assertEqual({b for (l, b, r) in values if l == layer and r == 0}, set(range(8)))
        self.assertEqual(got, want)
        self.assertEqual({(l, b, r - 1) for (l, b, r) in values if r > 0}, got)
        self.assertEqual(index_rows(d, "SELECT COUNT(*) FROM tasks")[0][0], len(values))
        # A trial's value is its rows' mean score (one task per trial: 4 units fit a task).
        for layer, base, rung, value, mean in index_rows(
                d, "SELECT st.layer, st.base_setting, st.rung, st.value, AVG(r.score) FROM search_trials st "
                   "JOIN tasks t ON t.layer = st.layer AND t.setting_id = st.setting_id "
                   "JOIN actmax_results r ON r.task_key = t.task_key GROUP BY st.layer, st.base_setting, st.rung"):
            self.assertAlmostEqual(value, mean, places=12, msg=(layer, base, rung))
        chosen = dict(re.findall(r"search (\S+): chosen (\S+) \(", r.stderr))
        self.assertEqual(set(chosen), {"conv2_1", "fc8"}, r.stderr)
        self.assertIn("unit-iterations of the grid's", r.stderr)
        # The analysis package reads the search: its table and figure, and `best` puts the
        # choice first.
        fig = os.path.join(d, "search.png")
        a = subprocess.run(["/usr/bin/python3", "-m", "analysis", "search", d, "-o", fig], cwd=os.path.join(HERE, "..", ".."),
                           capture_output=True, text=True, timeout=300)
        self.assertEqual(a.returncode, 0, a.stderr)
        self.assertGreater(os.path.getsize(fig), 10000)
        for layer, name in chosen.items():
            self.assertIn(f"{layer}: 8 settings, rungs of 4, 8, 16 iterations, metric score; chosen {name} (", a.stdout)
            b = subprocess.run(["/usr/bin/python3", "-m", "analysis", "best", d, "--layer", layer], cwd=os.path.join(HERE, "..", ".."),
                               capture_output=True, text=True, timeout=300)
            self.assertEqual(b.returncode, 0, b.stderr)
            first = b.stdout.splitlines()[1].split()
            self.assertEqual(first[:3], [layer, "1", name], b.stdout)
        # Again: nothing to run, nothing decided again; verify clean.
        before = index_rows(d, "SELECT * FROM search_trials ORDER BY completed")
        r2 = run(mpirun(2, "run", SEARCH, "--out", d))
        self.assertEqual(r2.returncode, 0, r2.stderr)
        self.assertIn(" 0 to run", r2.stderr)
        self.assertEqual(index_rows(d, "SELECT * FROM search_trials ORDER BY completed"), before)
        v = run([VIZSWEEP, "verify", d])
        self.assertEqual(v.returncode, 0, v.stdout + v.stderr)
        # status: each layer's rungs, trials completed and promoted (from the index).
        st = run([VIZSWEEP, "status", d])
        self.assertEqual(st.returncode, 0, st.stderr)
        self.assertIn("search (score; trials completed, promoted, best so far):", st.stdout)
        for layer in ("conv2_1", "fc8"):
            n1 = sum(1 for (l, _, r) in values if l == layer and r == 1)
            p0 = sum(1 for (l, _, r) in got if l == layer and r == 0)
            self.assertRegex(st.stdout, rf"  {layer}: rung 1 \(4 it\) 8, {p0}, [0-9.]+; rung 2 \(8 it\) {n1}, ")

    def test_another_sweeps_directory_is_refused(self):
        d = self.out("mixed")
        self.assertEqual(run([VIZSWEEP, "run", SMALL, "--out", d]).returncode, 0)
        before = index_rows(d, "SELECT COUNT(*) FROM tasks")[0][0]
        r = run([VIZSWEEP, "run", SLOW, "--out", d])
        self.assertEqual(r.returncode, 2)
        self.assertIn("holds sweep 'small'", r.stderr)
        self.assertEqual(index_rows(d, "SELECT COUNT(*) FROM tasks")[0][0], before)

    def test_world_size_must_match_slurm_ntasks(self):
        # What a launch without PMIx looks like to each process (Debian's Open MPI aborts in
        # MPI_Init there, other builds start N worlds of one): the run refuses to start.
        d = self.out("world")
        r = subprocess.run([VIZSWEEP, "run", SMALL, "--out", d], env=dict(ENV, SLURM_JOB_ID="7", SLURM_NTASKS="2"),
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("MPI: world size 1 but SLURM_NTASKS=2", r.stderr)
        self.assertIn("srun --mpi=pmix", r.stderr)
        self.assertFalse(os.path.exists(d), "nothing written")

    def test_plan_counts_every_unit_of_vgg16(self):
        sweep = os.path.join(HERE, "..", "..", "sweeps", "examples", "vgg16_all_units.yaml")
        r = run([VIZSWEEP, "plan", sweep, "--out", self.out("never")])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("actmax: 13,416 units x 4 settings x 1 seeds = 53,664 optimized images", r.stdout)
        for layer, units in (("conv1_1", 64), ("conv5_3", 512), ("fc6", 4096), ("fc8", 1000)):
            self.assertRegex(r.stdout, rf"\n\s+{layer}\s+[\d,]+\s+{units * 4:,}\s+4\s")
        self.assertFalse(os.path.exists(self.out("never")), "plan writes nothing")

    def test_plan_estimates_the_vgg16_exemplar_scan(self):
        """sweeps/examples/vgg16_exemplars.yaml on a folder of 50,000 images (links to one PNG,
        as ImageNet's validation set would be 50,000 JPEGs): every unit of VGG16, 98 shards."""
        sys.path.insert(0, os.path.join(HERE, "..", ".."))
        from analysis.index import write_png
        folder = self.out("val")
        os.makedirs(folder, exist_ok=True)
        first = os.path.join(folder, "00000.png")
        write_png(first, np.zeros((16, 16), np.uint8))
        for i in range(1, 50000):
            os.link(first, os.path.join(folder, f"{i:05d}.png"))
        with open(os.path.join(folder, "LICENSE.txt"), "w") as f:
            f.write("not an image")
        with open(os.path.join(HERE, "..", "..", "sweeps", "examples", "vgg16_exemplars.yaml")) as f:
            text = f.read().replace("folder: imagenet/val", f"folder: {folder}")
        sweep = self.out("vgg16_exemplars.yaml")
        with open(sweep, "w") as f:
            f.write(text)
        r = run([VIZSWEEP, "plan", sweep])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("exemplars: 50,000 images in 98 shards, top-9 of every unit by its maximum over positions; "
                      "1 non-image files in the folder skipped", r.stdout)
        # VGG16's forward pass at 224 px is 15.47 G multiply-adds, 30.95 GFLOP: 50,000 of them
        tflop = float(re.search(r"cost estimate: ([\d.]+) TFLOP", r.stdout).group(1))
        self.assertAlmostEqual(tflop, 50000 * 30.95e9 / 1e12, delta=5)
        print(r.stdout.strip().splitlines()[-4])
        shutil.rmtree(folder)

    def test_plan_sizes_tasks_to_batch_memory(self):
        """fc8 tasks hold as many units as fit batch_memory_gb: 4 bytes per output element of
        every layer of torchvision's VGG16 (counted here from torchvision itself) per unit."""
        import torch
        import torchvision
        vgg = torchvision.models.vgg16()
        x, elems = torch.zeros(1, 3, 224, 224), 0
        with torch.no_grad():
            for m in list(vgg.features) + [vgg.avgpool, torch.nn.Flatten()] + list(vgg.classifier):
                x = m(x)
                elems += 0 if isinstance(m, torch.nn.Flatten) else x.numel()
        per_unit = 4 * elems
        sweep = os.path.join(self.tmp, "mem.yaml")
        with open(sweep, "w") as f:
            f.write("name: mem\nbatch_memory_gb: 1\nmodel: {builtin: vgg16}\n"
                    "actmax:\n  layers: [conv3_3, fc8]\n  units: 0-99\n  units_per_batch: 64\n")
        r = run([VIZSWEEP, "plan", sweep, "--out", self.out("never")])
        self.assertEqual(r.returncode, 0, r.stderr)
        fit = 2**30 // per_unit  # 9 units
        m = re.search(r"\n\s+fc8\s+(\d+)\s+100\s+1\s+[0-9.]+\s+(\d+)\s+([0-9.]+)\n", r.stdout)
        self.assertIsNotNone(m, r.stdout)
        self.assertEqual((int(m.group(1)), int(m.group(2))), (-(-100 // fit), fit))
        self.assertAlmostEqual(float(m.group(3)), fit * per_unit / 2**30, places=2)
        # conv3_3 runs on its 44 px crop: 64 units fit, as the sweep asks.
        self.assertRegex(r.stdout, r"\n\s+conv3_3\s+2\s+100\s+1\s+[0-9.]+\s+64\s")

    def fashion_sweep(self, name, actmax, exemplar_units=""):
        """Writes a sweep file on the default model with its judge: actmax at conv2_1 and fc8 (the
        section's other lines in `actmax`) and their exemplars over 600 test images, top and
        bottom 5 (`exemplar_units`: a units line for them). Returns its path."""
        models = os.path.join(HERE, "..", "..", "models")
        sweep = os.path.join(self.tmp, name + ".yaml")
        with open(sweep, "w") as f:
            f.write(f"name: {name}\nmodel: {{file: {models}/fashion_vgg11.pt}}\nthreads: 1\nactmax:\n"
                    f"  layers: [conv2_1, fc8]\n  judge: {models}/fashion_judge.pt\n{actmax}"
                    f"exemplars:\n  layers: [conv2_1, fc8]\n{exemplar_units}"
                    "  images: {dataset: fashion-mnist, split: test, count: 600}\n  k: 5\n  bottom: true\n  images_per_task: 200\n")
        return sweep

    def test_machine_interpretability_recomputed_with_pytorch(self):
        """A sweep with actmax and exemplars (top and bottom) on the default model: once every
        task is done, each image gets `mis`, recomputed here with PyTorch from the stored
        images: the image cut to its centre unit's receptive field, the exemplars' crops, all
        resized to the judge's input, the judge's logits, and the share of (top, bottom) pairs
        whose top exemplar is nearer. Hidden units take it as their score, class units keep the
        judge's probability. A resumed run that finds everything done scores nothing again; with
        `exemplars.feature_layer` the images without mis are scored in that tap's statistics."""
        import torch
        import torch.nn.functional as F
        models = os.path.join(HERE, "..", "..", "models")
        d = self.out("mis")
        sweep = self.fashion_sweep("mis", "  units: 0-3\n  grid: {iterations: 30, lr_policy: adam, lr: 0.05, param: fft, background: [0.12, 0.5]}\n",
                                   "  units: 0-3\n")
        r = run(mpirun(2, "run", sweep, "--out", d))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("machine interpretability: 16 visualizations of 8 units scored", r.stderr)
        judge = torch.jit.load(os.path.join(models, "fashion_judge.pt")).eval()

        def features(crops, tap):
            """The judge's logits, or (tap "2") its stem's ReLU averaged over positions."""
            x = torch.stack([F.interpolate(torch.from_numpy(c.astype(np.float32) / 255.0)[None, None], size=(32, 32),
                                           mode="bilinear", align_corners=False, antialias=True)[0].clamp(0, 1)
                             if c.shape != (32, 32) else torch.from_numpy(c.astype(np.float32) / 255.0)[None]
                             for c in crops])
            with torch.no_grad():
                if tap == "logits":
                    return judge((x - 0.5) / 0.5).double()
                y = (x - 0.5) / 0.5
                for name in ("0", "1", "2"):  # the judge is a Sequential: conv, batch norm, ReLU, ...
                    y = getattr(judge, name)(y)
                return y.mean((2, 3)).double()

        def image(shard, dataset):
            with h5py.File(os.path.join(d, shard), "r") as f:
                return f[dataset][()]

        def check(taps):
            rows = index_rows(d, "SELECT t.layer, r.unit, r.mis, r.activation_ratio, r.final_activation, r.score, "
                                 "r.judge_prob, r.shard, r.dataset FROM actmax_results r JOIN tasks t ON t.task_key = r.task_key")
            self.assertEqual(len(rows), 16)
            exact = 0
            for layer, unit, mis, ratio, act, score, prob, shard, dataset in rows:
                ex = {kind: index_rows(d, "SELECT activation, box_y0, box_y1, box_x0, box_x1, shard, dataset FROM exemplars "
                                          "WHERE layer = ? AND unit = ? AND kind = ? ORDER BY rank", layer, unit, kind)
                      for kind in ("top", "bottom")}
                crops = {kind: [image(e[5], e[6])[e[1]:e[2], e[3]:e[4]] for e in ex[kind]] for kind in ex}
                viz = image(shard, dataset)
                if layer == "conv2_1":  # the centre unit (8, 8) of a 16 x 16 output sees input rows and columns 13..20
                    viz = viz[13:21, 13:21]
                tap = taps.get(layer, "logits")
                ref = features([viz], tap)[0]
                dt = (features(crops["top"], tap) - ref).norm(dim=1)
                db = (features(crops["bottom"], tap) - ref).norm(dim=1)
                want = float(((dt[:, None] < db[None, :]).double() + 0.5 * (dt[:, None] == db[None, :]).double()).mean())
                # The same float32 passes in the same LibTorch; a pair's answer could flip only if its
                # two distances tie to within rounding: one pair of 25 at most.
                self.assertAlmostEqual(mis, want, delta=1 / 25 + 1e-12, msg=f"{layer} unit {unit} in {tap}")
                exact += mis == want
                self.assertAlmostEqual(ratio, act / ex["top"][0][0], places=9)
                # Class units: the judge's probability; others: mis times the drive (schema 1.9).
                self.assertEqual(score, prob if layer == "fc8" else mis * min(max(ratio, 0.0), 1.0))
            self.assertGreaterEqual(exact, 15)
            return {(layer, unit): mis for layer, unit, mis, *_ in rows}

        in_logits = check({})
        # everything done: a second run scores nothing
        r = run(mpirun(1, "run", sweep, "--out", d))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("machine interpretability", r.stderr)
        # exemplars.feature_layer: the images without mis are scored in the stem's channel
        # statistics at conv2_1, in logits at fc8.
        db = sqlite3.connect(os.path.join(d, "index.sqlite"))
        db.execute("UPDATE actmax_results SET mis = NULL")
        db.commit()
        db.close()
        with open(sweep, "a") as f:
            f.write("  feature_layer: {conv2_1: '2'}\n")
        r = run(mpirun(1, "run", sweep, "--out", d))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("machine interpretability: 16 visualizations of 8 units scored", r.stderr)
        in_stem = check({"conv2_1": "2"})
        self.assertEqual({k: v for k, v in in_stem.items() if k[0] == "fc8"}, {k: v for k, v in in_logits.items() if k[0] == "fc8"})

    def test_a_search_ranks_trials_by_the_final_score_of_the_exemplars(self):
        """A search at layers the exemplars section scores: the exemplar scan runs first, every
        trial's images get mis and activation_ratio as the trial completes (the worker scores them
        in memory against the lists the coordinator sends), so a trial's value is the mean of the
        score the finished sweep reports, and the finishing step has nothing left to score. The
        values equal what the finishing step computes from the shards (cleared and rescored)."""
        d = self.out("search_mis")
        sweep = self.fashion_sweep(
            "search_mis", "  units_per_batch: 4\n"
            "  grid: {lr_policy: adam, lr: [0.02, 0.05], param: fft, background: [0.12, 0.5], blur_radius: [0, 1], blur_every: 4}\n"
            "  search: {metric: score, min_iterations: 5, max_iterations: 20, eta: 2, units: 4, seed: 3}\n")
        plan = run([VIZSWEEP, "plan", sweep])
        self.assertEqual(plan.returncode, 0, plan.stderr)
        self.assertIn("trials at conv2_1, fc8 wait for the exemplar scan", plan.stdout)
        r = run(mpirun(2, "run", sweep, "--out", d))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertNotIn("machine interpretability:", r.stderr)  # nothing left for the finishing step
        # The scan first: no actmax task started before the last exemplars task finished.
        (last_scan,), (first_trial,) = (index_rows(d, f"SELECT {f} FROM tasks WHERE technique = ?", t)[0]
                                        for f, t in (("MAX(finished_at)", "exemplars"), ("MIN(started_at)", "actmax")))
        self.assertLess(last_scan, first_trial)
        rows = index_rows(d, "SELECT r.task_key, r.unit, r.copy, r.mis, r.activation_ratio, r.score, t.layer FROM actmax_results r "
                             "JOIN tasks t USING (task_key) ORDER BY 1, 2, 3")
        self.assertEqual(len(rows), 4 * index_rows(d, "SELECT COUNT(*) FROM search_trials")[0][0])  # 4 units a trial
        self.assertTrue(all(m is not None and a is not None for _, _, _, m, a, _, _ in rows))
        # At the hidden layer the trial ranks by mis x drive; each trial's value is its rows' mean.
        for layer, base, rung, value, mean, mis in index_rows(
                d, "SELECT st.layer, st.base_setting, st.rung, st.value, AVG(r.score), AVG(r.mis) FROM search_trials st "
                   "JOIN tasks t ON t.layer = st.layer AND t.setting_id = st.setting_id "
                   "JOIN actmax_results r ON r.task_key = t.task_key GROUP BY st.layer, st.base_setting, st.rung"):
            self.assertAlmostEqual(value, mean, places=12, msg=(layer, base, rung))
        self.assertTrue(any(0 < m < 1 for _, _, _, m, _, _, layer in rows if layer == "conv2_1"))
        # The finishing step, from the shards, computes the same: mis for the same images and lists
        # (a feature pass over another batch could move a pair's distances by rounding: a tie
        # flipped is one pair of 25), activation_ratio and the score.
        db = sqlite3.connect(os.path.join(d, "index.sqlite"))
        db.execute("UPDATE actmax_results SET mis = NULL, activation_ratio = NULL")
        db.commit()
        db.close()
        r = run(mpirun(1, "run", sweep, "--out", d))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(f"machine interpretability: {len(rows)} visualizations of 8 units scored", r.stderr)
        again = index_rows(d, "SELECT r.task_key, r.unit, r.copy, r.mis, r.activation_ratio, r.score, t.layer FROM actmax_results r "
                              "JOIN tasks t USING (task_key) ORDER BY 1, 2, 3")
        exact = 0
        for a, b in zip(rows, again):
            self.assertEqual(a[:3], b[:3])
            self.assertAlmostEqual(a[3], b[3], delta=1 / 25 + 1e-12, msg=a)
            self.assertAlmostEqual(a[4], b[4], places=12, msg=a)
            exact += a[3] == b[3] and a[5] == b[5]
        self.assertGreaterEqual(exact, len(rows) - 2)

    def test_a_judge_scores_the_class_images(self):
        """actmax.judge: the class units' rows (the model's output layer) carry the probability
        the independent judge (models/fashion_judge.pt, a residual network) gives each unit's
        class, recomputed here with PyTorch from the stored 8-bit images; other layers keep the
        score without a judge. A judge of another class count is refused before anything is
        written."""
        import torch
        models = os.path.join(HERE, "..", "..", "models")
        d = self.out("judged")
        sweep = os.path.join(self.tmp, "judged.yaml")
        with open(sweep, "w") as f:
            f.write(f"name: judged\nmodel: {{file: {models}/fashion_vgg11.pt}}\nactmax:\n"
                    f"  layers: [conv3_1, fc8]\n  units: 0-9\n  judge: {models}/fashion_judge.pt\n"
                    "  grid: {iterations: 40, lr_policy: adam, lr: 0.05, param: fft, jitter: 0.07, pad: 0.05}\n")
        r = run(mpirun(2, "run", sweep, "--out", d))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        rows = index_rows(d, "SELECT t.layer, r.unit, r.judge_prob, r.judge_class, r.score, r.robustness, r.hf_energy, "
                             "r.shard, r.dataset FROM actmax_results r JOIN tasks t ON t.task_key = r.task_key "
                             "ORDER BY t.layer, r.unit")
        self.assertEqual(len(rows), 20)
        judge = torch.jit.load(os.path.join(models, "fashion_judge.pt")).eval()
        for layer, unit, prob, cls, score, robustness, hf, shard, dataset in rows:
            if layer == "conv3_1":
                self.assertIsNone(prob)
                self.assertIsNone(cls)
                self.assertAlmostEqual(score, min(max(robustness, 0), 1) * (1 - hf), places=12)
                continue
            with h5py.File(os.path.join(d, shard), "r") as f:
                image = f[dataset][()]
                stored = f[dataset.rsplit("/", 1)[0] + "/judge_probabilities"][()]
            x = torch.from_numpy(image.astype(np.float32) / 255.0).reshape(1, 1, 32, 32)
            with torch.no_grad():
                p = torch.softmax(judge((x - 0.5) / 0.5), 1)[0]
            # The same float32 forward pass in the same LibTorch; only the order of sums (threads)
            # may differ, far below 1e-4 of a probability.
            self.assertAlmostEqual(prob, float(p[unit]), delta=1e-4)
            self.assertEqual(cls, int(p.argmax()))
            self.assertEqual(score, prob)
            pos = list(index_rows(d, "SELECT r.unit FROM actmax_results r JOIN tasks t ON t.task_key = r.task_key "
                                     "WHERE t.layer = 'fc8' ORDER BY r.unit")).index((unit,))
            self.assertAlmostEqual(float(stored[pos][unit]), prob, places=6)
        # 40 steps are enough for the judge to see some classes, not none.
        self.assertGreater(index_rows(d, "SELECT SUM(r.judge_class = r.unit) FROM actmax_results r")[0][0], 0)
        # the judge's hash is in the class tasks' keys only: without it, conv3_1's key is the same
        plain = os.path.join(self.tmp, "unjudged.yaml")
        with open(sweep) as f, open(plain, "w") as g:
            g.write("".join(line for line in f if "judge:" not in line))
        d2 = self.out("unjudged")
        r = run(mpirun(2, "run", plain, "--out", d2))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        keys = {row[0]: row[1] for row in index_rows(d, "SELECT layer, task_key FROM tasks")}
        keys2 = {row[0]: row[1] for row in index_rows(d2, "SELECT layer, task_key FROM tasks")}
        self.assertEqual(keys["conv3_1"], keys2["conv3_1"])
        self.assertNotEqual(keys["fc8"], keys2["fc8"])
        self.assertEqual(index_rows(d2, "SELECT COUNT(*) FROM actmax_results WHERE judge_prob IS NULL")[0][0], 20)
        # a judge of another class count: refused, naming the field, nothing written
        other = os.path.join(self.tmp, "judge5.pt")
        e = subprocess.run(["/usr/bin/python3", os.path.join(models, "export_torchvision.py"), "--arch", "resnet_small",
                            "--in-channels", "1", "--num-classes", "5", "--input-size", "32", "-o", other],
                           capture_output=True, text=True)
        self.assertEqual(e.returncode, 0, e.stderr)
        with open(sweep) as f, open(plain, "w") as g:
            g.write(f.read().replace(f"{models}/fashion_judge.pt", other))
        fresh = self.out("judged5")
        r = run(mpirun(1, "run", plain, "--out", fresh))
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("actmax.judge", r.stderr)
        self.assertIn("to 5 classes; the model 1 to 10", r.stderr)
        self.assertFalse(os.path.exists(os.path.join(fresh, "index.sqlite")))

    def test_exemplars_of_three_ranks_equal_one_scan_on_idx_and_folder_datasets(self):
        """Top-9 and bottom-9 of every unit of four layers: a dataset split into shards on 3
        ranks, merged by the index's `exemplars` view, equals one task scanning all of it on 1
        rank, row for row (ids, activations, positions, boxes); on an IDX slice and on a folder
        of PNG files (in subfolders, with a text file that is skipped and counted)."""
        sys.path.insert(0, os.path.join(HERE, "..", ".."))
        from analysis.index import write_png
        folder = self.out("pngs")
        import gzip
        with gzip.open("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz", "rb") as f:
            px = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
        for i in range(450):
            os.makedirs(os.path.join(folder, f"part{i % 3}"), exist_ok=True)
            write_png(os.path.join(folder, f"part{i % 3}", f"{i:04d}.png"), px[5000 + i])
        with open(os.path.join(folder, "notes.txt"), "w") as f:
            f.write("not an image")
        head = ("model: {builtin: vgg11, width: 0.125, in_channels: 1, num_classes: 10, fc_width: 32, pool: 1, "
                "input_size: 32, seed: 3}\nthreads: 1\nexemplars:\n  layers: [conv1_1, conv3_1, conv5_2, fc8]\n"
                "  k: 9\n  bottom: true\n  batch: 50\n")
        cols = "layer, unit, kind, rank, image_id, source, activation, y, x, box_y0, box_y1, box_x0, box_x1"
        for label, images_yaml, n in (("idx", "{dataset: fashion-mnist, split: test, start: 100, count: 1200}", 1200),
                                      ("folder", "{folder: " + folder + "}", 450)):
            merged = {}
            for ranks, per_task in ((3, 150), (1, n)):
                sweep = self.out(f"ex-{label}-{ranks}.yaml")
                with open(sweep, "w") as f:
                    f.write(f"name: ex{label}{ranks}\n" + head + f"  images: {images_yaml}\n  images_per_task: {per_task}\n")
                p = run([VIZSWEEP, "plan", sweep])
                self.assertEqual(p.returncode, 0, p.stderr)
                self.assertIn(f"{n:,} images in {-(-n // per_task)} shards, top-9 and bottom-9", p.stdout)
                if label == "folder":
                    self.assertIn("1 non-image files in the folder skipped", p.stdout)
                d = self.out(f"ex-{label}-{ranks}")
                r = run(mpirun(ranks, "run", sweep, "--out", d))
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertEqual(index_rows(d, "SELECT COUNT(*) FROM tasks WHERE state='done'")[0][0], -(-n // per_task))
                merged[ranks] = index_rows(d, f"SELECT {cols} FROM exemplars ORDER BY layer, unit, kind, rank")
                v = run([VIZSWEEP, "verify", d])
                self.assertEqual(v.returncode, 0, v.stdout)
                # Each row's crop: the stored image (model input size) is the dataset's image.
                shard, dataset, image_id, source = index_rows(
                    d, "SELECT shard, dataset, image_id, source FROM exemplars WHERE layer='fc8' AND unit=0 AND rank=1")[0]
                with h5py.File(os.path.join(d, shard), "r") as f:
                    stored = np.asarray(f[dataset])
                self.assertEqual(stored.shape[:2], (32, 32))
                if label == "folder":
                    self.assertTrue(source.startswith(folder + "/part"), source)
                    self.assertEqual(source, os.path.join(folder, f"part{int(source[-8:-4]) % 3}", source[-8:]))
            # 8 + 32 + 64 + 10 units (vgg11 at width 1/8), top and bottom, 9 each.
            self.assertEqual(len(merged[1]), (8 + 32 + 64 + 10) * 2 * 9, label)
            self.assertEqual(merged[3], merged[1], f"{label}: 3 ranks' merged lists differ from one scan")
            print(f"exemplars on {label}: {len(merged[1])} list entries, 3 ranks x shards of 150 = 1 rank x 1 task", flush=True)

    def test_bad_inputs_write_nothing(self):
        d = self.out("nothing")
        bad = os.path.join(self.tmp, "bad.yaml")
        with open(bad, "w") as f:
            f.write("model: {builtin: vgg11, width: 0.0625, input_size: 32}\nactmax:\n  layers: [conv9_9]\n")
        for args, msg in ((["run", bad, "--out", d], 'actmax.layers[0]: no layer "conv9_9"'),
                          (["plan", bad], 'no layer "conv9_9"'),
                          (["run", "/nonexistent.yaml", "--out", d], "/nonexistent.yaml: cannot read sweep file"),
                          (["status", d], "no index here"),
                          (["run", SMALL, "--journal", "nfs"], "--journal: expected wal or delete"),
                          (["frobnicate"], "unknown command 'frobnicate'")):
            r = run([VIZSWEEP, *args])
            self.assertEqual(r.returncode, 2, args)
            self.assertIn(msg, r.stderr, args)
        self.assertFalse(os.path.exists(d), "nothing written for bad input")

    def test_fp16_sweep_plans_anywhere_and_runs_only_on_a_gpu(self):
        fp16 = os.path.join(self.tmp, "fp16.yaml")
        with open(fp16, "w") as f:
            f.write("precision: fp16\nchannels_last: true\n"
                    "model: {builtin: vgg11, width: 0.0625, input_size: 32}\nactmax:\n  layers: [conv2_1]\n")
        p = run([VIZSWEEP, "plan", fp16])  # a login node without a GPU can plan it
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("compute: fp16, channels_last", p.stdout)
        d = self.out("fp16")
        if shutil.which("nvidia-smi"):
            self.skipTest("a GPU machine runs fp16")
        r = run([VIZSWEEP, "run", fp16, "--out", d])
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("fp16.yaml: precision: fp16 needs a CUDA device", r.stderr)
        self.assertFalse(os.path.exists(os.path.join(d, "index.sqlite")), "nothing written")
        # The same for one layer's format.
        with open(fp16, "w") as f:
            f.write("compute:\n  conv2_1: {precision: fp16}\n"
                    "model: {builtin: vgg11, width: 0.0625, input_size: 32}\nactmax:\n  layers: [conv2_1]\n")
        r = run([VIZSWEEP, "run", fp16, "--out", d])
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("fp16.yaml: compute.conv2_1.precision: fp16 needs a CUDA device", r.stderr)
        self.assertFalse(os.path.exists(os.path.join(d, "index.sqlite")), "nothing written")


if __name__ == "__main__":
    unittest.main(verbosity=2)
