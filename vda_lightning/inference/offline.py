"""Streaming execution of the published offline long-video inference (published `video_depth.py::infer_video_depth`).

Frames are pulled lazily from any iterable, pre-processed in batches on the device, and each depth
map is yielded as soon as the stitching makes it final. Between windows only the encoder features of
the 10 carried-over slots, one frame's features for padding and the stitcher's 10 maps are kept, so
memory does not grow with the video's length. The encoder works frame by frame, so reusing the carried
slots' features gives the same output as re-encoding them (up to float rounding of batched GEMMs).
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice

import numpy as np
import torch

from .preprocess import Preprocessor
from .runtime import autocast, default_precision, resolve_device, to_frame_size
from .windows import INFER_LEN, KEYFRAMES, OVERLAP, STRIDE, Stitcher


def _select(features, index):
    """Rows `index` (a list or slice) of every (tokens, cls) pair."""
    return [(tok[index], cls[index]) for tok, cls in features]


def _concat(*parts):
    return [tuple(torch.cat([p[i][j] for p in parts], dim=0) for j in range(2)) for i in range(len(parts[0]))]


def _repeat_last(features, count: int):
    return [(tok[-1:].expand(count, *tok.shape[1:]), cls[-1:].expand(count, *cls.shape[1:])) for tok, cls in features]


class OfflineRunner:
    """`for depth in OfflineRunner(model).run(frames): ...` — float32 (H, W) maps in frame order."""

    def __init__(self, model, input_size: int = 518, device="cpu", precision: str = "fp32"):
        self.device = resolve_device(device)
        self.model = model.to(self.device)  # in place, like nn.Module.to: the caller's model moves too
        self.input_size = input_size
        self.precision = precision
        self.metric = bool(getattr(model.config, "metric", False))
        self.windows_run = 0
        self.frames_encoded = 0  # encoder passes (frames), to show the reuse in benchmarks

    @torch.inference_mode()
    def _encode(self, prep: Preprocessor, frames: list[np.ndarray]):
        x = prep(np.stack(frames))
        with autocast(self.device, self.precision):
            feats = self.model.forward_features(x)
        self.frames_encoded += len(frames)
        return list(feats)

    @torch.inference_mode()
    def _head(self, features, shape, frame_size) -> np.ndarray:
        with autocast(self.device, self.precision):
            depth, _ = self.model.forward_depth(features, shape[0], shape[1], 1, INFER_LEN)
        self.windows_run += 1
        return to_frame_size(depth[0], frame_size).cpu().numpy()

    def run(self, frames: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        it = iter(frames)
        stitcher = Stitcher(metric=self.metric)
        prep = None
        carried = None  # features of the previous window's slots KEYFRAMES
        last = None  # features of the last real frame seen, for padding
        total = 0
        k = 0
        while True:
            need = INFER_LEN if k == 0 else STRIDE
            new = list(islice(it, need))
            if k == 0:
                if not new:
                    raise ValueError("the video has no frames")
                prep = Preprocessor(*new[0].shape[:2], input_size=self.input_size, device=self.device)
            total += len(new)
            exhausted = len(new) < need
            is_last = exhausted and total <= STRIDE * (k + 1)
            parts = [] if carried is None else [carried]
            if new:
                feats = self._encode(prep, new)
                last = _select(feats, slice(-1, None))
                parts.append(feats)
            if need - len(new):  # padding: copies of the last frame have the last frame's features
                parts.append(_repeat_last(last, need - len(new)))
            window = _concat(*parts) if len(parts) > 1 else parts[0]
            raw = self._head(window, prep.shape, prep.frame_size)
            carried = _select(window, list(KEYFRAMES))
            yield from stitcher.add_window(raw, num_frames=total if exhausted else None, last=is_last)
            if is_last:
                return
            k += 1


def infer_video_depth(model, frames: np.ndarray, input_size: int = 518, device="auto",
                      precision: str | None = None) -> np.ndarray:
    """In-memory convenience API: uint8 RGB (L, H, W, 3) -> float32 (L, H, W), built on OfflineRunner.

    device "auto": CUDA when available; precision None: fp16 on CUDA, fp32 elsewhere (`vda_lightning.infer_video`
    is the full API)."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (L, H, W, 3), got {frames.shape} {frames.dtype}")
    out = np.empty(frames.shape[:3], dtype=np.float32)
    device = resolve_device(device)
    runner = OfflineRunner(model, input_size=input_size, device=device,
                           precision=precision or default_precision(device))
    n = 0
    for n, depth in enumerate(runner.run(iter(frames)), start=1):
        out[n - 1] = depth
    if n != len(frames):
        raise RuntimeError(f"runner produced {n} maps for {len(frames)} frames")
    return out


assert OVERLAP == len(KEYFRAMES)
