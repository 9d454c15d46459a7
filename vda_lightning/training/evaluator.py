"""The validation evaluator: one `DatasetScores` per validation dataset, each scored with its dataset's protocol.

The LightningModule's `validation_step` only predicts; this callback (owned by the module, which returns it from
`configure_callbacks`, as anomalib's Evaluator is) turns predictions into scores, reduces them across ranks and
logs `val/<dataset>/<metric>`.

Which settings score a dataset (`io.benchmarks.stream_benchmark`): a stream named after a registered
benchmark (`kitti`, `bonn`, `scannet`, `nyuv2`, `sintel`, their `_500` variants), or mapped to one by the
DataModule's `val.benchmarks`, is scored exactly as `vda-eval` scores that benchmark — same registry entry (depth
cap, GT crop, frame range), same long-video inference (the module's `benchmark_inference`), same per-frame
arrays (`evaluation.sequences.protocol_frame`), same per-sequence functions, ScanNet's TAE setting — so the
numbers equal `vda-eval`'s for the same model and sequences. Any other dataset gets the default settings: the
module's `val_max_depth` cap, the clip as the DataModule delivers it, TAE when it has poses.

Alignment: the evaluator's `alignment` (`evaluation.functional.align_to_ground_truth`) for every dataset — the
published relative protocol ("scale_shift") for a relative model, "none" (metres as predicted) for a metric one;
the task chooses (`val_alignment`, training/tasks/).

A sequence that cannot be scored (no valid ground-truth pixel, non-finite prediction) is skipped, counted per
dataset and reason, logged (`val/<dataset>/skipped_<reason>`) and named in a warning; the epoch goes on.
"""
from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass

import numpy as np
import torch
from lightning.pytorch import Callback

from ..evaluation.functional import align_to_ground_truth, sequence_depth_metrics, sequence_tae
from ..evaluation.sequences import protocol_frame
from ..io import gather_objects
from ..io.benchmarks import get_benchmark, tae_setting

log = logging.getLogger("vda_lightning.training")
SKIP_REASONS = ("no_valid_gt", "nonfinite_prediction")
DEPTH_KEYS = ("abs_rel", "delta1", "rmse")


class SkipSequence(Exception):
    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason, self.detail = reason, detail


@dataclass(frozen=True)
class Protocol:
    """The settings that score one validation dataset."""

    name: str                      # the registered benchmark, or "default"
    max_depth: float
    crop: tuple | None = None      # (rows, cols) slices of the GT; None: the clip as delivered
    max_eval_len: int | None = None
    tae_max_depth: float | None = None
    tae_crop: tuple | None = None
    tae_frames: tuple | None = None  # (start, stop) of the stored sequence
    tae_max_sequences: int | None = None
    alignment: str = "scale_shift"  # evaluation.functional.align_to_ground_truth: scale_shift | scale | none

    @classmethod
    def for_benchmark(cls, name: str, alignment: str = "scale_shift") -> Protocol:
        spec, tae = get_benchmark(name), tae_setting(name)
        return cls(name, spec.max_depth, spec.crop_slices(), spec.max_eval_len,
                   None if tae is None else tae.max_depth, None if tae is None else tae.crop_slices(),
                   None if tae is None else tuple(tae.frame_range), None if tae is None else tae.max_sequences,
                   alignment)

    @classmethod
    def default(cls, max_depth: float, alignment: str = "scale_shift") -> Protocol:
        return cls("default", float(max_depth), tae_max_depth=float(max_depth), alignment=alignment)


def _check_prediction(pred) -> None:
    finite = np.isfinite(pred).all() if isinstance(pred, np.ndarray) else bool(torch.isfinite(pred).all())
    if not finite:
        raise SkipSequence("nonfinite_prediction", "the prediction holds NaN or inf")


def _depth_scores(pred: torch.Tensor, gt: torch.Tensor, max_depth: float, valid=None,
                  alignment: str = "scale_shift") -> dict:
    try:
        return sequence_depth_metrics(pred, gt, max_depth, valid, alignment)
    except ValueError as e:  # the protocol's scale/shift fit needs at least one valid pixel
        raise SkipSequence("no_valid_gt", str(e)) from None


def score_default(pred: torch.Tensor, batch: dict, i: int, protocol: Protocol) -> dict:
    """The default settings on sample i of a batch: prediction and GT at the delivered size, the batch's mask;
    TAE with the same cap when the clip has poses (as `TAEMetric.update(pred, K, poses, gt_depth, valid)`)."""
    pred = pred[i].detach()
    _check_prediction(pred)
    depth, mask = batch["depth"][i], batch["mask"][i]
    row = _depth_scores(pred, depth, protocol.max_depth, mask, protocol.alignment)
    if bool(batch["has_pose"][i]) and pred.shape[0] > 1:
        aligned, _ = align_to_ground_truth(pred.double(), depth, protocol.tae_max_depth, mask,
                                           alignment=protocol.alignment)
        row["tae"] = sequence_tae(aligned, batch["K"][i], batch["poses"][i])
    return row


def _protocol_arrays(pred: np.ndarray, gt: np.ndarray, frames, crop, zero_value: float, crop_prediction: bool):
    pairs = [protocol_frame(pred[t], gt[t], crop, zero_value, crop_prediction) for t in frames]
    return (torch.from_numpy(np.stack([p for p, _ in pairs])), torch.from_numpy(np.stack([g for _, g in pairs])))


def score_benchmark(pred: np.ndarray, batch: dict, protocol: Protocol) -> dict:
    """A whole stored benchmark sequence (batch of one), exactly as `vda-eval` scores it: `accuracy_arrays` and
    `DepthMetrics.update` for AbsRel/δ1/RMSE, `tae_arrays` and `TAEMetric.update` for TAE."""
    _check_prediction(pred)
    gt = batch["depth"][0].cpu().numpy()
    T = gt.shape[0]
    p, g = _protocol_arrays(pred, gt, range(min(T, protocol.max_eval_len)), protocol.crop, -1.0, False)
    row = _depth_scores(p, g, protocol.max_depth, alignment=protocol.alignment)
    if protocol.tae_frames is not None and bool(batch["has_pose"][0]):
        frames = range(T)[slice(*protocol.tae_frames)]
        if len(frames) >= 2:
            p, g = _protocol_arrays(pred, gt, frames, protocol.tae_crop, 0.0, True)
            aligned, _ = align_to_ground_truth(p.double(), g, protocol.tae_max_depth,
                                               alignment=protocol.alignment)
            K, poses = batch["K"][0].cpu(), batch["poses"][0].cpu()
            row["tae"] = sequence_tae(aligned, K[list(frames)] if K.dim() == 3 else K, poses[list(frames)])
    return row


class DatasetScores:
    """The metric object of one validation dataset: per-sequence rows and skip counts of this rank; `compute`
    takes every rank's part and returns the means over sequences (in sequence-name order, float64, as the
    published evaluation averages them)."""

    def __init__(self, dataset: str, protocol: Protocol):
        self.dataset, self.protocol = dataset, protocol
        self.rows: list[dict] = []
        self.skipped: Counter = Counter()

    def update(self, sequence: str, key: str, score) -> None:
        try:
            row = score()
        except SkipSequence as e:
            self.skipped[e.reason] += 1
            log.warning("validation: skipped %s/%s (key %s): %s [%s; %d so far in %s]", self.dataset, sequence,
                        key, e.detail, e.reason, self.skipped[e.reason], self.dataset)
            return
        self.rows.append({"sequence": sequence, "key": key, **row})

    def part(self) -> dict:
        return {"protocol": self.protocol, "rows": self.rows, "skipped": dict(self.skipped)}

    @staticmethod
    def compute(parts: list[dict]) -> dict[str, float]:
        rows = sorted((r for p in parts for r in p["rows"]), key=lambda r: (r["sequence"], r["key"]))
        skipped = Counter()
        for p in parts:
            skipped.update(p["skipped"])
        protocol = parts[0]["protocol"]
        out: dict[str, float] = {}
        if rows:
            for key in DEPTH_KEYS:
                total = 0.0
                for r in rows:
                    total += r[key]
                out[key] = total / len(rows)
        tae = [r["tae"] for r in rows if "tae" in r][: protocol.tae_max_sequences]
        if tae:
            total = 0.0
            for value in tae:
                total += value
            out["tae"] = total / len(tae)
        out["sequences"] = float(len(rows))
        for reason in SKIP_REASONS:
            if skipped[reason]:
                out[f"skipped_{reason}"] = float(skipped[reason])
        return out


class ValidationEvaluator(Callback):
    """Scores validation predictions per dataset; `results` holds the last validation's table.

    Args:
        default_max_depth: the depth cap for datasets no registered benchmark scores.
        alignment: how predictions meet the ground truth (scale_shift: the published relative protocol; none:
            a metric model's metres as predicted; scale: one median scale per sequence).
    """

    def __init__(self, default_max_depth: float = 80.0, alignment: str = "scale_shift"):
        from ..evaluation.alignment import check_alignment

        check_alignment(alignment)
        self.default_max_depth = float(default_max_depth)
        self.alignment = alignment
        self.scores: dict[str, DatasetScores] = {}
        self.results: dict[str, dict[str, float]] = {}

    def protocol(self, benchmark: str) -> Protocol:
        if benchmark:
            return Protocol.for_benchmark(benchmark, self.alignment)
        return Protocol.default(self.default_max_depth, self.alignment)

    def _scores(self, dataset: str, benchmark: str) -> DatasetScores:
        if dataset not in self.scores:
            self.scores[dataset] = DatasetScores(dataset, self.protocol(benchmark))
        return self.scores[dataset]

    def update(self, outputs: dict, batch: dict) -> None:
        """Score one validation batch given the module's `validation_step` output {"disparity": ...}."""
        pred = outputs["disparity"]
        benchmarks = batch.get("benchmark") or [""] * len(batch["dataset"])
        keys = batch.get("key") or batch["sequence"]
        for i, (dataset, sequence, key) in enumerate(zip(batch["dataset"], batch["sequence"], keys)):
            scores = self._scores(dataset, benchmarks[i])
            if scores.protocol.name != "default":
                scores.update(sequence, key, lambda p=scores.protocol: score_benchmark(pred, batch, p))
            else:
                scores.update(sequence, key, lambda i=i, p=scores.protocol: score_default(pred, batch, i, p))

    def compute(self) -> dict[str, dict[str, float]]:
        """Every rank's scores, reduced (collective under DDP: every rank must call it)."""
        parts = gather_objects({name: s.part() for name, s in self.scores.items()})
        names = sorted({name for p in parts for name in p})
        return {name: DatasetScores.compute([p[name] for p in parts if name in p]) for name in names}

    # ------------------------------------------------------------------ Lightning hooks
    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self.scores = {}

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if isinstance(outputs, dict) and "disparity" in outputs:
            self.update(outputs, batch)

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        self.results = self.compute()
        for name, row in self.results.items():
            skipped = sum(v for k, v in row.items() if k.startswith("skipped_"))
            for key, value in {**row, "skipped": skipped}.items():
                if not (isinstance(value, float) and math.isnan(value)):
                    pl_module.log(f"val/{name}/{key}", float(value), sync_dist=False, batch_size=1)
