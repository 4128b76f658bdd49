"""The fgsm technique's attacks (kernels/attacks.h) on the default model against references
written here in plain PyTorch, on 64 Fashion-MNIST test images framed to the model's 32 px
(an IDX file: the runner reads them as bytes / 255, with no resampling, so the references see
the very same input floats).

- PGD (random start, 2 restarts), MI-FGSM and iterative FGSM under L-inf: the stored
  perturbation equals the reference's bit for bit, and so does the run each image's result
  comes from; under L2 (the step divides the gradient by its norm, so the last-bit differences
  of two backward passes show) they agree to 1e-5 of eps. The reference loads the TorchScript file itself, normalizes as the model's
  record says, and draws each random start from torch.Generator().manual_seed(seed) with the
  seed computed here from (sweep seed, image id, run) by the same splitmix64 steps.
- APGD-CE and APGD with the targeted DLR loss under L-inf: a reference written from the paper's
  pseudo-code (Croce & Hein 2020, Algorithm 1: checkpoints w_j = ceil(p_j N) with p_0 = 0,
  p_1 = 0.22, p_(j+1) = p_j + max(p_j - p_(j-1) - 0.03, 0.06); eta from 2 eps, halved per
  image under condition 1 or 2, restarting from the best iterate; momentum 0.75). Equal: the
  step size after every step, the best-loss iterate x_max, the image returned, and the
  target of each image's run (the classes the clean image scores highest after its label).
- The robust_images view: an image is robust at a budget exactly when no attack at that
  budget changed its label, as recomputed here from the per-attack rows.

Bit for bit holds because both sides run the same ATen kernels on the same batches (vizsweep
attacks a run's images together; the reference does the same). Run by ctest (label model)
with Debian's /usr/bin/python3; VIZSWEEP is the binary's path."""
import gzip
import json
import math
import os
import sqlite3
import struct
import subprocess
import sys
import tempfile
import unittest

import h5py
import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
VIZSWEEP = os.environ.get("VIZSWEEP", os.path.join(ROOT, "build", "runner", "vizsweep"))
MODEL = os.path.join(ROOT, "models", "fashion_vgg11.pt")
DATA = "/usr/share/datasets/fashion-mnist"
N = 64
M64 = (1 << 64) - 1


def mix(z):
    z = (z + 0x9e3779b97f4a7c15) & M64
    z = ((z ^ (z >> 30)) * 0xbf58476d1ce4e5b9) & M64
    z = ((z ^ (z >> 27)) * 0x94d049bb133111eb) & M64
    return z ^ (z >> 31)


def attack_seed(seed, image_id, run):
    return mix(mix(mix(seed) ^ image_id) ^ run) & ((1 << 63) - 1)


def checkpoints(n):
    """The paper's w_j, 0 < w_j < n, in order (w_0 = 0 left out)."""
    p = [0.0, 0.22]
    while p[-1] < 1.0:
        p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
    w = []
    for pj in p[1:]:
        wj = math.ceil(pj * n - 1e-9)
        if 0 < wj < n and (not w or wj > w[-1]):
            w.append(wj)
    return w


def l2(t):
    return torch.linalg.vector_norm(t.flatten(1), 2, dim=1).view(-1, 1, 1, 1)


def direction(g, norm):
    return g.sign() if norm == "linf" else g / l2(g).clamp_min(1e-12)


def project(x, x0, eps, norm):
    if norm == "linf":
        return torch.max(torch.min(x, x0 + eps), x0 - eps).clamp_(0.0, 1.0)
    d = x - x0
    return (x0 + d * (eps / l2(d).clamp_min(1e-12)).clamp_max(1.0)).clamp_(0.0, 1.0)


def random_start(x0, seeds, eps, norm):
    ds = []
    for s in seeds:
        g = torch.Generator().manual_seed(s)
        if norm == "linf":
            ds.append((torch.rand(tuple(x0.shape[1:]), generator=g) * 2 - 1) * eps)
        else:
            n = torch.randn(tuple(x0.shape[1:]), generator=g)
            u = torch.rand(1, generator=g)
            ds.append(n / torch.linalg.vector_norm(n).clamp_min(1e-12) * (u * eps))
    return (x0 + torch.stack(ds)).clamp_(0.0, 1.0)


class Net:
    def __init__(self):
        self.m = torch.jit.load(MODEL).eval()
        with open(os.path.splitext(MODEL)[0] + ".json") as f:
            rec = json.load(f)
        self.mean = torch.tensor(rec["mean"], dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(rec["std"], dtype=torch.float32).view(1, -1, 1, 1)

    def __call__(self, x):
        return self.m((x - self.mean) / self.std)


def pgd_run(net, s, x0, start, y, target=None):
    """PGD / iterative FGSM / MI-FGSM from `start`: the image returned and whether it fooled."""
    alpha = s["alpha"]
    x, acc = start.clone(), torch.zeros_like(x0)
    for _ in range(s["steps"]):
        x.requires_grad_(True)
        loss = F.cross_entropy(net(x), y, reduction="sum")
        g = torch.autograd.grad(loss, [x])[0]
        with torch.no_grad():
            x = x.detach()
            if s["attack"] == "mifgsm":
                acc = acc * s["momentum"] + g / g.abs().flatten(1).sum(1).clamp_min(1e-12).view(-1, 1, 1, 1)
                g = acc
            x.add_(direction(g, s["norm"]), alpha=alpha)
            x = project(x, x0, s["eps"], s["norm"])
    with torch.no_grad():
        pred = net(x).argmax(1)
    return x, x, pred != y, None


def dlr_targeted(logits, y, t):
    z = logits.sort(1)[0]
    zy = logits.gather(1, y.view(-1, 1)).squeeze(1)
    zt = logits.gather(1, t.view(-1, 1)).squeeze(1)
    return -(zy - zt) / (z[:, -1] - (z[:, -3] + z[:, -4]) * 0.5 + 1e-12)


def apgd_run(net, s, x0, start, y, target):
    """Algorithm 1 of Croce & Hein (2020), written from the paper, per image where it decides."""
    n_iter, eps, norm = s["steps"], s["eps"], s["norm"]
    w = checkpoints(n_iter)

    def f_and_grad(x, grad=True):
        x = x.detach().requires_grad_(grad)
        with torch.set_grad_enabled(grad):
            logits = net(x)
            f = F.cross_entropy(logits, y, reduction="none") if target is None else dlr_targeted(logits, y, target)
            g = torch.autograd.grad(f.sum(), [x])[0] if grad else None
        return f.detach(), g, logits.detach()

    B = x0.shape[0]
    eta = torch.full((B,), 2 * eps)
    etas = [eta.clone()]
    xk = start.clone()
    fk, gk, logits = f_and_grad(xk)
    x_max, f_max, g_max = xk.clone(), fk.clone(), gk.clone()
    fooled = logits.argmax(1) != y
    x_fool = xk.clone()
    eta_prev_w, fmax_prev_w = eta.clone(), f_max.clone()
    rises = [0] * B
    x_prev, w_prev = xk, 0
    with torch.no_grad():
        for k in range(n_iter):
            z = project(xk + eta.view(-1, 1, 1, 1) * direction(gk, norm), x0, eps, norm)
            x_new = z if k == 0 else project(xk + (z - xk) * 0.75 + (xk - x_prev) * 0.25, x0, eps, norm)
            x_prev = xk
            f_new, g_new, logits = f_and_grad(x_new, k + 1 < n_iter)
            for b in range(B):
                rises[b] += int(f_new[b] > fk[b])
            better = f_new > f_max
            x_max = torch.where(better.view(-1, 1, 1, 1), x_new, x_max)
            f_max = torch.where(better, f_new, f_max)
            if g_new is not None:
                g_max = torch.where(better.view(-1, 1, 1, 1), g_new, g_max)
            now = logits.argmax(1) != y
            x_fool = torch.where(now.view(-1, 1, 1, 1), x_new, x_fool)
            fooled = fooled | now
            xk, fk, gk = x_new, f_new, g_new
            if k + 1 in w:
                wj = k + 1
                new_eta = eta.clone()
                for b in range(B):
                    cond1 = rises[b] < 0.75 * (wj - w_prev)
                    cond2 = bool(eta[b] == eta_prev_w[b]) and bool(f_max[b] == fmax_prev_w[b])
                    if cond1 or cond2:
                        new_eta[b] = eta[b] / 2
                        xk = xk.clone()
                        xk[b] = x_max[b]
                        gk = gk.clone()
                        gk[b] = g_max[b]
                        fk = fk.clone()
                        fk[b] = f_max[b]
                eta_prev_w, fmax_prev_w = eta.clone(), f_max.clone()
                eta = new_eta
                rises = [0] * B
                w_prev = wj
            etas.append(eta.clone())
    out = torch.where(fooled.view(-1, 1, 1, 1), x_fool, x_max)
    return out, x_max, fooled, torch.stack(etas)


def reference(net, s, x0, y, ids):
    """Every run of setting s over the batch, as attacks.h describes: the image each one
    returns, its best-loss iterate, the run it comes from, its target and its step sizes."""
    B = x0.shape[0]
    out, best, run_of = x0.clone(), x0.clone(), torch.zeros(B, dtype=torch.long)
    target_of = torch.full((B,), -1, dtype=torch.long)
    etas = torch.full((s["steps"] + 1, B), s["alpha"])
    broken = torch.zeros(B, dtype=torch.bool)
    apgd = s["attack"].startswith("apgd")
    random = s["attack"] == "pgd" or apgd
    targets = min(9, 10 - 1) if s["attack"] == "apgd-dlr" else 1
    with torch.no_grad():
        clean = net(x0)
    ranked = clean.scatter(1, y.view(-1, 1), float("-inf")).argsort(1, descending=True)
    for ti in range(targets):
        for r in range(s["restarts"]):
            run = ti * s["restarts"] + r
            todo = torch.arange(B) if run == 0 else (~broken).nonzero().squeeze(1)
            if len(todo) == 0:
                break
            xs, ys = x0[todo], y[todo]
            tgt = ranked[todo, ti].contiguous() if s["attack"] == "apgd-dlr" else None
            start = random_start(xs, [attack_seed(s["seed"], ids[i], run) for i in todo.tolist()], s["eps"], s["norm"]) \
                if random else xs
            o, xm, br, et = (apgd_run if apgd else pgd_run)(net, s, xs, start, ys, tgt)
            keep = torch.ones(len(todo), dtype=torch.bool) if run == 0 else br
            dst = todo[keep]
            out[dst], best[dst], broken[dst], run_of[dst] = o[keep], xm[keep], br[keep], run
            if tgt is not None:
                target_of[dst] = tgt[keep]
            if et is not None:
                etas[:, dst] = et[:, keep]
    return out, best, run_of, target_of, etas


def write_idx(tmp):
    """The first N test images framed to 32 px (2 black pixels each side), and their labels."""
    with gzip.open(os.path.join(DATA, "t10k-images-idx3-ubyte.gz"), "rb") as f:
        px = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)[:N]
    with gzip.open(os.path.join(DATA, "t10k-labels-idx1-ubyte.gz"), "rb") as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)[:N]
    framed = np.zeros((N, 32, 32), np.uint8)
    framed[:, 2:30, 2:30] = px
    images, lab = os.path.join(tmp, "images.idx"), os.path.join(tmp, "labels.idx")
    with open(images, "wb") as f:
        f.write(struct.pack(">IIII", 0x803, N, 32, 32) + framed.tobytes())
    with open(lab, "wb") as f:
        f.write(struct.pack(">II", 0x801, N) + labels.tobytes())
    return images, lab, framed, labels.astype(np.int64)


class Attacks(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        torch.set_num_threads(2)
        cls.tmp = tempfile.TemporaryDirectory(prefix="vizsweep_attacks_")
        images, labels, cls.px, cls.labels = write_idx(cls.tmp.name)
        sweep = os.path.join(cls.tmp.name, "attacks.yaml")
        with open(sweep, "w") as f:
            f.write(f"""name: attacks
model: {{file: {MODEL}}}
fgsm:
  images: {{idx_images: {images}, idx_labels: {labels}}}
  images_per_batch: {N}
  attack: [fgsm, pgd, mifgsm, apgd-ce, apgd-dlr]
  norm: [linf, l2]
  eps: [0.03, 1.5]
  steps: 10
  restarts: 2
  seed: 7
""")
        cls.out = os.path.join(cls.tmp.name, "out")
        env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
        r = subprocess.run([VIZSWEEP, "run", sweep, "--out", cls.out, "--threads", "2"], env=env,
                           capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            raise RuntimeError(f"vizsweep run failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
        cls.db = sqlite3.connect(os.path.join(cls.out, "index.sqlite"))
        cls.net = Net()

    @classmethod
    def tearDownClass(cls):
        cls.db.close()
        cls.tmp.cleanup()

    def settings(self):
        rows = self.db.execute(
            "SELECT s.setting_id, s.name, s.attack, s.norm, s.eps, s.steps, s.restarts, s.momentum, s.seed, t.task_key "
            "FROM fgsm_settings s JOIN tasks t ON t.setting_id = s.setting_id AND t.technique = 'fgsm' "
            "ORDER BY s.setting_id").fetchall()
        out = []
        for sid, name, attack, norm, eps, steps, restarts, momentum, seed, key in rows:
            alpha = 2 * eps if attack.startswith("apgd") else eps / steps if attack == "mifgsm" else min(eps, 2.5 * eps / steps)
            out.append(dict(id=sid, name=name, attack=attack, norm=norm, eps=eps, steps=steps, restarts=restarts,
                            momentum=momentum, seed=seed, key=key, alpha=alpha))
        return out

    def stored(self, s):
        shard = self.db.execute("SELECT DISTINCT shard FROM fgsm_results WHERE task_key = ?", (s["key"],)).fetchone()[0]
        with h5py.File(os.path.join(self.out, shard), "r") as f:
            g = f["tasks"][s["key"]]
            got = {k: g[k][()] for k in ("image_ids", "perturbation", "eta")}
            if "best_loss_perturbation" in g:
                got["best_loss_perturbation"] = g["best_loss_perturbation"][()]
        rows = self.db.execute("SELECT image_id, run, target, success, true_label, final_pred FROM fgsm_results "
                               "WHERE task_key = ? ORDER BY image_id", (s["key"],)).fetchall()
        return got, rows

    def test_every_setting_ran(self):
        names = [s["name"] for s in self.settings()]
        # 5 attacks x (linf 0.03, l2 0.03, l2 1.5): eps 1.5 is an L2 budget only.
        self.assertEqual(len(names), 15, names)
        self.assertIn("pgd-l2-eps1.5-steps10-restarts2", names)
        self.assertIn("eps0.03-steps10", names)  # iterative FGSM keeps its name
        self.assertEqual(self.db.execute("SELECT COUNT(*) FROM fgsm_results").fetchone()[0], 15 * N)

    def test_attacks_equal_the_references_bit_for_bit(self):
        x0 = torch.from_numpy(self.px).float().div(255.0).unsqueeze(1)
        y = torch.from_numpy(self.labels)
        ids = list(range(N))
        for s in self.settings():
            with self.subTest(setting=s["name"]):
                got, rows = self.stored(s)
                self.assertEqual(got["image_ids"].tolist(), ids)
                out, best, run_of, target_of, etas = reference(self.net, s, x0, y, ids)
                if s["norm"] == "l2":
                    # L2 steps divide the gradient by its norm: the last-bit differences between
                    # vizsweep's backward pass and TorchScript's, which sign() absorbs under L-inf,
                    # show here. PGD, MI-FGSM and iterative FGSM agree to 1e-5 of eps; APGD compares
                    # losses exactly at its checkpoints, so a last-bit difference can take another
                    # branch: its L2 runs are checked by their properties (test_techniques.cpp).
                    if not s["attack"].startswith("apgd"):
                        np.testing.assert_allclose(got["perturbation"], (out - x0).numpy(), rtol=0, atol=1e-5 * s["eps"])
                    continue
                np.testing.assert_array_equal(got["perturbation"], (out - x0).numpy(), s["name"])
                self.assertEqual([r[1] for r in rows], run_of.tolist())
                if s["attack"] == "apgd-dlr":
                    self.assertEqual([r[2] for r in rows], target_of.tolist())
                if s["attack"].startswith("apgd"):
                    np.testing.assert_array_equal(got["best_loss_perturbation"], (best - x0).numpy())
                    np.testing.assert_array_equal(got["eta"], etas.numpy())
                    # eta changes only at the paper's checkpoints, and only by halving.
                    w = set(checkpoints(s["steps"]))
                    for k in range(1, s["steps"] + 1):
                        changed = got["eta"][k] != got["eta"][k - 1]
                        if k not in w:
                            self.assertFalse(changed.any(), f"step {k}")
                        np.testing.assert_array_equal(got["eta"][k][changed], got["eta"][k - 1][changed] / 2)
                # success is the label changed by the image returned.
                for image_id, run, target, success, truth, final in rows:
                    self.assertEqual(success, int(final != truth))

    def test_checkpoints_are_the_papers(self):
        # N = 100: p = 0, .22, .41, .57, .70, .80, .87, .93, .99 (then 1.05).
        self.assertEqual(checkpoints(100), [22, 41, 57, 70, 80, 87, 93, 99])
        s = next(s for s in self.settings() if s["attack"] == "apgd-ce")
        got, _ = self.stored(s)
        changed_at = {k for k in range(1, s["steps"] + 1) if (got["eta"][k] != got["eta"][k - 1]).any()}
        self.assertTrue(changed_at <= set(checkpoints(10)), changed_at)

    def test_robust_flag_is_no_attack_changed_the_label(self):
        rows = self.db.execute(
            "SELECT s.norm, s.eps, r.image_id, r.clean_pred = r.true_label AND r.final_pred = r.true_label "
            "FROM fgsm_results r JOIN tasks t ON t.task_key = r.task_key JOIN fgsm_settings s ON s.setting_id = t.setting_id"
        ).fetchall()
        want = {}
        for norm, eps, image_id, ok in rows:
            want[(norm, eps, image_id)] = want.get((norm, eps, image_id), 1) and ok
        got = {(n, e, i): rb for n, e, i, rb in self.db.execute("SELECT norm, eps, image_id, robust FROM robust_images")}
        self.assertEqual(got, want)
        acc = dict(((n, e), a) for n, e, a in self.db.execute("SELECT norm, eps, robust_accuracy FROM robust_accuracy"))
        per = self.db.execute("SELECT attack, norm, eps, robust_accuracy FROM attack_accuracy").fetchall()
        for attack, norm, eps, a in per:
            self.assertLessEqual(acc[(norm, eps)], a, attack)
        print("robust accuracy (64 images, 10 steps):", file=sys.stderr)
        for attack, norm, eps, a in sorted(per, key=lambda r: (r[1], r[2], r[0])):
            print(f"  {norm} eps {eps:<5} {attack:<9} {a:.3f}   ensemble {acc[(norm, eps)]:.3f}", file=sys.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
