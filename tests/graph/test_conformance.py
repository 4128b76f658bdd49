"""Graph models against PyTorch: for torchvision's resnet18, resnet50, densenet121, googlenet,
mobilenet_v3_small, efficientnet_b0, convnext_tiny and vit_b_16 (seeded random weights,
exported by models/export_torchvision.py at 64 px), the output vizsweep computes at every tap
equals what PyTorch computes at that call site, on 2 images. PyTorch's side is the eager
torchvision model with a forward hook on every module, one record per call (so a module
called three times, like Bottleneck's relu, is compared at each call: "relu", "relu:2",
"relu:3"). vizsweep's side is Model::forward at each tap (only the tap's prefix runs) and
Model::forward_all (one pass), from tests/graph/dump_taps.cpp.

Tolerance: 1e-5 of the largest magnitude in the tensor. The two sides run the same ATen
kernels in the same order on one machine; what differs is the interpreter's out-of-place
rewrite of in-place operations (a ReLU in place or not computes the same values) and, on
some CPUs, a kernel choice for a different memory layout, which moves results by rounding.

Where a tap's receptive field (from the analysis of the graph) is smaller than the image, its
centre unit computed on the crop alone must equal it on the whole image within 1e-4 of its
magnitude (the tolerance of the check graph.cpp makes at load): the crop is exact. resnet18 and densenet121 must have such taps.
A ViT's token taps see the whole image after attention; the box exemplars and the atlas show
for a token is its patch.

Every tap must be checked unless it is an operation between module calls (":add", ":cat"):
those have no hook, and each is checked through the module call that reads it."""
import json
import os
import subprocess
import sys
import tempfile
import unittest

import torch

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "models"))
import export_torchvision  # noqa: E402

DUMP = os.environ.get("VIZSWEEP_DUMP_TAPS", os.path.join(ROOT, "build", "tests", "graph", "vizsweep-dump-taps"))
MODELS = os.environ.get("VIZSWEEP_CONFORMANCE_MODELS",
                        "resnet18,resnet50,densenet121,googlenet,mobilenet_v3_small,efficientnet_b0,convnext_tiny,"
                        "vit_b_16").split(",")
SIDE = 64
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def hooked(model, x):
    """Every module's output per call: {"layer1.0.relu": t, "layer1.0.relu:2": t, ...}."""
    outs, calls, handles = {}, {}, []
    for name, mod in model.named_modules():
        if not name:
            continue

        def hook(m, inputs, output, name=name):
            if isinstance(output, torch.Tensor):
                k = calls[name] = calls.get(name, 0) + 1
                outs[name if k == 1 else f"{name}:{k}"] = output.detach().clone()
            else:
                calls[name] = calls.get(name, 0) + 1
        handles.append(mod.register_forward_hook(hook))
    with torch.no_grad():
        logits = model(x)
    for h in handles:
        h.remove()
    return outs, logits


def as_shown(t, tap):
    """PyTorch's tensor in vizsweep's layout: tokens [N, T, D] on the patch grid."""
    if t.dim() == 3 and len(tap["shape"]) == 3:
        grid = tap["shape"][1]
        if t.size(1) == grid * grid + 1:
            t = t[:, 1:]
        return t.transpose(1, 2).reshape(t.size(0), t.size(2), grid, grid)
    if t.dim() == 3 and len(tap["shape"]) == 1:  # the class token
        return t[:, 0]
    return t


class Conformance(unittest.TestCase):
    def check(self, arch):
        torch.set_num_threads(2)
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, arch + ".pt")
            args = ["--arch", arch, "--input-size", str(SIDE), "-o", path]
            export_torchvision.main(args)
            model, _ = export_torchvision.build(export_torchvision.parser().parse_args(args))
            model.eval()
            x = torch.rand(2, 3, SIDE, SIDE, generator=torch.Generator().manual_seed(7))
            torch.save(x, os.path.join(tmp, "x.pt"))
            out = os.path.join(tmp, "taps")
            os.mkdir(out)
            r = subprocess.run([DUMP, path, os.path.join(tmp, "x.pt"), out], capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            with open(os.path.join(out, "taps.json")) as f:
                info = json.load(f)
            self.assertTrue(info["graph"])
            ref, logits = hooked(model, (x - MEAN) / STD)
            checked, unhooked, cropped, patches = 0, [], 0, 0
            for tap in info["taps"]:
                if arch.startswith("vit_") and len(tap["shape"]) == 3:
                    # A token's box (exemplar crops, the atlas) is its patch: the centre patch here.
                    grid = tap["shape"][1]
                    p, c = SIDE // grid, tap["shape"][1] // 2
                    self.assertEqual(tap["field"], [c * p, (c + 1) * p] * 2, f"{arch} {tap['name']}")
                    patches += 1
                if "crop" in tap:  # the centre unit on its receptive-field crop equals it on the whole image
                    c = tap["crop"]
                    # 1e-4, the tolerance the model's own check of each crop uses at load (graph.cpp):
                    # a smaller input may take another convolution algorithm (oneDNN chooses by
                    # shape and CPU kind), which moves results by rounding, not by what is computed.
                    self.assertLessEqual(c["max_diff"], 1e-4 * max(c["scale"], 1e-30), f"{arch} {tap['name']}: crop {c}")
                    self.assertLess((c["window"][1] - c["window"][0]) * (c["window"][3] - c["window"][2]), SIDE * SIDE)
                    cropped += 1
                ours = torch.load(os.path.join(out, tap["file"]))
                ours_all = torch.load(os.path.join(out, "all_" + tap["file"]))
                self.assertEqual(list(ours.shape[1:]), tap["shape"], tap["name"])
                scale = max(float(ours.abs().max()), 1e-30)
                self.assertLessEqual(float((ours - ours_all).abs().max()), 1e-5 * scale,
                                     f"{arch} {tap['name']}: forward and forward_all differ")
                names = [tap["name"]] + tap["aliases"]
                base = [n[:-4] if n.endswith(":cls") else n for n in names]
                hits = [(n, b) for n, b in zip(names, base) if b in ref]
                if not hits:
                    self.assertIn(":", tap["name"], f"{arch}: tap {tap['name']} has no hook and is no operation")
                    unhooked.append(tap["name"])
                    continue
                for n, b in hits:
                    theirs = as_shown(ref[b], tap)
                    self.assertEqual(theirs.shape, ours.shape, f"{arch} {n}")
                    err = float((ours - theirs).abs().max())
                    self.assertLessEqual(err, 1e-5 * max(float(theirs.abs().max()), 1e-30),
                                         f"{arch} {n}: max difference {err:.3g}")
                    checked += 1
            last = torch.load(os.path.join(out, info["taps"][-1]["file"]))
            self.assertLessEqual(float((last - logits).abs().max()), 1e-5 * float(logits.abs().max()))
            self.assertGreater(checked, 10)
            if arch.startswith("vit_"):
                self.assertGreater(patches, 20, f"{arch}: token taps whose box is their patch")
            print(f"{arch}: {len(info['taps'])} taps, {checked} call sites equal to PyTorch's hooks, "
                  f"{len(unhooked)} operations between calls checked through their readers, {cropped} taps whose "
                  "centre unit on its receptive-field crop equals it on the whole image", flush=True)
            return cropped


def _test(arch):
    def run(self):
        cropped = self.check(arch)
        if arch in ("resnet18", "densenet121"):
            self.assertGreater(cropped, 10, f"{arch}: too few taps with a receptive-field crop")
    return run


for _arch in MODELS:
    setattr(Conformance, f"test_{_arch}", _test(_arch))

if __name__ == "__main__":
    unittest.main()
