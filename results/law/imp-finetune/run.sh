#!/usr/bin/env bash
# Reproduces results/law/imp-finetune: IMP with the authors' fine-tuning length. Their ResNet-50
# IMP (shared/data/reference-law/R50C10_IMP.csv) records a step every 6–7 epochs; ours fine-tunes
# 1 epoch per step. Here: 6 fine-tune epochs per step (Adam lr 1e-3), 10% of the remaining weights
# per step, 55 steps, from the seed-1 dense LeNet-300-100 of results/law/seeds, seed 1, 1 thread;
# then fitted beside the 1-epoch run from the same dense network (results/law/seeds/seed1).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../../.."
HF=${HF:-target/release/hyperflux}
DENSE=${DENSE:-runs/law-dense-seed1/checkpoint.safetensors}
OUT=results/law/imp-finetune
t0=$(date +%s.%N)
"$HF" law --family magnitude --from "$DENSE" --rate 0.1 --steps 55 --finetune-epochs 6 \
  --seed 1 --threads "${THREADS:-1}" --quiet --out "$OUT/finetune6"
echo "finetune6 $(echo "$(date +%s.%N) - $t0" | bc)" > "$OUT/wall_seconds.txt"
"$HF" fit results/law/seeds/seed1/magnitude/magnitude.csv "$OUT/finetune6/magnitude.csv" \
  --bootstrap 2000 -o "$OUT/fit"
