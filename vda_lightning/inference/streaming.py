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


READ_AHEAD = 8  # frames of a file encoded in one batch on the CPU (module docstring)


@dataclass
class FrameRead:
    index: int  # frame number of the first frame in the stream (0 starts a new stream)
    prep: Preprocessor
    batch: torch.Tensor  # the frames staged for the device (`stage_frames`), at most `max_read`
    prepared: bool


def default_read_ahead(model, device) -> int:
    """READ_AHEAD for a PyTorch model on the CPU, where a batch of one leaves the encoder's matrix products small
    (issue 28: the encoder was half of a streamed frame's cost), else 1 (an exported graph takes one frame)."""
    return READ_AHEAD if isinstance(model, torch.nn.Module) and torch.device(device).type == "cpu" else 1


class StreamingRunner:
    """One frame in, one depth map out. Stages as in OfflineRunner (`reads`, `compute`, `finish`: pipeline.py
    runs them in three threads); `step(frame)` and `run(frames)` chain them in one.

    `model`: a VideoDepthAnything, or any backend with its `forward_step` and `config` (deploy/ort_backend.py).
    `read_ahead`: frames of an iterable that `reads` groups so that the encoder sees them in one batch (1: frame
    by frame, bit-identical to `step`; `make_runner` passes `default_read_ahead`); the head still runs frame by
    frame on the cached states, so the maps are those of one frame at a time (to float rounding: the batched
    encoder sums in another order, ~1e-6) and come out in order. `step` is always one frame."""

    held_back = 0

    def __init__(self, model, input_size: int = DEFAULT_INPUT_SIZE, device="cpu", precision: str = "fp32",
                 read_ahead: int = 1):
        self.device = resolve_device(device)
        self.max_read = max(1, int(read_ahead))
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

    def _read(self, index: int, prep: Preprocessor, frames: list[np.ndarray]) -> FrameRead:
        return FrameRead(index, prep, *stage_frames(prep, frames))

    def reads(self, frames: Iterable[np.ndarray]) -> Iterator[FrameRead]:
        """Groups of up to `max_read` frames, staged; the transform is fixed by the first frame for the whole
        stream."""
        prep, n, group = None, 0, []
        for frame in frames:
            if prep is None:
                prep = Preprocessor(*frame.shape[:2], input_size=self.input_size, device=self.device,
                                    contract=self.contract)
            group.append(frame)
            if len(group) == self.max_read:
                yield self._read(n, prep, group)
                n, group = n + len(group), []
        if group:
            yield self._read(n, prep, group)
            n += len(group)
        if n == 0:
            raise ValueError("the video has no frames")

    @torch.inference_mode()
    def compute(self, read: FrameRead) -> list[Download]:
        if read.index == 0:
            self._cache, self.frame_id = [], 0
        x = read.batch if read.prepared else read.prep(read.batch)
        h, w = read.prep.shape
        if len(x) == 1:
            return [self._head_step(lambda cached: self.model.forward_step(x, h, w, cached), read)]
        with autocast(self.device, self.precision):  # the encoder sees the group at once; it has no state
            features = self.model.forward_features(x)
        return [self._head_step(lambda cached, j=j: self.model.forward_depth(
            [(t[j : j + 1], c[j : j + 1]) for t, c in features], h, w, 1, 1, cached), read) for j in range(len(x))]

    def _head_step(self, run, read: FrameRead) -> Download:
        """One frame through `run(cached states)`, its states cached (published `video_depth_stream.py`)."""
        cached = self._context() if self._cache else None
        with autocast(self.device, self.precision):
            depth, states = run(cached)
        if not self._cache:
            self._cache = [states] * CONTEXT  # references, not copies
        else:
            self._cache.append(states)
            if self.frame_id + CONTEXT > MAX_CACHE:
                del self._cache[1]
        self.frame_id += 1
        return Download(to_frame_size(depth[0], read.prep.frame_size)[0])

    def finish(self, result: list[Download]) -> list[np.ndarray]:
        return [d.numpy() for d in result]

    def step(self, frame: np.ndarray) -> np.ndarray:
        """One uint8 RGB (H, W, 3) frame -> float32 (H, W) depth at the frame's size."""
        if self._prep is None:  # the transform is fixed by the first frame for the whole stream
            self._prep = Preprocessor(*frame.shape[:2], input_size=self.input_size, device=self.device,
                                      contract=self.contract)
        return self.finish(self.compute(self._read(self.frame_id, self._prep, [frame])))[0]

    def run(self, frames: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        self.reset()
        for read in self.reads(frames):
            yield from self.finish(self.compute(read))
