#!/usr/bin/python3
"""Export a torchvision classifier to a TorchScript file that vizsweep loads: any of
torchvision's classification models (vgg16, resnet50, densenet121, googlenet,
mobilenet_v3_small, efficientnet_b0, convnext_tiny, vit_b_16, ...).

The file carries its own metadata (architecture, input normalization, input size,
class names) as the TorchScript extra file "vizsweep.json", so every vizsweep
output can name classes and work in pixel space [0, 1].

  # offline: torchvision's architecture with seeded random weights
  /usr/bin/python3 models/export_torchvision.py --arch vgg16 --weights none -o vgg16.pt
  # on a machine with internet access: the ImageNet weights
  /usr/bin/python3 models/export_torchvision.py --arch vgg16 --weights IMAGENET1K_V1 -o vgg16.pt

With --reference PREFIX it also writes PREFIX.input.pt and PREFIX.output.pt (a
seeded batch of images in [0, 1] and the logits torchvision computes for it, as
tensors saved with torch.save, readable by torch::pickle_load) so a test can prove
the C++ side computes the same logits.

--width and --in-channels build the same torchvision VGG class with scaled channel
counts (a small VGG for tests and for the trained default model).

Other architectures are scripted (torch.jit.script) unless their scripted forward returns
something other than a tensor of logits (googlenet and inception_v3 return a tuple), which
are traced instead (--mode trace|script|auto). --input-size also builds vision transformers
for that image size (vit_b_16 at 64 px: a 4 x 4 patch grid).

Two small residual networks for 32 px inputs (Fashion-MNIST): three stages of two of
torchvision's BasicBlock (batch norm, identity shortcuts), widths 32/64/128 times --width
at strides 1/2/2, global average pooling and one linear layer.
  --arch resnet_mini   laid out as torchvision's ResNet (conv1, bn1, relu, layer1-3,
                       avgpool, fc), so its taps read like a ResNet's: layer1.0.conv1,
                       layer1.0.relu:2, layer1.0:add. The second default model
                       (models/make_resnet_model.sh).
  --arch resnet_small  the same blocks in one Sequential: the independent judge of the
                       default models' class images (models/make_judge_model.sh).
"""
import argparse
import json
import sys

import torch
import torchvision
from torchvision.models import vgg as tvvgg

ARCHS = {"vgg11": "A", "vgg13": "B", "vgg16": "D", "vgg19": "E"}
SMALL_RESNETS = ("resnet_small", "resnet_mini")
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


def scaled_vgg(arch, width, in_channels, num_classes, fc_width, pool):
    """torchvision's VGG class with every width multiplied by `width`."""
    cfg = [v if v == "M" else max(1, int(round(v * width))) for v in tvvgg.cfgs[ARCHS[arch]]]
    layers = []
    c = in_channels
    for v in cfg:
        if v == "M":
            layers.append(torch.nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [torch.nn.Conv2d(c, v, kernel_size=3, padding=1), torch.nn.ReLU(inplace=True)]
            c = v
    model = tvvgg.VGG(torch.nn.Sequential(*layers), num_classes=num_classes, init_weights=True)
    hidden = fc_width or max(1, int(round(4096 * width)))
    model.avgpool = torch.nn.AdaptiveAvgPool2d((pool, pool))
    model.classifier = torch.nn.Sequential(
        torch.nn.Linear(c * pool * pool, hidden), torch.nn.ReLU(True), torch.nn.Dropout(),
        torch.nn.Linear(hidden, hidden), torch.nn.ReLU(True), torch.nn.Dropout(),
        torch.nn.Linear(hidden, num_classes))
    return model


def small_stages(width, in_channels):
    """The stem and the three stages of the module docstring: (stem, [stage, ...], channels)."""
    from torchvision.models.resnet import BasicBlock
    widths = [max(1, int(round(w * width))) for w in (32, 64, 128)]
    stem = [torch.nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False),
            torch.nn.BatchNorm2d(widths[0]), torch.nn.ReLU(inplace=True)]
    stages = []
    c = widths[0]
    for i, w in enumerate(widths):
        stride = 1 if i == 0 else 2
        down = None
        if stride != 1 or c != w:
            down = torch.nn.Sequential(torch.nn.Conv2d(c, w, 1, stride=stride, bias=False), torch.nn.BatchNorm2d(w))
        stages.append(torch.nn.Sequential(BasicBlock(c, w, stride, down), BasicBlock(w, w)))
        c = w
    return stem, stages, c


def resnet_small(width, in_channels, num_classes):
    """The judge's layout: everything in one Sequential."""
    stem, stages, c = small_stages(width, in_channels)
    layers = stem + [block for stage in stages for block in stage]
    layers += [torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(c, num_classes)]
    return torch.nn.Sequential(*layers)


class ResNetMini(torch.nn.Module):
    """The same network laid out and named as torchvision's ResNet."""

    def __init__(self, width, in_channels, num_classes):
        super().__init__()
        (self.conv1, self.bn1, self.relu), (self.layer1, self.layer2, self.layer3), c = small_stages(width, in_channels)
        self.avgpool = torch.nn.AdaptiveAvgPool2d(1)
        self.fc = torch.nn.Linear(c, num_classes)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def to_torchscript(model, a):
    """Scripted, or traced on a seeded batch where the scripted forward returns no tensor."""
    if a.mode in ("auto", "script"):
        scripted = torch.jit.script(model)
        if a.mode == "script":
            return scripted
        with torch.no_grad():
            out = scripted(torch.zeros(1, a.in_channels, a.input_size, a.input_size))
        if isinstance(out, torch.Tensor):
            return scripted
    x = torch.rand(1, a.in_channels, a.input_size, a.input_size, generator=torch.Generator().manual_seed(a.seed))
    with torch.no_grad():
        return torch.jit.trace(model, x, check_trace=False)


def build(a):
    """The model the arguments name, from a.seed, and its class names (None: "0".."K-1")."""
    torch.manual_seed(a.seed)
    standard = a.width == 1.0 and a.in_channels == 3 and a.num_classes == 1000 and a.fc_width == 0 and a.pool == 7
    categories = None
    builder = getattr(torchvision.models, a.arch, None)
    if a.arch not in ARCHS and a.arch not in SMALL_RESNETS and not callable(builder):
        sys.exit(f"export_torchvision: --arch {a.arch!r} is not a torchvision classification model")
    if a.arch not in ARCHS and a.arch not in SMALL_RESNETS:
        if a.in_channels != 3 or a.width != 1.0 or a.fc_width or a.pool != 7:
            sys.exit(f"export_torchvision: --arch {a.arch}: --width, --in-channels, --fc-width and --pool are for VGGs")
        kw = {"num_classes": a.num_classes}
        if a.arch.startswith("vit_"):
            kw["image_size"] = a.input_size
        if a.arch in ("googlenet", "inception_v3"):
            kw.update(aux_logits=False, init_weights=True)
        if a.weights.lower() == "none":
            model = builder(weights=None, **kw)
        else:
            model, categories = pretrained(a)
        if categories is None and a.num_classes == 1000:
            categories = list(torchvision.models.VGG16_Weights.IMAGENET1K_V1.meta["categories"])
    elif a.arch in SMALL_RESNETS:
        if a.weights.lower() != "none":
            sys.exit(f"export_torchvision: --arch {a.arch} has no pretrained weights; use --weights none")
        small = resnet_small if a.arch == "resnet_small" else ResNetMini
        model = small(a.width, a.in_channels, a.num_classes)
    elif a.weights.lower() == "none":
        if standard:
            model = getattr(torchvision.models, a.arch)(weights=None)
        else:
            model = scaled_vgg(a.arch, a.width, a.in_channels, a.num_classes, a.fc_width, a.pool)
        if a.num_classes == 1000:
            categories = list(torchvision.models.VGG16_Weights.IMAGENET1K_V1.meta["categories"])
    else:
        if not standard:
            sys.exit("export_torchvision: pretrained weights need the standard architecture "
                     "(--width 1 --in-channels 3 --num-classes 1000 --pool 7)")
        model, categories = pretrained(a)
    return model, categories


def pretrained(a):
    """torchvision's model with the named weights (downloads them) and their class names."""
    enum = torchvision.models.get_model_weights(a.arch)
    try:
        weights = enum[a.weights]
    except KeyError:
        sys.exit(f"export_torchvision: --weights {a.weights!r}: not one of {', '.join(w.name for w in enum)} or none")
    return getattr(torchvision.models, a.arch)(weights=weights), list(weights.meta["categories"])


def parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default="vgg16",
                   help="a torchvision classification model (vgg16, resnet50, vit_b_16, ...), resnet_mini or resnet_small")
    p.add_argument("--mode", choices=["auto", "script", "trace"], default="auto",
                   help="how the model becomes TorchScript (auto: script, trace where that returns no tensor)")
    p.add_argument("--weights", default="none",
                   help="'none' (seeded random weights, works offline) or a torchvision weights "
                        "name such as IMAGENET1K_V1 (downloads them)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--width", type=float, default=1.0, help="channel multiplier (1 = torchvision's VGG)")
    p.add_argument("--in-channels", type=int, default=3)
    p.add_argument("--num-classes", type=int, default=1000)
    p.add_argument("--fc-width", type=int, default=0, help="hidden fc units (default 4096 * width)")
    p.add_argument("--pool", type=int, default=7, help="adaptive avgpool output side (torchvision: 7)")
    p.add_argument("--input-size", type=int, default=224, help="recorded input size in pixels")
    p.add_argument("--reference", metavar="PREFIX", help="also write PREFIX.input.pt and PREFIX.output.pt")
    p.add_argument("--reference-size", type=int, default=0, help="side of the reference images (default --input-size)")
    p.add_argument("-o", "--output", required=True)
    return p


def main(argv=None):
    a = parser().parse_args(argv)

    model, categories = build(a)
    model.eval()
    for q in model.parameters():
        q.requires_grad_(False)

    if a.in_channels == 3:
        mean, std = IMAGENET_MEAN, IMAGENET_STD
    else:
        mean, std = [0.5] * a.in_channels, [0.5] * a.in_channels
    meta = {
        "format": "vizsweep-model/1",
        "arch": a.arch,
        "source": "torchvision " + torchvision.__version__,
        "weights": a.weights,
        "seed": a.seed,
        "width": a.width,
        "in_channels": a.in_channels,
        "num_classes": a.num_classes,
        "input_size": a.input_size,
        "mean": mean,
        "std": std,
        "classes": categories if categories else [str(i) for i in range(a.num_classes)],
    }
    scripted = to_torchscript(model, a)
    scripted.save(a.output, _extra_files={"vizsweep.json": json.dumps(meta)})

    if a.reference:
        side = a.reference_size or a.input_size
        g = torch.Generator().manual_seed(a.seed + 1)
        x = torch.rand(2, a.in_channels, side, side, generator=g)
        m = torch.tensor(mean).view(1, -1, 1, 1)
        s = torch.tensor(std).view(1, -1, 1, 1)
        with torch.no_grad():
            y = model((x - m) / s)
        torch.save(x, a.reference + ".input.pt", _use_new_zipfile_serialization=True)
        torch.save(y, a.reference + ".output.pt", _use_new_zipfile_serialization=True)
    print(f"export_torchvision: wrote {a.output} ({a.arch}, weights {a.weights})")


if __name__ == "__main__":
    main()
