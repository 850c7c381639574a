#!/usr/bin/env bash
# Reproduces results/law/seeds: the magnitude (IMP), Taylor and one-shot families of
# results/law (LeNet-300-100 on MNIST) with seeds 1 and 2 — each seed its own dense network
# (10 epochs of Adam, as results/law/run.sh) and its own data order; seed 0 is results/law itself.
# Then the per-seed fits with bootstrap intervals. Binary: HF=… (default target/release/hyperflux);
# THREADS (default 1) sets libtorch threads; SEEDS (default "1 2"). Resumable: a measurement
# whose summary.json exists is not run again (delete its folder to redo it).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../../.."
HF=${HF:-target/release/hyperflux}
T=${THREADS:-1}
OUT=results/law/seeds
for s in ${SEEDS:-1 2}; do
  D=runs/law-dense-seed$s
  mkdir -p "$OUT/seed$s"
  t0=$(date +%s.%N)
  [ -f "$D/checkpoint.safetensors" ] ||
    "$HF" train --dataset mnist --epochs 10 --seed "$s" --out "$D" --threads "$T" --quiet
  for fam in magnitude taylor oneshot; do
    extra=(--rate 0.1 --steps 55)
    [ "$fam" != oneshot ] && extra+=(--finetune-epochs 1)
    [ "$fam" = taylor ] && extra+=(--taylor-batches 10)
    [ -f "$OUT/seed$s/$fam/summary.json" ] && continue
    "$HF" law --family "$fam" --from "$D/checkpoint.safetensors" "${extra[@]}" \
      --seed "$s" --out "$OUT/seed$s/$fam" --threads "$T" --quiet
  done
  echo "seed$s $(echo "$(date +%s.%N) - $t0" | bc)" >> "$OUT/wall_seconds.txt"
done
for fam in magnitude taylor oneshot; do
  "$HF" fit results/law/$fam/$fam.csv "$OUT"/seed{1,2}/$fam/$fam.csv --bootstrap 2000 \
    -o "$OUT/fit-$fam"
done
