"""`RelativeDepthTask`: the paper's recipe (arXiv 2501.12375 §3–4; the authors published no training code).

Video batches get `VideoDepthLoss` (spatial 1.0 + TGM 10.0) on relative disparity; image batches enter as
one-frame clips and get the distillation loss (0.5) against stored pseudo-labels or an online frozen teacher.
Validation aligns scale and shift per sequence (the published relative protocol).
"""
from __future__ import annotations

import torch

from ...losses import DistillationLoss, TGMVariant, VideoDepthLoss
from ..teacher import Teacher, image_targets
from .base import DepthTask

PAPER_TGM_WEIGHT = 10.0   # the paper's (and the released loss's stable_scale)
TEACHER_PREFIX = "teacher."


class RelativeDepthTask(DepthTask):
    """Trains a relative-disparity model (the base's arguments, `DepthTask`, plus these).

    Args:
        spatial_weight, tgm_weight, distill_weight, tgm_variant: loss weights (paper 1 / 10 / 0.5), TGM form;
            tgm_weight None = 10 (paper).
        teacher_encoder, teacher_checkpoint: frozen DAv2 teacher for unlabelled image batches (None: none).
    """

    def __init__(
        self,
        spatial_weight: float = 1.0,
        tgm_weight: float | None = None,
        distill_weight: float = 0.5,
        tgm_variant: TGMVariant = "code",
        teacher_encoder: str | None = None,
        teacher_checkpoint: str | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)

    def initial_model(self) -> torch.nn.Module:
        """As the file says; a file that says it is metric is refused (training it as relative would throw its
        metres away without a word)."""
        model = self.load_initial_model(metric=None)
        if model.config.metric:
            raise ValueError(f"model.init_checkpoint: {self.hparams.init_checkpoint} holds a metric depth model "
                             "(as the file says); fine-tune it with model.class_path: "
                             "vda_lightning.training.MetricDepthTask (docs/metric.md)")
        return model

    def configure_losses(self) -> None:
        h = self.hparams
        self.video_loss = VideoDepthLoss(stable_scale=PAPER_TGM_WEIGHT if h.tgm_weight is None else h.tgm_weight,
                                         spatial_weight=h.spatial_weight, tgm_variant=h.tgm_variant)
        self.distill_loss = DistillationLoss(weight=h.distill_weight)
        self.teacher = Teacher(h.teacher_encoder, h.teacher_checkpoint) if h.teacher_encoder else None

    def video_loss_terms(self, video: dict):
        out = self.video_loss(self(video["frames"]), video["disparity"], video["mask"])
        return out["total_loss"], {"train/spatial": out["spatial_loss"], "train/tgm": out["stable_loss"]}

    def image_loss_terms(self, image: dict):
        labels, mask = image_targets(image, self.teacher)
        distill = self.distill_loss(self(image["frames"]), labels, mask)
        return distill, {"train/distill": distill}

    # The frozen teacher stays out of checkpoints: a resumed run builds it from its own arguments.
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        state = checkpoint["state_dict"]
        for key in [k for k in state if k.startswith(TEACHER_PREFIX)]:
            del state[key]

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        if self.teacher is not None:
            checkpoint["state_dict"].update({TEACHER_PREFIX + k: v for k, v in self.teacher.state_dict().items()})
