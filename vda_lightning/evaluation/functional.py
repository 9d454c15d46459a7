"""The published zero-shot depth protocol as pure functions (torch, float64, any device).

Per sequence (published `benchmark/eval/eval.py::eval_depthcrafter`): fit one scale and shift in *disparity*
space over every valid pixel of the whole sequence, clip, invert to depth, clip to [1e-3, max_depth], then score
each frame (AbsRel, RMSE, δ1) and average over frames. TAE (published `benchmark/eval/eval_tae.py`) reprojects
consecutive aligned depth maps into each other with the ground-truth poses and intrinsics, splats to the nearest
pixel, and averages the relative depth disagreement (×100).

Metric predictions (`alignment`, not in the published scripts: the authors published no metric evaluation; their
metric numbers are "without aligning the scale"):
* `scale_shift` (default): the published protocol above; a prediction in depth is inverted to disparity first.
* `scale`: one scale per sequence, the median over the sequence's valid pixels of gt / pred (median scaling, as
  monocular metric-depth evaluations commonly use it: robust to outliers, and exact for pred = c * gt); then
  scored like `none`.
* `none`: the predicted depth in metres as it is; only floored at 1e-3 (so δ1 and AbsRel stay defined for zero or
  negative values). No upper clip: a prediction beyond the benchmark's cap is scored as predicted (the cap only
  selects the valid ground truth, as in the relative protocol).
What a prediction holds (`prediction_kind`): "disparity" or "depth"; default disparity under `scale_shift` and
depth under `scale` / `none`. Disparity is turned into depth by clip(·, 1e-3) and inversion, as the relative
protocol does after its fit.

Every function takes already cropped/resized arrays; file reading and the prediction resize live in `sequences.py`.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .alignment import ALIGNMENTS, PREDICTION_KINDS, check_alignment, default_prediction_kind  # noqa: F401

MIN_DEPTH = 1e-3  # the protocol's validity threshold and the clip floor for disparity and depth
DELTA1_THRESHOLD = 1.25
GT_DISPARITY_EPS = 1e-8  # added to GT depth before inversion in the published fit


def valid_depth_mask(gt_depth: Tensor, max_depth: float) -> Tensor:
    """Pixels scored by the protocol: strictly inside (1e-3, max_depth). Zeros/negatives mark missing GT."""
    return (gt_depth > MIN_DEPTH) & (gt_depth < max_depth)


def fit_disparity_scale_shift(pred_disparity: Tensor, gt_depth: Tensor, valid: Tensor) -> tuple[Tensor, Tensor]:
    """Least-squares (scale, shift) with `scale * clip(pred, 1e-3) + shift ≈ 1 / (gt + 1e-8)` over `valid`.

    The published code calls `np.linalg.lstsq` on an (N, 2) float64 design matrix. We solve the same problem in
    closed form with centred two-pass sums in float64: the same minimiser to ~1e-15 relative, without building an
    N×2 matrix (a 500-frame KITTI sequence has ~2e8 valid pixels).
    """
    if not bool(valid.any()):
        raise ValueError("no valid ground-truth pixel in the sequence: cannot fit scale and shift")
    p = pred_disparity.clamp_min(MIN_DEPTH)[valid].double()
    g = 1.0 / (gt_depth[valid].double() + GT_DISPARITY_EPS)
    p_mean, g_mean = p.mean(), g.mean()
    p_centred = p - p_mean
    variance = (p_centred * p_centred).sum()
    if float(variance) == 0.0:
        # Constant prediction: rank-deficient system; lstsq returns the minimum-norm solution of s*c + t = mean(g).
        c = p_mean
        scale = c * g_mean / (c * c + 1.0)
        return scale, g_mean / (c * c + 1.0)
    scale = (p_centred * (g - g_mean)).sum() / variance
    return scale, g_mean - scale * p_mean


def aligned_depth(pred_disparity: Tensor, scale: Tensor, shift: Tensor, max_depth: float) -> Tensor:
    """Apply the fit to every pixel, clip the disparity at 1e-3, invert, clip depth to [1e-3, max_depth]."""
    disparity = (scale * pred_disparity.clamp_min(MIN_DEPTH).double() + shift).clamp_min(MIN_DEPTH)
    return (1.0 / disparity).clamp(MIN_DEPTH, max_depth)


def inverse(x: Tensor) -> Tensor:
    """1 / clip(x, 1e-3) in float64: disparity <-> depth as the protocol inverts (floor first)."""
    return 1.0 / x.double().clamp_min(MIN_DEPTH)


def median_scale(pred_depth: Tensor, gt_depth: Tensor, valid: Tensor) -> Tensor:
    """The sequence's median of gt / pred over valid pixels (pred floored at 1e-3); torch's lower median."""
    if not bool(valid.any()):
        raise ValueError("no valid ground-truth pixel in the sequence: cannot fit a scale")
    return (gt_depth[valid].double() / pred_depth[valid].double().clamp_min(MIN_DEPTH)).median()


def align_to_ground_truth(pred: Tensor, gt_depth: Tensor, max_depth: float, valid: Tensor | None = None,
                          alignment: str = "scale_shift", prediction_kind: str | None = None
                          ) -> tuple[Tensor, Tensor]:
    """(depth (T,H,W) float64 to score, scored mask (T,H,W)) for one sequence under `alignment` (module docstring).

    `valid` (optional) further restricts the GT validity mask, e.g. a training batch's `mask`.
    """
    kind = prediction_kind or default_prediction_kind(alignment)
    check_alignment(alignment, kind)
    gt_depth = gt_depth.double()
    mask = valid_depth_mask(gt_depth, max_depth)
    if valid is not None:
        mask = mask & valid.bool()
    if alignment == "scale_shift":
        disparity = pred if kind == "disparity" else inverse(pred)
        scale, shift = fit_disparity_scale_shift(disparity, gt_depth, mask)
        return aligned_depth(disparity, scale, shift, max_depth), mask
    depth = inverse(pred) if kind == "disparity" else pred.double().clamp_min(MIN_DEPTH)
    if alignment == "scale":
        depth = (depth * median_scale(depth, gt_depth, mask)).clamp_min(MIN_DEPTH)
    return depth, mask


def per_frame_depth_errors(depth: Tensor, gt_depth: Tensor, valid: Tensor) -> dict[str, Tensor]:
    """AbsRel, RMSE and δ1 of each frame that has ≥ 1 valid pixel (frames without any are dropped, as published)."""
    count = valid.sum((-1, -2))
    keep = count > 0
    depth, gt_depth, valid, count = depth[keep], gt_depth[keep].double(), valid[keep], count[keep].double()
    safe_gt = torch.where(valid, gt_depth, torch.ones_like(gt_depth))  # invalid GT may be 0 or -1
    zero = torch.zeros((), dtype=torch.float64, device=depth.device)
    abs_rel = torch.where(valid, (depth - safe_gt).abs() / safe_gt, zero).sum((-1, -2)) / count
    rmse = torch.sqrt(torch.where(valid, (depth - safe_gt) ** 2, zero).sum((-1, -2)) / count)
    ratio = torch.maximum(depth / safe_gt, safe_gt / depth)
    delta1 = (valid & (ratio < DELTA1_THRESHOLD)).sum((-1, -2)).double() / count
    return {"abs_rel": abs_rel, "rmse": rmse, "delta1": delta1}


def sequence_depth_metrics(pred: Tensor, gt_depth: Tensor, max_depth: float, valid: Tensor | None = None,
                           alignment: str = "scale_shift", prediction_kind: str | None = None) -> dict[str, float]:
    """One sequence's scores: {"abs_rel", "rmse", "delta1", "frames"} (means over frames with valid pixels).

    pred: (T,H,W) at the GT resolution — relative disparity for the published protocol, metric depth for
    `alignment` scale / none (see `align_to_ground_truth`); gt_depth: (T,H,W) metric depth (≤ 0 = missing).
    """
    if pred.shape != gt_depth.shape or pred.dim() != 3:
        raise ValueError(f"prediction {tuple(pred.shape)} and ground truth {tuple(gt_depth.shape)} "
                         "must both be (T,H,W)")
    depth, mask = align_to_ground_truth(pred, gt_depth, max_depth, valid, alignment, prediction_kind)
    errors = per_frame_depth_errors(depth, gt_depth, mask)
    out = {name: float(values.mean()) for name, values in errors.items()}
    out["frames"] = int(errors["abs_rel"].numel())
    return out


# ------------------------------------------------------------------------------------------------------- TAE

def reprojection_error(depth1: Tensor, depth2: Tensor, rotation: Tensor, translation: Tensor, K: Tensor,
                       mask2: Tensor | None = None) -> Tensor:
    """Mean |d2 − proj| / d2 after moving frame 1's points by (R, t) into frame 2 and splatting them.

    Pixel centres are integer coordinates; K's fx, fy, cx, cy are used as given (the published TAE does not shift
    cx, cy by the crop offset — a quirk we keep). Points land on the nearest pixel (round half to even, like
    torch.round); when several land on one pixel the last in row-major source order wins — made deterministic
    here with a scatter-max over source indices. Returns 0 when nothing overlaps, as published.
    """
    H, W = depth1.shape
    dtype, device = torch.float64, depth1.device
    depth1, depth2 = depth1.to(dtype), depth2.to(dtype)
    K, rotation, translation = K.to(device, dtype), rotation.to(device, dtype), translation.to(device, dtype)
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    v, u = torch.meshgrid(torch.arange(H, device=device, dtype=dtype),
                          torch.arange(W, device=device, dtype=dtype), indexing="ij")
    # Same operation order as the published code: round-to-nearest below is sensitive to the last bit.
    points = torch.stack((((u - cx) * depth1 / fx).flatten(), ((v - cy) * depth1 / fy).flatten(),
                          depth1.flatten()), dim=1)
    moved = torch.matmul(points, rotation.T) + translation
    x2, y2, z2 = moved[:, 0], moved[:, 1], moved[:, 2]
    u2 = torch.round((x2 * fx) / z2 + cx).long()
    v2 = torch.round((y2 * fy) / z2 + cy).long()
    inside = (u2 >= 0) & (u2 < W) & (v2 >= 0) & (v2 < H)
    zero = torch.zeros((), dtype=dtype, device=device)
    if not bool(inside.any()):
        return zero
    target = (v2 * W + u2)[inside]
    source_order = torch.arange(target.numel(), device=device)
    winner = torch.full((H * W,), -1, dtype=torch.long, device=device)
    winner.scatter_reduce_(0, target, source_order, reduce="amax")
    hit = winner >= 0
    projected = torch.zeros(H * W, dtype=dtype, device=device)
    projected[hit] = z2[inside][winner[hit]]
    projected = projected.view(H, W)
    valid = (projected > 0) & (depth2 > 0)
    if mask2 is not None:
        valid = valid & mask2.bool()
    if not bool(valid.any()):
        return zero
    return ((depth2[valid] - projected[valid]).abs() / depth2[valid]).mean()


def sequence_tae(depth: Tensor, intrinsics: Tensor, poses: Tensor, mask: Tensor | None = None) -> float:
    """TAE (×100) of aligned depth (N,H,W) with per-frame K ((N,3|4,3|4) or one (3|4,3|4)) and camera-to-world
    poses (N,4,4): both reprojection directions for every consecutive pair, averaged over 2·(N−1) terms.

    K of frame i serves the pair (i, i+1), as published.
    """
    n = depth.shape[0]
    if n < 2:
        raise ValueError(f"TAE needs at least 2 frames, got {n}")
    if poses.shape[0] != n:
        raise ValueError(f"{poses.shape[0]} poses for {n} frames")
    poses = poses.to(depth.device, torch.float64)
    intrinsics = intrinsics.to(depth.device, torch.float64)
    total = torch.zeros((), dtype=torch.float64, device=depth.device)
    for i in range(n - 1):
        K = intrinsics if intrinsics.dim() == 2 else intrinsics[i]
        second_from_first = torch.linalg.inv(poses[i + 1]) @ poses[i]
        first_from_second = torch.linalg.inv(second_from_first)
        m1 = None if mask is None else mask[i]
        m2 = None if mask is None else mask[i + 1]
        total += reprojection_error(depth[i], depth[i + 1], second_from_first[:3, :3], second_from_first[:3, 3],
                                    K, m2)
        total += reprojection_error(depth[i + 1], depth[i], first_from_second[:3, :3], first_from_second[:3, 3],
                                    K, m1)
    return float(100.0 * total / (2 * (n - 1)))
