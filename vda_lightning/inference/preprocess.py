"""The published pre-processing (`video_depth.py` with `util/transform.py`), batched with torch on the device.

torch's bicubic (a = -0.75, align_corners False, no antialias) on a float [0, 1] image matches
cv2.INTER_CUBIC to ~1e-5 (field notes), so whole windows are resized at once on the device.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from ..models.configs import IMAGENET_MEAN, IMAGENET_STD

PATCH = 14
MAX_ASPECT = 1.78


def effective_input_size(height: int, width: int, input_size: int = 518) -> int:
    """The 1.78 aspect rule: very wide (or tall) frames get a smaller short side."""
    ratio = max(height, width) / min(height, width)
    if ratio > MAX_ASPECT:
        input_size = int(input_size * 1.777 / ratio)
        input_size = round(input_size / PATCH) * PATCH  # Python round: half to even, as published
    return input_size


def _lower_bound_side(x: float, minimum: int) -> int:
    y = int(np.round(x / PATCH) * PATCH)  # numpy round: half to even
    return y if y >= minimum else int(math.ceil(x / PATCH) * PATCH)


def model_input_shape(height: int, width: int, input_size: int = 518) -> tuple[int, int]:
    """(H, W) the network sees: keep aspect, short side >= input_size, both multiples of 14."""
    size = effective_input_size(height, width, input_size)
    scale = max(size / height, size / width)  # the larger scale: the short side reaches `size`
    return _lower_bound_side(scale * height, size), _lower_bound_side(scale * width, size)


class Preprocessor:
    """uint8 RGB frames (N, H, W, 3) -> normalised (N, 3, h, w) float32 on `device`, in one batch."""

    def __init__(self, height: int, width: int, input_size: int = 518, device="cpu"):
        self.frame_size = (height, width)
        self.shape = model_input_shape(height, width, input_size)
        self.device = torch.device(device)
        self.mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float64, device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(IMAGENET_STD, dtype=torch.float64, device=self.device).view(1, 3, 1, 1)

    def __call__(self, frames) -> torch.Tensor:
        x = torch.as_tensor(np.ascontiguousarray(frames) if isinstance(frames, np.ndarray) else frames)
        if x.ndim != 4 or x.shape[-1] != 3 or x.dtype != torch.uint8:
            raise ValueError(f"expected uint8 frames (N, H, W, 3), got {tuple(x.shape)} {x.dtype}")
        if tuple(x.shape[1:3]) != self.frame_size:
            raise ValueError(f"frame size {tuple(x.shape[1:3])} differs from the video's {self.frame_size}")
        x = x.to(self.device, non_blocking=True).permute(0, 3, 1, 2).float() / 255.0
        if tuple(x.shape[-2:]) != self.shape:
            x = F.interpolate(x, size=self.shape, mode="bicubic", align_corners=False)  # no clipping, as cv2
        # Normalise in float64 like the published numpy code (list constants promote), then float32.
        return ((x.double() - self.mean) / self.std).float()
