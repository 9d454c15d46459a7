"""Callbacks of the training loop."""
from __future__ import annotations

import os

from lightning.pytorch.cli import SaveConfigCallback

from ..io import write_bytes_atomic


class SaveRunConfig(SaveConfigCallback):
    """Writes the run's full, resolved config as `<run folder>/config.yaml` (rank 0, atomically) when training
    starts. Alone it does not make the folder a run (`cluster.resume.existing_run`: results or a checkpoint do), so a
    start interrupted before the first checkpoint can be started afresh."""

    def setup(self, trainer, pl_module, stage: str) -> None:
        if stage == "fit":  # a validation-only pass does not make a folder a run folder
            super().setup(trainer, pl_module, stage)

    def save_config(self, trainer, pl_module, stage: str) -> None:
        root = str(trainer.default_root_dir)
        if trainer.is_global_zero and "://" not in root:
            text = self.parser.dump(self.config, skip_none=False)
            write_bytes_atomic(os.path.join(root, "config.yaml"), text.encode(), fsync=True)
