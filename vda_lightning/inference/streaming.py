"""The published online mode (`video_depth_stream.py`, `run_streaming.py`): one frame at a time with cached
temporal-attention states.

The head's 8 attention blocks let frame t attend over 31 earlier frames plus itself. The published cache list is
bounded at 42 entries (frame 0 and the 41 most recent), so memory is constant; the context of frame t is
[frame 0, frame t-41, frames t-29 .. t-1, t] (early slots repeat frame 0). No alignment, no cross-fade.

The published loop runs encoder and head on one frame at a time and re-projects the 31 cached states in every
step. With a PyTorch model this runner reads up to `read_ahead` frames of a file, encodes them in one batch and
runs the head on them in one batch too: the cache holds each frame's projected keys and values
(`models/temporal.KeyValue`), and each frame of the batch attends to exactly the slots the published loop would
give it (its earlier batch-mates included), so the maps are the one-frame-at-a-time maps to float rounding
(~1e-6 relative) while every layer works on a batch (issue 28: per-frame calls made streaming cost ~1.4-2.5x the
offline mode per frame at small inputs). An exported graph (deploy/ort_backend.py) takes the published step:
one frame and the pre-PE states.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from ..devices import autocast, resolve_device
from ..models.input_contract import DEFAULT_INPUT_SIZE
from ..models.temporal import EMPTY_CONTEXT, KeyValue, TemporalAttention
from .preprocess import Preprocessor
from .runtime import Download, stage_frames, to_frame_size

CONTEXT = 32  # positions attended per step, the PE table length
MAX_CACHE = 42  # frame 0 + the 41 most recent frames
RECENT = 29  # consecutive predecessors in the context


def cache_context(cache: list) -> list:
    """The cached entries frame t attends to besides itself: the list's first two and its RECENT last (published
    `video_depth_stream.py`); one place for the exported step and the batched head's frame numbers."""
    return cache[:2] + cache[-RECENT:]


def cache_push(cache: list, entry, t: int) -> None:
    """Frame t's entry joins the cache list; once t + CONTEXT passes MAX_CACHE the entry after frame 0's leaves, so
    the list stays at 42 (published `video_depth_stream.py`)."""
    cache.append(entry)
    if t + CONTEXT > MAX_CACHE:
        del cache[1]


READ_AHEAD = 8  # frames of a file run through the model in one batch on the CPU (module docstring)


@dataclass
class FrameRead:
    index: int  # frame number of the first frame in the stream (0 starts a new stream)
    prep: Preprocessor
    batch: torch.Tensor  # the frames staged for the device (`stage_frames`), at most `max_read`
    prepared: bool


def default_read_ahead(model, device) -> int:
    """READ_AHEAD for a PyTorch model on the CPU, where a batch of one leaves every layer's work small and the
    per-call cost dominates (issue 28), else 1 (an exported graph takes one frame; on a GPU a frame is shown as
    soon as it is read)."""
    return READ_AHEAD if isinstance(model, torch.nn.Module) and torch.device(device).type == "cpu" else 1


class StreamingRunner:
    """One frame in, one depth map out. Stages as in OfflineRunner (`reads`, `compute`, `finish`: pipeline.py
    runs them in three threads); `step(frame)` and `run(frames)` chain them in one.

    `model`: a VideoDepthAnything, or any backend with its `forward_step` and `config` (deploy/ort_backend.py).
    `read_ahead`: frames of an iterable that `reads` groups so that encoder and head see them in one batch (1:
    frame by frame, as `step`; `make_runner` passes `default_read_ahead`); the maps are those of one frame at a
    time (module docstring) and come out in order. `step` is always one frame."""

    held_back = 0

    def __init__(self, model, input_size: int = DEFAULT_INPUT_SIZE, device="cpu", precision: str = "fp32",
                 read_ahead: int = 1):
        self.device = resolve_device(device)
        self.max_read = max(1, int(read_ahead))
        self.model = model.to(self.device)  # in place, like nn.Module.to: the caller's model moves too
        self.contract = model.config.input_contract()  # the model's patch (14; 16 for DINOv3) sizes the input
        self.input_size = input_size
        self.precision = precision
        # A PyTorch model caches each frame's projected keys and values (models/temporal.KeyValue: one frame
        # projected per step instead of 32); an exported graph takes and returns the published pre-PE states.
        self.project_cache = isinstance(model, torch.nn.Module)
        self._blocks = sum(isinstance(m, TemporalAttention) for m in model.modules()) if self.project_cache else 0
        self.reset()

    def reset(self):
        self._prep = None
        self._cache: list[list] = []  # exported graphs: per frame its 8 pre-PE states (h'w', 1, C)
        self._ids: list[int] = []  # PyTorch: the published cache list, as frame numbers (<= 42)
        self._kv: dict[int, list[KeyValue]] = {}  # PyTorch: frame number -> its 8 blocks' KeyValue
        self.frame_id = 0

    @property
    def cached_frames(self) -> int:
        """Entries of the published cache list held now (bounded: frame 0 and the 41 most recent)."""
        return len(self._ids) if self.project_cache else len(self._cache)

    def _context(self) -> list[torch.Tensor]:
        entries = cache_context(self._cache)
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
            self._cache, self._ids, self._kv, self.frame_id = [], [], {}, 0
        x = read.batch if read.prepared else read.prep(read.batch)
        h, w = read.prep.shape
        if not self.project_cache:  # an exported graph: one published step per frame
            return [self._head_step(lambda cached, j=j: self.model.forward_step(x[j : j + 1], h, w, cached), read)
                    for j in range(len(x))]
        with autocast(self.device, self.precision):  # the encoder sees the group at once; it has no state
            features = self.model.forward_features(x)
        first = 1 if self.frame_id == 0 else 0  # the stream's first frame attends to itself alone
        out = self._head_group(features, 0, 1, h, w, read) if first else []
        return out + (self._head_group(features, first, len(x), h, w, read) if first < len(x) else [])

    def _head_group(self, features, a: int, b: int, h: int, w: int, read: FrameRead) -> list[Download]:
        """Frames a..b-1 of `features` through the head in one batch, each attending to the context the published
        loop gives it (module docstring): the cache list is played forward over the group as frame numbers, and
        `KeyValue.index` tells each frame which rows are its slots."""
        t0, n = self.frame_id, b - a
        if t0 == 0:
            cached, ids = [EMPTY_CONTEXT] * self._blocks, [0] * CONTEXT  # frame 0 stands in for 32 frames
        else:
            ids, contexts = list(self._ids), []
            for t in range(t0, t0 + n):
                contexts.append(cache_context(ids) + [t])
                cache_push(ids, t, t)
            old = sorted({i for ctx in contexts for i in ctx if i < t0})
            row = {i: r for r, i in enumerate(old)} | {t0 + j: len(old) + j for j in range(n)}
            index = torch.tensor([[row[i] for i in ctx] for ctx in contexts], device=self.device)
            cached = [KeyValue(torch.cat([self._kv[i][k].key for i in old], dim=1),
                               torch.cat([self._kv[i][k].value for i in old], dim=1), index)
                      for k in range(self._blocks)]
        with autocast(self.device, self.precision):
            depth, states = self.model.forward_depth([(t[a:b], c[a:b]) for t, c in features], h, w, 1, n, cached)
        for j in range(n):
            self._kv[t0 + j] = [KeyValue(s.key[:, j : j + 1], s.value[:, j : j + 1]) for s in states]
        self._ids = ids
        self._kv = {i: self._kv[i] for i in set(ids)}
        self.frame_id += n
        maps = to_frame_size(depth[0], read.prep.frame_size)
        return [Download(maps[j]) for j in range(n)]

    def _head_step(self, run, read: FrameRead) -> Download:
        """One frame through `run(cached states)`, its states cached (published `video_depth_stream.py`)."""
        cached = self._context() if self._cache else None
        with autocast(self.device, self.precision):
            depth, states = run(cached)
        if not self._cache:
            self._cache = [states] * CONTEXT  # references, not copies
        else:
            cache_push(self._cache, states, self.frame_id)
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
