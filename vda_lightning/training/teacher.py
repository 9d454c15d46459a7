"""The frozen image teacher that gives unlabelled image batches their pseudo-labels (paper: DAv2 as teacher)."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from ..inference.runtime import to_frame_size
from ..models import build_image_model
from ..models.input_contract import DEFAULT_INPUT_SIZE


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
        """Frames already at a network size (training crops): normalised in their dtype, as the student's."""
        return self.model(self.model.config.input_contract().normalize(frames)).float()

    @torch.no_grad()
    def infer_image(self, images: np.ndarray, input_size: int = DEFAULT_INPUT_SIZE, device=None) -> torch.Tensor:
        """The published Depth Anything V2 image inference (`depth_anything_v2/dpt.py::infer_image`), batched:
        (N, H, W, 3) RGB images of one size (uint8, or float in [0, 1]) -> (N, H, W) float32 disparity there.

        As published, each image / 255 stays float64 through the OpenCV lower-bound bicubic resize (to input_size,
        multiples of 14, no aspect rule) and the normalisation (`InputContract.prepare_image`), the batch enters the
        network as float32 on `device` (default: the teacher's), and the prediction is resized back with bilinear,
        align_corners=True.
        """
        contract = self.model.config.input_contract()
        images = images / 255.0 if images.dtype == np.uint8 else np.asarray(images, dtype=np.float64)
        size = images.shape[1:3]
        shape = contract.network_size(*size, input_size)
        batch = torch.from_numpy(np.stack([contract.prepare_image(image, shape) for image in images]))
        device = next(self.model.parameters()).device if device is None else device
        return to_frame_size(self.model(batch.to(device)), size)


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
