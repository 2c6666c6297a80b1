"""Write the PyTorch parity fixtures that tests/test_parity.c compares with.

For each case the generator builds the network in PyTorch with a fixed seed,
gives every BatchNorm random affine parameters and running statistics (so
that eval mode is not an identity), and records in one safetensors file:

  initial/KEY   the state_dict that resnet.c loads before the checks
  input, labels one batch (float32 NCHW, int64)
  logits_eval   the logits in eval mode from the initial state
  logits_train  the logits of the first training-mode forward pass
  loss          its cross-entropy (label smoothing 0.1), a 0-d tensor
  grad/KEY      the gradient of every parameter from that loss
  step1/KEY     the BN buffers after that forward pass
  step3/KEY     every state_dict entry after three SGD steps (lr 0.01,
                momentum 0.9, weight decay 5e-4, Nesterov) on the same batch
  error/NAME    for each float tensor NAME above, the largest |difference|
                between a float32 result of PyTorch and the reference, over
                FLOAT32_RUNS runs whose weights differ by a few roundings
                (relative 2^-20) from the initial state (0-d)

The reference values are computed in float64 from the same float32 initial
state and input, then stored as float32. PyTorch's own float32 error shows
the test how well-conditioned each tensor is. Gradients of deep networks
with BatchNorm in training mode amplify rounding, and a pre-activation that
rounds to the other side of zero switches a ReLU. So float32 cannot match
some of them closely. Which ReLUs switch depends on the rounding, so the
error is the worst of several runs with slightly perturbed weights.

The perturbation models a different order of summation. Another
convolution algorithm (im2col and GEMM, direct, Winograd) rounds each output
differently, by a few units in the last place. One rounding (2^-23) over
4 runs is too small: in the d2l-resnet18 case no such run switches a ReLU,
while adding 1e-6 to resnet.c's convolution outputs does and moves the first
layer's gradient 30 times past the tolerance. At 2^-20 over 12 runs
PyTorch's own float32 error there is 10 times resnet.c's.

The metadata gives the architecture and the optimizer settings. Run with
Debian's PyTorch:

  /usr/bin/python3 tools/make_fixtures.py build/fixtures
"""

import argparse
import copy
import os
import sys

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402
import torch_models  # noqa: E402

# name: (architecture, input CxHxW, batch, shortcut or None for the model's own)
CASES = {
    "d2l-resnet18": ("d2l-resnet18", (1, 64, 64), 8, None),
    "resnet20": ("resnet20", (3, 32, 32), 8, "A"),
    "resnet20-B": ("resnet20", (3, 16, 16), 8, "B"),
    "plain20": ("plain20", (1, 16, 16), 8, None),
    "resnet18": ("resnet18", (3, 64, 64), 8, None),
    "resnet50": ("resnet50", (3, 64, 64), 8, None),
    "resnext50_32x4d": ("resnext50_32x4d", (3, 64, 64), 8, None),
    "preact-resnet20": ("preact-resnet20", (3, 32, 32), 8, None),
    "preact-resnet164": ("preact-resnet164", (3, 16, 16), 8, None),
}
CLASSES = 10
SEED = 20261204
SGD = {"lr": 0.01, "momentum": 0.9, "weight_decay": 5e-4, "nesterov": True}
LABEL_SMOOTHING = 0.1
STEPS = 3
FLOAT32_RUNS = 12
PERTURBATION = 2.0**-20


def randomize_batchnorm(model, generator):
    """Draw BN weights and running statistics away from their 1/0 defaults."""
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            c = module.num_features
            with torch.no_grad():
                module.weight.copy_(torch.rand(c, generator=generator) + 0.5)
                module.bias.copy_(torch.rand(c, generator=generator) * 0.4 - 0.2)
                module.running_mean.copy_(torch.rand(c, generator=generator) * 0.4 - 0.2)
                module.running_var.copy_(torch.rand(c, generator=generator) + 0.5)
                module.num_batches_tracked.fill_(3)


def buffers(model, prefix):
    return {prefix + k: v.clone() for k, v in model.state_dict().items()
            if k.endswith(("running_mean", "running_var", "num_batches_tracked"))}


def run(model, x, y):
    """Evaluate, then take STEPS SGD steps; return the recorded tensors."""
    out = {}
    model.eval()
    with torch.no_grad():
        out["logits_eval"] = model(x)

    model.train()
    optimizer = torch.optim.SGD(model.parameters(), **SGD)
    for step in range(STEPS):
        optimizer.zero_grad()
        logits = model(x)
        loss = F.cross_entropy(logits, y, label_smoothing=LABEL_SMOOTHING)
        loss.backward()
        if step == 0:
            out["logits_train"] = logits.detach().clone()
            out["loss"] = loss.detach().clone()
            for key, p in model.named_parameters():
                out["grad/" + key] = p.grad.clone()
            out.update(buffers(model, "step1/"))
        optimizer.step()
    out.update({"step3/" + k: v.clone() for k, v in model.state_dict().items()})
    return out


def make_case(name, arch, shape, batch, shortcut):
    torch.manual_seed(SEED)
    generator = torch.Generator().manual_seed(SEED)
    model = torch_models.build(arch, shape[0], CLASSES, shortcut)
    randomize_batchnorm(model, generator)
    x = torch.randn(batch, *shape, generator=generator)
    y = torch.randint(0, CLASSES, (batch,), generator=generator)

    out = {"initial/" + k: v.clone() for k, v in model.state_dict().items()}
    out["input"] = x
    out["labels"] = y
    reference = run(copy.deepcopy(model).double(), x.double(), y)
    errors = {}
    for k in range(FLOAT32_RUNS):
        perturbed = copy.deepcopy(model)
        if k > 0:
            noise = torch.Generator().manual_seed(k)
            with torch.no_grad():
                for p in perturbed.parameters():
                    p.mul_(1 + (torch.rand(p.shape, generator=noise) * 2 - 1) * PERTURBATION)
        single = run(perturbed, x, y)
        for key, value in reference.items():
            if value.is_floating_point():
                e = (single[key].double() - value).abs().max()
                errors[key] = max(errors.get(key, e), e)
    for key, value in reference.items():
        if value.is_floating_point():
            out[key] = value.float()
            out["error/" + key] = errors[key].float()
        else:
            out[key] = value

    metadata = {
        "case": name, "arch": arch, "input": "x".join(map(str, shape)),
        "classes": CLASSES, "batch": batch,
        "shortcut": shortcut or "default", "lr": SGD["lr"], "momentum": SGD["momentum"],
        "weight_decay": SGD["weight_decay"], "nesterov": "true",
        "label_smoothing": LABEL_SMOOTHING, "steps": STEPS, "seed": SEED,
        "torch_version": torch.__version__,
    }
    return out, metadata


def main():
    parser = argparse.ArgumentParser(description="Write the PyTorch parity fixtures.")
    parser.add_argument("out_dir", help="directory for NAME.safetensors files")
    parser.add_argument("cases", nargs="*", help="cases to write (default: all): "
                        + " ".join(CASES))
    args = parser.parse_args()
    unknown = [c for c in args.cases if c not in CASES]
    if unknown:
        print(f"make_fixtures.py: unknown case {unknown[0]}; available: {' '.join(CASES)}",
              file=sys.stderr)
        return 2
    os.makedirs(args.out_dir, exist_ok=True)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    for name in args.cases or CASES:
        tensors, metadata = make_case(name, *CASES[name])
        path = os.path.join(args.out_dir, name + ".safetensors")
        safetensors_io.save(path + ".tmp", tensors, metadata)
        os.replace(path + ".tmp", path)
        size = os.path.getsize(path) / 2**20
        print(f"{path}: {len(tensors)} tensors, {size:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
