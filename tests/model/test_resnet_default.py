"""The second default model, models/fashion_resnet.pt (a graph: residual adds, batch norm,
global pooling), on Fashion-MNIST's 10,000 test images.

PyTorch is the reference here: it loads the committed TorchScript file itself and computes
every tap named below by calling the model's own submodules (conv1, bn1, relu, layer1[0], ...),
without vizsweep's graph walk. Against it:
- the model's test accuracy is at least 92%, as its record says;
- natural exemplars equal a full sort of every unit's responses over all 10,000 images, at
  taps before, at and after residual adds and at the logits, on 1 rank and on 3 ranks (whose
  shards the index's `exemplars` view merges), and the two runs agree row for row;
- sweeps/examples/fashion_resnet.yaml maps it end to end (every technique, tap names with
  dots and colons), `vizsweep verify` passes, and the analysis scripts draw it.

Tolerances: vizsweep and PyTorch run the same ATen kernels, but on other batch sizes, where
oneDNN may pick other convolution algorithms: responses agree to rounding (1e-5 of the
layer's largest response). A list therefore equals the full sort up to images whose responses
lie within that rounding of each other: at every rank, the image vizsweep lists must have the
response the full sort has at that rank, within the tolerance, and the ids must be the sort's
wherever no other response lies that close.

Run by ctest (label model, plain pass only: ~3 minutes) with Debian's /usr/bin/python3;
VIZSWEEP is the binary's path."""
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import unittest

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
VIZSWEEP = os.environ.get("VIZSWEEP", os.path.join(ROOT, "build", "runner", "vizsweep"))
MODEL = os.path.join(ROOT, "models", "fashion_resnet.pt")
DATA = "/usr/share/datasets/fashion-mnist"
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMPI_MCA_rmaps_base_oversubscribe="1")
TAPS = ["layer1.0.conv1", "layer1.0:add", "layer2", "layer3.0.relu", "fc"]
K = 9


def test_images():
    """All 10,000 test images in [0, 1], resized to 32 px as the runner resizes them, and labels."""
    import gzip
    with gzip.open(os.path.join(DATA, "t10k-images-idx3-ubyte.gz"), "rb") as f:
        px = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)
    with gzip.open(os.path.join(DATA, "t10k-labels-idx1-ubyte.gz"), "rb") as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)
    x = torch.from_numpy(px.astype(np.float32) / 255.0)
    x = F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)
    return x, torch.from_numpy(labels.astype(np.int64))


def taps_by_hand(m, pixels):
    """Each tap of TAPS from the model's submodules, as torchvision's BasicBlock computes it,
    for images in pixel space (normalized as the model's record says, as vizsweep does)."""
    out = {}
    with torch.no_grad():
        x = (pixels - 0.5) / 0.5
        h = m.relu(m.bn1(m.conv1(x)))
        b = getattr(m.layer1, "0")
        c1 = b.conv1(h)
        out["layer1.0.conv1"] = c1
        add = b.bn2(b.conv2(b.relu(b.bn1(c1)))) + h
        out["layer1.0:add"] = add
        h = getattr(m.layer1, "1")(b.relu(add))
        h = m.layer2(h)
        out["layer2"] = h
        b = getattr(m.layer3, "0")
        out["layer3.0.relu"] = b.relu(b.bn1(b.conv1(h)))
        out["fc"] = m(x)
    return out


class ResNetDefault(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        torch.set_num_threads(2)
        cls.model = torch.jit.load(MODEL).eval()
        cls.x, cls.y = test_images()
        with open(os.path.splitext(MODEL)[0] + ".json") as f:
            cls.record = json.load(f)

    def test_trained_to_at_least_92_percent(self):
        self.assertEqual(self.record["arch"], "resnet_mini")
        self.assertEqual((self.record["mean"], self.record["std"]), ([0.5], [0.5]))  # as taps_by_hand normalizes
        self.assertGreaterEqual(self.record["training"]["test_accuracy"], 0.92)
        with torch.no_grad():
            pred = torch.cat([taps_by_hand(self.model, self.x[i:i + 1000])["fc"].argmax(1) for i in range(0, 10000, 1000)])
        acc = (pred == self.y).double().mean().item()
        print(f"fashion_resnet.pt: {acc:.4f} on the 10,000 test images (record: "
              f"{self.record['training']['test_accuracy']:.4f})", flush=True)
        self.assertGreaterEqual(acc, 0.92)
        self.assertAlmostEqual(acc, self.record["training"]["test_accuracy"], delta=0.002)

    def test_exemplars_equal_a_full_sort_on_1_and_3_ranks(self):
        responses = {}
        for i in range(0, 10000, 500):
            for name, t in taps_by_hand(self.model, self.x[i:i + 500]).items():
                responses.setdefault(name, []).append(t)
        full = {}
        for name, parts in responses.items():
            t = torch.cat(parts)
            if t.dim() == 4:
                v = t.flatten(2).max(2).values  # the unit's maximum over positions
                full[name] = (v.numpy(), t.size(3))
            else:
                full[name] = (t.numpy(), 1)
        rows = {}
        with tempfile.TemporaryDirectory() as tmp:
            for ranks, per_task in ((1, 10000), (3, 2500)):
                sweep = os.path.join(tmp, f"ex{ranks}.yaml")
                with open(sweep, "w") as f:
                    f.write(f"name: resnet_ex{ranks}\nmodel: {{file: {MODEL}}}\nthreads: 1\nexemplars:\n"
                            f"  layers: [{', '.join(repr(t) for t in TAPS)}]\n"
                            f"  images: {{dataset: fashion-mnist, split: test}}\n  images_per_task: {per_task}\n"
                            f"  k: {K}\n  bottom: true\n")
                d = os.path.join(tmp, f"out{ranks}")
                r = subprocess.run(["mpirun", "-np", str(ranks), "--oversubscribe", VIZSWEEP, "run", sweep, "--out", d],
                                   env=ENV, capture_output=True, text=True, timeout=900)
                self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
                db = sqlite3.connect(f"file:{d}/index.sqlite?mode=ro", uri=True)
                rows[ranks] = db.execute("SELECT layer, unit, kind, rank, image_id, activation, y, x FROM exemplars "
                                         "ORDER BY layer, unit, kind, rank").fetchall()
                db.close()
        self.assertEqual(rows[3], rows[1], "3 ranks' merged lists differ from one scan")
        units = sum(full[t][0].shape[1] for t in TAPS)
        self.assertEqual(len(rows[1]), units * 2 * K)
        lists = {}
        for layer, unit, kind, rank, image_id, act, y, x in rows[1]:
            lists.setdefault((layer, unit, kind), []).append((rank, image_id, act, y, x))
        near, exact = 0, 0
        where = []  # (layer, unit, image, y, x) of every listed map response
        for (layer, unit, kind), got in lists.items():
            v, width = full[layer]
            col = v[:, unit]
            tol = 1e-5 * max(float(np.abs(v).max()), 1e-30)
            order = np.lexsort((np.arange(col.size), -col if kind == "top" else col))
            self.assertEqual([g[0] for g in got], list(range(1, K + 1)))
            for r, (_, image_id, act, y, x) in enumerate(got):
                want = order[r]
                self.assertLessEqual(abs(col[image_id] - col[want]), tol, (layer, unit, kind, r))
                self.assertLessEqual(abs(act - col[image_id]), tol, (layer, unit, kind, r))
                if image_id == want:
                    exact += 1
                else:
                    # Only where another image's response lies within rounding of this one.
                    self.assertLessEqual(abs(col[want] - act), tol, (layer, unit, kind, r, image_id, want))
                    near += 1
                if width > 1:
                    where.append((layer, unit, image_id, y, x))
        # Each listed position holds the unit's maximum over its map (within rounding).
        ids = sorted({w[2] for w in where})
        pos = {i: n for n, i in enumerate(ids)}
        maps = taps_by_hand(self.model, self.x[ids])
        for layer, unit, image_id, y, x in where:
            m = maps[layer][pos[image_id], unit]
            self.assertLessEqual(float(m.max() - m[y, x]), 1e-5 * max(float(np.abs(full[layer][0]).max()), 1e-30),
                                 (layer, unit, image_id, y, x))
        print(f"exemplars of {units} units at {len(TAPS)} taps over 10,000 images: {exact} list entries equal the "
              f"full sort's, {near} a tie within rounding; 3 ranks = 1 rank row for row", flush=True)
        self.assertGreater(exact, 0.95 * (exact + near))


    def test_example_sweep_maps_it_end_to_end(self):
        example = os.path.join(ROOT, "sweeps", "examples", "fashion_resnet.yaml")
        with tempfile.TemporaryDirectory() as tmp:
            d = os.path.join(tmp, "out")
            r = subprocess.run(["mpirun", "-np", "2", "--oversubscribe", VIZSWEEP, "run", example, "--out", d],
                               env=ENV, capture_output=True, text=True, timeout=900)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            db = sqlite3.connect(f"file:{d}/index.sqlite?mode=ro", uri=True)
            states = dict(db.execute("SELECT state, COUNT(*) FROM tasks GROUP BY state").fetchall())
            techniques = {t for (t,) in db.execute("SELECT DISTINCT technique FROM tasks")}
            layers = {t for (t,) in db.execute("SELECT DISTINCT layer FROM exemplar_results")}
            class_units = db.execute("SELECT COUNT(*), SUM(is_argmax) FROM actmax_results r JOIN tasks t "
                                     "ON t.task_key = r.task_key WHERE t.layer = 'fc'").fetchone()
            db.close()
            self.assertEqual(set(states), {"done"}, states)
            self.assertEqual(techniques, {"actmax", "invert", "fgsm", "featuremaps", "exemplars"})
            self.assertEqual(layers, {"conv1", "layer1.0.conv1", "layer1.0:add", "layer2", "layer3.0:add", "fc"})
            self.assertEqual(class_units[0], 32)  # 8 class units x 4 settings
            v = subprocess.run([VIZSWEEP, "verify", d], env=ENV, capture_output=True, text=True, timeout=300)
            self.assertEqual(v.returncode, 0, v.stdout + v.stderr)
            said = {}
            for args in (["atlas", d, "-o", os.path.join(tmp, "atlas")],
                         ["grid", d, "-o", os.path.join(tmp, "grid.png"), "--layer", "layer1.0:add"],
                         ["exemplars", d, "-o", os.path.join(tmp, "ex.png"), "--layer", "layer3.0:add"],
                         ["answers", d]):
                a = subprocess.run(["/usr/bin/python3", "-m", "analysis", *args], cwd=ROOT, capture_output=True,
                                   text=True, timeout=300)
                self.assertEqual(a.returncode, 0, args[0] + ": " + a.stdout + a.stderr)
                said[args[0]] = a.stdout
            self.assertIn("6 layers", said["atlas"])
            self.assertIn("4 settings x 8 units", said["grid"])
            self.assertIn("64 units of layer3.0:add x 9 exemplars", said["exemplars"])  # every unit scanned
            self.assertTrue(os.path.exists(os.path.join(tmp, "ex-p1.png")))
            print(f"example sweep: {states['done']} tasks done, verified, drawn", flush=True)

if __name__ == "__main__":
    unittest.main(verbosity=2)
