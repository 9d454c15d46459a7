"""Training losses of Video Depth Anything (published `loss/loss.py`), as pure functions plus thin modules.

Shapes: predictions/targets are (B, T, H, W) float, masks (B, T, H, W) bool. Spatial terms treat the B*T frames
as independent images (M, H, W). Every reduction is "batch-based": a sum over all images divided by the total
number of valid pixels, as in the published code.

Where the paper and the published code disagree (the TGM term) the code is the default; `tgm_variant="paper"` gives the
paper's formula (absolute temporal differences, absolute threshold, mean over frame pairs).

Metric fine-tuning (`MetricDepthLoss`): the scale-invariant log loss of Depth Anything V2's metric fine-tuning
(published `metric_depth/util/loss.py::SiLogLoss`, used by `metric_depth/train.py`) on metric depth, plus the TGM
term on metric depth without the per-clip alignment.
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn as nn

TGMVariant = Literal["code", "paper"]


# ----------------------------------------------------------------------------------------------- spatial (SSI) loss
def robust_normalize(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-image (x - median) / mean-absolute-deviation, with the published quirks.

    x: (M, H, W); mask: (M, H, W) float. The median runs over ALL pixels with masked-out ones set to zero, and is
    torch's lower median; the deviation is the masked mean, clamped at 1e-6. Images without valid pixels get
    median 0 and scale 1.
    """
    count = mask.sum((1, 2))
    valid = count > 0
    median = (mask * x).flatten(1).median(dim=1).values
    median = torch.where(valid, median, torch.zeros_like(median))
    centred = x - median[:, None, None]
    mad = (mask * centred.abs()).sum((1, 2)) / count.clamp_min(1)
    scale = torch.where(valid, mad.clamp_min(1e-6), torch.ones_like(mad))
    return centred / scale[:, None, None]


def trimmed_mae(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, trim: float = 0.0) -> torch.Tensor:
    """Sum of the smallest (1 - trim) share of |pred - target| over masked pixels / number of masked pixels.

    The divisor is the full valid count even when trimming (published behaviour). Empty mask -> 0 with a graph.
    """
    bool_mask = mask.bool()
    count = bool_mask.sum()
    if count == 0:
        return (pred * 0).sum()
    residuals = (pred - target)[bool_mask].abs()
    if trim > 0:
        keep = int(residuals.numel() * (1.0 - trim))
        residuals = residuals.sort().values[:keep]
    return residuals.sum() / count


def gradient_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Gradient matching at one scale: L1 of the x/y differences of the masked residual, batch-based."""
    count = mask.sum()
    diff = mask * (pred - target)
    grad_x = (diff[:, :, 1:] - diff[:, :, :-1]).abs() * (mask[:, :, 1:] * mask[:, :, :-1])
    grad_y = (diff[:, 1:, :] - diff[:, :-1, :]).abs() * (mask[:, 1:, :] * mask[:, :-1, :])
    total = grad_x.sum() + grad_y.sum()
    if count == 0:
        return total * 0
    return total / count


def multiscale_gradient_loss(pred, target, mask, scales: int = 4) -> torch.Tensor:
    """Sum over scales s = 0..scales-1 of `gradient_loss` on strided sub-samples [::2^s, ::2^s] (no pooling)."""
    total = pred.new_zeros(())
    for s in range(scales):
        step = 2**s
        total = total + gradient_loss(pred[:, ::step, ::step], target[:, ::step, ::step], mask[:, ::step, ::step])
    return total


def ssi_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor,
    alpha: float = 0.5,
    scales: int = 4,
    trim: float = 0.0,
) -> torch.Tensor:
    """Scale-shift-invariant spatial loss (`TrimmedProcrustesLoss`) over frames as images.

    pred/target/mask: (..., H, W); leading dims are flattened into images.
    """
    h, w = pred.shape[-2:]
    pred, target = pred.reshape(-1, h, w), target.reshape(-1, h, w)
    mask = mask.reshape(-1, h, w).to(pred.dtype)
    pred_n, target_n = robust_normalize(pred, mask), robust_normalize(target, mask)
    loss = trimmed_mae(pred_n, target_n, mask, trim)
    if alpha > 0:
        loss = loss + alpha * multiscale_gradient_loss(pred_n, target_n, mask, scales)
    return loss


# ----------------------------------------------------------------------------------------------- temporal (TGM) loss
def align_scale_shift(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-video least-squares s*pred + t ~ target over all valid pixels of the clip; s, t keep their gradients.

    pred/target/mask: (B, T, H, W). A singular system (det == 0) gives s = t = 0, as published; the solution divides
    by det + 1e-6 (published epsilon).
    """
    m = mask.to(pred.dtype)
    dims = tuple(range(1, pred.dim()))
    a00, a01, a11 = (m * pred * pred).sum(dims), (m * pred).sum(dims), m.sum(dims)
    b0, b1 = (m * pred * target).sum(dims), (m * target).sum(dims)
    det = a00 * a11 - a01 * a01
    nonsingular = det != 0
    denom = det + 1e-6
    scale = torch.where(nonsingular, (a11 * b0 - a01 * b1) / denom, torch.zeros_like(det))
    shift = torch.where(nonsingular, (-a01 * b0 + a00 * b1) / denom, torch.zeros_like(det))
    view = (-1,) + (1,) * (pred.dim() - 1)
    return scale.view(view) * pred + shift.view(view)


def frame_thresholds(target: torch.Tensor, mask: torch.Tensor, ratio: float) -> torch.Tensor:
    """ratio * (max - min) of each frame's target over its valid pixels: (B, T). Empty frames -> 0 (no pairs)."""
    inf = torch.finfo(target.dtype).max
    hi = torch.where(mask, target, torch.full_like(target, -inf)).flatten(2).amax(-1)
    lo = torch.where(mask, target, torch.full_like(target, inf)).flatten(2).amin(-1)
    has_valid = mask.flatten(2).any(-1)
    return torch.where(has_valid, (hi - lo) * ratio, torch.zeros_like(hi))


def tgm_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor,
    trim: float = 0.0,
    temporal_scales: int = 1,
    decay: float = 0.5,
    threshold: float = 0.05,
    variant: TGMVariant = "code",
) -> torch.Tensor:
    """Temporal gradient matching on (B, T, H, W) clips (no alignment here: see `align_scale_shift`).

    code:  |Δp - Δg| with signed differences of consecutive (stride-2^k) frames, pixels valid in both frames and
           with |Δg| < threshold * (target range of the later frame); batch-based mean over all pairs; scale k is
           weighted decay^k and the result divided by the number of scales used (stride < T).
    paper: ||Δp| - |Δg|| with the absolute threshold |Δg| < threshold, averaged per frame pair, then over pairs.
    """
    mask = mask.bool()
    num_frames = pred.shape[1]
    ths = frame_thresholds(target, mask, threshold) if variant == "code" else None
    total, used = pred.new_zeros(()), 0
    for k in range(temporal_scales):
        stride = 2**k
        if stride >= num_frames:
            break
        p, g, m = pred[:, ::stride], target[:, ::stride], mask[:, ::stride]
        dp, dg = p[:, 1:] - p[:, :-1], g[:, 1:] - g[:, :-1]
        valid = m[:, 1:] & m[:, :-1]
        if variant == "code":
            valid = valid & (dg.abs() < ths[:, ::stride][:, 1:, None, None])
            term = trimmed_mae(dp.flatten(0, 1), dg.flatten(0, 1), valid.flatten(0, 1), trim)
        else:
            valid = valid & (dg.abs() < threshold)
            per_pair = ((dp.abs() - dg.abs()).abs() * valid).flatten(2).sum(-1) / valid.flatten(2).sum(-1).clamp_min(1)
            term = per_pair.mean()
        total = total + term * decay**k
        used += 1
    return total / max(used, 1)


# ----------------------------------------------------------------------------------------------- metric (SiLog) loss
def silog_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, lambd: float = 0.5,
               floor: float = 1e-3) -> torch.Tensor:
    """Scale-invariant log loss, pooled over every masked pixel of the batch (published DAv2 `SiLogLoss`):

        d = log(target) - log(pred) at the masked pixels;   loss = sqrt( mean(d^2) - lambd * mean(d)^2 ).

    The published formula has no epsilon terms: DAv2's metric head ends in sigmoid * max_depth, so its output is
    never 0. The Video Depth Anything head ends in a ReLU, whose output is often exactly 0 early in fine-tuning;
    log(0) would make the loss infinite, so the prediction is clamped at `floor` (metres) before the log (the
    clamped pixels get no gradient, as the ReLU gives them none either). Above the floor the value is the
    published one. The target must be > 0 where `mask` is set (the caller restricts it to [min_depth, max_depth]).
    No masked pixel: 0 with a graph. The sqrt is exact: a perfect prediction (every d = 0) has an infinite
    gradient, as published.
    """
    mask = mask.bool()
    if not bool(mask.any()):
        return (pred * 0).sum()
    d = torch.log(target[mask]) - torch.log(pred[mask].clamp_min(floor))
    return torch.sqrt((d * d).mean() - lambd * d.mean() ** 2)


def metric_valid_mask(target: torch.Tensor, mask: torch.Tensor | None, min_depth: float,
                      max_depth: float | None) -> torch.Tensor:
    """Pixels the metric loss scores: `mask` & min_depth <= target <= max_depth (inclusive, as DAv2's train.py);
    `max_depth` None = no upper bound."""
    valid = target >= min_depth
    if max_depth is not None:
        valid &= target <= max_depth
    return valid if mask is None else valid & mask.bool()


class MetricDepthLoss(nn.Module):
    """Metric fine-tuning loss: SiLog (lambd 0.5) + `tgm_weight` * TGM, both on metric depth in metres.

    Returns {'silog_loss', 'stable_loss', 'total_loss'} (`stable_loss` already weighted).

    The TGM term is the released one (`tgm_loss`, code variant: signed temporal differences, threshold 5 % of each
    frame's target range) computed on the raw predicted depth against the metric target, WITHOUT the per-clip
    least-squares alignment that `VideoDepthLoss` applies: a metric model must get the scale itself, and aligning
    it away would let the temporal term ignore scale drift between frames. Its unit is metres (unlike SiLog, which
    is unitless), so its weight depends on the scenes' depth range: see the recipes for the value we use.
    """

    def __init__(self, lambd: float = 0.5, tgm_weight: float = 1.0, min_depth: float = 1e-3,
                 max_depth: float | None = 80.0, floor: float = 1e-3, threshold: float = 0.05,
                 tgm_variant: TGMVariant = "code"):
        super().__init__()
        if tgm_variant not in ("code", "paper"):
            raise ValueError(f"tgm_variant must be 'code' or 'paper', got {tgm_variant!r}")
        self.lambd, self.tgm_weight, self.min_depth, self.max_depth = lambd, tgm_weight, min_depth, max_depth
        self.floor, self.threshold, self.tgm_variant = floor, threshold, tgm_variant

    def forward(self, prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
                ) -> dict[str, torch.Tensor]:
        if prediction.shape != target.shape or prediction.dim() != 4 or (mask is not None and
                                                                          mask.shape != target.shape):
            raise ValueError(
                f"MetricDepthLoss needs (B, T, H, W) prediction/target/mask of one shape, got "
                f"{tuple(prediction.shape)}, {tuple(target.shape)}, {None if mask is None else tuple(mask.shape)}"
            )
        valid = metric_valid_mask(target, mask, self.min_depth, self.max_depth)
        silog = silog_loss(prediction, target, valid, self.lambd, self.floor)
        out = {"silog_loss": silog}
        if self.tgm_weight and prediction.shape[1] > 1:
            stable = self.tgm_weight * tgm_loss(prediction, target, valid, 0.0, 1, 0.5, self.threshold,
                                                self.tgm_variant)
        else:
            stable = silog * 0
        out.update(stable_loss=stable, total_loss=silog + stable)
        return out


# ----------------------------------------------------------------------------------------------- composed losses
class VideoDepthLoss(nn.Module):
    """The published `VideoDepthLoss`: spatial SSI on every frame + stable_scale * TGM on the aligned clip.

    Returns {'spatial_loss', 'stable_loss', 'total_loss'}; `stable_loss` already carries the weight.
    `spatial_weight` scales the spatial term inside the total (1.0 in the paper).
    """

    def __init__(
        self,
        alpha: float = 0.5,
        scales: int = 4,
        trim: float = 0.0,
        stable_scale: float = 10.0,
        spatial_weight: float = 1.0,
        threshold: float = 0.05,
        tgm_variant: TGMVariant = "code",
    ):
        super().__init__()
        if tgm_variant not in ("code", "paper"):
            raise ValueError(f"tgm_variant must be 'code' or 'paper', got {tgm_variant!r}")
        self.alpha, self.scales, self.trim = alpha, scales, trim
        self.stable_scale, self.spatial_weight = stable_scale, spatial_weight
        self.threshold, self.tgm_variant = threshold, tgm_variant

    def forward(self, prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        if prediction.shape != target.shape or prediction.shape != mask.shape or prediction.dim() != 4:
            raise ValueError(
                f"VideoDepthLoss needs (B, T, H, W) prediction/target/mask of one shape, got "
                f"{tuple(prediction.shape)}, {tuple(target.shape)}, {tuple(mask.shape)}"
            )
        mask = mask.bool()
        spatial = ssi_loss(prediction, target, mask, self.alpha, self.scales, self.trim)
        aligned = align_scale_shift(prediction, target, mask)
        tgm = tgm_loss(aligned, target, mask, self.trim, 1, 0.5, self.threshold, self.tgm_variant)
        stable = self.stable_scale * tgm
        return {"spatial_loss": spatial, "stable_loss": stable, "total_loss": self.spatial_weight * spatial + stable}


class DistillationLoss(nn.Module):
    """Image distillation: the spatial SSI loss against a teacher's pseudo-labels, times `weight` (0.5 in the paper)."""

    def __init__(self, weight: float = 0.5, alpha: float = 0.5, scales: int = 4, trim: float = 0.0):
        super().__init__()
        self.weight, self.alpha, self.scales, self.trim = weight, alpha, scales, trim

    def forward(self, prediction: torch.Tensor, pseudo_label: torch.Tensor, mask: torch.Tensor | None = None):
        if mask is None:
            mask = torch.ones_like(prediction, dtype=torch.bool)
        return self.weight * ssi_loss(prediction, pseudo_label, mask, self.alpha, self.scales, self.trim)
