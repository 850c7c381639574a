#!/usr/bin/env bash
# "Prune your own PyTorch model", as measured for the README (run from the repository root after
# ./scripts/setup.sh; the first step needs a Python with torch 2.11 and onnx).
set -euo pipefail
HF=target/release/hyperflux
OUT=${OUT:-runs/byo}
mkdir -p "$OUT"
# 1. A LeNet-300-100 trained elsewhere: plain PyTorch, 8 epochs of Adam, exported to ONNX.
python examples/pytorch/train_lenet300.py --data data/mnist --epochs 8 --out "$OUT/lenet300_pt.onnx"
# 2. Import check: hyperflux and ONNX Runtime on the imported model.
$HF eval "$OUT/lenet300_pt.onnx" --dataset mnist --logits "$OUT/dense_logits.csv"
.venv/bin/python examples/pytorch/ort_eval.py "$OUT/lenet300_pt.onnx" --logits "$OUT/dense_logits.csv"
# 3. Hyperflux to 98% sparsity, starting from the imported weights.
$HF prune --from "$OUT/lenet300_pt.onnx" --dataset mnist --target-sparsity 98 \
  --pruning-epochs 30 --regrowth-epochs 15 --threads 1 --quiet --out "$OUT/prune98"
# 4. Standard ONNX out (pruned weights as exact zeros) and the compact sparse file.
$HF export "$OUT/prune98/checkpoint.safetensors" --format onnx -o "$OUT/lenet300_pt-98.onnx"
$HF export "$OUT/prune98/checkpoint.safetensors" --format sparse -o "$OUT/lenet300_pt-98.sparse.safetensors"
# 5. ONNX Runtime on the pruned ONNX against hyperflux's eval, and latency: sparse runtime vs ORT.
$HF eval "$OUT/prune98/checkpoint.safetensors" --logits "$OUT/pruned_logits.csv"
.venv/bin/python examples/pytorch/ort_eval.py "$OUT/lenet300_pt-98.onnx" --logits "$OUT/pruned_logits.csv"
$HF bench-infer "$OUT/lenet300_pt-98.sparse.safetensors" --threads 1 --runs 200
