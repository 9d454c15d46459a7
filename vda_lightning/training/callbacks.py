"""Callbacks of the training loop."""
from __future__ import annotations

import os

from lightning.pytorch.cli import SaveConfigCallback

from ..io import write_bytes_atomic


class SaveRunConfig(SaveConfigCallback):
    """Writes the run's full, resolved config as `<run folder>/config.yaml` (rank 0, atomically) when training
    starts; its presence marks the folder as holding a run (`config_checks.existing_run`)."""

    def setup(self, trainer, pl_module, stage: str) -> None:
        if stage == "fit":  # a validation-only pass does not make a folder a run folder
            super().setup(trainer, pl_module, stage)

    def save_config(self, trainer, pl_module, stage: str) -> None:
        root = str(trainer.default_root_dir)
        if trainer.is_global_zero and "://" not in root:
            text = self.parser.dump(self.config, skip_none=False)
            write_bytes_atomic(os.path.join(root, "config.yaml"), text.encode(), fsync=True)
