"""Makes the ONNX fixtures of hf-onnx's tests with PyTorch's own exporter.

Run from the repository root with a Python that has torch 2.11, onnx and onnxscript:

    python examples/pytorch/make_fixtures.py crates/hf-onnx/tests/fixtures

Each fixture `NAME.onnx` comes with `NAME.json`: a few deterministic inputs and PyTorch's logits
for them (eval mode), which the import tests compare against. Networks (input 1x28x28, 10
classes, small on purpose):

- mlp:          Flatten, Linear 784-64, ReLU, Linear 64-10            (legacy exporter: Gemm)
- mlp_dynamo:   the same MLP through the dynamo exporter (opset 20)   (Reshape, Gemm)
- mlp_matmul:   the same weights written as x @ W + b                 (MatMul + Add)
- cnn_folded:   the CNN below exported in eval mode, BatchNorm folded into the convs
- cnn_bn:       the same CNN with BatchNorm kept as BatchNormalization nodes

The CNN: conv3x3+BN+ReLU, stride-2 conv3x3+BN+ReLU, a residual block (two conv3x3+BN, 1x1
projection shortcut + BN, add, ReLU), max pool 2x2, a depthwise conv3x3 + ReLU6, global average
pool, flatten, Linear. BatchNorm statistics are made non-trivial by a few training-mode passes.
"""
import json
import os
import sys

import torch
import torch.nn as nn


class Mlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.flat = nn.Flatten()
        self.fc1 = nn.Linear(784, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(self.flat(x))))


class MatMulMlp(nn.Module):
    """The MLP's weights as explicit products `x @ W + b` (exported as MatMul + Add)."""

    def __init__(self, mlp):
        super().__init__()
        self.w1 = nn.Parameter(mlp.fc1.weight.detach().t().contiguous())
        self.b1 = nn.Parameter(mlp.fc1.bias.detach().clone())
        self.w2 = nn.Parameter(mlp.fc2.weight.detach().t().contiguous())
        self.b2 = nn.Parameter(mlp.fc2.bias.detach().clone())

    def forward(self, x):
        h = torch.relu(torch.flatten(x, 1) @ self.w1 + self.b1)
        return h @ self.w2 + self.b2


class Block(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.proj = nn.Conv2d(cin, cout, 1, bias=False)
        self.bnp = nn.BatchNorm2d(cout)

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return torch.relu(y + self.bnp(self.proj(x)))


class Cnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(16)
        self.block = Block(16, 24)
        self.pool = nn.MaxPool2d(2)
        self.dw = nn.Conv2d(24, 24, 3, padding=1, groups=24)
        self.act = nn.ReLU6()
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(24, 10)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.bn2(self.conv2(x)))
        x = self.pool(self.block(x))
        x = self.act(self.dw(x))
        x = torch.flatten(self.gap(x), 1)
        return self.fc(x)


def inputs(n=4):
    g = torch.Generator().manual_seed(1234)
    return torch.randn(n, 1, 28, 28, generator=g)


def save(model, name, out, dynamo=False, fold=True):
    model.eval()
    x = inputs()
    path = os.path.join(out, name + ".onnx")
    kwargs = dict(
        input_names=["input"],
        output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        opset_version=13,
        dynamo=False,
        do_constant_folding=True,
        training=torch.onnx.TrainingMode.EVAL if fold else torch.onnx.TrainingMode.PRESERVE,
    )
    if dynamo:
        torch.onnx.export(model, (x,), path, input_names=["input"], output_names=["logits"],
                          dynamic_shapes={"x": {0: torch.export.Dim("batch")}}, dynamo=True,
                          external_data=False)
    else:
        if not fold:
            # Keep BatchNormalization nodes: export in PRESERVE mode while the modules are in
            # eval mode, with constant folding off so nothing fuses them into the convs.
            kwargs["do_constant_folding"] = False
        torch.onnx.export(model, (x,), path, **kwargs)
    with torch.no_grad():
        y = model(x)
    with open(os.path.join(out, name + ".json"), "w") as f:
        json.dump({"input_shape": list(x.shape), "input": x.flatten().tolist(),
                   "logits_shape": list(y.shape), "logits": y.flatten().tolist()}, f)
    import onnx
    m = onnx.load(path)
    ops = sorted({n.op_type for n in m.graph.node})
    print(f"{path}: opset {m.opset_import[0].version}, ops {ops}, {os.path.getsize(path)} bytes")


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "crates/hf-onnx/tests/fixtures"
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    mlp = Mlp()
    save(mlp, "mlp", out)
    save(mlp, "mlp_dynamo", out, dynamo=True)
    save(MatMulMlp(mlp), "mlp_matmul", out)
    torch.manual_seed(1)
    cnn = Cnn()
    cnn.train()
    with torch.no_grad():
        for _ in range(5):
            cnn(torch.randn(16, 1, 28, 28) * 1.5 + 0.3)
    save(cnn, "cnn_folded", out, fold=True)
    save(cnn, "cnn_bn", out, fold=False)


if __name__ == "__main__":
    main()
