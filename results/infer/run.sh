#!/usr/bin/env bash
# Reproduces results/infer: the sparse runtime against its own dense path, libtorch (the export's
# graph as dense libtorch ops) and ONNX Runtime (the dense ONNX of the same weights, all graph
# optimisations), same process, same weights, intra-op threads 1 and 2 (THREADS) — on the 98% LeNet-300-100
# (uniform random inputs, and the MNIST test images) and on vgg-narrow with the layer densities of
# the 95% Hyperflux run (synthetic weights; speed depends on the layer shapes and densities, not
# on the values), and on the CNN imported from ONNX and pruned to 95% (results/onnx-cnn, MNIST
# test images). The columns of a row are sampled in turn (bench-infer interleaves them); each
# cell is the median sample, and in the *-best files the best one. Each output file starts with
# the machine's load average. HF=… sets the binary,
# THREADS=… the thread counts (default 1,2), OUT=… the output folder (default results/infer).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
HF=${HF:-target/release/hyperflux}
OUT=${OUT:-results/infer}
RUNS=${RUNS:-200}
T=${THREADS:-1,2}
mkdir -p "$OUT"
bench() {
  local name=$1; shift
  { echo "# $(date -u +%FT%TZ) load average: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"
    echo "# hyperflux bench-infer $*"
    "$HF" bench-infer "$@"; } > "$OUT/$name.txt" 2>&1
}
L=results/lenet/lenet300-98.sparse.safetensors
bench lenet98-random "$L" --batch 1,8,32,64 --threads "$T" --runs "$RUNS"
bench lenet98-mnist "$L" --batch 1,8,32,64 --threads "$T" --runs "$RUNS" --data mnist
bench vgg-narrow95 --synthetic vgg-narrow --batch 1,8,32 --threads "$T" --runs "$((RUNS / 4))"
bench onnx-cnn95 results/onnx-cnn/cnn95.sparse.safetensors --batch 1,8,32 --threads "$T" \
  --runs "$RUNS" --data mnist
# The same three tables with the best sample of each cell instead of the median: the least
# disturbed calls, steadier ratios on a shared machine.
bench lenet98-mnist-best "$L" --batch 1,8,32,64 --threads "$T" --runs "$RUNS" --data mnist \
  --stat min
bench vgg-narrow95-best --synthetic vgg-narrow --batch 1,8,32 --threads "$T" \
  --runs "$((RUNS / 4))" --stat min
bench onnx-cnn95-best results/onnx-cnn/cnn95.sparse.safetensors --batch 1,8,32 --threads "$T" \
  --runs "$RUNS" --data mnist --stat min
bench vgg-narrow95-layers --synthetic vgg-narrow --batch 1,32 --threads 1 --runs "$((RUNS / 4))" \
  --layers --no-libtorch --no-onnxruntime
bench vgg-narrow95-layers-threads --synthetic vgg-narrow --batch 32 --threads 1,2 \
  --runs "$((RUNS / 4))" --layers --no-libtorch --no-onnxruntime
# Batch 1 moves by ±30% from run to run on this shared machine: the LeNet tables again, REPEATS
# times (default 5), 1 thread, the rows only.
for i in $(seq "${REPEATS:-5}"); do
  for d in random mnist; do
    extra=(); [ "$d" = mnist ] && extra=(--data mnist)
    echo "# repeat $i, $d inputs, load average: $(cut -d' ' -f1-3 /proc/loadavg)"
    "$HF" bench-infer "$L" --batch 1,64 --threads 1 --runs "$RUNS" "${extra[@]}" 2>/dev/null |
      grep -E '^ +(1|64) '
  done
done > "$OUT/lenet98-repeats.txt"
# The one-layer timings behind the conv kernel choice (needs cargo; CONV_KERNELS=0 skips it).
if [ "${CONV_KERNELS:-1}" = 1 ]; then
  { echo "# $(date -u +%FT%TZ) load average: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"
    echo "# RAYON_NUM_THREADS=1 cargo run --release -p hf-sparse --example conv_kernels"
    RAYON_NUM_THREADS=1 cargo run --release -q -p hf-sparse --example conv_kernels; } \
    > "$OUT/conv-kernels.txt" 2>&1
fi
