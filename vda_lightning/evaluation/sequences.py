"""One benchmark sequence as the published evaluation (`eval.py`) reads it: GT PNGs, crops, prediction resize.

The prediction resize uses OpenCV's bilinear `cv2.resize` on float32, exactly as published: torch's bilinear
differs from it by ~2e-6 relative (field notes), which is enough to miss a 1e-6 parity bar.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from ..io import read_depth
from ..io.benchmark_json import BenchmarkError, Frame, Sequence
from ..io.benchmarks import BenchmarkSpec, TAESpec
from ..trust import display

if TYPE_CHECKING:
    from .predictions import PredictionSource

log = logging.getLogger(__name__)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def prediction_relpath(dataset: str, image: str) -> Path:
    """`<dataset>/<image path>` with the image suffix replaced by `.npy` (the published toolkit's layout)."""
    path = Path(dataset) / image
    return path.with_suffix(".npy") if path.suffix.lower() in IMAGE_SUFFIXES else path.with_name(path.name + ".npy")


def resize_to(pred: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    if pred.shape == tuple(shape):
        return pred
    return cv2.resize(pred, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)


def protocol_frame(pred: np.ndarray, gt: np.ndarray, crop: tuple[slice, slice], zero_value: float,
                   crop_prediction: bool) -> tuple[np.ndarray, np.ndarray]:
    """(prediction, ground truth) of one frame as the published scripts score it: GT zeros -> `zero_value`, GT
    cropped; the prediction cropped too when `crop_prediction` (TAE), then resized (cv2 bilinear) to the GT.
    Shared by `vda-eval` and the training loop's benchmark validation, so both score the same arrays."""
    gt = gt.copy()
    gt[gt == 0] = zero_value
    gt = gt[crop]
    if crop_prediction:
        pred = pred[crop]
    return resize_to(pred, gt.shape), gt


@dataclass
class SequenceArrays:
    pred: np.ndarray            # (T,h,w) float32 at the cropped GT size
    gt: np.ndarray              # (T,h,w) float64 metres
    frames: list[int]           # JSON indices of the frames kept
    missing: list[str] = field(default_factory=list)  # prediction files skipped (published behaviour)
    K: np.ndarray | None = None
    poses: np.ndarray | None = None


def _load_frames(sequence: Sequence, indices: range, source: PredictionSource, crop: tuple[slice, slice],
                 zero_value: float, crop_prediction: bool, what: str) -> SequenceArrays:
    preds, gts, kept, missing, shape0 = [], [], [], [], None
    for i in indices:
        frame: Frame = sequence.frames[i]
        pred = source.frame(sequence, i)
        if pred is None:  # published: a frame without a prediction file is skipped, not an error
            missing.append(str(prediction_relpath(sequence.dataset, frame.image)))
            continue
        gt_path = sequence.root / frame.gt_depth
        # metres in float64, as the published `cv2.imread(path, -1) / factor`; 0 where the sensor had nothing
        gt = read_depth(gt_path, frame.factor, dtype=np.float64, what="ground-truth depth",
                        min_int_bits=16)  # an 8-bit PNG would cap and quantise the metres silently
        if shape0 is None:
            shape0, first = gt.shape, gt_path
        elif gt.shape != shape0:
            raise BenchmarkError(f"{display(gt_path)}: depth is {gt.shape[0]}x{gt.shape[1]} but {display(first)} "
                                 f"(first frame of sequence {sequence.name!r}) is {shape0[0]}x{shape0[1]}")
        pred, gt = protocol_frame(pred, gt, crop, zero_value, crop_prediction)
        preds.append(pred)
        gts.append(gt)
        kept.append(i)
    if not kept:
        raise BenchmarkError(f"{display(sequence.json_path)}: sequence {sequence.name!r} has no prediction for any "
                             f"of its "
                             f"{len(indices)} {what} frames (first expected: {missing[0] if missing else '-'})")
    if missing:
        log.warning("%s/%s: %d prediction file(s) missing, frames skipped (published behaviour): %s",
                    sequence.dataset, sequence.name, len(missing), missing[0])
    return SequenceArrays(np.stack(preds), np.stack(gts), kept, missing)


def accuracy_arrays(sequence: Sequence, spec: BenchmarkSpec, source: PredictionSource) -> SequenceArrays:
    """Frames [0:max_eval_len] of the JSON list (then missing ones dropped); GT zeros → −1; prediction resized."""
    indices = range(min(len(sequence.frames), spec.max_eval_len))
    return _load_frames(sequence, indices, source, spec.crop_slices(), zero_value=-1.0, crop_prediction=False,
                        what="evaluated")


def tae_arrays(sequence: Sequence, spec: TAESpec, source: PredictionSource) -> SequenceArrays:
    """Frames [start:stop]; GT zeros stay 0; prediction cropped like the GT (then resized only if needed)."""
    start, stop = spec.frame_range
    indices = range(len(sequence.frames))[start:stop]
    arrays = _load_frames(sequence, indices, source, spec.crop_slices(), zero_value=0.0, crop_prediction=True,
                          what="TAE")
    Ks = [np.asarray(sequence.frames[i].K, dtype=np.float64) for i in arrays.frames]
    if len({K.shape for K in Ks}) > 1:  # the index's schema allows 3x3 or 4x4, but one sequence keeps one
        raise BenchmarkError(f"{display(sequence.json_path)}: sequence {sequence.name!r}: its frames' K mix shapes "
                             f"{sorted({K.shape for K in Ks})}; give every frame the same")
    arrays.K = np.stack(Ks)
    arrays.poses = np.array([sequence.frames[i].pose for i in arrays.frames], dtype=np.float64)
    if arrays.K.shape[1:] not in ((3, 3), (4, 4)) or arrays.poses.shape[1:] != (4, 4):
        raise BenchmarkError(f"{display(sequence.json_path)}: sequence {sequence.name!r}: K must be 3x3 or 4x4 and "
                             f"pose 4x4, got {arrays.K.shape[1:]} and {arrays.poses.shape[1:]}")
    _check_geometry(sequence, arrays)
    return arrays


def _check_geometry(sequence: Sequence, arrays: SequenceArrays) -> None:
    """TAE inverts every pose and divides by fx, fy: a NaN/Inf, a singular pose or a zero focal length is one line
    naming the JSON, the sequence and the frame, before any metric is computed."""
    for j, i in enumerate(arrays.frames):
        where = f"{display(sequence.json_path)}: sequence {sequence.name!r}, frame {i} ({sequence.frames[i].image})"
        pose, K = arrays.poses[j], arrays.K[j]
        if not (np.isfinite(pose).all() and np.isfinite(K).all()):
            raise BenchmarkError(f"{where}: K or pose holds NaN/Inf")
        if np.linalg.cond(pose) > 1e12:
            raise BenchmarkError(f"{where}: the pose is singular (not invertible); TAE needs camera-to-world poses")
        if K[0, 0] == 0 or K[1, 1] == 0:
            raise BenchmarkError(f"{where}: K has a zero focal length")


# -- units under --alignment none ---------------------------------------------------------------------------------

UNIT_RATIO_LIMIT = 20.0        # a metric model off by more than x20 from the ground truth is not in metres
UNITS = (("centimetres", 100.0), ("millimetres", 1000.0))
_MEDIAN_SAMPLE = 1 << 20       # valid pixels the median is taken over (every k-th one beyond that)


def prediction_scale(arrays: SequenceArrays, max_depth: float, prediction_kind: str) -> float | None:
    """The median over the sequence's valid ground-truth pixels (the protocol's (1e-3, max_depth)) of predicted
    depth / ground-truth depth; a disparity prediction is inverted first as the protocol does (1 / max(d, 1e-3)),
    a depth one floored at 1e-3. None when no pixel is valid (the metrics refuse that sequence themselves)."""
    valid = (arrays.gt > 1e-3) & (arrays.gt < max_depth)
    if not valid.any():
        return None
    pred = np.maximum(arrays.pred[valid].astype(np.float64), 1e-3)
    gt = arrays.gt[valid]
    step = max(1, pred.size // _MEDIAN_SAMPLE)
    depth = 1.0 / pred[::step] if prediction_kind == "disparity" else pred[::step]
    return float(np.median(depth / gt[::step]))


def unit_warning(sequence: Sequence, arrays: SequenceArrays, max_depth: float, prediction_kind: str) -> str | None:
    """One line when predictions scored as metres (`--alignment none`) are implausibly scaled, else None.

    The rule: r = `prediction_scale` (median of predicted / true depth over the sequence's valid pixels). A metric
    model in metres gives r near 1 (a poor one within a few times); r outside [1/20, 20] is a unit error, not a
    model error. r >= 20 names the likely unit by the nearest factor on a log scale: r < 316 (the geometric middle
    of 100 and 1000) centimetres, else millimetres. r <= 1/20 says "not depth in metres" (disparity scored as
    depth, a normalised or inverse depth). The scores are still computed: only the line warns that they assume
    metres. Not checked under `scale` / `scale_shift`, whose fit removes the unit.
    """
    r = prediction_scale(arrays, max_depth, prediction_kind)
    if r is None or 1 / UNIT_RATIO_LIMIT < r < UNIT_RATIO_LIMIT:
        return None
    where = f"{display(sequence.json_path)}: sequence {sequence.name!r}"
    said = f"predictions are a median {r:.3g}x the ground-truth depth under --alignment none (scored as metres)"
    if r >= UNIT_RATIO_LIMIT:
        unit, factor = UNITS[0] if r < np.sqrt(UNITS[0][1] * UNITS[1][1]) else UNITS[1]
        cause = f"likely {unit}, not metres (divide by {factor:g}, or use --alignment scale)"
    else:
        cause = ("likely not depth in metres (disparity, inverse or normalised depth? check --prediction-kind, or "
                 "use --alignment scale_shift)")
    return f"warning: {where}: {said}: {cause}"
