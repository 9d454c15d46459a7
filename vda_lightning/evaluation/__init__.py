"""Zero-shot video-depth evaluation with the published protocol: metrics, benchmark registry, vda eval.

Training-time use: `DepthMetrics(max_depth=...)` and `TAEMetric(...)` (see `metrics.py`); the math is in
`functional.py`. The benchmark settings live one floor down, in `io/benchmarks.py` (the DataModule and the
training evaluator read them too); they are handed on here under their documented names.
"""
from ..io.benchmarks import BENCHMARKS, TAE_SETTINGS, BenchmarkError, BenchmarkSpec, TAESpec, get_benchmark
from ..lazy import lazy_exports

_EXPORTS = {
    **dict.fromkeys(["DepthMetrics", "TAEMetric"], "metrics"),
    **dict.fromkeys(["ALIGNMENTS", "PREDICTION_KINDS"], "alignment"),
    **dict.fromkeys(["align_to_ground_truth", "fit_disparity_scale_shift", "per_frame_depth_errors",
                     "reprojection_error", "sequence_depth_metrics", "sequence_tae", "valid_depth_mask"],
                    "functional"),
}
__all__ = ["BENCHMARKS", "TAE_SETTINGS", "BenchmarkError", "BenchmarkSpec", "TAESpec", "get_benchmark",
           *_EXPORTS]
# Names resolve on first use (vda_lightning/lazy.py): `vda eval --help` does not import torch or torchmetrics.
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
