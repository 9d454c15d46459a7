"""The frozen image teacher that gives unlabelled image batches their pseudo-labels (paper: DAv2 as teacher)."""
from __future__ import annotations

import torch
import torch.nn as nn

from ..models import build_image_model
from ..models.configs import IMAGENET_MEAN, IMAGENET_STD


def normalize_frames(frames: torch.Tensor) -> torch.Tensor:
    """RGB in [0, 1] (..., 3, H, W) -> ImageNet-normalised, as both models expect."""
    mean = frames.new_tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = frames.new_tensor(IMAGENET_STD).view(3, 1, 1)
    return (frames - mean) / std


class Teacher(nn.Module):
    """A frozen Depth Anything V2 image model of any size; `forward(frames01 (N, 3, H, W)) -> (N, H, W)` disparity.

    The paper's teacher is DAv2's ViT-giant trained on synthetic data (not published); any DAv2 checkpoint works.
    Without `checkpoint` it is randomly initialised (tests only).
    """

    def __init__(self, encoder: str = "vitl", checkpoint: str | None = None):
        super().__init__()
        if checkpoint:
            from ..checkpoints import load_image_model

            self.model = load_image_model(checkpoint, encoder=encoder)
        else:
            self.model = build_image_model(encoder)
        self.model.requires_grad_(False).eval()

    def train(self, mode: bool = True):
        return super().train(False)  # frozen: always in eval mode

    @torch.no_grad()
    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.model(normalize_frames(frames)).float()


def image_targets(image_batch: dict, teacher: Teacher | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(pseudo-label, mask) of an image batch (B, 1, ...): stored labels when the batch carries them, else online."""
    frames = image_batch["frames"]
    if image_batch.get("disparity") is not None:
        labels = image_batch["disparity"]
        mask = image_batch.get("mask")
        return labels, (mask if mask is not None else torch.isfinite(labels))
    if teacher is None:
        raise ValueError(
            "an image batch without stored pseudo-labels ('disparity') needs a teacher: set model.teacher_encoder "
            "(and model.teacher_checkpoint) or feed pseudo-labelled shards written by vda-pseudolabel"
        )
    labels = teacher(frames.flatten(0, 1)).unflatten(0, frames.shape[:2])
    return labels, torch.ones_like(labels, dtype=torch.bool)
