#!/usr/bin/env bash
# Reproduces results/law/equilibrium: the L0 ladder run to (near) equilibrium — λ = 2^k for
# k = -5..4, each block until the density changes by < 1% of itself over one epoch or 50 epochs
# (the authors' block length), whichever first — from the seed-1 dense LeNet-300-100 of
# results/law/seeds (made there; DENSE=… overrides). Weights Adam lr 1e-3 (constant), masks Adam
# 1e-3, s = 0.25, 1 libtorch thread. Then the fit with its bootstrap interval and residuals.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../../.."
HF=${HF:-target/release/hyperflux}
DENSE=${DENSE:-runs/law-dense-seed1/checkpoint.safetensors}
OUT=results/law/equilibrium
t0=$(date +%s.%N)
"$HF" law --family l0 --from "$DENSE" --start-exponent -5 --blocks 10 --block-epochs 50 \
  --block-tolerance 1 --seed 1 --threads "${THREADS:-1}" --quiet --out "$OUT"
echo "l0 $(echo "$(date +%s.%N) - $t0" | bc)" > "$OUT/wall_seconds.txt"
"$HF" fit "$OUT/l0.csv" --bootstrap 2000 -o "$OUT/fit"
