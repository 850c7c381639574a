#!/usr/bin/env bash
# The AVX-512 kernels checked on an AVX-512 machine (the development machine has none): the
# hf-sparse test binaries (built here with `cargo test --release -p hf-sparse --no-run`), the
# kernels with and without AVX-512 (`HF_NO_AVX512=1`) on the probe (best per call, 1 thread),
# and results/infer/run.sh. Binaries and data come xz-compressed in .gpu/ (see results/gpu/README.md);
# everything is written to OUT_DIR.
#   results/infer/xeon16/avx512-check.sh OUT_DIR
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../../../.."
OUT=$1; mkdir -p "$OUT/infer"
B=/tmp/hfbin; mkdir -p $B
for f in .gpu/hyperflux .gpu/probe .gpu/tests/hf_sparse .gpu/tests/api .gpu/tests/conv; do
  xz -dc "$f.xz" > "$B/$(basename "$f")" && chmod +x "$B/$(basename "$f")"
done
xz -dc .gpu/libonnxruntime.so.xz > $B/libonnxruntime.so.1.31.1
export ORT_DYLIB_PATH=$B/libonnxruntime.so.1.31.1
TL=${TORCH_LIB:-$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')/lib}
export LD_LIBRARY_PATH=$TL
[ -e data/mnist ] || { mkdir -p data && ln -s ../.gpu/mnist data/mnist; }
{ grep -m1 'model name' /proc/cpuinfo; grep -o 'avx512f' /proc/cpuinfo | head -1; } > "$OUT/cpu.txt"
# 1. the tests, on the AVX-512 kernels (from the crate's folder, as cargo runs them)
( cd crates/hf-sparse && for t in hf_sparse api conv; do echo "== $t"; timeout 120 $B/$t 2>&1 | tail -4; done ) > "$OUT/tests.txt" 2>&1
# 2. with and without AVX-512, best per call, 1 thread
{ for i in 1 2; do for isa in AVX2 AVX-512; do
    for args in "95 1 sparse 20000 2097152 vgg" "95 32 sparse 2000 2097152 vgg" "98 64 sparse 20000"; do
      if [ $isa = AVX2 ]; then
        echo "$isa    $(HF_NO_AVX512=1 RAYON_NUM_THREADS=1 $B/probe $args)"
      else
        echo "$isa $(env -u HF_NO_AVX512 RAYON_NUM_THREADS=1 $B/probe $args)"
      fi
    done
  done; done; } > "$OUT/probe.txt" 2>&1
# 3. the benchmark tables
HF=$B/hyperflux THREADS=${THREADS:-1,2,4} CONV_KERNELS=0 REPEATS=2 OUT="$OUT/infer" \
  timeout 200 results/infer/run.sh
echo "run.sh rc=$?"
cat "$OUT/tests.txt" "$OUT/probe.txt"
