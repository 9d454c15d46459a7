"""Predictions from a model: the published benchmark inference (infer/infer.py), with save and resume.

Per sequence, every frame listed in the JSON is read with `cv2.imread` + BGR→RGB (true-colour files on disk give
true RGB; see `prepare.py` on the published extractors' R/B swap) and the whole list goes through the long-video
inference as one video — fp32, input size 518, no down-scaling — so context matches the published run even when
only the first `max_eval_len` frames are scored. Each frame's disparity is saved as float32 `.npy` in the
published layout; a sequence whose files all exist already is read back instead of recomputed (resume).
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np

from ..io import read_frames, read_npy, save_npy_atomic
from ..io.benchmark_json import BenchmarkError, Sequence
from .sequences import prediction_relpath

log = logging.getLogger(__name__)


def read_prediction(path: Path) -> np.ndarray:
    pred = read_npy(path, "prediction").astype(np.float32)
    if pred.ndim != 2:
        raise BenchmarkError(f"{path}: prediction must be an (H,W) array, got shape {pred.shape}")
    if not np.isfinite(pred).all():
        raise BenchmarkError(f"{path}: prediction contains NaN or inf")
    return pred


class PredictionSource(Protocol):
    def frame(self, sequence: Sequence, index: int) -> np.ndarray | None:
        """The (H,W) float32 disparity for frame `index` of `sequence`, or None if it does not exist."""


class NpyPredictions:
    """Per-frame `.npy` files laid out as the published toolkit writes them (`<root>/<dataset>/<image>.npy`)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        if not self.root.is_dir():
            raise BenchmarkError(f"{self.root}: predictions directory not found")

    def frame(self, sequence: Sequence, index: int) -> np.ndarray | None:
        path = self.root / prediction_relpath(sequence.dataset, sequence.frames[index].image)
        return read_prediction(path) if path.is_file() else None


def read_rgb_frames(sequence: Sequence) -> np.ndarray:
    """(L, H, W, 3) uint8 RGB of every frame the JSON lists, all of one size."""
    return np.stack(list(read_frames(sequence.root / frame.image for frame in sequence.frames)))


class ModelPredictions:
    """A `PredictionSource` that runs `infer_fn(model, frames, input_size=, device=, precision=)` per sequence.

    infer_fn defaults to `vda_lightning.inference.infer_video_depth` ((L,H,W,3) uint8 RGB → (L,H,W) float32).
    """

    def __init__(self, model, input_size: int = 518, device: str = "cpu", precision: str = "fp32",
                 save_dir: Path | None = None, infer_fn: Callable | None = None):
        self.model, self.input_size, self.device, self.precision = model, input_size, device, precision
        self.save_dir = None if save_dir is None else Path(save_dir)
        self.infer_fn = infer_fn
        self._key: tuple | None = None
        self._depths: list[np.ndarray] = []
        self.resumed = self.inferred = 0

    def frame(self, sequence: Sequence, index: int) -> np.ndarray | None:
        key = (str(sequence.json_path), sequence.name)
        if key != self._key:
            self._depths, self._key = self._predict(sequence), key
        return self._depths[index]

    def _saved_paths(self, sequence: Sequence) -> list[Path] | None:
        if self.save_dir is None:
            return None
        return [self.save_dir / prediction_relpath(sequence.dataset, f.image) for f in sequence.frames]

    def _predict(self, sequence: Sequence) -> list[np.ndarray]:
        paths = self._saved_paths(sequence)
        if paths and all(p.is_file() for p in paths):
            self.resumed += 1
            log.info("%s/%s: resumed from %d saved predictions", sequence.dataset, sequence.name, len(paths))
            return [read_prediction(p) for p in paths]
        frames = read_rgb_frames(sequence)
        infer = self.infer_fn
        if infer is None:
            from vda_lightning.inference import infer_video_depth as infer
        depths = np.asarray(infer(self.model, frames, input_size=self.input_size, device=self.device,
                                  precision=self.precision), dtype=np.float32)
        if depths.shape != frames.shape[:3]:
            raise RuntimeError(f"{sequence.name}: inference returned {depths.shape} for frames {frames.shape[:3]}")
        self.inferred += 1
        if paths:
            for path, depth in zip(paths, depths):
                save_npy_atomic(path, depth)
        return list(depths)
