"""Dashboards: logger set-up, training/picture callbacks and evaluation reports for wandb (or CSV).

YAML (LightningCLI):
    trainer:
      logger: {class_path: vda_lightning.dashboards.vda_logger, init_args: {project: vda, group: quickstart}}
      callbacks:
        - class_path: vda_lightning.dashboards.TrainingDashboard
        - class_path: vda_lightning.dashboards.DepthPictures
          init_args: {num_clips: 2, every_n_validations: 1}
"""

from vda_lightning.dashboards.monitor import TrainingDashboard
from vda_lightning.dashboards.pictures import DepthPictures
from vda_lightning.dashboards.setup import resolve_wandb_mode, run_metadata, vda_logger

__all__ = ["DepthPictures", "TrainingDashboard", "resolve_wandb_mode", "run_metadata", "vda_logger"]
