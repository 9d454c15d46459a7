"""Training-dashboard scalars the LightningModule does not log itself, and the run's resolved config.

The module logs losses, lr, grad norm and skip counters. Throughput is counted here and only here, from one
timing of each step, averaged over the last `log_every_n_steps` steps:

- `train/clips_per_s`, `train/frames_per_s`: compute throughput (batch start to batch end);
- `train/data_wait_fraction`: time spent waiting for the next batch / wall time (validation and epoch boundaries
  excluded);
- `train/clips_per_s_wall`, `train/frames_per_s_wall`: end-to-end throughput including that wait;
- `gpu/mem_allocated_gib`, `gpu/mem_reserved_gib`, `gpu/max_mem_allocated_gib` (CUDA only; peak per window);
- `data/<stream>_<reason>` skipped/good sample counters when the DataModule offers `data_metrics()`;
- the resolved LightningCLI config (`cli` in the run config) when a SaveConfigCallback is present.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

import torch
from lightning.pytorch import Callback
from lightning.pytorch.cli import SaveConfigCallback

GIB = 1024 ** 3


def wait_fraction(waits: list[float], busy: list[float]) -> float:
    """Share of wall time spent waiting for data: sum(wait) / (sum(wait) + sum(busy)); 0 when nothing measured."""
    total = sum(waits) + sum(busy)
    return sum(waits) / total if total > 0 else 0.0


def batch_sizes(batch: Any) -> tuple[int, int]:
    """(clips, frames) in a training batch: {"video": {...}, "image": {...}} parts or a plain VideoBatch dict."""
    parts = [batch.get("video"), batch.get("image")] if isinstance(batch, dict) and (
        "video" in batch or "image" in batch) else [batch]
    clips = frames = 0
    for part in parts:
        if isinstance(part, dict) and torch.is_tensor(part.get("frames")):
            b, t = part["frames"].shape[:2]
            clips, frames = clips + b, frames + b * t
    return clips, frames


class TrainingDashboard(Callback):
    """Adds data-wait fraction, wall throughput, GPU memory, data counters and the resolved config to the run.

    Args:
        window: steps averaged for the wait fraction and wall throughput (default: trainer.log_every_n_steps).
        log_data_counters: log `trainer.datamodule.data_metrics()` (skipped-sample counters) every window.
        record_config: put the LightningCLI config into the run's config/hparams at fit start.
    """

    def __init__(self, window: int | None = None, log_data_counters: bool = True, record_config: bool = True):
        self.window = window
        self.log_data_counters = log_data_counters
        self.record_config = record_config
        self._last_end: float | None = None
        self._wait: float | None = None
        self._started = 0.0
        self._steps: deque = deque(maxlen=1)  # (wait s or None, busy s, clips, frames) of recent steps

    def setup(self, trainer, pl_module, stage: str) -> None:
        self._steps = deque(maxlen=self.window or max(1, trainer.log_every_n_steps))

    def on_fit_start(self, trainer, pl_module) -> None:
        if not (self.record_config and trainer.is_global_zero):
            return
        for cb in trainer.callbacks:
            if isinstance(cb, SaveConfigCallback):
                config = cb.config.as_dict() if hasattr(cb.config, "as_dict") else dict(cb.config)
                for logger in trainer.loggers:
                    logger.log_hyperparams({"cli": config})

    # ---------------------------------------------------------------- timing around each step
    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        now = time.perf_counter()
        # no previous step end (first step, after validation): the wait includes start-up, so it is not counted
        self._wait = None if self._last_end is None else now - self._last_end
        self._started = now

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        now = time.perf_counter()
        self._last_end = now
        self._steps.append((self._wait, now - self._started, *batch_sizes(batch)))
        busy = sum(step[1] for step in self._steps)
        if busy > 0:
            pl_module.log("train/clips_per_s", sum(step[2] for step in self._steps) / busy, batch_size=1)
            pl_module.log("train/frames_per_s", sum(step[3] for step in self._steps) / busy, batch_size=1)
        timed = [step for step in self._steps if step[0] is not None]
        if timed:
            waits, busy_timed, clips, frames = (list(column) for column in zip(*timed))
            wall = sum(waits) + sum(busy_timed)
            pl_module.log("train/data_wait_fraction", wait_fraction(waits, busy_timed), batch_size=1)
            if wall > 0:
                pl_module.log("train/clips_per_s_wall", sum(clips) / wall, batch_size=1)
                pl_module.log("train/frames_per_s_wall", sum(frames) / wall, batch_size=1)
        if torch.cuda.is_available() and pl_module.device.type == "cuda":
            device = pl_module.device
            pl_module.log("gpu/mem_allocated_gib", torch.cuda.memory_allocated(device) / GIB, batch_size=1)
            pl_module.log("gpu/mem_reserved_gib", torch.cuda.memory_reserved(device) / GIB, batch_size=1)
            pl_module.log("gpu/max_mem_allocated_gib", torch.cuda.max_memory_allocated(device) / GIB, batch_size=1)
            if trainer.global_step % max(1, trainer.log_every_n_steps) == 0:
                torch.cuda.reset_peak_memory_stats(device)  # peak per logging window, not since start
        metrics = getattr(trainer.datamodule, "data_metrics", None) if self.log_data_counters else None
        if callable(metrics):
            for key, value in metrics().items():
                pl_module.log(key, float(value), batch_size=1)

    # validation and epoch ends are not data waits: restart the clock
    def on_validation_start(self, trainer, pl_module) -> None:
        self._last_end = None

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._last_end = None
