#!/usr/bin/env bash
# The main job: set-up, then a dense LeNet-300-100 on real MNIST and Hyperflux pruning to 98%
# sparsity (short schedule: P=30 pruning + 15 regrowth epochs; the paper-length schedule is
# `--pruning-epochs 100 --regrowth-epochs 60`). Extra arguments go to `hyperflux prune`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
./scripts/setup.sh
HF=target/release/hyperflux
OUT=${OUT:-runs/demo}
$HF train --model lenet300 --dataset mnist --epochs 10 --out "$OUT/dense" --quiet
$HF prune --model lenet300 --dataset mnist --from "$OUT/dense/checkpoint.safetensors" \
  --target-sparsity 98 --pruning-epochs 30 --regrowth-epochs 15 --out "$OUT/prune98" --quiet "$@"
dense=$($HF eval "$OUT/dense/checkpoint.safetensors")
pruned=$($HF eval "$OUT/prune98/checkpoint.safetensors")
echo
echo "dense:  ${dense%%$'\n'*}"
echo "pruned: ${pruned%%$'\n'*}"
echo "$pruned" | tail -n +2
echo "records and plots: $OUT/dense, $OUT/prune98 (records.csv, records.jsonl, density.png, density.svg)"
