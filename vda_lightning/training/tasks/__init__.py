"""Training tasks: one shared loop (`DepthTask`), one subclass per thing a model learns.

    DepthTask            base: model from init_checkpoint, AdamW + schedule, non-finite skipping and counters,
                         validation through the evaluator callback, EMA, checkpoint hooks
    RelativeDepthTask    relative disparity: SSI + TGM on videos, distillation on images (the paper's recipe)
    MetricDepthTask      metric depth: SiLog + unaligned TGM, optional canonical camera (docs/metric.md)

`vda fit` picks one with `model.class_path` (RelativeDepthTask when a recipe names none).
"""
from .base import DepthTask, warmup_cosine
from .metric import MetricDepthTask
from .relative import RelativeDepthTask

__all__ = ["DepthTask", "MetricDepthTask", "RelativeDepthTask", "warmup_cosine"]
