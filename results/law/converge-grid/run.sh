#!/usr/bin/env bash
# Reproduces results/law/converge-grid: the fixed-pressure law of LeNet-300-100 on MNIST from
# independent runs, 6 pressures × 3 seeds (30 epochs each, from scratch, Adam lr 5e-3 cosine to
# lr/30, masks Adam 1e-3, 1 libtorch thread per seed, the 3 seeds side by side), then the fits
# with the bootstrap interval of α. Binary: HF=… (default target/release/hyperflux).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../../.."
HF=${HF:-target/release/hyperflux}
OUT=${OUT:-runs/converge-grid}
for s in 0 1 2; do
  "$HF" converge --dataset mnist --pressures 0.125,0.25,0.5,1,2,4 --epochs 30 --lr 5e-3 \
    --record-every 50 --seed "$s" --out "$OUT/seed$s" --threads 1 --quiet &
done
wait
"$HF" fit "$OUT"/seed{0,1,2}/finals.csv --bootstrap 2000 -o "$OUT/fit"
