#!/usr/bin/env bash
# Parity check against the published evaluation on ../shared/golden/mini_benchmark (expected.json).
# Usage: evaluation/scripts/reproduce_mini_benchmark.sh [GOLDEN_DIR] [DEVICES]
set -euo pipefail
cd "$(dirname "$0")/../.."
GOLDEN="${1:-${VDA_GOLDEN_DIR:-../shared/golden}}"
MINI="$GOLDEN/mini_benchmark"
.venv/bin/python -m vda_lightning.evaluation.cli \
  --predictions "$MINI/predictions" --benchmark-root "$MINI/benchmark" \
  --benchmark kitti,bonn,scannet --tae --devices "${2:-1}" --label mini_benchmark \
  --output evaluation/results/mini_benchmark.json --no-progress
.venv/bin/python - "$MINI/expected.json" evaluation/results/mini_benchmark.json <<'PY'
import json, sys
exp, got = (json.load(open(p)) for p in sys.argv[1:3])
worst = 0.0
for name, e in exp["depth"].items():
    g = got["depth"][name]
    for i, key in enumerate(("abs_relative_difference", "rmse_linear", "delta1_acc")):
        worst = max(worst, abs(g[key] - e[key]) / abs(e[key]))
        for gs, es in zip(g["per_scene"], e["per_scene"]):
            worst = max(worst, abs(gs[i] - es[i]) / abs(es[i]))
for gs, es in zip(got["tae"]["scannet"]["per_scene"] + [got["tae"]["scannet"]["mean"]],
                  exp["tae"]["scannet"]["per_scene"] + [exp["tae"]["scannet"]["mean"]]):
    worst = max(worst, abs(gs - es) / abs(es))
print(f"largest relative difference to expected.json: {worst:.3g}")
sys.exit(0 if worst <= 1e-6 else 1)
PY
