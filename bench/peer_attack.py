"""The plain-PyTorch baseline of the attacks benchmark: PGD (L-inf, a uniform random start, the
cross-entropy's signed gradient, projection and clipping each step) on a TorchScript
classifier over Fashion-MNIST test images, as a careful PyTorch user writes it, in batches of
--batch. Prints image-steps per second of the attack loop (the images loaded and resized
before the clock starts; one warm-up batch not timed).

    /usr/bin/python3 bench/peer_attack.py --model models/fashion_vgg11.pt --images 2000 \\
        --steps 10 --batch 250 --threads 2
"""
import argparse
import gzip
import json
import os
import time

import numpy as np
import torch
import torch.nn.functional as F

p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument("--model", required=True, help="TorchScript file with its vizsweep .json record (mean, std, size)")
p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
p.add_argument("--images", type=int, default=2000)
p.add_argument("--steps", type=int, default=10)
p.add_argument("--eps", type=float, default=0.03)
p.add_argument("--batch", type=int, default=250)
p.add_argument("--threads", type=int, default=os.cpu_count())
a = p.parse_args()
torch.set_num_threads(a.threads)

with open(os.path.splitext(a.model)[0] + ".json") as f:
    rec = json.load(f)
model = torch.jit.load(a.model).eval()
mean = torch.tensor(rec["mean"]).view(1, -1, 1, 1)
std = torch.tensor(rec["std"]).view(1, -1, 1, 1)
with gzip.open(os.path.join(a.data, "t10k-images-idx3-ubyte.gz"), "rb") as f:
    px = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)[:a.images]
with gzip.open(os.path.join(a.data, "t10k-labels-idx1-ubyte.gz"), "rb") as f:
    labels = torch.from_numpy(np.frombuffer(f.read(), np.uint8, offset=8)[:a.images].astype(np.int64))
size = rec["input_size"]
x_all = F.interpolate(torch.from_numpy(px).float() / 255, size=(size, size), mode="bilinear", align_corners=False,
                      antialias=True).clamp(0, 1)
alpha = min(a.eps, 2.5 * a.eps / a.steps)


def pgd(x0, y):
    x = (x0 + (torch.rand_like(x0) * 2 - 1) * a.eps).clamp(0, 1)
    for _ in range(a.steps):
        x.requires_grad_(True)
        loss = F.cross_entropy(model((x - mean) / std), y, reduction="sum")
        g, = torch.autograd.grad(loss, [x])
        with torch.no_grad():
            x = torch.max(torch.min(x.detach() + alpha * g.sign(), x0 + a.eps), x0 - a.eps).clamp(0, 1)
    with torch.no_grad():
        return (model((x - mean) / std).argmax(1) != y).sum().item()


pgd(x_all[:a.batch], labels[:a.batch])  # warm-up
t0 = time.perf_counter()
broken = sum(pgd(x_all[i:i + a.batch], labels[i:i + a.batch]) for i in range(0, a.images, a.batch))
dt = time.perf_counter() - t0
print(f"pgd images={a.images} steps={a.steps} batch={a.batch} threads={a.threads} seconds={dt:.3f} "
      f"broken={broken} image_steps_per_s={a.images * a.steps / dt:.1f}")
