"""The robust example (sweeps/examples/robust.yaml) on 2 ranks, killed at random points and
resumed, against an uninterrupted run: SIGKILL of a worker rank, of the coordinator and of
mpirun, per seed, each resumed by the same `vizsweep run` until the sweep completes. Then the
two directories must hold the same results (scripts/compare_results.py: every index row and
every HDF5 dataset byte for byte), and `vizsweep verify` must be clean.

    /usr/bin/python3 bench/attack_kills.py [--images 2000] [--seeds 3,7] [--build build]

--images scales the sweep down (its first N test images); at the default 10,000 each run takes
about half an hour on 2 cores."""
import argparse
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "runner"))

p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument("--images", type=int, default=10000)
p.add_argument("--seeds", default="3,7")
p.add_argument("--build", default=os.path.join(ROOT, "build"))
p.add_argument("--keep", help="keep the directories here")
a = p.parse_args()
os.environ["VIZSWEEP"] = os.path.join(a.build, "runner", "vizsweep")
from test_faults import wait_gone, wait_ranks  # noqa: E402
from test_runner import ENV, VIZSWEEP, index_rows, mpirun, run, wait_for_done  # noqa: E402

tmp = a.keep or tempfile.mkdtemp(prefix="vizsweep_attack_kills_")
with open(os.path.join(ROOT, "sweeps", "examples", "robust.yaml")) as f:
    text = f.read().replace("../../models/", os.path.join(ROOT, "models") + "/")
text = text.replace("split: test}", f"split: test, count: {a.images}}}").replace("name: robust", "name: robust_kills")
text = re.sub(r"images_per_batch: \d+", "images_per_batch: 250", text)
sweep = os.path.join(tmp, "robust_kills.yaml")
with open(sweep, "w") as f:
    f.write(text)
t0 = time.time()
ref = os.path.join(tmp, "ref")
r = subprocess.run(mpirun(2, "run", sweep, "--out", ref), env=ENV, capture_output=True, text=True)
assert r.returncode == 0, r.stderr
n = index_rows(ref, "SELECT COUNT(*) FROM tasks")[0][0]
print(f"uninterrupted: {n} tasks in {time.time() - t0:.0f} s", flush=True)
kills = 0
for seed in [int(s) for s in a.seeds.split(",")]:
    rng = random.Random(seed)
    d = os.path.join(tmp, f"killed-{seed}")
    for victim in ("worker", "coordinator", "mpirun"):
        at = rng.randint(1, n - 2)
        proc = subprocess.Popen(mpirun(2, "run", sweep, "--out", d), env=ENV, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        done = wait_for_done(d, at, timeout=3600)
        time.sleep(rng.uniform(0, 2))
        ranks = wait_ranks(sweep, 2)
        if len(ranks) < 2 or proc.poll() is not None:
            print(f"seed {seed}: the run ended before the {victim} kill at {at}", flush=True)
            proc.wait()
            continue
        os.kill({"worker": ranks.get(1), "coordinator": ranks[0], "mpirun": proc.pid}[victim], signal.SIGKILL)
        kills += 1
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pass
        if not wait_gone(sweep, 10):
            os.killpg(proc.pid, signal.SIGKILL)
        print(f"seed {seed}: {victim} killed after {index_rows(d, 'SELECT COUNT(*) FROM tasks WHERE state=' + repr('done'))[0][0]}"
              f"/{n} tasks", flush=True)
    r = subprocess.run(mpirun(2, "run", sweep, "--out", d), env=ENV, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    v = run([VIZSWEEP, "verify", d])
    c = subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "scripts", "compare_results.py"), ref, d],
                       capture_output=True, text=True)
    dup = index_rows(d, "SELECT COUNT(*) - COUNT(DISTINCT task_key || '/' || image_id) FROM fgsm_results")[0][0]
    print(f"seed {seed}: resumed to the end; verify exit {v.returncode}; duplicated rows {dup}; "
          f"same as uninterrupted: {'yes' if c.returncode == 0 else 'NO'}", flush=True)
    if c.returncode != 0:
        print(c.stdout[-3000:])
print(f"{kills} kills in {time.time() - t0:.0f} s")
if not a.keep:
    shutil.rmtree(tmp, ignore_errors=True)
