"""torchmetrics wrappers of the per-sequence protocol, exact under DDP.

Each `update` call is ONE whole sequence: the scale/shift fit spans the sequence, so a sequence must never be split
across ranks (or batches), and must be fed exactly once — use a sampler that does not pad/duplicate (e.g.
`vda_lightning.evaluation.distributed.shard_indices`). The states are float64 sums of per-sequence scores plus a
sequence count, all reduced by sum, so the synced result is the plain mean over sequences that the published code
prints, whatever the number of ranks.

Validation use (LightningModule), per validation sequence (B = 1) or per batch of whole sequences (B > 1):

    self.val_depth = DepthMetrics(max_depth=80.0)
    self.val_tae = TAEMetric(max_depth=10.0)
    ...
    self.val_depth.update(pred_disparity, batch["depth"], batch["mask"])          # (B,T,H,W) or (T,H,W)
    if batch["has_pose"].all():
        self.val_tae.update(pred_disparity, batch["K"], batch["poses"], gt_depth=batch["depth"])
    self.log_dict(self.val_depth.compute())  # {"abs_rel", "delta1", "rmse"} (call .reset() after the epoch)
"""
from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric

from .alignment import check_alignment
from .functional import align_to_ground_truth, sequence_depth_metrics, sequence_tae

_DEPTH_KEYS = ("abs_rel", "rmse", "delta1")


def _sequences(*tensors: Tensor | None, ndim: int) -> list[tuple]:
    """Split a batch of whole sequences (leading B) into per-sequence tuples; pass a single sequence through."""
    first = tensors[0]
    if first.dim() == ndim:
        return [tensors]
    if first.dim() != ndim + 1:
        raise ValueError(f"expected a ({'T,H,W' if ndim == 3 else '...'}) sequence or a batch of them, "
                         f"got shape {tuple(first.shape)}")
    return [tuple(None if t is None else t[b] for t in tensors) for b in range(first.shape[0])]


class DepthMetrics(Metric):
    """AbsRel, δ1 and RMSE of the published protocol, averaged over sequences.

    update(pred_disparity, gt_depth, valid=None):
        pred_disparity (T,H,W) or (B,T,H,W): relative (affine-invariant) disparity at the GT resolution (metric
        depth with `alignment` scale / none, or as `prediction_kind` says; `functional.align_to_ground_truth`);
        gt_depth: metric depth, ≤ 0 where missing; valid (optional, bool): extra mask (e.g. a batch's `mask`),
        intersected with the protocol's (1e-3 < gt < max_depth). Each sequence's scores stay in `self.last`.
    compute() -> {"abs_rel", "delta1", "rmse"} (float64 scalars).
    """

    full_state_update = False
    higher_is_better = None

    def __init__(self, max_depth: float, alignment: str = "scale_shift", prediction_kind: str | None = None,
                 **kwargs):
        super().__init__(**kwargs)
        check_alignment(alignment, prediction_kind)
        self.max_depth = float(max_depth)
        self.alignment, self.prediction_kind = alignment, prediction_kind
        for key in _DEPTH_KEYS:
            self.add_state(f"{key}_sum", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("sequences", default=torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")
        self.last: list[dict] = []

    def update(self, pred_disparity: Tensor, gt_depth: Tensor, valid: Tensor | None = None) -> None:
        self.last = []
        for pred, gt, mask in _sequences(pred_disparity, gt_depth, valid, ndim=3):
            scores = sequence_depth_metrics(pred.detach(), gt, self.max_depth, mask, self.alignment,
                                            self.prediction_kind)
            for key in _DEPTH_KEYS:
                state = getattr(self, f"{key}_sum")
                setattr(self, f"{key}_sum", state + scores[key])
            self.sequences += 1
            self.last.append(scores)

    def compute(self) -> dict[str, Tensor]:
        n = self.sequences.clamp_min(1).double()
        empty = self.sequences == 0
        nan = torch.full((), float("nan"), dtype=torch.float64, device=n.device)
        return {key: torch.where(empty, nan, getattr(self, f"{key}_sum") / n)
                for key in ("abs_rel", "delta1", "rmse")}


class TAEMetric(Metric):
    """Temporal alignment error (×100), averaged over sequences.

    update(pred, K, poses, gt_depth=None, valid=None, mask=None):
        pred (T,H,W) or (B,T,H,W). With `gt_depth` it is a disparity, aligned to the GT by the protocol's
        sequence fit (valid pixels only) — the published TAE — or, with `alignment` scale / none, a metric depth
        scaled / taken as it is; without `gt_depth`, `pred` is already the depth to score.
        K: (3,3)/(4,4) shared or (T,·,·) per frame (frame i's K serves pair i, i+1; used as given, not
        crop-corrected); poses (T,4,4) camera-to-world; mask (T,H,W) optional: pixels allowed as reprojection targets.
    compute() -> scalar TAE (float64).
    """

    full_state_update = False
    higher_is_better = False

    def __init__(self, max_depth: float = 10.0, alignment: str = "scale_shift", prediction_kind: str | None = None,
                 **kwargs):
        super().__init__(**kwargs)
        check_alignment(alignment, prediction_kind)
        self.max_depth = float(max_depth)
        self.alignment, self.prediction_kind = alignment, prediction_kind
        self.add_state("tae_sum", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("sequences", default=torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")
        self.last: list[float] = []

    def update(self, pred: Tensor, K: Tensor, poses: Tensor, gt_depth: Tensor | None = None,
               valid: Tensor | None = None, mask: Tensor | None = None) -> None:
        batched = pred.dim() == 4
        if batched and K.dim() == 2:
            K = K.expand(pred.shape[0], *K.shape)
        items = _sequences(pred, K, poses, gt_depth, valid, mask, ndim=3) if batched else \
            [(pred, K, poses, gt_depth, valid, mask)]
        self.last = []
        for p, k, pose, gt, val, m in items:
            depth = p.detach().double()
            if gt is not None:
                depth, _ = align_to_ground_truth(depth, gt, self.max_depth, val, self.alignment,
                                                 self.prediction_kind)
            value = sequence_tae(depth, k, pose, m)
            self.tae_sum += value
            self.sequences += 1
            self.last.append(value)

    def compute(self) -> Tensor:
        if int(self.sequences) == 0:
            return torch.full((), float("nan"), dtype=torch.float64)
        return self.tae_sum / self.sequences.double()


# ------------------------------------------------------------------- optional per-sequence metrics (--metrics)

def _boundary_scores(pred: Tensor, gt_depth: Tensor, max_depth: float, alignment: str,
                     prediction_kind: str | None) -> dict[str, float]:
    """Depth Pro's scale-invariant boundary F1 of the protocol-aligned depth, pairs inside the valid GT."""
    from .boundary import sequence_boundary_f1

    depth, mask = align_to_ground_truth(pred, gt_depth, max_depth, None, alignment, prediction_kind)
    return {"boundary_f1": sequence_boundary_f1(depth.cpu().numpy(), gt_depth.double().cpu().numpy(),
                                                mask.cpu().numpy())}


def _drift_scores(pred: Tensor, gt_depth: Tensor, max_depth: float, alignment: str,
                  prediction_kind: str | None) -> dict[str, float]:
    from .drift import sequence_drift

    return sequence_drift(pred, gt_depth, max_depth, alignment, prediction_kind)


# name (as `vda eval --metrics +name` says it) -> f(pred, gt_depth, max_depth, alignment, prediction_kind) ->
# {result key: float} for one whole sequence; vda eval averages each key over sequences.
EXTRA_METRICS = {"boundary_f1": _boundary_scores, "drift": _drift_scores}


def extra_sequence_scores(names, pred: Tensor, gt_depth: Tensor, max_depth: float, alignment: str = "scale_shift",
                          prediction_kind: str | None = None) -> dict[str, float]:
    """The optional metrics `names` of one sequence, merged into one dict."""
    scores: dict[str, float] = {}
    for name in names:
        scores.update(EXTRA_METRICS[name](pred, gt_depth, max_depth, alignment, prediction_kind))
    return scores
