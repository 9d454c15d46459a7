"""The LightningModule that trains the spatio-temporal head of Video Depth Anything (the paper's recipe,
arXiv 2501.12375 §3–4; the authors published no training code).

The DINOv2 encoder is frozen (no gradients, always in eval mode, run under no_grad); only the head learns.
Video batches get `VideoDepthLoss` (spatial 1.0 + TGM 10.0); image batches enter as one-frame clips and get the
distillation loss (0.5) against stored pseudo-labels or an online frozen teacher.

Checkpoints follow the contract in `vda_lightning.checkpoints` (its package docstring): `load_model` reads them.
"""
from __future__ import annotations

import math
import os
import time
from typing import Literal

import lightning as L
import torch
import torch.nn as nn

from ..losses import DistillationLoss, TGMVariant, VideoDepthLoss
from ..models import build_video_model
from .ema import HeadEMA
from .teacher import Teacher, image_targets, normalize_frames

ENCODER_PREFIX = "model.pretrained."


def warmup_cosine(step: int, warmup_steps: int, total_steps: int, min_ratio: float) -> float:
    """LR multiplier: linear warm-up from ~0 to 1 over `warmup_steps`, then cosine from 1 to `min_ratio`."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


class VideoDepthModule(L.LightningModule):
    """Trains `VideoDepthAnything`'s head.

    Args:
        encoder: model size (vits / vitb / vitl, or vitt for CPU tests); ignored when `init_checkpoint` says more.
        init_checkpoint: initial weights — a DAv2 `.pth` (paper: fresh temporal modules), a published VDA
            checkpoint, safetensors, or one of our checkpoints. None: random weights (tests / quick start).
        encoder_storage: "reference" keeps the frozen encoder out of checkpoints (path + sha256 of
            `init_checkpoint` instead); "embed" stores it. Without an init checkpoint it is always embedded.
        lr, weight_decay, betas, warmup_steps, min_lr_ratio, total_steps: AdamW + warm-up/cosine schedule;
            total_steps None = the Trainer's estimate (max_steps or epochs × batches).
        spatial_weight, tgm_weight, distill_weight, tgm_variant: loss weights (paper 1 / 10 / 0.5), TGM form.
        teacher_encoder, teacher_checkpoint: frozen DAv2 teacher for unlabelled image batches (None: none).
        ema_decay: keep an EMA of the head weights (validated with the EMA weights when set).
        gradient_checkpointing: recompute head activations in backward (for 32×518×518 clips).
        val_max_depth: depth cap of the validation metrics (protocol: valid = 1e-3 < gt < cap).
    """

    def __init__(
        self,
        encoder: str = "vits",
        init_checkpoint: str | None = None,
        metric: bool | None = None,
        encoder_storage: Literal["reference", "embed"] = "reference",
        lr: float = 1e-4,
        weight_decay: float = 0.01,
        betas: tuple[float, float] = (0.9, 0.999),
        warmup_steps: int = 0,
        min_lr_ratio: float = 0.0,
        total_steps: int | None = None,
        spatial_weight: float = 1.0,
        tgm_weight: float = 10.0,
        distill_weight: float = 0.5,
        tgm_variant: TGMVariant = "code",
        teacher_encoder: str | None = None,
        teacher_checkpoint: str | None = None,
        ema_decay: float | None = None,
        gradient_checkpointing: bool = False,
        val_max_depth: float = 80.0,
    ):
        super().__init__()
        self.save_hyperparameters()
        if encoder_storage not in ("reference", "embed"):
            raise ValueError(f"encoder_storage must be 'reference' or 'embed', got {encoder_storage!r}")
        self.model = self._initial_model(encoder, init_checkpoint, metric)
        self.model.pretrained.requires_grad_(False).eval()
        # The published head carries refinenet4.resConfUnit1 but never runs it: without gradients it stays
        # out of the optimizer, and plain DDP (find_unused_parameters=False) does not fail on it.
        self.model.head.scratch.refinenet4.resConfUnit1.requires_grad_(False)
        self.model.head.gradient_checkpointing = gradient_checkpointing
        self.encoder_source = None
        if init_checkpoint and encoder_storage == "reference":
            from ..checkpoints import file_sha256

            path = os.path.abspath(init_checkpoint)
            self.encoder_source = {"path": path, "sha256": file_sha256(path)}
        self.video_loss = VideoDepthLoss(stable_scale=tgm_weight, spatial_weight=spatial_weight,
                                         tgm_variant=tgm_variant)
        self.distill_loss = DistillationLoss(weight=distill_weight)
        self.teacher = Teacher(teacher_encoder, teacher_checkpoint) if teacher_encoder else None
        self.ema = HeadEMA(self.model.head, ema_decay) if ema_decay else None
        self.counters = {"skipped_nonfinite_loss": 0, "skipped_nonfinite_grad": 0}
        self._skip_this_step = False
        self._batch_started = 0.0
        self._val_metrics: dict[str, nn.ModuleDict] = {}
        self.val_results: dict[str, dict[str, float]] = {}

    @staticmethod
    def _initial_model(encoder, init_checkpoint, metric):
        if init_checkpoint is None:
            return build_video_model(encoder, metric=bool(metric))
        from ..checkpoints import load_model

        model = load_model(init_checkpoint, encoder=encoder, metric=metric, expect="any")
        if model.config.encoder != encoder:
            raise ValueError(
                f"{init_checkpoint}: holds a {model.config.encoder!r} model but model.encoder is {encoder!r}"
            )
        return model

    # ------------------------------------------------------------------ frozen parts stay frozen
    def train(self, mode: bool = True):
        super().train(mode)
        self.model.pretrained.eval()  # frozen encoder: no dropout / batch statistics, whatever the module's mode
        return self

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, H, W) RGB in [0, 1] -> (B, T, H, W) disparity; gradients reach the head only."""
        b, t, _, h, w = frames.shape
        x = normalize_frames(frames).flatten(0, 1)
        with torch.no_grad():
            features = self.model.forward_features(x)
        depth, _ = self.model.forward_depth(features, h, w, b, t)
        return depth.float()

    # ------------------------------------------------------------------ training
    def training_step(self, batch: dict, batch_idx: int):
        video, image = batch.get("video"), batch.get("image")
        if video is None and image is None:
            raise ValueError("a training batch needs a 'video' or an 'image' part")
        total = torch.zeros((), device=self.device)
        logs = {}
        if video is not None:
            pred = self(video["frames"])
            out = self.video_loss(pred, video["disparity"], video["mask"])
            total = total + out["total_loss"]
            logs.update({"train/spatial": out["spatial_loss"], "train/tgm": out["stable_loss"]})
        if image is not None:
            labels, mask = image_targets(image, self.teacher)
            pred = self(image["frames"])
            distill = self.distill_loss(pred, labels, mask)
            total = total + distill
            logs["train/distill"] = distill
        self._skip_this_step = not bool(torch.isfinite(total))
        if self._skip_this_step:
            self.counters["skipped_nonfinite_loss"] += 1
            # A zero with a graph to every trainable parameter keeps backward (and DDP's all-reduce) uniform;
            # the optimizer step is then cancelled in on_before_optimizer_step.
            total = sum((p.sum() * 0.0 for p in self.model.head.parameters()), torch.zeros((), device=self.device))
        else:
            logs["train/total"] = total.detach()
            bs = (video or image)["frames"].shape[0]
            self.log_dict({k: v.detach() for k, v in logs.items()}, prog_bar=False, batch_size=bs)
            self.log("train/loss", total.detach(), prog_bar=True, batch_size=bs)
        return total

    def on_before_optimizer_step(self, optimizer) -> None:
        params = [p for p in self.model.head.parameters() if p.grad is not None]
        norm = torch.linalg.vector_norm(torch.stack([p.grad.detach().float().norm() for p in params])) if params \
            else torch.zeros((), device=self.device)
        bad = torch.tensor(float(self._skip_this_step or not torch.isfinite(norm)), device=self.device)
        bad = self.trainer.strategy.reduce(bad, reduce_op="max")  # every rank skips together
        if bad > 0:
            if not self._skip_this_step:
                self.counters["skipped_nonfinite_grad"] += 1
            for p in params:
                p.grad = None  # AdamW leaves parameters without gradients untouched (no decay, no moments)
        else:
            self.log("train/grad_norm", norm, batch_size=1)
        self.log("train/skipped_nonfinite_loss", float(self.counters["skipped_nonfinite_loss"]), batch_size=1)
        self.log("train/skipped_nonfinite_grad", float(self.counters["skipped_nonfinite_grad"]), batch_size=1)
        self._skip_this_step = False

    def on_train_batch_start(self, batch, batch_idx):
        self._batch_started = time.perf_counter()

    def on_train_batch_end(self, outputs, batch, batch_idx):
        if self.ema is not None:
            self.ema.update(self.model.head)
        seconds = max(time.perf_counter() - self._batch_started, 1e-9)
        clips = frames = 0
        for part in (batch.get("video"), batch.get("image")):
            if part is not None:
                b, t = part["frames"].shape[:2]
                clips, frames = clips + b, frames + b * t
        self.log("train/clips_per_s", clips / seconds, batch_size=1)
        self.log("train/frames_per_s", frames / seconds, batch_size=1)
        self.log("train/lr", self.trainer.optimizers[0].param_groups[0]["lr"], batch_size=1)

    def configure_optimizers(self):
        h = self.hparams
        params = [p for p in self.model.head.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=h.lr, weight_decay=h.weight_decay, betas=tuple(h.betas))
        total = h.total_steps or int(self.trainer.estimated_stepping_batches)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: warmup_cosine(step, h.warmup_steps, total, h.min_lr_ratio)
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    # ------------------------------------------------------------------ validation
    def _metrics_for(self, dataset: str) -> nn.ModuleDict:
        from ..evaluation.metrics import DepthMetrics, TAEMetric

        if dataset not in self._val_metrics:
            metrics = nn.ModuleDict(
                {"depth": DepthMetrics(self.hparams.val_max_depth), "tae": TAEMetric(self.hparams.val_max_depth)}
            )
            self._val_metrics[dataset] = metrics.to(self.device)
        return self._val_metrics[dataset]

    def on_validation_epoch_start(self):
        for metrics in self._val_metrics.values():
            for m in metrics.values():
                m.reset()
        if self.ema is not None:
            self._ema_context = self.ema.swapped_in(self.model.head)
            self._ema_context.__enter__()

    def validation_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0):
        pred = self(batch["frames"])
        for i, name in enumerate(batch["dataset"]):
            metrics = self._metrics_for(name)
            metrics["depth"].update(pred[i], batch["depth"][i], batch["mask"][i])
            if bool(batch["has_pose"][i]) and pred.shape[1] > 1:
                metrics["tae"].update(pred[i], batch["K"][i], batch["poses"][i], gt_depth=batch["depth"][i],
                                      valid=batch["mask"][i])

    def on_validation_epoch_end(self):
        if self.ema is not None:
            self._ema_context.__exit__(None, None, None)
        self.val_results = {}
        for name, metrics in sorted(self._val_metrics.items()):
            row = {k: float(v) for k, v in metrics["depth"].compute().items()}
            if int(metrics["tae"].sequences) > 0:
                row["tae"] = float(metrics["tae"].compute())
            self.val_results[name] = row
            for key, value in row.items():
                self.log(f"val/{name}/{key}", value, sync_dist=False, batch_size=1)

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        embed = self.encoder_source is None
        state = checkpoint["state_dict"]
        for key in list(state):
            if key.startswith("teacher.") or (not embed and key.startswith(ENCODER_PREFIX)):
                del state[key]
        checkpoint["vda"] = {
            "config": self.model.config.to_dict(),
            "encoder_source": self.encoder_source,
            "prefix": "model.",
        }
        checkpoint["vda_counters"] = dict(self.counters)
        if self.ema is not None:
            checkpoint["vda_ema"] = self.ema.state_dict()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint["state_dict"]
        info = checkpoint.get("vda") or {}
        if not any(k.startswith(ENCODER_PREFIX) for k in state):
            saved = info.get("encoder_source") or {}
            ours = self.encoder_source or {}
            if saved.get("sha256") and saved.get("sha256") != ours.get("sha256"):
                raise ValueError(
                    f"this checkpoint's frozen encoder came from {saved.get('path')} (sha256 {saved['sha256'][:12]}…) "
                    f"but model.init_checkpoint is {ours.get('path')} (sha256 {str(ours.get('sha256'))[:12]}…)"
                )
            state.update({ENCODER_PREFIX + k: v for k, v in self.model.pretrained.state_dict().items()})
        if self.teacher is not None:
            state.update({"teacher." + k: v for k, v in self.teacher.state_dict().items()})
        self.counters.update(checkpoint.get("vda_counters", {}))
        if self.ema is not None and "vda_ema" in checkpoint:
            self.ema.load_state_dict(checkpoint["vda_ema"])
