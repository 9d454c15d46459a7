"""A plain re-statement of the published long-video loop (`video_depth.py::infer_video_depth`), for benchmarks
and cross-checks.

Deliberately unoptimised, like the original: every frame is held in memory, each window's 32 frames are
transformed one by one on the host (cv2) and encoded in full (no feature reuse), all raw maps are kept
until the end and the result is one big stack.
"""
from __future__ import annotations

import numpy as np
import torch

from ..devices import autocast, resolve_device
from ..models.input_contract import DEFAULT_CONTRACT, DEFAULT_INPUT_SIZE
from .runtime import to_frame_size
from .windows import INFER_LEN, INTERP_LEN, KEYFRAMES, OVERLAP, STRIDE, least_squares_scale_shift


def _transform(frame: np.ndarray, shape) -> np.ndarray:
    return DEFAULT_CONTRACT.prepare_image(frame.astype(np.float32) / 255.0, shape)  # on the host, as published


@torch.inference_mode()
def published_loop(model, frames, input_size: int = DEFAULT_INPUT_SIZE, device="cpu",
                   precision: str = "fp32") -> np.ndarray:
    device = resolve_device(device)
    frames = list(frames)  # the published code holds the whole video
    length = len(frames)
    if length == 0:
        raise ValueError("the video has no frames")
    frame_size = frames[0].shape[:2]
    shape = DEFAULT_CONTRACT.checked_network_size(*frame_size, input_size, video=True)
    pad = (STRIDE - length % STRIDE) % STRIDE + OVERLAP
    padded = frames + [frames[-1]] * pad
    raw_list: list[np.ndarray] = []
    previous = None
    for start in range(0, length, STRIDE):
        batch = torch.from_numpy(np.stack([_transform(f, shape) for f in padded[start : start + INFER_LEN]]))
        batch = batch.unsqueeze(0).to(device)
        if previous is not None:
            batch[:, :OVERLAP] = previous[:, list(KEYFRAMES)]
        with autocast(device, precision):
            depth = model(batch)
        raw_list += list(to_frame_size(depth[0], frame_size).cpu().numpy())
        previous = batch
    return _stitch(raw_list, length, metric=bool(getattr(model.config, "metric", False)))


def _stitch(raw_list, length: int, metric: bool) -> np.ndarray:
    """The published stitching loop verbatim: a second, list-based statement of the stitching (the streaming
    Stitcher is checked against it)."""
    aligned = list(raw_list[:INFER_LEN])
    ref = [raw_list[0], raw_list[12]]
    for k in range(1, len(raw_list) // INFER_LEN):
        cur = raw_list[INFER_LEN * k : INFER_LEN * (k + 1)]
        if metric:
            s, t = np.float32(1.0), np.float32(0.0)
        else:
            s, t = least_squares_scale_shift(np.concatenate(cur[:2]), np.concatenate(ref))
        for j in range(INTERP_LEN):
            new = np.maximum(s * cur[2 + j] + t, np.float32(0))
            w = j / (INTERP_LEN - 1)
            aligned[-INTERP_LEN + j] = (1 - w) * aligned[-INTERP_LEN + j] + w * new
        for j in range(OVERLAP, INFER_LEN):
            aligned.append(np.maximum(s * cur[j] + t, np.float32(0)))
        ref = [ref[0], np.maximum(s * cur[12] + t, np.float32(0))]
    return np.stack(aligned[:length])
