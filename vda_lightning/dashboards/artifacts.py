"""Opt-in versioned artifacts: checkpoints (via `vda_logger(log_model=...)`) and exported models.

Lightning's WandbLogger already turns ModelCheckpoint files into `model-<run id>` artifacts when `log_model` is
True or 'all'. This module adds exported weights (the published key layout, loadable by `vda_lightning.load_model`)
as an artifact of type "model" whose versions (v0, v1, ...) and aliases wandb tracks. Offline runs keep the
artifact locally and upload it with `wandb sync`.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from lightning.pytorch import Callback
from lightning.pytorch.loggers import WandbLogger


def log_model_artifact(path: str | Path, run: Any, name: str, aliases: list[str] | None = None,
                       metadata: dict | None = None, artifact_type: str = "model") -> Any:
    """Log one file (exported .safetensors/.pth, or a checkpoint) as a new version of artifact `name`."""
    import wandb

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such model file to log as an artifact")
    if hasattr(run, "experiment"):
        run = run.experiment
    artifact = wandb.Artifact(name=name, type=artifact_type, metadata=metadata or {})
    artifact.add_file(str(path), name=path.name)
    return run.log_artifact(artifact, aliases=list(aliases or ["latest"]))


class ExportedModelArtifact(Callback):
    """At the end of fit (rank 0, wandb loggers only) export the model with `vda_lightning.save_model` and log it.

    Args:
        name: artifact name (default "vda-<encoder>"); each fit adds a version.
        file_format: "safetensors" or "pth".
        aliases: extra aliases besides "latest".
    """

    def __init__(self, name: str | None = None, file_format: str = "safetensors",
                 aliases: list[str] | None = None):
        if file_format not in ("safetensors", "pth"):
            raise ValueError(f"file_format {file_format!r} must be 'safetensors' or 'pth'")
        self.name = name
        self.file_format = file_format
        self.aliases = list(aliases or [])

    def on_fit_end(self, trainer, pl_module) -> None:
        loggers = [lg for lg in trainer.loggers if isinstance(lg, WandbLogger)]
        if not trainer.is_global_zero or not loggers:
            return
        from vda_lightning.checkpoints import save_model

        model = pl_module.model
        encoder = model.config.encoder
        metadata = {"config": model.config.to_dict(), "global_step": trainer.global_step,
                    "validation": dict(getattr(pl_module, "val_results", {}) or {})}
        with tempfile.TemporaryDirectory(prefix="vda_export_") as tmp:
            path = Path(tmp) / f"vda_{encoder}.{self.file_format}"
            save_model(model, path)
            for logger in loggers:  # add_file copies the file into wandb's staging area before we delete it
                log_model_artifact(path, logger, self.name or f"vda-{encoder}",
                                   ["latest", f"step-{trainer.global_step}", *self.aliases], metadata)
