"""Evaluate benchmarks sequence by sequence on this rank, then reduce across ranks.

Results (identical on every rank) follow the shape of the published numbers / `expected.json`:
{"depth": {<benchmark>: {"abs_relative_difference", "rmse_linear", "delta1_acc", "per_scene": [[a, r, d], ...],
 "scenes": [...], "frames": [...], "missing_predictions": {scene: [paths]}, "sequences": n, "settings": {...}}},
 "tae": {"scannet": {"mean", "per_scene", "scenes", "missing_predictions", "sequences", "settings"}},
 "alignment": "scale_shift" | "scale" | "none", "prediction_kind": "disparity" | "depth"}
Each benchmark's "settings" also carry the alignment and prediction kind they were scored with.
Under `--alignment none` each sequence's prediction scale is checked (`sequences.unit_warning`): predictions that
look like millimetres or centimetres, or not depth at all, are scored anyway with a one-line warning naming the
sequence and the likely unit.
"""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import torch
from tqdm import tqdm

from ..io import gather_objects, rank_world
from ..io.benchmarks import TAE_SETTINGS, BenchmarkSpec, TAESpec, get_benchmark, load_benchmark, load_tae_benchmark
from .alignment import check_alignment, default_prediction_kind
from .distributed import device_for_rank, shard_indices
from .metrics import DepthMetrics, TAEMetric, extra_sequence_scores
from .predictions import PredictionSource
from .sequences import accuracy_arrays, tae_arrays, unit_warning

log = logging.getLogger(__name__)


def _rows_in_order(local_rows: list[dict]) -> list[dict]:
    rows = [row for part in gather_objects(local_rows) for row in part]
    return sorted(rows, key=lambda r: r["index"])


def _check_count(name: str, metric, expected: int) -> None:
    with metric.sync_context(should_unsync=True):  # the summed count over all ranks
        counted = int(metric.sequences)
    if counted != expected:  # a sequence split, dropped or counted twice would break the per-sequence mean
        raise RuntimeError(f"{name}: {counted} sequences were reduced across ranks, expected {expected}")


def _settings(spec, alignment: str, kind: str) -> dict:
    return {**dataclasses.asdict(spec), "protocol": "vda", "alignment": alignment, "prediction_kind": kind}


def evaluate_depth(root: Path, spec: BenchmarkSpec, source: PredictionSource, progress: bool = True,
                   alignment: str = "scale_shift", prediction_kind: str | None = None, metrics=()) -> dict:
    """`metrics`: names of `metrics.EXTRA_METRICS` to add (their per-sequence scores and means under "extra")."""
    kind = prediction_kind or default_prediction_kind(alignment)
    sequences = load_benchmark(root, spec)
    rank, world = rank_world()
    device = device_for_rank()
    metric = DepthMetrics(max_depth=spec.max_depth, alignment=alignment, prediction_kind=kind).to(device)
    local = []
    for index in tqdm(shard_indices(len(sequences), rank, world), desc=f"{spec.name} [rank {rank}]",
                      disable=not progress or rank != 0, unit="seq"):
        seq = sequences[index]
        arrays = accuracy_arrays(seq, spec, source)
        warning = unit_warning(seq, arrays, spec.max_depth, kind) if alignment == "none" else None
        if warning:
            log.warning("%s", warning)
        metric.update(torch.from_numpy(arrays.pred).to(device), torch.from_numpy(arrays.gt).to(device))
        scores = metric.last[0]
        extra = extra_sequence_scores(metrics, torch.from_numpy(arrays.pred).to(device),
                                      torch.from_numpy(arrays.gt).to(device), spec.max_depth, alignment, kind)
        local.append({"index": index, "scene": seq.name, "scores": scores, "missing": arrays.missing, "extra": extra})
    totals = {k: float(v) for k, v in metric.compute().items()}
    _check_count(spec.name, metric, len(sequences))
    rows = _rows_in_order(local)
    extra = _extra_results(rows) if metrics else {}
    return {
        "abs_relative_difference": totals["abs_rel"],
        "rmse_linear": totals["rmse"],
        "delta1_acc": totals["delta1"],
        "per_scene": [[r["scores"]["abs_rel"], r["scores"]["rmse"], r["scores"]["delta1"]] for r in rows],
        "scenes": [r["scene"] for r in rows],
        "frames": [r["scores"]["frames"] for r in rows],
        "sequences": len(rows),
        "missing_predictions": {r["scene"]: r["missing"] for r in rows if r["missing"]},
        "settings": _settings(spec, alignment, kind),
        **extra,
    }


def _extra_results(rows: list[dict]) -> dict:
    """{"extra": {key: plain mean over sequences (as the published metrics)}, "extra_per_scene": {key: [...]}}."""
    keys = list(rows[0]["extra"]) if rows else []
    per_scene = {key: [r["extra"][key] for r in rows] for key in keys}
    return {"extra": {key: sum(v) / len(v) for key, v in per_scene.items()}, "extra_per_scene": per_scene}


def evaluate_tae(root: Path, spec: TAESpec, source: PredictionSource, progress: bool = True,
                 alignment: str = "scale_shift", prediction_kind: str | None = None) -> dict:
    kind = prediction_kind or default_prediction_kind(alignment)
    sequences = load_tae_benchmark(root, spec)
    rank, world = rank_world()
    device = device_for_rank()
    metric = TAEMetric(max_depth=spec.max_depth, alignment=alignment, prediction_kind=kind).to(device)
    local = []
    for index in tqdm(shard_indices(len(sequences), rank, world), desc=f"TAE {spec.name} [rank {rank}]",
                      disable=not progress or rank != 0, unit="seq"):
        seq = sequences[index]
        arrays = tae_arrays(seq, spec, source)
        metric.update(torch.from_numpy(arrays.pred).to(device), torch.from_numpy(arrays.K),
                      torch.from_numpy(arrays.poses), gt_depth=torch.from_numpy(arrays.gt).to(device))
        local.append({"index": index, "scene": seq.name, "tae": metric.last[0], "missing": arrays.missing})
    mean = float(metric.compute())
    _check_count(f"TAE {spec.name}", metric, len(sequences))
    rows = _rows_in_order(local)
    settings = _settings(spec, alignment, kind)
    settings["json"] = str(sequences[0].json_path.name)
    return {"mean": mean, "per_scene": [r["tae"] for r in rows], "scenes": [r["scene"] for r in rows],
            "sequences": len(rows), "missing_predictions": {r["scene"]: r["missing"] for r in rows if r["missing"]},
            "settings": settings}


def evaluate(root: Path, benchmarks: list[str], source: PredictionSource, tae: bool = False,
             progress: bool = True, alignment: str = "scale_shift", prediction_kind: str | None = None,
             metrics=()) -> dict:
    """Every benchmark (and ScanNet TAE) under one `alignment`; `prediction_kind` None = the alignment's default
    (`functional.default_prediction_kind`)."""
    kind = prediction_kind or default_prediction_kind(alignment)
    check_alignment(alignment, kind)
    specs = [get_benchmark(name) for name in benchmarks]  # fail on a typo before any work
    results: dict = {"depth": {}}
    for spec in specs:
        results["depth"][spec.name] = evaluate_depth(root, spec, source, progress, alignment, kind, metrics)
    if tae:
        results["tae"] = {name: evaluate_tae(root, spec, source, progress, alignment, kind)
                          for name, spec in TAE_SETTINGS.items()}
    results["protocol"], results["alignment"], results["prediction_kind"] = "vda", alignment, kind
    return results
