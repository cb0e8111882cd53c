#!/usr/bin/env bash
# Compiles the `cuda` feature (candle's CUDA backend and its PTX kernels) on a machine without a
# GPU or a system CUDA toolkit: NVIDIA's CUDA 13.2 compiler, headers and runtime from PyPI into a
# virtualenv, then `cargo check` (type-checks every crate with the feature; no linking, which
# would need the driver's libcuda.so). On a machine with the toolkit and a driver, use
# `cargo build --release -p lambda-dpo-cli --features cuda` instead.
#
# Usage: benchmarks/cuda_check.sh [VENV_DIR]   (default /tmp/cuda-venv; ~1.5 GB download)
# Env:   CUDA_COMPUTE_CAP (default 90, Hopper), CARGO_TARGET_DIR (default /tmp/cuda-target)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${1:-/tmp/cuda-venv}
[ -x "$VENV/bin/pip" ] || python3 -m venv "$VENV"
# One CUDA release for every piece: a newer nvvm or crt next to 13.2 headers fails
# ("CUDA compiler and CUDA toolkit headers are incompatible", "Unsupported .version 9.5").
"$VENV/bin/pip" install -q "nvidia-cuda-nvcc==13.2.*" "nvidia-cuda-crt==13.2.*" \
  "nvidia-cuda-cccl==13.2.*" "nvidia-nvvm==13.2.*" "nvidia-cuda-runtime==13.2.*"
CUDA_HOME=$("$VENV/bin/python" -c 'import nvidia, os; print(os.path.join(nvidia.__path__[0], "cu13"))')
export CUDA_HOME CUDA_PATH=$CUDA_HOME CUDA_ROOT=$CUDA_HOME PATH=$CUDA_HOME/bin:$PATH
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}
# cudarc reads the version from `nvcc --version`; say it explicitly.
export CUDARC_CUDA_VERSION=13020
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/tmp/cuda-target}
nvcc --version | tail -1
cargo check --release -p lambda-dpo-cli --features cuda
echo "cuda feature: compiles (kernels built for compute capability $CUDA_COMPUTE_CAP)"
