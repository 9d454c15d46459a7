"""`vda eval --protocol cut3r`: the CUT3R-family splits scored sequence by sequence, averaged by valid pixels.

Per sequence (CUT3R `eval/video_depth/eval_depth.py`): every frame of the split (a missing prediction is an error:
the published script pairs predictions and ground truth by position, so a gap would shift every later frame),
the ground truth read as the family reads it (`cut3r_splits.Cut3rSplit`: dtype, factor, zeros), the prediction
turned into depth if it holds disparity (1/d where d > 0, else 0: the family's `depth2disparity` rule; at the
prediction's own resolution, as a user converting a disparity model's output for that script would), resized
bicubic to the ground truth, then `cut3r.sequence_metrics`. The benchmark's numbers are `cut3r.weighted_means`
over its sequences. Sequences are split across ranks whole; the rows are gathered and averaged once, so the
result does not depend on the number of processes.

Results: the vda protocol's keys (`abs_relative_difference`, `rmse_linear`, `delta1_acc`, `per_scene` as
[AbsRel, RMSE, δ1], `scenes`, `frames`, ...) plus `sq_rel`, `log_rmse`, `delta2_acc`, `delta3_acc`,
`valid_pixels` per scene and `per_scene_metrics` (every metric per scene); `protocol`, `alignment` and
`prediction_kind` at the top and in each benchmark's `settings`.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..io import gather_objects, rank_world, read_depth
from ..io.benchmark_json import BenchmarkError, Sequence
from ..io.benchmarks import read_sequences
from ..trust import display
from .cut3r import CUT3R_ALIGNMENTS, resize_bicubic, sequence_metrics, weighted_means
from .cut3r_splits import Cut3rSplit, get_split
from .distributed import shard_indices
from .predictions import PredictionSource
from .sequences import prediction_relpath

PROTOCOL = "cut3r"


def load_split(root: Path, split: Cut3rSplit) -> list[Sequence]:
    """The split's sequences from `<root>/<dataset>/<json_name>`, sorted; a sequence the split names but the index
    lacks is one line naming it (scoring fewer would give a number no paper reports)."""
    root = Path(root)
    if not root.is_dir():
        raise BenchmarkError(f"{root}: benchmark root is not a directory")
    sequences = read_sequences(root / split.dataset / split.json_name, split.dataset)
    if split.sequences is None:
        return sequences
    by_name = {s.name: s for s in sequences}
    missing = [name for name in split.sequences if name not in by_name]
    if missing:
        raise BenchmarkError(f"{display(sequences[0].json_path)}: the cut3r {split.name} split has "
                             f"{len(split.sequences)} sequences; missing: {', '.join(missing)} (re-run vda "
                             "prepare-benchmark on the full dataset)")
    return [by_name[name] for name in sorted(split.sequences)]


def ground_truth(sequence: Sequence, split: Cut3rSplit) -> np.ndarray:
    """(T,H,W) metres in the family reader's dtype; zeros replaced as it does."""
    frames = []
    for frame in sequence.frames:
        path = sequence.root / frame.gt_depth
        bits = 16 if path.suffix.lower() == ".png" else 0  # an 8-bit PNG would cap the metres silently
        gt = read_depth(path, frame.factor, dtype=np.dtype(split.gt_dtype), what="ground-truth depth",
                        min_int_bits=bits)
        if split.zero_gt is not None:
            gt[gt == 0] = split.zero_gt
        if frames and gt.shape != frames[0].shape:
            raise BenchmarkError(f"{display(path)}: depth is {gt.shape[0]}x{gt.shape[1]} but the first frame of "
                                 f"sequence {sequence.name!r} is {frames[0].shape[0]}x{frames[0].shape[1]}")
        frames.append(gt)
    return np.stack(frames)


def depth_from_disparity(disparity: np.ndarray) -> np.ndarray:
    """1 / d where d > 0, else 0 (the family's `depth2disparity`, which is its own inverse)."""
    depth = np.zeros_like(disparity)
    positive = disparity > 0
    depth[positive] = 1.0 / disparity[positive]
    return depth


def predictions(sequence: Sequence, source: PredictionSource, shape: tuple[int, int], kind: str) -> np.ndarray:
    """(T,H,W) float32 depth at the ground truth's size, every frame of the sequence."""
    out = []
    for i, frame in enumerate(sequence.frames):
        pred = source.frame(sequence, i)
        if pred is None:
            expected = prediction_relpath(sequence.dataset, frame.image)
            raise BenchmarkError(f"{display(sequence.json_path)}: sequence {sequence.name!r} frame {i}: no prediction "
                                 f"(expected e.g. {expected}); the cut3r protocol scores every frame of its splits")
        pred = np.asarray(pred, dtype=np.float32)
        if kind == "disparity":
            pred = depth_from_disparity(pred)
        out.append(resize_bicubic(pred, shape))
    return np.stack(out)


def score_sequence(sequence: Sequence, split: Cut3rSplit, source: PredictionSource, alignment: str,
                   kind: str) -> dict:
    gt = ground_truth(sequence, split)
    pred = predictions(sequence, source, gt.shape[1:], kind)
    return sequence_metrics(pred, gt, split.max_depth, alignment, split.post_clip_max)


def evaluate_split(root: Path, split: Cut3rSplit, source: PredictionSource, progress: bool = True,
                   alignment: str = "scale", kind: str = "depth") -> dict:
    sequences = load_split(root, split)
    rank, world = rank_world()
    local = []
    for index in tqdm(shard_indices(len(sequences), rank, world), desc=f"{split.name} cut3r [rank {rank}]",
                      disable=not progress or rank != 0, unit="seq"):
        seq = sequences[index]
        local.append({"index": index, "scene": seq.name, "frames": len(seq.frames),
                      "scores": score_sequence(seq, split, source, alignment, kind)})
    rows = sorted((row for part in gather_objects(local) for row in part), key=lambda r: r["index"])
    if len(rows) != len(sequences):
        raise RuntimeError(f"{split.name}: {len(rows)} sequences were gathered across ranks, expected "
                           f"{len(sequences)}")
    scores = [r["scores"] for r in rows]
    try:
        means = weighted_means(scores)
    except ValueError as e:
        raise BenchmarkError(f"{display(sequences[0].json_path)}: {e}") from None
    return {
        "abs_relative_difference": means["abs_rel"], "rmse_linear": means["rmse"], "delta1_acc": means["delta1"],
        "sq_rel": means["sq_rel"], "log_rmse": means["log_rmse"], "delta2_acc": means["delta2"],
        "delta3_acc": means["delta3"],
        "per_scene": [[s["abs_rel"], s["rmse"], s["delta1"]] for s in scores],
        "per_scene_metrics": scores,
        "scenes": [r["scene"] for r in rows], "frames": [r["frames"] for r in rows],
        "valid_pixels": [s["valid_pixels"] for s in scores], "sequences": len(rows), "missing_predictions": {},
        "settings": {**dataclasses.asdict(split), "protocol": PROTOCOL, "alignment": alignment,
                     "cut3r_alignment": CUT3R_ALIGNMENTS[alignment], "prediction_kind": kind},
    }


def evaluate_cut3r(root: Path, benchmarks: list[str], source: PredictionSource, progress: bool = True,
                   alignment: str = "scale", prediction_kind: str | None = None) -> dict:
    """Every named split under one alignment; predictions hold depth unless `prediction_kind` says disparity."""
    if alignment not in CUT3R_ALIGNMENTS:
        raise ValueError(f"alignment must be one of {', '.join(CUT3R_ALIGNMENTS)}, got {alignment!r}")
    kind = prediction_kind or "depth"
    splits = [get_split(name) for name in benchmarks]  # a typo fails before any work
    results: dict = {"depth": {s.name: evaluate_split(root, s, source, progress, alignment, kind) for s in splits}}
    results.update(protocol=PROTOCOL, alignment=alignment, prediction_kind=kind)
    return results
