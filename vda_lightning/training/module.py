"""The LightningModule that trains the spatio-temporal head of Video Depth Anything (the paper's recipe,
arXiv 2501.12375 §3–4; the authors published no training code).

The DINOv2 encoder is frozen (no gradients, always in eval mode, run under no_grad); only the head learns.
Video batches get `VideoDepthLoss` (spatial 1.0 + TGM 10.0); image batches enter as one-frame clips and get the
distillation loss (0.5) against stored pseudo-labels or an online frozen teacher.

Metric mode (the model is metric: `metric: true`, or a metric init checkpoint): the target is the batch's metric
`depth` in metres, the loss `MetricDepthLoss` (SiLog as DAv2's metric fine-tuning + TGM on depth, unaligned),
validation scores depth as predicted (alignment "none"); see `training/metric.py`. The encoder may be trained too
(`freeze_encoder: false`, at `encoder_lr`, default lr / 10 as DAv2's metric recipe).

The loop's other jobs are callbacks the module brings along (`configure_callbacks`): `EMACallback` (EMA of
the head, swapped in for validation) and `ValidationEvaluator` (per-dataset validation metrics, with each
benchmark's own protocol); throughput is the dashboard callback's (`dashboards.TrainingDashboard`).

Checkpoints follow the contract in `vda_lightning.checkpoints` (its package docstring): `load_model` reads them.
"""
from __future__ import annotations

import math
import os
from typing import Literal

import lightning as L
import torch

from ..losses import DistillationLoss, MetricDepthLoss, TGMVariant, VideoDepthLoss
from ..models import build_video_model
from .ema import EMACallback
from .evaluator import ValidationEvaluator
from .metric import canonical_to_metric, metric_target, parameter_groups
from .teacher import Teacher, image_targets

ENCODER_PREFIX = "model.pretrained."
PAPER_TGM_WEIGHT = 10.0   # the paper's (and the released loss's stable_scale)
METRIC_TGM_WEIGHT = 1.0   # ours: the metric TGM is in metres; at 1 it is ~1/3 of SiLog on the synthetic rooms


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
        spatial_weight, tgm_weight, distill_weight, tgm_variant: loss weights (paper 1 / 10 / 0.5), TGM form;
            tgm_weight None = 10 (paper) for a relative model, 1 for a metric one (its TGM is in metres).
        teacher_encoder, teacher_checkpoint: frozen DAv2 teacher for unlabelled image batches (None: none).
        ema_decay: keep an EMA of the head weights (validated with the EMA weights when set).
        gradient_checkpointing: recompute head activations in backward (for 32×518×518 clips).
        val_max_depth: depth cap of the validation metrics (valid = 1e-3 < gt < cap) for datasets no registered
            benchmark scores; a benchmark's stream uses that benchmark's cap.
        val_input_size: inference input size for benchmark streams (published benchmarks: 518).
        metric: train a metric-depth model (None: as `init_checkpoint` says; relative without one).
        silog_lambda, metric_min_depth, metric_max_depth: metric mode's SiLog loss (DAv2: 0.5) on pixels with
            metric_min_depth <= depth <= metric_max_depth (None: no upper bound; DAv2: 1e-3 .. 20 or 80 m);
            `tgm_weight` weights its TGM term (metres). (Named apart from the DataModule's min/max_depth, which
            mask at read time: Lightning's loggers refuse two hyper-parameters of one name.)
        canonical_focal: metric mode: train on depth * canonical_focal / fx (canonical camera; None: off).
        freeze_encoder: False trains the encoder too (at `encoder_lr`, default lr / 10) and embeds it in
            checkpoints.
        init_dav2_max_depth: max_depth of a Depth Anything V2 metric `init_checkpoint` whose name does not say it
            (`depth_anything_v2_metric_{hypersim,vkitti}_*`: 20 / 80); its sigmoid head is folded for ReLU.
        speed_levers: models/speed.py levers for the model (compile, channels_last; cuda_graphs acts only without
            autograd, i.e. in validation). Checkpoints are unaffected. Measured by `vda bench train --levers`.
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
        tgm_weight: float | None = None,
        distill_weight: float = 0.5,
        tgm_variant: TGMVariant = "code",
        teacher_encoder: str | None = None,
        teacher_checkpoint: str | None = None,
        ema_decay: float | None = None,
        gradient_checkpointing: bool = False,
        val_max_depth: float = 80.0,
        val_input_size: int = 518,
        silog_lambda: float = 0.5,
        metric_min_depth: float = 1e-3,
        metric_max_depth: float | None = 80.0,
        canonical_focal: float | None = None,
        freeze_encoder: bool = True,
        encoder_lr: float | None = None,
        init_dav2_max_depth: float | None = None,
        speed_levers: list[str] | None = None,
    ):
        super().__init__()
        self.save_hyperparameters()
        if encoder_storage not in ("reference", "embed"):
            raise ValueError(f"encoder_storage must be 'reference' or 'embed', got {encoder_storage!r}")
        self.model = self._initial_model(encoder, init_checkpoint, metric, init_dav2_max_depth)
        self.metric = bool(self.model.config.metric)
        if canonical_focal is not None and (not self.metric or canonical_focal <= 0):
            raise ValueError("canonical_focal needs a metric model and a positive focal length, got "
                             f"{canonical_focal} (metric: {self.metric})")
        if self.metric and canonical_focal is not None:
            import dataclasses

            self.model.config = dataclasses.replace(self.model.config, canonical_focal=float(canonical_focal))
        self.freeze_encoder = freeze_encoder
        self.model.pretrained.requires_grad_(not freeze_encoder).eval()
        if not freeze_encoder:  # the encoder has parameters no forward pass uses: they must not wait for a gradient
            self.model.pretrained.mask_token.requires_grad_(False)
        # The published head carries refinenet4.resConfUnit1 but never runs it: without gradients it stays
        # out of the optimizer, and plain DDP (find_unused_parameters=False) does not fail on it.
        self.model.head.scratch.refinenet4.resConfUnit1.requires_grad_(False)
        self.model.head.gradient_checkpointing = gradient_checkpointing
        if speed_levers:
            from ..models.speed import apply_levers

            apply_levers(self.model, speed_levers)
        self.encoder_source = None
        if init_checkpoint and encoder_storage == "reference" and freeze_encoder:  # a trained encoder is embedded
            from ..checkpoints import file_sha256

            path = os.path.abspath(init_checkpoint)
            self.encoder_source = {"path": path, "sha256": file_sha256(path)}
        if self.metric:
            self.video_loss = MetricDepthLoss(silog_lambda, METRIC_TGM_WEIGHT if tgm_weight is None else tgm_weight,
                                              metric_min_depth, metric_max_depth, tgm_variant=tgm_variant)
        else:
            self.video_loss = VideoDepthLoss(stable_scale=PAPER_TGM_WEIGHT if tgm_weight is None else tgm_weight,
                                             spatial_weight=spatial_weight, tgm_variant=tgm_variant)
        self.distill_loss = DistillationLoss(weight=distill_weight)
        self.teacher = Teacher(teacher_encoder, teacher_checkpoint) if teacher_encoder else None
        self.ema = EMACallback(ema_decay) if ema_decay else None
        self.evaluator = ValidationEvaluator(default_max_depth=val_max_depth, alignment=self.val_alignment)
        self.counters = {"skipped_nonfinite_loss": 0, "skipped_nonfinite_grad": 0}
        if self.metric and canonical_focal is not None:
            self.counters["metric_samples_without_K"] = 0
        self._skip_this_step = False

    def configure_callbacks(self):
        ours = [self.evaluator] + ([self.ema] if self.ema is not None else [])
        attached = getattr(self._trainer, "callbacks", None) or []  # a second fit/validate: already there
        return [cb for cb in ours if not any(cb is other for other in attached)]

    @property
    def val_results(self) -> dict[str, dict[str, float]]:
        """The last validation's table {dataset: {metric: value}} (the evaluator's)."""
        return self.evaluator.results

    @staticmethod
    def _initial_model(encoder, init_checkpoint, metric, dav2_max_depth=None):
        if init_checkpoint is None:
            return build_video_model(encoder, metric=bool(metric))
        from ..checkpoints import load_model

        model = load_model(init_checkpoint, encoder=encoder, metric=metric, expect="any",
                           dav2_max_depth=dav2_max_depth)
        if model.config.encoder != encoder:
            raise ValueError(
                f"{init_checkpoint}: holds a {model.config.encoder!r} model but model.encoder is {encoder!r}"
            )
        return model

    # ------------------------------------------------------------------ frozen parts stay frozen
    def train(self, mode: bool = True):
        super().train(mode)
        if self.freeze_encoder:
            self.model.pretrained.eval()  # frozen encoder: no dropout / batch statistics, whatever the mode
        return self

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, H, W) RGB in [0, 1] -> (B, T, H, W) disparity (metric depth in metric mode, canonical metres
        with `canonical_focal`); gradients reach the head only unless the encoder is trained."""
        b, t, _, h, w = frames.shape
        x = self.model.config.input_contract().normalize(frames).flatten(0, 1)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze_encoder):
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
        if video is not None and self.metric:
            target, mask, dropped = metric_target(video, self.hparams.canonical_focal)
            if dropped:
                self.counters["metric_samples_without_K"] += dropped
            out = self.video_loss(self(video["frames"]), target, mask)
            total = total + out["total_loss"]
            logs.update({"train/silog": out["silog_loss"], "train/tgm": out["stable_loss"]})
        elif video is not None:
            pred = self(video["frames"])
            out = self.video_loss(pred, video["disparity"], video["mask"])
            total = total + out["total_loss"]
            logs.update({"train/spatial": out["spatial_loss"], "train/tgm": out["stable_loss"]})
        if image is not None and self.metric:  # one-frame clips with metric depth (no TGM); no pseudo-labels
            target, mask, dropped = metric_target(image, self.hparams.canonical_focal)
            silog = self.video_loss(self(image["frames"]), target, mask)["silog_loss"]
            total = total + silog
            logs["train/silog_images"] = silog
        elif image is not None:
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
            total = sum((p.sum() * 0.0 for p in self.trainable_parameters()), torch.zeros((), device=self.device))
        else:
            logs["train/total"] = total.detach()
            bs = (video or image)["frames"].shape[0]
            self.log_dict({k: v.detach() for k, v in logs.items()}, prog_bar=False, batch_size=bs)
            self.log("train/loss", total.detach(), prog_bar=True, batch_size=bs)
        return total

    def on_before_optimizer_step(self, optimizer) -> None:
        params = [p for p in self.trainable_parameters() if p.grad is not None]
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

    def on_train_batch_end(self, outputs, batch, batch_idx):
        self.log("train/lr", self.trainer.optimizers[0].param_groups[0]["lr"], batch_size=1)

    def configure_optimizers(self):
        h = self.hparams
        groups = parameter_groups(self.model, h.lr, not self.freeze_encoder, h.encoder_lr)
        optimizer = torch.optim.AdamW(groups, lr=h.lr, weight_decay=h.weight_decay, betas=tuple(h.betas))
        total = h.total_steps or int(self.trainer.estimated_stepping_batches)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: warmup_cosine(step, h.warmup_steps, total, h.min_lr_ratio)
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    # ------------------------------------------------------------------ validation
    @property
    def val_alignment(self) -> str:
        """How validation scores predictions: a metric model's depth as predicted ("none"), else the published
        relative protocol ("scale_shift"); `evaluation.functional.align_to_ground_truth`."""
        return "none" if self.metric else "scale_shift"

    def validation_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0):
        """Predictions only; `self.evaluator` scores them. A stored benchmark sequence (`rgb`) goes through the
        long-video inference `vda-eval` uses; any other clip through one forward pass. The key says disparity; a
        metric model's output is metric depth (in metres for each sample's camera with `canonical_focal`)."""
        canonical = self.model.config.canonical_focal if self.metric else None
        if "rgb" in batch:
            pred = self.benchmark_inference(batch["rgb"][0])
            if canonical:
                K = batch["K"][0]
                pred = canonical_to_metric(torch.from_numpy(pred)[None], (K[0] if K.dim() == 3 else K)[None].cpu(),
                                           canonical)[0].numpy()
            return {"disparity": pred}
        pred = self(batch["frames"])
        if canonical:
            pred = canonical_to_metric(pred, batch["K"], canonical)
        return {"disparity": pred}

    @torch.no_grad()
    def benchmark_inference(self, rgb: torch.Tensor):
        """(T, H, W, 3) uint8 frames -> (T, H, W) float32 numpy disparity: `infer_video_depth` at `val_input_size`
        in fp32 (the published benchmark setting, whatever the trainer's precision), as `vda-eval --checkpoint`."""
        from ..inference import infer_video_depth

        frames = rgb.cpu().numpy()
        with torch.autocast(self.device.type, enabled=False):
            return infer_video_depth(self.model, frames, input_size=self.hparams.val_input_size,
                                     device=self.device, precision="fp32")

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

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        from ..checkpoints import CheckpointError
        from ..checkpoints.metadata import lightning_info, training_counters

        state = checkpoint["state_dict"]
        where = getattr(self._trainer, "ckpt_path", None) or "the checkpoint being loaded"
        info = lightning_info(checkpoint.get("vda") or {}, where, CheckpointError)
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
        self.counters.update(training_counters(checkpoint.get("vda_counters") or {}, where, CheckpointError))
