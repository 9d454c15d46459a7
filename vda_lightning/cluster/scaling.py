"""DDP arithmetic: how many samples one optimizer step sees, and what that means for the learning rate.

Under DDP every process draws its own `per_device` clips, gradients are averaged over all processes, so one step
averages over `per_device × devices × nodes × accumulate` clips. The paper's recipe (arXiv 2501.12375) states its
LR for its own global batch; when a run uses a different global batch, `scaled_learning_rate` says what the same
recipe gives under the usual rules (linear: Goyal et al.; sqrt: for adaptive optimizers). The default rule is
"none": the configured LR is used as is and only reported.
"""
from __future__ import annotations

import math
from typing import Literal

ScalingRule = Literal["none", "linear", "sqrt"]


def effective_batch_size(per_device: int, devices: int, num_nodes: int = 1, accumulate: int = 1) -> int:
    """Clips averaged into one optimizer step across all processes."""
    for name, value in (("per_device", per_device), ("devices", devices), ("num_nodes", num_nodes),
                        ("accumulate", accumulate)):
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(per_device * devices * num_nodes * accumulate)


def scaled_learning_rate(base_lr: float, base_batch: int, effective_batch: int, rule: ScalingRule = "none") -> float:
    """`base_lr` was tuned for `base_batch`; the LR for `effective_batch` under `rule`."""
    if rule == "none":
        return float(base_lr)
    if base_batch < 1 or effective_batch < 1:
        raise ValueError(f"batch sizes must be positive, got base {base_batch} and effective {effective_batch}")
    ratio = effective_batch / base_batch
    if rule == "linear":
        return float(base_lr * ratio)
    if rule == "sqrt":
        return float(base_lr * math.sqrt(ratio))
    raise ValueError(f"unknown LR scaling rule {rule!r}; use 'none', 'linear' or 'sqrt'")
