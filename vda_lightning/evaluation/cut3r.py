"""The CUT3R-family video-depth protocol as pure functions (torch; the dtypes of the inputs are kept on purpose).

What CUT3R's `eval/video_depth/tools.py::depth_evaluation` does to one sequence, called the way its
`eval/video_depth/eval_depth.py` calls it (and STream3R, Point3R, ... after it), restated here:

* The prediction is depth. It is resized to the ground truth with OpenCV bicubic (`cv2.INTER_CUBIC`) per frame.
* Valid pixels: gt > 0 and gt < max_depth (no upper bound where the cap is None: KITTI). The whole sequence's
  valid pixels form one vector; every fit and every metric runs on it.
* `scale&shift` (our `scale_shift`): a least-absolute-deviation fit of s·pred + t to gt by gradient descent:
  s starts at median(gt) / median(pred) (torch's lower median), t at 0; Adam, lr 1e-4, at most 1000 steps on the
  *sum* of absolute errors, stopping early once the loss changes by < 1e-6 between steps. s and t have the
  prediction's dtype (float32 for the usual .npy predictions), the loss the promoted dtype (float64 against a
  PNG ground truth, float32 against Sintel's .dpt).
* `scale` (our `scale`): a scale fitted by iteratively reweighted least squares for the L1 error (Weiszfeld):
  s starts at mean(gt) / mean(pred), then 10 updates s = Σ w·pred·gt / Σ w·pred² with w = 1 / (|s·pred − gt| +
  1e-8); s is floored at 1e-3.
* `metric` (our `none`): the prediction as it is.
* After the fit the prediction may be clipped from above (`post_clip_max`: 70 on Sintel only).
* Metrics over the valid pixels: AbsRel, SqRel (Σ(p−g)²/g, mean), RMSE, then with p floored at 1e-5 log RMSE and
  δ < 1.25, 1.25², 1.25³ — all means over pixels, so a sequence weighs by its number of valid pixels when the
  sequences are averaged (`weighted_means`, `np.average(..., weights=valid_pixels)` in eval_depth.py).
* A sequence without a valid pixel scores 0 everywhere with weight 0 (the published function returns zeros).

Every operation runs in the order and dtypes of the published one, so the numbers match it to float rounding, not
only in idea (tests/test_eval_cut3r.py checks 1e-5 relative against outputs of the published function).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

CUT3R_ALIGNMENTS = {"scale_shift": "scale&shift", "scale": "scale", "none": "metric"}  # ours -> the family's name
METRICS = ("abs_rel", "sq_rel", "rmse", "log_rmse", "delta1", "delta2", "delta3")
LAD_LR, LAD_STEPS, LAD_TOL = 1e-4, 1000, 1e-6     # the fit's published defaults (depth_evaluation's lr, max_iters)
IRLS_STEPS, IRLS_EPS, MIN_SCALE = 10, 1e-8, 1e-3  # the scale fit's updates, weight guard and floor
LOG_FLOOR = 1e-5                                  # the prediction's floor before logs and ratios
DELTA = 1.25


def resize_bicubic(pred: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """One frame resized to the ground truth's (H, W) with OpenCV bicubic, as eval_depth.py does before scoring."""
    import cv2

    return cv2.resize(pred, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)


def valid_mask(gt: Tensor, max_depth: float | None) -> Tensor:
    """gt > 0 (and gt < max_depth when a cap is set)."""
    mask = gt > 0
    return mask & (gt < max_depth) if max_depth is not None else mask


def fit_scale_shift_lad(pred: Tensor, gt: Tensor, lr: float = LAD_LR, steps: int = LAD_STEPS,
                        tol: float = LAD_TOL) -> tuple[float, float]:
    """(s, t) by Adam on Σ|s·pred + t − gt|, from s = median(gt)/median(pred), t = 0 (module docstring).

    The published fit runs autograd and `torch.optim.Adam` (defaults: betas 0.9, 0.999, eps 1e-8, the
    single-tensor update on the CPU). We write its gradient and its update out, op for op in the same dtypes,
    which gives the same bits at a fraction of the per-step overhead: the gradient of the sum of |r| reaches the
    parameters as sign(r) cast to their dtype, summed (s: times pred); s and t share one 2-element tensor, which
    the element-wise update treats as two.
    """
    start = (torch.median(gt) / torch.median(pred)).item()
    params = torch.tensor([start, 0.0], device=pred.device, dtype=pred.dtype)
    scale, shift = params[0:1], params[1:2]
    exp_avg, exp_avg_sq = torch.zeros_like(params), torch.zeros_like(params)
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    previous = None
    for step in range(1, steps + 1):
        residual = scale * pred + shift - gt
        loss = torch.sum(torch.abs(residual))
        sign = torch.sgn(residual).to(pred.dtype)
        grad = torch.cat([(sign * pred).sum_to_size(1), sign.sum_to_size(1)])
        exp_avg.lerp_(grad, 1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        step_size = lr / (1 - beta1**step)
        denom = (exp_avg_sq.sqrt() / (1 - beta2**step) ** 0.5).add_(eps)
        params.addcdiv_(exp_avg, denom, value=-step_size)
        # the stop test compares a float with the loss tensor (its dtype decides the rounding), after the step
        if previous is not None and torch.abs(previous - loss) < tol:
            break
        previous = loss.item()
    return params[0].item(), params[1].item()


def fit_scale_irls(pred: Tensor, gt: Tensor, steps: int = IRLS_STEPS) -> Tensor:
    """The L1 scale by reweighted least squares from the ratio of means, floored at 1e-3 (a 0-dim tensor)."""
    scale = torch.nanmean(gt) / torch.nanmean(pred)
    for _ in range(steps):
        weights = 1.0 / ((scale * pred - gt).abs() + IRLS_EPS)
        scale = torch.sum(weights * pred * gt) / torch.sum(weights * pred**2)
    return scale.clamp(min=MIN_SCALE).detach()


def align(pred: Tensor, gt: Tensor, alignment: str) -> Tensor:
    """The valid pixels' prediction after `alignment` (ours: scale_shift | scale | none)."""
    if alignment == "none":
        return pred
    if alignment == "scale_shift":
        scale, shift = fit_scale_shift_lad(pred, gt)
        return scale * pred + shift
    if alignment == "scale":
        return fit_scale_irls(pred, gt) * pred
    raise ValueError(f"alignment must be one of {', '.join(CUT3R_ALIGNMENTS)}, got {alignment!r}")


def pixel_metrics(pred: Tensor, gt: Tensor) -> dict[str, float]:
    """AbsRel, SqRel, RMSE, log RMSE, δ<1.25^k over paired valid pixels (1-D)."""
    error = pred - gt
    out = {"abs_rel": torch.mean(torch.abs(error) / gt).item(), "sq_rel": torch.mean(error**2 / gt).item(),
           "rmse": torch.sqrt(torch.mean(error**2)).item()}
    pred = torch.clamp(pred, min=LOG_FLOOR)
    out["log_rmse"] = torch.sqrt(torch.mean((torch.log(pred) - torch.log(gt)) ** 2)).item()
    ratio = torch.maximum(pred / gt, gt / pred)
    for k in (1, 2, 3):
        out[f"delta{k}"] = torch.mean((ratio < DELTA**k).float()).item()
    return out


def sequence_metrics(pred: Tensor | np.ndarray, gt: Tensor | np.ndarray, max_depth: float | None,
                     alignment: str = "scale_shift", post_clip_max: float | None = None) -> dict:
    """One sequence's metrics (`METRICS`) and its `valid_pixels`: pred (T,H,W) depth at the GT size, gt (T,H,W).

    Dtypes are kept as given (module docstring): float32 predictions against a float64 PNG ground truth, or
    float32 against Sintel's float32 .dpt, reproduce the published numbers.
    """
    pred, gt = torch.as_tensor(pred), torch.as_tensor(gt)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {tuple(pred.shape)} and ground truth {tuple(gt.shape)} differ in shape")
    mask = valid_mask(gt, max_depth)
    valid = int(mask.sum())
    if valid == 0:
        return {**dict.fromkeys(METRICS, 0.0), "valid_pixels": 0}
    pred, gt = pred[mask], gt[mask]
    aligned = align(pred, gt, alignment)
    if post_clip_max is not None:
        aligned = torch.clamp(aligned, max=post_clip_max)
    return {**pixel_metrics(aligned, gt), "valid_pixels": valid}


def weighted_means(rows: list[dict]) -> dict[str, float]:
    """Each metric averaged over sequences, weighted by their valid pixels (eval_depth.py's `np.average`)."""
    weights = [row["valid_pixels"] for row in rows]
    if not rows or sum(weights) == 0:
        raise ValueError("no valid ground-truth pixel in any sequence: nothing to average")
    return {key: float(np.average([row[key] for row in rows], weights=weights)) for key in METRICS}
