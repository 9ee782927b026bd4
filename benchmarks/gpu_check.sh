#!/usr/bin/env bash
# The whole pipeline on one GPU, stage by stage, with no dvc: for a GPU machine that has
# torch, torchvision, scikit-learn, pandas, matplotlib, tqdm and PyYAML but no dvc and no
# network. Needs the IDX .gz files of both datasets: this checkout's data/raw/, or
# DATA_MIRROR=<folder in torchvision's layout, such as ../shared/data> (docs/setup.md, "Offline use"). Prints each stage's seconds, then
# the training throughput against the course's loop and the share of the GPU's fp32
# matmul rate that the AE training step reaches.
#
#   bash benchmarks/gpu_check.sh            # params.yaml as it is, device: cuda
set -euo pipefail
cd "$(dirname "$0")/.."
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
exec python benchmarks/bench.py --device cuda "$@"
