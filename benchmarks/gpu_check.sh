#!/usr/bin/env bash
# The GPU check, one command (README: "GPU check"; benchmarks/gpu_check.py says what it runs).
#   bash benchmarks/gpu_check.sh --prepare   # here: fill .gpu_carry/ (wheels, dsb2018 at 224 px) for the device tool's carry
#   bash benchmarks/gpu_check.sh --plan      # what it would run and the predicted minutes
#   bash benchmarks/gpu_check.sh             # on a CUDA machine: results/gpu_check/summary.{json,md}; exit 2 without CUDA
cd "$(dirname "$0")/.." || exit 2
exec "${PYTHON:-python3}" benchmarks/gpu_check.py "$@"
