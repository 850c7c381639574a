#!/usr/bin/env bash
# The GPU check of hyperflux: one short script (a few minutes on an H100) that runs a prebuilt
# hyperflux binary against a CUDA build of libtorch 2.11 and writes what it measured.
#
#   scripts/gpu-check.sh TORCH_LIB HYPERFLUX_BINARY OUT_DIR
#
#   TORCH_LIB         the lib directory of a CUDA libtorch 2.11, e.g. the torch/lib of a CUDA
#                     PyTorch 2.11 install: $(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')/lib
#   HYPERFLUX_BINARY  target/release/hyperflux built by scripts/setup.sh (built against any
#                     libtorch 2.11; the CUDA library is loaded at run time)
#   OUT_DIR           where the figures go: summary.json and summary.md (GPU name, steps/s,
#                     epoch seconds, accuracy, density), the logs and per-epoch records
#
# Environment: MNIST_DIR (default data/mnist; raw or .gz IDX files), PYTHON (default python3,
# a Python with torch and numpy: it generates CIFAR-format data and runs the PyTorch reference
# of the step), DEVICE (default cuda; DEVICE=cpu QUICK=1 checks the script itself on a machine
# without a GPU, with tiny sizes).
#
# What it runs, each step under its own time limit (one failing step does not stop the rest):
#   1. the GPU and driver (nvidia-smi) and which libtorch the binary resolves (ldd);
#   2. `hyperflux bench --device cuda` and the same step in PyTorch on the GPU
#      (examples/pytorch/bench_step.py), then both on the CPU, for the ratios;
#   3. a short LeNet-300-100 run on MNIST: dense training, then Hyperflux to 98% sparsity,
#      then `eval --device cuda` (test accuracy and density);
#   4. one Hyperflux epoch of ResNet-20 and one of VGG-19 on generated CIFAR-10-format data
#      (learnable class patterns plus noise: the time and the mechanics are what count here);
#   5. the sparse runtime on the machine's CPU (`bench-infer`, 1–8 threads; ONNX Runtime's column
#      when ORT_DYLIB_PATH names a libonnxruntime.so).
set -uo pipefail
if [ $# -ne 3 ]; then
  sed -n '2,30p' "$0" >&2
  exit 2
fi
TORCH_LIB=$(cd "$1" && pwd) || { echo "gpu-check: no directory $1" >&2; exit 2; }
BIN=$(cd "$(dirname "$2")" && pwd)/$(basename "$2")
OUT=$3
[ -e "$TORCH_LIB/libtorch_cpu.so" ] || { echo "gpu-check: $TORCH_LIB holds no libtorch_cpu.so: give the lib directory of libtorch" >&2; exit 2; }
[ -x "$BIN" ] || { echo "gpu-check: $BIN is not an executable: build it with scripts/setup.sh" >&2; exit 2; }
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MNIST_DIR=${MNIST_DIR:-$ROOT/data/mnist}
PYTHON=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
QUICK=${QUICK:-0}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export LD_LIBRARY_PATH="$TORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export PYTHONUNBUFFERED=1

if [ "$QUICK" = 1 ]; then
  BENCH=(--steps 20 --runs 1 --warmup 5)
  LIMITS=(--train-limit 512 --test-limit 256)
  LENET=(--epochs 1)
  PRUNE=(--pruning-epochs 6 --regrowth-epochs 1)
  CIFAR_N=600
else
  BENCH=()
  LIMITS=()
  LENET=(--epochs 5)
  PRUNE=(--pruning-epochs 12 --regrowth-epochs 4)
  CIFAR_N=10000
fi

: >"$OUT/steps.tsv"
# step NAME SECONDS CMD...: runs CMD with a time limit, output to NAME.log, status and wall time
# to steps.tsv.
step() {
  local name=$1 limit=$2
  shift 2
  echo "== $name: $*" | tee -a "$OUT/gpu-check.log"
  local t0 t1 rc
  t0=$(date +%s.%N)
  timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
  rc=$?
  t1=$(date +%s.%N)
  tail -n 6 "$OUT/$name.log" | tee -a "$OUT/gpu-check.log"
  awk -v n="$name" -v r="$rc" -v a="$t0" -v b="$t1" 'BEGIN { printf "%s\t%s\t%.1f\n", n, r, b - a }' >>"$OUT/steps.tsv"
  echo "   rc=$rc" | tee -a "$OUT/gpu-check.log"
  return 0
}

# 1. the machine
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "host: $(uname -srm)"
  echo "cpus: $(nproc)"
  echo "torch_lib: $TORCH_LIB"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | sed 's/^/gpu: /'
  "$PYTHON" -c 'import torch; print("pytorch:", torch.__version__, "cuda", torch.version.cuda)' 2>&1
  echo "binary: $("$BIN" --version 2>&1)"
} >"$OUT/machine.txt"
ldd "$BIN" >"$OUT/ldd.txt" 2>&1
cat "$OUT/machine.txt"

# 2. the Hyperflux step: hyperflux vs PyTorch, GPU then CPU
step bench-hyperflux-$DEVICE 180 "$BIN" bench --device "$DEVICE" "${BENCH[@]}"
step bench-pytorch-$DEVICE 180 "$PYTHON" "$ROOT/examples/pytorch/bench_step.py" --device "$DEVICE" "${BENCH[@]}"
if [ "$DEVICE" != cpu ]; then
  step bench-hyperflux-cpu 180 "$BIN" bench --device cpu --warmup 300 --steps 200 --runs 3
  step bench-pytorch-cpu 180 "$PYTHON" "$ROOT/examples/pytorch/bench_step.py" --device cpu --warmup 300 --steps 200 --runs 3
fi

# 3. LeNet-300-100 on MNIST: dense, then Hyperflux to 98% sparsity, then eval
step lenet-dense 240 "$BIN" train --model lenet300 --dataset mnist --data-dir "$MNIST_DIR" \
  --device "$DEVICE" --quiet "${LENET[@]}" "${LIMITS[@]}" -o "$WORK/lenet-dense"
step lenet-prune98 400 "$BIN" prune --from "$WORK/lenet-dense/checkpoint.safetensors" \
  --data-dir "$MNIST_DIR" --target-sparsity 98 "${PRUNE[@]}" --device "$DEVICE" --quiet \
  "${LIMITS[@]}" -o "$WORK/lenet-prune98"
step lenet-eval 120 "$BIN" eval "$WORK/lenet-prune98/checkpoint.safetensors" \
  --data-dir "$MNIST_DIR" --device "$DEVICE" --json
cp "$WORK/lenet-dense/records.csv" "$OUT/lenet-dense.csv" 2>/dev/null
cp "$WORK/lenet-prune98/records.csv" "$OUT/lenet-prune98.csv" 2>/dev/null

# 4. ResNet-20 and VGG-19: one Hyperflux epoch each on generated CIFAR-10-format data
step cifar-gen 120 "$PYTHON" - "$WORK/cifar10" "$CIFAR_N" <<'PY'
import os, sys
import numpy as np
out, n = sys.argv[1], int(sys.argv[2])
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(0)
def batch(path, n):
    y = rng.integers(0, 10, n, dtype=np.uint8)
    x = rng.integers(0, 160, (n, 3, 32, 32), dtype=np.uint8)
    for c in range(10):  # a bright bar per class: position c, channel c % 3
        x[y == c, c % 3, 3 * c:3 * c + 3, :] += 90
    rec = np.concatenate([y[:, None], x.reshape(n, -1)], axis=1)
    rec.tofile(path)
for i in range(1, 6):
    batch(f"{out}/data_batch_{i}.bin", n)
batch(f"{out}/test_batch.bin", n)
print(f"wrote {5 * n} training and {n} test records to {out}")
PY
for model in resnet20 vgg19; do
  step "$model-epoch" 300 "$BIN" prune --model "$model" --dataset cifar10 --data-dir "$WORK/cifar10" \
    --target-sparsity 90 --stop-after 1 --device "$DEVICE" --quiet "${LIMITS[@]}" -o "$WORK/$model"
  cp "$WORK/$model/records.csv" "$OUT/$model-epoch.csv" 2>/dev/null
done

# 5. the sparse runtime on this machine's CPU (many cores, no other load): bench-infer of the 98%
#    LeNet-300-100 on MNIST test images and of the 95% vgg-narrow, 1 to 8 threads, against its own
#    dense path, libtorch and ONNX Runtime (ORT_DYLIB_PATH: libonnxruntime.so of the PyPI wheel;
#    without it that column says "not installed" and the rest runs)
if [ "$QUICK" = 1 ]; then INFER=(--runs 5); THREADS=1,2; else INFER=(--runs 100); THREADS=1,2,4,8; fi
step infer-lenet98 240 "$BIN" bench-infer "$ROOT/results/lenet/lenet300-98.sparse.safetensors" \
  --data mnist --data-dir "$MNIST_DIR" --batch 1,8,32,64 --threads "$THREADS" "${INFER[@]}"
step infer-vgg-narrow95 240 "$BIN" bench-infer --synthetic vgg-narrow --batch 1,8,32 \
  --threads "$THREADS" "${INFER[@]}"

# 6. the figures, in one place
"$PYTHON" - "$OUT" <<'PY'
import csv, json, os, re, sys
out = sys.argv[1]
def read(name):
    try:
        with open(os.path.join(out, name)) as f:
            return f.read()
    except OSError:
        return ""
def rows(name):
    try:
        with open(os.path.join(out, name)) as f:
            return list(csv.DictReader(f))
    except OSError:
        return []
def bench(name):
    lines = re.findall(r"density\s+([\d.]+)%:\s+([\d.]+) steps/s", read(name + ".log"))
    return {float(d): float(r) for d, r in lines}
s = {"machine": dict(l.split(": ", 1) for l in read("machine.txt").splitlines() if ": " in l)}
s["steps"] = {l.split("\t")[0]: {"rc": int(l.split("\t")[1]), "seconds": float(l.split("\t")[2])}
              for l in read("steps.tsv").splitlines() if l.count("\t") == 2}
s["bench_steps_per_s"] = {k: bench(k) for k in
                          [l.split("\t")[0] for l in read("steps.tsv").splitlines()] if k.startswith("bench-")}
for name in ["lenet-dense", "lenet-prune98", "resnet20-epoch", "vgg19-epoch"]:
    r = rows(name + ".csv")
    if r:
        last = r[-1]
        s[name] = {"epochs": len(r),
                   "epoch_seconds": [float(x["seconds"]) for x in r],
                   "test_accuracy": float(last["test_accuracy"]),
                   "density": float(last.get("density", 100) or 100)}
m = re.search(r"\{.*\}", read("lenet-eval.log"), re.S)
if m:
    try:
        s["lenet-eval"] = json.loads(m.group(0))
    except ValueError:
        pass
with open(os.path.join(out, "summary.json"), "w") as f:
    json.dump(s, f, indent=2)
md = ["# hyperflux GPU check", ""]
md += [f"- {k}: {v}" for k, v in s["machine"].items()]
md += ["", "| step | exit | seconds |", "|---|---|---|"]
md += [f"| {k} | {v['rc']} | {v['seconds']} |" for k, v in s["steps"].items()]
md += ["", "| Hyperflux step (steps/s) | " + " | ".join(f"{d:g}%" for d in [100.0, 10.0, 2.0]) + " |", "|---|---|---|---|"]
for k, v in s["bench_steps_per_s"].items():
    md.append(f"| {k} | " + " | ".join(f"{v.get(d, float('nan')):.1f}" for d in [100.0, 10.0, 2.0]) + " |")
md += ["", "| run | epochs | mean epoch s | test accuracy % | density % |", "|---|---|---|---|---|"]
for name in ["lenet-dense", "lenet-prune98", "resnet20-epoch", "vgg19-epoch"]:
    if name in s:
        v = s[name]
        md.append(f"| {name} | {v['epochs']} | {sum(v['epoch_seconds']) / len(v['epoch_seconds']):.2f} | "
                  f"{v['test_accuracy']:.2f} | {v['density']:.3f} |")
for name in ["infer-lenet98", "infer-vgg-narrow95"]:
    log = read(name + ".log").strip()
    if log:
        md += ["", f"## {name} (bench-infer on this machine's CPU)", "", "```", log, "```"]
with open(os.path.join(out, "summary.md"), "w") as f:
    f.write("\n".join(md) + "\n")
print("\n".join(md))
PY
