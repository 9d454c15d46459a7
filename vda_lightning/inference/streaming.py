"""The published online mode (`video_depth_stream.py`, `run_streaming.py`): one frame at a time with cached
temporal-attention states.

Per frame the encoder and head run on that frame only; the head's 8 attention blocks attend over the
cached pre-PE states of 31 earlier frames plus the new one. The cache list is bounded at 42 entries
(frame 0 and the 41 most recent), so memory is constant; the context of frame t is
[frame 0, frame t-41, frames t-29 .. t-1, t] (early slots repeat frame 0). No alignment, no cross-fade.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import torch

from .preprocess import Preprocessor
from .runtime import autocast, resolve_device, to_frame_size

CONTEXT = 32  # positions attended per step, the PE table length
MAX_CACHE = 42  # frame 0 + the 41 most recent frames
RECENT = 29  # consecutive predecessors in the context


class StreamingRunner:
    """`model`: a VideoDepthAnything, or any backend with its `forward_step` and `config` (deploy/ort_backend.py)."""

    def __init__(self, model, input_size: int = 518, device="cpu", precision: str = "fp32"):
        self.device = resolve_device(device)
        self.model = model.to(self.device)  # in place, like nn.Module.to: the caller's model moves too
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

    @torch.inference_mode()
    def step(self, frame: np.ndarray) -> np.ndarray:
        """One uint8 RGB (H, W, 3) frame -> float32 (H, W) depth at the frame's size."""
        if self._prep is None:  # the transform is fixed by the first frame for the whole stream
            self._prep = Preprocessor(*frame.shape[:2], input_size=self.input_size, device=self.device)
        x = self._prep(frame[None])
        h, w = self._prep.shape
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
        return to_frame_size(depth[0], self._prep.frame_size)[0].cpu().numpy()

    def run(self, frames: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        self.reset()
        for frame in frames:
            yield self.step(frame)
        if self.frame_id == 0:
            raise ValueError("the video has no frames")
