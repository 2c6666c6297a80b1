"""PyTorch definitions of the networks that resnet.c builds.

Each model's state_dict has exactly the keys and shapes of resnet.c's model
of the same name, so safetensors files move between the two unchanged:

  resnet20 ... resnet110   CIFAR 6n+2 ResNets (He et al. 2015, section 4.2),
                           shortcut option A, B or C
  plain20 ... plain110     the same networks without shortcuts
  preact-resnetN           pre-activation ResNets (He et al. 2016), basic
                           blocks at depth 6n+2, bottlenecks at 164 and 1001
  d2l-resnet18             ResNet-18 of Dive into Deep Learning (PyTorch
                           edition, d2l 0.17), an nn.Sequential
  resnet18 ... resnet152,  torchvision's own models (torchvision.models),
  resnext*, wide_resnet*   whose names resnet.c shares

Run as a script to print a model's parameter count or its state_dict keys:

  /usr/bin/python3 tools/torch_models.py resnet20 --shortcut B --keys
"""

import argparse
import sys

import torch
import torch.nn.functional as F
from torch import nn

CIFAR_DEPTHS = (20, 32, 44, 56, 110)
TORCHVISION_NAMES = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
                     "resnext50_32x4d", "resnext101_32x8d", "wide_resnet50_2",
                     "wide_resnet101_2")
MODEL_NAMES = tuple(f"resnet{d}" for d in CIFAR_DEPTHS) + \
    tuple(f"plain{d}" for d in CIFAR_DEPTHS) + \
    tuple(f"preact-resnet{d}" for d in CIFAR_DEPTHS + (164, 1001)) + \
    ("d2l-resnet18",) + TORCHVISION_NAMES
SHORTCUTS = ("A", "B", "C")


# ----------------------------------------------------------- CIFAR networks

class ShortcutA(nn.Module):
    """Parameter-free shortcut of option A: subsample by `stride`, then pad
    the channels with zeros, half before and half after, so input channel c
    lands at output channel c + (out_channels - in_channels) // 2."""

    def __init__(self, in_channels, out_channels, stride):
        super().__init__()
        if out_channels < in_channels or (out_channels - in_channels) % 2:
            raise ValueError(
                f"option-A shortcut cannot map {in_channels} channels to "
                f"{out_channels}: the difference must be even and "
                f"non-negative; use shortcut B")
        self.stride = stride
        self.pad = (out_channels - in_channels) // 2

    def forward(self, x):
        x = x[:, :, ::self.stride, ::self.stride]
        # F.pad lists dimensions from the last one: (w, w, h, h, c, c).
        return F.pad(x, (0, 0, 0, 0, self.pad, self.pad))


class CifarBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN, plus the shortcut, then ReLU.

    `shortcut` is "A", "B", "C", or None for a plain block. Option B projects
    (1x1 conv + BN under the key `downsample`) only where the shape changes
    and option C on every block. Option A pads where the shape changes and
    has no parameters.
    """

    def __init__(self, in_channels, planes, stride, shortcut):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.has_shortcut = shortcut is not None

        shape_changes = stride != 1 or in_channels != planes
        project = shortcut == "C" or (shortcut == "B" and shape_changes)
        self.downsample = None
        self.pad_shortcut = None
        if project:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, planes, 1, stride, 0, bias=False),
                nn.BatchNorm2d(planes))
        elif shortcut == "A" and shape_changes:
            self.pad_shortcut = ShortcutA(in_channels, planes, stride)

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        if self.has_shortcut:
            if self.downsample is not None:
                x = self.downsample(x)
            elif self.pad_shortcut is not None:
                x = self.pad_shortcut(x)
            y = y + x
        return F.relu(y)


class CifarResNet(nn.Module):
    """The 6n+2 networks for CIFAR-10: a 3x3 stem with 16 filters, three
    stages of n blocks at 16, 32 and 64 filters (the first block of stages 2
    and 3 has stride 2), global average pooling and a linear classifier."""

    def __init__(self, depth, in_channels=3, classes=10, shortcut="A"):
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"invalid depth {depth}: expected 6n+2, such as 20 or 56")
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)

        channels = 16
        for stage in range(3):
            planes = 16 << stage
            blocks = []
            for b in range(n):
                stride = 2 if stage > 0 and b == 0 else 1
                blocks.append(CifarBlock(channels, planes, stride, shortcut))
                channels = planes
            setattr(self, f"layer{stage + 1}", nn.Sequential(*blocks))

        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


# ---------------------------------------------------- pre-activation ResNets

class PreActBlock(nn.Module):
    """BN-ReLU-conv twice (three times with a bottleneck), plus the shortcut,
    with nothing after the addition. A shortcut that is not the identity
    (option A where the shape changes, or a 1x1 projection without BN under
    `downsample.0`) reads relu(bn1(x)), not x."""

    def __init__(self, in_channels, planes, stride, shortcut, bottleneck):
        super().__init__()
        out_channels = planes * 4 if bottleneck else planes
        self.bottleneck = bottleneck
        self.bn1 = nn.BatchNorm2d(in_channels)
        if bottleneck:
            self.conv1 = nn.Conv2d(in_channels, planes, 1, 1, 0, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
            self.bn3 = nn.BatchNorm2d(planes)
            self.conv3 = nn.Conv2d(planes, out_channels, 1, 1, 0, bias=False)
        else:
            self.conv1 = nn.Conv2d(in_channels, planes, 3, stride, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)

        shape_changes = stride != 1 or in_channels != out_channels
        self.downsample = None
        self.pad_shortcut = None
        if shortcut == "C" or (shortcut == "B" and shape_changes):
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, 0, bias=False))
        elif shape_changes:
            self.pad_shortcut = ShortcutA(in_channels, out_channels, stride)

    def forward(self, x):
        act = F.relu(self.bn1(x))
        y = self.conv1(act)
        y = self.conv2(F.relu(self.bn2(y)))
        if self.bottleneck:
            y = self.conv3(F.relu(self.bn3(y)))
        if self.downsample is not None:
            x = self.downsample(act)
        elif self.pad_shortcut is not None:
            x = self.pad_shortcut(act)
        return y + x


class PreActResNet(nn.Module):
    """The pre-activation networks for CIFAR: a 3x3 stem with 16 filters,
    three stages of n blocks at 16, 32 and 64 planes, the final BN-ReLU
    (`bn`), global average pooling and a linear classifier."""

    def __init__(self, depth, in_channels=3, classes=10, shortcut=None):
        super().__init__()
        bottleneck = depth in (164, 1001)
        if bottleneck:
            n = (depth - 2) // 9
        elif depth >= 8 and (depth - 2) % 6 == 0:
            n = (depth - 2) // 6
        else:
            raise ValueError(f"invalid depth {depth}: expected 6n+2, 164 or 1001")
        if shortcut is None:
            shortcut = "B" if bottleneck else "A"
        self.conv1 = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        channels = 16
        for stage in range(3):
            planes = 16 << stage
            blocks = []
            for b in range(n):
                stride = 2 if stage > 0 and b == 0 else 1
                blocks.append(PreActBlock(channels, planes, stride, shortcut, bottleneck))
                channels = planes * 4 if bottleneck else planes
            setattr(self, f"layer{stage + 1}", nn.Sequential(*blocks))
        self.bn = nn.BatchNorm2d(channels)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, classes)

    def forward(self, x):
        x = self.layer3(self.layer2(self.layer1(self.conv1(x))))
        x = F.relu(self.bn(x))
        return self.fc(torch.flatten(self.avgpool(x), 1))


# ------------------------------------------------------------ d2l ResNet-18

class Residual(nn.Module):
    """The residual block of Dive into Deep Learning: every convolution has
    a bias, and where the shape changes conv3, a strided 1x1 convolution
    without BN, projects the shortcut."""

    def __init__(self, in_channels, channels, use_1x1conv=False, strides=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, strides, 1)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1)
        self.conv3 = nn.Conv2d(in_channels, channels, 1, strides) if use_1x1conv else None
        self.bn1 = nn.BatchNorm2d(channels)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        if self.conv3 is not None:
            x = self.conv3(x)
        return F.relu(y + x)


def d2l_resnet18(in_channels=1, classes=10):
    """Build the book's ResNet-18 as its nn.Sequential(b1, ..., b5, pool,
    flatten, linear), so the keys are "0.0.weight" for the stem convolution,
    "1.0.conv1.weight" for the first block and "7.weight" for the classifier."""
    stem = nn.Sequential(
        nn.Conv2d(in_channels, 64, 7, 2, 3), nn.BatchNorm2d(64), nn.ReLU(),
        nn.MaxPool2d(3, 2, 1))
    stages = []
    channels = 64
    for stage in range(4):
        out = 64 << stage
        downsample = stage > 0
        stages.append(nn.Sequential(
            Residual(channels, out, use_1x1conv=downsample, strides=2 if downsample else 1),
            Residual(out, out)))
        channels = out
    return nn.Sequential(stem, *stages, nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(),
                         nn.Linear(512, classes))


# ------------------------------------------------------------------ building

def init_weights(model, scheme="kaiming", zero_init_residual=False):
    """Initialize `model` in place as resnet.c's model initializer does.

    "kaiming": conv weights from kaiming_normal_(mode="fan_out", relu), as in
    torchvision. "xavier": conv and linear weights from xavier_uniform_, as in
    the d2l book. Under either, other weights and biases keep PyTorch's
    default init, BN starts at weight 1 and bias 0, and zero_init_residual
    zeroes the weight of the last BN of each residual branch.
    """
    if scheme not in ("kaiming", "xavier"):
        raise ValueError(f"invalid init scheme '{scheme}': expected kaiming or xavier")
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            if scheme == "xavier":
                nn.init.xavier_uniform_(module.weight)
            else:
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.Linear) and scheme == "xavier":
            nn.init.xavier_uniform_(module.weight)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    if zero_init_residual:
        for module in model.modules():
            if isinstance(module, (CifarBlock, Residual)):
                if isinstance(module, CifarBlock) and not module.has_shortcut:
                    continue
                nn.init.zeros_(module.bn2.weight)
    return model


def move_stride_to_1x1(model):
    """Put each bottleneck's stride on conv1, as He et al. (2015) do, instead
    of on conv2, as torchvision does. The weights keep their shapes."""
    import torchvision
    for module in model.modules():
        if isinstance(module, torchvision.models.resnet.Bottleneck):
            stride = module.conv2.stride
            module.conv2.stride = (1, 1)
            module.conv1.stride = stride
    return model


def build(name, in_channels=3, classes=10, shortcut="A"):
    """Build the model that `resnet --model NAME` builds, Kaiming-initialized.

    `shortcut` applies to the resnetN and preact-resnetN CIFAR networks only
    (None: the network's own); the other models ignore it. torchvision's
    models keep torchvision's initialization and take only 3 input channels.
    """
    if name == "d2l-resnet18":
        return init_weights(d2l_resnet18(in_channels, classes))
    if name in TORCHVISION_NAMES:
        import torchvision
        if in_channels != 3:
            raise ValueError(f"{name} in torchvision takes 3 input channels, not {in_channels}")
        return getattr(torchvision.models, name)(num_classes=classes)
    if name.startswith("preact-resnet") and name[len("preact-resnet"):].isdigit():
        if shortcut is not None and shortcut.upper() not in SHORTCUTS:
            raise ValueError(f"invalid shortcut option '{shortcut}': expected A, B or C")
        return init_weights(PreActResNet(int(name[len("preact-resnet"):]), in_channels,
                                         classes, shortcut and shortcut.upper()))
    for prefix in ("resnet", "plain"):
        if name.startswith(prefix) and name[len(prefix):].isdigit():
            depth = int(name[len(prefix):])
            if prefix == "plain":
                block_shortcut = None
            elif shortcut is None:
                block_shortcut = "A"  # the CIFAR networks' own, as in resnet.c
            elif shortcut.upper() in SHORTCUTS:
                block_shortcut = shortcut.upper()
            else:
                raise ValueError(f"invalid shortcut option '{shortcut}': expected A, B or C")
            return init_weights(CifarResNet(depth, in_channels, classes, block_shortcut))
    raise ValueError(f"unknown model '{name}'; available: {' '.join(MODEL_NAMES)} "
                     "(CIFAR depths are 6n+2)")


def parameter_count(model):
    """Return the number of trainable parameters (BN running statistics excluded)."""
    return sum(p.numel() for p in model.parameters())


def main():
    parser = argparse.ArgumentParser(description="Print a model's parameter count "
                                     "or its state_dict keys and shapes.")
    parser.add_argument("model", help="one of: " + " ".join(MODEL_NAMES))
    parser.add_argument("--in-channels", type=int, default=3, help="input channels (default 3)")
    parser.add_argument("--classes", type=int, default=10, help="output classes (default 10)")
    parser.add_argument("--shortcut", default="A", help="A, B or C (resnet models only)")
    parser.add_argument("--keys", action="store_true",
                        help="print one 'key shape' line per state_dict entry")
    args = parser.parse_args()
    try:
        model = build(args.model, args.in_channels, args.classes, args.shortcut)
    except ValueError as error:
        print(f"torch_models.py: {error}", file=sys.stderr)
        return 2
    if args.keys:
        for key, tensor in model.state_dict().items():
            print(key, "x".join(str(d) for d in tensor.shape) or "scalar")
    else:
        print(f"{args.model}: {parameter_count(model):,} parameters")
    return 0


if __name__ == "__main__":
    sys.exit(main())
