#!/usr/bin/env bash
# Reproduces results/law/block-length: the L0 ladder (λ = 2^k, k = -5..4, weights Adam lr 1e-3
# constant, masks Adam 1e-3, s = 0.25) with blocks of 50, 25, 10 and 3 epochs, all from the
# seed-1 dense LeNet-300-100 of results/law/seeds (DENSE=… overrides), 1 libtorch thread, one
# after another; then the fits with bootstrap intervals and residuals. The 1%-per-epoch ladder
# from the same network is results/law/equilibrium. Resumable: a ladder whose summary.json
# exists is not run again (delete its folder to redo it).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../../.."
HF=${HF:-target/release/hyperflux}
DENSE=${DENSE:-runs/law-dense-seed1/checkpoint.safetensors}
OUT=results/law/block-length
for k in ${BLOCKS:-50 25 10 3}; do
  [ -f "$OUT/block$k/summary.json" ] && continue
  t0=$(date +%s.%N)
  "$HF" law --family l0 --from "$DENSE" --start-exponent -5 --blocks 10 --block-epochs "$k" \
    --seed 1 --threads "${THREADS:-1}" --quiet --out "$OUT/block$k"
  echo "block$k $(echo "$(date +%s.%N) - $t0" | bc)" >> "$OUT/wall_seconds.txt"
done
"$HF" fit "$OUT"/block{3,10,25,50}/l0.csv results/law/equilibrium/l0.csv --bootstrap 2000 \
  -o "$OUT/fit"
