"""Callbacks of the training loop."""
from __future__ import annotations

import os

from lightning.pytorch.cli import SaveConfigCallback

from ..io import write_bytes_atomic


class SaveConfigBesideCheckpoints(SaveConfigCallback):
    """Also writes the run's full config as `config.yaml` into every ModelCheckpoint folder."""

    def save_config(self, trainer, pl_module, stage: str) -> None:
        text = self.parser.dump(self.config, skip_none=False)
        for callback in trainer.checkpoint_callbacks:
            dirpath = getattr(callback, "dirpath", None)
            if dirpath and "://" not in str(dirpath):
                write_bytes_atomic(os.path.join(str(dirpath), "config.yaml"), text.encode(), fsync=True)
