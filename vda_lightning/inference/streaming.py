"""The published online mode (`video_depth_stream.py`, `run_streaming.py`): one frame at a time with cached
temporal-attention states.

Per frame the encoder and head run on that frame only; the head's 8 attention blocks attend over the
cached pre-PE states of 31 earlier frames plus the new one. The cache list is bounded at 42 entries
(frame 0 and the 41 most recent), so memory is constant; the context of frame t is
[frame 0, frame t-41, frames t-29 .. t-1, t] (early slots repeat frame 0). No alignment, no cross-fade.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from ..devices import autocast, resolve_device
from ..models.input_contract import DEFAULT_INPUT_SIZE
from .preprocess import Preprocessor
from .runtime import Download, stage_frames, to_frame_size

CONTEXT = 32  # positions attended per step, the PE table length
MAX_CACHE = 42  # frame 0 + the 41 most recent frames
RECENT = 29  # consecutive predecessors in the context


@dataclass
class FrameRead:
    index: int  # frame number in the stream (0 starts a new stream)
    prep: Preprocessor
    batch: torch.Tensor  # the frame staged for the device (`stage_frames`)
    prepared: bool


class StreamingRunner:
    """One frame in, one depth map out. Stages as in OfflineRunner (`reads`, `compute`, `finish`: pipeline.py
    runs them in three threads); `step(frame)` and `run(frames)` chain them in one.

    `model`: a VideoDepthAnything, or any backend with its `forward_step` and `config` (deploy/ort_backend.py)."""

    max_read = 1
    held_back = 0

    def __init__(self, model, input_size: int = DEFAULT_INPUT_SIZE, device="cpu", precision: str = "fp32"):
        self.device = resolve_device(device)
        self.model = model.to(self.device)  # in place, like nn.Module.to: the caller's model moves too
        self.contract = model.config.input_contract()  # the model's patch (14; 16 for DINOv3) sizes the input
        self.input_size = input_size
        self.precision = precision
        self.reset()

    def reset(self):
        self._prep = None
        self._cache: list[list[torch.Tensor]] = []  # per frame: 8 states (h'w', 1, C)
        self.frame_id = 0

    def _context(self) -> list[torch.Tensor]:
        entries = self._cache[:2] + self._cache[-RECENT:]
        return [torch.cat([e[i] for e in entries], dim=1) for i in range(len(entries[0]))]

    def _read(self, index: int, prep: Preprocessor, frame: np.ndarray) -> FrameRead:
        return FrameRead(index, prep, *stage_frames(prep, [frame]))

    def reads(self, frames: Iterable[np.ndarray]) -> Iterator[FrameRead]:
        """Each frame staged; the transform is fixed by the first frame for the whole stream."""
        prep, n = None, 0
        for frame in frames:
            if prep is None:
                prep = Preprocessor(*frame.shape[:2], input_size=self.input_size, device=self.device,
                                    contract=self.contract)
            yield self._read(n, prep, frame)
            n += 1
        if n == 0:
            raise ValueError("the video has no frames")

    @torch.inference_mode()
    def compute(self, read: FrameRead) -> Download:
        if read.index == 0:
            self._cache, self.frame_id = [], 0
        x = read.batch if read.prepared else read.prep(read.batch)
        h, w = read.prep.shape
        cached = self._context() if self._cache else None
        with autocast(self.device, self.precision):
            depth, states = self.model.forward_step(x, h, w, cached)
        if not self._cache:
            self._cache = [states] * CONTEXT  # references, not copies
        else:
            self._cache.append(states)
            if self.frame_id + CONTEXT > MAX_CACHE:
                del self._cache[1]
        self.frame_id += 1
        return Download(to_frame_size(depth[0], read.prep.frame_size)[0])

    def finish(self, result: Download) -> list[np.ndarray]:
        return [result.numpy()]

    def step(self, frame: np.ndarray) -> np.ndarray:
        """One uint8 RGB (H, W, 3) frame -> float32 (H, W) depth at the frame's size."""
        if self._prep is None:  # the transform is fixed by the first frame for the whole stream
            self._prep = Preprocessor(*frame.shape[:2], input_size=self.input_size, device=self.device,
                                      contract=self.contract)
        return self.finish(self.compute(self._read(self.frame_id, self._prep, frame)))[0]

    def run(self, frames: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        self.reset()
        for read in self.reads(frames):
            yield from self.finish(self.compute(read))
