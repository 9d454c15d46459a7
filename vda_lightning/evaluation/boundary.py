"""Boundary sharpness: the scale-invariant boundary F1 of Depth Pro (`src/depth_pro/eval/boundary_metrics.py`,
`SI_boundary_F1`), as pure numpy functions.

What the published metric does (the facts we reproduce): both depth maps are inverted (`1 / max(d, 1e-6)`); for
each threshold t of `linspace(1.05, 1.25, 10)` a pixel pair of 4-neighbours is an occluding edge, in one of four
directions (left, top, right, bottom), when the inverse depth of one side is more than t times the other's. Per
direction, recall = |edges in both| / max(|GT edges|, 1) and precision = |edges in both| / max(|predicted edges|, 1);
recall and precision are the means over the four directions, F1 = 2rp / (r + p) (0 when r + p = 0). The score is
the sum over thresholds of F1(t) weighted by t / Σt. Ratios, not differences: any positive scale of either map
leaves it unchanged (a shift does not).

Ours adds one thing the published function has no need for (Depth Pro scores it on dense synthetic GT): `valid`,
a mask of GT pixels to trust. A neighbour pair counts only when both of its pixels are valid; with every pixel
valid (or `valid=None`) the score is the published one (tests/test_eval_boundary.py holds it to the published
function's outputs on built cases, to 1e-12).
"""
from __future__ import annotations

import numpy as np

INVERSE_DEPTH_FLOOR = 1e-6  # Depth Pro's invert_depth clip
DEFAULT_THRESHOLDS = (1.05, 1.25, 10)  # t_min, t_max, N of SI_boundary_F1


def _neighbour_ratios(inverse: np.ndarray) -> list[np.ndarray]:
    """Ratios a / b of each 4-neighbour pair in the four directions (left, top, right, bottom), each in the
    published order of the division; a direction's edge is `ratio > t`."""
    return [inverse[:, :-1] / inverse[:, 1:], inverse[:-1, :] / inverse[1:, :],
            inverse[:, 1:] / inverse[:, :-1], inverse[1:, :] / inverse[:-1, :]]


def _pair_masks(valid: np.ndarray) -> list[np.ndarray]:
    """Whether both pixels of each neighbour pair are valid, in the directions of `_neighbour_ratios`."""
    horizontal = valid[:, :-1] & valid[:, 1:]
    vertical = valid[:-1, :] & valid[1:, :]
    return [horizontal, vertical, horizontal, vertical]


def boundary_f1_per_threshold(pred_depth: np.ndarray, gt_depth: np.ndarray, thresholds: np.ndarray,
                              valid: np.ndarray | None = None) -> np.ndarray:
    """(N,) boundary F1 of one (H, W) depth pair at each threshold (depths, not inverses: they are inverted here)."""
    if pred_depth.ndim != 2 or pred_depth.shape != gt_depth.shape:
        raise ValueError(f"boundary F1 needs two (H, W) maps of one shape, got {pred_depth.shape} and "
                         f"{gt_depth.shape}")
    t = np.asarray(thresholds, dtype=np.float64)[:, None, None]
    pred_ratios = _neighbour_ratios(1.0 / np.maximum(pred_depth, INVERSE_DEPTH_FLOOR))
    gt_ratios = _neighbour_ratios(1.0 / np.maximum(gt_depth, INVERSE_DEPTH_FLOOR))
    pairs = _pair_masks(np.ones(pred_depth.shape, bool) if valid is None else np.asarray(valid, bool))
    recall = np.zeros(t.shape[0])
    precision = np.zeros(t.shape[0])
    for p_ratio, g_ratio, pair in zip(pred_ratios, gt_ratios, pairs):
        predicted = (p_ratio > t) & pair
        true = (g_ratio > t) & pair
        hits = np.count_nonzero(predicted & true, axis=(1, 2))
        recall += hits / np.maximum(np.count_nonzero(true, axis=(1, 2)), 1)
        precision += hits / np.maximum(np.count_nonzero(predicted, axis=(1, 2)), 1)
    recall, precision = recall / 4, precision / 4
    total = recall + precision
    return np.where(total > 0, 2 * recall * precision / np.where(total > 0, total, 1.0), 0.0)


def si_boundary_f1(pred_depth: np.ndarray, gt_depth: np.ndarray, valid: np.ndarray | None = None,
                   t_min: float = DEFAULT_THRESHOLDS[0], t_max: float = DEFAULT_THRESHOLDS[1],
                   n: int = DEFAULT_THRESHOLDS[2]) -> float:
    """Scale-invariant boundary F1 of one (H, W) frame: F1 over `linspace(t_min, t_max, n)` weighted by t / Σt."""
    thresholds = np.linspace(t_min, t_max, n)
    weights = thresholds / thresholds.sum()
    return float(np.sum(boundary_f1_per_threshold(np.asarray(pred_depth, np.float64),
                                                  np.asarray(gt_depth, np.float64), thresholds, valid) * weights))


def sequence_boundary_f1(pred_depth: np.ndarray, gt_depth: np.ndarray, valid: np.ndarray) -> float:
    """Mean over a (T, H, W) sequence's frames that have a valid pixel of `si_boundary_f1` (pairs inside `valid`)."""
    scores = [si_boundary_f1(p, g, v) for p, g, v in zip(pred_depth, gt_depth, valid) if v.any()]
    return float(np.mean(scores)) if scores else float("nan")
