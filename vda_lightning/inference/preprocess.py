"""The published pre-processing (`video_depth.py` with `util/transform.py`), batched with torch on the device.

The rules (aspect rule, lower-bound multiple-of-14 resize, ImageNet normalisation) are the model's input contract
(`vda_lightning.models.input_contract`); this applies them to whole windows at once. torch's bicubic (a = -0.75,
align_corners False, no antialias) on a float [0, 1] image matches cv2.INTER_CUBIC to ~1e-5 (field notes).
"""
from __future__ import annotations

import numpy as np
import torch

from ..models.input_contract import DEFAULT_CONTRACT, DEFAULT_INPUT_SIZE, InputContract


class Preprocessor:
    """uint8 RGB frames (N, H, W, 3) -> normalised (N, 3, h, w) float32 on `device`, in one batch."""

    def __init__(self, height: int, width: int, input_size: int = DEFAULT_INPUT_SIZE, device="cpu",
                 contract: InputContract = DEFAULT_CONTRACT, what: str = "frame"):
        self.frame_size = (height, width)
        self.contract = contract
        # FrameShapeError (one line naming `what`) for a frame whose resize would leave a side under one patch
        self.shape = contract.checked_network_size(height, width, input_size, video=True, what=what)
        self.device = torch.device(device)

    def __call__(self, frames) -> torch.Tensor:
        x = torch.as_tensor(np.ascontiguousarray(frames) if isinstance(frames, np.ndarray) else frames)
        if x.ndim != 4 or x.shape[-1] != 3 or x.dtype != torch.uint8:
            raise ValueError(f"expected uint8 frames (N, H, W, 3), got {tuple(x.shape)} {x.dtype}")
        if tuple(x.shape[1:3]) != self.frame_size:
            raise ValueError(f"frame size {tuple(x.shape[1:3])} differs from the video's {self.frame_size}")
        x = x.to(self.device, non_blocking=True).permute(0, 3, 1, 2).float() / 255.0  # float32, as published
        x = self.contract.resize(x, self.shape)  # no clipping, as cv2
        # Normalise in float64 like the published numpy code (list constants promote), then float32.
        return self.contract.normalize(x, compute_dtype=torch.float64)
