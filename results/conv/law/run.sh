#!/usr/bin/env bash
# Reproduces results/conv/law: the Neural Pruning Law on vgg-narrow / Fashion-MNIST from the dense
# checkpoint of results/conv (92.57% on the full test set). CPU, 1 libtorch thread per run.
# Train subset: first 6,000 training images; accuracy on the first 2,000 test images.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../../.."
HF=${HF:-target/release/hyperflux}
CK=${CK:-/work/runs-conv/dense/checkpoint.safetensors}
COMMON=(--from "$CK" --seed 0 --threads 1 --train-limit 6000 --test-limit 2000 --quiet)
"$HF" law --family oneshot "${COMMON[@]}" --rate 0.1 --steps 50 --out results/conv/law/oneshot
"$HF" law --family magnitude "${COMMON[@]}" --rate 0.15 --steps 33 --finetune-epochs 1 --out results/conv/law/magnitude &
"$HF" law --family taylor "${COMMON[@]}" --rate 0.15 --steps 33 --finetune-epochs 1 --taylor-batches 5 --out results/conv/law/taylor &
"$HF" law --family l0 "${COMMON[@]}" --start-exponent -4 --blocks 12 --block-epochs 1 --mask-lr 3e-2 --out results/conv/law/l0 &
wait
"$HF" fit results/conv/law/{l0/l0,magnitude/magnitude,taylor/taylor,oneshot/oneshot}.csv --region2 0.5:50 \
  --out results/conv/law/fit --plot results/conv/law/fit/all_families
