#!/usr/bin/python3
"""Activation-maximization throughput of vizsweep against plain PyTorch, and the executed
FLOP/s of its optimization loop against the machine's convolution peak, all measured in
this run with the same thread count.

The peer is bench/peer_actmax.py (naive: one unit at a time, as pytorch-cnn-visualizations
and the DeepVis toolbox do; batched: all units as one batch through the truncated model, what
a careful PyTorch user writes). Workload: torchvision's VGG16 (seeded random weights) at
224 px, the centre unit, L2 decay 1e-4 and a Gaussian blur every 4 steps.

    /usr/bin/python3 bench/run_bench.py [--only actmax,formats,runner,index,exemplars,plan] [--threads N] [--units 4] [--iters 10] [--repeat 3]

formats: each side in its fastest compute format on this machine (fp32 or bf16, NCHW or
channels_last; --format-iters iterations, 6 by default): vizsweep's is the one `vizsweep tune`
would choose (vizsweep-bench-actmax --tune: the fastest that passes the quality guard of
kernels/tune.h); the peer's are plain PyTorch (torch.autocast, channels_last), the fastest of
all four, each timed once to find it (that run the fastest's first round); then the two take
turns until each has --format-repeat rounds (2).
plan: `vizsweep tune` and `vizsweep plan --ranks 2` on tests/runner/small.yaml and the
quickstart, then the run itself on 2 ranks: the projected wall time against the measured one.
runner: no-op tasks (vizsweep run --noop-tasks) through the coordinator with 1, 2 and 4 ranks
under mpirun: tasks dispatched, reported and committed to the index per second.
index: the best-setting query (analysis best) over an index of 1,000,000 result rows.
exemplars: the exemplar scan of Fashion-MNIST's 60,000 training images for every unit of every
layer of the default model, against a bare batched forward pass over the same images
(vizsweep-bench-exemplars).

--markdown FILE also writes what each section printed into FILE's generated block (between
its "BEGIN run_bench" and "END run_bench" lines: docs/performance.md), with the machine, the
date and the command named once; a section that fails is written as failed, with its error.

Needs the build (scripts/build.sh: build/bench/vizsweep-bench-actmax) and Debian's
python3-torch and python3-torchvision. Prints a table; never a pass/fail test.
"""
import contextlib
import datetime
import io
import argparse
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def rate(text, key="unit_iters_per_s"):
    m = re.search(rf"{key}=(-?[0-9.]+)", text)
    if not m:
        sys.exit(f"run_bench: no {key} in: {text}")
    return float(m.group(1))


VERBOSE = False  # --verbose: each command and its seconds on standard error


def run(cmd):
    t0 = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"run_bench: {' '.join(cmd)} failed:\n{r.stderr}")
    if VERBOSE:
        print(f"  [{time.monotonic() - t0:6.1f} s] {' '.join(os.path.basename(c) if i == 0 else c for i, c in enumerate(cmd))}",
              file=sys.stderr, flush=True)
    return r.stdout


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--units", type=int, default=4)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--repeat", type=int, default=3, help="rounds per layer (actmax); the median of each side is shown")
    p.add_argument("--layers", default="conv1_2,conv2_2,conv3_3,conv4_3,conv5_3,fc8")
    p.add_argument("--build", default=os.path.join(ROOT, "build"), help="the build directory (scripts/build.sh's)")
    p.add_argument("--only", default="actmax,formats,runner,index,exemplars,plan,attacks",
                   help="which benchmarks (comma-separated)")
    p.add_argument("--format-iters", type=int, default=6, help="iterations per run of the formats benchmark")
    p.add_argument("--format-repeat", type=int, default=2,
                   help="rounds per layer and side of the formats benchmark (the median of each side is shown)")
    p.add_argument("--tasks", type=int, default=50000, help="no-op tasks of the runner benchmark")
    p.add_argument("--attack-images", type=int, default=2000, help="test images the attacks benchmark attacks")
    p.add_argument("--attack-batches", default="100,250,500,1000",
                   help="batch sizes the peer of the attacks benchmark tries (its best counts)")
    p.add_argument("--rows", type=int, default=1000000, help="result rows of the index benchmark")
    p.add_argument("--exemplar-images", type=int, default=60000, help="training images the exemplars benchmark scans")
    p.add_argument("--plan-sweeps", default="small,quickstart",
                   help="sweeps the plan benchmark projects and runs: small (tests/runner/small.yaml), quickstart")
    p.add_argument("--markdown", metavar="FILE",
                   help="also write each section's output into FILE's generated block (docs/performance.md)")
    p.add_argument("--verbose", action="store_true", help="each command run and its seconds, on standard error")
    a = p.parse_args()
    global VERBOSE
    VERBOSE = a.verbose
    a.bench = os.path.join(a.build, "bench", "vizsweep-bench-actmax")
    if a.repeat < 1:
        p.error("--repeat must be at least 1")
    if a.format_repeat < 1:
        p.error("--format-repeat must be at least 1")
    for name in a.plan_sweeps.split(","):
        if name not in PLAN_SWEEPS:
            p.error(f"--plan-sweeps: no sweep {name!r} (have {', '.join(PLAN_SWEEPS)})")
    only = a.only.split(",")
    sections = {"actmax": bench_actmax, "formats": bench_formats, "runner": bench_runner, "index": bench_index,
                "exemplars": bench_exemplars, "plan": bench_plan, "attacks": bench_attacks}
    for name in only:
        if name not in sections:
            p.error(f"--only: no section {name!r} (have {', '.join(sections)})")
    if a.markdown and not os.path.isfile(a.markdown):
        p.error(f"--markdown: no such file {a.markdown}")
    outputs = []
    for name in sections:
        if name not in only:
            continue
        if not a.markdown:
            sections[name](a)
            continue
        buf = io.StringIO()
        failed = None
        with contextlib.redirect_stdout(Tee(sys.stdout, buf)):
            try:
                sections[name](a)
            except (SystemExit, Exception) as e:  # a section that fails is reported, the others run
                failed = str(e) or type(e).__name__
                print(f"run_bench: section {name} failed: {failed}")
        outputs.append((name, buf.getvalue().strip("\n"), failed))
    if a.markdown:
        write_markdown(a, outputs)


class Tee(io.TextIOBase):
    def __init__(self, *streams):
        self.streams = streams

    def write(self, text):
        for s in self.streams:
            s.write(text)
        return len(text)

    def flush(self):
        for s in self.streams:
            s.flush()


def machine_name():
    """The CPU kind as scripts/cpu_kind.sh names it (model, family, cores, bf16 and AMX units)."""
    r = subprocess.run([os.path.join(ROOT, "scripts", "cpu_kind.sh")], capture_output=True, text=True)
    return r.stdout.strip().removeprefix("cpu: ") if r.returncode == 0 and r.stdout.strip() else "unknown machine"


def write_markdown(a, outputs):
    """Writes the sections' outputs into a.markdown's generated block. Sections this run did not
    run are kept from the block when it was written on the same machine (each says its date and
    command); on another machine the block starts anew, so the machine is named once."""
    begin, end = "<!-- BEGIN run_bench", "<!-- END run_bench -->"
    with open(a.markdown) as f:
        text = f.read()
    i, j = text.find(begin), text.find(end)
    if i < 0 or j < i:
        sys.exit(f"run_bench: {a.markdown} has no '{begin} ... -->' ... '{end}' block")
    head = text[:text.index("\n", i) + 1]
    old = text[len(head):j]
    machine = f"Machine: {machine_name()}; {a.threads} threads."
    kept = {}
    if old.startswith(machine):
        for m in re.finditer(r"^\*\*(\w+)\*\*.*?(?=^\*\*\w+\*\*|\Z)", old, re.M | re.S):
            kept[m.group(1)] = m.group(0).rstrip("\n") + "\n"
    stamp = f"{datetime.date.today().isoformat()}, `bench/run_bench.py {' '.join(sys.argv[1:])}`"
    for name, out, failed in outputs:
        kept[name] = (f"**{name}** ({stamp}" + (f"; failed: {failed}" if failed else "") + "):\n\n"
                      f"```text\n{out}\n```\n")
    order = ["actmax", "formats", "runner", "index", "exemplars", "plan", "attacks"]
    block = machine + "\n\n" + "\n".join(kept[n] for n in order if n in kept)
    with open(a.markdown, "w") as f:
        f.write(head + block + text[j:])
    print(f"run_bench: wrote {len(outputs)} sections into {a.markdown} ({len(kept)} in all)")


def seconds_of(text):
    """Seconds of a duration as vizsweep prints it: "12 s", "4 min 10 s", "2 h 05 min"."""
    units = {"h": 3600, "min": 60, "s": 1}
    return sum(float(n) * units[u] for n, u in re.findall(r"([0-9.]+) (h|min|s)\b", text))


PLAN_SWEEPS = {"small": os.path.join(ROOT, "tests", "runner", "small.yaml"),
               "quickstart": os.path.join(ROOT, "sweeps", "examples", "quickstart.yaml")}


def bench_plan(a):
    import tempfile
    exe = os.path.join(a.build, "runner", "vizsweep")
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    print("\nplan: projected (vizsweep tune, then plan --ranks 2) against measured wall time of the run on 2 ranks")
    print(f"{'sweep':<12} {'tune s':>7} {'projected':>12} {'measured':>12} {'ratio':>6}")
    for name in a.plan_sweeps.split(","):
        sweep = PLAN_SWEEPS[name]
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, name)
            t0 = time.monotonic()
            run([exe, "tune", sweep, "--out", out, "--ranks", "2"])
            tune_s = time.monotonic() - t0
            plan = run([exe, "plan", sweep, "--out", out, "--ranks", "2"])
            m = re.search(r"wall on 2 ranks: about (.*?) \(", plan)
            if not m:
                sys.exit(f"run_bench: no projection in the plan of {sweep}:\n{plan}")
            projected = seconds_of(m.group(1))
            t0 = time.monotonic()
            r = subprocess.run(["mpirun", "-np", "2", "--oversubscribe", exe, "run", sweep, "--out", out],
                               capture_output=True, text=True, env=env)
            measured = time.monotonic() - t0
            if r.returncode != 0:
                sys.exit(f"run_bench: the run of {sweep} failed:\n{r.stderr}")
            print(f"{name:<12} {tune_s:7.1f} {projected:10.1f} s {measured:10.1f} s {measured / projected:6.2f}", flush=True)
    print("ratio: measured over projected (target within 30%: 0.7 to 1.3)")


def bench_attacks(a):
    """PGD (L-inf, eps 0.03, 10 steps, random start) over the first --attack-images test images
    on the default model: vizsweep's run (1 rank, tasks of 500 images, every step's row in the
    index) against bench/peer_attack.py, plain PyTorch, at each of --attack-batches (its best
    counts). Image-steps per second: vizsweep's from its whole run, start-up included, and from
    its tasks' own seconds (the index's tasks.seconds)."""
    import sqlite3
    import tempfile
    vizsweep = os.path.join(a.build, "runner", "vizsweep")
    model = os.path.join(ROOT, "models", "fashion_vgg11.pt")
    n, steps = a.attack_images, 10
    peer = [sys.executable, os.path.join(ROOT, "bench", "peer_attack.py"), "--model", model, "--images", str(n),
            "--steps", str(steps), "--threads", str(a.threads)]
    print(f"\nattacks: PGD, L-inf eps 0.03, {steps} steps from a random start, {n:,} Fashion-MNIST test images, "
          f"default model (32 px), {a.threads} threads; image-steps per second")
    peers = {int(b): rate(run(peer + ["--batch", b]), "image_steps_per_s") for b in a.attack_batches.split(",")}
    best = max(peers, key=peers.get)
    with tempfile.TemporaryDirectory(prefix="vizsweep_bench_") as tmp:
        sweep, out = os.path.join(tmp, "pgd.yaml"), os.path.join(tmp, "out")
        with open(sweep, "w") as f:
            f.write(f"name: bench-pgd\nmodel: {{file: {model}}}\nfgsm:\n  images: {{dataset: fashion-mnist, split: test, "
                    f"count: {n}}}\n  images_per_batch: 500\n  attack: pgd\n  eps: 0.03\n  steps: {steps}\n")
        t0 = time.monotonic()
        run([vizsweep, "run", sweep, "--out", out, "--threads", str(a.threads), "--progress-seconds", "100000"])
        wall = time.monotonic() - t0
        db = sqlite3.connect(os.path.join(out, "index.sqlite"))
        task_s = db.execute("SELECT SUM(seconds) FROM tasks WHERE technique = 'fgsm'").fetchone()[0]
        db.close()
    print("  peer (plain PyTorch) by batch: " + ", ".join(f"{b}: {v:,.0f}" for b, v in sorted(peers.items())))
    print(f"  vizsweep: {n * steps / task_s:,.0f} in its tasks ({task_s:.1f} s), {n * steps / wall:,.0f} over the whole run "
          f"({wall:.1f} s, start-up, index and shards included)")
    print(f"  against the peer at its best batch ({best}): {n * steps / task_s / peers[best]:.2f}x (tasks), "
          f"{n * steps / wall / peers[best]:.2f}x (whole run); target >= 1")


def bench_exemplars(a):
    exe = os.path.join(a.build, "bench", "vizsweep-bench-exemplars")
    if not os.path.exists(exe):
        sys.exit(f"run_bench: {exe} is not built (scripts/build.sh)")
    out = run([exe, "--threads", str(a.threads), "--repeat", str(max(2, a.repeat)), "--count", str(a.exemplar_images),
               "--model", os.path.join(ROOT, "models", "fashion_vgg11.pt")])
    f = dict(kv.split("=") for kv in out.split()[1:])
    print(f"\nexemplars: {int(f['images']):,} images, every unit of {f['layers']} layers ({int(f['units']):,} units), "
          f"batch {f['batch']}, {a.threads} threads")
    print(f"  bare forward pass {float(f['forward_s']):.2f} s, scan (top-9 and bottom-9 of every unit) "
          f"{float(f['scan_s']):.2f} s: ratio {float(f['ratio']):.2f}")
    print(f"  the scan's state between batches: {float(f['state_bytes']) / 1024:.0f} KiB, whatever the image count")


def bench_actmax(a):
    if not os.access(a.bench, os.X_OK):
        sys.exit(f"run_bench: {a.bench} is not built (scripts/build.sh)")
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.machine())
    print(f"machine: {os.cpu_count()} cores ({cpu}); {a.threads} threads; VGG16 at 224 px; "
          f"{a.units} units x {a.iters} iterations per layer")
    peer = os.path.join(ROOT, "bench", "peer_actmax.py")
    common = ["--units", str(a.units), "--iters", str(a.iters), "--threads", str(a.threads)]
    # The peak: the fastest of VGG16's convolution shapes and of every convolution the loops
    # below execute (their cropped sizes, this batch), each alone. The loops are made of them.
    # Measured before and after the loops, the higher kept: a shared machine's speed drifts.
    peak_cmd = [a.bench, "--layers", a.layers, "--units", str(a.units), "--peak-only", "--threads", str(a.threads)]
    peaks = [rate(run(peak_cmd), "peak conv gflops")]
    rows, logs, worst = [], [], math.inf
    for layer in a.layers.split(","):
        # The three programs take turns, --repeat rounds, and each keeps its median: on a shared
        # machine a burst of load then hits every side alike instead of one measurement.
        vs, gfs, spread, nvs, bvs = [], [], [], [], []
        # The loop's rate wants several rounds: --repeat of them here, or 3 inside one call.
        rounds = ["--rounds", "1" if a.repeat >= 3 else "3"]
        for _ in range(a.repeat):
            out = run([a.bench, "--layers", layer] + common + rounds)
            vs.append(rate(out))
            gfs.append(rate(out, "gflops"))
            spread += [rate(out, "gflops_fastest"), rate(out, "gflops_slowest")]
            crop = re.search(r"crop=([0-9x]+)", out).group(1)
            # The naive peer once per layer: it only sets the scale of "x naive" (one unit at a
            # time, seconds per unit, a few percent between runs against a target of 5x), and
            # its rounds were a sixth of the whole benchmark's time.
            if not nvs:
                nvs.append(rate(run([sys.executable, peer, "--mode", "naive", "--layer", layer] + common)))
            bvs.append(rate(run([sys.executable, peer, "--mode", "batched", "--layer", layer] + common)))
        v, gf, nv, bv = (statistics.median(x) for x in (vs, gfs, nvs, bvs))
        NAIVE[layer] = nv
        logs.append(math.log(v / nv))
        worst = min(worst, v / bv)
        rows.append((layer, crop, v, nv, bv, gf, spread))
        print(f"  {layer} measured", file=sys.stderr, flush=True)
    peaks.append(rate(run(peak_cmd), "peak conv gflops"))
    peak = max(peaks)
    print(f"{'layer':<8} {'crop':>8} {'vizsweep':>9} {'naive':>8} {'batched':>8} {'x naive':>8} {'x batched':>9} "
          f"{'GFLOP/s':>8} {'of peak':>8}")
    for layer, crop, v, nv, bv, gf, spread in rows:
        # A rate above the peak measured in this run is no measurement: noise in the difference
        # of two runs, not work done. Such a layer prints "unstable", never the number.
        if gf <= 0 or min(spread) <= 0:
            loop = f"{'noise':>8} {'':>8}"
        elif max(spread) > peak:
            loop = f"{'unstable':>8} {'':>8}"
        else:
            loop = f"{gf:8.1f} {100 * gf / peak:7.0f}% ({100 * min(spread) / peak:.0f}-{100 * max(spread) / peak:.0f}%)"
        print(f"{layer:<8} {crop:>8} {v:9.2f} {nv:8.2f} {bv:8.2f} {v / nv:8.2f} {v / bv:9.2f} {loop}")
    print(f"unit-iterations per second, median of {a.repeat} rounds (the naive peer: one run per layer). Geometric mean against naive: {math.exp(sum(logs) / len(logs)):.2f}x "
          f"(target >= 5); lowest against batched: {worst:.2f}x (target >= 1)")
    print(f"convolution peak here (forward + input gradient; the fastest of five VGG16 3x3 convolution shapes and of "
          f"every convolution the loops above execute, each alone, best of 5; measured before and after the loops: "
          f"{peaks[0]:.1f} and {peaks[1]:.1f}): {peak:.1f} GFLOP/s. GFLOP/s: the optimization loop's own rate (a run with "
          "twice the iterations minus one with them), counting the work executed (the crop's, where cropped), the median "
          "of the rounds and in brackets the slowest and fastest round's share of the peak; 'unstable' where a round "
          "came out above the peak", flush=True)


FORMATS = (("fp32", 0), ("fp32", 1), ("bf16", 0), ("bf16", 1))
# The naive fp32 peer's rate per layer, as the actmax section measured it in this run; the
# formats section measures its own when run without it.
NAIVE = {}


def bench_formats(a):
    """Each side in its fastest format. To finish all six layers in under 10 minutes on 2 cores it
    trades runs, not the comparison: --format-iters iterations (6); vizsweep's format the one its
    tuner chooses, all layers tuned in one process (no other format timed again); the peer's four
    formats timed once each to find its fastest, that run counting as the fastest's first round;
    then the two take turns until each has --format-repeat rounds (2; medians). The naive peer is
    the actmax section's when it ran in this invocation, else one run on one unit (fp32; its rate
    is per unit and it only sets the scale)."""
    if not os.access(a.bench, os.X_OK):
        sys.exit(f"run_bench: {a.bench} is not built (scripts/build.sh)")
    peer = os.path.join(ROOT, "bench", "peer_actmax.py")
    common = ["--units", str(a.units), "--iters", str(a.format_iters), "--threads", str(a.threads)]
    print(f"\nformats: each side in its fastest format here; {a.units} units x {a.format_iters} iterations; "
          f"the peer's formats once each (the fastest's run its first round), then the two in turns, "
          f"median of {a.format_repeat} rounds")
    print(f"{'layer':<8} {'vizsweep':>22} {'reached':>8} {'peer (batched)':>22} {'x peer':>7} {'x naive fp32':>13}")
    logs = []
    fmt = lambda f: ["--precision", f[0], "--channels-last", str(f[1])]  # noqa: E731
    name = lambda f: f"{f[0]}{'+CL' if f[1] else ''}"  # noqa: E731
    one_unit = ["--units", "1"] + common[2:]
    # vizsweep's format per layer: what `vizsweep tune` chooses here (kernels/tune.h), every layer
    # in one process (the model converted to each format once).
    tuned_all = run([a.bench, "--layers", a.layers, "--tune"] + common)
    for layer in a.layers.split(","):
        naive = NAIVE.get(layer) or rate(run([sys.executable, peer, "--mode", "naive", "--layer", layer] + one_unit))
        tuned = "\n".join(line for line in tuned_all.splitlines() if f" layer={layer} " in line)
        chosen = re.search(r"chosen=(\S+?)(,? channels_last)? speedup", tuned)
        best = (chosen.group(1), 1 if chosen.group(2) else 0)
        reached = float(re.search(rf"format={best[0]}{', channels_last' if best[1] else ''} \S+ \S+ reached=([0-9.]+)",
                                  tuned).group(1)) if best != ("fp32", 0) else 1.0
        peer_cmd = lambda f: [sys.executable, peer, "--mode", "batched", "--layer", layer] + common + fmt(f)  # noqa: E731
        once = {f: rate(run(peer_cmd(f))) for f in FORMATS}
        pbest = max(once, key=once.get)
        ours, theirs = [], [once[pbest]]
        for r in range(a.format_repeat):
            # The whole call as a task runs it; no loop-rate rounds, no fp32 check (the tuner's guard
            # has checked this format: "reached").
            ours.append(rate(run([a.bench, "--layers", layer, "--rounds", "0", "--check", "0"] + common + fmt(best))))
            if r < a.format_repeat - 1:
                theirs.append(rate(run(peer_cmd(pbest))))
        v, t = statistics.median(ours), statistics.median(theirs)
        logs.append(math.log(v / naive))
        print(f"{layer:<8} {name(best):>10} {v:11.2f} {reached:8.3f} {name(pbest):>10} {t:11.2f} "
              f"{v / t:7.2f} {v / naive:13.2f}", flush=True)
    print(f"unit-iterations per second; CL: channels_last; reached: the objective vizsweep's format reaches against "
          f"fp32's (the tuner's guard). Geometric mean against the naive fp32 peer: {math.exp(sum(logs) / len(logs)):.2f}x "
          "(target >= 5); x peer: against the batched peer in its own fastest format (target >= 1)")


def bench_runner(a):
    import tempfile
    vizsweep = os.path.join(a.build, "runner", "vizsweep")
    images = a.tasks // 5
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    print(f"runner: {a.tasks:,} no-op tasks (FGSM, one image per task, 5 eps) through the coordinator")
    with tempfile.TemporaryDirectory(prefix="vizsweep_bench_") as tmp:
        sweep = os.path.join(tmp, "noop.yaml")
        with open(sweep, "w") as f:
            f.write("name: noop\nthreads: 1\nmodel: {builtin: vgg11, width: 0.0625, in_channels: 1, num_classes: 10, "
                    "fc_width: 32, pool: 1, input_size: 32}\n"
                    f"fgsm:\n  images: {{dataset: fashion-mnist, split: train, count: {images}}}\n"
                    "  images_per_batch: 1\n  eps: [0.01, 0.02, 0.03, 0.04, 0.05]\n")
        for ranks in (1, 2, 4):
            rates = []
            for k in range(a.repeat):
                out = os.path.join(tmp, f"r{ranks}-{k}")
                r = subprocess.run(["mpirun", "-np", str(ranks), "--oversubscribe", vizsweep, "run", sweep, "--out", out,
                                    "--noop-tasks", "--progress-seconds", "100000"], capture_output=True, text=True, env=env)
                if r.returncode != 0:
                    sys.exit(f"run_bench: the no-op run failed:\n{r.stderr}")
                m = re.findall(r"(\d[\d,]*)/(\d[\d,]*) tasks done \(100%\), ([0-9.]+) tasks/s", r.stderr)
                rates.append(float(m[-1][2]))
                shutil.rmtree(out)
            print(f"  {ranks} rank{'s' if ranks > 1 else ' '}: {statistics.median(rates):10,.0f} tasks/s dispatched and "
                  f"committed, median of {a.repeat} (target >= 20,000)", flush=True)


def bench_index(a):
    """The best-setting query over an index of about a.rows result rows. The index is made by the
    project's own code, so a schema change cannot break the benchmark: a no-op run of a sweep over
    every unit of VGG16 writes the sweep, settings and task rows; the result rows are then added
    for every unit of every done task, by column name, each NOT NULL column filled."""
    import random
    import sqlite3
    import tempfile
    sys.path.insert(0, ROOT)
    from analysis.best import ranking
    exe = os.path.join(a.build, "runner", "vizsweep")
    units_vgg16 = 13416  # every conv and fc unit of VGG16
    settings = max(1, round(a.rows / units_vgg16))
    with tempfile.TemporaryDirectory(prefix="vizsweep_bench_") as tmp:
        sweep = os.path.join(tmp, "index_bench.yaml")
        decays = ", ".join(f"{0.0001 * (k + 1):g}" for k in range(settings))
        with open(sweep, "w") as f:
            f.write("name: index_bench\nmodel: {builtin: vgg16, seed: 0, input_size: 224}\nthreads: 1\n"
                    "actmax:\n  layers: all\n  units: all\n  units_per_batch: 64\n"
                    f"  grid: {{iterations: 200, lr_policy: normalized, lr: 2, decay: [{decays}]}}\n")
        out = os.path.join(tmp, "results")
        r = subprocess.run([exe, "run", sweep, "--out", out, "--noop-tasks"], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"vizsweep run --noop-tasks failed: {r.stderr.strip()[-400:]}")
        path = os.path.join(out, "index.sqlite")
        db = sqlite3.connect(path)
        cols = db.execute("PRAGMA table_info(actmax_results)").fetchall()  # cid, name, type, notnull, default, pk
        rng = random.Random(0)
        values = {"final_activation": lambda: rng.random() * 10, "hf_energy": rng.random, "total_variation": rng.random,
                  "saturation": rng.random, "robustness": rng.random, "is_argmax": lambda: int(rng.random() < 0.1),
                  "score": rng.random, "shard": lambda: "shards/r0.h5"}
        names = ["task_key", "unit"] + [c[1] for c in cols if c[1] in values or (c[3] and c[4] is None and
                                                                                  c[1] not in ("task_key", "unit"))]
        def value(name, key, unit):
            if name == "dataset":
                return f"/tasks/{key}/unit_{unit}"
            if name in values:
                return values[name]()
            return 0  # a NOT NULL column this benchmark does not know: any value the CHECKs accept
        tasks = db.execute("SELECT task_key, units FROM tasks WHERE technique = 'actmax' AND state = 'done'").fetchall()
        rows = []
        for key, units in tasks:
            for part in units.split(","):
                lo, _, hi = part.partition("-")
                for u in range(int(lo), int(hi or lo) + 1):
                    rows.append([key, u] + [value(n, key, u) for n in names[2:]])
        db.executemany(f"INSERT INTO actmax_results ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})", rows)
        db.commit()
        db.close()
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        n = db.execute("SELECT COUNT(*) FROM actmax_results").fetchone()[0]
        layers = [l for (l,) in db.execute("SELECT DISTINCT layer FROM tasks ORDER BY rowid")]

        def timed(fn, reps=5):
            times = []
            for _ in range(reps):
                t = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t)
            return sorted(times)[len(times) // 2] * 1000

        one = timed(lambda: ranking(db, "conv3_3", "activation"))
        every = timed(lambda: [ranking(db, layer, "activation") for layer in layers])
        print(f"index: {n:,} result rows ({len(tasks):,} tasks, {len(layers)} layers x {settings} settings; "
              "made by vizsweep run --noop-tasks)")
        print(f"  best setting of one layer: {one:8.1f} ms (median of 5; target < 200)")
        print(f"  best settings of all {len(layers)} layers: {every:8.1f} ms")

if __name__ == "__main__":
    main()
