"""Evaluate benchmarks sequence by sequence on this rank, then reduce across ranks.

Results (identical on every rank) follow the shape of the published numbers / `expected.json`:
{"depth": {<benchmark>: {"abs_relative_difference", "rmse_linear", "delta1_acc", "per_scene": [[a, r, d], ...],
 "scenes": [...], "frames": [...], "missing_predictions": {scene: [paths]}, "sequences": n, "settings": {...}}},
 "tae": {"scannet": {"mean", "per_scene", "scenes", "missing_predictions", "sequences", "settings"}}}
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from tqdm import tqdm

from ..io import rank_world
from .benchmarks import TAE_SETTINGS, BenchmarkSpec, TAESpec, get_benchmark, load_benchmark, load_tae_benchmark
from .distributed import device_for_rank, gather_objects, shard_indices
from .metrics import DepthMetrics, TAEMetric
from .predictions import PredictionSource
from .sequences import accuracy_arrays, tae_arrays


def _rows_in_order(local_rows: list[dict]) -> list[dict]:
    rows = [row for part in gather_objects(local_rows) for row in part]
    return sorted(rows, key=lambda r: r["index"])


def _check_count(name: str, metric, expected: int) -> None:
    with metric.sync_context(should_unsync=True):  # the summed count over all ranks
        counted = int(metric.sequences)
    if counted != expected:  # a sequence split, dropped or counted twice would break the per-sequence mean
        raise RuntimeError(f"{name}: {counted} sequences were reduced across ranks, expected {expected}")


def evaluate_depth(root: Path, spec: BenchmarkSpec, source: PredictionSource, progress: bool = True) -> dict:
    sequences = load_benchmark(root, spec)
    rank, world = rank_world()
    device = device_for_rank()
    metric = DepthMetrics(max_depth=spec.max_depth).to(device)
    local = []
    for index in tqdm(shard_indices(len(sequences), rank, world), desc=f"{spec.name} [rank {rank}]",
                      disable=not progress or rank != 0, unit="seq"):
        seq = sequences[index]
        arrays = accuracy_arrays(seq, spec, source)
        metric.update(torch.from_numpy(arrays.pred).to(device), torch.from_numpy(arrays.gt).to(device))
        scores = metric.last[0]
        local.append({"index": index, "scene": seq.name, "scores": scores, "missing": arrays.missing})
    totals = {k: float(v) for k, v in metric.compute().items()}
    _check_count(spec.name, metric, len(sequences))
    rows = _rows_in_order(local)
    return {
        "abs_relative_difference": totals["abs_rel"],
        "rmse_linear": totals["rmse"],
        "delta1_acc": totals["delta1"],
        "per_scene": [[r["scores"]["abs_rel"], r["scores"]["rmse"], r["scores"]["delta1"]] for r in rows],
        "scenes": [r["scene"] for r in rows],
        "frames": [r["scores"]["frames"] for r in rows],
        "sequences": len(rows),
        "missing_predictions": {r["scene"]: r["missing"] for r in rows if r["missing"]},
        "settings": dataclasses.asdict(spec),
    }


def evaluate_tae(root: Path, spec: TAESpec, source: PredictionSource, progress: bool = True) -> dict:
    sequences = load_tae_benchmark(root, spec)
    rank, world = rank_world()
    device = device_for_rank()
    metric = TAEMetric(max_depth=spec.max_depth).to(device)
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
    settings = dataclasses.asdict(spec)
    settings["json"] = str(sequences[0].json_path.name)
    return {"mean": mean, "per_scene": [r["tae"] for r in rows], "scenes": [r["scene"] for r in rows],
            "sequences": len(rows), "missing_predictions": {r["scene"]: r["missing"] for r in rows if r["missing"]},
            "settings": settings}


def evaluate(root: Path, benchmarks: list[str], source: PredictionSource, tae: bool = False,
             progress: bool = True) -> dict:
    specs = [get_benchmark(name) for name in benchmarks]  # fail on a typo before any work
    results: dict = {"depth": {}}
    for spec in specs:
        results["depth"][spec.name] = evaluate_depth(root, spec, source, progress)
    if tae:
        results["tae"] = {name: evaluate_tae(root, spec, source, progress) for name, spec in TAE_SETTINGS.items()}
    return results
