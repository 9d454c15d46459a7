"""Metric fine-tuning parts of `MetricDepthTask` (training/tasks/metric.py): targets, canonical camera, param groups.

The recipe follows Depth Anything V2's metric fine-tuning (published `metric_depth/train.py`): the SiLog loss on
metric depth over valid pixels in [min_depth, max_depth], AdamW, and — when the encoder is trained too — the
encoder at 1/10 of the head's learning rate. Video Depth Anything's authors fine-tuned their metric models on
Virtual KITTI and IRS but published no recipe; what we chose beyond DAv2's recipe is stated in
`conf/paper/metric_base.yaml`.

Canonical camera (optional, off by default): depth seen through a focal length f looks like depth · f_c / f
through the canonical focal length f_c (a pinhole scaled about its centre: same image, depth scaled). Training on
`depth · f_c / fx` lets clips from cameras with different focal lengths agree on what a given image means; the
model then predicts canonical depth, and `canonical_to_metric` multiplies by fx / f_c for the camera at hand
(`models.configs.canonical_depth_to_metres`, the conversion every caller shares). fx is the sample's K after the
DataModule's crop/resize (the focal length in the pixels the network sees).
"""
from __future__ import annotations

import torch

from ..models.configs import canonical_depth_to_metres


def focal_factors(K: torch.Tensor, canonical_focal: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(f_c / fx per sample (B,), known (B,) bool) from (B, 3, 3) intrinsics; an unknown K (all zeros) has fx = 0."""
    fx = K[:, 0, 0].to(torch.float32)
    known = fx > 0
    return torch.where(known, canonical_focal / fx.clamp_min(1e-12), torch.ones_like(fx)), known


def metric_target(part: dict, canonical_focal: float | None = None) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(target depth (B,T,H,W) in metres — canonical metres with `canonical_focal` —, mask, samples dropped).

    A batch part needs metric `depth` (the DataModule's "depth", zeros where unknown) and `mask`; with a canonical
    camera, samples without intrinsics cannot be normalised: their mask is cleared (they add nothing to the loss)
    and they are counted."""
    kinds = set(part.get("depth_kind") or ["metric_depth"])
    if "depth" not in part or kinds != {"metric_depth"}:
        raise ValueError(f"metric training needs metric depth targets; this batch holds {sorted(kinds)} "
                         "(relative disparity or pseudo-labels cannot train a metric model)")
    depth, mask = part["depth"], part["mask"].bool()
    if canonical_focal is None:
        return depth, mask, 0
    factor, known = focal_factors(part["K"], canonical_focal)
    view = (-1,) + (1,) * (depth.dim() - 1)
    return depth * factor.view(view).to(depth.dtype), mask & known.view(view), int((~known).sum())


def canonical_to_metric(pred: torch.Tensor, K: torch.Tensor, canonical_focal: float | None) -> torch.Tensor:
    """A canonical-camera prediction (B, T, H, W) in metres for each sample's camera (K (B, 3, 3)); unchanged
    without a canonical focal length. Samples without intrinsics stay canonical."""
    if canonical_focal is None:
        return pred
    fx = K[:, 0, 0].detach().cpu().to(torch.float64)
    fx = torch.where(fx > 0, fx, torch.full_like(fx, canonical_focal))  # unknown K: factor 1, stays canonical
    return canonical_depth_to_metres(pred, fx, canonical_focal)


def parameter_groups(model, lr: float, train_encoder: bool, encoder_lr: float | None) -> list[dict]:
    """AdamW groups: the head's trainable parameters at `lr`; the encoder's at `encoder_lr` (default lr / 10, DAv2's
    metric recipe) when it is trained. A schedule multiplies both by the same factor, so the ratio stays."""
    groups = [{"params": [p for p in model.head.parameters() if p.requires_grad], "lr": lr, "name": "head"}]
    if train_encoder:
        groups.append({"params": [p for p in model.pretrained.parameters() if p.requires_grad],
                       "lr": lr / 10 if encoder_lr is None else encoder_lr, "name": "encoder"})
    return groups
