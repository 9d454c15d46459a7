"""`VideoDepthModule`: the one LightningModule of earlier versions, now two tasks on one base (`training/tasks/`).

Kept as a factory for code that builds it directly: it returns the task its arguments ask for, as the module did —
`MetricDepthTask` for `metric=True`, or for `metric=None` with an `init_checkpoint` that says it is metric;
`RelativeDepthTask` otherwise — with a DeprecationWarning. Checkpoints written by `VideoDepthModule` load in either
task (`vda fit --ckpt_path`, `load_model`): the state dict and `checkpoint["vda"]` are laid out as before.
"""
from __future__ import annotations

import warnings

from .config_checks import _task_arguments
from .tasks import DepthTask, MetricDepthTask, RelativeDepthTask, warmup_cosine
from .tasks.base import ENCODER_PREFIX

__all__ = ["ENCODER_PREFIX", "VideoDepthModule", "warmup_cosine"]


def VideoDepthModule(metric: bool | None = None, **kwargs) -> DepthTask:  # noqa: N802 (the old class name)
    """The task `metric` (or a metric `init_checkpoint`, when None) asks for, built with the other arguments."""
    warnings.warn("VideoDepthModule is deprecated: build vda_lightning.training.RelativeDepthTask or MetricDepthTask",
                  DeprecationWarning, stacklevel=2)
    if metric is None and kwargs.get("init_checkpoint"):
        from ..checkpoints import load_model

        metric = bool(load_model(kwargs["init_checkpoint"], encoder=kwargs.get("encoder", "vits"), expect="any",
                                 dav2_max_depth=kwargs.get("init_dav2_max_depth")).config.metric)
    if metric:
        return MetricDepthTask(**kwargs)
    metric_only = sorted(_task_arguments()[1] & set(kwargs))
    if metric_only:
        raise ValueError(f"{metric_only[0]} needs a metric model (metric=True, or MetricDepthTask)")
    return RelativeDepthTask(**kwargs)
