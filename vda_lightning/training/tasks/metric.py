"""`MetricDepthTask`: metric fine-tuning (docs/metric.md; its parts in `training/metric.py`).

The target is the batch's metric `depth` in metres (canonical metres with `canonical_focal`), the loss
`MetricDepthLoss` (SiLog as DAv2's metric fine-tuning + TGM on depth, unaligned); image parts get SiLog only (no
TGM, no pseudo-labels); validation scores depth as predicted (alignment "none"), in metres for each sample's camera.
The encoder may be trained too (`freeze_encoder: false`, at `encoder_lr`, default lr / 10 as DAv2's metric recipe).
"""
from __future__ import annotations

import dataclasses

import torch

from ...losses import MetricDepthLoss, TGMVariant
from ..metric import canonical_to_metric, metric_target
from .base import DepthTask

METRIC_TGM_WEIGHT = 1.0   # ours: the metric TGM is in metres; at 1 it is ~1/3 of SiLog on the synthetic rooms


class MetricDepthTask(DepthTask):
    """Trains a metric-depth model (the base's arguments, `DepthTask`, plus these); any `init_checkpoint` —
    relative, metric, or Depth Anything V2 metric — starts a metric model.

    Args:
        silog_lambda, metric_min_depth, metric_max_depth: the SiLog loss (DAv2: 0.5) on pixels with
            metric_min_depth <= depth <= metric_max_depth (None: no upper bound; DAv2: 1e-3 .. 20 or 80 m).
            (Named apart from the DataModule's min/max_depth, which mask at read time: Lightning's loggers refuse
            two hyper-parameters of one name.)
        tgm_weight, tgm_variant: weight of the TGM term in metres (None = 1) and its form.
        canonical_focal: train on depth * canonical_focal / fx (canonical camera; None: off).
        init_dav2_max_depth: max_depth of a Depth Anything V2 metric `init_checkpoint` whose name does not say it
            (`depth_anything_v2_metric_{hypersim,vkitti}_*`: 20 / 80); its sigmoid head is folded for ReLU.
    """

    metric = True
    val_alignment = "none"

    def __init__(
        self,
        silog_lambda: float = 0.5,
        metric_min_depth: float = 1e-3,
        metric_max_depth: float | None = 80.0,
        tgm_weight: float | None = None,
        tgm_variant: TGMVariant = "code",
        canonical_focal: float | None = None,
        init_dav2_max_depth: float | None = None,
        **kwargs,
    ):
        if canonical_focal is not None and canonical_focal <= 0:
            raise ValueError(f"canonical_focal needs a positive focal length, got {canonical_focal}")
        super().__init__(**kwargs)
        if canonical_focal is not None:
            self.counters["metric_samples_without_K"] = 0

    def initial_model(self) -> torch.nn.Module:
        model = self.load_initial_model(metric=True, dav2_max_depth=self.hparams.init_dav2_max_depth)
        if self.hparams.canonical_focal is not None:  # recorded in the config: inference converts back
            model.config = dataclasses.replace(model.config, canonical_focal=float(self.hparams.canonical_focal))
        return model

    def configure_losses(self) -> None:
        h = self.hparams
        self.video_loss = MetricDepthLoss(h.silog_lambda, METRIC_TGM_WEIGHT if h.tgm_weight is None else h.tgm_weight,
                                          h.metric_min_depth, h.metric_max_depth, tgm_variant=h.tgm_variant)

    def video_loss_terms(self, video: dict):
        target, mask, dropped = metric_target(video, self.hparams.canonical_focal)
        if dropped:
            self.counters["metric_samples_without_K"] += dropped
        out = self.video_loss(self(video["frames"]), target, mask)
        return out["total_loss"], {"train/silog": out["silog_loss"], "train/tgm": out["stable_loss"]}

    def image_loss_terms(self, image: dict):
        target, mask, _ = metric_target(image, self.hparams.canonical_focal)
        silog = self.video_loss(self(image["frames"]), target, mask)["silog_loss"]
        return silog, {"train/silog_images": silog}

    def to_frame_camera(self, pred: torch.Tensor, K: torch.Tensor | None) -> torch.Tensor:
        """Canonical-camera depth in metres for each sample's camera (unchanged without `canonical_focal`)."""
        canonical = self.model.config.canonical_focal
        return pred if canonical is None else canonical_to_metric(pred, K, canonical)
