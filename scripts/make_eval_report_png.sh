#!/usr/bin/env bash
# docs/eval_report.png: the `vda eval --report` page of the golden mini benchmark, as headless Chromium shows it.
# Usage: scripts/make_eval_report_png.sh [GOLDEN_DIR]   (needs chromium: apt-get install chromium)
set -euo pipefail
cd "$(dirname "$0")/.."
MINI="${1:-${VDA_GOLDEN_DIR:-../shared/golden}}/mini_benchmark"
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
.venv/bin/python -m vda_lightning eval --predictions "$MINI/predictions" --benchmark-root "$MINI/benchmark" \
  --benchmark kitti,bonn,scannet --tae --metrics +boundary_f1,+drift --label mini_benchmark \
  --output "$OUT/results.json" --report "$OUT/report" --no-progress
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --user-data-dir="$OUT/profile" \
  --window-size=1240,2300 --screenshot="$OUT/shot.png" "file://$(realpath "$OUT/report/index.html")" 2>/dev/null
# 0.6x keeps the picture small in git and still readable
.venv/bin/python -c "import cv2, sys; i = cv2.imread(sys.argv[1]); cv2.imwrite(sys.argv[2], cv2.resize(i, None, fx=0.6, \
fy=0.6, interpolation=cv2.INTER_AREA), [cv2.IMWRITE_PNG_COMPRESSION, 9])" "$OUT/shot.png" docs/eval_report.png
echo "wrote docs/eval_report.png"
