"""Train resnet20 for one epoch in PyTorch on Fashion-MNIST and export it.

The output is a safetensors file with resnet.c's metadata (architecture,
input, normalization) plus `torch_correct` and `torch_total`: the number of
test images that PyTorch classifies correctly in eval mode. The suite checks
that `resnet eval` on this file counts the same, within 2 of 10,000 for
float rounding. The committed file is tests/data/resnet20-fmnist-torch.safetensors:

  /usr/bin/python3 tools/train_torch_reference.py \\
      tests/data/resnet20-fmnist-torch.safetensors
"""

import argparse
import gzip
import os
import struct
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402
import torch_models  # noqa: E402

MEAN, STD = 0.2860, 0.3530
CLASS_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
               "Sneaker", "Bag", "Ankle boot"]


def read_idx(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype != 0x08:
        raise ValueError(f"{path}: not an IDX file of unsigned bytes")
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    data = torch.frombuffer(bytearray(raw[4 + 4 * ndim:]), dtype=torch.uint8)
    return data.reshape(dims)


def load(data_dir, split):
    prefix = "train" if split == "train" else "t10k"
    images = read_idx(os.path.join(data_dir, f"{prefix}-images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(data_dir, f"{prefix}-labels-idx1-ubyte.gz"))
    x = (images.float().unsqueeze(1) / 255.0 - MEAN) / STD
    return x, labels.long()


def main():
    parser = argparse.ArgumentParser(description="Train resnet20 for one epoch on "
                                     "Fashion-MNIST in PyTorch and export it.")
    parser.add_argument("out", help="output .safetensors file")
    parser.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    train_x, train_y = load(args.data, "train")
    test_x, test_y = load(args.data, "test")
    model = torch_models.build("resnet20", 1, 10, "A")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9,
                                weight_decay=5e-4, nesterov=True)

    model.train()
    order = torch.randperm(len(train_x))
    for i in range(0, len(order), 128):
        idx = order[i:i + 128]
        optimizer.zero_grad()
        loss = F.cross_entropy(model(train_x[idx]), train_y[idx])
        loss.backward()
        optimizer.step()

    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(test_x), 500):
            pred = model(test_x[i:i + 500]).argmax(1)
            correct += (pred == test_y[i:i + 500]).sum().item()
    print(f"PyTorch {torch.__version__}: {correct} of {len(test_x)} test images correct")

    metadata = {
        "format": "resnet.c", "format_version": "1", "arch": "resnet20",
        "input": "1x28x28", "classes": "10", "shortcut": "A",
        "normalize": f"{MEAN},{MEAN},{MEAN},{STD},{STD},{STD}", "resize": "none",
        "class_names": "[" + ",".join(f'"{n}"' for n in CLASS_NAMES) + "]",
        "torch_correct": str(correct), "torch_total": str(len(test_x)),
        "torch_version": torch.__version__,
    }
    safetensors_io.save(args.out, dict(model.state_dict()), metadata)
    return 0


if __name__ == "__main__":
    sys.exit(main())
