"""Drift of streaming and long-video predictions, as pure functions of one sequence (torch, float64).

The published protocol fits ONE alignment per sequence, so a prediction whose scale wanders over time pays for it
in AbsRel, but the number does not say whether the error is drift or per-frame inaccuracy. Two views separate them
(the diagnostics long-video papers report beside TAE; not part of the published VDA scripts):

* frame-aligned vs sequence-aligned AbsRel: the same alignment (`functional.align_to_ground_truth`) fitted per
  frame instead of per sequence. Per-frame fits absorb any drift of scale/shift, so
  `sequence-aligned − frame-aligned` is the AbsRel that the sequence's inconsistency costs (≈ 0 for a
  temporally consistent prediction, whatever its per-frame accuracy).
* AbsRel by time bucket: the sequence-aligned per-frame AbsRel averaged over the first and the last quarter of the
  frames (⌈T/4⌉ each, frames without a valid pixel left out as the protocol does): a streaming model that drifts
  gets worse towards the end.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from .functional import align_to_ground_truth, per_frame_depth_errors, valid_depth_mask

DRIFT_KEYS = ("abs_rel_sequence_aligned", "abs_rel_frame_aligned", "abs_rel_first_quarter", "abs_rel_last_quarter")


def frame_aligned_abs_rel(pred: Tensor, gt_depth: Tensor, max_depth: float, alignment: str = "scale_shift",
                          prediction_kind: str | None = None) -> Tensor:
    """Per-frame AbsRel (frames with a valid pixel) of `pred` (T,H,W) with the alignment fitted on each frame."""
    values = []
    for frame_pred, frame_gt in zip(pred, gt_depth):
        if not bool(valid_depth_mask(frame_gt, max_depth).any()):
            continue
        depth, mask = align_to_ground_truth(frame_pred[None], frame_gt[None], max_depth, None, alignment,
                                            prediction_kind)
        values.append(per_frame_depth_errors(depth, frame_gt[None], mask)["abs_rel"])
    return torch.cat(values) if values else torch.empty(0, dtype=torch.float64)


def quarter_means(per_frame: Tensor) -> tuple[float, float]:
    """(mean of the first ⌈T/4⌉ values, mean of the last ⌈T/4⌉ values) of a (T,) series."""
    if per_frame.numel() == 0:
        return float("nan"), float("nan")
    k = math.ceil(per_frame.numel() / 4)
    return float(per_frame[:k].mean()), float(per_frame[-k:].mean())


def sequence_drift(pred: Tensor, gt_depth: Tensor, max_depth: float, alignment: str = "scale_shift",
                   prediction_kind: str | None = None) -> dict[str, float]:
    """One sequence's drift view: {DRIFT_KEYS} (module docstring); pred at the GT resolution, as for
    `functional.sequence_depth_metrics` (whose AbsRel `abs_rel_sequence_aligned` equals)."""
    depth, mask = align_to_ground_truth(pred, gt_depth, max_depth, None, alignment, prediction_kind)
    per_frame = per_frame_depth_errors(depth, gt_depth, mask)["abs_rel"]
    first, last = quarter_means(per_frame)
    framewise = frame_aligned_abs_rel(pred, gt_depth, max_depth, alignment, prediction_kind)
    return {"abs_rel_sequence_aligned": float(per_frame.mean()), "abs_rel_frame_aligned": float(framewise.mean()),
            "abs_rel_first_quarter": first, "abs_rel_last_quarter": last}
