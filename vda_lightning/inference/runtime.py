"""Small shared helpers of the runners: the finite-output check, output upsampling, host staging of frames (pinned
on CUDA) and non-blocking downloads. Device choice and autocast by precision: `vda_lightning/devices.py`."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


class NonFiniteDepthError(ValueError):
    """The network produced NaN or Inf depth (NaN/Inf weights, or an fp16 overflow): nothing is written."""


def check_finite(depth: torch.Tensor) -> torch.Tensor:
    """`depth`, or NonFiniteDepthError: every map a runner yields passes here, so no NaN/Inf reaches an output."""
    finite = torch.isfinite(depth)
    if not bool(finite.all()):
        bad = int((~finite).sum())
        raise NonFiniteDepthError(f"the model produced {bad} NaN/Inf depth values of {depth.numel()} (NaN/Inf "
                                  "weights, or an fp16 overflow: try --precision fp32)")
    return depth


def to_frame_size(depth: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(N, h, w) network output -> (N, H, W) float32 at the frame's size (bilinear, align_corners True), checked
    finite (`check_finite`): both runners' outputs pass through here."""
    depth = check_finite(depth.float())
    if tuple(depth.shape[-2:]) == tuple(size):
        return depth
    return F.interpolate(depth.unsqueeze(1), size=size, mode="bilinear", align_corners=True).squeeze(1)


def stage_frames(prep, frames) -> tuple[torch.Tensor, bool]:
    """A list of uint8 (H, W, 3) frames made ready for the device, off the device's critical path (the runners'
    reader thread): on CUDA stacked straight into pinned host memory, so that the upload can be non-blocking;
    on the CPU the pre-processing itself runs here. Returns (tensor, already pre-processed)."""
    if prep.device.type == "cuda":
        buf = torch.empty((len(frames), *frames[0].shape), dtype=torch.uint8, pin_memory=True)
        np.stack(frames, out=buf.numpy())
        return buf, False
    with torch.inference_mode():
        return prep(np.stack(frames)), True


class Download:
    """A device tensor on its way to the host. On CUDA the copy goes into pinned memory without blocking and
    `numpy()` waits for it (in the finisher thread); elsewhere it is the tensor itself."""

    def __init__(self, tensor: torch.Tensor):
        self._event = None
        if tensor.device.type == "cuda":
            self._host = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=True)
            self._host.copy_(tensor, non_blocking=True)
            self._event = torch.cuda.Event()
            self._event.record()
        else:
            self._host = tensor

    def numpy(self) -> np.ndarray:
        if self._event is not None:
            self._event.synchronize()
        return self._host.numpy()
