"""Dashboards: logger set-up, training/picture callbacks and evaluation reports for wandb (or CSV).

YAML (LightningCLI):
    trainer:
      logger: {class_path: vda_lightning.dashboards.vda_logger, init_args: {project: vda, group: quickstart}}
      callbacks:
        - class_path: vda_lightning.dashboards.TrainingDashboard
        - class_path: vda_lightning.dashboards.DepthPictures
          init_args: {num_clips: 2, every_n_validations: 1}
"""

from vda_lightning.dashboards.depth_pictures import DepthPictures
from vda_lightning.dashboards.loggers import resolve_wandb_mode, run_metadata, vda_logger
from vda_lightning.dashboards.training_dashboard import TrainingDashboard

__all__ = ["DepthPictures", "TrainingDashboard", "resolve_wandb_mode", "run_metadata", "vda_logger"]
