"""States the DDP scale of a run — processes, per-device batch, accumulation, effective batch, learning rate — in
the log and in the logger's hyper-parameters, and optionally rescales the LR for the effective batch.

    --trainer.callbacks+=vda_lightning.cluster.ddp_report.DDPScaleReport
    --trainer.callbacks.base_batch=16 --trainer.callbacks.lr_scaling=linear   # optional rescaling
"""
from __future__ import annotations

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities.rank_zero import rank_zero_info

from .scaling import ScalingRule, effective_batch_size, scaled_learning_rate


class DDPScaleReport(Callback):
    """Args:
        per_device_batch: clips per process per step; None reads `batch_size` from the DataModule's hparams.
        base_batch: the effective batch the configured `lr` was tuned for (None: not stated, no rescaling).
        lr_scaling: "none" (report only), "linear" or "sqrt"; rescales the module's `hparams.lr` before the
            optimizer is built.
    """

    def __init__(self, per_device_batch: int | None = None, base_batch: int | None = None,
                 lr_scaling: ScalingRule = "none"):
        if lr_scaling != "none" and base_batch is None:
            raise ValueError(f"lr_scaling={lr_scaling!r} needs base_batch (the batch the configured lr was tuned for)")
        self.per_device_batch, self.base_batch, self.lr_scaling = per_device_batch, base_batch, lr_scaling
        self.summary: dict = {}

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        per_device = self.per_device_batch
        if per_device is None and trainer.datamodule is not None:
            per_device = getattr(trainer.datamodule, "hparams", {}).get("batch_size")
        if per_device is None:
            raise ValueError("DDPScaleReport: set per_device_batch (the DataModule has no hparams.batch_size)")
        effective = effective_batch_size(per_device, trainer.num_devices, trainer.num_nodes,
                                         trainer.accumulate_grad_batches)
        configured = float(pl_module.hparams.lr)
        lr = scaled_learning_rate(configured, self.base_batch or effective, effective, self.lr_scaling)
        pl_module.hparams.lr = lr  # read by configure_optimizers, which runs after setup
        self.summary = {
            "ddp/world_size": trainer.world_size, "ddp/num_nodes": trainer.num_nodes,
            "ddp/devices_per_node": trainer.num_devices, "ddp/per_device_batch": int(per_device),
            "ddp/accumulate_grad_batches": trainer.accumulate_grad_batches, "ddp/effective_batch": effective,
            "ddp/base_batch": self.base_batch, "ddp/lr_scaling": self.lr_scaling,
            "ddp/configured_lr": configured, "ddp/lr": lr,
        }

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        s = self.summary
        rank_zero_info(
            f"DDP scale: {s['ddp/num_nodes']} node(s) × {s['ddp/devices_per_node']} device(s) = "
            f"{s['ddp/world_size']} processes; {s['ddp/per_device_batch']} clips/device × "
            f"{s['ddp/accumulate_grad_batches']} accumulation → effective batch {s['ddp/effective_batch']}; "
            f"lr {s['ddp/lr']:g} (configured {s['ddp/configured_lr']:g}, scaling {s['ddp/lr_scaling']}"
            + (f" from base batch {s['ddp/base_batch']})" if s["ddp/base_batch"] else ")"))
        for logger in trainer.loggers:
            logger.log_hyperparams(s)
