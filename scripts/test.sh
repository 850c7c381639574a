#!/usr/bin/env bash
# The whole test suite: set-up (libtorch, MNIST, build), then every test of every crate.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
./scripts/setup.sh
cargo test --release --workspace --no-fail-fast "$@"
