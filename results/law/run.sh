#!/usr/bin/env bash
# Reproduces the Neural Pruning Law measurements of results/law (LeNet-300-100 on MNIST, CPU).
# Usage: results/law/run.sh [DATASET]   (mnist by default; fashion-mnist writes results/law/fashion-mnist)
# SKIP_CONVERGE=1 leaves out the fixed-pressure runs; DENSE_DIR sets where the dense checkpoint goes.
# HF=path/to/hyperflux overrides the binary; THREADS (default 1) sets libtorch threads.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
HF=${HF:-target/release/hyperflux}
T=${THREADS:-1}
DS=${1:-mnist}
if [ "$DS" = mnist ]; then OUT=results/law; else OUT=results/law/$DS; fi
DENSE=${DENSE_DIR:-runs/law-dense-$DS}
mkdir -p "$OUT"
timed() { local name=$1; shift; local t0; t0=$(date +%s.%N); "$@"; echo "$name $(echo "$(date +%s.%N) - $t0" | bc)" >> "$OUT/wall_seconds.txt"; }
: > "$OUT/wall_seconds.txt"

# Dense starting point: 10 epochs of Adam (lr 1e-3, cosine to lr/30), seed 0.
timed dense "$HF" train --dataset "$DS" --epochs 10 --seed 0 --out "$DENSE" --threads "$T" --quiet
CK=$DENSE/checkpoint.safetensors

# L0 (Hyperflux): λ = 2^k for k = -8..6, 3 epochs per block, weights Adam lr 1e-3, masks Adam lr 1e-3.
timed l0 "$HF" law --family l0 --from "$CK" --start-exponent -8 --blocks 15 --block-epochs 3 \
  --seed 0 --out "$OUT/l0" --threads "$T" --quiet
# Iterative global magnitude pruning: 10% of the remaining weights per step, 1 fine-tune epoch between steps.
timed magnitude "$HF" law --family magnitude --from "$CK" --rate 0.1 --steps 55 --finetune-epochs 1 \
  --seed 0 --out "$OUT/magnitude" --threads "$T" --quiet
# Iterative global first-order Taylor pruning |w·∂L/∂w| over 10 batches, same schedule.
timed taylor "$HF" law --family taylor --from "$CK" --rate 0.1 --steps 55 --finetune-epochs 1 \
  --taylor-batches 10 --seed 0 --out "$OUT/taylor" --threads "$T" --quiet
# Control: one-shot magnitude pruning of the dense net to the same densities, no fine-tuning.
timed oneshot "$HF" law --family oneshot --from "$CK" --rate 0.1 --steps 55 \
  --seed 0 --out "$OUT/oneshot" --threads "$T" --quiet

# All families on one plot, fitted together.
"$HF" fit "$OUT/l0/l0.csv" "$OUT/magnitude/magnitude.csv" "$OUT/taylor/taylor.csv" \
  "$OUT/oneshot/oneshot.csv" --out "$OUT/fit" --plot "$OUT/fit/all_families"

[ -n "${SKIP_CONVERGE:-}" ] && exit 0
# Fixed pressure from scratch (weights Adam lr 5e-3, cosine to lr/30; masks Adam lr 1e-3), density
# recorded every 50 batches. The authors ran 300 epochs; CONV_EPOCHS sets ours (30 by default).
timed converge "$HF" converge --dataset "$DS" --pressures 0.25,1,4 --epochs "${CONV_EPOCHS:-30}" --lr 5e-3 \
  --record-every 50 --seed 0 --out "$OUT/converge" --threads "$T" --quiet
