"""Trains LeNet-300-100 on MNIST in plain PyTorch and exports it to ONNX: the "network trained
elsewhere" of the README's "Prune your own PyTorch model".

    python examples/pytorch/train_lenet300.py --data data/mnist --epochs 5 --out lenet300.onnx

Reads the IDX files of data/mnist (what scripts/setup.sh installs), normalises pixels as
(x/255 - 0.1307)/0.3081 (hyperflux's MNIST preprocessing, so `--dataset mnist` feeds the
imported model the inputs it was trained on), trains with Adam, prints the test accuracy, and
exports with torch.onnx.export (opset 13, dynamic batch).
"""
import argparse
import gzip
import os
import time

import numpy as np
import torch
import torch.nn as nn


def idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def load(data_dir, split):
    pre = "train" if split == "train" else "t10k"
    x = idx(os.path.join(data_dir, f"{pre}-images-idx3-ubyte")).astype(np.float32) / 255.0
    y = idx(os.path.join(data_dir, f"{pre}-labels-idx1-ubyte")).astype(np.int64)
    x = (x - 0.1307) / 0.3081
    return torch.from_numpy(x).unsqueeze(1), torch.from_numpy(y)


class LeNet300(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 300)
        self.fc2 = nn.Linear(300, 100)
        self.fc3 = nn.Linear(100, 10)

    def forward(self, x):
        x = torch.flatten(x, 1)
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="data/mnist")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="lenet300.onnx")
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    xtr, ytr = load(a.data, "train")
    xte, yte = load(a.data, "test")
    net = LeNet300()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    t0 = time.time()
    for epoch in range(a.epochs):
        net.train()
        perm = torch.randperm(len(xtr))
        for i in range(0, len(xtr), 128):
            b = perm[i: i + 128]
            loss = nn.functional.cross_entropy(net(xtr[b]), ytr[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            acc = (net(xte).argmax(1) == yte).float().mean().item() * 100
        print(f"epoch {epoch + 1}: test accuracy {acc:.2f}% ({time.time() - t0:.1f}s)")
    torch.onnx.export(net, (xte[:1],), a.out, input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                      opset_version=13, dynamo=False)
    print(f"wrote {a.out}: PyTorch test accuracy {acc:.2f}%")


if __name__ == "__main__":
    main()
