#!/usr/bin/env bash
# Reproduces results/frontier: the sparsity–accuracy frontier of Hyperflux against gradual
# magnitude pruning (GMP) and one-shot magnitude pruning + fine-tuning, at equal epochs,
# optimizer and LR schedule, each landing on the exact requested density.
#   LeNet-300-100 / MNIST: dense 20 epochs per seed, then every method × 90, 95, 98, 99, 99.5%
#     × seeds 0, 1, 2 with P = 30 pruning + R = 15 regrowth/fine-tune epochs (Adam).
#   vgg-narrow / Fashion-MNIST: dense 10 epochs per seed, then Hyperflux and GMP × 90, 95, 98%
#     × seeds 0, 1, 2 with P = 12 + R = 4 (SGD recipe of results/conv).
# Every run holds out the last 5,000 training images as its validation split (the dense
# networks too); the test set is only reported. Finished runs are skipped on a re-run.
# Knobs: HF (binary), MNIST_DIR, FMNIST_DIR, OUT (default runs/frontier), LENET_JOBS and
# LENET_DEVICE (default 2, cpu), VGG_JOBS and VGG_DEVICE (default 1, cpu), QUICK=1 (tiny sizes,
# to check the script).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
HF=${HF:-target/release/hyperflux}
MNIST_DIR=${MNIST_DIR:-data/mnist}
FMNIST_DIR=${FMNIST_DIR:-/usr/share/datasets/fashion-mnist}
OUT=${OUT:-runs/frontier}
LJ=${LENET_JOBS:-2} LD=${LENET_DEVICE:-cpu} VJ=${VGG_JOBS:-1} VD=${VGG_DEVICE:-cpu}
SEEDS=0,1,2
if [ "${QUICK:-0}" = 1 ]; then
  LIM=(--train-limit 3000 --test-limit 500); LDE=2; LP=(--pruning-epochs 6 --regrowth-epochs 2)
  VDE=1; VP=(--pruning-epochs 3 --regrowth-epochs 1); SEEDS=0,1
else
  LIM=(); LDE=20; LP=(--pruning-epochs 30 --regrowth-epochs 15)
  VDE=10; VP=(--pruning-epochs 12 --regrowth-epochs 4 --controller-step 0.2)
fi
VGG=(--model vgg-narrow --dataset fashion-mnist --data-dir "$FMNIST_DIR" --optimizer sgd --lr 0.1
     --momentum 0.9 --weight-decay 5e-4 --augment true)

lenet() {
  for s in ${SEEDS//,/ }; do
    [ -e "$OUT/lenet/dense/seed$s/checkpoint.safetensors" ] && continue
    "$HF" train --model lenet300 --dataset mnist --data-dir "$MNIST_DIR" --epochs "$LDE" --seed "$s" \
      --threads 1 --device "$LD" --quiet "${LIM[@]}" -o "$OUT/lenet/dense/seed$s" >/dev/null 2>&1 &
  done
  wait
  "$HF" frontier --methods hyperflux,gmp,oneshot --sparsities 90,95,98,99,99.5 --seeds "$SEEDS" \
    --from "$OUT/lenet/dense/seed{seed}/checkpoint.safetensors" --jobs "$LJ" -o "$OUT/lenet" -- \
    --data-dir "$MNIST_DIR" "${LP[@]}" --threads 1 --device "$LD" "${LIM[@]}"
}

vgg() {
  for s in ${SEEDS//,/ }; do
    [ -e "$OUT/vgg/dense/seed$s/checkpoint.safetensors" ] && continue
    "$HF" train "${VGG[@]}" --epochs "$VDE" --seed "$s" --threads 1 --device "$VD" --quiet "${LIM[@]}" \
      -o "$OUT/vgg/dense/seed$s" >/dev/null 2>&1 &
  done
  wait
  "$HF" frontier --methods hyperflux,gmp --sparsities 90,95,98 --seeds "$SEEDS" \
    --from "$OUT/vgg/dense/seed{seed}/checkpoint.safetensors" --jobs "$VJ" -o "$OUT/vgg" -- \
    "${VGG[@]}" "${VP[@]}" --threads 1 --device "$VD" "${LIM[@]}"
}

case "${1:-all}" in
  lenet) lenet ;;
  vgg) vgg ;;
  all) lenet & vgg & wait ;;
  *) echo "usage: $0 [lenet|vgg|all]" >&2; exit 2 ;;
esac
