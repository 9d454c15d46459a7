"""Streaming execution of the published offline long-video inference (published `video_depth.py::infer_video_depth`).

Frames are pulled lazily from any iterable, pre-processed in batches on the device, and each depth
map is yielded as soon as the stitching makes it final. `vda infer` runs the runner's three stages (read,
compute, finish) in three threads (pipeline.py), so decoding and stitching overlap the device's work.
Between windows only the encoder features of the 10 carried-over slots, one frame's features for padding
and the stitcher's 10 maps are kept, so memory does not grow with the video's length. The encoder works
frame by frame, so reusing the carried slots' features gives the same output as re-encoding them (up to
float rounding of batched GEMMs).
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice

import numpy as np
import torch

from ..devices import autocast, resolve_device
from ..models.input_contract import DEFAULT_INPUT_SIZE
from .preprocess import Preprocessor
from .runtime import Download, stage_frames, to_frame_size
from .windows import INFER_LEN, INTERP_LEN, KEYFRAMES, OVERLAP, STRIDE, Stitcher


def _select(features, index):
    """Rows `index` (a list or slice) of every (tokens, cls) pair."""
    return [(tok[index], cls[index]) for tok, cls in features]


def _concat(*parts):
    return [tuple(torch.cat([p[i][j] for p in parts], dim=0) for j in range(2)) for i in range(len(parts[0]))]


def _repeat_last(features, count: int):
    return [(tok[-1:].expand(count, *tok.shape[1:]), cls[-1:].expand(count, *cls.shape[1:])) for tok, cls in features]


@dataclass
class WindowRead:
    """The frames window k adds (32 for the first window, 22 after), staged for the device (`stage_frames`)."""

    k: int
    prep: Preprocessor
    batch: torch.Tensor | None  # None when the window has no new frame (all padding)
    prepared: bool
    new: int  # frames in batch
    total: int  # frames read so far
    exhausted: bool  # the source ended during this read
    last: bool  # no window follows


@dataclass
class WindowResult:
    k: int
    raw: Download  # (32, H, W) float32 raw maps at the frames' size
    num_frames: int | None
    last: bool


class OfflineRunner:
    """`for depth in OfflineRunner(model).run(frames): ...` — float32 (H, W) maps in frame order.

    The work is three stages (pipeline.py runs them in three threads; `run` chains them in one):
    `reads(frames)` groups and stages the frames, `compute(read)` runs the model on one window,
    `finish(result)` stitches it and returns the maps that became final.
    """

    max_read = INFER_LEN  # most frames one read holds (pipeline.max_frames_in_flight)
    held_back = INTERP_LEN + OVERLAP  # frames the stitcher may hold between windows (+ padding slack)

    def __init__(self, model, input_size: int = DEFAULT_INPUT_SIZE, device="cpu", precision: str = "fp32"):
        self.device = resolve_device(device)
        self.model = model.to(self.device)  # in place, like nn.Module.to: the caller's model moves too
        self.contract = model.config.input_contract()  # the model's patch (14; 16 for DINOv3) sizes the input
        self.input_size = input_size
        self.precision = precision
        self.metric = bool(getattr(model.config, "metric", False))
        self.windows_run = 0
        self.frames_encoded = 0  # encoder passes (frames), to show the reuse in benchmarks
        self._carried = None  # features of the previous window's slots KEYFRAMES
        self._last = None  # features of the last real frame seen, for padding
        self._stitcher = Stitcher(metric=self.metric)

    def reads(self, frames: Iterable[np.ndarray]) -> Iterator[WindowRead]:
        """32 frames, then 22 per window, staged; the last read says that no window follows."""
        it = iter(frames)
        prep, total, k = None, 0, 0
        while True:
            need = INFER_LEN if k == 0 else STRIDE
            new = list(islice(it, need))
            if k == 0:
                if not new:
                    raise ValueError("the video has no frames")
                prep = Preprocessor(*new[0].shape[:2], input_size=self.input_size, device=self.device,
                                    contract=self.contract)
            total += len(new)
            exhausted = len(new) < need
            last = exhausted and total <= STRIDE * (k + 1)
            batch, prepared = stage_frames(prep, new) if new else (None, False)
            yield WindowRead(k, prep, batch, prepared, len(new), total, exhausted, last)
            if last:
                return
            k += 1

    @torch.inference_mode()
    def compute(self, read: WindowRead) -> WindowResult:
        """Encoder on the new frames only (carried slots and padding reuse features), head on the 32 slots."""
        if read.k == 0:
            self._carried = self._last = None
        parts = [] if self._carried is None else [self._carried]
        if read.new:
            x = read.batch if read.prepared else read.prep(read.batch)
            with autocast(self.device, self.precision):
                feats = list(self.model.forward_features(x))
            self.frames_encoded += read.new
            self._last = _select(feats, slice(-1, None))
            parts.append(feats)
        need = INFER_LEN if read.k == 0 else STRIDE
        if need - read.new:  # padding: copies of the last frame have the last frame's features
            parts.append(_repeat_last(self._last, need - read.new))
        window = _concat(*parts) if len(parts) > 1 else parts[0]
        h, w = read.prep.shape
        real = (0 if read.k == 0 else OVERLAP) + read.new  # slots after these are padding: no map is read
        with autocast(self.device, self.precision):
            depth, _ = self.model.forward_depth(window, h, w, 1, INFER_LEN, outputs=real)
        self.windows_run += 1
        maps = to_frame_size(depth[0], read.prep.frame_size)
        if real < INFER_LEN:  # the stitcher takes 32 maps; the padding slots' are never emitted
            maps = torch.cat([maps, maps[-1:].expand(INFER_LEN - real, *maps.shape[1:])])
        raw = Download(maps)
        self._carried = _select(window, list(KEYFRAMES))
        return WindowResult(read.k, raw, read.total if read.exhausted else None, read.last)

    def finish(self, result: WindowResult) -> list[np.ndarray]:
        """Stitch one window (host only); returns the frames that became final, in order."""
        if result.k == 0:
            self._stitcher = Stitcher(metric=self.metric)
        return self._stitcher.add_window(result.raw.numpy(), num_frames=result.num_frames, last=result.last)

    def run(self, frames: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        for read in self.reads(frames):
            yield from self.finish(self.compute(read))


def infer_video_depth(model, frames: np.ndarray, input_size: int = DEFAULT_INPUT_SIZE, device="auto",
                      precision: str | None = None) -> np.ndarray:
    """In-memory convenience API: uint8 RGB (L, H, W, 3) -> float32 (L, H, W), built on OfflineRunner.

    device "auto": CUDA when available; precision None: fp16 on CUDA, fp32 elsewhere (`vda_lightning.infer_video`
    is the full API)."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (L, H, W, 3), got {frames.shape} {frames.dtype}")
    from .runners import make_runner

    out = np.empty(frames.shape[:3], dtype=np.float32)
    runner = make_runner(model, "offline", input_size, device, precision)
    n = 0
    for n, depth in enumerate(runner.run(iter(frames)), start=1):
        out[n - 1] = depth
    if n != len(frames):
        raise RuntimeError(f"runner produced {n} maps for {len(frames)} frames")
    return out


assert OVERLAP == len(KEYFRAMES)
