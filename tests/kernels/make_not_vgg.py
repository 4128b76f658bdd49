"""Writes a TorchScript model that is not VGG-style (no features/classifier), for tests."""
import sys

import torch


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Tanh())

    def forward(self, x):
        return self.body(x)


torch.jit.script(Net()).save(sys.argv[1])
