"""Test accuracy of an ONNX classifier in ONNX Runtime on MNIST-format IDX data, and (with
--logits) the largest difference from another tool's logits CSV (`hyperflux eval --logits`).

    .venv/bin/python examples/pytorch/ort_eval.py model.onnx --data data/mnist [--logits l.csv]

Inputs are normalised with the `preprocessing` entry of the model's metadata when present
(hyperflux's exports carry it), else with MNIST's (x/255 - 0.1307)/0.3081.
"""
import argparse
import json
import os

import numpy as np
import onnxruntime as ort


def idx(path):
    with open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--data", default="data/mnist")
    ap.add_argument("--logits")
    a = ap.parse_args()
    sess = ort.InferenceSession(a.model, providers=["CPUExecutionProvider"])
    meta = sess.get_modelmeta().custom_metadata_map
    pre = json.loads(meta["preprocessing"]) if "preprocessing" in meta else {
        "scale": 1 / 255, "mean": [0.1307], "std": [0.3081]}
    x = idx(os.path.join(a.data, "t10k-images-idx3-ubyte")).astype(np.float32)
    y = idx(os.path.join(a.data, "t10k-labels-idx1-ubyte")).astype(np.int64)
    x = ((x * pre["scale"] - pre["mean"][0]) / pre["std"][0]).astype(np.float32)
    inp = sess.get_inputs()[0]
    x = x.reshape([len(x)] + [d for d in inp.shape[1:]])
    logits = sess.run(None, {inp.name: x})[0]
    acc = (logits.argmax(1) == y).mean() * 100
    print(f"{a.model}: ONNX Runtime {ort.__version__} test accuracy {acc:.2f}% on {len(y)} images")
    if a.logits:
        other = np.loadtxt(a.logits, delimiter=",", dtype=np.float32)
        same = (other.argmax(1) == logits.argmax(1)).sum()
        print(f"same top-1 as {a.logits}: {same}/{len(y)}; max |logit difference| {np.abs(other - logits).max():.2e}")


if __name__ == "__main__":
    main()
