#!/usr/bin/python3
"""Activation-maximization throughput of vizsweep against plain PyTorch, and the executed
FLOP/s of its optimization loop against the machine's convolution peak, all measured in
this run with the same thread count.

The peer is bench/peer_actmax.py (naive: one unit at a time, as pytorch-cnn-visualizations
and the DeepVis toolbox do; batched: all units as one batch through the truncated model, what
a careful PyTorch user writes). Workload: torchvision's VGG16 (seeded random weights) at
224 px, the centre unit, L2 decay 1e-4 and a Gaussian blur every 4 steps.

    /usr/bin/python3 bench/run_bench.py [--threads N] [--units 4] [--iters 10] [--layers ...]

Needs the build (scripts/build.sh: build/bench/vizsweep-bench-actmax) and Debian's
python3-torch and python3-torchvision. Prints a table; never a pass/fail test.
"""
import argparse
import math
import os
import platform
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def rate(text, key="unit_iters_per_s"):
    m = re.search(rf"{key}=([0-9.]+)", text)
    if not m:
        sys.exit(f"run_bench: no {key} in: {text}")
    return float(m.group(1))


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"run_bench: {' '.join(cmd)} failed:\n{r.stderr}")
    return r.stdout


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--units", type=int, default=4)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--layers", default="conv1_2,conv2_2,conv3_3,conv4_3,conv5_3,fc8")
    p.add_argument("--bench", default=os.path.join(ROOT, "build", "bench", "vizsweep-bench-actmax"))
    a = p.parse_args()
    if not os.access(a.bench, os.X_OK):
        sys.exit(f"run_bench: {a.bench} is not built (scripts/build.sh)")
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.machine())
    print(f"machine: {os.cpu_count()} cores ({cpu}); {a.threads} threads; VGG16 at 224 px; "
          f"{a.units} units x {a.iters} iterations per layer")
    peer = os.path.join(ROOT, "bench", "peer_actmax.py")
    common = ["--units", str(a.units), "--iters", str(a.iters), "--threads", str(a.threads)]
    peak = rate(run([a.bench, "--layers", "fc8", "--units", "1", "--iters", "1", "--peak", "--threads", str(a.threads)]),
                "peak conv gflops")
    print(f"{'layer':<8} {'crop':>8} {'vizsweep':>9} {'naive':>8} {'batched':>8} {'x naive':>8} {'x batched':>9} "
          f"{'GFLOP/s':>8} {'of peak':>8}")
    logs, worst = [], math.inf
    for layer in a.layers.split(","):
        out = run([a.bench, "--layers", layer] + common)
        v, gf = rate(out), rate(out, "gflops")
        crop = re.search(r"crop=([0-9x]+)", out).group(1)
        nv = rate(run([sys.executable, peer, "--mode", "naive", "--layer", layer] + common))
        bv = rate(run([sys.executable, peer, "--mode", "batched", "--layer", layer] + common))
        logs.append(math.log(v / nv))
        worst = min(worst, v / bv)
        print(f"{layer:<8} {crop:>8} {v:9.2f} {nv:8.2f} {bv:8.2f} {v / nv:8.2f} {v / bv:9.2f} {gf:8.1f} "
              f"{100 * gf / peak:7.0f}%", flush=True)
    print(f"unit-iterations per second. Geometric mean against naive: {math.exp(sum(logs) / len(logs)):.2f}x "
          f"(target >= 5); lowest against batched: {worst:.2f}x (target >= 1)")
    print(f"convolution peak here (256->256 channels, 3x3, 56x56, batch 8, forward + input gradient): {peak:.1f} GFLOP/s; "
          "GFLOP/s counts the work executed (the crop's, where cropped)")


if __name__ == "__main__":
    main()
