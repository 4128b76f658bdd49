#!/usr/bin/python3
"""Checks of activation maximization's newer parts on the default model, each one run of
vizsweep (mpirun, 2 ranks) and numbers from its index and shards:

  maco       bench/sweeps/maco.yaml: param maco against olah2017 (the quickstart's two
             variants) at conv4_1, conv5_1 and fc8: the mean interpretability score of each
             (the judge's probability at fc8, mis elsewhere) and the cost per unit-iteration
             (the tasks' own seconds, same run).
  diversity  bench/sweeps/diversity.yaml at fc8: four images per class unit under the
             diversity penalty (--weights), against four seeds without it: the mean pairwise
             distance of a unit's four images in the judge's logit space (a model other than
             the one optimized), and each image's activation over the mean activation of
             the unit's four images without the penalty.

    /usr/bin/python3 bench/optvis_check.py maco|diversity [--build build] [--out /tmp/optvis_check]

Prints a table; never a pass/fail test."""
import argparse
import itertools
import json
import os
import sqlite3
import statistics
import subprocess
import sys

import h5py
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")


def run(vizsweep, sweep, out):
    r = subprocess.run(["mpirun", "-np", "2", "--oversubscribe", vizsweep, "run", sweep, "--out", out],
                       capture_output=True, text=True, env=ENV)
    if r.returncode != 0:
        sys.exit(f"optvis_check: {sweep} failed:\n{r.stderr[-3000:]}")


def index(out):
    return sqlite3.connect(f"file:{out}/index.sqlite?mode=ro", uri=True)


def maco(a):
    out = os.path.join(a.out, "maco")
    run(a.vizsweep, os.path.join(ROOT, "bench", "sweeps", "maco.yaml"), out)
    db = index(out)
    rows = db.execute(
        "SELECT t.layer, s.name, s.param, AVG(r.score), SUM(t.seconds) / COUNT(*) "
        "FROM actmax_results r JOIN tasks t USING (task_key) JOIN actmax_settings s ON s.setting_id = t.setting_id "
        "GROUP BY t.layer, s.setting_id ORDER BY t.layer, s.setting_id").fetchall()
    # Seconds per unit-iteration over the same layers and units for both.
    cost = dict(db.execute(
        "SELECT s.param, SUM(t.seconds) / SUM(s.iterations * n.images) FROM tasks t "
        "JOIN actmax_settings s ON s.setting_id = t.setting_id "
        "JOIN (SELECT task_key, COUNT(*) AS images FROM actmax_results GROUP BY task_key) n ON n.task_key = t.task_key "
        "WHERE t.technique = 'actmax' GROUP BY s.param").fetchall())
    print(f"{'layer':<8} {'setting':<58} {'score':>6}")
    by = {}
    for layer, name, param, score, _ in rows:
        print(f"{layer:<8} {name:<58} {score:6.3f}")
        by.setdefault(layer, {})[(param, "background" in name)] = score
    print("maco minus olah2017 (same variant), per layer:")
    for layer, s in by.items():
        print(f"  {layer:<8} default background {s[('maco', False)] - s[('fft', False)]:+.3f}; "
              f"black background, flips {s[('maco', True)] - s[('fft', True)]:+.3f}")
    print(f"seconds per unit-iteration (the tasks' own, same run): fft {cost['fft'] * 1e3:.3f} ms, "
          f"maco {cost['maco'] * 1e3:.3f} ms: ratio {cost['maco'] / cost['fft']:.3f}")


def judge_logits(images):
    import torch
    path = os.path.join(ROOT, "models", "fashion_judge.pt")
    extra = {"vizsweep.json": ""}
    m = torch.jit.load(path, _extra_files=extra).eval()
    meta = json.loads(extra["vizsweep.json"])
    x = torch.tensor(images, dtype=torch.float32)
    mean = torch.tensor(meta["mean"]).view(1, -1, 1, 1)
    std = torch.tensor(meta["std"]).view(1, -1, 1, 1)
    with torch.no_grad():
        return m((x - mean) / std).numpy()


def images_of(out, where=""):
    """{(unit, copy or seed): (image [C, H, W] in [0, 1], activation)} of fc8."""
    db = index(out)
    got = {}
    cols = [c[1] for c in db.execute("PRAGMA table_info(actmax_results)")]
    copy = "r.copy" if "copy" in cols else "0"
    for unit, c, seed, shard, ds, act in db.execute(
            f"SELECT r.unit, {copy}, t.seed, r.shard, r.dataset, r.final_activation FROM actmax_results r "
            f"JOIN tasks t USING (task_key) {where} ORDER BY r.unit, {copy}, t.seed"):
        with h5py.File(os.path.join(out, shard), "r") as f:
            im = np.asarray(f[ds][()], dtype=np.float32) / 255.0
        im = im[None] if im.ndim == 2 else np.moveaxis(im, -1, 0)
        k = sum(1 for key in got if key[0] == unit)  # the unit's k-th image (copy, then seed order)
        got[(unit, k)] = (im, act)
    return got


def spread(got):
    """Per unit: the mean pairwise distance of its images' judge logits."""
    keys = sorted(got)
    logits = judge_logits(np.stack([got[k][0] for k in keys]))
    per = {}
    for i, k in enumerate(keys):
        per.setdefault(k[0], []).append(logits[i])
    return {u: statistics.mean(float(np.linalg.norm(x - y)) for x, y in itertools.combinations(v, 2)) for u, v in per.items()}


def diversity(a):
    a.out = os.path.join(a.out, "diversity")
    base = open(os.path.join(ROOT, "bench", "sweeps", "diversity.yaml")).read()
    base = base.replace("model: {file: ../../", f"model: {{file: {ROOT}/")
    os.makedirs(a.out, exist_ok=True)

    def sweep(name, text):
        path = os.path.join(a.out, name + ".yaml")
        with open(path, "w") as f:
            f.write(text.replace("name: diversity_check", f"name: {name}"))
        out = os.path.join(a.out, name)
        run(a.vizsweep, path, out)
        return out

    seeds = sweep("seeds", base.replace("seeds: [0]", "seeds: [0, 1, 2, 3]"))
    plain = images_of(seeds)
    d_plain = spread(plain)
    print(f"{'':<22} {'spread (judge logits)':>22} {'activation kept':>32}")
    print(f"{'4 seeds, no penalty':<22} {statistics.mean(d_plain.values()):22.3f} {'':>32}")
    for w in a.weights:
        until = f", diversity_until: {a.until}" if a.until < 1 else ""
        text = base.replace("flip: true}", f"flip: true, diversity_weight: {w}{until}}}").replace("  seeds: [0]", "  seeds: [0]\n  diversity: 4")
        if a.diversity_layer:
            text += f"  diversity_layer: {a.diversity_layer}\n"
        got = images_of(sweep(f"w{w:g}" + (f"u{a.until:g}" if a.until < 1 else ""), text))
        d = spread(got)
        plain_act = {u: statistics.mean(v[1] for (x, _), v in plain.items() if x == u) for u in d_plain}
        ratios = [got[(u, c)][1] / plain_act[u] for (u, c) in got]
        wider = sum(d[u] > d_plain[u] for u in d)
        print(f"{'diversity 4, weight ' + format(w, 'g') + (f' until {a.until:g}' if a.until < 1 else ''):<22} {statistics.mean(d.values()):22.3f} "
              f"min {min(ratios):.2f}, mean {statistics.mean(ratios):.2f} (of the seeds' mean); wider for {wider}/{len(d)} units")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("check", choices=["maco", "diversity"])
    p.add_argument("--build", default=os.path.join(ROOT, "build"))
    p.add_argument("--out", default="/tmp/optvis_check")
    p.add_argument("--weights", default="1,3,10", help="diversity weights to try (comma-separated)")
    p.add_argument("--until", type=float, default=1, help="diversity_until: the share of the iterations under the penalty")
    p.add_argument("--diversity-layer", default="", help="the layer the penalty reads (default: the sweep's default)")
    a = p.parse_args()
    a.vizsweep = os.path.join(a.build, "runner", "vizsweep")
    a.weights = [float(w) for w in a.weights.split(",")]
    subprocess.run(["rm", "-rf", os.path.join(a.out, a.check)])
    {"maco": maco, "diversity": diversity}[a.check](a)


if __name__ == "__main__":
    main()
