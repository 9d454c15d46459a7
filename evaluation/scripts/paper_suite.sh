#!/usr/bin/env bash
# The paper's long-video table (≤ 500 frames + ScanNet TAE) and the short DepthCrafter setting for one checkpoint.
# Prepare the data first (see evaluation/README.md), then:
#   evaluation/scripts/paper_suite.sh CKPT BENCHMARK_ROOT OUT_DIR [ENCODER] [DEVICES]
# Short and 500-frame runs write predictions to separate folders: their image paths coincide (as published).
set -euo pipefail
CKPT="$1"; ROOT="$2"; OUT="$3"; ENC="${4:-vitl}"; DEV="${5:-1}"
vda eval --checkpoint "$CKPT" --encoder "$ENC" --benchmark-root "$ROOT" --devices "$DEV" \
  --benchmark kitti_500,scannet_500,bonn_500,nyuv2_500,sintel --tae \
  --save-predictions "$OUT/pred_500" --output "$OUT/long.json"
vda eval --checkpoint "$CKPT" --encoder "$ENC" --benchmark-root "$ROOT" --devices "$DEV" \
  --benchmark kitti,bonn,scannet \
  --save-predictions "$OUT/pred_short" --output "$OUT/short.json"
