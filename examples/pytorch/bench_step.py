"""The Hyperflux step of `hyperflux bench`, written the way a PyTorch user would: LeNet-300-100,
batch 128, masks set randomly to each density, straight-through gate, loss = CE(label smoothing
0.1) + λ·mean(m), Adam on weights and Adam on masks, the loss and the correct count read back
every step (as the Rust step does). Prints the same lines as `hyperflux bench`.

    python examples/pytorch/bench_step.py --device cuda [--threads N]
"""
import argparse
import time

import torch
import torch.nn.functional as F


class Gate(torch.autograd.Function):
    """ŵ = w·H(m); ∂L/∂w = H(m)·g; ∂L/∂m = s·w·g (the spec's straight-through estimator)."""

    @staticmethod
    def forward(ctx, w, m, s):
        keep = (m >= 0).to(w.dtype)
        ctx.save_for_backward(w, keep)
        ctx.s = s
        return w * keep

    @staticmethod
    def backward(ctx, g):
        w, keep = ctx.saved_tensors
        return g * keep, ctx.s * w * g, None


class MaskedLeNet300(torch.nn.Module):
    def __init__(self):
        super().__init__()
        sizes = [784, 300, 100, 10]
        self.w = torch.nn.ParameterList()
        self.b = torch.nn.ParameterList()
        self.m = torch.nn.ParameterList()
        for i, o in zip(sizes[:-1], sizes[1:]):
            lin = torch.nn.Linear(i, o)
            self.w.append(lin.weight)
            self.b.append(lin.bias)
            self.m.append(torch.nn.Parameter(torch.empty(o, i).uniform_(0.2, 0.5)))

    def forward(self, x):
        h = x.flatten(1)
        for k, (w, b, m) in enumerate(zip(self.w, self.b, self.m)):
            h = F.linear(h, Gate.apply(w, m, 0.25), b)
            if k < len(self.w) - 1:
                h = F.relu(h)
        return h


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--densities", default="100,10,2")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1000)
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    print(f"PyTorch {torch.__version__} Hyperflux step, lenet300, batch {a.batch_size}, "
          f"device {dev}, {torch.get_num_threads()} threads, {a.steps} steps x {a.runs} runs (median)")
    first = None
    for d in [float(s) for s in a.densities.split(",")]:
        torch.manual_seed(0)
        net = MaskedLeNet300().to(dev)
        with torch.no_grad():
            for m in net.m:
                keep = torch.rand_like(m) < d / 100
                m.copy_(torch.where(keep, m, torch.full_like(m, -0.3)))
        opt_w = torch.optim.Adam(list(net.w) + list(net.b), lr=1e-3)
        opt_m = torch.optim.Adam(list(net.m), lr=1e-3)
        x = torch.randn(a.batch_size, 1, 28, 28, device=dev)
        y = torch.randint(10, (a.batch_size,), device=dev)
        n = sum(m.numel() for m in net.m)
        lam = 0.5

        def step():
            opt_w.zero_grad(set_to_none=True)
            opt_m.zero_grad(set_to_none=True)
            logits = net(x)
            data = F.cross_entropy(logits, y, label_smoothing=0.1)
            loss = data + lam * sum(m.sum() for m in net.m) / n
            loss.backward()
            opt_w.step()
            opt_m.step()
            return data.item(), (logits.argmax(1) == y).sum().item()

        for _ in range(a.warmup):
            step()
        rates = []
        for _ in range(a.runs):
            t = time.perf_counter()
            for _ in range(a.steps):
                step()
            rates.append(a.steps / (time.perf_counter() - t))
        rates.sort()
        med = rates[len(rates) // 2]
        print(f"density {d:>6.2f}%: {med:>8.1f} steps/s (min {rates[0]:.1f}, max {rates[-1]:.1f})")
        if first is None:
            first = med
    print(f"{first:.1f}")


if __name__ == "__main__":
    main()
