"""Writes TorchScript models vizsweep must refuse, for tests: OUT (a forward that returns a
feature map, not logits), and beside it two_inputs.pt (a forward of two tensors) and
tuple_output.pt (a forward that returns a tuple)."""
import os
import sys

import torch


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Tanh())

    def forward(self, x):
        return self.body(x)


class TwoInputs(Net):
    def forward(self, x, y):
        return self.body(x) + self.body(y)


class TupleOutput(Net):
    def forward(self, x):
        h = self.body(x)
        return h, h.mean()


out = sys.argv[1]
torch.jit.script(Net()).save(out)
torch.jit.script(TwoInputs()).save(os.path.join(os.path.dirname(out), "two_inputs.pt"))
torch.jit.script(TupleOutput()).save(os.path.join(os.path.dirname(out), "tuple_output.pt"))
