"""A test callback: the trainer's global step after every training batch, in a file (for signal tests)."""
from __future__ import annotations

from pathlib import Path

from lightning.pytorch import Callback


class StepMarker(Callback):
    def __init__(self, path: str):
        self.path = Path(path)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.path.write_text(str(trainer.global_step))
