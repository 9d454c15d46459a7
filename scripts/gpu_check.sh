#!/usr/bin/env bash
# The GPU check in one call: the CUDA suite (tests/cuda) and every benchmark (vda bench infer / train, speed
# levers), one JSON + one Markdown summary in OUT_DIR (default evaluation/results/gpu). Installs nothing beyond
# `pip install -e ".[dev]"`. Without CUDA it runs the CPU variant end to end (CPU-feasible sizes).
#
#   scripts/gpu_check.sh OUT_DIR [--profile auto|gpu|cpu] [--steps suite,infer_square,...]
#
# On a lent GPU machine whose tool returns only files under $OUT:  scripts/gpu_check.sh "$OUT"
set -euo pipefail
cd "$(dirname "$0")/.."
OUT_DIR="${1:-evaluation/results/gpu}"
shift || true
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if [ -z "${VDA_GOLDEN_DIR:-}" ]; then  # the golden references: ../shared/golden, or shared/golden in the tree
  if [ -d "$PWD/shared/golden" ]; then VDA_GOLDEN_DIR="$PWD/shared/golden"; else VDA_GOLDEN_DIR="$PWD/../shared/golden"; fi
fi
export VDA_GOLDEN_DIR
exec "${PYTHON:-python}" -m vda_lightning.bench gpu "$OUT_DIR" "$@"
