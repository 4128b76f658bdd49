#!/usr/bin/python3
"""actmax.search (ASHA) against the exhaustive grid on the default model, same machine, same
run of this script:

  1. the search (bench/sweeps/search.yaml: the quickstart's seven layers, a grid of 48
     settings, rungs of 25, 100 and 400 iterations, eta 4, 10 sampled units per layer; --search
     puts other search settings in its place) on --ranks ranks;
  2. the grid: every one of the 48 settings at 400 iterations on the same sampled units (one
     sweep per layer, since each layer has its own sample);

and prints per layer: the search's choice, its metric at max_iterations in the grid against
the grid's best (for the score, the target is within 0.02), the unit-iterations each spent (target: the search at
most 1/4 of the grid's), the Spearman correlation of each rung's ranking with the grid's
ranking of the same settings, and what the chosen images look like (activation against the
grid's most activating setting, pixel contrast): where the score can mislead. Then the share
of rank-time spent waiting in each search run (--idle-ranks, e.g. 2,3,8).

    /usr/bin/python3 bench/search_check.py [--build build] [--out /tmp/search_check] [--ranks 2] [--idle-ranks 2,3,8]
        [--search 'metric: activation, min_iterations: 25, max_iterations: 400, eta: 4, units: 10']

Prints tables; never a pass/fail test."""
import argparse
import datetime
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time

import h5py
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from analysis.search import spearman  # noqa: E402
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
SEARCH = os.path.join(ROOT, "bench", "sweeps", "search.yaml")


def run(a, ranks, sweep, out):
    t0 = time.monotonic()
    r = subprocess.run(["mpirun", "-np", str(ranks), "--oversubscribe", a.vizsweep, "run", sweep, "--out", out],
                       capture_output=True, text=True, env=ENV)
    if r.returncode != 0:
        sys.exit(f"search_check: {sweep} failed:\n{r.stderr[-3000:]}")
    return r.stderr, time.monotonic() - t0


def index(out):
    return sqlite3.connect(f"file:{out}/index.sqlite?mode=ro", uri=True)


def iso(t):
    return datetime.datetime.strptime(t, "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()


def waiting_share(out, ranks):
    """1 - (the tasks' compute seconds) / (ranks x first dispatch to last finish)."""
    busy, first, last = index(out).execute("SELECT SUM(seconds), MIN(started_at), MAX(finished_at) FROM tasks").fetchone()
    span = iso(last) - iso(first)
    return 1 - busy / (ranks * span), span


def contrast(out, task_keys):
    """Mean over the images of these tasks of the pixels' standard deviation (0..1)."""
    db = index(out)
    values = []
    for key in task_keys:
        for shard, dataset in db.execute("SELECT shard, dataset FROM actmax_results WHERE task_key = ?", (key,)):
            with h5py.File(os.path.join(out, shard), "r") as f:
                values.append(float(np.asarray(f[dataset], dtype=np.float64).std() / 255))
    return float(np.mean(values)) if values else float("nan")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--build", default=os.path.join(ROOT, "build"))
    p.add_argument("--out", default="/tmp/search_check")
    p.add_argument("--ranks", type=int, default=2)
    p.add_argument("--search", help="the search's settings in place of bench/sweeps/search.yaml's, e.g. "
                                    "'metric: score, min_iterations: 25, max_iterations: 400, eta: 4, units: 10'")
    p.add_argument("--idle-ranks", default="", help="also run the search alone on these rank counts (e.g. 2,3,8) for the waiting share")
    a = p.parse_args()
    a.vizsweep = os.path.join(a.build, "runner", "vizsweep")
    shutil.rmtree(a.out, ignore_errors=True)
    os.makedirs(a.out)

    text = open(SEARCH).read().replace("../../models/", os.path.join(ROOT, "models") + "/")
    if a.search:
        text = re.sub(r"\n  search: \{.*\}", "\n  search: {" + a.search + "}", text)
    sweep = os.path.join(a.out, "search.yaml")
    with open(sweep, "w") as f:
        f.write(text)
    sd = os.path.join(a.out, "search")
    log, search_wall = run(a, a.ranks, sweep, sd)
    db = index(sd)
    rungs = [r[0] for r in db.execute("SELECT DISTINCT iterations FROM search_trials ORDER BY iterations")]
    top_iters = int(re.search(r"max_iterations: (\d+)", text).group(1))
    layers = [r[0] for r in db.execute("SELECT layer FROM search_trials GROUP BY layer ORDER BY MIN(completed)")]
    metric, column, higher = db.execute("SELECT m.name, m.column_name, m.higher_is_better FROM metrics m "
                                        "WHERE m.name = (SELECT metric FROM search_trials LIMIT 1)").fetchone()
    sign = 1 if higher else -1

    # The grid: every setting at max_iterations on each layer's sample.
    grid_text = re.sub(r"\n  search: .*", "", text)
    grid_text = re.sub(r"(\n  grid:\n)", rf"\1    iterations: {top_iters}\n", grid_text)
    grid_wall = 0.0
    grid = {}
    for layer in layers:
        # The sample: the units of every task of one rung-0 trial (a trial may span tasks).
        units = ",".join(r[0] for r in db.execute(
            "SELECT t.units FROM tasks t JOIN search_trials st ON st.setting_id = t.setting_id AND st.layer = t.layer "
            "WHERE t.layer = ? AND st.rung = 0 AND st.base_setting = 0", (layer,)))
        lt = re.sub(r"\n  layers: .*", f"\n  layers: [{layer}]\n  units: [{units}]", grid_text)
        lt = re.sub(r"^name: .*", f"name: grid_{layer}", lt, flags=re.M)
        path = os.path.join(a.out, f"grid_{layer}.yaml")
        with open(path, "w") as f:
            f.write(lt)
        out = os.path.join(a.out, f"grid_{layer}")
        _, wall = run(a, a.ranks, path, out)
        grid_wall += wall
        g = index(out)
        grid[layer] = {name: (score, act, key) for name, score, act, key in g.execute(
            f"SELECT s.name, AVG(r.{column}), AVG(r.final_activation), t.task_key FROM tasks t JOIN actmax_results r USING (task_key) "
            "JOIN actmax_settings s ON s.setting_id = t.setting_id GROUP BY s.setting_id")}
        grid[layer]["__dir__"] = out

    print(f"search: {os.path.relpath(SEARCH, ROOT)}, {a.ranks} ranks; {re.search(r'search: (.*)', text).group(1)}; "
          f"rungs of {', '.join(map(str, rungs))} iterations")
    print(f"metric: {metric}")
    print(f"{'layer':<8} {'chosen (search)':<44} {'its value':>9} {'grid best':>9} {'diff':>7} {'unit-it':>8} {'ratio':>6}  "
          f"rank correlation of each rung with the grid's ranking")
    total_search = total_grid = 0
    notes = []
    for layer in layers:
        trials = db.execute("SELECT st.base_setting, st.rung, st.iterations, st.units, st.value, s.name FROM search_trials st "
                            "JOIN actmax_settings s ON s.setting_id = st.setting_id WHERE st.layer = ? ORDER BY st.completed",
                            (layer,)).fetchall()
        spent = sum(units * iters for _, _, iters, units, _, _ in trials)
        units = trials[0][3]
        g = {k: v for k, v in grid[layer].items() if k != "__dir__"}
        grid_cost = len(g) * units * top_iters
        total_search += spent
        total_grid += grid_cost
        top = max(r for _, r, _, _, _, _ in trials)
        # As the search ranks: the better value, then the lower setting.
        at_top = sorted([(v, b, n) for b, r, _, _, v, n in trials if r == top], key=lambda x: (x[0] is None, -sign * (x[0] or 0), x[1]))
        chosen = at_top[0][2].rsplit("@", 1)[0]
        best_name = max(g, key=lambda n: sign * g[n][0])
        grid_order = sorted(g, key=lambda n: -sign * g[n][0])
        rhos = []
        for r in range(top + 1):
            order = [n.rsplit("@", 1)[0] for v, b, n in sorted([(v, b, n) for b, rr, _, _, v, n in trials if rr == r],
                                                               key=lambda x: (x[0] is None, -sign * (x[0] or 0), x[1]))]
            rho = spearman(order, grid_order)
            rhos.append(f"rung {r + 1} ({len(order)}): " + ("-" if rho is None else f"{rho:+.2f}"))
        diff = sign * (g[best_name][0] - g[chosen][0])
        print(f"{layer:<8} {chosen:<44} {g[chosen][0]:9.4f} {g[best_name][0]:9.4f} {diff:7.4f} {spent:8d} {spent / grid_cost:6.3f}  "
              + ", ".join(rhos))
        # What the chosen images are: activation against the grid's most activating setting,
        # and their contrast against that setting's.
        most = max(g, key=lambda n: g[n][1])
        keys = [r[0] for r in index(grid[layer]["__dir__"]).execute(
            "SELECT t.task_key FROM tasks t JOIN actmax_settings s ON s.setting_id = t.setting_id WHERE s.name = ?", (chosen,))]
        keys_most = [r[0] for r in index(grid[layer]["__dir__"]).execute(
            "SELECT t.task_key FROM tasks t JOIN actmax_settings s ON s.setting_id = t.setting_id WHERE s.name = ?", (most,))]
        notes.append(f"{layer:<8} chosen: activation {g[chosen][1]:.3g} ({g[chosen][1] / g[most][1]:.2f} of the most activating "
                     f"setting's, {most}), pixel contrast {contrast(grid[layer]['__dir__'], keys):.3f} "
                     f"(that setting's {contrast(grid[layer]['__dir__'], keys_most):.3f}); grid best by {metric}: {best_name}")
    print(f"all layers: the search spent {total_search} unit-iterations, the grid {total_grid}: {total_search / total_grid:.3f} "
          f"(target <= 0.25); wall {search_wall:.0f} s against {grid_wall:.0f} s")
    print(f"its value: the grid's {metric} (at max_iterations) for the search's choice; target for score: within 0.02 of the grid's best")
    print(f"\nwhat the {metric} chose (grid runs, max_iterations):")
    for n in notes:
        print("  " + n)
    share, span = waiting_share(sd, a.ranks)
    print(f"\nwaiting share of rank-time, search on {a.ranks} ranks: {share:.3f} (first dispatch to last finish {span:.1f} s)")
    for ranks in [int(x) for x in a.idle_ranks.split(",") if x]:
        out = os.path.join(a.out, f"search_{ranks}")
        run(a, ranks, sweep, out)
        share, span = waiting_share(out, ranks)
        same = index(out).execute("SELECT COUNT(*) FROM search_trials").fetchone()[0]
        print(f"waiting share of rank-time, search on {ranks} ranks: {share:.3f} (first dispatch to last finish {span:.1f} s, "
              f"{same} trials)")
    print("\n" + "\n".join(line for line in log.splitlines() if "search" in line))


if __name__ == "__main__":
    main()
