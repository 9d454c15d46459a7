"""Zero-shot video-depth evaluation with the published protocol: metrics, benchmark registry, vda-eval.

Training-time use: `DepthMetrics(max_depth=...)` and `TAEMetric(...)` (see `metrics.py`); the math is in
`functional.py`; the benchmark settings in `benchmarks.py`.
"""
from .benchmarks import BENCHMARKS, TAE_SETTINGS, BenchmarkError, BenchmarkSpec, TAESpec, get_benchmark
from .functional import (
    align_to_ground_truth,
    fit_disparity_scale_shift,
    per_frame_depth_errors,
    reprojection_error,
    sequence_depth_metrics,
    sequence_tae,
    valid_depth_mask,
)
from .metrics import DepthMetrics, TAEMetric

__all__ = [
    "BENCHMARKS", "TAE_SETTINGS", "BenchmarkError", "BenchmarkSpec", "TAESpec", "get_benchmark",
    "DepthMetrics", "TAEMetric", "align_to_ground_truth", "fit_disparity_scale_shift", "per_frame_depth_errors",
    "reprojection_error", "sequence_depth_metrics", "sequence_tae", "valid_depth_mask",
]
