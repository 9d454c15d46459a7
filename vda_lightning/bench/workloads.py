"""What the benchmarks run on: a random-weight video model whose temporal layers do work, a training batch in the
DataModule's layout from procedural scenes, Lightning's own precision context, and a device sync before a clock
is read. The numerical checks of precisions (bars, comparisons) are test code: tests/helpers/checks.py."""
from __future__ import annotations

import contextlib

import numpy as np
import torch


def sync(device) -> None:
    """Wait for the device's queued work (a CUDA clock read without it times the launch, not the work)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def precision_context(precision: str, device):
    """Lightning's own precision plugin context for `precision` ("32-true", "bf16-mixed", "16-mixed")."""
    if precision == "32-true":
        return contextlib.nullcontext()
    from lightning.pytorch.plugins.precision import MixedPrecision

    return MixedPrecision(precision, device=torch.device(device).type).forward_context()


def synthetic_train_batch(clips: int, frames: int, images: int, size: int, device, seed: int = 0) -> dict:
    """A training batch in the DataModule's layout from procedural scenes (exact depth): {"video", "image"}."""
    import cv2

    from ..data.transforms import depth_to_target
    from ..scenes import render_clip

    small = min(size, 56)

    def clip(i, length):
        c = render_clip([seed, i], length, small, small)
        up = (lambda a, interp: a if small == size else
              np.stack([cv2.resize(f, (size, size), interpolation=interp) for f in a]))
        rgb = torch.from_numpy(up(c["frames"], cv2.INTER_LINEAR)).permute(0, 3, 1, 2).float() / 255
        depth = torch.from_numpy(up(c["depth"].astype(np.float32), cv2.INTER_NEAREST))
        mask = torch.from_numpy(up(c["mask"].astype(np.uint8), cv2.INTER_NEAREST) > 0)
        disp, _, valid = depth_to_target(depth, mask, "metric_depth")
        return rgb, disp, valid

    batch = {}
    for part, n, length in (("video", clips, frames), ("image", images, 1)):
        if n:
            parts = [clip(1000 * (part == "image") + i, length) for i in range(n)]
            batch[part] = {k: torch.stack([p[j] for p in parts]).to(device)
                           for j, k in enumerate(("frames", "disparity", "mask"))}
    return batch


def perturbed_model(encoder: str, seed: int = 0):
    """A random-weight video model whose temporal layers are active (fresh ones are exact identities)."""
    from ..models import build_video_model

    torch.manual_seed(seed)
    model = build_video_model(encoder).eval()
    with torch.no_grad():
        for m in model.head.motion_modules:
            torch.nn.init.normal_(m.temporal_transformer.proj_out.weight, std=0.02)
    return model
