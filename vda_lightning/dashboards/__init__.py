"""Dashboards: logger set-up, training/picture callbacks and evaluation reports for wandb (or CSV)."""

from vda_lightning.dashboards.setup import resolve_wandb_mode, run_metadata, vda_logger

__all__ = ["resolve_wandb_mode", "run_metadata", "vda_logger"]
