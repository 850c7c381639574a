#!/usr/bin/env bash
# Reproduces results/conv: a narrow VGG (vgg-narrow, 282,512 prunable weights) on Fashion-MNIST,
# dense, then Hyperflux to 90% and 95% sparsity from the dense checkpoint. CPU, 1 libtorch thread
# per run (the two pruning runs can run side by side). Binary: HF=… (default target/release/hyperflux).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
HF=${HF:-target/release/hyperflux}
RECIPE=(--model vgg-narrow --dataset fashion-mnist --optimizer sgd --lr 0.1 --momentum 0.9
        --weight-decay 5e-4 --augment true --seed 0 --threads 1 --quiet)
"$HF" train "${RECIPE[@]}" --epochs 10 -o runs/conv/dense
for s in 90 95; do
  "$HF" prune "${RECIPE[@]}" --from runs/conv/dense/checkpoint.safetensors --target-sparsity "$s" \
    --pruning-epochs 12 --regrowth-epochs 4 --controller-step 0.2 -o "runs/conv/prune$s" &
done
wait
for r in dense prune90 prune95; do
  mkdir -p "results/conv/$r"
  cp "runs/conv/$r/records.csv" "runs/conv/$r/density.png" "runs/conv/$r/config.toml" "results/conv/$r/"
done
