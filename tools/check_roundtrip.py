"""Load a weights file that resnet.c wrote into PyTorch and compare logits.

  /usr/bin/python3 tools/check_roundtrip.py WEIGHTS IO [WEIGHTS IO ...]

WEIGHTS is a resnet.c weights file; its metadata names the architecture.
The model is built with tools/torch_models.py (torchvision's own class for
torchvision's names) and loaded with load_state_dict(strict=True), so every
key, shape and dtype must match. IO contains `input` and `logits`, the eval-mode
logits that resnet.c computed. Exits 0 when every logit satisfies
|a - b| <= 1e-4 * max|b| + 1e-3 * |b|, 1 when one does not, 2 on a load error.
"""

import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402
import torch_models  # noqa: E402


def check(weights_path, io_path):
    tensors, meta = safetensors_io.load(weights_path)
    io, _ = safetensors_io.load(io_path)
    c = int(meta["input"].split("x")[0])
    shortcut = meta.get("shortcut", "A")
    model = torch_models.build(meta["arch"], c, int(meta["classes"]),
                               None if shortcut in ("none", "default") else shortcut)
    if meta.get("stride_in_1x1") == "true":
        torch_models.move_stride_to_1x1(model)
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as error:
        print(f"check_roundtrip.py: {weights_path}: {error}", file=sys.stderr)
        return 2
    model.eval()
    with torch.no_grad():
        logits = model(io["input"])
    ref = io["logits"]
    diff = (logits - ref).abs()
    bound = 1e-4 * ref.abs().max() + 1e-3 * ref.abs()
    worst = (diff / bound).argmax()
    ok = bool((diff <= bound).all())
    print(f"{meta['arch']}: worst logit {logits.flatten()[worst]:.7g} (resnet.c "
          f"{ref.flatten()[worst]:.7g}), max |diff| {diff.max():.3g}: "
          f"{'match' if ok else 'MISMATCH'}")
    return 0 if ok else 1


def main():
    paths = sys.argv[1:]
    if not paths or len(paths) % 2:
        print("usage: check_roundtrip.py WEIGHTS IO [WEIGHTS IO ...]", file=sys.stderr)
        return 2
    return max(check(paths[i], paths[i + 1]) for i in range(0, len(paths), 2))


if __name__ == "__main__":
    sys.exit(main())
